"""The PostgreSQL store: many worker processes on many hosts, one database.

``PostgresStore(dsn)`` implements :class:`~statewise.runtime.store.Store` through
psycopg 3 (``pip install 'statewise[postgres]'``) and a ``psycopg_pool`` connection
pool. ``dsn`` is a libpq URL (``postgresql://user@host/db``) or ``key=value`` string.

* **One PostgreSQL schema per store** (``schema=``, default ``statewise``; in a URL also
  ``?schema=name``, which is taken out before libpq sees it). Every table lives there;
  each connection's ``search_path`` is that schema alone, so several stores share a
  database without sharing a row.
* **Versioned migrations** through :mod:`statewise.runtime.migrations`, under a
  transaction-scoped advisory lock so processes opening a fresh database together
  apply each version once. ``migrate=True`` (the default) upgrades on open; a schema
  newer than the code is always refused (:class:`SchemaVersionError`).
* **Transactions**: ``transaction()`` takes a pooled connection and runs one READ
  COMMITTED transaction on it (set explicitly, whatever the server's default),
  committed when the block ends and rolled back when it raises. BEGIN travels in one
  pipeline with the first statement, so it costs no round trip of its own; an
  event's writes are one statement (data-modifying CTEs), and COMMIT travels with it.
  The store's statements bypass psycopg's cursors: they go through libpq's pipeline
  mode directly (:mod:`statewise.runtime.pg_pipeline`), prepared once per connection.
* **Locks**: ``lock_entity`` is ``SELECT ... FOR UPDATE``; ``inbox_pending``,
  ``outbox_claim`` and ``timers_due`` use ``FOR UPDATE SKIP LOCKED``, so concurrent
  workers pass over each other's rows instead of queueing behind them.
* **Time is the database's**: ``Tx.now()`` is the transaction's ``now()``, so leases and
  deadlines computed from it agree across hosts whatever their clocks say. Columns are
  ``timestamptz``; every connection runs with ``TimeZone=UTC`` and rows come back as
  aware UTC datetimes. A naive datetime handed in is a ``ValueError``.
* **Your own statements** run in the store's transaction through
  :attr:`PostgresTx.connection`: they commit or roll back with the store's writes.
* **JSON** is ``jsonb``, which keeps values, not text: key order is not kept, a float
  written with an exponent comes back as the equal int (``1e16`` as
  ``10000000000000000``), and a string holding ``\\u0000`` is refused by the server
  (``psycopg.errors.UntranslatableCharacter``). NaN and infinities are a ``ValueError``,
  as on SQLite. Identifiers (machine, entity id, keys, names) are ``text COLLATE "C"``:
  byte order, the order SQLite sorts them in.
* **Wake-up hints** (LISTEN/NOTIFY): a transaction that leaves work for a worker (an
  inbox row still unprocessed at commit, an outbox row nobody leased, leases
  released) sends one notification on commit; :meth:`PostgresStore.wait` blocks until
  one comes or a timeout passes. Only a hint: a worker that polls without it misses
  nothing, it only notices later.
"""

from __future__ import annotations

import contextlib
import functools
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Literal, cast
from urllib.parse import parse_qsl, quote, urlencode

import psycopg
from psycopg import IsolationLevel, sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool

from statewise.runtime.acks import DEFAULT_ACK_DELAY, BatchedAcks
from statewise.runtime.errors import ConcurrencyError, RuntimeStoreError
from statewise.runtime.migrations import VERSION_TABLE, Migration, apply, check_version
from statewise.runtime.pg_pipeline import Pipeline, Result, Statement
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
    "DEFAULT_SCHEMA",
    "MIGRATIONS",
    "PostgresMigrationTarget",
    "PostgresStore",
    "PostgresTx",
]

DEFAULT_SCHEMA = "statewise"

_ID = 'text COLLATE "C" NOT NULL'
MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        (
            f"""CREATE TABLE entities (
                machine {_ID}, entity_id {_ID}, state {_ID}, context jsonb NOT NULL,
                version bigint NOT NULL, entered_at timestamptz NOT NULL,
                bucket integer NOT NULL, PRIMARY KEY (machine, entity_id))""",
            f"""CREATE TABLE inbox (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                machine {_ID}, entity_id {_ID}, key {_ID}, event jsonb NOT NULL,
                received_at timestamptz NOT NULL, result jsonb,
                UNIQUE (machine, entity_id, key))""",
            # The pending rows only: processed ones are the bulk and never scanned again.
            "CREATE INDEX inbox_pending ON inbox (machine, id) WHERE result IS NULL",
            "CREATE INDEX inbox_entity_pending ON inbox (machine, entity_id, id)"
            " WHERE result IS NULL",
            f"""CREATE TABLE history (
                machine {_ID}, entity_id {_ID}, seq bigint NOT NULL, version bigint NOT NULL,
                event jsonb NOT NULL, from_state {_ID}, to_state {_ID},
                success boolean NOT NULL, error text, actions jsonb NOT NULL,
                at timestamptz NOT NULL, PRIMARY KEY (machine, entity_id, seq))""",
            f"""CREATE TABLE outbox (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                key {_ID} UNIQUE, machine {_ID}, entity_id {_ID},
                action jsonb NOT NULL, context jsonb NOT NULL,
                status text NOT NULL CHECK (status IN ('pending', 'done', 'dead')),
                attempts integer NOT NULL, next_attempt_at timestamptz NOT NULL,
                lease_owner text, lease_until timestamptz, last_error text,
                done_at timestamptz,
                CHECK ((lease_owner IS NULL) = (lease_until IS NULL)))""",
            "CREATE INDEX outbox_due ON outbox (next_attempt_at, id) WHERE status = 'pending'",
            "CREATE INDEX outbox_lease_owner ON outbox (lease_owner)"
            " WHERE status = 'pending' AND lease_owner IS NOT NULL",
            "CREATE INDEX outbox_machine ON outbox (machine, status)",
            f"""CREATE TABLE timers (
                machine {_ID}, entity_id {_ID}, name {_ID}, due_at timestamptz NOT NULL,
                generation bigint NOT NULL, PRIMARY KEY (machine, entity_id, name))""",
            "CREATE INDEX timers_due ON timers (machine, due_at, entity_id, name)",
            f"""CREATE TABLE workers (
                worker_id {_ID} PRIMARY KEY, pid integer NOT NULL, host text NOT NULL,
                status text NOT NULL, heartbeat_at timestamptz NOT NULL)""",
        ),
        "the runtime tables",
    ),
)
assert len(MIGRATIONS) == SCHEMA_VERSION, "a new SCHEMA_VERSION needs its migration here"


