"""A seeded county: its units, and how many households each household leader links.

DOMAIN §7 sizes a county at ~10 townships, ~100–300 villages and 10⁴ household
leaders (10–20 households each), a province at 10⁶ leaders. `generate` builds a
tree of any of the `SIZES` (or of a given number of leaders) in the unit-code scheme
of `routing_rules.units` under the base rule set's county code, keeping its
departments; `from_rule_set` takes a rule set's own units as they are (the shipped
云溪县 by default). Either way each household unit is given its number of households,
which sets how often its residents petition.

Same seed, same county: only `random.Random(seed)` draws, in a fixed order.
"""

from __future__ import annotations

import csv
import io
import math
import random
from dataclasses import dataclass
from pathlib import Path

from routing_rules import Level, RuleSet

HOUSEHOLDS_PER_LEADER = (10, 20)  # DOMAIN §1: a household unit links 10–20 households


@dataclass(frozen=True)
class CountySize:
    """The shape of a generated tree: counts drawn uniformly from each (low, high)."""

    name: str
    townships: int
    villages: tuple[int, int]  # per township
    groups: tuple[int, int]  # per village
    leaders: tuple[int, int]  # household units per group

    def expected_leaders(self) -> int:
        def mean(r: tuple[int, int]) -> float:
            return (r[0] + r[1]) / 2

        return round(self.townships * mean(self.villages) * mean(self.groups) * mean(self.leaders))


# `default` is not here: it means the rule set's own units (the shipped demo county).
SIZES: dict[str, CountySize] = {
    # Two townships so that routes naming township codes (…001, …002) still resolve.
    "village": CountySize("village", townships=2, villages=(1, 1), groups=(2, 3), leaders=(4, 6)),
    "township": CountySize(
        "township", townships=2, villages=(6, 10), groups=(3, 5), leaders=(5, 9)
    ),
    # DOMAIN §7: ~10 townships, ~200 villages, ~10⁴ household leaders.
    "county": CountySize("county", townships=10, villages=(15, 25), groups=(4, 6), leaders=(9, 11)),
    # DOMAIN §7: a province's 10⁶ leaders, in one tree (the code scheme allows 999 × 999).
    "province": CountySize(
        "province", townships=600, villages=(25, 35), groups=(5, 7), leaders=(9, 11)
    ),
}

_TOWN_STEMS = "青石白马龙泉清溪金桥柳河桂花凤鸣安乐永丰长乐新民太平双河石门高坪平安黄桷"
_VILLAGE_STEMS = "红星光明和平团结幸福新华胜利民主前进先锋东风向阳联合建设兴隆福田"


@dataclass(frozen=True)
class County:
    """A jurisdiction as `units.csv` rows plus the households each leader links."""

    name: str
    rows: tuple[tuple[str, str, str, str], ...]  # code, name, level, parent
    households: dict[str, int]  # household unit code -> households it links

    @property
    def leaders(self) -> list[str]:
        """The household units, in a fixed order."""
        return list(self.households)

    def count(self, level: Level) -> int:
        return sum(1 for row in self.rows if row[2] == level.value)

    def units_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["code", "name", "level", "parent"])
        writer.writerows(self.rows)
        return out.getvalue()

    def write(self, rule_dir: Path) -> None:
        """Replace `rule_dir/units.csv` with this county (a scratch copy of a rule set)."""
        target = rule_dir / "units.csv"
        if target.is_symlink():
            target.unlink()
        target.write_text(self.units_csv(), encoding="utf-8")

    def describe(self) -> str:
        return (
            f"{self.name}: {self.count(Level.TOWNSHIP)} townships, "
            f"{self.count(Level.VILLAGE)} villages, {self.count(Level.GROUP)} groups, "
            f"{len(self.households):,} household leaders, "
            f"{sum(self.households.values()):,} households"
        )


def from_rule_set(rules: RuleSet, *, seed: int) -> County:
    """The rule set's own units, each household unit given 10–20 households."""
    rng = random.Random(f"county:{seed}")
    units = list(rules.jurisdiction.units())
    rows = tuple(
        (u.code, u.name, u.level.value, u.parent or "")
        for u in units  # the order of units.csv
    )
    county = next(u for u in units if u.level is Level.COUNTY)
    households = {
        u.code: rng.randint(*HOUSEHOLDS_PER_LEADER) for u in units if u.level is Level.HOUSEHOLD
    }
    return County(county.name, rows, households)


def size_for_leaders(leaders: int) -> CountySize:
    """A tree shape of about `leaders` household units, grown like a county."""
    if leaders < 1:
        raise ValueError("a county needs at least one household leader")
    if leaders < 100:  # two townships of one village each, up to five groups
        groups = min(5, max(1, math.ceil(leaders / 20)))
        per_group = max(1, math.ceil(leaders / (2 * groups)))
        return CountySize(str(leaders), 2, (1, 1), (groups, groups), (per_group, per_group))
    townships = min(999, max(2, round(leaders / 1000)))
    per_township = max(1, round(leaders / townships / 50))  # villages of ~50 leaders
    groups = max(1, min(99, round(leaders / (townships * per_township) / 10)))
    return CountySize(str(leaders), townships, (per_township,) * 2, (groups,) * 2, (9, 11))


def generate(size: CountySize, rules: RuleSet, *, seed: int) -> County:
    """A tree of `size` under the rule set's county code, with its departments kept."""
    rng = random.Random(f"county:{size.name}:{seed}")
    base = [u for u in rules.jurisdiction.units()]
    county = next(u for u in base if u.level is Level.COUNTY)
    rows: list[tuple[str, str, str, str]] = [(county.code, county.name, "county", "")]
    households: dict[str, int] = {}
    for t in range(1, size.townships + 1):
        t_code = f"{county.code}{t:03d}"
        street = t <= max(1, size.townships // 5)  # the county seat's street offices
        t_name = _name(_TOWN_STEMS, t, "街道" if street else rng.choice(("镇", "乡")))
        rows.append((t_code, t_name, "township", county.code))
        for v in range(1, rng.randint(*size.villages) + 1):
            v_code = f"{t_code}{v:03d}"
            v_name = _name(_VILLAGE_STEMS, v + 7 * t, "社区" if street else "村")
            rows.append((v_code, v_name, "village", t_code))
            for g in range(1, min(99, rng.randint(*size.groups)) + 1):
                g_code = f"{v_code}-{g:02d}"
                rows.append((g_code, f"{v_name}第{g}组", "group", v_code))
                for h in range(1, min(99, rng.randint(*size.leaders)) + 1):
                    h_code = f"{g_code}-{h:02d}"
                    rows.append((h_code, f"{v_name}第{g}组{h}号联户", "household", g_code))
                    households[h_code] = rng.randint(*HOUSEHOLDS_PER_LEADER)
    rows += [(u.code, u.name, "department", "") for u in base if u.level is Level.DEPARTMENT]
    return County(f"{county.name}（模拟，{size.name}）", tuple(rows), households)


def _name(stems: str, n: int, suffix: str) -> str:
    """A name from two stem characters; distinct for every n below len(stems)²."""
    first, second = divmod(n, len(stems))
    return f"{stems[first % len(stems)]}{stems[second]}{suffix}"
