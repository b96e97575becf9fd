"""Why a petition takes the route it takes: every route tried, up to the winner."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from routing_rules.evaluate import (
    Decision,
    PetitionFacts,
    check_conditions,
    check_facts,
    decide,
    no_route_matches,
)
from routing_rules.ruleset import RuleSet


class RouteCheck(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    rule_id: str
    matched: bool
    reasons: tuple[str, ...]


class Explanation(BaseModel):
    """The decision, the checks that led to it, and the unit names render() shows."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    facts: PetitionFacts
    decision: Decision
    checks: tuple[RouteCheck, ...]
    route_description: str = ""
    unit_names: dict[str, str] = {}

    def render(self) -> str:
        """Human-readable; the petition text is left out (personal information)."""
        d = self.decision
        lines = [
            f"petition: category {self.facts.category}, urgency {self.facts.urgency}, "
            f"filed at {self._unit(self.facts.unit)}",
            f"route:    {d.rule_id}"
            + (f" — {self.route_description}" if self.route_description else ""),
            f"handler:  {self._unit(d.handler)} [{d.handler_level}]",
            "co-handlers: " + (", ".join(self._unit(c) for c in d.co_handlers) or "none"),
            "ladder:   " + (" → ".join(self._unit(r) for r in d.ladder) or "none"),
            f"rule set: {d.rule_set_hash}",
            "why:",
        ]
        for check in self.checks:
            mark = "✓" if check.matched else "✗"
            lines.append(f"  {mark} {check.rule_id}: " + "; ".join(check.reasons))
        return "\n".join(lines)

    def _unit(self, code: str) -> str:
        name = self.unit_names.get(code)
        return f"{code} {name}" if name else code


def explain(rule_set: RuleSet, facts: PetitionFacts) -> Explanation:
    check_facts(rule_set, facts)
    checks: list[RouteCheck] = []
    for route in rule_set.routes:
        results = check_conditions(route.when, facts, rule_set.jurisdiction)
        matched = all(held for held, _ in results)
        reasons = tuple(reason for _, reason in results) or ("no conditions: takes every petition",)
        checks.append(RouteCheck(rule_id=route.id, matched=matched, reasons=reasons))
        if matched:
            decision = decide(rule_set, route, facts.unit)
            codes = {facts.unit, decision.handler, *decision.co_handlers, *decision.ladder}
            names = {code: rule_set.jurisdiction.unit(code).name for code in sorted(codes)}
            return Explanation(
                facts=facts,
                decision=decision,
                checks=tuple(checks),
                route_description=route.description,
                unit_names=names,
            )
    raise no_route_matches()
