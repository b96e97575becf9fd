"""ETags of case resources: the aggregate version, as a strong ETag `"<version>"`.

`If-Match` turns into the `expected_version` of a command; `If-None-Match`
answers 304 on a GET. Weak tags (`W/"3"`) are accepted in both: the version is
exact either way, and proxies that compress responses weaken ETags.
"""

from __future__ import annotations

import re

from api.problems import ApiProblem

ANY = "*"
_TAG = re.compile(r'^(?:W/)?"([^"]*)"$')


def etag(version: int) -> str:
    return f'"{version}"'


def expected_version(if_match: str | None) -> int | None:
    """The version an If-Match header names; None when there is none or it is `*` (any)."""
    if if_match is None:
        return None
    tags = _parse(if_match, "If-Match")
    if ANY in tags:
        return None
    if len(set(tags)) != 1:
        raise ApiProblem(
            "bad-request",
            f"If-Match names several versions ({if_match}); a command applies to one",
            hint='Send the one ETag you read, e.g. If-Match: "3".',
        )
    if not tags[0].isdigit():
        raise ApiProblem(
            "precondition-failed",
            f'If-Match {if_match} is not an ETag this API gives out (they look like "3")',
        )
    return int(tags[0])


def none_match(if_none_match: str | None, version: int) -> bool:
    """Does If-None-Match name this version (or `*`)? Then the client's copy is current."""
    if if_none_match is None:
        return False
    tags = _parse(if_none_match, "If-None-Match")
    return ANY in tags or str(version) in tags


def _parse(header: str, name: str) -> list[str]:
    """The opaque tags (without quotes, `W/` dropped) of a list header, or `*`."""
    items = [item.strip() for item in header.split(",") if item.strip()]
    if items == [ANY]:
        return [ANY]
    tags: list[str] = []
    for item in items:
        match = _TAG.match(item)
        if match is None:
            raise ApiProblem(
                "bad-request",
                f"{name} {header!r} is not a list of ETags",
                hint=f'Quote the ETag as given in the ETag header, e.g. {name}: "3".',
            )
        tags.append(match.group(1))
    if not tags:
        raise ApiProblem("bad-request", f"{name} is empty", hint=f'e.g. {name}: "3"')
    return tags
