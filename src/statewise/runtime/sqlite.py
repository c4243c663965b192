"""``SQLiteStore``: the embedded default store, one file shared by any number of processes.

How several writers share one file without a ``database is locked`` reaching the user:

* **WAL journal**: readers never block the writer, nor the writer readers.
* **BEGIN IMMEDIATE** starts every transaction. The connection runs with
  ``isolation_level=None``, so Python never opens a deferred transaction of its own: a
  deferred transaction that reads, then writes, must upgrade its lock mid-way, and
  SQLite answers that upgrade with SQLITE_BUSY at once, whatever ``busy_timeout`` says.
  Taking the write lock up front means waiting for it is the only contention there is.
* **busy_timeout** makes SQLite wait for the lock instead of failing. The rare
  SQLITE_BUSY that comes back without waiting (WAL recovery after a crash, two
  connections switching the journal mode) is retried with short sleeps, a bounded
  number of times (:data:`BUSY_RETRY_DELAYS`); only then does :class:`RuntimeStoreError`
  say the database stayed locked.
* **One connection per thread** (created on first use, closed by :meth:`close`), and
  none inherited across ``fork()``: a child process opens its own.

Times are stored as integer microseconds since the Unix epoch (UTC), so due timers,
next attempts and lease expiry compare as integers in SQL; JSON columns are compact
text. The file belongs to statewise: its tables are ``entities``, ``inbox``,
``history``, ``outbox``, ``timers``, ``workers`` and ``schema_migrations``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, TypeVar

from statewise.runtime.acks import DEFAULT_ACK_DELAY, BatchedAcks
from statewise.runtime.errors import ConcurrencyError, RuntimeStoreError
from statewise.runtime.migrations import (
    VERSION_TABLE,
    Migration,
    apply,
    check_version,
)
from statewise.runtime.store import (
    SCHEMA_VERSION,
    EntityRow,
    EventWrite,
    Expected,
    HistoryRow,
    InboxRow,
    OutboxRow,
    Received,
    TimerRow,
    WorkerRow,
    dump_json,
    entity_bucket,
    iter_chunks,
)

__all__ = [
    "BUSY_RETRY_DELAYS",
    "MIGRATIONS",
    "MIN_SQLITE_VERSION",
    "SYNCHRONOUS_MODES",
    "SQLiteMigrationTarget",
    "SQLiteStore",
    "SQLiteTx",
    "check_sqlite_version",
]

T = TypeVar("T")

MIN_SQLITE_VERSION: Final = (3, 24, 0)
"""UPSERT (``INSERT ... ON CONFLICT``) arrived in SQLite 3.24."""

SYNCHRONOUS_MODES: Final = ("FULL", "NORMAL")
"""FULL: a committed transaction survives a power cut. NORMAL (safe from corruption in
WAL mode): the last transactions before a power cut may be lost, for fewer fsyncs."""

BUSY_RETRY_DELAYS: tuple[float, ...] = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, *(0.1,) * 30)
"""Seconds slept between attempts when SQLite reports SQLITE_BUSY without waiting its
``busy_timeout`` (about 3 s in all); read on every retry, so tests may shorten it."""

_IDS_PER_STATEMENT = 500  # bound parameters per IN (...): old SQLite allows 999 in all
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_OUTBOX_STATUS: dict[str, Literal["pending", "done", "dead"]] = {
    "pending": "pending",
    "done": "done",
    "dead": "dead",
}
_WORKER_STATUS: dict[str, Literal["stopped", "waiting", "ready", "running", "closed"]] = {
    "stopped": "stopped",
    "waiting": "waiting",
    "ready": "ready",
    "running": "running",
    "closed": "closed",
}

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        (
            # Times: integer microseconds since the Unix epoch, UTC. JSON: text.
            """CREATE TABLE entities (
                machine TEXT NOT NULL,
                entity_id TEXT NOT NULL,
                state TEXT NOT NULL,
                context TEXT NOT NULL,
                version INTEGER NOT NULL,
                entered_at INTEGER NOT NULL,
                bucket INTEGER NOT NULL,
                PRIMARY KEY (machine, entity_id)
            )""",
            # AUTOINCREMENT: an id is never reused, even after old rows are deleted, so
            # id order is arrival order and a stale id never names a newer row.
            """CREATE TABLE inbox (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                machine TEXT NOT NULL,
                entity_id TEXT NOT NULL,
                key TEXT NOT NULL,
                event TEXT NOT NULL,
                received_at INTEGER NOT NULL,
                result TEXT,
                UNIQUE (machine, entity_id, key)
            )""",
            "CREATE INDEX inbox_pending ON inbox (machine, id) WHERE result IS NULL",
            """CREATE INDEX inbox_entity_pending ON inbox (machine, entity_id, id)
                WHERE result IS NULL""",
            """CREATE TABLE history (
                machine TEXT NOT NULL,
                entity_id TEXT NOT NULL,
                seq INTEGER NOT NULL,
                version INTEGER NOT NULL,
                event TEXT NOT NULL,
                from_state TEXT NOT NULL,
                to_state TEXT NOT NULL,
                success INTEGER NOT NULL CHECK (success IN (0, 1)),
                error TEXT,
                actions TEXT NOT NULL,
                at INTEGER NOT NULL,
                PRIMARY KEY (machine, entity_id, seq)
            )""",
            """CREATE TABLE outbox (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                key TEXT NOT NULL UNIQUE,
                machine TEXT NOT NULL,
                entity_id TEXT NOT NULL,
                action TEXT NOT NULL,
                context TEXT NOT NULL,
                status TEXT NOT NULL CHECK (status IN ('pending', 'done', 'dead')),
                attempts INTEGER NOT NULL,
                next_attempt_at INTEGER NOT NULL,
                lease_owner TEXT,
                lease_until INTEGER,
                last_error TEXT,
                done_at INTEGER,
                CHECK ((lease_owner IS NULL) = (lease_until IS NULL))
            )""",
            "CREATE INDEX outbox_due ON outbox (next_attempt_at, id) WHERE status = 'pending'",
            """CREATE TABLE timers (
                machine TEXT NOT NULL,
                entity_id TEXT NOT NULL,
                name TEXT NOT NULL,
                due_at INTEGER NOT NULL,
                generation INTEGER NOT NULL,
                PRIMARY KEY (machine, entity_id, name)
            )""",
            "CREATE INDEX timers_due ON timers (machine, due_at)",
            """CREATE TABLE workers (
                worker_id TEXT PRIMARY KEY,
                pid INTEGER NOT NULL,
                host TEXT NOT NULL,
                status TEXT NOT NULL,
                heartbeat_at INTEGER NOT NULL
            )""",
        ),
        "entities, inbox, history, outbox, timers, workers",
    ),
)
"""The SQLite schema, version by version; the last is ``SCHEMA_VERSION``."""


def check_sqlite_version(version: tuple[int, int, int]) -> None:
    """Raise :class:`RuntimeStoreError` for a SQLite library older than 3.24."""
    if version < MIN_SQLITE_VERSION:
        need = ".".join(map(str, MIN_SQLITE_VERSION))
        have = ".".join(map(str, version))
        raise RuntimeStoreError(
            f"SQLiteStore needs SQLite {need} or later; Python is linked with SQLite {have}"
        )


def _to_us(value: datetime) -> int:
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value.isoformat()}: pass a timezone-aware one")
    return (value - _EPOCH) // _MICROSECOND


def _from_us(value: int) -> datetime:
    return _EPOCH + value * _MICROSECOND


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    code: int | None = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF == sqlite3.SQLITE_BUSY


def _busy_retry(url: str, what: str, run: Callable[[], T]) -> T:
    """``run()``, retried while it fails with SQLITE_BUSY, at most ``BUSY_RETRY_DELAYS``."""
    attempt = 0
    while True:
        try:
            return run()
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise
            if attempt >= len(BUSY_RETRY_DELAYS):
                raise RuntimeStoreError(
                    f"{url}: the database stayed locked ({what}) through the busy timeout "
                    f"and {attempt} retries; is a process holding a transaction open?"
                ) from exc
            time.sleep(BUSY_RETRY_DELAYS[attempt])
            attempt += 1


class SQLiteMigrationTarget:
    """:class:`~statewise.runtime.migrations.MigrationTarget` over one SQLite connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str) -> None:
        self._conn.execute(sql)

    def current_version(self) -> int:
        found = self._conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (VERSION_TABLE,)
        ).fetchone()
        if found is None:
            return 0
        row = self._conn.execute(f"SELECT COALESCE(MAX(version), 0) FROM {VERSION_TABLE}")
        return int(row.fetchone()[0])

    def record(self, version: int) -> None:
        self._conn.execute(
            f"INSERT INTO {VERSION_TABLE} (version, applied_at) VALUES (?, ?)",
            (version, datetime.now(UTC).isoformat()),
        )


