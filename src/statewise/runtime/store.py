"""What a store does for the runtime: the tables, and the operations on them.

Theory of operation. The runtime (``runtime.py``) owns the flow; a store owns the SQL.
Every write happens inside ``store.transaction()``, which yields a :class:`Tx`: one
database transaction, committed when the block ends normally and rolled back when it
raises. The tables, whatever a store calls them:

* **entities** (machine, entity_id, state, context JSON, version, entered_at, bucket);
  ``bucket`` is :func:`entity_bucket` of the id, written by the store on insert, for
  partitioning entities between workers later;
* **inbox**: every event received, unique per (machine, entity_id, idempotency key);
  ``result`` is set once it is processed, so a redelivery returns the first result;
* **history**: one row per processed event (applied or rejected), numbered per entity;
* **outbox**: one row per action to run after the commit, with a deterministic key,
  a lease (owner, until), attempts, next attempt time, last error, and a status
  (``pending`` / ``done`` / ``dead``);
* **timers**: at most one per (entity, name), with a due time and a generation that
  changes every time it is re-armed, so a stale firing can be told apart;
* **workers**: heartbeats of worker processes, for ``statewise runtime status``.

Times are timezone-aware UTC datetimes in Python (a naive one is a ``ValueError``).
Concurrency rules every store must keep: ``lock_entity`` serializes writers of one
entity until the transaction ends; ``claim_*`` methods never hand the same row to two
live claimers (leases, and on PostgreSQL ``FOR UPDATE SKIP LOCKED``); acks and retries
only take effect while the caller still holds the lease: the row is pending and its
``lease_owner`` is still the caller. A lease that ran out still counts until another
claimer takes the row over (the row went to nobody else, so finishing it is no
duplicate); a zombie whose row was re-claimed gets ``False`` and changes nothing.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

__all__ = [
    "BUCKETS",
    "SCHEMA_VERSION",
    "EntityRow",
    "EventWrite",
    "Expected",
    "HistoryRow",
    "InboxRow",
    "OutboxRow",
    "Received",
    "Store",
    "TimerRow",
    "Tx",
    "WorkerRow",
    "dump_json",
    "entity_bucket",
]

SCHEMA_VERSION = 1
"""The newest schema version this code knows; a store at a later one is refused."""

BUCKETS = 1024
"""How many buckets entities hash into; partition N ways with ``bucket % N``."""


_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def dump_json(value: Any) -> str:
    """Compact JSON text, as every store keeps it. NaN and the infinities are a
    ``ValueError``: they are not JSON, and PostgreSQL's jsonb refuses them."""
    # One encoder for all: json.dumps with options builds a new one per call.
    return _JSON.encode(value)


def entity_bucket(entity_id: str) -> int:
    """The entity's bucket, ``0 <= b < BUCKETS``: CRC-32 of the UTF-8 id.

    The same in every process, Python version and store (``hash()`` is salted per
    process), so rows written by any of them partition alike.
    """
    return zlib.crc32(entity_id.encode("utf-8")) % BUCKETS


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


@dataclass(frozen=True, slots=True)
class Received:
    """What :meth:`Tx.receive` read along with the entity's lock, in one round trip.

    ``now``: the transaction's clock (:meth:`Tx.now`). ``inbox``: the row already
    under the key asked for, if any (a redelivery, or an event enqueued earlier).
    ``backlog``: the entity has unprocessed events older than that row (no row: any
    unprocessed event at all). ``timer``: the entity's timer of the name asked for."""

    entity: EntityRow
    now: datetime
    inbox: InboxRow | None
    backlog: bool
    timer: TimerRow | None


@dataclass(frozen=True, slots=True)
class EventWrite:
    """Everything one processed event writes, for :meth:`Tx.write_event` to apply at
    once: its inbox row's result, its history row, the timer change it makes (one that
    did not apply may cancel a stale timer) and, when it applied, the entity's new
    state and its outbox rows.

    ``inbox_id``: the unprocessed inbox row the event came from; ``None``: the event
    was never queued (the entity had no backlog), so its inbox row is inserted now,
    already processed, under ``key`` with ``received_at``. ``applied``: the entity
    moves to ``history.to_state`` at ``history.version``, provided its stored version
    is still ``history.version - 1``; ``entered_at`` is when it entered that state
    (``None``: unchanged, an internal transition). The context is not written: it is
    set once, at creation. ``timer_set`` arms (or re-arms) a timer; ``timer_cancel``
    names one to delete. ``event_json`` and ``result_json``, when given, are
    ``dump_json(history.event)`` and ``dump_json(result)`` made already (the store
    writes them as they are)."""

    history: HistoryRow
    result: dict[str, Any]
    inbox_id: int | None = None
    key: str = ""
    received_at: datetime | None = None
    applied: bool = False
    entered_at: datetime | None = None
    outbox: Sequence[OutboxRow] = ()
    timer_set: TimerRow | None = None
    timer_cancel: str | None = None
    event_json: str | None = None
    result_json: str | None = None


