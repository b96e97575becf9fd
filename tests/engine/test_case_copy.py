"""Case.__deepcopy__ shares field values: safe only while every field is immutable."""

from __future__ import annotations

import copy
from datetime import datetime
from enum import Enum
from uuid import UUID

from pydantic import BaseModel

from engine import commands as c
from engine.case import Case
from engine.service import CaseService
from engine.values import Outcome

HOUSEHOLD = "510123001001-01-01"


def _immutable(value: object) -> bool:
    if value is None or isinstance(value, str | int | float | bool | Enum | datetime | UUID):
        return True
    if isinstance(value, tuple | frozenset):
        return all(_immutable(v) for v in value)
    if isinstance(value, BaseModel):
        return bool(value.model_config.get("frozen"))
    return False


def _a_case(service: CaseService) -> Case:
    filed = service.file_petition(
        c.FilePetition(
            household_unit=HOUSEHOLD,
            category="neighbour_dispute",
            title="噪音",
            description="楼上邻居深夜装修，影响休息。",
            reporter={"name": "模拟居民", "phone": "19900000000"},
        )
    )
    service.accept_case(filed.case_id, c.AcceptCase(unit=HOUSEHOLD, actor="leader"))
    return service.get_case(filed.case_id)


def test_every_field_but_pending_events_is_immutable(service: CaseService) -> None:
    case = _a_case(service)
    mutable = {
        name: type(value).__name__
        for name, value in vars(case).items()
        if name != "_pending_events" and not _immutable(value)
    }
    assert mutable == {}, "Case.__deepcopy__ would share these mutable fields"


def test_a_copy_is_equal_and_independent(service: CaseService) -> None:
    case = _a_case(service)
    clone = copy.deepcopy(case)
    assert vars(clone).keys() == vars(case).keys()
    assert all(getattr(clone, k) == v for k, v in vars(case).items())
    clone.resolve(
        at=service.clock.now(),
        unit=HOUSEHOLD,
        actor="leader",
        outcome=Outcome.MEDIATED_SUCCESS,
        resolution="已调解",
    )
    assert clone.status != case.status
    assert len(clone.collect_events()) == 1
    assert case.collect_events() == []
    assert case.version == clone.version - 1
