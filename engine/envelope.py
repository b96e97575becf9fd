"""The versioned JSON envelope a case event travels in on NATS (docs/nats.md).

    {"schema": "lianhu.case-event", "schema_version": 1,
     "event_id": "...", "case_id": "...", "case_number": "260302-7KQ2M",
     "type": "CaseAccepted", "event_version": 1, "aggregate_version": 3,
     "position": 1234, "recorded_at": "2026-03-02T01:00:00Z",
     "data": {...the event's own fields...}}

`data` is the event's fields as stored, except the reporter, masked (PIPL), and the
internal `fingerprint` of a keyed filing. `event_id` is derived from (case id, aggregate
version), so the same event always has the same id: consumers dedupe on it.
`docs/envelope.schema.json` is generated from these models by `envelope_schema()`
(`python -m engine.envelope > docs/envelope.schema.json`); a test keeps the two equal.
"""

from __future__ import annotations

import json
import sys
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from pydantic.json_schema import models_json_schema

from engine.events import EVENT_TYPES, CaseEvent, PetitionFiled

SCHEMA = "lianhu.case-event"
SCHEMA_VERSION = 1
EVENT_NAMESPACE = uuid5(NAMESPACE_URL, "urn:lianhu:case-event")
NOT_ON_THE_WIRE: set[str] = set(
    {"originator_id", "originator_version", "timestamp", "originator_topic", "fingerprint"}
)


def event_id(case_id: UUID, version: int) -> UUID:
    """The stable id of a case's event at `version`."""
    return uuid5(EVENT_NAMESPACE, f"{case_id}/{version}")


def wire_event(event: CaseEvent) -> CaseEvent:
    """The event as it may leave the store: the reporter masked (PIPL)."""
    if isinstance(event, PetitionFiled):
        return event.model_copy(update={"reporter": event.reporter.masked()})
    return event


def envelope(position: int, event: CaseEvent, case_number: str) -> bytes:
    """The envelope of `event` at log `position`, as JSON bytes.

    `data` is the event's own pydantic JSON, spliced in whole (one serialisation, no
    intermediate dict: the relay encodes tens of thousands a second).
    """
    case_id = str(event.originator_id)
    version = event.originator_version
    recorded = event.timestamp.isoformat().replace("+00:00", "Z")
    data = wire_event(event).model_dump_json(exclude=NOT_ON_THE_WIRE)
    # every head value is a constant, a number, a UUID, an event class name, an ISO time or
    # a case number ([0-9A-Z-]): nothing to escape, so no JSON encoder for the head
    return (
        f'{{"schema":"{SCHEMA}","schema_version":{SCHEMA_VERSION},'
        f'"event_id":"{uuid5(EVENT_NAMESPACE, f"{case_id}/{version}")}","case_id":"{case_id}",'
        f'"case_number":{json.dumps(case_number)},"type":"{event.name}",'
        f'"event_version":{type(event).class_version},"aggregate_version":{version},'
        f'"position":{position},"recorded_at":"{recorded}","data":{data}}}'
    ).encode()


def envelope_schema() -> dict[str, Any]:
    """The JSON Schema (2020-12) of the envelope, with `data` checked per event type."""
    names = sorted(EVENT_TYPES)
    models = [(EVENT_TYPES[name], "serialization") for name in names]
    _, top = models_json_schema(models, ref_template="#/$defs/{model}")  # type: ignore[arg-type]
    defs: dict[str, Any] = top.get("$defs", {})
    for name in names:
        data = defs[name]
        for field in NOT_ON_THE_WIRE:
            data["properties"].pop(field, None)
        data["required"] = [f for f in data.get("required", []) if f not in NOT_ON_THE_WIRE]
        data["additionalProperties"] = False
        data.pop("description", None)
    defs["Reporter"]["description"] = "masked: only a few characters of each field are kept"
    uuid = {"type": "string", "format": "uuid"}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://lianhu.example/schemas/case-event/1",
        "title": "lianhu case event envelope",
        "description": "One case event on NATS JetStream (docs/nats.md).",
        "type": "object",
        "additionalProperties": False,
        "required": [
            "schema",
            "schema_version",
            "event_id",
            "case_id",
            "case_number",
            "type",
            "event_version",
            "aggregate_version",
            "position",
            "recorded_at",
            "data",
        ],
        "properties": {
            "schema": {"const": SCHEMA},
            "schema_version": {"const": SCHEMA_VERSION},
            "event_id": {**uuid, "description": "uuid5 of (case id, aggregate version)"},
            "case_id": uuid,
            "case_number": {"type": "string", "pattern": "^[0-9]{6}-[0-9A-Z]{5}$"},
            "type": {"enum": names},
            "event_version": {"type": "integer", "minimum": 1},
            "aggregate_version": {"type": "integer", "minimum": 1},
            "position": {"type": "integer", "minimum": 1, "description": "in the event log"},
            "recorded_at": {"type": "string", "format": "date-time"},
            "data": {"type": "object"},
        },
        "allOf": [
            {
                "if": {"properties": {"type": {"const": name}}},
                "then": {"properties": {"data": {"$ref": f"#/$defs/{name}"}}},
            }
            for name in names
        ],
        "$defs": defs,
    }


def main() -> None:
    json.dump(envelope_schema(), sys.stdout, indent=2, ensure_ascii=False, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
