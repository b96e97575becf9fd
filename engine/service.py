"""The application service: one verb per command, on the eventsourcing library.

Each verb loads the case, lets the aggregate decide, and saves the new event
in one transaction. A concurrent change to the same case fails the save
(the store's unique (case, version) key) and is reported as `VersionConflict`;
nothing is merged silently and nothing is half-applied.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import BaseAggregate, DomainEventProtocol, MutableOrImmutableAggregate
from eventsourcing.persistence import (
    IntegrityError,
    Mapper,
    PersistenceError,
    Recording,
    Transcoder,
)
from eventsourcing.utils import Environment

from engine import commands as c
from engine.case import Case
from engine.clock import Clock
from engine.deadlines import DueDeadline, Light
from engine.errors import (
    CaseNotFound,
    IdempotencyKeyReused,
    IllegalTransition,
    InvalidPetition,
    StoreUnavailable,
    UnknownReference,
    VersionConflict,
)
from engine.events import CaseEvent
from engine.group_commit import GroupCommit
from engine.numbering import (
    CaseNumber,
    case_number,
    new_case_id,
    normalise_number,
    number_index_id,
)
from engine.persistence import OrjsonTranscoder, PydanticMapper
from engine.values import CloseReason, DeadlineKind, EscalationTrigger
from routing_rules import (
    Level,
    RuleSet,
    RuleSetError,
    deadlines_for,
    due_times,
    evaluate_fields,
)

IDEMPOTENCY_NAMESPACE = uuid5(NAMESPACE_URL, "urn:lianhu:idempotency-key")
CLOCK_SKEW = timedelta(minutes=5)
NUMBER_ATTEMPTS = 8
TRANSFERS_BEFORE_SUPERVISION = 3  # returned or referred this often: escalated (12345 practice)
TIMER_ACTOR = "sla-timer"
TOWNSHIP_MEMO_LIMIT = 100_000  # households whose township is kept


@dataclass(frozen=True)
class Filed:
    """The answer to a filing: which case, and whether this call created it."""

    case_id: UUID
    number: str
    version: int
    created: bool
    case: Case = field(repr=False, compare=False)  # as saved (or found, for a retry)


class CaseService(Application[UUID]):
    """lianhu's write side. Construct with a rule set, a clock and a store environment."""

    name = "lianhu"

    def __init__(self, *, rules: RuleSet, clock: Clock, env: Mapping[str, str]) -> None:
        self.rules = rules
        self.clock = clock
        self._townships: dict[str, str | None] = {}  # household unit -> its township
        super().__init__(env=dict(env))
        self._filings: GroupCommit[_Filing, Filed] = GroupCommit(
            self._save_filings, self._save_filing, _Filing.filed
        )

    # -- wiring to the library ----------------------------------------------------------------

    def construct_env(self, name: str, env: Mapping[str, str] | None = None) -> Environment:
        # Settings are read once by engine.settings; the library must not read os.environ.
        return Environment(name, dict(env or {}))

    def construct_transcoder(self) -> Transcoder:
        return OrjsonTranscoder()

    def construct_mapper(self) -> Mapper[UUID]:
        return PydanticMapper(transcoder=self.construct_transcoder())

    def save(
        self,
        *objs: MutableOrImmutableAggregate[UUID] | DomainEventProtocol[UUID] | None,
        **kwargs: Any,
    ) -> list[Recording[UUID]]:
        """The library's save, collecting our aggregates' events without its runtime
        Protocol checks (a sixth of a filing's CPU time on Python 3.11)."""
        processing: ProcessingEvent[UUID] = ProcessingEvent()
        for obj in objs:
            if isinstance(obj, BaseAggregate):
                processing.events.extend(obj.collect_events())
                processing.aggregates[obj.id] = obj
            else:
                processing.collect_events(obj)
        processing.saved_kwargs.update(kwargs)
        recordings = self._record(processing)
        self._notify(recordings)
        return recordings

    # -- queries ------------------------------------------------------------------------------

    def get_case(self, case_id: UUID, *, version: int | None = None) -> Case:
        try:
            case: Case = self.repository.get(case_id, version=version)
        except AggregateNotFoundError:
            raise CaseNotFound(case_id) from None
        if not isinstance(case, Case):
            raise CaseNotFound(case_id)
        return case

    def find_case(self, ref: str) -> UUID:
        """A case id from its UUID or its short number."""
        try:
            return UUID(ref)
        except ValueError:
            pass
        try:
            number = normalise_number(ref)
        except ValueError:
            raise CaseNotFound(ref) from None
        try:
            index: CaseNumber = self.repository.get(number_index_id(number))
        except AggregateNotFoundError:
            raise CaseNotFound(ref) from None
        assert index.case_id is not None
        return index.case_id

    def history(self, case_id: UUID) -> list[CaseEvent]:
        events = [e for e in self.events.get(case_id) if isinstance(e, CaseEvent) and not e.INDEX]
        if not events:
            raise CaseNotFound(case_id)
        return events

    # -- filing -------------------------------------------------------------------------------

    def file_petition(self, cmd: c.FilePetition, *, idempotency_key: str | None = None) -> Filed:
        """Record and route a petition. With an idempotency key, a retry returns the same case.

        Concurrent callers share transactions (engine.group_commit); each still gets
        its own answer, and a conflict in one filing never fails the others.
        """
        now = self.clock.now()
        fingerprint = _fingerprint(cmd, idempotency_key)
        if idempotency_key is not None:
            case_id = uuid5(IDEMPOTENCY_NAMESPACE, idempotency_key)
            existing = self._existing_filing(case_id, fingerprint)
            if existing is not None:
                return existing
        else:
            case_id = new_case_id(now)
        case, index = self.prepare_filing(cmd, case_id, now, fingerprint)
        return self._filings.submit(
            _Filing(cmd, case_id, now, fingerprint, idempotency_key is not None, case, index)
        )

    def _save_filings(self, filings: Sequence[_Filing]) -> None:
        with _store_errors(filings[0].case_id):
            self._record_new(agg for f in filings for agg in (f.case, f.index))

    def _record_new(self, aggregates: Iterable[Case | CaseNumber]) -> None:
        """Record the pending events of new cases and number indexes in one transaction.

        What `save()` records, through the same mapper and recorder, without what only
        subscribers would read: the Recording objects `save()` hands to `_notify`, which
        CaseService does not override, and the repository cache, off unless configured
        (tests/engine/test_filing_fast_paths.py pins both). A tenth of a filing's CPU.
        With the cache on (the county simulator turns it on), filings go through save().
        """
        if self.repository.cache is not None:
            self.save(*aggregates)
            return
        events = [event for aggregate in aggregates for event in aggregate.collect_events()]
        self.recorder.insert_events([self.mapper.to_stored_event(e) for e in events])

    def _save_filing(self, filing: _Filing) -> Filed:
        case, index = filing.case, filing.index
        for attempt in range(NUMBER_ATTEMPTS):
            if attempt or not case.pending_events:
                case, index = self.prepare_filing(
                    filing.cmd, filing.case_id, filing.at, filing.fingerprint, attempt
                )
            try:
                with _store_errors(filing.case_id):
                    self._record_new((case, index))
            except VersionConflict:
                if filing.keyed:
                    existing = self._existing_filing(filing.case_id, filing.fingerprint)
                    if existing is not None:
                        return existing  # a concurrent retry of the same request won
                continue  # the number was taken: try the next one
            return Filed(case.id, case.number, case.version, created=True, case=case)
        raise StoreUnavailable(f"could not reserve a case number in {NUMBER_ATTEMPTS} attempts")

    def prepare_filing(
        self, cmd: c.FilePetition, case_id: UUID, now: datetime, fingerprint: str, attempt: int = 0
    ) -> tuple[Case, CaseNumber]:
        """Decide a filing without saving it: the new case (filed and routed) and its number."""
        raised_at = cmd.raised_at or now
        if raised_at > now + CLOCK_SKEW:
            raise InvalidPetition(
                f"raised_at {raised_at.isoformat()} is in the future (now {now.isoformat()})",
                field="raised_at",
            )
        self._check_household(cmd.household_unit)
        self._check_category(cmd.category)
        decision = evaluate_fields(
            self.rules,
            category=cmd.category,
            urgency=cmd.urgency,
            text=f"{cmd.title}\n{cmd.description}",
            unit=cmd.household_unit,
        )
        respond_due, resolve_due = due_times(self.rules, decision.handler_level, cmd.urgency, now)
        dispatcher = self._township(cmd.household_unit) or decision.handler
        number = case_number(case_id, now, attempt)
        case = Case.file(
            case_id=case_id,
            at=now,
            number=number,
            household_unit=cmd.household_unit,
            channel=cmd.channel.value,
            category=cmd.category,
            urgency=cmd.urgency,
            title=cmd.title,
            description=cmd.description,
            location=cmd.location,
            reporter=cmd.reporter,
            raised_at=raised_at,
            fingerprint=fingerprint,
        )
        case.route(
            at=now,
            rule_id=decision.rule_id,
            rule_set_hash=decision.rule_set_hash,
            handler=decision.handler,
            handler_level=decision.handler_level,
            co_handlers=decision.co_handlers,
            ladder=decision.ladder,
            dispatcher=dispatcher,
            respond_due=respond_due,
            resolve_due=resolve_due,
        )
        return case, CaseNumber.reserve(number, case_id, now)

    def _township(self, household: str) -> str | None:
        """The township above a (checked) household unit, or None; kept per household,
        as the rule set never changes under a service."""
        try:
            return self._townships[household]
        except KeyError:
            township = self.rules.jurisdiction.ancestor_at(household, Level.TOWNSHIP)
            code = township.code if township is not None else None
            if len(self._townships) < TOWNSHIP_MEMO_LIMIT:
                self._townships[household] = code
            return code

    def _existing_filing(self, case_id: UUID, fingerprint: str) -> Filed | None:
        try:
            case = self.get_case(case_id)
        except CaseNotFound:
            return None
        if case.fingerprint != fingerprint:
            raise IdempotencyKeyReused(
                f"Idempotency-Key already used for case {case.number} with a different petition"
            )
        return Filed(case.id, case.number, case.version, created=False, case=case)

    # -- acting on a case -----------------------------------------------------------------------

    def accept_case(
        self, case_id: UUID, cmd: c.AcceptCase, *, expected_version: int | None = None
    ) -> Case:
        return self._act(
            case_id,
            expected_version,
            lambda case, now: case.accept(at=now, unit=cmd.unit, actor=cmd.actor),
        )

    def return_case(
        self, case_id: UUID, cmd: c.ReturnCase, *, expected_version: int | None = None
    ) -> Case:
        def decide(case: Case, now: datetime) -> None:
            case.return_(
                at=now,
                unit=cmd.unit,
                actor=cmd.actor,
                reason=cmd.reason,
                note=cmd.note,
                dispatcher_level=self._level(case.dispatcher),
            )
            self._supervise_if_transferred(case, now)

        return self._act(case_id, expected_version, decide)

    def refer_case(
        self, case_id: UUID, cmd: c.ReferCase, *, expected_version: int | None = None
    ) -> Case:
        to_level = self._level(cmd.to_unit, field="to_unit")
        if cmd.category is not None:
            self._check_category(cmd.category)

        def decide(case: Case, now: datetime) -> None:
            urgency = cmd.urgency or case.urgency
            due = deadlines_for(self.rules, to_level, urgency, now)
            case.refer(
                at=now,
                from_unit=cmd.unit,
                to_unit=cmd.to_unit,
                to_level=to_level,
                actor=cmd.actor,
                summary=cmd.summary,
                category=cmd.category or case.category,
                urgency=urgency,
                respond_due=due.respond_due,
                resolve_due=due.resolve_due,
            )
            self._supervise_if_transferred(case, now)

        return self._act(case_id, expected_version, decide)

    def escalate_case(
        self, case_id: UUID, cmd: c.EscalateCase, *, expected_version: int | None = None
    ) -> Case:
        def decide(case: Case, now: datetime) -> None:
            if cmd.to_unit is None and not case.ladder:
                raise IllegalTransition(
                    case.id,
                    "escalate",
                    case.status.value,
                    "its escalation ladder is exhausted",
                    hint="Refer the case to a unit that can handle it.",
                )
            to_unit = cmd.to_unit or case.ladder[0]
            to_level = self._level(to_unit, field="to_unit")
            due = deadlines_for(self.rules, to_level, case.urgency, now)
            case.escalate(
                at=now,
                to_unit=to_unit,
                to_level=to_level,
                trigger=cmd.trigger,
                actor=cmd.actor,
                summary=cmd.summary,
                respond_due=due.respond_due,
                resolve_due=due.resolve_due,
            )

        return self._act(case_id, expected_version, decide)

    def extend_deadline(
        self, case_id: UUID, cmd: c.ExtendDeadline, *, expected_version: int | None = None
    ) -> Case:
        return self._act(
            case_id,
            expected_version,
            lambda case, now: case.extend_deadline(
                at=now, kind=cmd.kind, new_due=cmd.new_due, approver=cmd.approver, reason=cmd.reason
            ),
        )

    def suspend_case(
        self, case_id: UUID, cmd: c.SuspendCase, *, expected_version: int | None = None
    ) -> Case:
        return self._act(
            case_id,
            expected_version,
            lambda case, now: case.suspend(at=now, actor=cmd.actor, reason=cmd.reason),
        )

    def resume_case(
        self, case_id: UUID, cmd: c.ResumeCase, *, expected_version: int | None = None
    ) -> Case:
        return self._act(
            case_id,
            expected_version,
            lambda case, now: case.resume(at=now, actor=cmd.actor, reason=cmd.reason),
        )

    def resolve_case(
        self, case_id: UUID, cmd: c.ResolveCase, *, expected_version: int | None = None
    ) -> Case:
        return self._act(
            case_id,
            expected_version,
            lambda case, now: case.resolve(
                at=now,
                unit=cmd.unit,
                actor=cmd.actor,
                outcome=cmd.outcome,
                resolution=cmd.resolution,
            ),
        )

    def reopen_case(
        self, case_id: UUID, cmd: c.ReopenCase, *, expected_version: int | None = None
    ) -> Case:
        def decide(case: Case, now: datetime) -> None:
            due = deadlines_for(self.rules, case.level, case.urgency, now)
            case.reopen(at=now, actor=cmd.actor, reason=cmd.reason, resolve_due=due.resolve_due)

        return self._act(case_id, expected_version, decide)

    def rate_case(
        self, case_id: UUID, cmd: c.RateCase, *, expected_version: int | None = None
    ) -> Case:
        return self._act(
            case_id,
            expected_version,
            lambda case, now: case.rate(
                at=now, score=cmd.score, request_matched=cmd.request_matched, comment=cmd.comment
            ),
        )

    def close_case(
        self, case_id: UUID, cmd: c.CloseCase, *, expected_version: int | None = None
    ) -> Case:
        return self._act(
            case_id,
            expected_version,
            lambda case, now: case.close(at=now, reason=CloseReason(cmd.reason), actor=cmd.actor),
        )

    def withdraw_case(
        self, case_id: UUID, cmd: c.WithdrawCase, *, expected_version: int | None = None
    ) -> Case:
        return self._act(
            case_id,
            expected_version,
            lambda case, now: case.close(
                at=now, reason=CloseReason.WITHDRAWN, actor=cmd.actor, note=cmd.reason
            ),
        )

    def warn_deadline(self, case_id: UUID, kind: DeadlineKind, due: datetime) -> bool:
        """Record a yellow light for the deadline due at `due`, if it is still running.

        Idempotent, for the SLA timer: False (nothing recorded) when the case was
        already warned for it, or the deadline was met, moved or ended meanwhile.
        """
        return self._fire(case_id, lambda case, now: case.warn(at=now, kind=kind, due=due))

    def breach_deadline(self, case_id: UUID, kind: DeadlineKind, due: datetime) -> bool:
        """Record a red light for the deadline due at `due`; idempotent like `warn_deadline`."""
        return self._fire(case_id, lambda case, now: case.breach(at=now, kind=kind, due=due))

    def breach_and_escalate(self, case_id: UUID, kind: DeadlineKind, due: datetime) -> bool:
        """The timer's red light: a breach, and for a resolve deadline one rung up the ladder.

        The breach and the escalation are one transaction (both events in one save), so a
        crash between them cannot lose the escalation. With the ladder exhausted the case
        stays put, under supervision (督办); a breached respond deadline never moves it.
        Idempotent like `breach_deadline`.
        """
        return self._fire(case_id, lambda case, now: self._breach(case, now, kind, due))

    def fire_deadlines(self, lights: Sequence[DueDeadline]) -> int:
        """Fire due lights of many cases in one transaction (the timer's group commit).

        Each case is loaded once and decides each of its lights in order exactly as
        `warn_deadline` / `breach_and_escalate` would. If any case changed meanwhile (a
        command or another timer), the batch is dropped and every case is fired on its
        own, deciding again on its new state. Returns how many lights were recorded.
        """
        now = self.clock.now()
        by_case: dict[UUID, list[DueDeadline]] = {}
        for light in lights:
            by_case.setdefault(light.case_id, []).append(light)
        changed: list[Case] = []
        recorded = 0
        for case_id, own in by_case.items():
            try:
                case = self.get_case(case_id)
            except CaseNotFound:
                continue
            fired = sum(self._light(case, now, light) for light in own)
            if fired:
                changed.append(case)
                recorded += fired
        if not changed:
            return 0
        try:
            with _store_errors(changed[0].id):
                self.save(*changed)
        except VersionConflict:
            recorded = sum(self._fire_one(light) for case in changed for light in by_case[case.id])
        return recorded

    def _fire_one(self, light: DueDeadline) -> bool:
        return self._fire(light.case_id, lambda case, now: self._light(case, now, light))

    def _light(self, case: Case, now: datetime, light: DueDeadline) -> bool:
        if light.light is Light.WARN:
            return case.warn(at=now, kind=light.kind, due=light.due)
        return self._breach(case, now, light.kind, light.due)

    def _breach(self, case: Case, now: datetime, kind: DeadlineKind, due: datetime) -> bool:
        if now < due or not case.breach(at=now, kind=kind, due=due):
            return False  # not due on this clock yet, or already breached / met / moved
        if kind is DeadlineKind.RESOLVE:
            self._escalate_one_rung(case, now, EscalationTrigger.SLA_BREACH)
        return True

    def _supervise_if_transferred(self, case: Case, now: datetime) -> None:
        """The third return or referral escalates the case, in the same transaction."""
        if case.returns + case.referrals == TRANSFERS_BEFORE_SUPERVISION:
            self._escalate_one_rung(case, now, EscalationTrigger.REPEATED_TRANSFER)

    def _escalate_one_rung(self, case: Case, now: datetime, trigger: EscalationTrigger) -> bool:
        """Escalate to the next rung of the ladder above the holder; False if none is left."""
        rung = next((u for u in case.ladder if u != case.unit), None)
        if rung is None:
            return False
        level = self._level(rung)
        due = deadlines_for(self.rules, level, case.urgency, now)
        case.escalate(
            at=now,
            to_unit=rung,
            to_level=level,
            trigger=trigger,
            actor=TIMER_ACTOR if trigger is EscalationTrigger.SLA_BREACH else "system",
            summary="",
            respond_due=due.respond_due,
            resolve_due=due.resolve_due,
        )
        return True

    def _fire(self, case_id: UUID, decide: Callable[[Case, datetime], bool]) -> bool:
        case = self.get_case(case_id)
        if not decide(case, self.clock.now()):
            return False
        try:
            with _store_errors(case_id):
                self.save(case)
        except VersionConflict:
            # another timer or a command got there first: decide again on the new state
            return self._fire(case_id, decide)
        return True

    # -- machinery --------------------------------------------------------------------------------

    def _act(
        self, case_id: UUID, expected_version: int | None, decide: Callable[[Case, datetime], Any]
    ) -> Case:
        case = self.get_case(case_id)
        if expected_version is not None and case.version != expected_version:
            raise VersionConflict(case_id, expected_version, case.version)
        decide(case, self.clock.now())
        with _store_errors(case_id, expected_version):
            self.save(case)
        return case

    def _level(self, unit: str, *, field: str = "unit") -> Level:
        try:
            return self.rules.jurisdiction.unit(unit).level
        except RuleSetError:
            raise UnknownReference(f"unknown unit {unit!r}", field=field) from None

    def _check_household(self, unit: str) -> None:
        level = self._level(unit, field="household_unit")
        if level is not Level.HOUSEHOLD:
            raise InvalidPetition(
                f"{unit} is a {level.value}, not a household unit",
                field="household_unit",
                hint="File it at the resident's household unit (a code like 510123104201-03-07).",
            )

    def _check_category(self, category: str) -> None:
        if category not in self.rules.categories:
            known = ", ".join(sorted(self.rules.categories))
            raise UnknownReference(
                f"unknown category {category!r}",
                field="category",
                hint=f"Use one of: {known}.",
            )