@dataclass(frozen=True, slots=True)
class Expected:
    """What an event decided before its entity was locked took for granted, for
    :meth:`Tx.write_expected` to check once the lock is held: the entity's
    ``version``, no unprocessed event of the entity, its timer ``timer`` at
    ``generation`` (``None``: no such timer), and no inbox row under the write's key.

    ``store_clock``: the write's times were counted from ``received_at``, which stands
    for the store's clock (:meth:`Tx.now`, unknown when the decision was made); the
    store moves every time by the same amount so that ``received_at`` becomes its
    clock. ``False``: the times are as given (a runtime with a clock of its own)."""

    version: int
    timer: str
    generation: int | None
    store_clock: bool = True


class Tx(Protocol):
    """One database transaction. Every method may raise the driver's errors."""

    def now(self) -> datetime:
        """The store's clock, fixed for the whole transaction (PostgreSQL: the
        transaction's ``now()``; SQLite: the time the write lock was taken)."""
        ...

    # the event path: everything one event needs, in as few round trips as the store can
    def receive(self, machine: str, entity_id: str, key: str | None, timer: str) -> Received | None:
        """Lock the entity (as :meth:`lock_entity`) and read, after the lock is held,
        what deciding an event keyed ``key`` needs (see :class:`Received`); ``None``
        (nothing locked) when there is no such entity. ``key=None``: no inbox row is
        looked up."""
        ...

    def write_event(self, write: EventWrite, *, last: bool = False) -> list[int]:
        """Apply ``write`` (see :class:`EventWrite`); the outbox rows' ids, in order.
        ``last=True`` promises that nothing else runs in this transaction: the store
        may commit it along with the write (PostgreSQL sends COMMIT in the same round
        trip), and any later use of this Tx raises ``RuntimeStoreError``.
        Raises ``ConcurrencyError`` when an applied event finds the entity's version
        other than ``history.version - 1``, and ``RuntimeStoreError`` when
        ``inbox_id`` names no unprocessed row. After any error here the transaction
        cannot commit: a block that catches the error and ends normally is rolled
        back and raises ``RuntimeStoreError``, so half an event never commits."""
        ...

    def write_expected(self, expected: Expected, write: EventWrite) -> list[int]:
        """:meth:`write_event` with ``last=True`` for an event decided ahead of the lock,
        from the entity as the caller saw it last: lock the entity, check ``expected``
        (see :class:`Expected`), and only if all of it holds apply ``write`` (a new
        inbox row: ``inbox_id`` is ``None``); PostgreSQL sends it all, BEGIN to
        COMMIT, in one round trip. When anything differs, or there is no such entity,
        it raises ``ConcurrencyError`` and writes nothing; the transaction cannot
        commit (let the error end the block), and the caller decides again under
        the lock (:meth:`receive`)."""
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
        """Unprocessed events, oldest (first added: by ``id``) first, for entities not
        locked by another transaction (PostgreSQL: SKIP LOCKED); at most ``limit``."""
        ...

    def inbox_first_pending(self, machine: str, entity_id: str) -> InboxRow | None:
        """The entity's oldest unprocessed event (events apply in arrival order)."""
        ...

    def inbox_done(self, inbox_id: int, result: dict[str, Any]) -> None:
        """Set the result of an unprocessed event. The first result stands: an unknown
        or already processed row raises ``RuntimeStoreError`` (a bug in the caller)."""
        ...

    # history
    def history_add(self, row: HistoryRow) -> None:
        """Insert the row. ``seq=0`` stands for the entity's next one (what
        :meth:`next_history_seq` would return), taken in the insert itself."""
        ...

    def history(self, machine: str, entity_id: str) -> list[HistoryRow]:
        """The entity's rows by ``seq``. A repeated ``seq`` in ``history_add`` is a
        driver integrity error."""
        ...

    def next_history_seq(self, machine: str, entity_id: str) -> int: ...

    # outbox
    def outbox_add(self, rows: Sequence[OutboxRow]) -> list[int]:
        """Insert rows as given but for ``id`` (usually pending and unleased; a row may
        be inserted already leased to run at once); their new ids, in order."""
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
        """Lease pending rows that are due (``next_attempt_at <= now``) and not leased
        (or whose lease expired: ``lease_until <= now``), by ``next_attempt_at`` then
        ``id``; only among the given ``ids`` when set. The rows as leased, in that order."""
        ...

    def outbox_ack(self, row_id: int, owner: str, now: datetime | None = None) -> bool:
        """Mark done (at ``now``, else at the transaction's :meth:`now`, which the store
        may then take without a round trip of its own; the lease is cleared) if
        ``owner`` still holds the lease; ``False`` otherwise, with nothing changed."""
        ...

    def outbox_ack_many(self, acks: Sequence[tuple[int, datetime | None]], owner: str) -> None:
        """:meth:`outbox_ack` for each (row id, time) of ``acks`` (``None``: the
        transaction's :meth:`now`); rows ``owner`` no longer holds stay as they are.
        Answers nothing, so that a store may send it with the transaction's next
        statement (PostgreSQL: no round trip of its own); it is written by the time
        the transaction commits."""
        ...

    def outbox_retry(
        self, row_id: int, owner: str, *, attempts: int, next_attempt_at: datetime, error: str
    ) -> bool:
        """Back to pending, unleased, due at ``next_attempt_at``, with ``attempts`` and
        ``last_error`` set; only while ``owner`` holds the lease (``False`` otherwise)."""
        ...

    def outbox_dead(self, row_id: int, owner: str, *, attempts: int, error: str) -> bool:
        """Give up: status ``dead``, unleased, ``attempts`` and ``last_error`` set; only
        while ``owner`` holds the lease (``False`` otherwise)."""
        ...

    def outbox_release(self, owner: str) -> int:
        """Give up every lease ``owner`` holds on pending rows (a worker stopping); how
        many. Released rows are claimable at once (attempts unchanged)."""
        ...

    def outbox_rows(
        self, *, status: str | None = None, machine: str | None = None
    ) -> list[OutboxRow]:
        """Every row matching the filters given, by ``id``."""
        ...

    # timers
    def timer_set(self, row: TimerRow) -> None:
        """Arm (or re-arm) the (machine, entity_id, name) timer: the row is stored as
        given, replacing any earlier one. The caller picks the generation, one the
        timer never had before (the entity's version when it is armed does), so a
        firing read before a re-arm or a cancel can be told apart."""
        ...

    def timer_cancel(self, machine: str, entity_id: str, name: str) -> None:
        """Remove the timer; nothing happens when there is none."""
        ...

    def timers_due(self, machine: str, now: datetime, limit: int) -> list[TimerRow]:
        """Timers with ``due_at <= now``, by ``due_at`` then entity id and name; at most
        ``limit``. Reading them changes nothing: the caller cancels what it fires. Like
        ``inbox_pending``, it passes over timers another transaction is changing right
        now (PostgreSQL: SKIP LOCKED), so it is no count of the timers armed."""
        ...

    def timer_get(self, machine: str, entity_id: str, name: str) -> TimerRow | None: ...

    # workers
    def worker_beat(self, row: WorkerRow) -> None:
        """Insert or replace the worker's row."""
        ...

    def workers(self) -> list[WorkerRow]:
        """Every worker row, by ``worker_id``."""
        ...