class _Conn(psycopg.Connection[DictRow]):
    """A pooled connection with the pipeline the store's statements run through (made
    when the pool configures the connection; its prepared statements live with it)."""

    statements: Pipeline


_OUTBOX_ROWS_PER_STATEMENT = 1000  # 11 parameters a row


class PostgresStore(BatchedAcks):
    """A :class:`~statewise.runtime.store.Store` on PostgreSQL; thread-safe.

    ``min_size`` / ``max_size`` bound the pool; ``timeout`` is how long
    ``transaction()`` waits for a free connection before ``psycopg_pool.PoolTimeout``.
    Opening connects once (a server that cannot be reached, or refuses the login, is a
    :class:`RuntimeStoreError` at once; libpq's ``connect_timeout`` in the DSN bounds
    the attempt), waits until ``min_size`` connections are up and, with ``migrate``,
    upgrades the schema. With ``migrate=False`` nothing is checked on open
    (``statewise db upgrade`` opens old stores so); the first transaction then refuses
    any version but ``SCHEMA_VERSION``.

    The store's statements are prepared on each connection the first time they run
    there; ``prepare=False`` (in a URL ``?prepare=off``) sends them unnamed every time,
    for a pooler that may run them on another server connection (PgBouncer before 1.21
    in transaction mode).

    ``url`` opens the same store again (``open_store(store.url)``, in another process):
    the DSN as a URL, with ``?schema=`` unless the schema is the default, and with the
    password if the DSN had one; ``repr`` and error messages show ``***`` instead.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str | None = None,
        migrate: bool = True,
        min_size: int = 1,
        max_size: int = 8,
        timeout: float = 30.0,
        ack_delay: float = DEFAULT_ACK_DELAY,
        prepare: bool | None = None,
    ) -> None:
        if not psycopg.Pipeline.is_supported():  # libpq before 14
            raise RuntimeStoreError(
                "PostgresStore needs libpq 14 or later for pipeline mode; psycopg uses "
                f"libpq {psycopg.pq.version()} (pip install 'psycopg[binary]' brings its own)"
            )
        self._init_acks(ack_delay)
        conninfo, url_schema, url_prepare = _split_options(dsn)
        if schema is not None and url_schema is not None and schema != url_schema:
            raise ValueError(f"schema {schema!r} given, but the URL names {url_schema!r}")
        if prepare is not None and url_prepare is not None and prepare != url_prepare:
            raise ValueError(f"prepare={prepare} given, but the URL says {url_prepare}")
        self._prepare: bool = next(p for p in (prepare, url_prepare, True) if p is not None)
        self.schema: str = schema or url_schema or DEFAULT_SCHEMA
        self.url: str = _url(dsn, conninfo, self.schema, prepare=self._prepare)
        self._conninfo = conninfo
        # A channel name is at most 63 bytes; stores whose names share those only share
        # wake-ups, which are hints anyway.
        self._channel = f"statewise.{self.schema}".encode()[:63].decode(errors="ignore")
        self._checked = False
        self._closed = False
        self._listen_lock = threading.Lock()
        self._local = threading.local()
        self._listener: _Conn | None = None
        self._pool: ConnectionPool[_Conn] = ConnectionPool(
            conninfo,
            connection_class=_Conn,
            kwargs={"row_factory": dict_row, "autocommit": True},
            configure=self._configure,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            open=False,
            name=f"statewise:{self.schema}",
        )
        try:
            # One connection first, so that a wrong DSN fails now with libpq's reason;
            # the pool would retry quietly until ``timeout`` and then only say so.
            try:
                psycopg.connect(conninfo).close()
            except psycopg.OperationalError as exc:
                raise RuntimeStoreError(f"cannot open {_masked(self.url)}: {exc}") from exc
            self._pool.open(wait=True, timeout=timeout)
            if migrate:
                self.upgrade()
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"PostgresStore({_masked(self.url)!r})"

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _configure(self, conn: _Conn) -> None:
        # Autocommit, so that transactions are exactly the ``conn.transaction()`` blocks
        # and nothing is left open between them; the isolation level is the one BEGIN
        # then asks for.
        conn.isolation_level = IsolationLevel.READ_COMMITTED
        conn.execute(
            "SELECT set_config('search_path', %s, false), set_config('TimeZone', 'UTC', false)",
            (sql.Identifier(self.schema).as_string(conn),),
        )
        conn.statements = Pipeline(conn, prepare=self._prepare)

    # -- Store -------------------------------------------------------------------------

    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[PostgresTx]:
        """One READ COMMITTED transaction on a pooled connection: committed when the
        block ends, rolled back when it raises. Not reentrant on one thread (a nested
        one would take a second connection and could wait forever on the first's
        locks): :class:`RuntimeStoreError`. It writes the acks :meth:`ack_later`
        holds first (sent with its first statement).

        ``durable=False`` runs it with ``SET LOCAL synchronous_commit = off``: the
        commit returns before its WAL record is flushed (the WAL writer flushes it
        within ``wal_writer_delay``; a server crash before that undoes it whole)."""
        self._check_open()
        if getattr(self._local, "active", False):
            raise RuntimeStoreError(
                f"{_masked(self.url)}: a transaction is already open on this thread; "
                "transaction() is not reentrant"
            )
        self._local.active = True
        try:
            with self._pool.connection() as conn:
                tx = PostgresTx(conn, _BEGIN if durable else _BEGIN_NOT_DURABLE, self._channel)
                acks = self._write_waiting_acks(tx)
                try:
                    yield tx
                    tx.commit()
                except BaseException:
                    tx.rollback()
                    self._acks.put_back(acks)
                    raise
                finally:
                    tx.end()
        finally:
            self._local.active = False

    def ack(self, row_id: int, owner: str, at: datetime | None = None) -> bool:
        """One statement in autocommit mode: its own transaction, one round trip. It
        sets ``synchronous_commit = off`` for that transaction alone (``set_config``
        with ``is_local``, evaluated once before any row is read)."""
        self._check_open()
        with self._pool.connection() as conn:
            [done] = conn.statements.run(
                [(_ACK_NOT_DURABLE, (None if at is None else _aware(at, "at"), row_id, owner))]
            )
            return done.rowcount == 1

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeStoreError(f"the store {_masked(self.url)} is closed")
        if not self._checked:
            check_version(
                self.schema_version(), known=SCHEMA_VERSION, url=_masked(self.url), migrate=False
            )
            self._checked = True

    def schema_version(self) -> int:
        with self._pool.connection() as conn:
            return PostgresMigrationTarget(conn).current_version()

    def upgrade(self) -> list[int]:
        with self._pool.connection() as conn, conn.transaction():
            # Serialize upgraders of this schema; released at commit or rollback.
            conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                (f"statewise.migrations:{self.schema}",),
            )
            row = conn.execute(
                "SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema,)
            ).fetchone()
            if row is None:
                # Only when missing: CREATE SCHEMA IF NOT EXISTS would need the CREATE
                # privilege on the database even when the schema is there.
                conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.schema)))
            applied = apply(PostgresMigrationTarget(conn), MIGRATIONS, url=_masked(self.url))
        self._checked = True  # apply() refused any other outcome than SCHEMA_VERSION
        return applied

    def wait(self, timeout: float) -> bool:
        """Block until a wake-up hint arrives (``True``) or ``timeout`` seconds pass
        (``False``); always poll after it, whichever it returns.

        The first call starts listening, on a connection of its own; hints sent while
        nobody is inside ``wait`` are kept for the next call, and one wake-up stands
        for every hint queued. A listening connection that was lost is reported as a
        wake-up (hints may have been missed) and replaced at once. Thread-safe; a
        ``close()`` meanwhile waits for the call to return."""
        with self._listen_lock:
            if self._closed:
                raise RuntimeStoreError(f"the store {_masked(self.url)} is closed")
            listener = self._listener or self._listen()
            try:
                hints = list(listener.notifies(timeout=timeout, stop_after=1))
                if hints:
                    hints += listener.notifies(timeout=0.0)  # those queued behind it too
            except psycopg.OperationalError:
                listener.close()
                self._listener = None
                with contextlib.suppress(psycopg.OperationalError):
                    self._listen()  # else the next call tries again
                return True
            return bool(hints)

    def _listen(self) -> _Conn:
        with contextlib.ExitStack() as closing:  # closes the connection if LISTEN fails
            listener: _Conn = closing.enter_context(
                _Conn.connect(self._conninfo, autocommit=True, row_factory=dict_row)
            )
            listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
            closing.pop_all()
        self._listener = listener
        return listener

    def close(self) -> None:
        """Write the acks still waiting, then close the pool and the listener."""
        if not self._closed:
            self._close_acks()
        self._closed = True
        self._pool.close()
        with self._listen_lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None


class PostgresMigrationTarget:
    """:class:`~statewise.runtime.migrations.MigrationTarget` on one connection."""

    def __init__(self, conn: _Conn) -> None:
        self._conn = conn

    def execute(self, statement: str) -> None:
        self._conn.execute(cast(Any, statement))

    def current_version(self) -> int:
        # to_regclass resolves through search_path, i.e. the store's schema alone.
        row = self._conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL AS present", (VERSION_TABLE,)
        ).fetchone()
        if row is None or not row["present"]:
            return 0
        found = self._conn.execute(
            sql.SQL("SELECT coalesce(max(version), 0) AS v FROM {}").format(
                sql.Identifier(VERSION_TABLE)
            )
        ).fetchone()
        return int(found["v"]) if found is not None else 0

    def record(self, version: int) -> None:
        self._conn.execute(
            sql.SQL(
                "INSERT INTO {} (version, applied_at) VALUES"
                " (%s, to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"'))"
            ).format(sql.Identifier(VERSION_TABLE)),
            (version,),
        )


_ENTITY = "machine, entity_id, state, context, version, entered_at"
_INBOX = "id, machine, entity_id, key, event, received_at, result"
_HISTORY = (
    "machine, entity_id, seq, version, event, from_state, to_state, success, error, actions, at"
)
_OUTBOX = (
    "id, key, machine, entity_id, action, context, status, attempts, next_attempt_at,"
    " lease_owner, lease_until, last_error"
)
_TIMER = "machine, entity_id, name, due_at, generation"
_WORKER = "worker_id, pid, host, status, heartbeat_at"


_BEGIN: tuple[bytes, ...] = (b"BEGIN ISOLATION LEVEL READ COMMITTED",)
_BEGIN_NOT_DURABLE = (*_BEGIN, b"SET LOCAL synchronous_commit = off")


class PostgresTx:
    """:class:`~statewise.runtime.store.Tx` on one connection inside one transaction.

    The transaction starts with its first statement: ``begin`` (BEGIN and the settings
    after it) goes to the server in one pipeline with that statement, so starting it
    costs no round trip of its own (a block that runs nothing sends nothing)."""

    def __init__(self, conn: _Conn, begin: Sequence[bytes] = _BEGIN, channel: str = "") -> None:
        self._conn: _Conn | None = conn
        self._statements = conn.statements
        self._begin: Sequence[bytes] | None = begin
        self._channel = channel
        self._committed = False
        # Acks to write before any statement that reads the outbox, or at the latest
        # with the event's write or the COMMIT: see outbox_ack_many.
        self._acks: list[tuple[int, datetime | None, str]] = []
        self._now: datetime | None = None
        self._pending_inbox: set[int] = set()
        self._wake = False

    @property
    def connection(self) -> _Conn:
        """This transaction's psycopg connection (rows come as dicts): statements of
        your own run on it commit or roll back together with the store's writes. The
        store keeps prepared statements on it (named ``sw_<n>``): do not ``DEALLOCATE
        ALL`` or ``DISCARD ALL`` there."""
        conn = self._db()
        if self._begin is not None:
            for statement in self._begin:
                conn.execute(statement)
            self._begin = None
        return conn

    def commit(self) -> None:
        """Commit, if anything was run and no ``write_event(last=True)`` committed
        already; with the wake-up hint when :attr:`wakes` (delivered at commit, and
        only then: a rollback wakes no one). A transaction a statement failed in
        (an error the block caught) is rolled back: ``RuntimeStoreError``."""
        if self._committed or (self._begin is not None and not self._acks):
            return  # committed already, or nothing to commit
        conn = self._db()
        if conn.info.transaction_status == TransactionStatus.INERROR:
            raise RuntimeStoreError(
                "a statement of this transaction failed, so it cannot commit: rolled back"
            )
        self._pipelined(*self._commit_statements())

    def _commit_statements(self) -> list[Statement]:
        notify = [("SELECT pg_notify(%s, '')", (self._channel,))] if self.wakes else []
        return [*self._take_acks(), *notify, (b"COMMIT", ())]

    def _take_acks(self) -> list[Statement]:
        """The acks waiting, as one statement (taken: sent with the next pipeline)."""
        acks, self._acks = self._acks, []
        if not acks:
            return []
        ctes = _ack_ctes(acks, "a")
        params = [value for _, values in ctes for value in values]
        return [("WITH " + ", ".join(cte for cte, _ in ctes) + " SELECT 1", params)]

    def rollback(self) -> None:
        """Roll back whatever is open; quietly, since it runs while an error is raised
        already (a broken connection is the pool's to discard)."""
        conn = self._conn
        if conn is None:
            return
        if conn.info.transaction_status in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
            with contextlib.suppress(psycopg.Error):
                conn.execute(b"ROLLBACK")

    def end(self) -> None:
        """The block ended: the connection is back in the pool, not this Tx's any more."""
        self._conn = None

    def _exec(self, query: str | bytes, params: Sequence[Any] = ()) -> Result:
        return self._pipelined((query, params))[0]

    def _pipelined(self, *statements: Statement, acks: bool = True) -> list[Result]:
        """Run ``statements`` (and BEGIN, if still to send, and with ``acks`` the acks
        waiting) in one round trip; each runs after the one before it has finished
        (with a snapshot of its own: READ COMMITTED), so it sees what those did. Every
        result is read before the first error is raised."""
        self._db()
        begin, self._begin = self._begin or (), None
        before: list[Statement] = [(b, ()) for b in begin]
        if acks and self._acks:
            before += self._take_acks()
        return self._statements.run([*before, *statements])[len(before) :]

    def _db(self) -> _Conn:
        if self._conn is None or self._committed:
            raise RuntimeStoreError("this transaction has ended; open a new one")
        return self._conn

    @property
    def wakes(self) -> bool:
        """Whether committing leaves work a worker should be woken for."""
        return self._wake or bool(self._pending_inbox)

    def _one(self, query: str, params: Sequence[Any] = ()) -> DictRow | None:
        return self._exec(query, params).fetchone()

    def _all(self, query: str, params: Sequence[Any] = ()) -> list[DictRow]:
        return self._exec(query, params).fetchall()

    def _count(self, query: str, params: Sequence[Any] = ()) -> int:
        return self._exec(query, params).rowcount

    def now(self) -> datetime:
        if self._now is None:
            row = self._one("SELECT now() AS now")
            assert row is not None
            self._now = _utc(row["now"])
        return self._now

    # -- the event path ----------------------------------------------------------------

    def receive(self, machine: str, entity_id: str, key: str | None, timer: str) -> Received | None:
        # Two statements, one round trip. The second starts once the first holds the
        # lock, so its snapshot (READ COMMITTED: taken per statement) sees every event
        # the previous holder committed; one statement would read inbox and timer rows
        # from a snapshot taken before the wait.
        locked, found = self._pipelined(
            (_LOCK, (machine, entity_id)),
            (_RECEIVE, (machine, entity_id, key, timer)),
            acks=False,  # reads no outbox row: the acks can ride with the write
        )
        row = locked.fetchone()
        if row is None:
            return None
        if self._now is None:
            self._now = _utc(row["tx_now"])
        got = found.fetchone()
        assert got is not None  # one row, whatever matched
        inbox = None
        if got["i_id"] is not None:
            inbox = InboxRow(
                id=got["i_id"],
                machine=machine,
                entity_id=entity_id,
                key=str(key),
                event=got["i_event"],
                received_at=_utc(got["i_received_at"]),
                result=got["i_result"],
            )
        armed = None
        if got["t_generation"] is not None:
            armed = TimerRow(machine, entity_id, timer, _utc(got["t_due_at"]), got["t_generation"])
        return Received(_entity(row), self._now, inbox, bool(got["backlog"]), armed)

    def write_event(self, write: EventWrite, *, last: bool = False) -> list[int]:
        return self._write(write, last=last)

    def write_expected(self, expected: Expected, write: EventWrite) -> list[int]:
        # One round trip: BEGIN (with the acks), the lock, the write (which checks
        # ``expected`` under that lock, and fails on NOT NULL as a moved-on version
        # does), COMMIT. After a failure the server skips the rest: nothing commits.
        if write.inbox_id is not None:
            raise ValueError("write_expected writes a new inbox row: inbox_id must be None")
        h = write.history
        try:
            return self._write(
                write, last=True, expected=expected, lock=(_LOCK, (h.machine, h.entity_id))
            )
        except psycopg.errors.UniqueViolation:
            # The rows of a write decided on a stale entity may clash with what was
            # written since (its inbox key redelivered, its outbox keys taken by the
            # version it thought next) before the check fails. Either way nothing is
            # written, and the caller's locked path raises again if it was no clash.
            raise ConcurrencyError(h.machine, h.entity_id, expected.version) from None

    def _write(
        self,
        write: EventWrite,
        *,
        last: bool,
        expected: Expected | None = None,
        lock: Statement | None = None,
    ) -> list[int]:
        statements: list[Statement] = [] if lock is None else [lock]
        statements.append(_event_statement(write, self._acks, expected))
        self._acks = []  # in that statement now (kept if making it raised)
        if write.inbox_id is not None:
            self._pending_inbox.discard(write.inbox_id)
        if any(r.status == "pending" and r.lease_owner is None for r in write.outbox):
            self._wake = True
        if last:
            statements += self._commit_statements()
        try:
            rows = self._pipelined(*statements)[0 if lock is None else 1].fetchall()
        except psycopg.errors.NotNullViolation as exc:
            # The statement chains its checks into NOT NULL columns (see
            # _event_statement): which column says which check failed.
            h = write.history
            if exc.diag.column_name == "version":
                raise ConcurrencyError(
                    h.machine, h.entity_id, h.version - 1 if expected is None else expected.version
                ) from None
            if exc.diag.column_name == "from_state":
                raise RuntimeStoreError(
                    f"inbox row {write.inbox_id} is unknown or already processed"
                ) from None
            raise
        self._committed = last
        by_key = {r["key"]: r["id"] for r in rows if r["key"] is not None}
        return [by_key[r.key] for r in write.outbox]

    # -- entities ----------------------------------------------------------------------

    def insert_entity(self, row: EntityRow) -> bool:
        return (
            self._count(
                "INSERT INTO entities (machine, entity_id, state, context, version, entered_at,"
                " bucket) VALUES (%s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (machine, entity_id) DO NOTHING",
                (
                    row.machine,
                    row.entity_id,
                    row.state,
                    _json(row.context),
                    row.version,
                    _aware(row.entered_at, "entered_at"),
                    entity_bucket(row.entity_id),
                ),
            )
            == 1
        )

    def lock_entity(self, machine: str, entity_id: str) -> EntityRow | None:
        # The transaction's now() comes along, so that now() needs no round trip later.
        row = self._one(_LOCK, (machine, entity_id))
        if row is None:
            return None
        if self._now is None:
            self._now = _utc(row["tx_now"])
        return _entity(row)

    def update_entity(self, row: EntityRow, *, expected_version: int) -> bool:
        return (
            self._count(
                "UPDATE entities SET state = %s, context = %s, version = %s, entered_at = %s"
                " WHERE machine = %s AND entity_id = %s AND version = %s",
                (
                    row.state,
                    _json(row.context),
                    row.version,
                    _aware(row.entered_at, "entered_at"),
                    row.machine,
                    row.entity_id,
                    expected_version,
                ),
            )
            == 1
        )

    def get_entity(self, machine: str, entity_id: str) -> EntityRow | None:
        row = self._one(
            f"SELECT {_ENTITY} FROM entities WHERE machine = %s AND entity_id = %s",
            (machine, entity_id),
        )
        return None if row is None else _entity(row)

    # -- inbox -------------------------------------------------------------------------

    def inbox_add(
        self, machine: str, entity_id: str, key: str, event: dict[str, Any], received_at: datetime
    ) -> tuple[InboxRow, bool]:
        received_at = _aware(received_at, "received_at")
        # ON CONFLICT waits for a concurrent insert of the same key to commit or roll
        # back, so the SELECT below (a new snapshot: READ COMMITTED) always finds it.
        row = self._one(
            "INSERT INTO inbox (machine, entity_id, key, event, received_at)"
            " VALUES (%s, %s, %s, %s, %s)"
            f" ON CONFLICT (machine, entity_id, key) DO NOTHING RETURNING {_INBOX}",
            (machine, entity_id, key, _json(event), received_at),
        )
        if row is not None:
            self._pending_inbox.add(row["id"])
            return _inbox(row), True
        row = self._one(
            f"SELECT {_INBOX} FROM inbox WHERE machine = %s AND entity_id = %s AND key = %s",
            (machine, entity_id, key),
        )
        assert row is not None, "a conflicting inbox row is committed, so visible"
        return _inbox(row), False

    def inbox_pending(self, machine: str, limit: int) -> list[InboxRow]:
        if limit < 1:
            return []  # PostgreSQL refuses a negative LIMIT
        # Locking the entity rows (not the inbox rows) skips entities another
        # transaction is applying events to right now.
        rows = self._all(
            f"SELECT {', '.join('i.' + c for c in _INBOX.split(', '))} FROM inbox i"
            " JOIN entities e ON e.machine = i.machine AND e.entity_id = i.entity_id"
            " WHERE i.machine = %s AND i.result IS NULL ORDER BY i.id LIMIT %s"
            " FOR UPDATE OF e SKIP LOCKED",
            (machine, limit),
        )
        return [_inbox(row) for row in rows]

    def inbox_first_pending(self, machine: str, entity_id: str) -> InboxRow | None:
        row = self._one(
            f"SELECT {_INBOX} FROM inbox WHERE machine = %s AND entity_id = %s"
            " AND result IS NULL ORDER BY id LIMIT 1",
            (machine, entity_id),
        )
        return None if row is None else _inbox(row)

    def inbox_done(self, inbox_id: int, result: dict[str, Any]) -> None:
        if not self._count(
            "UPDATE inbox SET result = %s WHERE id = %s AND result IS NULL",
            (_json(result), inbox_id),
        ):
            raise RuntimeStoreError(f"inbox row {inbox_id} is unknown or already processed")
        self._pending_inbox.discard(inbox_id)

    # -- history -----------------------------------------------------------------------

    def history_add(self, row: HistoryRow) -> None:
        self._exec(
            f"INSERT INTO history ({_HISTORY}) VALUES (%s, %s,"
            " coalesce(nullif(%s::bigint, 0), (SELECT coalesce(max(seq), 0) + 1 FROM history"
            " WHERE machine = %s AND entity_id = %s)), %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                row.machine,
                row.entity_id,
                row.seq,
                row.machine,
                row.entity_id,
                row.version,
                *_history_params(row),
            ),
        )

    def history(self, machine: str, entity_id: str) -> list[HistoryRow]:
        rows = self._all(
            f"SELECT {_HISTORY} FROM history WHERE machine = %s AND entity_id = %s ORDER BY seq",
            (machine, entity_id),
        )
        return [
            HistoryRow(
                machine=r["machine"],
                entity_id=r["entity_id"],
                seq=r["seq"],
                version=r["version"],
                event=r["event"],
                from_state=r["from_state"],
                to_state=r["to_state"],
                success=r["success"],
                error=r["error"],
                actions=r["actions"],
                at=_utc(r["at"]),
            )
            for r in rows
        ]

    def next_history_seq(self, machine: str, entity_id: str) -> int:
        row = self._one(
            "SELECT coalesce(max(seq), 0) + 1 AS seq FROM history"
            " WHERE machine = %s AND entity_id = %s",
            (machine, entity_id),
        )
        assert row is not None
        return int(row["seq"])

    # -- outbox ------------------------------------------------------------------------

    def outbox_add(self, rows: Sequence[OutboxRow]) -> list[int]:
        if not rows:
            return []
        params = [_outbox_params(r) for r in rows]
        # One statement for all the rows (executemany would run a pipeline, slower for
        # the one or two rows an event writes); ids are matched back by the unique key.
        # Chunks keep a statement under PostgreSQL's 65,535 parameters.
        by_key: dict[str, int] = {}
        for chunk in iter_chunks(params, _OUTBOX_ROWS_PER_STATEMENT):
            found = self._all(
                "INSERT INTO outbox (key, machine, entity_id, action, context, status,"
                " attempts, next_attempt_at, lease_owner, lease_until, last_error) VALUES "
                + ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"] * len(chunk))
                + " RETURNING id, key",
                [value for row in chunk for value in row],
            )
            by_key.update((r["key"], r["id"]) for r in found)
        ids: list[int] = [by_key[r.key] for r in rows]
        if any(r.status == "pending" and r.lease_owner is None for r in rows):
            self._wake = True
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
        if limit < 1 or (ids is not None and not ids):
            return []
        now = _aware(now, "now")
        params: list[Any] = [owner, _aware(lease_until, "lease_until"), now, now]
        only = ""
        if ids is not None:
            only = " AND id = ANY(%s::bigint[])"
            params.append(list(ids))
        # The inner SELECT locks the rows it picks and passes over rows another
        # claimer holds; the rows it locked are re-checked against the WHERE clause.
        rows = self._all(
            "UPDATE outbox SET lease_owner = %s, lease_until = %s"
            " WHERE id IN (SELECT id FROM outbox WHERE status = 'pending'"
            " AND next_attempt_at <= %s AND (lease_owner IS NULL OR lease_until <= %s)"
            + only
            + " ORDER BY next_attempt_at, id LIMIT %s FOR UPDATE SKIP LOCKED)"
            f" RETURNING {_OUTBOX}",
            [*params, limit],
        )
        claimed = [_outbox(row) for row in rows]
        claimed.sort(key=lambda r: (r.next_attempt_at, r.id))
        return claimed

    def outbox_ack(self, row_id: int, owner: str, now: datetime | None = None) -> bool:
        # Without ``now``: the transaction's now() in the statement itself, the value
        # Tx.now() would have fetched, without a round trip to fetch it first.
        at = self._now if now is None else _aware(now, "now")
        return self._count(_ACK, (at, row_id, owner)) == 1

    def outbox_ack_many(self, acks: Sequence[tuple[int, datetime | None]], owner: str) -> None:
        # No round trip of its own: sent with the next statement that may read the
        # outbox, else folded into the event's write (write_event), else with COMMIT.
        self._acks += [
            (row_id, None if at is None else _aware(at, "at"), owner) for row_id, at in acks
        ]

    def outbox_retry(
        self, row_id: int, owner: str, *, attempts: int, next_attempt_at: datetime, error: str
    ) -> bool:
        return (
            self._count(
                "UPDATE outbox SET attempts = %s, next_attempt_at = %s, last_error = %s,"
                " lease_owner = NULL, lease_until = NULL"
                " WHERE id = %s AND status = 'pending' AND lease_owner = %s",
                (attempts, _aware(next_attempt_at, "next_attempt_at"), error, row_id, owner),
            )
            == 1
        )

    def outbox_dead(self, row_id: int, owner: str, *, attempts: int, error: str) -> bool:
        return (
            self._count(
                "UPDATE outbox SET status = 'dead', attempts = %s, last_error = %s,"
                " lease_owner = NULL, lease_until = NULL"
                " WHERE id = %s AND status = 'pending' AND lease_owner = %s",
                (attempts, error, row_id, owner),
            )
            == 1
        )

    def outbox_release(self, owner: str) -> int:
        released = self._count(
            "UPDATE outbox SET lease_owner = NULL, lease_until = NULL"
            " WHERE status = 'pending' AND lease_owner = %s",
            (owner,),
        )
        if released:
            self._wake = True
        return released

    def outbox_rows(
        self, *, status: str | None = None, machine: str | None = None
    ) -> list[OutboxRow]:
        rows = self._all(
            f"SELECT {_OUTBOX} FROM outbox"
            " WHERE (%s::text IS NULL OR status = %s) AND (%s::text IS NULL OR machine = %s)"
            " ORDER BY id",
            (status, status, machine, machine),
        )
        return [_outbox(row) for row in rows]

    # -- timers ------------------------------------------------------------------------

    def timer_set(self, row: TimerRow) -> None:
        self._exec(
            f"INSERT INTO timers ({_TIMER}) VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT (machine, entity_id, name)"
            " DO UPDATE SET due_at = excluded.due_at, generation = excluded.generation",
            (row.machine, row.entity_id, row.name, _aware(row.due_at, "due_at"), row.generation),
        )

    def timer_cancel(self, machine: str, entity_id: str, name: str) -> None:
        self._exec(
            "DELETE FROM timers WHERE machine = %s AND entity_id = %s AND name = %s",
            (machine, entity_id, name),
        )

    def timers_due(self, machine: str, now: datetime, limit: int) -> list[TimerRow]:
        if limit < 1:
            return []
        rows = self._all(
            f"SELECT {_TIMER} FROM timers WHERE machine = %s AND due_at <= %s"
            " ORDER BY due_at, entity_id, name LIMIT %s FOR UPDATE SKIP LOCKED",
            (machine, _aware(now, "now"), limit),
        )
        return [_timer(row) for row in rows]

    def timer_get(self, machine: str, entity_id: str, name: str) -> TimerRow | None:
        row = self._one(
            f"SELECT {_TIMER} FROM timers WHERE machine = %s AND entity_id = %s AND name = %s",
            (machine, entity_id, name),
        )
        return None if row is None else _timer(row)

    # -- workers -----------------------------------------------------------------------

    def worker_beat(self, row: WorkerRow) -> None:
        self._exec(
            f"INSERT INTO workers ({_WORKER}) VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT (worker_id) DO UPDATE SET pid = excluded.pid, host = excluded.host,"
            " status = excluded.status, heartbeat_at = excluded.heartbeat_at",
            (
                row.worker_id,
                row.pid,
                row.host,
                row.status,
                _aware(row.heartbeat_at, "heartbeat_at"),
            ),
        )

    def workers(self) -> list[WorkerRow]:
        rows = self._all(f"SELECT {_WORKER} FROM workers ORDER BY worker_id")
        return [
            WorkerRow(
                worker_id=r["worker_id"],
                pid=r["pid"],
                host=r["host"],
                status=r["status"],
                heartbeat_at=_utc(r["heartbeat_at"]),
            )
            for r in rows
        ]


