"""What only SQLiteStore promises: WAL, BEGIN IMMEDIATE, busy handling, processes
sharing one file, threads and forks, the file's own layout."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from statewise.runtime import sqlite as sqlite_module
from statewise.runtime.errors import RuntimeStoreError
from statewise.runtime.migrations import latest_version
from statewise.runtime.sqlite import (
    MIGRATIONS,
    SQLiteStore,
    check_sqlite_version,
)
from statewise.runtime.store import (
    SCHEMA_VERSION,
    EntityRow,
    HistoryRow,
    OutboxRow,
    Store,
    entity_bucket,
)
from statewise.runtime.urls import open_store
from tests.runtime.sqlite_writers import ENTITY, MACHINE, increment

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None, check_same_thread=False)


@contextmanager
def write_lock_held(path: Path, release_after: float | None = None) -> Iterator[None]:
    """Another connection holding the file's write lock: for the whole block, or
    released by a timer thread ``release_after`` seconds into it."""
    with closing(raw(path)) as conn:
        conn.execute("BEGIN IMMEDIATE")
        timer = None
        if release_after is not None:
            timer = threading.Timer(release_after, conn.execute, ("ROLLBACK",))
            timer.start()
        try:
            yield
        finally:
            if timer is not None:
                timer.join()
            if conn.in_transaction:
                conn.execute("ROLLBACK")


def counter(store: Store) -> EntityRow:
    with store.transaction() as tx:
        row = tx.get_entity(MACHINE, ENTITY)
    assert row is not None
    return row


def bump(store: Store) -> None:
    with store.transaction() as tx:
        row = tx.lock_entity(MACHINE, ENTITY)
        assert row is not None
        after = EntityRow(
            MACHINE, ENTITY, row.state, {"count": row.context["count"] + 1}, row.version + 1, T0
        )
        assert tx.update_entity(after, expected_version=row.version)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


@pytest.fixture
def store(path: Path) -> Iterator[SQLiteStore]:
    with SQLiteStore(path) as opened:
        with opened.transaction() as tx:
            tx.insert_entity(EntityRow(MACHINE, ENTITY, "COUNTING", {"count": 0}, 0, T0))
        yield opened


# -- settings


def test_the_file_is_in_wal_mode_with_full_sync_and_a_busy_timeout(
    store: SQLiteStore, path: Path
) -> None:
    assert store.pragmas() == {"journal_mode": "wal", "synchronous": "FULL", "busy_timeout": 30_000}
    with closing(raw(path)) as conn:  # WAL is a property of the file, seen by anyone
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_non_durable_transaction_commits_with_normal_sync_then_restores_full(
    store: SQLiteStore,
) -> None:
    with store.transaction(durable=False) as tx:
        assert tx.insert_entity(EntityRow("m", "e", "A", {}, 1, tx.now()))
        assert store.pragmas()["synchronous"] == "NORMAL"
    assert store.pragmas()["synchronous"] == "FULL"
    with pytest.raises(RuntimeError), store.transaction(durable=False):
        raise RuntimeError("restored on the way out too")
    assert store.pragmas()["synchronous"] == "FULL"
    with store.transaction() as tx:
        assert store.pragmas()["synchronous"] == "FULL"
        assert tx.get_entity("m", "e") is not None


def test_synchronous_normal_and_the_busy_timeout_are_configurable(path: Path) -> None:
    with SQLiteStore(path, synchronous="normal", busy_timeout_ms=250) as store:
        assert store.pragmas() == {
            "journal_mode": "wal",
            "synchronous": "NORMAL",
            "busy_timeout": 250,
        }
        assert (store.synchronous, store.busy_timeout_ms) == ("NORMAL", 250)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"synchronous": "OFF"}, ValueError, "synchronous must be one of FULL, NORMAL, got 'OFF'"),
        ({"busy_timeout_ms": -1}, ValueError, "busy_timeout_ms must be >= 0"),
        ({"busy_timeout_ms": 1.5}, TypeError, "busy_timeout_ms must be an int"),
        ({"busy_timeout_ms": True}, TypeError, "busy_timeout_ms must be an int"),
    ],
)
def test_bad_settings_are_refused_before_the_file_is_touched(
    path: Path, options: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        SQLiteStore(path, **options)  # type: ignore[arg-type]
    assert not path.exists()


def test_the_migrations_end_at_the_schema_version() -> None:
    assert latest_version(MIGRATIONS) == SCHEMA_VERSION


def test_an_old_sqlite_library_is_refused_by_name() -> None:
    check_sqlite_version(sqlite3.sqlite_version_info)
    with pytest.raises(RuntimeStoreError, match=r"needs SQLite 3\.24\.0 or later; .* 3\.23\.1"):
        check_sqlite_version((3, 23, 1))


# -- the URL and the file


def test_the_url_names_the_absolute_path_and_reopens_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a dir").mkdir()
    with SQLiteStore("a dir/orders.db") as store:
        assert store.path == tmp_path / "a dir" / "orders.db"
        assert store.url == f"sqlite:///{tmp_path.as_posix()}/a%20dir/orders.db"
        assert store.url.startswith("sqlite:////")
        assert repr(store) == f"SQLiteStore({store.url!r})"
        with store.transaction() as tx:
            tx.insert_entity(EntityRow("m", "e", "S", {}, 1, T0))
    again = open_store(store.url, migrate=False)
    assert isinstance(again, SQLiteStore)
    with again, again.transaction() as tx:
        assert tx.get_entity("m", "e") is not None


def test_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeStoreError, match=r"the directory .*nowhere does not exist"):
        SQLiteStore(tmp_path / "nowhere" / "store.db")


def test_a_file_that_is_not_a_database_is_a_clear_error(path: Path) -> None:
    path.write_bytes(b"this is not an SQLite database, not even close" * 100)
    with pytest.raises(
        RuntimeStoreError, match=r"cannot open sqlite:///.*: file is not a database"
    ):
        SQLiteStore(path)


def test_a_directory_is_not_a_database(tmp_path: Path) -> None:
    with pytest.raises(RuntimeStoreError, match="cannot open"):
        SQLiteStore(tmp_path)


def test_times_are_integer_microseconds_and_the_bucket_is_written(
    store: SQLiteStore, path: Path
) -> None:
    with closing(raw(path)) as conn:
        entered, bucket = conn.execute(
            "SELECT entered_at, bucket FROM entities WHERE entity_id = ?", (ENTITY,)
        ).fetchone()
        (applied_at,) = conn.execute("SELECT applied_at FROM schema_migrations").fetchone()
    assert entered == int(T0.timestamp()) * 1_000_000
    assert bucket == entity_bucket(ENTITY)
    assert datetime.fromisoformat(applied_at).utcoffset() is not None


def test_duplicate_keys_are_the_drivers_integrity_errors(store: SQLiteStore) -> None:
    row = HistoryRow(MACHINE, ENTITY, 1, 1, {}, "A", "B", True, None, [], T0)
    with store.transaction() as tx:
        tx.history_add(row)
    with pytest.raises(sqlite3.IntegrityError), store.transaction() as tx:
        tx.history_add(row)
    action = OutboxRow(
        0, "k", MACHINE, ENTITY, {"name": "a"}, {}, "pending", 0, T0, None, None, None
    )
    with pytest.raises(sqlite3.IntegrityError), store.transaction() as tx:
        tx.outbox_add([action, action])
    with store.transaction() as tx:  # the failed transactions wrote nothing
        assert tx.history(MACHINE, ENTITY) == [row]
        assert tx.outbox_rows() == []


def test_nan_is_not_json(store: SQLiteStore) -> None:
    with pytest.raises(ValueError, match="JSON"), store.transaction() as tx:
        tx.insert_entity(EntityRow(MACHINE, "nan", "S", {"x": float("nan")}, 1, T0))


def test_many_ids_are_claimed_in_chunks(store: SQLiteStore) -> None:
    rows = [
        OutboxRow(
            0, f"k{i}", MACHINE, ENTITY, {"name": "a"}, {}, "pending", 0, T0, None, None, None
        )
        for i in range(1_200)
    ]
    with store.transaction() as tx:
        ids = tx.outbox_add(rows)
        until = T0.replace(hour=1)
        claimed = tx.outbox_claim(now=T0, lease_until=until, owner="w", limit=1_100, ids=ids[::-1])
    assert [r.id for r in claimed] == ids[:1_100]
    with store.transaction() as tx:
        leased = [r.id for r in tx.outbox_rows() if r.lease_owner == "w"]
    assert leased == ids[:1_100]


# -- transactions


def test_a_transaction_is_not_reentrant(store: SQLiteStore) -> None:
    with store.transaction(), pytest.raises(RuntimeStoreError, match="not reentrant"):
        store.transaction().__enter__()
    bump(store)  # the outer one committed and the connection is usable
    assert counter(store).version == 1


def test_a_transaction_cannot_be_used_after_its_block(store: SQLiteStore) -> None:
    with store.transaction() as tx:
        pass
    with pytest.raises(RuntimeStoreError, match="this transaction has ended"):
        tx.get_entity(MACHINE, ENTITY)


def test_a_closed_store_refuses_to_work(path: Path) -> None:
    store = SQLiteStore(path)
    store.close()
    store.close()  # idempotent
    with pytest.raises(RuntimeStoreError, match="is closed"), store.transaction():
        pass


def test_a_write_waits_for_another_writer_within_the_busy_timeout(
    store: SQLiteStore, path: Path
) -> None:
    started = time.monotonic()
    with write_lock_held(path, release_after=0.2):
        bump(store)
        waited = time.monotonic() - started
    assert waited >= 0.2
    assert counter(store).context["count"] == 1


def test_busy_without_waiting_is_retried_until_the_lock_is_free(path: Path) -> None:
    with SQLiteStore(path, busy_timeout_ms=0) as store:
        with store.transaction() as tx:
            tx.insert_entity(EntityRow(MACHINE, ENTITY, "COUNTING", {"count": 0}, 0, T0))
        # busy_timeout 0: SQLite answers SQLITE_BUSY at once; the store's own retries
        # must carry the write past the lock's release.
        with write_lock_held(path, release_after=0.15):
            bump(store)
        assert counter(store).context["count"] == 1


def test_a_lock_never_released_ends_in_a_clear_error(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_module, "BUSY_RETRY_DELAYS", (0.001, 0.001))
    with SQLiteStore(path, busy_timeout_ms=0) as store, write_lock_held(path):
        with pytest.raises(RuntimeStoreError, match=r"stayed locked \(BEGIN IMMEDIATE\)") as err:
            bump(store)
        cause = err.value.__cause__
        assert isinstance(cause, sqlite3.OperationalError)
        assert "locked" in str(cause)


def test_only_busy_errors_are_retried(path: Path) -> None:
    calls: list[int] = []

    def missing_table() -> None:
        calls.append(1)
        with closing(raw(path)) as conn:
            conn.execute("SELECT * FROM nowhere")

    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        sqlite_module._busy_retry("sqlite:///x", "SELECT", missing_table)
    assert calls == [1]


# -- schema


def test_opening_a_fresh_file_concurrently_migrates_it_once(path: Path) -> None:
    stores: list[SQLiteStore] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def open_one() -> None:
        try:
            start.wait()
            stores.append(SQLiteStore(path))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    assert errors == []
    with closing(raw(path)) as conn:
        versions = conn.execute("SELECT version FROM schema_migrations").fetchall()
    assert versions == [(v,) for v in range(1, SCHEMA_VERSION + 1)]


# -- threads, processes, forks


def test_threads_share_a_store_with_a_connection_each(store: SQLiteStore) -> None:
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(20):
                bump(store)
        except BaseException as exc:
            errors.append(exc)

    for _ in range(2):  # a second wave: the first wave's connections are closed then
        threads = [threading.Thread(target=work) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    assert counter(store).context["count"] == 120


def test_four_writer_processes_share_one_file_without_a_busy_error(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"  # missing: the writers race to create and migrate it
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Barrier(4)
    rounds = 200
    writers = [
        spawn.Process(target=increment, args=(str(path), rounds, start, "FULL")) for _ in range(4)
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
    assert [w.exitcode for w in writers] == [0, 0, 0, 0]
    with SQLiteStore(path, migrate=False) as store:
        final = counter(store)
    assert (final.context["count"], final.version) == (4 * rounds, 4 * rounds)


@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="no fork on this platform"
)
def test_a_forked_child_opens_its_own_connection(store: SQLiteStore, path: Path) -> None:
    bump(store)  # the parent's connection exists before the fork
    child = multiprocessing.get_context("fork").Process(target=bump_in_child, args=(store,))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0
    bump(store)  # the parent's connection still works, and sees the child's write
    assert counter(store).context["count"] == 3
    with closing(raw(path)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def bump_in_child(store: SQLiteStore) -> None:
    bump(store)
    store.close()


def test_a_store_used_after_a_fork_opens_fresh_connections(store: SQLiteStore) -> None:
    # What a forked child sees, without forking: the store was opened under another
    # pid. The inherited connection is set aside (kept open, never used), not closed.
    assert counter(store).version == 0  # this thread's connection is open
    store._pid = -1
    bump(store)
    assert store._pid > 0
    assert len(store._inherited) == 1
    assert counter(store).context["count"] == 1


def test_a_file_locked_exclusively_is_a_clear_error(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_module, "BUSY_RETRY_DELAYS", (0.001,))
    with closing(raw(path)) as other:
        # A rollback-journal database held exclusively: switching it to WAL needs a lock.
        other.execute("PRAGMA locking_mode = EXCLUSIVE")
        other.execute("CREATE TABLE t (x)")
        other.execute("BEGIN EXCLUSIVE")
        with pytest.raises(RuntimeStoreError, match=r"stayed locked \(PRAGMA journal_mode\)"):
            SQLiteStore(path, busy_timeout_ms=0)
        other.execute("ROLLBACK")


def test_an_ack_inside_a_transaction_on_the_same_thread_is_refused(store: SQLiteStore) -> None:
    # ack() commits on its own: inside an open transaction of the same connection it
    # would commit that transaction's writes halfway.
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    row = OutboxRow(0, "k", "m", "e", {"name": "a"}, {}, "pending", 0, t0, None, None, None)
    with store.transaction() as tx:
        (row_id,) = tx.outbox_add([row])
        tx.outbox_claim(now=t0, lease_until=t0 + timedelta(seconds=30), owner="w", limit=1)
    with store.transaction() as tx:
        with pytest.raises(RuntimeStoreError, match="transaction is open"):
            store.ack(row_id, "w", t0)
        assert [r.status for r in tx.outbox_rows()] == ["pending"]
    assert store.ack(row_id, "w", t0) is True
    with store.transaction() as tx:
        assert [(r.status, r.lease_owner) for r in tx.outbox_rows()] == [("done", None)]


def test_an_ack_commits_with_normal_sync_then_restores_full(store: SQLiteStore) -> None:
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    row = OutboxRow(0, "k", "m", "e", {"name": "a"}, {}, "pending", 0, t0, "w", t0, None)
    with store.transaction() as tx:
        (row_id,) = tx.outbox_add([row])
    seen: list[str] = []
    conn = store._connection()
    conn.set_trace_callback(seen.append)
    try:
        assert store.ack(row_id, "w") is True
    finally:
        conn.set_trace_callback(None)
    assert [s.split()[0] for s in seen] == ["PRAGMA", "UPDATE", "PRAGMA"]
    assert "NORMAL" in seen[0] and "FULL" in seen[2]
    assert store.pragmas()["synchronous"] == "FULL"
