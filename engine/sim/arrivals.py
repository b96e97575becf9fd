"""When residents petition, and when their leaders record it.

Rates and rhythms (documented in docs/simulation.md):

- **Volume**: `per_leader_per_week` petitions per household leader (DOMAIN §7: "each
  leader records one case a week"), shared among the leaders by their households.
- **Category mix** (DOMAIN §4, `engine.sim.texts.MIX`): neighbour disputes 32 %,
  property management 25 %, public service 18 %, the rest spread over the other
  categories, ~2 % emergencies.
- **Rhythm**: by hour of day (quiet at night, peaks mid-morning and early evening when
  leaders visit) and by weekday (weekends ~60 % of a weekday).
- **Storms**: on average `storms_per_month`; a storm multiplies petitions by
  `storm_boost` for `storm_days` days, most of them hazards, infrastructure and
  emergencies drafted from storm templates.
- **Recording**: 28 % of leaders keep paper ledgers (DOMAIN §1: no smartphone) and
  record a petition hours or days after it was raised; the rest within minutes. The
  gap is what "collection timeliness" measures.

Same seed, same arrivals: only `random.Random` draws, in a fixed order.
"""

from __future__ import annotations

import math
import random
from bisect import bisect
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import accumulate

from engine.sim.county import County
from engine.sim.texts import MIX, Draft, draft, reporter
from engine.values import Channel, Reporter

STORM_MIX: tuple[tuple[str, float], ...] = (
    ("hazard_safety", 0.40),
    ("infrastructure", 0.30),
    ("emergency", 0.20),
    ("public_service", 0.10),
)

# Share of a day's petitions per hour (00–23), and per weekday (Monday first).
HOURLY = (1, 0.5, 0.3, 0.3, 0.3, 0.5, 1.5, 3, 6, 9, 10, 9, 6, 5, 6, 7, 7, 6, 7, 8, 7, 5, 3, 2)
WEEKLY = (1.0, 1.0, 1.0, 1.0, 1.0, 0.6, 0.6)


@dataclass(frozen=True)
class Lag:
    """A lognormal delay: `median_h` hours, `spread` the σ of its logarithm."""

    median_h: float
    spread: float

    def draw(self, rng: random.Random) -> timedelta:
        hours = self.median_h * math.exp(self.spread * rng.gauss(0.0, 1.0))
        return timedelta(seconds=round(min(hours, 24 * 120) * 3600))


@dataclass(frozen=True)
class Rhythm:
    per_leader_per_week: float = 1.0
    storms_per_month: float = 0.5
    storm_boost: float = 3.0
    storm_days: int = 2
    paper_share: float = 0.28
    paper_lag: Lag = field(default_factory=lambda: Lag(median_h=14.0, spread=1.0))
    app_lag: Lag = field(default_factory=lambda: Lag(median_h=0.2, spread=0.8))


@dataclass(frozen=True)
class Arrival:
    """One petition: what was asked, by whom, where, when raised and when recorded."""

    n: int
    household_unit: str
    draft: Draft
    raised_at: datetime
    recorded_at: datetime
    channel: Channel
    reporter: Reporter
    storm: bool


def storm_days(rng: random.Random, days: int, rhythm: Rhythm) -> frozenset[int]:
    """Days (from the start) on which a storm's burst is under way."""
    out: set[int] = set()
    for day in range(days):
        if rng.random() < rhythm.storms_per_month / 30:
            out.update(range(day, min(days, day + rhythm.storm_days)))
    return frozenset(out)


def arrivals(
    county: County,
    *,
    start: datetime,
    weeks: int,
    seed: int,
    rhythm: Rhythm | None = None,
    categories: frozenset[str] | None = None,
) -> list[Arrival]:
    """Every petition of `weeks` weeks from `start`, ordered by when it is recorded.

    Petitions recorded after the end (a paper ledger caught up late) are left out.
    `categories` restricts the mix to those a rule set knows.
    """
    rhythm = rhythm or Rhythm()
    rng = random.Random(f"arrivals:{seed}")
    days = weeks * 7
    end = start + timedelta(days=days)
    storms = storm_days(rng, days, rhythm)
    leaders = county.leaders
    households = list(accumulate(county.households[h] for h in leaders))
    paper = {h: rng.random() < rhythm.paper_share for h in leaders}
    mix = [(c, w) for c, w in MIX if categories is None or c in categories]
    storm_mix = [(c, w) for c, w in STORM_MIX if categories is None or c in categories] or mix
    mean_day = sum(WEEKLY) / 7
    per_day = len(leaders) * rhythm.per_leader_per_week / 7 / mean_day
    day_weights = [
        per_day
        * WEEKLY[(start + timedelta(days=d)).weekday()]
        * (rhythm.storm_boost if d in storms else 1)
        for d in range(days)
    ]
    total = round(sum(day_weights))
    day_cum = list(accumulate(day_weights))
    hour_cum = list(accumulate(HOURLY))
    out: list[Arrival] = []
    for n in range(total):
        day = min(days - 1, bisect(day_cum, rng.random() * day_cum[-1]))
        hour = min(23, bisect(hour_cum, rng.random() * hour_cum[-1]))
        raised = start + timedelta(days=day, hours=hour, seconds=rng.randrange(3600))
        h = leaders[min(len(leaders) - 1, bisect(households, rng.random() * households[-1]))]
        storm = day in storms and rng.random() < 1 - 1 / rhythm.storm_boost
        pool = storm_mix if storm else mix
        category = rng.choices([c for c, _ in pool], [w for _, w in pool])[0]
        d = draft(rng, category, storm=storm)
        lag = (rhythm.paper_lag if paper[h] else rhythm.app_lag).draw(rng)
        channel = Channel.VISIT if paper[h] else rng.choice((Channel.APP, Channel.PHONE))
        who = reporter(rng, n)
        recorded = raised + lag
        if recorded < end:
            out.append(Arrival(n, h, d, raised, recorded, channel, who, storm))
    out.sort(key=lambda a: (a.recorded_at, a.n))
    return out