# -- the event path's statements -------------------------------------------------------

_LOCK = (
    f"SELECT {_ENTITY}, now() AS tx_now FROM entities"
    " WHERE machine = %s AND entity_id = %s FOR UPDATE"
)

_ACK = (
    "UPDATE outbox SET status = 'done', done_at = coalesce(%s::timestamptz, now()),"
    " lease_owner = NULL, lease_until = NULL"
    " WHERE id = %s AND status = 'pending' AND lease_owner = %s"
)

_ACK_NOT_DURABLE = _ACK + " AND (SELECT set_config('synchronous_commit', 'off', true)) = 'off'"

_ACKS_ONE_BY_ONE = 4
_ACK_MANY = (
    "UPDATE outbox o SET status = 'done', done_at = coalesce(a.at, now()),"
    " lease_owner = NULL, lease_until = NULL"
    " FROM unnest(%s::bigint[], %s::timestamptz[], %s::text[]) AS a (id, at, owner)"
    " WHERE o.id = a.id AND o.status = 'pending' AND o.lease_owner = a.owner"
)

# One row whatever matches: the inbox row under the key (if any), whether older events
# wait, and the timer.
_RECEIVE = (
    "SELECT i.id AS i_id, i.event AS i_event, i.received_at AS i_received_at,"
    " i.result AS i_result,"
    " EXISTS (SELECT 1 FROM inbox p WHERE p.machine = k.machine AND p.entity_id = k.entity_id"
    " AND p.result IS NULL AND (i.id IS NULL OR p.id < i.id)) AS backlog,"
    " t.due_at AS t_due_at, t.generation AS t_generation"
    ' FROM (SELECT %s::text COLLATE "C" AS machine, %s::text COLLATE "C" AS entity_id) k'
    " LEFT JOIN inbox i ON i.machine = k.machine AND i.entity_id = k.entity_id AND i.key = %s"
    " LEFT JOIN timers t ON t.machine = k.machine AND t.entity_id = k.entity_id"
    " AND t.name = %s"
)


