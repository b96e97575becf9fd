"""HTTP routers, one module per resource.

Every router serving `/v1` is declared with `prefix=V1 + ...` and
`dependencies=[Depends(current_principal)]` (tests/api check both), so
authentication and unit scoping plug in at one dependency.
"""

V1 = "/v1"
