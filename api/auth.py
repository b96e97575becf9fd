"""Who is calling. Today everyone is anonymous; this module is where authentication plugs in.

Every `/v1` router is built with `dependencies=[Depends(current_principal)]`,
so replacing `current_principal` (read the bearer token, verify it, return its
role and unit scope; raise a 401 problem when it is missing or invalid) guards
every route at once. For unit scoping, a route that needs the caller takes
`principal: Principal = Depends(current_principal)` as a parameter: FastAPI
resolves a dependency once per request, so the token is checked once. A case
outside the principal's scope is answered with 404, not 403 (DESIGN §9).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    ANONYMOUS = "anonymous"  # no token (the only role until authentication lands)
    RESIDENT = "resident"
    HOUSEHOLD_LEADER = "household_leader"
    STAFF = "staff"  # group / village / township staff: their subtree
    DEPARTMENT = "department"  # cases it handles or co-handles
    AUDITOR = "auditor"  # reads all, personal data masked unless granted
    ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    """The caller: a subject, a role and the unit subtree it may see (None: everything)."""

    subject: str
    role: Role
    unit_scope: str | None = None
    sees_personal_data: bool = False


ANONYMOUS = Principal(subject="anonymous", role=Role.ANONYMOUS)


def current_principal() -> Principal:
    """The caller of this request. Authentication replaces this body; see the module docstring."""
    return ANONYMOUS
