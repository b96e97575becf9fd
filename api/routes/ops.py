"""Operations: liveness, Prometheus metrics, and the problem types' documentation."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from api.deps import ServiceDep
from api.metrics import CONTENT_TYPE, Metrics, render_relay_lag
from api.problems import PROBLEM_TYPES, ApiProblem
from engine.outbox import Outbox
from engine.service import CaseService
from engine.settings import Settings
from engine.viewstore import ViewStore

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: str
    rule_set: str
    rule_set_hash: str


class ProblemTypeDoc(BaseModel):
    type: str
    status: int
    title: str
    when: str
    hint: str


@router.get("/healthz", summary="Liveness")
async def healthz(request: Request) -> Health:
    """The process is up and serving; names the rule set in force. Does not touch the store."""
    rules = request.app.state.service.rules
    return Health(status="ok", rule_set=rules.name, rule_set_hash=rules.hash)


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
def metrics(request: Request, service: ServiceDep) -> PlainTextResponse:
    """Request counts and durations by route and status; the event log position."""
    collected: Metrics = request.app.state.metrics
    text = collected.render(log_position=service.recorder.max_notification_id())
    outbox = _relay_outbox(request, service)
    if outbox is not None:
        lag = outbox.lag()
        text += render_relay_lag(lag.position, lag.events, lag.seconds)
    return PlainTextResponse(text, media_type=CONTENT_TYPE)


def _relay_outbox(request: Request, service: CaseService) -> Outbox | None:
    """The relay's view of the log (None when no NATS is configured), made on first use."""
    state = request.app.state
    settings: Settings = state.settings
    if not settings.nats_url:
        return None
    outbox: Outbox | None = getattr(state, "relay_outbox", None)
    if outbox is None:
        views = ViewStore.for_settings(settings)
        outbox = state.relay_outbox = Outbox(service, views, prefix=settings.nats_subject_prefix)
    return outbox


@router.get("/problems/{slug}", summary="What a problem type means")
async def problem_type(slug: Annotated[str, Path(max_length=64)]) -> ProblemTypeDoc:
    """The documentation a problem document's `type` points at."""
    kind = PROBLEM_TYPES.get(slug)
    if kind is None:
        raise ApiProblem("not-found", f"no problem type {slug!r}", hint="See docs/api.md.")
    return ProblemTypeDoc(
        type=kind.uri, status=kind.status, title=kind.title, when=kind.when, hint=kind.hint
    )
