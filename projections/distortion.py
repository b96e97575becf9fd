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

from typing import Any, ClassVar, NamedTuple

from engine.viewstore import ViewCursor
from projections.fold import Rec, area_of
from projections.measures import FactModel, FactRow, cancelled, fact, legacy_fact
from projections.similarity import is_distorted, similarity
from routing_rules import Urgency

SCALE = 1_000_000  # similarity is stored as an integer number of millionths
RANK = {u.value: u.rank for u in Urgency}

CHAIN_DDL = """CREATE TABLE IF NOT EXISTS {t} (
    case_id TEXT NOT NULL, hop BIGINT NOT NULL, at DOUBLE PRECISION NOT NULL,
    via TEXT NOT NULL, unit TEXT NOT NULL, text TEXT NOT NULL, category TEXT NOT NULL,
    urgency TEXT NOT NULL, similarity DOUBLE PRECISION NOT NULL, distorted BIGINT NOT NULL,
    PRIMARY KEY (case_id, hop))"""

# A case's original request, and what it is now passed on as, a tuple: (description,
# category0, urgency0, category, urgency, unit, rating — the standing `match` fact or None)
Retelling = tuple[Any, ...]
DESCRIPTION, CATEGORY0, URGENCY0, CATEGORY, URGENCY, UNIT, RATING = range(7)


class ChainLink(NamedTuple):
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


def _hop(s: Retelling, rec: Rec, via: str) -> list[Any]:
    """The facts and the chain link of a hop (the case as passed on is `s`)."""
    d, t = rec.d, rec.t
    summary, to_unit = d["summary"], d["to_unit"]
    sim = similarity(s[DESCRIPTION], summary)
    drifted = s[CATEGORY] != s[CATEGORY0]
    lowered = RANK[s[URGENCY]] < RANK[s[URGENCY0]]
    distorted = int(is_distorted(sim, category_changed=drifted, urgency_lowered=lowered))
    area, level, depth = area_of(to_unit), d["to_level"], d["hop"]
    c0, u0 = s[CATEGORY0], s[URGENCY0]
    return [
        fact("hop", rec.key, t, to_unit, area, level, c0, u0, depth=depth,
             value=round(sim * SCALE), flag=distorted),
        fact("drift", rec.key, t, to_unit, area, level, c0, u0, depth=depth, flag=int(drifted)),
        fact("downgrade", rec.key, t, to_unit, area, level, c0, u0, depth=depth,
             flag=int(lowered)),
        ChainLink(rec.key, depth, t, via, to_unit, summary, s[CATEGORY], s[URGENCY], sim,
                  distorted),
    ]  # fmt: skip


def evolve(s: Retelling | None, rec: Rec) -> tuple[Retelling | None, list[Any]]:
    """The pure fold: a case's original words and current retelling; facts and chain links."""
    kind, d = rec.type, rec.d
    if kind == "PetitionFiled":
        c, u, unit = d["category"], d["urgency"], d["household_unit"]
        origin = ChainLink(rec.key, 0, rec.t, "filed", unit, d["description"], c, u, 1.0, 0)
        return (d["description"], c, u, c, u, unit, None), [origin]
    if s is None:
        return None, []
    if kind == "CaseReferred":
        s = (*s[:3], d["category"], d["urgency"], d["to_unit"], s[RATING])
        return s, _hop(s, rec, "referred")
    if kind == "CaseEscalated":
        s = (*s[:5], d["to_unit"], s[RATING])
        return s, _hop(s, rec, "escalated") if d["summary"] else []
    if kind == "SatisfactionRated":
        unit = s[UNIT]
        out: list[Any] = [cancelled(s[RATING], rec.t)] if s[RATING] else []
        matched: FactRow = fact(
            "match", rec.key, rec.t, unit, area_of(unit), "", s[CATEGORY0], s[URGENCY0],
            flag=int(d["request_matched"]),
        )  # fmt: skip
        return (*s[:6], matched), [*out, matched]
    return s, []


class Distortion(FactModel[Retelling]):
    """Distortion per hop depth, reporting accuracy, drift, downgrades, request match."""

    base_name: ClassVar[str] = "distortion"
    name: ClassVar[str] = "distortion.g1"
    prefix: ClassVar[str] = "ds"
    kinds: ClassVar[tuple[str, ...]] = ("hop", "drift", "downgrade", "match")
    extra_tables: ClassVar[dict[str, str]] = {"ds_chain": CHAIN_DDL}
    marginal_dims: ClassVar[tuple[str, ...]] = ("level", "area", "category", "urgency", "depth")

    @staticmethod
    def decode(data: Any) -> Retelling:
        if isinstance(data, dict):  # stored before states were arrays
            data = [*list(data.values())[:6], legacy_fact(data["rating"])]
        return tuple(data)

    evolve = staticmethod(evolve)  # the pure fold itself: one call per event, not two
    reads: ClassVar[frozenset[str] | None] = frozenset(
        {"PetitionFiled", "CaseReferred", "CaseEscalated", "SatisfactionRated"}
    )

    def write(self, cur: ViewCursor, effects: list[Any]) -> None:
        super().write(cur, effects)
        links = [e for e in effects if type(e) is ChainLink]
        cur.executemany(
            f"INSERT INTO {self.t('ds_chain')} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", links
        )

    def chain(self, cur: ViewCursor, case_id: str, as_of: float | None = None) -> list[ChainLink]:
        rows = cur.execute(
            f"SELECT * FROM {self.t('ds_chain')} WHERE case_id = ? AND at <= ? ORDER BY hop",
            (case_id, as_of if as_of is not None else 1e15),
        ).fetchall()
        return [ChainLink(*r) for r in rows]
