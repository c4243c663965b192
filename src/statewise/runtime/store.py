"""What a store does for the runtime: the tables, and the operations on them.

Theory of operation. The runtime (``runtime.py``) owns the flow; a store owns the SQL.
Every write happens inside ``store.transaction()``, which yields a :class:`Tx`: one
database transaction, committed when the block ends normally and rolled back when it
raises. The tables, whatever a store calls them:

* **entities** (machine, entity_id, state, context JSON, version, entered_at, bucket);
* **inbox**: every event received, unique per (machine, entity_id, idempotency key);
  ``result`` is set once it is processed, so a redelivery returns the first result;
* **history**: one row per processed event (applied or rejected), numbered per entity;
* **outbox**: one row per action to run after the commit, with a deterministic key,
  a lease (owner, until), attempts, next attempt time, last error, and a status
  (``pending`` / ``done`` / ``dead``);
* **timers**: at most one per (entity, name), with a due time and a generation that
  changes every time it is re-armed, so a stale firing can be told apart;
* **workers**: heartbeats of worker processes, for ``statewise runtime status``.

Times are timezone-aware UTC datetimes in Python. Concurrency rules every store must
keep: ``lock_entity`` serializes writers of one entity until the transaction ends;
``claim_*`` methods never hand the same row to two live claimers (leases, and on
PostgreSQL ``FOR UPDATE SKIP LOCKED``); acks and retries only take effect while the
caller still holds the lease.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

__all__ = [
    "SCHEMA_VERSION",
    "EntityRow",
    "HistoryRow",
    "InboxRow",
    "OutboxRow",
    "Store",
    "TimerRow",
    "Tx",
    "WorkerRow",
]

SCHEMA_VERSION = 1
"""The newest schema version this code knows; a store at a later one is refused."""


@dataclass(frozen=True, slots=True)
class EntityRow:
    machine: str
    entity_id: str
    state: str
    context: dict[str, Any]
    version: int
    entered_at: datetime


@dataclass(frozen=True, slots=True)
class InboxRow:
    id: int
    machine: str
    entity_id: str
    key: str
    event: dict[str, Any]  # Event.to_dict()
    received_at: datetime
    result: dict[str, Any] | None  # TransitionResult.to_dict(), once processed


@dataclass(frozen=True, slots=True)
class HistoryRow:
    machine: str
    entity_id: str
    seq: int  # 1, 2, ... per entity, in the order events were processed
    version: int  # the entity's version after this event (unchanged when rejected)
    event: dict[str, Any]
    from_state: str
    to_state: str
    success: bool
    error: str | None
    actions: list[str]
    at: datetime


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    key: str  # machine:entity:version:seq, unique
    machine: str
    entity_id: str
    action: dict[str, Any]  # ActionCall.to_spec() normalized to a dict {name, params?, retry?}
    context: dict[str, Any]  # what the action reads: the entity's context at commit + payload
    status: Literal["pending", "done", "dead"]
    attempts: int
    next_attempt_at: datetime
    lease_owner: str | None
    lease_until: datetime | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class TimerRow:
    machine: str
    entity_id: str
    name: str
    due_at: datetime
    generation: int


@dataclass(frozen=True, slots=True)
class WorkerRow:
    worker_id: str
    pid: int
    host: str
    status: Literal["stopped", "waiting", "ready", "running", "closed"]
    heartbeat_at: datetime


class Tx(Protocol):
    """One database transaction. Every method may raise the driver's errors."""

    def now(self) -> datetime:
        """The store's clock (PostgreSQL: the transaction's ``now()``)."""
        ...

    # entities
    def insert_entity(self, row: EntityRow) -> bool:
        """Insert; ``False`` (and nothing written) when (machine, entity_id) exists."""
        ...

    def lock_entity(self, machine: str, entity_id: str) -> EntityRow | None:
        """The row, locked against other writers until this transaction ends."""
        ...

    def update_entity(self, row: EntityRow, *, expected_version: int) -> bool:
        """Write state, context, version, entered_at where the version is still
        ``expected_version``; ``False`` when it is not (nothing written)."""
        ...

    def get_entity(self, machine: str, entity_id: str) -> EntityRow | None: ...

    # inbox
    def inbox_add(
        self, machine: str, entity_id: str, key: str, event: dict[str, Any], received_at: datetime
    ) -> tuple[InboxRow, bool]:
        """The inbox row for ``key``, and whether it was added now (``False``: a
        redelivery; the existing row is returned, with its result if processed)."""
        ...

    def inbox_pending(self, machine: str, limit: int) -> list[InboxRow]:
        """Unprocessed events, oldest first, for entities not locked by another
        transaction (PostgreSQL: SKIP LOCKED); at most ``limit``."""
        ...

    def inbox_first_pending(self, machine: str, entity_id: str) -> InboxRow | None:
        """The entity's oldest unprocessed event (events apply in arrival order)."""
        ...

    def inbox_done(self, inbox_id: int, result: dict[str, Any]) -> None: ...

    # history
    def history_add(self, row: HistoryRow) -> None: ...

    def history(self, machine: str, entity_id: str) -> list[HistoryRow]: ...

    def next_history_seq(self, machine: str, entity_id: str) -> int: ...

    # outbox
    def outbox_add(self, rows: Sequence[OutboxRow]) -> list[int]:
        """Insert pending rows (``id`` ignored); their new ids, in order."""
        ...

    def outbox_claim(
        self,
        *,
        now: datetime,
        lease_until: datetime,
        owner: str,
        limit: int,
        ids: Sequence[int] | None = None,
    ) -> list[OutboxRow]:
        """Lease pending rows that are due and not leased (or whose lease expired);
        only the given ``ids`` when set."""
        ...

    def outbox_ack(self, row_id: int, owner: str, now: datetime) -> bool:
        """Mark done if ``owner`` still holds the lease; ``False`` otherwise."""
        ...

    def outbox_retry(
        self, row_id: int, owner: str, *, attempts: int, next_attempt_at: datetime, error: str
    ) -> bool: ...

    def outbox_dead(self, row_id: int, owner: str, *, attempts: int, error: str) -> bool: ...

    def outbox_release(self, owner: str) -> int:
        """Give up every lease ``owner`` holds (a worker stopping); how many."""
        ...

    def outbox_rows(
        self, *, status: str | None = None, machine: str | None = None
    ) -> list[OutboxRow]: ...

    # timers
    def timer_set(self, row: TimerRow) -> None:
        """Arm (or re-arm) the (machine, entity_id, name) timer."""
        ...

    def timer_cancel(self, machine: str, entity_id: str, name: str) -> None: ...

    def timers_due(self, machine: str, now: datetime, limit: int) -> list[TimerRow]: ...

    def timer_get(self, machine: str, entity_id: str, name: str) -> TimerRow | None: ...

    # workers
    def worker_beat(self, row: WorkerRow) -> None: ...

    def workers(self) -> list[WorkerRow]: ...


class Store(Protocol):
    """A database the runtime keeps entities in. Safe to share between threads only
    through ``transaction()``; each process opens its own."""

    url: str

    def transaction(self) -> AbstractContextManager[Tx]: ...

    def schema_version(self) -> int: ...

    def upgrade(self) -> list[int]:
        """Apply the migrations not applied yet; the versions applied."""
        ...

    def close(self) -> None: ...


def iter_chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
