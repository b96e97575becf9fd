"""Shared fixtures: the shipped rule set, and editable copies of it for breaking."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from routing_rules import RuleSet, default_rule_set_path, load_rule_set
from tests.routing_rules.helpers import Edit


@pytest.fixture(scope="session")
def rules() -> RuleSet:
    return load_rule_set(default_rule_set_path())


@pytest.fixture
def rule_copy(tmp_path: Path) -> Path:
    """A fresh copy of the default rule set that a test may break."""
    folder = tmp_path / "rules"
    shutil.copytree(default_rule_set_path(), folder)
    return folder


@pytest.fixture
def edit(rule_copy: Path) -> Edit:
    """edit(file, old, new): replace text in the copy; fails if `old` is not there."""

    def replace(file: str, old: str, new: str) -> None:
        path = rule_copy / file
        text = path.read_text(encoding="utf-8")
        assert old in text, f"{old!r} not in {file}"
        path.write_text(text.replace(old, new, 1), encoding="utf-8")

    return replace