class SQLiteStore(BatchedAcks):
    """A store in the SQLite file ``path``; several processes may share the file.

    ``migrate=True`` (the default) brings the schema up to ``SCHEMA_VERSION`` here and
    now, and refuses a newer one (:class:`SchemaVersionError`). With ``migrate=False``
    opening never refuses, so that ``statewise db upgrade`` can open an old file and
    call :meth:`upgrade`; :meth:`transaction` refuses any schema version other than
    ``SCHEMA_VERSION``. ``synchronous`` is one of :data:`SYNCHRONOUS_MODES`;
    ``busy_timeout_ms`` is how long a transaction waits for another's write lock.

    Threads may share the store: each gets its own connection. A process forked from
    one using the store opens fresh connections in the child. :meth:`close` closes
    every connection; call it once no thread is inside a transaction.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        migrate: bool = True,
        synchronous: str = "FULL",
        busy_timeout_ms: int = 30_000,
        ack_delay: float = DEFAULT_ACK_DELAY,
    ) -> None:
        check_sqlite_version(sqlite3.sqlite_version_info)
        self._init_acks(ack_delay)
        mode = synchronous.upper()
        if mode not in SYNCHRONOUS_MODES:
            raise ValueError(
                f"synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}, got {synchronous!r}"
            )
        if isinstance(busy_timeout_ms, bool) or not isinstance(busy_timeout_ms, int):
            raise TypeError(f"busy_timeout_ms must be an int, got {busy_timeout_ms!r}")
        if busy_timeout_ms < 0:
            raise ValueError(f"busy_timeout_ms must be >= 0, got {busy_timeout_ms}")
        self.path = Path(os.path.abspath(path))
        self.url = "sqlite:///" + urllib.parse.quote(self.path.as_posix(), safe="/:")
        self.synchronous = mode
        self.busy_timeout_ms = busy_timeout_ms
        self.migrate = migrate
        if not self.path.parent.is_dir():
            raise RuntimeStoreError(
                f"cannot open {self.url}: the directory {self.path.parent} does not exist"
            )
        self._lock = threading.Lock()
        self._local = threading.local()
        self._connections: dict[threading.Thread, sqlite3.Connection] = {}
        # Connections inherited from a parent process: never used, and never closed
        # either. Closing one runs SQLite's shutdown (a checkpoint, perhaps deleting
        # the WAL) on lock state copied from the parent, which SQLite documents as
        # unsafe; so they stay referenced, untouched, until this process exits.
        self._inherited: list[sqlite3.Connection] = []
        self._pid = os.getpid()
        self._closed = False
        self._schema_checked = False
        try:
            self._connection()
            if migrate:
                self.upgrade()
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"SQLiteStore({self.url!r})"

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the Store protocol

    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[SQLiteTx]:
        """One ``BEGIN IMMEDIATE`` transaction: committed when the block ends, rolled
        back when it raises. Not reentrant on one thread. It writes the acks
        :meth:`ack_later` holds first.

        ``durable=False`` commits with ``synchronous = NORMAL`` (the connection's own
        setting is back right after): in WAL mode that appends to the WAL without an
        fsync. The next FULL commit's fsync of the WAL covers these frames too, and a
        power cut before it loses them whole (WAL frames are checksummed)."""
        conn = self._connection()
        self._check_schema(conn)
        relax = not durable and self.synchronous != "NORMAL"
        if relax:
            # Set outside the transaction: the pager reads it when the commit syncs.
            conn.execute("PRAGMA synchronous = NORMAL")
        acks: list[Any] = []
        try:
            with self._write(conn):
                tx = SQLiteTx(conn, datetime.now(UTC))
                try:
                    acks = self._write_waiting_acks(tx)
                    yield tx
                    if tx._failed:
                        # As on PostgreSQL, where the failed statement aborts the
                        # transaction: half an event's writes must never commit.
                        raise RuntimeStoreError(
                            "a write_event of this transaction failed, so it cannot "
                            "commit: rolled back"
                        )
                finally:
                    tx._end()
        except BaseException:
            self._acks.put_back(acks)
            raise
        finally:
            if relax:
                conn.execute(f"PRAGMA synchronous = {self.synchronous}")

    def ack(self, row_id: int, owner: str, at: datetime | None = None) -> bool:
        """One UPDATE in autocommit mode, with ``synchronous = NORMAL``: a single write
        statement takes the write lock when it starts (waiting ``busy_timeout`` like
        BEGIN IMMEDIATE), so it needs no transaction around it."""
        conn = self._connection()
        self._check_schema(conn)
        if conn.in_transaction:
            raise RuntimeStoreError(
                f"{self.url}: a transaction is open on this thread; ack() runs its own"
            )
        done_at = _to_us(datetime.now(UTC) if at is None else at)
        relax = self.synchronous != "NORMAL"
        if relax:
            conn.execute("PRAGMA synchronous = NORMAL")
        try:
            cur = _busy_retry(self.url, "ack", lambda: conn.execute(_ACK, (done_at, row_id, owner)))
        finally:
            if relax:
                conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        return cur.rowcount == 1

    def _check_schema(self, conn: sqlite3.Connection) -> None:
        if not self._schema_checked:
            found = SQLiteMigrationTarget(conn).current_version()
            check_version(found, known=SCHEMA_VERSION, url=self.url, migrate=False)
            self._schema_checked = True

    def schema_version(self) -> int:
        """The version the file is at (0: no statewise schema yet)."""
        return SQLiteMigrationTarget(self._connection()).current_version()

    def upgrade(self) -> list[int]:
        """Apply the migrations not applied yet, in one transaction; their versions."""
        conn = self._connection()
        with self._write(conn):
            applied = apply(SQLiteMigrationTarget(conn), MIGRATIONS, url=self.url)
        self._schema_checked = True
        return applied

    def pragmas(self) -> dict[str, str | int]:
        """The calling thread's connection settings, as SQLite reports them:
        ``journal_mode`` (``"wal"``), ``synchronous`` (``"FULL"`` or ``"NORMAL"``),
        ``busy_timeout`` (milliseconds)."""
        conn = self._connection()
        names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
        return {
            "journal_mode": conn.execute("PRAGMA journal_mode").fetchone()[0],
            "synchronous": names[conn.execute("PRAGMA synchronous").fetchone()[0]],
            "busy_timeout": conn.execute("PRAGMA busy_timeout").fetchone()[0],
        }

    def close(self) -> None:
        """Write the acks still waiting, then close every connection this process
        opened; idempotent."""
        if not self._closed:
            self._close_acks()
        with self._lock:
            self._closed = True
            connections = list(self._connections.values())
            self._connections.clear()
        for conn in connections:
            conn.close()

    # -- connections

    @contextmanager
    def _write(self, conn: sqlite3.Connection) -> Iterator[None]:
        if conn.in_transaction:
            raise RuntimeStoreError(
                f"{self.url}: a transaction is already open on this thread; "
                "transaction() is not reentrant"
            )
        _busy_retry(self.url, "BEGIN IMMEDIATE", lambda: conn.execute("BEGIN IMMEDIATE"))
        try:
            yield
            _busy_retry(self.url, "COMMIT", lambda: conn.execute("COMMIT"))
        except BaseException:
            # A failed COMMIT may have ended the transaction already (SQLite rolls
            # back on some errors itself); ROLLBACK without one is an error.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _connection(self) -> sqlite3.Connection:
        if self._closed:
            raise RuntimeStoreError(f"the store {self.url} is closed")
        if self._pid != os.getpid():
            self._forget_parent()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            with self._lock:
                self._close_dead_threads()
                conn = self._connect()
                self._connections[threading.current_thread()] = conn
            self._local.conn = conn
        return conn

    def _forget_parent(self) -> None:
        self._inherited.extend(self._connections.values())
        self._connections = {}
        self._local = threading.local()
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def _close_dead_threads(self) -> None:
        # A thread that ended cannot use its connection again: close it now rather
        # than keep one open per thread that ever used the store.
        for thread, conn in list(self._connections.items()):
            if not thread.is_alive():
                del self._connections[thread]
                conn.close()

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout_ms / 1000,
                isolation_level=None,
                # Each thread has its own connection; the flag is off only so that
                # close() can close them all from one thread.
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise RuntimeStoreError(f"cannot open {self.url}: {exc}") from exc
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {self.busy_timeout_ms}")
            journal = _busy_retry(
                self.url,
                "PRAGMA journal_mode",
                lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone()[0],
            )
            if str(journal).lower() != "wal":
                raise RuntimeStoreError(
                    f"cannot open {self.url}: SQLite kept journal mode {journal!r} "
                    "instead of WAL (is the file on a network filesystem?)"
                )
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise RuntimeStoreError(f"cannot open {self.url}: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        return conn


class SQLiteTx:
    """One SQLite transaction: :class:`~statewise.runtime.store.Tx` for ``SQLiteStore``.

    Usable only inside its ``with store.transaction()`` block; afterwards every method
    raises :class:`RuntimeStoreError` rather than write outside a transaction.
    """

    def __init__(self, conn: sqlite3.Connection, now: datetime) -> None:
        self._conn: sqlite3.Connection | None = conn
        self._now = now
        self._failed = False

    def _end(self) -> None:
        self._conn = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeStoreError("this transaction has ended; open a new one")
        return self._conn

    def now(self) -> datetime:
        """When this transaction took the write lock (fixed for the transaction)."""
        return self._now

    # -- the event path

    def receive(self, machine: str, entity_id: str, key: str | None, timer: str) -> Received | None:
        # BEGIN IMMEDIATE holds the write lock already: one statement reads it all.
        found = self._db().execute(_RECEIVE, (key, timer, machine, entity_id)).fetchone()
        if found is None:
            return None
        entity = _entity_row(found)
        inbox = None
        if found["i_id"] is not None:
            result = found["i_result"]
            inbox = InboxRow(
                id=found["i_id"],
                machine=machine,
                entity_id=entity_id,
                key=str(key),
                event=json.loads(found["i_event"]),
                received_at=_from_us(found["i_received_at"]),
                result=None if result is None else json.loads(result),
            )
        armed = None
        if found["t_generation"] is not None:
            armed = TimerRow(
                machine, entity_id, timer, _from_us(found["t_due_at"]), found["t_generation"]
            )
        return Received(entity, self._now, inbox, bool(found["backlog"]), armed)

    def write_event(self, write: EventWrite, *, last: bool = False) -> list[int]:
        return self._write(write, last=last)

    def write_expected(self, expected: Expected, write: EventWrite) -> list[int]:
        h = write.history
        if write.inbox_id is not None:
            raise ValueError("write_expected writes a new inbox row: inbox_id must be None")
        found = (
            self._db()
            .execute(_EXPECTED, (write.key, expected.timer, h.machine, h.entity_id))
            .fetchone()
        )
        if (
            found is None
            or found["version"] != expected.version
            or found["taken"]
            or found["generation"] != expected.generation
        ):
            self._failed = True  # as on PostgreSQL: this transaction must not commit
            raise ConcurrencyError(h.machine, h.entity_id, expected.version)
        shift = 0
        if expected.store_clock:
            if write.received_at is None:
                raise ValueError("an EventWrite on the store's clock needs received_at")
            shift = _to_us(self._now) - _to_us(write.received_at)
        return self._write(write, last=True, shift=shift)

    def _write(self, write: EventWrite, *, last: bool, shift: int = 0) -> list[int]:
        self._db()  # an ended transaction refuses before anything could fail it
        try:
            ids = self._write_event(write, shift)
        except BaseException:
            self._failed = True  # some of it may be written: the transaction must not commit
            raise
        if last:
            self._conn = None  # the block's end commits; nothing else may run before
        return ids

    def _write_event(self, write: EventWrite, shift: int = 0) -> list[int]:
        """``write``, with ``shift`` microseconds added to every time in it."""
        db = self._db()
        h = write.history
        if write.applied:
            entered = None if write.entered_at is None else _to_us(write.entered_at) + shift
            cur = db.execute(
                """UPDATE entities SET state = ?, version = ?, entered_at = COALESCE(?, entered_at)
                   WHERE machine = ? AND entity_id = ? AND version = ?""",
                (h.to_state, h.version, entered, h.machine, h.entity_id, h.version - 1),
            )
            if cur.rowcount != 1:
                raise ConcurrencyError(h.machine, h.entity_id, h.version - 1)
        event = dump_json(h.event) if write.event_json is None else write.event_json
        result = dump_json(write.result) if write.result_json is None else write.result_json
        if write.inbox_id is None:
            if write.received_at is None:
                raise ValueError("an EventWrite without inbox_id needs received_at")
            db.execute(
                """INSERT INTO inbox (machine, entity_id, key, event, received_at, result)
                   VALUES (?, ?, ?, ?, ?, ?)""",
                (
                    h.machine,
                    h.entity_id,
                    write.key,
                    event,
                    _to_us(write.received_at) + shift,
                    result,
                ),
            )
        else:
            self._inbox_done(write.inbox_id, result)
        self._history_insert(h, event, shift)
        ids = self._outbox_insert(write.outbox, shift) if write.outbox else []
        if write.timer_set is not None:
            self._timer_upsert(write.timer_set, shift)
        if write.timer_cancel is not None:
            self.timer_cancel(h.machine, h.entity_id, write.timer_cancel)
        return ids

    # -- entities

    def insert_entity(self, row: EntityRow) -> bool:
        cur = self._db().execute(
            """INSERT INTO entities
               (machine, entity_id, state, context, version, entered_at, bucket)
               VALUES (?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (machine, entity_id) DO NOTHING""",
            (
                row.machine,
                row.entity_id,
                row.state,
                dump_json(row.context),
                row.version,
                _to_us(row.entered_at),
                entity_bucket(row.entity_id),
            ),
        )
        return cur.rowcount == 1

    def lock_entity(self, machine: str, entity_id: str) -> EntityRow | None:
        # BEGIN IMMEDIATE already holds the database's write lock: no other writer,
        # of this entity or any other, runs until this transaction ends.
        return self.get_entity(machine, entity_id)

    def update_entity(self, row: EntityRow, *, expected_version: int) -> bool:
        cur = self._db().execute(
            """UPDATE entities SET state = ?, context = ?, version = ?, entered_at = ?
               WHERE machine = ? AND entity_id = ? AND version = ?""",
            (
                row.state,
                dump_json(row.context),
                row.version,
                _to_us(row.entered_at),
                row.machine,
                row.entity_id,
                expected_version,
            ),
        )
        return cur.rowcount == 1

    def get_entity(self, machine: str, entity_id: str) -> EntityRow | None:
        found = (
            self._db()
            .execute(
                "SELECT * FROM entities WHERE machine = ? AND entity_id = ?", (machine, entity_id)
            )
            .fetchone()
        )
        return None if found is None else _entity_row(found)

    # -- inbox

    def inbox_add(
        self, machine: str, entity_id: str, key: str, event: dict[str, Any], received_at: datetime
    ) -> tuple[InboxRow, bool]:
        db = self._db()
        cur = db.execute(
            """INSERT INTO inbox (machine, entity_id, key, event, received_at)
               VALUES (?, ?, ?, ?, ?)
               ON CONFLICT (machine, entity_id, key) DO NOTHING""",
            (machine, entity_id, key, dump_json(event), _to_us(received_at)),
        )
        added = cur.rowcount == 1
        found = db.execute(
            "SELECT * FROM inbox WHERE machine = ? AND entity_id = ? AND key = ?",
            (machine, entity_id, key),
        ).fetchone()
        return _inbox_row(found), added

    def inbox_pending(self, machine: str, limit: int) -> list[InboxRow]:
        if limit < 1:
            return []  # SQLite reads LIMIT -1 as "no limit"
        rows = self._db().execute(
            "SELECT * FROM inbox WHERE machine = ? AND result IS NULL ORDER BY id LIMIT ?",
            (machine, limit),
        )
        return [_inbox_row(r) for r in rows]

    def inbox_first_pending(self, machine: str, entity_id: str) -> InboxRow | None:
        found = (
            self._db()
            .execute(
                """SELECT * FROM inbox WHERE machine = ? AND entity_id = ? AND result IS NULL
               ORDER BY id LIMIT 1""",
                (machine, entity_id),
            )
            .fetchone()
        )
        return None if found is None else _inbox_row(found)

    def inbox_done(self, inbox_id: int, result: dict[str, Any]) -> None:
        self._inbox_done(inbox_id, dump_json(result))

    def _inbox_done(self, inbox_id: int, result: str) -> None:
        cur = self._db().execute(
            "UPDATE inbox SET result = ? WHERE id = ? AND result IS NULL", (result, inbox_id)
        )
        if cur.rowcount != 1:
            raise RuntimeStoreError(
                f"inbox row {inbox_id} is unknown or already processed; its first result stands"
            )

    # -- history

    def history_add(self, row: HistoryRow) -> None:
        self._history_insert(row, dump_json(row.event))

    def _history_insert(self, row: HistoryRow, event: str, shift: int = 0) -> None:
        self._db().execute(
            """INSERT INTO history (machine, entity_id, seq, version, event, from_state,
               to_state, success, error, actions, at)
               VALUES (?, ?, COALESCE(NULLIF(?, 0), (SELECT COALESCE(MAX(seq), 0) + 1
                 FROM history WHERE machine = ? AND entity_id = ?)), ?, ?, ?, ?, ?, ?, ?, ?)""",
            (
                row.machine,
                row.entity_id,
                row.seq,
                row.machine,
                row.entity_id,
                row.version,
                event,
                row.from_state,
                row.to_state,
                int(row.success),
                row.error,
                dump_json(row.actions),
                _to_us(row.at) + shift,
            ),
        )

    def history(self, machine: str, entity_id: str) -> list[HistoryRow]:
        rows = self._db().execute(
            "SELECT * FROM history WHERE machine = ? AND entity_id = ? ORDER BY seq",
            (machine, entity_id),
        )
        return [
            HistoryRow(
                machine=r["machine"],
                entity_id=r["entity_id"],
                seq=r["seq"],
                version=r["version"],
                event=json.loads(r["event"]),
                from_state=r["from_state"],
                to_state=r["to_state"],
                success=bool(r["success"]),
                error=r["error"],
                actions=json.loads(r["actions"]),
                at=_from_us(r["at"]),
            )
            for r in rows
        ]

    def next_history_seq(self, machine: str, entity_id: str) -> int:
        found = (
            self._db()
            .execute(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM history WHERE machine = ? AND entity_id = ?",
                (machine, entity_id),
            )
            .fetchone()
        )
        return int(found[0])

    # -- outbox

    def outbox_add(self, rows: Sequence[OutboxRow]) -> list[int]:
        return self._outbox_insert(rows)

    def _outbox_insert(self, rows: Sequence[OutboxRow], shift: int = 0) -> list[int]:
        db = self._db()
        ids: list[int] = []
        for row in rows:
            cur = db.execute(
                """INSERT INTO outbox (key, machine, entity_id, action, context, status,
                   attempts, next_attempt_at, lease_owner, lease_until, last_error)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    row.key,
                    row.machine,
                    row.entity_id,
                    dump_json(row.action),
                    dump_json(row.context),
                    row.status,
                    row.attempts,
                    _to_us(row.next_attempt_at) + shift,
                    row.lease_owner,
                    None if row.lease_until is None else _to_us(row.lease_until) + shift,
                    row.last_error,
                ),
            )
            assert cur.lastrowid is not None  # an INSERT into a rowid table sets it
            ids.append(cur.lastrowid)
        return ids

    def outbox_claim(
        self,
        *,
        now: datetime,
        lease_until: datetime,
        owner: str,
        limit: int,
        ids: Sequence[int] | None = None,
    ) -> list[OutboxRow]:
        if limit < 1:
            return []
        db = self._db()
        at = _to_us(now)
        claimable = """SELECT * FROM outbox
            WHERE status = 'pending' AND next_attempt_at <= ?
              AND (lease_owner IS NULL OR lease_until <= ?)"""
        order = " ORDER BY next_attempt_at, id LIMIT ?"
        found: list[OutboxRow] = []
        if ids is None:
            found = [_outbox_row(r) for r in db.execute(claimable + order, (at, at, limit))]
        else:
            for chunk in iter_chunks(list(dict.fromkeys(ids)), _IDS_PER_STATEMENT):
                marks = ", ".join("?" * len(chunk))
                sql = f"{claimable} AND id IN ({marks}){order}"
                found += [_outbox_row(r) for r in db.execute(sql, (at, at, *chunk, limit))]
            found = sorted(found, key=lambda r: (r.next_attempt_at, r.id))[:limit]
        # Selecting and leasing are one step: the IMMEDIATE transaction keeps every
        # other claimer out until it ends.
        for chunk in iter_chunks([r.id for r in found], _IDS_PER_STATEMENT):
            db.execute(
                f"UPDATE outbox SET lease_owner = ?, lease_until = ? "
                f"WHERE id IN ({', '.join('?' * len(chunk))})",
                (owner, _to_us(lease_until), *chunk),
            )
        until = _from_us(_to_us(lease_until))  # as a later read gives it back: in UTC
        return [replace(r, lease_owner=owner, lease_until=until) for r in found]

    def outbox_ack(self, row_id: int, owner: str, now: datetime | None = None) -> bool:
        cur = self._db().execute(_ACK, (_to_us(self._now if now is None else now), row_id, owner))
        return cur.rowcount == 1

    def outbox_ack_many(self, acks: Sequence[tuple[int, datetime | None]], owner: str) -> None:
        now = _to_us(self._now)
        rows = [(now if at is None else _to_us(at), row_id, owner) for row_id, at in acks]
        if len(rows) == 1:
            self._db().execute(_ACK, rows[0])  # executemany costs twice as much for one
        else:
            self._db().executemany(_ACK, rows)

    def outbox_retry(
        self, row_id: int, owner: str, *, attempts: int, next_attempt_at: datetime, error: str
    ) -> bool:
        cur = self._db().execute(
            """UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_error = ?,
               lease_owner = NULL, lease_until = NULL
               WHERE id = ? AND status = 'pending' AND lease_owner = ?""",
            (attempts, _to_us(next_attempt_at), error, row_id, owner),
        )
        return cur.rowcount == 1

    def outbox_dead(self, row_id: int, owner: str, *, attempts: int, error: str) -> bool:
        cur = self._db().execute(
            """UPDATE outbox SET status = 'dead', attempts = ?, last_error = ?,
               lease_owner = NULL, lease_until = NULL
               WHERE id = ? AND status = 'pending' AND lease_owner = ?""",
            (attempts, error, row_id, owner),
        )
        return cur.rowcount == 1

    def outbox_release(self, owner: str) -> int:
        cur = self._db().execute(
            """UPDATE outbox SET lease_owner = NULL, lease_until = NULL
               WHERE lease_owner = ? AND status = 'pending'""",
            (owner,),
        )
        return cur.rowcount

    def outbox_rows(
        self, *, status: str | None = None, machine: str | None = None
    ) -> list[OutboxRow]:
        rows = self._db().execute(
            """SELECT * FROM outbox
               WHERE (? IS NULL OR status = ?) AND (? IS NULL OR machine = ?)
               ORDER BY id""",
            (status, status, machine, machine),
        )
        return [_outbox_row(r) for r in rows]

    # -- timers

    def timer_set(self, row: TimerRow) -> None:
        self._timer_upsert(row)

    def _timer_upsert(self, row: TimerRow, shift: int = 0) -> None:
        self._db().execute(
            """INSERT INTO timers (machine, entity_id, name, due_at, generation)
               VALUES (?, ?, ?, ?, ?)
               ON CONFLICT (machine, entity_id, name)
               DO UPDATE SET due_at = excluded.due_at, generation = excluded.generation""",
            (row.machine, row.entity_id, row.name, _to_us(row.due_at) + shift, row.generation),
        )

    def timer_cancel(self, machine: str, entity_id: str, name: str) -> None:
        self._db().execute(
            "DELETE FROM timers WHERE machine = ? AND entity_id = ? AND name = ?",
            (machine, entity_id, name),
        )

    def timers_due(self, machine: str, now: datetime, limit: int) -> list[TimerRow]:
        if limit < 1:
            return []
        rows = self._db().execute(
            """SELECT * FROM timers WHERE machine = ? AND due_at <= ?
               ORDER BY due_at, entity_id, name LIMIT ?""",
            (machine, _to_us(now), limit),
        )
        return [_timer_row(r) for r in rows]

    def timer_get(self, machine: str, entity_id: str, name: str) -> TimerRow | None:
        found = (
            self._db()
            .execute(
                "SELECT * FROM timers WHERE machine = ? AND entity_id = ? AND name = ?",
                (machine, entity_id, name),
            )
            .fetchone()
        )
        return None if found is None else _timer_row(found)

    # -- workers

    def worker_beat(self, row: WorkerRow) -> None:
        self._db().execute(
            """INSERT INTO workers (worker_id, pid, host, status, heartbeat_at)
               VALUES (?, ?, ?, ?, ?)
               ON CONFLICT (worker_id) DO UPDATE SET pid = excluded.pid,
               host = excluded.host, status = excluded.status,
               heartbeat_at = excluded.heartbeat_at""",
            (row.worker_id, row.pid, row.host, row.status, _to_us(row.heartbeat_at)),
        )

    def workers(self) -> list[WorkerRow]:
        rows = self._db().execute("SELECT * FROM workers ORDER BY worker_id")
        return [
            WorkerRow(
                worker_id=r["worker_id"],
                pid=r["pid"],
                host=r["host"],
                status=_WORKER_STATUS[r["status"]],
                heartbeat_at=_from_us(r["heartbeat_at"]),
            )
            for r in rows
        ]


