"""A rule set: one folder of rule files, loaded and validated as a whole."""

from __future__ import annotations

import csv
import hashlib
import io
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ValidationError

from routing_rules.calendar import DEFAULT_TIMEZONE, DeclaredYear, Override, WorkCalendar
from routing_rules.errors import MissingSla, RuleSetError, UnknownCategory, UnknownUnit
from routing_rules.model import Category, Route, Urgency, check_targets
from routing_rules.sla import SlaEntry, SlaTable
from routing_rules.units import Jurisdiction, Level, Unit

REQUIRED_FILES = ("categories.toml", "routes.toml", "sla.toml", "units.csv")
OPTIONAL_FILES = ("calendar.toml",)
UNITS_HEADER = ["code", "name", "level", "parent"]
DEFAULT_WARN_SHARE = 0.75

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class RuleSet:
    """Everything routing needs. `hash` identifies the files it was loaded from."""

    name: str
    path: Path
    hash: str
    categories: dict[str, Category]
    jurisdiction: Jurisdiction
    routes: list[Route]
    sla: SlaTable
    calendar: WorkCalendar
    warn_share: float = DEFAULT_WARN_SHARE

    def route(self, rule_id: str) -> Route:
        for route in self.routes:
            if route.id == rule_id:
                return route
        raise RuleSetError("no such route", file="routes.toml", rule_id=rule_id)


def default_rule_set_path() -> Path:
    return Path(__file__).parent / "default"


def load_rule_set(path: Path | str) -> RuleSet:
    """Read and validate a rule-set folder; raises RuleSetError naming file, rule and field."""
    folder = Path(path).resolve()
    texts = _read_folder(folder)
    categories = _load_categories(texts["categories.toml"])
    jurisdiction = _load_units(texts["units.csv"])
    sla, warn_share = _load_sla(texts["sla.toml"])
    calendar = _load_calendar(texts.get("calendar.toml"))
    routes = _load_routes(texts["routes.toml"], categories, jurisdiction)
    return RuleSet(
        name=folder.name,
        path=folder,
        hash=content_hash(texts),
        categories=categories,
        jurisdiction=jurisdiction,
        routes=routes,
        sla=sla,
        calendar=calendar,
        warn_share=warn_share,
    )


def content_hash(texts: dict[str, str]) -> str:
    """sha256 over sorted file names and their normalised UTF-8 content (LF line ends)."""
    digest = hashlib.sha256()
    for name in sorted(texts):
        content = texts[name].encode("utf-8")
        digest.update(f"{name}\0{len(content)}\0".encode())
        digest.update(content)
    return f"sha256:{digest.hexdigest()}"


def _read_folder(folder: Path) -> dict[str, str]:
    if not folder.is_dir():
        raise RuleSetError(f"not a rule-set folder: {folder}")
    known = REQUIRED_FILES + OPTIONAL_FILES
    texts: dict[str, str] = {}
    for file in sorted(folder.iterdir()):
        if file.suffix not in (".toml", ".csv"):
            continue  # READMEs and the like are not rules
        if file.name not in known:
            raise RuleSetError(f"unknown rule file; expected {', '.join(known)}", file=file.name)
        try:
            text = file.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise RuleSetError(f"not UTF-8: {error}", file=file.name) from None
        texts[file.name] = text.replace("\r\n", "\n").replace("\r", "\n")
    for name in REQUIRED_FILES:
        if name not in texts:
            raise RuleSetError("required file missing", file=name)
    return texts


def _parse_toml(text: str, file: str, allowed: set[str]) -> dict[str, Any]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise RuleSetError(f"invalid TOML: {error}", file=file) from None
    for key in data:
        if key not in allowed:
            raise RuleSetError(
                f"unknown top-level key; allowed: {', '.join(sorted(allowed))}",
                file=file,
                field=key,
            )
    return data


