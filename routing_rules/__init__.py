"""Routing rules: pure code that loads, lints and evaluates a rule-set folder.

No I/O except reading rule files, no clock reads, no imports from engine, api or projections.
"""

from routing_rules.calendar import DeclaredYear, Override, WorkCalendar
from routing_rules.errors import (
    CalendarNotCovered,
    InvalidUnitCode,
    MissingSla,
    RuleSetError,
    UnknownCategory,
    UnknownUnit,
)
from routing_rules.evaluate import (
    Decision,
    PetitionFacts,
    evaluate,
    evaluate_fields,
    resolve_target,
)
from routing_rules.explain import Explanation, RouteCheck, explain
from routing_rules.lint import Finding, lint
from routing_rules.model import Category, Route, Urgency, When
from routing_rules.ruleset import RuleSet, default_rule_set_path, load_rule_set
from routing_rules.sla import (
    Deadlines,
    SlaEntry,
    SlaTable,
    Window,
    deadlines_for,
    due_time,
    due_times,
)
from routing_rules.units import Jurisdiction, Level, Unit, level_of_code

__all__ = [
    "CalendarNotCovered",
    "Category",
    "Deadlines",
    "Decision",
    "DeclaredYear",
    "Explanation",
    "Finding",
    "InvalidUnitCode",
    "Jurisdiction",
    "Level",
    "MissingSla",
    "Override",
    "PetitionFacts",
    "Route",
    "RouteCheck",
    "RuleSet",
    "RuleSetError",
    "SlaEntry",
    "SlaTable",
    "Unit",
    "UnknownCategory",
    "UnknownUnit",
    "Urgency",
    "When",
    "Window",
    "WorkCalendar",
    "deadlines_for",
    "default_rule_set_path",
    "due_time",
    "due_times",
    "evaluate",
    "evaluate_fields",
    "explain",
    "level_of_code",
    "lint",
    "load_rule_set",
    "resolve_target",
]
