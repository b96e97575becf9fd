"""`python -m api.cli`: the `lianhu` command without the console script."""

from api.cli import main

main()