def _ack_ctes(
    acks: Sequence[tuple[int, datetime | None, str]], prefix: str
) -> list[tuple[str, list[Any]]]:
    """The acks as CTEs (``<prefix><n> AS (UPDATE ...)``): one UPDATE each for a few,
    one over ``unnest`` for more (adapting arrays costs more client time than a few
    UPDATEs). One statement updates a row once at most, so a row acked twice by one
    owner keeps its first ack, as separate statements would."""
    first: dict[tuple[int, str], tuple[int, datetime | None, str]] = {}
    for row_id, at, owner in acks:
        first.setdefault((row_id, owner), (row_id, at, owner))
    acks = list(first.values())
    if len(acks) <= _ACKS_ONE_BY_ONE:
        return [
            (_ack_cte(prefix, n, many=False), [at, row_id, owner])
            for n, (row_id, at, owner) in enumerate(acks)
        ]
    ids, ats, owners = ([a[i] for a in acks] for i in range(3))
    return [(_ack_cte(prefix, 0, many=True), [ids, ats, owners])]


@functools.cache
def _ack_cte(prefix: str, n: int, *, many: bool) -> str:
    return f"{prefix}{n} AS ({_ACK_MANY if many else _ACK})"


def _event_statement(
    write: EventWrite,
    acks: Sequence[tuple[int, datetime | None, str]] = (),
    expected: Expected | None = None,
) -> tuple[str, list[Any]]:
    """One statement for all of ``write``: data-modifying CTEs, one round trip.

    The checks fail the statement, so that nothing of it can commit: the history row
    takes its ``version`` from the entity's UPDATE (an applied event), and its
    ``from_state`` only if the inbox row's INSERT or UPDATE returned a row; both are
    NOT NULL, so an UPDATE that matched nothing (a version moved on, an inbox row
    already processed) leaves NULL there, and the NOT NULL violation names the
    column. With ``expected`` (:meth:`PostgresTx.write_expected`) a first CTE checks
    it, and both the UPDATE and a rejected event's ``version`` hang on that check;
    with its ``store_clock`` every time is written as ``now()`` plus its distance from
    ``received_at``. Rows: the outbox rows' ids and keys (none: one row of NULLs)."""
    h = write.history
    relative = expected is not None and expected.store_clock
    when: Callable[[datetime, str], Any] = _aware
    if relative:
        if write.received_at is None:
            raise ValueError("an EventWrite on the store's clock needs received_at")
        base = _aware(write.received_at, "received_at")

        def when(value: datetime, name: str) -> Any:
            return _aware(value, name) - base

    ack_ctes = _ack_ctes(acks, "ack")
    params: list[Any] = [value for _, values in ack_ctes for value in values]
    if expected is not None:
        params += [h.machine, h.entity_id, expected.version, h.machine, h.entity_id]
        params += [h.machine, h.entity_id, expected.timer, expected.generation]
    if write.applied:
        entered = None if write.entered_at is None else when(write.entered_at, "entered_at")
        params += [h.to_state, h.version, entered, h.machine, h.entity_id, h.version - 1]
    event = _json(h.event) if write.event_json is None else write.event_json
    result = _json(write.result) if write.result_json is None else write.result_json
    if write.inbox_id is None:
        if write.received_at is None:
            raise ValueError("an EventWrite without inbox_id needs received_at")
        params += [
            h.machine,
            h.entity_id,
            write.key,
            event,
            when(write.received_at, "received_at"),
            result,
        ]
    else:
        params += [result, write.inbox_id]
    params += [h.machine, h.entity_id, h.seq, h.machine, h.entity_id]
    if not write.applied and expected is None:
        params.append(h.version)
    params += _history_params(h, event, when)
    if write.timer_set is not None:
        t = write.timer_set
        params += [t.machine, t.entity_id, t.name, when(t.due_at, "due_at"), t.generation]
    if write.timer_cancel is not None:
        params += [h.machine, h.entity_id, write.timer_cancel]
    params += [value for row in write.outbox for value in _outbox_params(row, when)]
    sql = _event_sql(
        tuple(cte for cte, _ in ack_ctes),
        applied=write.applied,
        insert=write.inbox_id is None,
        timer_set=write.timer_set is not None,
        timer_cancel=write.timer_cancel is not None,
        outbox=len(write.outbox),
        expected=expected is not None,
        relative=relative,
    )
    return sql, params


