"""Distortion (DESIGN §7): how a case's words change as it is passed on.

A hop is a CaseReferred, or a CaseEscalated carrying a summary; its depth is the
event's hop number. It is distorted when similarity(original description,
summary at that hop) < 0.5, or the category as passed on differs from the one
filed, or the urgency as passed on is lower than the one filed (both compared
with the resident's filing, not with the previous hop: the question is whether
the request is still what was asked).

Facts: `hop` (value = similarity × 10⁶, flag = distorted), `drift` (flag =
category changed), `downgrade` (flag = urgency lowered), `match` (one per rated
case, flag = request_matched; a new rating replaces the previous one). The
chain table keeps, per case, the resident's words (hop 0) and every summary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from engine.events import CaseEscalated, CaseEvent, CaseReferred, PetitionFiled, SatisfactionRated
from engine.viewstore import ViewCursor
from projections.fold import (
    area_of,
    case_key,
    changed,
    epoch,
)
from projections.measures import (
    Fact,
    FactModel,
    fact_from,
)
from projections.similarity import is_distorted, similarity
from routing_rules import Urgency

SCALE = 1_000_000  # similarity is stored as an integer number of millionths

CHAIN_DDL = """CREATE TABLE IF NOT EXISTS {t} (
    case_id TEXT NOT NULL, hop BIGINT NOT NULL, at DOUBLE PRECISION NOT NULL,
    via TEXT NOT NULL, unit TEXT NOT NULL, text TEXT NOT NULL, category TEXT NOT NULL,
    urgency TEXT NOT NULL, similarity DOUBLE PRECISION NOT NULL, distorted BIGINT NOT NULL,
    PRIMARY KEY (case_id, hop))"""


@dataclass(frozen=True)
class Retelling:
    """A case's original request, and what it is now passed on as."""

    description: str
    category0: str
    urgency0: str
    category: str
    urgency: str
    unit: str
    rating: dict[str, Any] | None = None  # the standing `match` fact

    @classmethod
    def decode(cls, data: dict[str, Any]) -> Retelling:
        return cls(**data)


@dataclass(frozen=True)
class ChainLink:
    case_id: str
    hop: int
    at: float
    via: str
    unit: str
    text: str
    category: str
    urgency: str
    similarity: float
    distorted: int


def _hop(
    s: Retelling, event: CaseReferred | CaseEscalated, summary: str, level: str
) -> tuple[list[Fact], ChainLink]:
    t = epoch(event.timestamp)
    sim = similarity(s.description, summary)
    drifted = s.category != s.category0
    lowered = Urgency(s.urgency).rank < Urgency(s.urgency0).rank
    distorted = int(is_distorted(sim, category_changed=drifted, urgency_lowered=lowered))
    base = Fact(
        kind="hop", case_id=case_key(event.originator_id), at=t, recorded=t, unit=event.to_unit,
        area=area_of(event.to_unit), level=level, category=s.category0, urgency=s.urgency0,
        depth=event.hop, value=round(sim * SCALE), flag=distorted,
    )  # fmt: skip
    facts = [
        base,
        changed(base, kind="drift", value=0, flag=int(drifted)),
        changed(base, kind="downgrade", value=0, flag=int(lowered)),
    ]
    via = "referred" if isinstance(event, CaseReferred) else "escalated"
    link = ChainLink(
        base.case_id,
        event.hop,
        t,
        via,
        event.to_unit,
        summary,
        s.category,
        s.urgency,
        sim,
        distorted,
    )
    return facts, link


def evolve(s: Retelling | None, event: CaseEvent) -> tuple[Retelling | None, list[Any]]:
    """The pure fold: a case's original words and current retelling; facts and chain links."""
    if isinstance(event, PetitionFiled):
        c, u = event.category, event.urgency.value
        state = Retelling(event.description, c, u, c, u, event.household_unit)
        t = epoch(event.timestamp)
        origin = ChainLink(
            case_key(event.originator_id), 0, t, "filed", event.household_unit, event.description,
            c, u, 1.0, 0,
        )  # fmt: skip
        return state, [origin]
    if s is None:
        return None, []
    match event:
        case CaseReferred():
            s = changed(s, category=event.category, urgency=event.urgency.value, unit=event.to_unit)
            facts, link = _hop(s, event, event.summary, event.to_level.value)
            return s, [*facts, link]
        case CaseEscalated():
            s = changed(s, unit=event.to_unit)
            if not event.summary:
                return s, []
            facts, link = _hop(s, event, event.summary, event.to_level.value)
            return s, [*facts, link]
        case SatisfactionRated():
            t = epoch(event.timestamp)
            out: list[Any] = [fact_from(s.rating).cancelled(t)] if s.rating else []
            fact = Fact(
                kind="match", case_id=case_key(event.originator_id), at=t, recorded=t, unit=s.unit,
                area=area_of(s.unit), level="", category=s.category0, urgency=s.urgency0,
                flag=int(event.request_matched),
            )  # fmt: skip
            return changed(s, rating=fact.__dict__.copy()), [*out, fact]
        case _:
            return s, []


class Distortion(FactModel[Retelling]):
    """Distortion per hop depth, reporting accuracy, drift, downgrades, request match."""

    base_name: ClassVar[str] = "distortion"
    name: ClassVar[str] = "distortion.g1"
    prefix: ClassVar[str] = "ds"
    state_type: ClassVar[Any] = Retelling
    extra_tables: ClassVar[dict[str, str]] = {"ds_chain": CHAIN_DDL}

    def evolve(
        self, state: Retelling | None, event: CaseEvent
    ) -> tuple[Retelling | None, list[Any]]:
        return evolve(state, event)

    def write(self, cur: ViewCursor, effects: list[Any]) -> None:
        super().write(cur, effects)
        links = [e for e in effects if isinstance(e, ChainLink)]
        cur.executemany(
            f"INSERT INTO {self.t('ds_chain')} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [tuple(link.__dict__.values()) for link in links],
        )

    def chain(self, cur: ViewCursor, case_id: str, as_of: float | None = None) -> list[ChainLink]:
        rows = cur.execute(
            f"SELECT * FROM {self.t('ds_chain')} WHERE case_id = ? AND at <= ? ORDER BY hop",
            (case_id, as_of if as_of is not None else 1e15),
        ).fetchall()
        return [ChainLink(*r) for r in rows]