class Store(Protocol):
    """A database the runtime keeps entities in. Safe to share between threads only
    through ``transaction()``; each process opens its own."""

    url: str

    @property
    def ack_delay(self) -> float:
        """Seconds an ack given to :meth:`ack_later` may wait for a transaction to
        carry it (see :mod:`statewise.runtime.acks`); ``0``: written at once."""
        ...

    def transaction(self, *, durable: bool = True) -> AbstractContextManager[Tx]:
        """A new write transaction (not reentrant: no transaction inside another on
        the same thread). Refuses with ``SchemaVersionError`` a schema other than
        ``SCHEMA_VERSION``: opening with ``migrate=False`` does not check, so that
        ``statewise db upgrade`` can open an old store and call ``upgrade()``.

        ``durable=False``: the commit need not wait for the disk (PostgreSQL
        ``synchronous_commit = off``; SQLite ``synchronous = NORMAL`` for that commit).
        It is still atomic, isolated and visible to others at once, and it is never
        lost on its own: a later durable commit makes it durable too. Only a crash of
        the machine (not of the process) before the next flush may undo it, and then
        it is undone whole. Use it only for bookkeeping whose loss is harmless
        (acknowledging or leasing outbox rows: a lost ack only runs an action again,
        which at-least-once allows); never for an event's own transaction."""
        ...

    def ack(self, row_id: int, owner: str, at: datetime | None = None) -> bool:
        """:meth:`Tx.outbox_ack` in a transaction of its own, not durable (see
        ``durable=False``), in one round trip."""
        ...

    def ack_later(self, row_id: int, owner: str, at: datetime | None = None) -> None:
        """Acknowledge as :meth:`Tx.outbox_ack` does, written by the next transaction
        this store opens on any thread, or within ``ack_delay`` seconds by a thread
        of the store, or by :meth:`flush_acks` or :meth:`close`, whichever comes
        first; at once when ``ack_delay`` is 0. A row whose lease ``owner`` lost is
        left as it is, as by ``outbox_ack``; nothing reports it."""
        ...

    def flush_acks(self) -> None:
        """Write every ack :meth:`ack_later` holds, now."""
        ...

    def schema_version(self) -> int:
        """The version the database is at (0: no schema yet); never refuses."""
        ...

    def upgrade(self) -> list[int]:
        """Apply the migrations not applied yet; the versions applied. Refuses a
        schema newer than ``SCHEMA_VERSION`` (``SchemaVersionError``)."""
        ...

    def close(self) -> None:
        """Write the acks still waiting (a failure is logged: those actions will run
        again), then close every connection; idempotent. The store cannot be used
        afterwards."""
        ...


def iter_chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
