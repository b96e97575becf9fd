"""How a request changes as it is retold up the chain (DOMAIN §1, §3 step 3).

Every hand-over re-tells the case in the words of whoever passes it on. A retelling
works on the previous hop's text, so errors accumulate: a dropped clause stays
dropped, a swapped object stays swapped, a generalised request stays generic. Per hop,
each of these happens with its own probability (`RetellModel`):

- **drop** (`p_drop`): a detail clause is lost (never the opening that places the
  resident, never the request itself). One lost detail keeps the request recognisable
  (similarity ≥ 0.5 to the resident's words); two or three lost details, on a short
  petition, may not.
- **generalise** (`p_generalise`): the specific request is replaced by a generic phrase
  of its category, keeping only the place: "幸福小区居民对小区环境有意见，希望改善".
- **swap** (`p_swap`): the subject is swapped for a related object and the request is
  rebuilt around it; the details, which concern the old object, are lost. The plan's
  example: "增设社区健身器材" arrives as "建议优化绿化景观".
- **category** (`p_category`): the case is filed under another plausible category
  (a lift fault as a property dispute, a leak as a property matter …).
- **downgrade** (`p_downgrade`): urgency is lowered one step (never below normal).
- **reword** (`p_reword`): light rewording that does not change the request: a relay
  prefix ("据居民反映，"), other punctuation, 的 and a final 了 dropped, a few synonyms
  (尽快 → 尽早). A reworded-only retelling scores ≥ 0.7 against the original.

Generalise, swap and drop exclude one another within a hop (in that order of
precedence); category, downgrade and reword combine with any of them.

lianhu measures distortion (docs/metrics.md, "Distorted hop") against the resident's
filing: similarity(original description, text) < 0.5, or category changed, or urgency
lowered. `DEFAULT_RELAY` is calibrated so that about 30 % of requests are distorted
after three retellings (the plan's baseline: "after 3 levels 30 % distortion"),
measured with the real similarity function over 20,000 drafts of the default
category mix (`python -m engine.sim.retell` prints this table):

    p_drop 0.30, p_generalise 0.03, p_swap 0.04, p_category 0.03,
    p_downgrade 0.15, p_reword 0.8

    depth  distorted  mean similarity  category changed  urgency lowered
        1      10.8%             0.88              3.0%             1.6%
        2      20.7%             0.78              5.8%             3.1%
        3      29.9%             0.69              8.4%             4.3%

Most of it is generalisation, swaps, category changes and downgrades (each ~1-4 % a
hop, downgrades only for the ~11 % of petitions filed urgent or emergency); lost
details alone distort ~1 % of requests by depth 3.

Pure and deterministic: every choice is drawn from the `random.Random` passed in.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from engine.sim.texts import Draft, join_clauses
from engine.sim.texts import drafts as sample_drafts
from projections.similarity import is_distorted, similarity
from routing_rules import Urgency


@dataclass(frozen=True)
class RetellModel:
    """Per-hop probabilities of what a relay does to a request.

    p_drop: a detail clause is lost (a detail forgotten).
    p_generalise: the specific request becomes a generic phrase of its category
        ("居民对小区环境有意见，希望改善"): the relay remembers the gist, not the ask.
    p_swap: the subject is swapped for a related object and the request rebuilt around
        it (the plan's "增设社区健身器材" → "优化绿化景观").
    p_category: the relay files it under another plausible category.
    p_downgrade: the relay lowers its urgency one step (never below normal).
    p_reword: light rewording that keeps the request (prefix, punctuation, 的/了,
        synonyms).
    """

    p_drop: float = 0.0
    p_generalise: float = 0.0
    p_swap: float = 0.0
    p_category: float = 0.0
    p_downgrade: float = 0.0
    p_reword: float = 0.0

    def __post_init__(self) -> None:
        for name in ("p_drop", "p_generalise", "p_swap", "p_category", "p_downgrade", "p_reword"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability, got {value}")


DEFAULT_RELAY = RetellModel(
    p_drop=0.30,
    p_generalise=0.03,
    p_swap=0.04,
    p_category=0.03,
    p_downgrade=0.15,
    p_reword=0.8,
)
FAITHFUL = RetellModel(p_reword=1.0)  # a relay that only rewords


@dataclass(frozen=True)
class Retelling:
    """The case as passed on at one hop: its text, category, urgency and what changed."""

    text: str
    category: str
    urgency: Urgency
    ops: tuple[str, ...]


# Categories a relay plausibly files a case under instead.
PLAUSIBLE: dict[str, tuple[str, ...]] = {
    "neighbour_dispute": ("property_dispute", "environment_sanitation", "other"),
    "property_dispute": ("neighbour_dispute", "infrastructure", "public_service"),
    "public_service": ("infrastructure", "policy_question", "service_demand"),
    "policy_question": ("public_service", "service_demand", "other"),
    "hazard_safety": ("infrastructure", "emergency", "property_dispute"),
    "infrastructure": ("property_dispute", "public_service", "hazard_safety"),
    "environment_sanitation": ("property_dispute", "public_service", "hazard_safety"),
    "illegal_construction": ("neighbour_dispute", "property_dispute", "hazard_safety"),
    "service_demand": ("public_service", "policy_question", "infrastructure"),
    "emergency": ("hazard_safety", "infrastructure"),
    "other": ("public_service", "neighbour_dispute"),
}

# What a generalising relay says instead of the request (after "<place>居民").
GENERIC: dict[str, str] = {
    "neighbour_dispute": "反映邻里之间有矛盾，希望协调",
    "property_dispute": "对物业服务有意见，希望改进",
    "public_service": "对公共服务有意见，希望改善",
    "policy_question": "有政策方面问题想咨询",
    "hazard_safety": "反映存在安全隐患，希望关注",
    "infrastructure": "对基础设施有意见，希望改善",
    "environment_sanitation": "对小区环境有意见，希望改善",
    "illegal_construction": "反映周边有乱搭乱建现象",
    "service_demand": "希望多提供一些便民服务",
    "emergency": "反映有突发情况，请关注",
    "other": "反映一些问题，希望处理",
}

# How a swapping relay rebuilds the request around the related object.
FRAMES: dict[str, tuple[str, ...]] = {
    "neighbour_dispute": ("希望协调{obj}问题", "反映{obj}方面矛盾"),
    "property_dispute": ("对{obj}有意见", "希望物业改进{obj}"),
    "public_service": ("希望改善{obj}", "反映{obj}方面问题"),
    "policy_question": ("想咨询{obj}政策", "询问{obj}怎么办理"),
    "hazard_safety": ("反映{obj}存在隐患", "希望检查{obj}"),
    "infrastructure": ("希望维修{obj}", "建议改造{obj}"),
    "environment_sanitation": ("希望整治{obj}", "反映{obj}问题"),
    "illegal_construction": ("反映{obj}问题", "希望处理{obj}"),
    "service_demand": ("建议优化{obj}", "希望增加{obj}"),
    "emergency": ("反映{obj}情况", "请关注{obj}"),
}

PREFIXES = ("据居民反映，", "居民反映：", "经联户长了解，", "群众反映：", "经走访，", "现转报：")
SYNONYMS = (("非常", "特别"), ("尽快", "尽早"), ("马上", "立即"), ("很多", "不少"))
_SPLIT = re.compile(r"[，；。！：]")
_DOWN = {Urgency.EMERGENCY: Urgency.URGENT, Urgency.URGENT: Urgency.NORMAL}


def first_telling(draft: Draft) -> Retelling:
    """Hop 0: the resident's own words, category and urgency."""
    return Retelling(draft.description, draft.category, draft.urgency, ())


def _parse(text: str) -> tuple[str, list[str]]:
    """(relay prefix, clauses) of a telling."""
    prefix = next((p for p in PREFIXES if text.startswith(p)), "")
    return prefix, [c for c in _SPLIT.split(text[len(prefix) :]) if c]


def _specific(body: str, draft: Draft) -> bool:
    """Whether the telling still names an object (the subject or a swapped-in one)."""
    return draft.subject in body or any(r in body for r in draft.related)


def _reword(rng: random.Random, prefix: str, clauses: list[str]) -> str:
    if rng.random() < 0.6:
        prefix = rng.choice(PREFIXES)
    out = []
    for clause in clauses:
        kept = "".join(ch for ch in clause if ch != "的" or rng.random() < 0.5)
        if kept.endswith("了") and len(kept) > 1 and rng.random() < 0.5:
            kept = kept[:-1]
        for old, new in SYNONYMS:
            if old in kept and rng.random() < 0.3:
                kept = kept.replace(old, new)
        out.append(kept)
    sep = rng.choice(("，", "，", "；"))
    end = rng.choice(("。", "。", "！"))
    return prefix + join_clauses(out, sep, end)


def retell(rng: random.Random, draft: Draft, previous: Retelling, model: RetellModel) -> Retelling:
    """The next hop: `previous` retold by one relay under `model`."""
    r_category, r_downgrade, r_generalise, r_swap, r_drop, r_reword = (
        rng.random() for _ in range(6)
    )
    ops: list[str] = []
    category, urgency = previous.category, previous.urgency
    if r_category < model.p_category:
        category = rng.choice(PLAUSIBLE.get(category, PLAUSIBLE["other"]))
        ops.append("category")
    if r_downgrade < model.p_downgrade and urgency in _DOWN:
        urgency = _DOWN[urgency]
        ops.append("downgrade")
    prefix, clauses = _parse(previous.text)
    body = "".join(clauses)
    if r_generalise < model.p_generalise and _specific(body, draft):
        clauses = [f"{draft.location}居民{GENERIC.get(category, GENERIC['other'])}"]
        ops.append("generalise")
    elif r_swap < model.p_swap and draft.subject in body and draft.related:
        obj = rng.choice(draft.related)
        frame = rng.choice(FRAMES.get(draft.category, FRAMES["public_service"]))
        clauses = [f"{draft.location}居民{frame.format(obj=obj)}"]
        ops.append("swap")
    elif r_drop < model.p_drop and len(clauses) >= 3:
        del clauses[rng.randrange(1, len(clauses) - 1)]
        ops.append("drop")
    if r_reword < model.p_reword:
        text = _reword(rng, prefix, clauses)
        ops.append("reword")
    elif ops:
        text = prefix + join_clauses(clauses)
    else:
        text = previous.text
    return Retelling(text, category, urgency, tuple(ops))


def hop_distorted(draft: Draft, telling: Retelling) -> bool:
    """lianhu's test (docs/metrics.md "Distorted hop"), against the resident's filing."""
    return is_distorted(
        similarity(draft.description, telling.text),
        category_changed=telling.category != draft.category,
        urgency_lowered=telling.urgency.rank < draft.urgency.rank,
    )


def chain(rng: random.Random, draft: Draft, model: RetellModel, depth: int) -> list[Retelling]:
    """Hop 0 (the resident's words) and `depth` retellings after it."""
    hops = [first_telling(draft)]
    for _ in range(depth):
        hops.append(retell(rng, draft, hops[-1], model))
    return hops


@dataclass(frozen=True)
class DepthStats:
    depth: int
    distorted: float
    mean_similarity: float
    category_changed: float
    urgency_lowered: float


def measure(
    model: RetellModel, drafts: Sequence[Draft], depth: int = 3, seed: int = 0
) -> list[DepthStats]:
    """Per depth 1..`depth`: shares of distorted hops, category changes, downgrades."""
    if not drafts:
        raise ValueError("no drafts to measure")
    rng = random.Random(seed)
    distorted = [0] * depth
    sim = [0.0] * depth
    changed = [0] * depth
    lowered = [0] * depth
    for d in drafts:
        for k, hop in enumerate(chain(rng, d, model, depth)[1:]):
            distorted[k] += hop_distorted(d, hop)
            sim[k] += similarity(d.description, hop.text)
            changed[k] += hop.category != d.category
            lowered[k] += hop.urgency.rank < d.urgency.rank
    n = len(drafts)
    return [
        DepthStats(k + 1, distorted[k] / n, sim[k] / n, changed[k] / n, lowered[k] / n)
        for k in range(depth)
    ]


def distortion_by_depth(
    model: RetellModel, drafts: Sequence[Draft], depth: int = 3, seed: int = 0
) -> list[float]:
    """Share of requests distorted at each depth 1..`depth` (lianhu's own similarity)."""
    return [s.distorted for s in measure(model, drafts, depth, seed)]


def table(stats: Sequence[DepthStats]) -> str:
    lines = ["depth  distorted  mean similarity  category changed  urgency lowered"]
    for s in stats:
        lines.append(
            f"{s.depth:5d}  {s.distorted:8.1%}  {s.mean_similarity:15.2f}"
            f"  {s.category_changed:16.1%}  {s.urgency_lowered:15.1%}"
        )
    return "\n".join(lines)


def main(n: int = 20_000, seed: int = 0) -> str:
    sample = sample_drafts(random.Random(seed), n)
    m = DEFAULT_RELAY
    head = (
        f"DEFAULT_RELAY over {n:,} drafts of the default mix (seed {seed}):\n"
        f"p_drop {m.p_drop}, p_generalise {m.p_generalise}, p_swap {m.p_swap}, "
        f"p_category {m.p_category}, p_downgrade {m.p_downgrade}, p_reword {m.p_reword}\n"
    )
    return head + table(measure(m, sample, 3, seed))


if __name__ == "__main__":
    print(main())