def _tables(data: dict[str, Any], key: str, file: str) -> list[dict[str, Any]]:
    tables = data.get(key, [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise RuleSetError(f"expected [[{key}]] tables", file=file, field=key)
    return tables


def _validate(
    model: type[M], raw: dict[str, Any], file: str, rule_id: str | None, kind: str | None = None
) -> M:
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        loc = tuple(first["loc"])
        field = ".".join(str(part) for part in loc) or None
        if first["type"] == "extra_forbidden":
            allowed = _allowed_fields(model, loc)
            message = "unknown field" + (f"; allowed: {', '.join(allowed)}" if allowed else "")
        else:
            message = first["msg"].removeprefix("Value error, ")
            if loc:  # a whole-rule check would echo the whole rule
                message += f" (got {first['input']!r})"
        if error.error_count() > 1:
            message += f" (and {error.error_count() - 1} more problems)"
        raise RuleSetError(message, file=file, rule_id=rule_id, field=field, kind=kind) from None


def _allowed_fields(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    current = model
    for part in loc[:-1]:
        info = current.model_fields.get(str(part))
        annotation = info.annotation if info else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        current = annotation
    return list(current.model_fields)


def _rule_id(raw: dict[str, Any], key: str, index: int) -> str:
    value = raw.get(key)
    return str(value) if isinstance(value, str | int) else f"#{index + 1}"


def _load_categories(text: str) -> dict[str, Category]:
    file = "categories.toml"
    data = _parse_toml(text, file, {"category"})
    categories: dict[str, Category] = {}
    for index, raw in enumerate(_tables(data, "category", file)):
        rule_id = _rule_id(raw, "code", index)
        category = _validate(Category, raw, file, rule_id)
        if category.code in categories:
            raise RuleSetError("duplicate category code", file=file, rule_id=rule_id, field="code")
        categories[category.code] = category
    if not categories:
        raise RuleSetError("no categories defined", file=file, field="category")
    return categories


def _load_units(text: str) -> Jurisdiction:
    file = "units.csv"
    reader = csv.reader(io.StringIO(text))
    header = next(reader, [])
    if header != UNITS_HEADER:
        raise RuleSetError(f"header must be {','.join(UNITS_HEADER)}", file=file, field="header")
    units: list[Unit] = []
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        rule_id = row[0] if row[0] else f"line {line}"
        if len(row) != len(UNITS_HEADER):
            raise RuleSetError(f"line {line}: expected 4 columns", file=file, rule_id=rule_id)
        code, name, level, parent = (cell.strip() for cell in row)
        raw = {"code": code, "name": name, "level": level, "parent": parent or None}
        units.append(_validate(Unit, raw, file, rule_id))
    try:
        return Jurisdiction(units)
    except RuleSetError as error:
        raise error.at(file=file) from None


def _load_sla(text: str) -> tuple[SlaTable, float]:
    file = "sla.toml"
    data = _parse_toml(text, file, {"warn_share", "entry"})
    warn_share = data.get("warn_share", DEFAULT_WARN_SHARE)
    if not isinstance(warn_share, float | int) or not 0 < warn_share < 1:
        raise RuleSetError("must be a number between 0 and 1", file=file, field="warn_share")
    entries = []
    for index, raw in enumerate(_tables(data, "entry", file)):
        rule_id = (
            f"{raw.get('level')}/{raw.get('urgency')}" if raw.get("level") else f"#{index + 1}"
        )
        entry = _validate(SlaEntry, raw, file, rule_id)
        respond, resolve = entry.respond, entry.resolve
        if respond.unit == resolve.unit and respond.amount > resolve.amount:
            raise RuleSetError(
                "respond window is longer than the resolve window",
                file=file,
                rule_id=rule_id,
                field="respond",
            )
        entries.append(entry)
    try:
        table = SlaTable(entries)
    except RuleSetError as error:
        raise error.at(file=file) from None
    for level in Level:
        for urgency in Urgency:
            if (level, urgency) not in table:
                raise MissingSla(level, urgency, file=file)
    return table, float(warn_share)


def _load_calendar(text: str | None) -> WorkCalendar:
    file = "calendar.toml"
    if text is None:
        return WorkCalendar()
    data = _parse_toml(text, file, {"timezone", "override", "year", "fallback"})
    fallback = data.get("fallback", "error")
    if fallback not in ("error", "weekends"):
        raise RuleSetError(
            f"fallback must be 'error' or 'weekends', not {fallback!r}", file=file, field="fallback"
        )
    timezone = data.get("timezone", DEFAULT_TIMEZONE)
    try:
        ZoneInfo(str(timezone))
    except (ZoneInfoNotFoundError, ValueError):
        raise RuleSetError(f"unknown timezone {timezone!r}", file=file, field="timezone") from None
    overrides: dict[object, Override] = {}
    for index, raw in enumerate(_tables(data, "override", file)):
        rule_id = str(raw.get("date", f"#{index + 1}"))
        override = _validate(Override, raw, file, rule_id, kind="override")
        if override.date in overrides:
            raise RuleSetError(
                "date overridden twice", file=file, rule_id=rule_id, field="date", kind="override"
            )
        overrides[override.date] = override
    years: dict[int, DeclaredYear] = {}
    for index, raw in enumerate(_tables(data, "year", file)):
        rule_id = _rule_id(raw, "year", index)
        declared = _validate(DeclaredYear, raw, file, rule_id, kind="year")
        if declared.year in years:
            raise RuleSetError(
                "year declared twice", file=file, rule_id=rule_id, field="year", kind="year"
            )
        years[declared.year] = declared
    return WorkCalendar(
        timezone=str(timezone),
        overrides=overrides.values(),
        years=years.values(),
        fallback=fallback,
    )


def _load_routes(
    text: str, categories: dict[str, Category], jurisdiction: Jurisdiction
) -> list[Route]:
    file = "routes.toml"
    data = _parse_toml(text, file, {"route"})
    routes: list[Route] = []
    seen: dict[str, int] = {}
    departments = ", ".join(u.code for u in jurisdiction.departments()) or "none"
    for index, raw in enumerate(_tables(data, "route", file)):
        rule_id = _rule_id(raw, "id", index)
        route = _validate(Route, raw, file, rule_id)
        if route.id in seen:
            raise RuleSetError(
                f"duplicate route id; first used by route #{seen[route.id]}",
                file=file,
                rule_id=rule_id,
                field="id",
            )
        seen[route.id] = index + 1
        for code in route.when.categories or ():
            if code not in categories:
                raise UnknownCategory(
                    code,
                    known=tuple(categories),
                    file=file,
                    rule_id=rule_id,
                    field="when.categories",
                )
        for field, target in route.targets():
            if target.startswith("dept:") and target not in jurisdiction:
                hint = f"known departments: {departments}"
                raise UnknownUnit(target, hint=hint, file=file, rule_id=rule_id, field=field)
        try:
            check_targets(route)
        except RuleSetError as error:
            raise error.at(file=file) from None
        routes.append(route)
    if not routes:
        raise RuleSetError("no routes defined", file=file, field="route")
    return routes