# Checks Expected: the version, no unprocessed event, the timer's generation. Its row,
# or none, is what the write hangs on.
_EXPECTED_CTE = (
    "v AS (SELECT version FROM entities WHERE machine = %s AND entity_id = %s"
    " AND version = %s AND NOT EXISTS (SELECT 1 FROM inbox WHERE machine = %s"
    " AND entity_id = %s AND result IS NULL) AND (SELECT generation FROM timers"
    " WHERE machine = %s AND entity_id = %s AND name = %s) IS NOT DISTINCT FROM %s::bigint)"
)


@functools.lru_cache(maxsize=256)
def _event_sql(
    acks: tuple[str, ...],
    *,
    applied: bool,
    insert: bool,
    timer_set: bool,
    timer_cancel: bool,
    outbox: int,
    expected: bool = False,
    relative: bool = False,
) -> str:
    """The text of :func:`_event_statement` for one shape of write (kept: the same
    text object each time, so that neither it nor its hash is built again)."""
    ctes = list(acks)
    # A time: as given, or (``relative``) the transaction's clock plus an interval.
    at = "(now() + %s::interval)" if relative else "%s::timestamptz"
    version = "%s::bigint"
    if expected:
        ctes.append(_EXPECTED_CTE)
        version = "(SELECT version FROM v)"
    if applied:
        check = " AND EXISTS (SELECT 1 FROM v)" if expected else ""
        ctes.append(
            "e AS (UPDATE entities SET state = %s, version = %s,"
            f" entered_at = coalesce({at}, entered_at)"
            f" WHERE machine = %s AND entity_id = %s AND version = %s{check} RETURNING version)"
        )
        version = "(SELECT version FROM e)"
    if insert:
        ctes.append(
            "i AS (INSERT INTO inbox (machine, entity_id, key, event, received_at, result)"
            f" VALUES (%s, %s, %s, %s, {at}, %s) RETURNING id)"
        )
    else:
        ctes.append(
            "i AS (UPDATE inbox SET result = %s WHERE id = %s AND result IS NULL RETURNING id)"
        )
    ctes.append(
        f"h AS (INSERT INTO history ({_HISTORY}) VALUES (%s, %s,"
        " coalesce(nullif(%s::bigint, 0), (SELECT coalesce(max(seq), 0) + 1 FROM history"
        " WHERE machine = %s AND entity_id = %s)),"
        f" {version}, %s, (SELECT %s::text FROM i), %s, %s, %s, %s, {at}))"
    )
    if timer_set:
        ctes.append(
            f"t AS (INSERT INTO timers ({_TIMER}) VALUES (%s, %s, %s, {at}, %s)"
            " ON CONFLICT (machine, entity_id, name)"
            " DO UPDATE SET due_at = excluded.due_at, generation = excluded.generation)"
        )
    if timer_cancel:
        ctes.append("c AS (DELETE FROM timers WHERE machine = %s AND entity_id = %s AND name = %s)")
    tail = "SELECT NULL::bigint AS id, NULL::text AS key"
    if outbox:
        row = f"(%s, %s, %s, %s, %s, %s, %s, {at}, %s, {at}, %s)"
        ctes.append(
            "o AS (INSERT INTO outbox (key, machine, entity_id, action, context, status,"
            " attempts, next_attempt_at, lease_owner, lease_until, last_error) VALUES "
            + ", ".join([row] * outbox)
            + " RETURNING id, key)"
        )
        tail = "SELECT id, key FROM o"
    return "WITH " + ", ".join(ctes) + " " + tail