@dataclass(frozen=True)
class _Filing:
    """A decided filing waiting for its transaction."""

    cmd: c.FilePetition
    case_id: UUID
    at: datetime
    fingerprint: str
    keyed: bool
    case: Case
    index: CaseNumber

    def filed(self) -> Filed:
        return Filed(
            self.case_id, self.case.number, self.case.version, created=True, case=self.case
        )


def _fingerprint(cmd: c.FilePetition, idempotency_key: str | None) -> str:
    """Recognises a retried filing. Only keyed filings need one.

    The reporter's personal data enters only through a hash keyed by the
    idempotency key, which is never stored, so the stored fingerprint cannot be
    used to guess a masked phone number from the rest of the petition.
    """
    if idempotency_key is None:
        return ""
    public = cmd.model_dump_json(exclude={"reporter"}).encode()
    personal = hmac.new(idempotency_key.encode(), cmd.reporter.model_dump_json().encode(), "sha256")
    return hashlib.sha256(public + personal.digest()).hexdigest()[:32]


@contextmanager
def _store_errors(case_id: UUID, expected_version: int | None = None) -> Iterator[None]:
    """Translate the library's storage errors into the engine's error tree."""
    try:
        yield
    except IntegrityError:
        raise VersionConflict(case_id, expected_version, None) from None
    except PersistenceError as e:
        raise StoreUnavailable(f"the event store refused the write: {e}") from e
