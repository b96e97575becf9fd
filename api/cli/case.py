"""`lianhu case`: file petitions and act on cases, on the configured store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import orjson
import typer

from api.cli.errors import reports_errors
from api.views import CaseView, HistoryView
from api.wiring import build_service
from engine import commands as c
from engine.case import Case
from engine.service import CaseService
from engine.settings import Settings
from engine.values import Channel, DeadlineKind, EscalationTrigger, Outcome, ReturnReason
from routing_rules import Urgency

app = typer.Typer(
    help="File petitions and act on cases, on the configured store (LIANHU_DATA_DIR or "
    "LIANHU_DATABASE_URL).",
    no_args_is_help=True,
)


@contextmanager
def _service() -> Iterator[CaseService]:
    service = build_service(Settings())
    try:
        yield service
    finally:
        service.close()


# -- case: reading --------------------------------------------------------------------------

Ref = Annotated[str, typer.Argument(help="case id (UUID) or number, e.g. 260302-7KQ2M")]
AsJson = Annotated[bool, typer.Option("--json", help="print JSON (personal data masked)")]


def _dump(model: CaseView | HistoryView) -> None:
    text = orjson.dumps(model.model_dump(mode="json"), option=orjson.OPT_INDENT_2)
    typer.echo(text.decode())


def _print_case(case: Case) -> None:
    view = CaseView.of(case)
    lines = [
        f"case      {view.number}  {view.id}  version {view.version}",
        f"status    {view.status} at {view.unit} ({view.level})",
        f"petition  {view.category}, {view.urgency}, via {view.channel}, "
        f"from {view.household_unit}",
        f"title     {view.title}",
        f"rule      {view.rule_id} ({view.rule_set_hash})",
        f"due       respond {_when(view.respond_due)}, resolve {_when(view.resolve_due)}",
        f"ladder    {' → '.join(view.ladder) or 'none'}",
    ]
    if view.co_handlers:
        lines.append(f"jointly   {', '.join(view.co_handlers)}")
    if view.summary:
        lines.append(f"summary   {view.summary}")
    if view.outcome:
        lines.append(f"outcome   {view.outcome}")
    if view.rating is not None:
        lines.append(f"rating    {view.rating}/5, request matched: {view.request_matched}")
    reporter = view.reporter
    if reporter.name or reporter.phone:
        lines.append("reporter  " + " ".join(p for p in (reporter.name, reporter.phone) if p))
    typer.echo("\n".join(lines))


def _when(moment: datetime | None) -> str:
    return moment.isoformat() if moment is not None else "-"


@app.command("show", epilog="Example:\n\n    lianhu case show 260302-7KQ2M")
@reports_errors
def case_show(ref: Ref, as_json: AsJson = False) -> None:
    """Show a case as it stands now."""
    with _service() as service:
        case = service.get_case(service.find_case(ref))
        if as_json:
            _dump(CaseView.of(case))
        else:
            _print_case(case)


@app.command("history", epilog="Example:\n\n    lianhu case history 260302-7KQ2M")
@reports_errors
def case_history(ref: Ref, as_json: AsJson = False) -> None:
    """List every recorded event of a case, oldest first."""
    with _service() as service:
        case_id = service.find_case(ref)
        history = HistoryView.of(case_id, service.history(case_id))
    if as_json:
        _dump(history)
        return
    for event in history.events:
        data = orjson.dumps(event.data).decode()
        typer.echo(f"v{event.version:<3} {event.timestamp.isoformat()}  {event.name:<18} {data}")


# -- case: filing ---------------------------------------------------------------------------


@app.command(
    "file",
    epilog="Example:\n\n"
    "    lianhu case file --unit 510123001001-01-01 --category neighbour_dispute "
    "--title 楼上噪音 --description '楼上邻居每晚装修' --reporter-phone 13812345678",
)
@reports_errors
def case_file(
    unit: Annotated[str, typer.Option(help="household unit code, e.g. 510123001001-01-01")],
    category: Annotated[str, typer.Option(help="category code (`lianhu rules categories`)")],
    title: Annotated[str, typer.Option(help="a short title")],
    description: Annotated[str, typer.Option(help="the resident's own words")],
    urgency: Annotated[Urgency, typer.Option(help="how urgent")] = Urgency.NORMAL,
    channel: Annotated[Channel, typer.Option(help="how it was raised")] = Channel.VISIT,
    reporter_name: Annotated[str, typer.Option(help="resident's name")] = "",
    reporter_phone: Annotated[str, typer.Option(help="resident's phone")] = "",
    reporter_address: Annotated[str, typer.Option(help="resident's address")] = "",
    location: Annotated[str, typer.Option(help="where the matter is")] = "",
    raised_at: Annotated[
        str | None,
        typer.Option(help="when the resident raised it, ISO 8601 with zone [default: now]"),
    ] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="retrying with the same key files nothing new")
    ] = None,
) -> None:
    """File a resident's petition; it is routed at once."""
    cmd = c.FilePetition.model_validate(
        {
            "household_unit": unit,
            "category": category,
            "title": title,
            "description": description,
            "urgency": urgency,
            "channel": channel,
            "location": location,
            "reporter": {
                "name": reporter_name,
                "phone": reporter_phone,
                "address": reporter_address,
            },
            "raised_at": raised_at,
        }
    )
    with _service() as service:
        filed = service.file_petition(cmd, idempotency_key=idempotency_key)
        typer.echo("filed" if filed.created else "already filed with this idempotency key")
        _print_case(service.get_case(filed.case_id))