# -- rows --------------------------------------------------------------------------------


def _json(value: Any) -> str:
    # JSON text: every jsonb parameter is a column's value, so the server takes the
    # text as jsonb (parameters go as text, their types inferred: pg_pipeline).
    return dump_json(value)


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got naive {value!r}")
    return value


def _utc(value: datetime) -> datetime:
    # The session is in UTC already; psycopg's tzinfo for it is ZoneInfo("UTC").
    return value.astimezone(UTC)


def _history_params(
    h: HistoryRow, event: str | None = None, when: Callable[[datetime, str], Any] = _aware
) -> list[Any]:
    """A history row's values from ``event`` on, in ``_HISTORY`` order (``event``: the
    event's JSON, when made already; ``when``: how a time is written)."""
    return [
        _json(h.event) if event is None else event,
        h.from_state,
        h.to_state,
        h.success,
        h.error,
        _json(list(h.actions)),
        when(h.at, "at"),
    ]


def _outbox_params(r: OutboxRow, when: Callable[[datetime, str], Any] = _aware) -> tuple[Any, ...]:
    return (
        r.key,
        r.machine,
        r.entity_id,
        _json(r.action),
        _json(r.context),
        r.status,
        r.attempts,
        when(r.next_attempt_at, "next_attempt_at"),
        r.lease_owner,
        None if r.lease_until is None else when(r.lease_until, "lease_until"),
        r.last_error,
    )


