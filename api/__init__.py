"""lianhu's edges: the HTTP API (FastAPI), the `lianhu` CLI (typer) and the wiring both share."""
