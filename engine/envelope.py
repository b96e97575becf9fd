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

import hashlib
import json
import sys
from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

import orjson
from pydantic.json_schema import models_json_schema

from engine.events import EVENT_TYPES, CaseEvent, PetitionFiled
from engine.values import Reporter

SCHEMA = "lianhu.case-event"
SCHEMA_VERSION = 1
EVENT_NAMESPACE = uuid5(NAMESPACE_URL, "urn:lianhu:case-event")
NOT_ON_THE_WIRE: set[str] = set(
    {"originator_id", "originator_version", "timestamp", "originator_topic", "fingerprint"}
)


def event_id(case_id: UUID, version: int) -> UUID:
    """The stable id of a case's event at `version`."""
    return uuid5(EVENT_NAMESPACE, f"{case_id}/{version}")


def event_id_str(case_id: str, version: int) -> str:
    """`str(event_id(...))` without the UUID objects (hashlib directly: the relay's path)."""
    h = bytearray(hashlib.sha1(_NAMESPACE_BYTES + f"{case_id}/{version}".encode()).digest()[:16])
    h[6] = (h[6] & 0x0F) | 0x50
    h[8] = (h[8] & 0x3F) | 0x80
    x = h.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


_NAMESPACE_BYTES = EVENT_NAMESPACE.bytes


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


# -- the relay's fast path: from the stored bytes, no pydantic model ------------------------
#
# The store keeps an event as orjson of `model_dump(mode="json")` without originator_id and
# originator_version (engine.persistence), keys in field order, `timestamp` first. That is
# the same JSON as `model_dump_json()` (one pydantic serialiser, and orjson writes strings
# as pydantic does), so `data` is the stored bytes with `timestamp` cut off: for every type
# but PetitionFiled, whose reporter is masked and fingerprint and originator_topic dropped
# (parsed with orjson and re-dumped). tests/engine/test_envelope.py checks byte identity
# with `envelope()` over random histories.

_TIMESTAMP_HEAD = b'{"timestamp":"'


def _plain_fields(cls: type[CaseEvent]) -> bool:
    """Whether the stored JSON of `cls` is its wire `data` once `timestamp` is cut off."""
    dropped = NOT_ON_THE_WIRE & set(cls.model_fields)
    names = list(cls.model_fields)
    return (
        cls.class_version == 1
        and dropped == {"originator_id", "originator_version", "timestamp"}
        and names[:3] == ["originator_id", "originator_version", "timestamp"]
    )


PLAIN: dict[str, bool] = {cls.TOPIC: _plain_fields(cls) for cls in EVENT_TYPES.values()}
_HEADS: dict[str, str] = {
    cls.TOPIC: f',"type":"{cls.__name__}","event_version":{cls.class_version},"aggregate_version":'
    for cls in EVENT_TYPES.values()
}


def case_number_json(number: str) -> str:
    """`json.dumps(number)`, without the encoder for the usual [0-9A-Z-] numbers."""
    if number.isascii() and number.replace("-", "").isalnum():
        return f'"{number}"'
    return json.dumps(number)


def stored_data(topic: str, stored: bytes, state: dict[str, Any]) -> bytes | None:
    """The envelope's `data` from a stored event (`state` is `stored` parsed), or None
    when only the pydantic path can make it (an old class version, an unusual layout)."""
    if "class_version" in state:
        return None
    if PLAIN.get(topic):
        if not stored.startswith(_TIMESTAMP_HEAD):
            return None
        end = stored.index(b'"', len(_TIMESTAMP_HEAD))
        rest = stored[end + 1 : end + 2]
        if rest == b"}":
            return b"{}"
        if rest != b",":
            return None
        return b"{" + stored[end + 2 :]
    if topic == PetitionFiled.TOPIC:
        data = {k: v for k, v in state.items() if k not in NOT_ON_THE_WIRE}
        reporter = Reporter.model_validate(state["reporter"]).masked()
        data["reporter"] = reporter.model_dump(mode="json")
        return orjson.dumps(data)
    return None


def stored_envelope(
    position: int,
    topic: str,
    case_id: str,
    version: int,
    timestamp: str,
    data: bytes,
    case_number: str,
) -> bytes:
    """`envelope()` of a stored event, from its parts (byte-identical)."""
    recorded = datetime.fromisoformat(timestamp).isoformat().replace("+00:00", "Z")
    return b"".join(
        (
            (
                f'{{"schema":"{SCHEMA}","schema_version":{SCHEMA_VERSION},'
                f'"event_id":"{event_id_str(case_id, version)}","case_id":"{case_id}",'
                f'"case_number":{case_number_json(case_number)}'
                + _HEADS[topic]
                + f'{version},"position":{position},"recorded_at":"{recorded}","data":'
            ).encode(),
            data,
            b"}",
        )
    )


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