# -- case: acting -----------------------------------------------------------------------------

ActingUnit = Annotated[str, typer.Option(help="the unit acting (it must hold the case)")]
Actor = Annotated[str, typer.Option(help="who acts: a staff id or name")]
Reason = Annotated[str, typer.Option(help="why")]
Expected = Annotated[
    int | None,
    typer.Option(help="act only if the case is still at this version (like HTTP If-Match)"),
]


class CloseAs(StrEnum):
    """The reasons `case close` takes (withdrawing has its own command)."""

    RATED = "rated"
    AUTO = "auto"


def _act(
    ref: str,
    verb: Callable[[CaseService], Callable[..., Case]],
    cmd: c.Command,
    expected: int | None,
) -> None:
    with _service() as service:
        case = verb(service)(service.find_case(ref), cmd, expected_version=expected)
        _print_case(case)


def _build(model: type[c.Command], **fields: Any) -> c.Command:
    return model.model_validate(fields)


@app.command(
    "accept",
    epilog="Example:\n\n    lianhu case accept 260302-7KQ2M --unit 510123001001-01-01 --actor wang",
)
@reports_errors
def case_accept(
    ref: Ref, unit: ActingUnit, actor: Actor, expected_version: Expected = None
) -> None:
    """The unit holding the case signs for it (受理)."""
    cmd = _build(c.AcceptCase, unit=unit, actor=actor)
    _act(ref, lambda s: s.accept_case, cmd, expected_version)


@app.command("return")
@reports_errors
def case_return(
    ref: Ref,
    unit: ActingUnit,
    actor: Actor,
    reason: Annotated[ReturnReason, typer.Option(help="why it is not for this unit")],
    note: Annotated[str, typer.Option(help="more detail")] = "",
    expected_version: Expected = None,
) -> None:
    """Give the case back to its dispatcher (退回)."""
    cmd = _build(c.ReturnCase, unit=unit, actor=actor, reason=reason, note=note)
    _act(ref, lambda s: s.return_case, cmd, expected_version)


@app.command(
    "refer",
    epilog="Example:\n\n    lianhu case refer 260302-7KQ2M --unit 510123001001-01-01 "
    "--to-unit 510123001001 --actor wang --summary '住户反映楼上装修噪音'",
)
@reports_errors
def case_refer(
    ref: Ref,
    unit: ActingUnit,
    to_unit: Annotated[str, typer.Option(help="the unit to pass it to")],
    actor: Actor,
    summary: Annotated[str, typer.Option(help="the case as you pass it on, in your words")],
    category: Annotated[str | None, typer.Option(help="category as passed on")] = None,
    urgency: Annotated[Urgency | None, typer.Option(help="urgency as passed on")] = None,
    expected_version: Expected = None,
) -> None:
    """Pass the case to another unit, retold in your own words (转办)."""
    cmd = _build(
        c.ReferCase,
        unit=unit,
        to_unit=to_unit,
        actor=actor,
        summary=summary,
        category=category,
        urgency=urgency,
    )
    _act(ref, lambda s: s.refer_case, cmd, expected_version)


@app.command("escalate")
@reports_errors
def case_escalate(
    ref: Ref,
    actor: Actor,
    to_unit: Annotated[
        str | None, typer.Option(help="a rung of its ladder [default: next]")
    ] = None,
    trigger: Annotated[EscalationTrigger, typer.Option(help="why")] = EscalationTrigger.MANUAL,
    summary: Annotated[str, typer.Option(help="the case as passed up")] = "",
    expected_version: Expected = None,
) -> None:
    """Move the case up its escalation ladder."""
    cmd = _build(c.EscalateCase, actor=actor, to_unit=to_unit, trigger=trigger, summary=summary)
    _act(ref, lambda s: s.escalate_case, cmd, expected_version)