_RECEIVE = """SELECT e.*, i.id AS i_id, i.event AS i_event, i.received_at AS i_received_at,
    i.result AS i_result,
    EXISTS (SELECT 1 FROM inbox p WHERE p.machine = e.machine AND p.entity_id = e.entity_id
        AND p.result IS NULL AND (i.id IS NULL OR p.id < i.id)) AS backlog,
    t.due_at AS t_due_at, t.generation AS t_generation
    FROM entities e
    LEFT JOIN inbox i ON i.machine = e.machine AND i.entity_id = e.entity_id AND i.key = ?
    LEFT JOIN timers t ON t.machine = e.machine AND t.entity_id = e.entity_id AND t.name = ?
    WHERE e.machine = ? AND e.entity_id = ?"""

# What write_expected checks: the entity's version, whether any inbox row is pending or
# already has the key (each EXISTS through an index of its own), and the timer.
_EXPECTED = """SELECT e.version,
    EXISTS (SELECT 1 FROM inbox p WHERE p.machine = e.machine AND p.entity_id = e.entity_id
        AND p.result IS NULL)
    OR EXISTS (SELECT 1 FROM inbox k WHERE k.machine = e.machine
        AND k.entity_id = e.entity_id AND k.key = ?) AS taken,
    (SELECT generation FROM timers t WHERE t.machine = e.machine AND t.entity_id = e.entity_id
        AND t.name = ?) AS generation
    FROM entities e WHERE e.machine = ? AND e.entity_id = ?"""

