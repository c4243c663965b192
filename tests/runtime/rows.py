"""Rows and times the runtime's store tests share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from statewise.runtime.store import OutboxRow

__all__ = ["T0", "M", "at", "outbox_row"]

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
M = "orders"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def outbox_row(
    key: str, *, due: float = 0, entity_id: str = "o-1", machine: str = M, name: str = "notify"
) -> OutboxRow:
    return OutboxRow(
        id=0,
        key=key,
        machine=machine,
        entity_id=entity_id,
        action={"name": name, "params": {"template": "x"}},
        context={"order_id": entity_id, "qty": 3},
        status="pending",
        attempts=0,
        next_attempt_at=at(due),
        lease_owner=None,
        lease_until=None,
        last_error=None,
    )