@app.command(
    "extend",
    epilog="Example:\n\n    lianhu case extend 260302-7KQ2M --new-due 2026-03-20T18:00+08:00 "
    "--approver li --reason '等待鉴定结果'",
)
@reports_errors
def case_extend(
    ref: Ref,
    new_due: Annotated[str, typer.Option(help="the new due time, ISO 8601 with zone")],
    approver: Annotated[str, typer.Option(help="who approved the extension")],
    reason: Reason,
    kind: Annotated[DeadlineKind, typer.Option(help="which deadline")] = DeadlineKind.RESOLVE,
    expected_version: Expected = None,
) -> None:
    """Move a running deadline later (延期)."""
    cmd = _build(c.ExtendDeadline, kind=kind, new_due=new_due, approver=approver, reason=reason)
    _act(ref, lambda s: s.extend_deadline, cmd, expected_version)


@app.command("suspend")
@reports_errors
def case_suspend(ref: Ref, actor: Actor, reason: Reason, expected_version: Expected = None) -> None:
    """Stop the clock while waiting for the resident."""
    cmd = _build(c.SuspendCase, actor=actor, reason=reason)
    _act(ref, lambda s: s.suspend_case, cmd, expected_version)


@app.command("resume")
@reports_errors
def case_resume(
    ref: Ref, actor: Actor, reason: Reason = "", expected_version: Expected = None
) -> None:
    """Restart the clock; deadlines move by the time paused."""
    cmd = _build(c.ResumeCase, actor=actor, reason=reason)
    _act(ref, lambda s: s.resume_case, cmd, expected_version)


@app.command(
    "resolve",
    epilog="Example:\n\n    lianhu case resolve 260302-7KQ2M --unit 510123001001-01-01 "
    "--actor wang --outcome mediated_success --resolution '双方约定晚十点后停工'",
)
@reports_errors
def case_resolve(
    ref: Ref,
    unit: ActingUnit,
    actor: Actor,
    outcome: Annotated[Outcome, typer.Option(help="how it ended")],
    resolution: Annotated[str, typer.Option(help="what was done")],
    expected_version: Expected = None,
) -> None:
    """Say the case is done, and how (办结)."""
    cmd = _build(c.ResolveCase, unit=unit, actor=actor, outcome=outcome, resolution=resolution)
    _act(ref, lambda s: s.resolve_case, cmd, expected_version)


@app.command("reopen")
@reports_errors
def case_reopen(ref: Ref, actor: Actor, reason: Reason, expected_version: Expected = None) -> None:
    """Reopen a resolved case: the resident is not satisfied."""
    cmd = _build(c.ReopenCase, actor=actor, reason=reason)
    _act(ref, lambda s: s.reopen_case, cmd, expected_version)


@app.command("rate", epilog="Example:\n\n    lianhu case rate 260302-7KQ2M --score 5 --matched")
@reports_errors
def case_rate(
    ref: Ref,
    score: Annotated[int, typer.Option(min=1, max=5, help="1 (poor) to 5 (very satisfied)")],
    matched: Annotated[
        bool,
        typer.Option("--matched/--not-matched", help="was what was done what was asked for"),
    ],
    comment: Annotated[str, typer.Option(help="the resident's words")] = "",
    expected_version: Expected = None,
) -> None:
    """Record the resident's rating of the resolution (群众评议)."""
    cmd = _build(c.RateCase, score=score, request_matched=matched, comment=comment)
    _act(ref, lambda s: s.rate_case, cmd, expected_version)


@app.command("close")
@reports_errors
def case_close(
    ref: Ref,
    actor: Actor,
    reason: Annotated[
        CloseAs, typer.Option(help="rated (after the rating) or auto (no rating came)")
    ] = CloseAs.RATED,
    expected_version: Expected = None,
) -> None:
    """Close a resolved case."""
    cmd = _build(c.CloseCase, actor=actor, reason=reason.value)
    _act(ref, lambda s: s.close_case, cmd, expected_version)


@app.command("withdraw")
@reports_errors
def case_withdraw(
    ref: Ref, actor: Actor, reason: Reason = "", expected_version: Expected = None
) -> None:
    """Withdraw an open case at the resident's request."""
    cmd = _build(c.WithdrawCase, actor=actor, reason=reason)
    _act(ref, lambda s: s.withdraw_case, cmd, expected_version)
