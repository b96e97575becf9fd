"""Random legal case histories, made by driving the real CaseService with the fake clock.

Each step picks a case and a command at random and tries it; the aggregate refuses
illegal ones (nothing recorded), so what lands in the log is a legal history.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from datetime import timedelta
from uuid import UUID

from engine import commands as c
from engine.clock import FakeClock
from engine.errors import CaseError
from engine.service import CaseService
from engine.values import DeadlineKind, Outcome, ReturnReason
from routing_rules import Level, Urgency

TEXTS = [
    ("增设社区健身器材", "service_demand"),
    ("小区电梯故障，请尽快维修", "infrastructure"),
    ("楼上邻居每晚装修噪音扰民", "neighbour_dispute"),
    ("物业费上涨不合理", "property_dispute"),
    ("异地就医报销流程咨询", "policy_question"),
    ("垃圾分类推进缓慢，垃圾桶满溢", "environment"),
    ("楼道违建占用消防通道", "illegal_construction"),
]
RETELLINGS = ["优化绿化景观", "请处理群众诉求", "", "电梯维修"]


def _units(service: CaseService) -> tuple[list[str], list[str]]:
    units = list(service.rules.jurisdiction.units())
    households = [u.code for u in units if u.level is Level.HOUSEHOLD]
    targets = [u.code for u in units if u.level in (Level.VILLAGE, Level.TOWNSHIP, Level.GROUP)]
    targets += [u.code for u in units if u.level is Level.DEPARTMENT]
    return households, targets


def drive(
    service: CaseService, clock: FakeClock, seed: int, *, cases: int = 8, steps: int = 60
) -> list[UUID]:
    """File `cases` petitions and apply `steps` random commands; returns the case ids."""
    rng = random.Random(seed)
    households, targets = _units(service)
    categories = set(service.rules.categories)
    ids: list[UUID] = []
    for _ in range(cases):
        text, category = rng.choice(TEXTS)
        if category not in categories:
            category = rng.choice(sorted(categories))
        clock.advance(minutes=rng.randint(1, 600))
        back = rng.choice([0, 0, 0, 2, 30, 60])
        raised = clock.now().replace(microsecond=0) - timedelta(hours=back)
        filed = service.file_petition(
            c.FilePetition(
                household_unit=rng.choice(households),
                category=category,
                urgency=rng.choice(list(Urgency)),
                title=text[:8],
                description=text,
                raised_at=raised,
            )
        )
        ids.append(filed.case_id)
    for _ in range(steps):
        clock.advance(minutes=rng.choice([1, 10, 30, 60, 180, 600, 1500]))
        case_id = rng.choice(ids)
        case = service.get_case(case_id)
        action = _action(rng, service, case_id, case.unit, targets, categories, case.description)
        with contextlib.suppress(CaseError):
            action()
    return ids


def _action(
    rng: random.Random,
    service: CaseService,
    case_id: UUID,
    unit: str,
    targets: list[str],
    categories: set[str],
    description: str,
) -> Callable[[], object]:
    case = service.get_case(case_id)
    pick = rng.random()
    if pick < 0.25:
        return lambda: service.accept_case(case_id, c.AcceptCase(unit=unit, actor="a"))
    if pick < 0.38:
        summary = rng.choice([description, description + "。", *RETELLINGS]) or "转办"
        return lambda: service.refer_case(
            case_id,
            c.ReferCase(
                unit=unit,
                to_unit=rng.choice(targets),
                actor="a",
                summary=summary,
                category=rng.choice([None, None, rng.choice(sorted(categories))]),
                urgency=rng.choice([None, None, *Urgency]),
            ),
        )
    if pick < 0.45:
        summary = rng.choice(["", description, *RETELLINGS])
        return lambda: service.escalate_case(case_id, c.EscalateCase(actor="a", summary=summary))
    if pick < 0.50:
        reason = rng.choice(list(ReturnReason))
        return lambda: service.return_case(
            case_id, c.ReturnCase(unit=unit, actor="a", reason=reason)
        )
    if pick < 0.65:
        outcome = rng.choice(list(Outcome))
        return lambda: service.resolve_case(
            case_id, c.ResolveCase(unit=unit, actor="a", outcome=outcome, resolution="done")
        )
    if pick < 0.70:
        return lambda: service.reopen_case(case_id, c.ReopenCase(actor="r", reason="no"))
    if pick < 0.78:
        score, matched = rng.randint(1, 5), rng.random() < 0.7
        return lambda: service.rate_case(case_id, c.RateCase(score=score, request_matched=matched))
    if pick < 0.83:
        return lambda: service.close_case(case_id, c.CloseCase(actor="a", reason="auto"))
    if pick < 0.87:
        return lambda: service.suspend_case(case_id, c.SuspendCase(actor="a", reason="wait"))
    if pick < 0.91:
        return lambda: service.resume_case(case_id, c.ResumeCase(actor="a"))
    if pick < 0.95 and case.resolve_due is not None:
        later = case.resolve_due + timedelta(hours=24)
        return lambda: service.extend_deadline(
            case_id, c.ExtendDeadline(new_due=later, approver="z", reason="x")
        )
    kind = rng.choice(list(DeadlineKind))
    due = case.due(kind)
    if due is None or due > service.clock.now():
        return lambda: None
    fired = due
    if pick < 0.97:
        return lambda: service.warn_deadline(case_id, kind, fired)
    return lambda: service.breach_deadline(case_id, kind, fired)
