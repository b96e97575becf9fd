"""Benchmark workloads, drawn from the county simulator's generator (engine.sim).

Petitions have the category mix of DOMAIN §4 (engine.sim.texts.MIX), texts of
60–200 characters from the per-category templates (engine.sim.texts), obviously
synthetic reporters, and household units of the given rule set. Same seed, same
petitions.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from engine.commands import FilePetition
from engine.sim.texts import MIX, draft, reporter
from engine.values import Channel
from routing_rules import Level, RuleSet


def petitions(rules: RuleSet, *, seed: int = 2026) -> Iterator[FilePetition]:
    """An endless, deterministic stream of petitions at the rule set's household units."""
    rng = random.Random(f"bench:{seed}")
    households = sorted(u.code for u in rules.jurisdiction.units() if u.level is Level.HOUSEHOLD)
    categories = [c for c, _ in MIX if c in rules.categories]
    weights = [w for c, w in MIX if c in rules.categories]
    channels = list(Channel)
    n = 0
    while True:
        d = draft(rng, rng.choices(categories, weights)[0])
        household = rng.choice(households)
        channel = rng.choice(channels)
        yield d.petition(household, reporter(rng, n), channel=channel)
        n += 1
