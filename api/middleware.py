"""ASGI middleware: body limits and media type before any route runs, request metrics after.

`RequestGuard` refuses a body over the limit from its Content-Length alone
(without reading it) and otherwise reads it while counting, stopping as soon
as the count passes the limit, so at most `max_body_bytes` plus one chunk is
ever held. A body that fits is handed on unchanged. A non-empty body that is
not declared as JSON is refused with 415.
"""

from __future__ import annotations

import time
from email.message import Message as MimeMessage

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.metrics import Metrics
from api.problems import problem_response

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class RequestGuard:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        path = str(scope["path"])
        declared = _header(scope, b"content-length")
        if declared is not None and not declared.isdigit():
            response = problem_response(
                "bad-request", f"Content-Length {declared!r} is not a number", instance=path
            )
            await response(scope, receive, send)
            return
        if declared is not None and int(declared) > self.max_body_bytes:
            await self._too_large(scope, receive, send, f"Content-Length {declared}")
            return
        messages: list[Message] = []
        size = 0
        more = True
        while more:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break  # the client went away; let the app see the disconnect
            size += len(message.get("body", b""))
            if size > self.max_body_bytes:
                await self._too_large(scope, receive, send, f"at least {size} bytes")
                return
            more = bool(message.get("more_body", False))
        if size and not _is_json(_header(scope, b"content-type")):
            declared_type = _header(scope, b"content-type") or "none"
            response = problem_response(
                "unsupported-media-type",
                f"the body is declared as {declared_type}, not application/json",
                instance=path,
            )
            await response(scope, receive, send)
            return
        await self.app(scope, _replay(messages, receive), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, what: str) -> None:
        response = problem_response(
            "payload-too-large",
            f"the body ({what}) is over the limit of {self.max_body_bytes} bytes",
            instance=str(scope["path"]),
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A receive channel that gives the messages already read, then the live ones."""
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1").strip()
    return None


def _is_json(content_type: str | None) -> bool:
    """application/json or application/*+json, in UTF-8 (the only charset JSON has)."""
    if not content_type:
        return False
    parsed = MimeMessage()
    parsed["content-type"] = content_type
    if parsed.get_content_maintype() != "application":
        return False
    subtype = parsed.get_content_subtype()
    charset = parsed.get_param("charset")
    utf8 = charset is None or (isinstance(charset, str) and charset.lower() in {"utf-8", "utf8"})
    return (subtype == "json" or subtype.endswith("+json")) and utf8


class RequestMetrics:
    """Counts every answered request by method, route template and status, with its duration."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the app fails before answering

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unrouted"
            self.metrics.observe(
                str(scope["method"]), template, status, time.perf_counter() - started
            )
