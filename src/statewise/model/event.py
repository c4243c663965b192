"""Events: a trigger name, an optional payload from outside, an optional id."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from statewise.model.frozen import EMPTY, deep_freeze, thaw

__all__ = ["Event"]


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened to an entity.

    ``payload`` is deep-frozen on construction (into a
    :class:`~statewise.model.frozen.FrozenDict`), so an event can be hashed, shared and
    handed to guards without any of them being able to change it. ``id`` is the
    caller's (a message id, say): ``process`` never invents one.
    """

    trigger: str
    payload: Mapping[str, Any] = field(default=EMPTY)
    id: str | None = None

    def __post_init__(self) -> None:
        if type(self.trigger) is not str:
            raise TypeError(f"Event.trigger must be a str, got {type(self.trigger).__name__}")
        payload = self.payload
        if payload is not EMPTY:
            if type(payload) is not dict and not isinstance(payload, Mapping):
                raise TypeError(f"Event.payload must be a mapping, got {type(payload).__name__}")
            object.__setattr__(self, "payload", deep_freeze(payload))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict; :meth:`from_dict` reverses it."""
        return {"trigger": self.trigger, "payload": thaw(self.payload), "id": self.id}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Event:
        unknown = set(data) - {"trigger", "payload", "id"}
        if unknown:
            raise ValueError(f"unknown Event keys {sorted(unknown)}; expected trigger, payload, id")
        return cls(data["trigger"], data.get("payload") or EMPTY, data.get("id"))