def _entity(r: DictRow) -> EntityRow:
    return EntityRow(
        machine=r["machine"],
        entity_id=r["entity_id"],
        state=r["state"],
        context=r["context"],
        version=r["version"],
        entered_at=_utc(r["entered_at"]),
    )


def _inbox(r: DictRow) -> InboxRow:
    return InboxRow(
        id=r["id"],
        machine=r["machine"],
        entity_id=r["entity_id"],
        key=r["key"],
        event=r["event"],
        received_at=_utc(r["received_at"]),
        result=r["result"],
    )


def _outbox(r: DictRow) -> OutboxRow:
    status: Literal["pending", "done", "dead"] = r["status"]
    return OutboxRow(
        id=r["id"],
        key=r["key"],
        machine=r["machine"],
        entity_id=r["entity_id"],
        action=r["action"],
        context=r["context"],
        status=status,
        attempts=r["attempts"],
        next_attempt_at=_utc(r["next_attempt_at"]),
        lease_owner=r["lease_owner"],
        lease_until=None if r["lease_until"] is None else _utc(r["lease_until"]),
        last_error=r["last_error"],
    )


def _timer(r: DictRow) -> TimerRow:
    return TimerRow(
        machine=r["machine"],
        entity_id=r["entity_id"],
        name=r["name"],
        due_at=_utc(r["due_at"]),
        generation=r["generation"],
    )


