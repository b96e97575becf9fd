"""How the people in the chain behave: the simulator's documented parameters.

One `Behaviour` describes everyone from household leaders to county departments. The
two designs share it except for one documented knob, `mediators`: under the old relay
chain the building head and the group pass every matter on (nobody gave them the
mediator's role), while lianhu's household leaders are also mediators (三员, DOMAIN §1)
and settle what they can. Everything else that differs between the designs comes from
their rule sets: where a case is routed, who handles it jointly, the deadlines.

Delays are lognormal (a long right tail: most act soon, a few sit on a case for days).
A holder with a running respond (or resolve) window heeds it with probability `heed`:
it then acts at a random point inside the window, before the light turns red; the
others act at their own pace and the SLA timer warns, breaches and escalates.

Parameters and why they have the values they have: docs/simulation.md ("Calibration").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from engine.sim.arrivals import Lag
from engine.sim.retell import RetellModel
from routing_rules import Level

# How people retell a case when they pass it on. Calibrated through the engine (docs/
# simulation.md): the relay chain passes cases on by escalation, which carries the
# retold text but not a category or urgency, so its distortion is the text's alone;
# these rates put it near the plan's 30 % after three relays.
RETELL = RetellModel(
    p_drop=0.35, p_generalise=0.05, p_swap=0.06, p_category=0.03, p_downgrade=0.05, p_reword=0.8
)


def _levels(**lags: Lag) -> Mapping[Level, Lag]:
    return {Level(k): v for k, v in lags.items()}


# From being assigned a case to acting on it: accept, pass it on, or return it.
ACT = _levels(
    household=Lag(6, 0.9),
    group=Lag(10, 0.9),
    village=Lag(14, 0.9),
    township=Lag(19, 1.0),
    county=Lag(25, 1.0),
    department=Lag(25, 1.0),
)
# From accepting a case to resolving it.
RESOLVE = _levels(
    household=Lag(10, 0.9),
    group=Lag(16, 0.9),
    village=Lag(30, 0.9),
    township=Lag(40, 1.0),
    county=Lag(60, 1.0),
    department=Lag(60, 1.0),
)

# Chance that a resolution leaves the resident satisfied, by outcome.
SATISFIED: Mapping[str, float] = {
    "solved": 0.95,
    "mediated_success": 0.93,
    "explained": 0.85,
    "mediated_failure": 0.35,
    "not_actionable": 0.30,
}


@dataclass(frozen=True)
class Behaviour:
    """The people of a county, as the simulator plays them."""

    name: str
    # Levels whose holders settle the matters they own themselves; others pass them on.
    mediators: frozenset[Level] = frozenset(Level)
    act: Mapping[Level, Lag] = field(default_factory=lambda: ACT)
    resolve: Mapping[Level, Lag] = field(default_factory=lambda: RESOLVE)
    heed: float = 0.85  # a holder acts inside a running window (on the yellow light)
    wrong_return: float = 0.55  # a department returns a matter that is not its own
    joint_return: float = 0.4  # the owning department returns a cross-department matter
    # routed to it alone (no co-handlers): "responsibility unclear", the 3-month cases
    dispatch_right: float = 0.7  # the township re-routes a returned case to its owner
    mediation: float = 0.9  # a dispute mediated by its owner, promptly, succeeds
    mediation_late: float = 0.25  # less when it festered: retold on the way, or > 3 days old
    not_actionable: float = 0.04  # a non-dispute matter that cannot be acted on
    suspend: float = 0.03  # the holder waits for the resident (documents, access)
    suspend_for: Lag = field(default_factory=lambda: Lag(30, 0.8))
    rate: float = 0.85  # the resident rates the resolution
    rate_after: Lag = field(default_factory=lambda: Lag(20, 0.8))
    late_penalty: float = 0.15  # less satisfied when resolved more than 72 h after raising
    mismatch_penalty: float = 0.45  # less satisfied when what was done is not what was asked
    reopen: float = 0.3  # an unsatisfied resident has the case reopened
    withdraw: float = 0.01  # the resident withdraws (sorted out between neighbours)
    retell: RetellModel = RETELL

    def with_(self, **changes: object) -> Behaviour:
        return replace(self, **changes)  # type: ignore[arg-type]


# lianhu: household leaders are also mediators (三员), every level settles what it owns.
LIANHU = Behaviour(name="lianhu")

# The old relay chain: building heads and groups pass everything on.
RELAY = Behaviour(
    name="relay",
    mediators=frozenset({Level.VILLAGE, Level.TOWNSHIP, Level.COUNTY, Level.DEPARTMENT}),
)

BEHAVIOURS: dict[str, Behaviour] = {b.name: b for b in (LIANHU, RELAY)}
