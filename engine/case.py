"""The Case aggregate: decides in public methods, records through events.

A public method checks the command against the current state and raises
`IllegalTransition` (recording nothing) or triggers exactly one event. The
time of the event arrives as an argument (`at`), taken by the service from
the injected clock.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.domain import BaseAggregate

from engine.errors import IllegalTransition, WrongUnit
from engine.events import (
    CaseAccepted,
    CaseClosed,
    CaseEscalated,
    CaseEvent,
    CaseReferred,
    CaseReopened,
    CaseResolved,
    CaseResumed,
    CaseReturned,
    CaseRouted,
    CaseSuspended,
    DeadlineExtended,
    PetitionFiled,
    SatisfactionRated,
    SlaBreached,
    SlaWarned,
    started,
)
from engine.values import (
    OPEN_STATUSES,
    CloseReason,
    DeadlineKind,
    EscalationTrigger,
    Outcome,
    Reporter,
    ReturnReason,
    Status,
)
from routing_rules import Level, Urgency

ACTIVE = frozenset({Status.ROUTED, Status.ACCEPTED, Status.RETURNED})


class Case(BaseAggregate[UUID]):
    """A petition and everything that happened to it."""

    TOPIC: ClassVar[str] = "lianhu.Case"

    def __init__(self) -> None:
        # Only ever called by PetitionFiled while rebuilding; every field starts empty here.
        self.number = ""
        self.household_unit = ""
        self.channel = ""
        self.category = ""
        self.urgency = Urgency.NORMAL
        self.title = ""
        self.description = ""
        self.summary = ""  # the text as last passed on
        self.location = ""
        self.reporter = Reporter()
        self.raised_at: datetime | None = None
        self.fingerprint = ""
        self.rule_id = ""
        self.rule_set_hash = ""
        self.dispatcher = ""
        self.co_handlers: tuple[str, ...] = ()
        self.ladder: tuple[str, ...] = ()
        self.status = Status.ROUTED
        self.unit = ""
        self.level = Level.HOUSEHOLD
        self.assigned_at: datetime | None = None
        self.accepted_at: datetime | None = None
        self.respond_due: datetime | None = None
        self.resolve_due: datetime | None = None
        self.sla_fired: frozenset[str] = frozenset()
        self.hops = 0
        self.referrals = 0
        self.returns = 0
        self.breaches = 0
        self.supervised = False
        self.suspended_from: Status | None = None
        self.suspended_at: datetime | None = None
        self.outcome: Outcome | None = None
        self.resolved_at: datetime | None = None
        self.resolve_due_at_resolution: datetime | None = None
        self.reopened = 0
        self.rating: int | None = None
        self.request_matched: bool | None = None
        self.close_reason: CloseReason | None = None

    # -- helpers used by events (assignment only) -------------------------------------------

    def assign(
        self, unit: str, level: Level, respond_due: datetime, resolve_due: datetime, at: datetime
    ) -> None:
        self.unit, self.level = unit, level
        self.status = Status.ROUTED
        self.assigned_at = at
        self.accepted_at = None
        self.respond_due, self.resolve_due = respond_due, resolve_due
        self.sla_fired = frozenset()

    # -- creation ---------------------------------------------------------------------------

    @classmethod
    def file(cls, *, case_id: UUID, at: datetime, **facts: Any) -> Case:
        filed = PetitionFiled(
            originator_id=case_id,
            originator_version=cls.INITIAL_VERSION,
            timestamp=at,
            originator_topic=cls.TOPIC,
            **facts,
        )
        return started(cls, filed)

    # -- guards -----------------------------------------------------------------------------

    def _require(self, command: str, allowed: frozenset[Status], hint: str) -> None:
        if self.status not in allowed:
            allowed_names = ", ".join(sorted(s.value for s in allowed))
            raise IllegalTransition(
                self.id, command, self.status.value, f"only allowed when {allowed_names}", hint=hint
            )

    def _require_holder(self, command: str, unit: str) -> None:
        if unit != self.unit:
            raise WrongUnit(
                self.id,
                command,
                self.status.value,
                f"unit {unit} does not hold it; {self.unit} does",
                hint=f"Only {self.unit} can {command} this case now.",
            )

    def __deepcopy__(self, memo: dict[int, Any]) -> Case:
        """A copy sharing the field values: every one is immutable (str, enum, datetime,
        tuple, frozenset, frozen pydantic model), except the list of pending events.
        The library's aggregate cache deep-copies on every read; this makes that cheap."""
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone._pending_events = list(self._pending_events)
        return clone

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    # -- commands ---------------------------------------------------------------------------

    def route(
        self,
        *,
        at: datetime,
        rule_id: str,
        rule_set_hash: str,
        handler: str,
        handler_level: Level,
        co_handlers: tuple[str, ...],
        ladder: tuple[str, ...],
        dispatcher: str,
        respond_due: datetime,
        resolve_due: datetime,
    ) -> None:
        if self.version != 1:
            raise IllegalTransition(
                self.id,
                "route",
                self.status.value,
                "a case is routed once, when filed",
                hint="Refer or escalate the case to move it.",
            )
        self._trigger(
            CaseRouted,
            at,
            rule_id=rule_id,
            rule_set_hash=rule_set_hash,
            handler=handler,
            handler_level=handler_level,
            co_handlers=co_handlers,
            ladder=ladder,
            dispatcher=dispatcher,
            respond_due=respond_due,
            resolve_due=resolve_due,
        )

    def accept(self, *, at: datetime, unit: str, actor: str) -> None:
        self._require(
            "accept",
            frozenset({Status.ROUTED, Status.RETURNED}),
            "A case is accepted once per assignment; it is already being handled or is finished.",
        )
        self._require_holder("accept", unit)
        self._trigger(CaseAccepted, at, unit=unit, actor=actor)

    def return_(
        self,
        *,
        at: datetime,
        unit: str,
        actor: str,
        reason: ReturnReason,
        note: str,
        dispatcher_level: Level,
    ) -> None:
        self._require(
            "return",
            frozenset({Status.ROUTED, Status.ACCEPTED}),
            "Only the unit a case was assigned to can return it, before resolving it.",
        )
        self._require_holder("return", unit)
        if unit == self.dispatcher:
            raise IllegalTransition(
                self.id,
                "return",
                self.status.value,
                f"{unit} is the dispatcher of this case; there is nobody to return it to",
                hint="Refer it to the unit that should handle it, escalate it, or resolve it.",
            )
        self._trigger(
            CaseReturned,
            at,
            unit=unit,
            actor=actor,
            reason=reason,
            note=note,
            to_unit=self.dispatcher,
            to_level=dispatcher_level,
        )

    def refer(
        self,
        *,
        at: datetime,
        from_unit: str,
        to_unit: str,
        to_level: Level,
        actor: str,
        summary: str,
        category: str,
        urgency: Urgency,
        respond_due: datetime,
        resolve_due: datetime,
    ) -> None:
        self._require(
            "refer",
            frozenset({Status.ACCEPTED, Status.RETURNED}),
            "Accept the case first (or, if it is not yours, return it).",
        )
        self._require_holder("refer", from_unit)
        if to_unit == self.unit:
            raise IllegalTransition(
                self.id,
                "refer",
                self.status.value,
                f"it is already with {to_unit}",
                hint="Refer it to a different unit.",
            )
        self._trigger(
            CaseReferred,
            at,
            from_unit=from_unit,
            to_unit=to_unit,
            to_level=to_level,
            actor=actor,
            summary=summary,
            category=category,
            urgency=urgency,
            hop=self.hops + 1,
            respond_due=respond_due,
            resolve_due=resolve_due,
        )

    def escalate(
        self,
        *,
        at: datetime,
        to_unit: str,
        to_level: Level,
        trigger: EscalationTrigger,
        actor: str,
        summary: str,
        respond_due: datetime,
        resolve_due: datetime,
    ) -> None:
        self._require(
            "escalate",
            ACTIVE,
            "Resume a suspended case before escalating it; closed or "
            "resolved cases are reopened, not escalated.",
        )
        if to_unit not in self.ladder:
            raise IllegalTransition(
                self.id,
                "escalate",
                self.status.value,
                f"{to_unit} is not on its escalation ladder {list(self.ladder) or '(empty)'}",
                hint="Escalate to the next rung of the ladder, or refer the case instead.",
            )
        remaining = self.ladder[self.ladder.index(to_unit) + 1 :]
        self._trigger(
            CaseEscalated,
            at,
            from_unit=self.unit,
            to_unit=to_unit,
            to_level=to_level,
            trigger=trigger,
            actor=actor,
            summary=summary,
            hop=self.hops + 1,
            ladder=remaining,
            respond_due=respond_due,
            resolve_due=resolve_due,
        )

    def due(self, kind: DeadlineKind) -> datetime | None:
        return self.respond_due if kind is DeadlineKind.RESPOND else self.resolve_due

    def warn(self, *, at: datetime, kind: DeadlineKind, due: datetime) -> bool:
        """Record a yellow light; False (and nothing recorded) if already warned or moot."""
        if self._deadline_moot(kind, due) or f"warned:{kind}" in self.sla_fired:
            return False
        self._trigger(SlaWarned, at, unit=self.unit, kind=kind, due=due)
        return True

    def breach(self, *, at: datetime, kind: DeadlineKind, due: datetime) -> bool:
        """Record a red light; False (and nothing recorded) if already breached or met."""
        if self._deadline_moot(kind, due) or f"breached:{kind}" in self.sla_fired:
            return False
        if at < due:
            raise IllegalTransition(
                self.id,
                "breach",
                self.status.value,
                f"its {kind} deadline {due} has not passed",
                hint="A deadline is breached only at or after its due time.",
            )
        self._trigger(SlaBreached, at, unit=self.unit, kind=kind, due=due)
        return True

    def _deadline_moot(self, kind: DeadlineKind, due: datetime) -> bool:
        return self.status not in ACTIVE or self.due(kind) != due

    def extend_deadline(
        self, *, at: datetime, kind: DeadlineKind, new_due: datetime, approver: str, reason: str
    ) -> None:
        self._require("extend a deadline of", ACTIVE, "Only a running deadline can be extended.")
        current = self.due(kind)
        if current is None:
            raise IllegalTransition(
                self.id,
                "extend",
                self.status.value,
                f"it has no running {kind} deadline",
                hint="The respond deadline ends when the unit accepts; extend resolve instead.",
            )
        if new_due <= current:
            raise IllegalTransition(
                self.id,
                "extend",
                self.status.value,
                f"the new due time {new_due.isoformat()} is not after {current.isoformat()}",
                hint="An extension moves a deadline later; give a later due time.",
            )
        self._trigger(
            DeadlineExtended, at, kind=kind, new_due=new_due, approver=approver, reason=reason
        )

    def suspend(self, *, at: datetime, actor: str, reason: str) -> None:
        self._require("suspend", ACTIVE, "A suspended case must be resumed first.")
        self._trigger(CaseSuspended, at, actor=actor, reason=reason)

    def resume(self, *, at: datetime, actor: str, reason: str) -> None:
        self._require("resume", frozenset({Status.SUSPENDED}), "Only a suspended case resumes.")
        assert self.suspended_at is not None
        paused = at - self.suspended_at
        respond = self.respond_due + paused if self.respond_due else None
        resolve = self.resolve_due + paused if self.resolve_due else None
        self._trigger(
            CaseResumed, at, actor=actor, reason=reason, respond_due=respond, resolve_due=resolve
        )

    def resolve(
        self, *, at: datetime, unit: str, actor: str, outcome: Outcome, resolution: str
    ) -> None:
        self._require(
            "resolve", frozenset({Status.ACCEPTED}), "Accept the case before resolving it."
        )
        self._require_holder("resolve", unit)
        self._trigger(
            CaseResolved, at, unit=unit, actor=actor, outcome=outcome, resolution=resolution
        )

    def reopen(self, *, at: datetime, actor: str, reason: str, resolve_due: datetime) -> None:
        self._require(
            "reopen", frozenset({Status.RESOLVED}), "Only a resolved, not yet closed case reopens."
        )
        self._trigger(CaseReopened, at, actor=actor, reason=reason, resolve_due=resolve_due)

    def rate(self, *, at: datetime, score: int, request_matched: bool, comment: str) -> None:
        self._require("rate", frozenset({Status.RESOLVED}), "A case is rated once it is resolved.")
        if self.rating is not None:
            raise IllegalTransition(
                self.id,
                "rate",
                self.status.value,
                "this resolution is already rated",
                hint="Reopen the case if the resident is not satisfied.",
            )
        self._trigger(
            SatisfactionRated, at, score=score, request_matched=request_matched, comment=comment
        )

    def close(self, *, at: datetime, reason: CloseReason, actor: str, note: str = "") -> None:
        if reason is CloseReason.WITHDRAWN:
            self._require(
                "withdraw",
                OPEN_STATUSES,
                "A resolved case is closed or reopened, not withdrawn.",
            )
        else:
            self._require("close", frozenset({Status.RESOLVED}), "Resolve the case first.")
            if reason is CloseReason.RATED and self.rating is None:
                raise IllegalTransition(
                    self.id,
                    "close",
                    self.status.value,
                    "it has no rating yet",
                    hint="Rate it first, or close it with reason 'auto'.",
                )
        self._trigger(CaseClosed, at, reason=reason, actor=actor, note=note)

    # -- recording --------------------------------------------------------------------------

    def _trigger(self, event_class: type[CaseEvent], at: datetime, **data: Any) -> None:
        if at < self.modified_on:
            at = self.modified_on  # keep the log monotonic per case even if clocks step back
        # the library's trigger_event, without its per-call checks that the event class
        # is registered (CaseEvent registers every topic when the class is defined)
        event = event_class(
            originator_id=self.id, originator_version=self.version + 1, timestamp=at, **data
        )
        event.mutate(self)
        self.pending_events.append(event)