_ACK = """UPDATE outbox SET status = 'done', lease_owner = NULL, lease_until = NULL, done_at = ?
    WHERE id = ? AND status = 'pending' AND lease_owner = ?"""


def _entity_row(r: sqlite3.Row) -> EntityRow:
    return EntityRow(
        machine=r["machine"],
        entity_id=r["entity_id"],
        state=r["state"],
        context=json.loads(r["context"]),
        version=r["version"],
        entered_at=_from_us(r["entered_at"]),
    )


def _inbox_row(r: sqlite3.Row) -> InboxRow:
    result = r["result"]
    return InboxRow(
        id=r["id"],
        machine=r["machine"],
        entity_id=r["entity_id"],
        key=r["key"],
        event=json.loads(r["event"]),
        received_at=_from_us(r["received_at"]),
        result=None if result is None else json.loads(result),
    )


def _outbox_row(r: sqlite3.Row) -> OutboxRow:
    lease_until = r["lease_until"]
    return OutboxRow(
        id=r["id"],
        key=r["key"],
        machine=r["machine"],
        entity_id=r["entity_id"],
        action=json.loads(r["action"]),
        context=json.loads(r["context"]),
        status=_OUTBOX_STATUS[r["status"]],
        attempts=r["attempts"],
        next_attempt_at=_from_us(r["next_attempt_at"]),
        lease_owner=r["lease_owner"],
        lease_until=None if lease_until is None else _from_us(lease_until),
        last_error=r["last_error"],
    )


def _timer_row(r: sqlite3.Row) -> TimerRow:
    return TimerRow(
        machine=r["machine"],
        entity_id=r["entity_id"],
        name=r["name"],
        due_at=_from_us(r["due_at"]),
        generation=r["generation"],
    )
