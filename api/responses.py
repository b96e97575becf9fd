"""JSON responses through orjson."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import JSONResponse


class OrjsonResponse(JSONResponse):
    """JSON bodies through orjson (FastAPI deprecates its own ORJSONResponse). Values
    FastAPI has not already turned into JSON types come out as pydantic would write them:
    UTC times end in Z, and non-string keys become strings."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS)


def report(body: dict[str, Any]) -> OrjsonResponse:
    """A report as it is, straight to JSON. Its keys and values are built by
    projections.reports (str, numbers, None, lists, dicts, datetimes): FastAPI's check of
    a `dict[str, Any]` return value checks nothing there, and took 12 ms of a heat map's
    34 ms (2,577 cells). The routes still declare the response model for the docs."""
    return OrjsonResponse(body)
