"""Audit rows: one JSON-safe row per decided event, for the caller's audit table.

The row is written in the same transaction as the entity's new state (load, decide,
**commit**, act), rejected events included: a rejection is a fact worth keeping.
Building it is pure: the caller passes the time, read once from its own clock, so the
state row and its audit row agree on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from statewise.model.frozen import thaw

if TYPE_CHECKING:
    # Only for annotations: result.py imports this module for TransitionResult.audit_entry.
    from statewise.model.result import TransitionResult

__all__ = ["AUDIT_COLUMNS", "AwareDatetime", "audit_entry"]

AUDIT_COLUMNS: tuple[str, ...] = (
    "entity_id",
    "at",
    "event_id",
    "trigger",
    "source_state",
    "target_state",
    "success",
    "ignored",
    "state_changed",
    "error_code",
    "error_message",
    "actions",
    "payload",
)
"""The keys of :func:`audit_entry`'s row, in order: the audit table's columns."""


class AwareDatetime(Protocol):
    """What :func:`audit_entry` needs of ``at``: in practice a timezone-aware
    ``datetime.datetime``.

    Spelled as a protocol because the pure core never imports ``datetime`` (the
    module that holds the clock); ``timestamp`` is listed so that a ``datetime.time``,
    which has the other two methods, is refused by the type checker.
    """

    def utcoffset(self) -> object: ...

    def isoformat(self, sep: str = ..., timespec: str = ...) -> str: ...

    def timestamp(self) -> float: ...


def audit_entry(result: TransitionResult, entity_id: str, at: AwareDatetime) -> dict[str, Any]:
    """The audit row for ``result``, keyed by :data:`AUDIT_COLUMNS` in that order.

    ``at`` must be timezone-aware: a naive datetime raises ``ValueError``, because
    reading it as local time would make rows written on two servers disagree. It is
    written as ISO 8601 with microseconds and the caller's own UTC offset
    (``2026-11-22T21:32:11.000000+00:00``); pass UTC times if the column is to sort
    as text. ``error_code`` and ``error_message`` are ``None`` unless the event was
    rejected; ``actions`` lists the names of ``result.all_actions`` (empty for a
    rejected or ignored event); ``payload`` is the event's payload as a plain dict.
    Every value is JSON data (``json.dumps`` takes the row) when the payload is.
    """
    if type(entity_id) is not str:
        raise TypeError(f"entity_id must be a str, got {type(entity_id).__name__}")
    if not callable(getattr(at, "utcoffset", None)) or not hasattr(at, "timestamp"):
        raise TypeError(f"at must be a timezone-aware datetime, got {type(at).__name__}")
    if at.utcoffset() is None:
        raise ValueError(
            f"at must be timezone-aware, got the naive datetime {at.isoformat()}; "
            "pass e.g. datetime.now(timezone.utc)"
        )
    error = result.error  # built anew on each access: read it once
    event = result.event
    return {
        "entity_id": entity_id,
        "at": at.isoformat(timespec="microseconds"),
        "event_id": event.id,
        "trigger": result.trigger,
        "source_state": result.source_state,
        "target_state": result.target_state,
        "success": result.success,
        "ignored": result.ignored,
        "state_changed": result.state_changed,
        "error_code": None if error is None else error.code,
        "error_message": None if error is None else str(error),
        "actions": list(result.action_names),
        "payload": thaw(event.payload),
    }