# -- URLs --------------------------------------------------------------------------------


def _is_url(dsn: str) -> bool:
    return dsn.startswith(("postgresql://", "postgres://"))


_SWITCH = dict.fromkeys(("on", "true", "yes", "1"), True) | dict.fromkeys(
    ("off", "false", "no", "0"), False
)


def _split_options(dsn: str) -> tuple[str, str | None, bool | None]:
    """The conninfo libpq gets, and the store's own query parameters of a URL (taken
    out of it): ``schema`` and ``prepare`` (on/off), if given."""
    if not _is_url(dsn):
        return dsn, None, None
    base, _, query = dsn.partition("?")
    params = parse_qsl(query, keep_blank_values=True)
    ours = {k: v for k, v in params if k in ("schema", "prepare")}
    if not ours:
        return dsn, None, None
    prepare = None
    if "prepare" in ours:
        prepare = _SWITCH.get(ours["prepare"].lower())
        if prepare is None:
            raise ValueError(f"?prepare= takes on or off, got {ours['prepare']!r}")
    conninfo = _with_query(base, [(k, v) for k, v in params if k not in ours])
    return conninfo, ours.get("schema"), prepare


def _with_query(base: str, params: list[tuple[str, str]]) -> str:
    # By hand, not urlunsplit: that drops the "//" of a URL with no host
    # (postgresql:///db?host=/run/postgresql), which libpq then rejects.
    return f"{base}?{urlencode(params, safe='/*', quote_via=quote)}" if params else base


def _url(dsn: str, conninfo: str, schema: str, *, prepare: bool = True) -> str:
    """A URL that opens this store again: the URL given (or the ``key=value`` DSN
    written as one), naming the schema unless it is the default, and ``prepare=off``
    when so."""
    extra = [] if schema == DEFAULT_SCHEMA else [("schema", schema)]
    if not prepare:
        extra.append(("prepare", "off"))
    if _is_url(dsn):
        base, _, query = conninfo.partition("?")
        return _with_query(base, parse_qsl(query, keep_blank_values=True) + extra)
    params = [(k, str(v)) for k, v in sorted(conninfo_to_dict(conninfo).items())]
    return _with_query("postgresql://", params + extra)


_PASSWORD_IN_USERINFO = re.compile(r"\A([a-z]+://[^:/?@]*):[^/?@]*@")


def _masked(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages and logs)."""
    base, _, query = _PASSWORD_IN_USERINFO.sub(r"\1:***@", url).partition("?")
    params = parse_qsl(query, keep_blank_values=True)
    return _with_query(base, [(k, "***" if k == "password" else v) for k, v in params])
