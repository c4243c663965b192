"""Idempotency keys: the same action of the same event gets the same key, every run.

Actions run after the commit and may be retried, or run again by a process that
picks up after a crash. An action that makes its side effect through a system with
idempotency keys (a payment API, a message broker, a ``UNIQUE`` column) can pass the
key on, and so make the effect at most once however often it is run.

A key is derived from the event key, the source state, the trigger, the target
state, the action's position in ``result.all_actions`` and its name. The event key
is ``event.id`` when the event has one. **An event without an id is keyed by its
content** (trigger, payload): two distinct events with equal content get equal keys
and are deduplicated. Give events ids (a message id, say) whenever equal events may
legitimately happen twice.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from statewise.model.event import Event
from statewise.model.result import TransitionResult

__all__ = ["KEY_LENGTH", "event_key", "idempotency_key", "idempotency_keys"]

KEY_LENGTH = 32
"""Hex characters kept from the SHA-256 digest: 128 bits, ample against collisions."""


def _canonical(value: Any) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def event_key(event: Event) -> str:
    """``event.id``, or for an event without one the canonical JSON of its content.

    Raises ``TypeError`` for an event without an id whose payload is not JSON data:
    such a payload has no canonical form, so it cannot key anything reliably.
    """
    if event.id is not None:
        return event.id
    try:
        return _canonical(event.to_dict())
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"event {event.trigger!r} has no id and its payload is not JSON data ({exc}): "
            "give the event an id to derive idempotency keys from"
        ) from None


def idempotency_key(result: TransitionResult, position: int) -> str:
    """The key of ``result.all_actions[position]``: the first 32 hex digits of the
    SHA-256 of ``J([event key, source state, trigger, target state]) +
    J([position, action name])``, where ``J`` is compact, key-sorted JSON in UTF-8.

    Deterministic: processing the same event in the same state again gives the same
    keys. ``IndexError`` when ``position`` is not a position in ``all_actions``.
    """
    actions = result.all_actions
    if not 0 <= position < len(actions):
        raise IndexError(f"no action at position {position} (the result has {len(actions)})")
    return _key(_transition_hash(result), position, actions[position].name)


def idempotency_keys(result: TransitionResult) -> tuple[str, ...]:
    """The key of every action of ``result.all_actions``, in order."""
    if not result.all_actions:  # nothing to key: never ask an id-less event for its content
        return ()
    base = _transition_hash(result)
    return tuple(_key(base, i, a.name) for i, a in enumerate(result.all_actions))


def _transition_hash(result: TransitionResult) -> Any:
    # The part shared by every action of a result is hashed once; each key continues
    # from a copy of it (the per-action JSON is what makes a key unique).
    material = [event_key(result.event), result.source_state, result.trigger, result.target_state]
    return hashlib.sha256(_canonical(material).encode("utf-8"))


def _key(base: Any, position: int, name: str) -> str:
    h = base.copy()
    # Action names are identifiers (ASCII letters, digits, _): this *is* the canonical
    # JSON of [position, name], without json.dumps' cost on every action.
    h.update(f'[{position},"{name}"]'.encode("ascii"))
    return str(h.hexdigest()[:KEY_LENGTH])
