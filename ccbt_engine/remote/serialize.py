"""Facade snapshots and events as plain JSON values.

The facade hands out frozen dataclasses; JSON has no enums, tuples, paths or non-finite floats,
so this is the one place that decides how they look on the wire (and an event's ``type`` is its
class name, so clients can dispatch without knowing our Python classes).
"""

from __future__ import annotations

import dataclasses
import enum
import math
from pathlib import PurePath
from typing import Any

from ccbt_engine import events as ev

__all__ = ["event_to_json", "to_json"]

JSON = None | bool | int | float | str | list["JSON"] | dict[str, "JSON"]


def to_json(value: Any) -> JSON:
    """Recursively convert dataclasses, enums, tuples and paths; inf/nan become None."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return to_json(value.value)
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_json(v) for v in value]
    return str(value)


def event_to_json(event: ev.Event) -> dict[str, JSON]:
    """``{"type": "TorrentAdded", "info_hash": ..., "timestamp": ..., <fields>}``."""
    body = to_json(event)
    assert isinstance(body, dict)
    return {"type": type(event).__name__, **body}
