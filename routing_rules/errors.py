"""The one error tree of the package: everything wrong with a rule set or with facts given to it."""

from __future__ import annotations

from typing import Self

# How a rule inside each file is called in messages: "routes.toml: route 'lift-fault': ..."
_RULE_KIND_BY_FILE = {
    "routes.toml": "route",
    "categories.toml": "category",
    "units.csv": "unit",
    "sla.toml": "sla row",
}


class RuleSetError(ValueError):
    """A rule set (or facts evaluated against it) is wrong; says where: file, rule id, field."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        rule_id: str | None = None,
        field: str | None = None,
        kind: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.rule_id = rule_id
        self.field = field
        self.kind = kind  # what the rule is called in messages; by default from the file

    def at(
        self, *, file: str | None = None, rule_id: str | None = None, field: str | None = None
    ) -> Self:
        """Fill in where the error is, keeping what is already known; returns the same error."""
        self.file = self.file or file
        self.rule_id = self.rule_id or rule_id
        self.field = self.field or field
        return self

    def __str__(self) -> str:
        parts: list[str] = []
        if self.file:
            parts.append(self.file)
        if self.rule_id:
            kind = self.kind or _RULE_KIND_BY_FILE.get(self.file or "", "rule")
            parts.append(f"{kind} '{self.rule_id}'")
        if self.field:
            parts.append(f"field '{self.field}'")
        parts.append(self.message)
        return ": ".join(parts)


class UnknownUnit(RuleSetError):
    """A unit code that the jurisdiction does not hold."""

    def __init__(self, code: str, *, hint: str = "", **where: str | None) -> None:
        message = f"unknown unit '{code}'" + (f" ({hint})" if hint else "")
        super().__init__(message, **where)
        self.code = code


class InvalidUnitCode(RuleSetError):
    """A unit code whose shape matches no level (see docs/rules.md, unit codes)."""

    def __init__(self, code: str, *, reason: str = "", **where: str | None) -> None:
        message = f"invalid unit code '{code}'" + (f": {reason}" if reason else "")
        super().__init__(message, **where)
        self.code = code


class UnknownCategory(RuleSetError):
    """A category code that categories.toml does not define."""

    def __init__(self, code: str, *, known: tuple[str, ...] = (), **where: str | None) -> None:
        message = f"unknown category '{code}'"
        if known:
            message += f" (known categories: {', '.join(known)})"
        super().__init__(message, **where)
        self.code = code


class MissingSla(RuleSetError):
    """No SLA row for a level and urgency."""

    def __init__(self, level: str, urgency: str, **where: str | None) -> None:
        super().__init__(f"no SLA row for level '{level}' and urgency '{urgency}'", **where)
        self.level = level
        self.urgency = urgency


class CalendarNotCovered(RuleSetError):
    """A date in a year that neither chinese_calendar nor calendar.toml covers."""

    def __init__(self, year: int, *, covered: str = "", **where: str | None) -> None:
        message = (
            f"the working-day calendar does not cover {year}: declare the year with its "
            f"holidays and adjusted working days in a [[year]] table of calendar.toml"
        )
        if covered:
            message += f" (covered now: {covered})"
        super().__init__(message, **where)
        self.year = year
