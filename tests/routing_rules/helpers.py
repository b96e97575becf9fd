"""Constants and helpers for the routing_rules tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

# A household unit of the demo county: 龙泉镇金竹村3组7号联户, with its chain upwards.
HOUSEHOLD = "510123104201-03-07"
GROUP = "510123104201-03"
VILLAGE = "510123104201"
TOWNSHIP = "510123104"
COUNTY = "510123"

Edit = Callable[[str, str, str], None]


def route_block(folder: Path, rule_id: str) -> str:
    """The text of one [[route]] table in routes.toml, for cutting or moving it."""
    text = (folder / "routes.toml").read_text(encoding="utf-8")
    start = text.index(f'[[route]]\nid = "{rule_id}"')
    end = text.find("[[route]]", start + 1)
    return text[start : end if end != -1 else len(text)]


def remove_route(folder: Path, rule_id: str) -> None:
    path = folder / "routes.toml"
    path.write_text(path.read_text(encoding="utf-8").replace(route_block(folder, rule_id), ""))
