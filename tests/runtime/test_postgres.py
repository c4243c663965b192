"""What only PostgreSQL does: SKIP LOCKED between live transactions, the database's clock,
the pool, READ COMMITTED, schemas, migrations under concurrency, wake-up hints.

The contract every store keeps is ``test_store.py``; these run on a real server only
(``tests/runtime/pg.py``). Concurrency is shown with two live transactions at once: the
one holding rows stays open while the other runs on a second thread, which must finish
without waiting for it.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg_pool import PoolTimeout

from statewise import Event, StateMachine
from statewise.runtime import Runtime, open_store
from statewise.runtime.errors import RuntimeStoreError, SchemaVersionError
from statewise.runtime.migrations import Migration
from statewise.runtime.postgres import MIGRATIONS, PostgresStore
from statewise.runtime.store import SCHEMA_VERSION, EntityRow, OutboxRow, TimerRow
from statewise.runtime.worker import Worker
from tests.runtime.pg import DSN_ENV, fresh_schema, postgres_store, server_dsn

T = TypeVar("T")
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
M = "orders"


@pytest.fixture
def opened() -> Iterator[list[PostgresStore]]:
    stores: list[PostgresStore] = []
    yield stores
    for store in stores:
        store.close()


@pytest.fixture
def store(tmp_path: Path, opened: list[PostgresStore]) -> PostgresStore:
    store = postgres_store(tmp_path)
    opened.append(store)
    return store


def on_other_thread(work: Callable[[], T], timeout: float = 10.0) -> T:
    """``work()`` on a second thread; fails if it is still running after ``timeout``
    (it waits for a lock the caller's open transaction holds)."""
    out: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            out.append(work())
        except BaseException as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "blocked behind the other transaction's locks"
    if errors:
        raise errors[0]
    return out[0]


def entity(entity_id: str) -> EntityRow:
    return EntityRow(M, entity_id, "OPEN", {}, 1, T0)


def outbox_row(key: str, *, owner: str | None = None) -> OutboxRow:
    return OutboxRow(
        id=0,
        key=key,
        machine=M,
        entity_id="o-1",
        action={"name": "notify"},
        context={},
        status="pending",
        attempts=0,
        next_attempt_at=T0,
        lease_owner=owner,
        lease_until=None if owner is None else T0 + timedelta(minutes=5),
        last_error=None,
    )


def add_outbox(store: PostgresStore, count: int) -> set[int]:
    with store.transaction() as tx:
        return set(tx.outbox_add([outbox_row(f"k{i}") for i in range(count)]))


# -- SKIP LOCKED


def test_a_claimer_passes_over_rows_another_is_claiming(store: PostgresStore) -> None:
    ids = add_outbox(store, 20)
    now = T0 + timedelta(seconds=1)

    def claim(owner: str, limit: int) -> set[int]:
        with store.transaction() as tx:
            rows = tx.outbox_claim(
                now=now, lease_until=now + timedelta(minutes=1), owner=owner, limit=limit
            )
        return {row.id for row in rows}

    with store.transaction() as tx:
        first = {
            row.id
            for row in tx.outbox_claim(
                now=now, lease_until=now + timedelta(minutes=1), owner="a", limit=5
            )
        }
        # Not committed yet: without SKIP LOCKED the second claimer would wait here.
        second = on_other_thread(lambda: claim("b", 100))
    assert len(first) == 5
    assert first.isdisjoint(second)
    assert first | second == ids


def test_racing_claimers_never_share_a_row(store: PostgresStore) -> None:
    ids = add_outbox(store, 120)
    now = T0 + timedelta(seconds=1)
    start = threading.Barrier(6)
    claimed: dict[str, list[int]] = {}

    def claimer(owner: str) -> None:
        mine = claimed.setdefault(owner, [])
        start.wait()
        while True:
            with store.transaction() as tx:
                rows = tx.outbox_claim(
                    now=now, lease_until=now + timedelta(minutes=1), owner=owner, limit=3
                )
            if not rows:
                return
            mine += [row.id for row in rows]

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [row_id for rows in claimed.values() for row_id in rows]
    assert sorted(every) == sorted(ids)  # each row once, none left over
    with store.transaction() as tx:
        owners = {row.id: row.lease_owner for row in tx.outbox_rows()}
    assert all(owners[row_id] == owner for owner, rows in claimed.items() for row_id in rows)


def test_pending_events_skip_entities_locked_by_another_transaction(
    store: PostgresStore,
) -> None:
    with store.transaction() as tx:
        for entity_id in ("o-1", "o-2"):
            tx.insert_entity(entity(entity_id))
            tx.inbox_add(M, entity_id, "k1", {"trigger": "go"}, T0)

    def pending() -> list[str]:
        with store.transaction() as tx:
            return [row.entity_id for row in tx.inbox_pending(M, 10)]

    with store.transaction() as tx:
        assert tx.lock_entity(M, "o-1") is not None
        assert on_other_thread(pending) == ["o-2"]
    assert pending() == ["o-1", "o-2"]


def test_due_timers_skip_timers_another_transaction_holds(store: PostgresStore) -> None:
    with store.transaction() as tx:
        for i in range(3):
            tx.timer_set(TimerRow(M, f"o-{i}", "timeout", T0 + timedelta(seconds=i), 1))
    now = T0 + timedelta(minutes=1)

    def due() -> list[str]:
        with store.transaction() as tx:
            return [timer.entity_id for timer in tx.timers_due(M, now, 10)]

    with store.transaction() as tx:
        assert [timer.entity_id for timer in tx.timers_due(M, now, 1)] == ["o-0"]
        assert on_other_thread(due) == ["o-1", "o-2"]
    assert due() == ["o-0", "o-1", "o-2"]


def test_lock_entity_waits_for_the_holder(store: PostgresStore) -> None:
    with store.transaction() as tx:
        tx.insert_entity(entity("o-1"))
    order: list[str] = []
    locked = threading.Event()

    def second() -> None:
        locked.wait()
        with store.transaction() as tx:
            tx.lock_entity(M, "o-1")
            order.append("second")

    thread = threading.Thread(target=second)
    thread.start()
    with store.transaction() as tx:
        tx.lock_entity(M, "o-1")
        locked.set()
        thread.join(0.3)  # it cannot get the lock while this transaction is open
        order.append("first")
    thread.join()
    assert order == ["first", "second"]


# -- the database's clock


def test_now_is_the_transactions_timestamp_on_the_server(store: PostgresStore) -> None:
    with store.transaction() as tx:
        now = tx.now()
        row = tx.connection.execute(
            "SELECT transaction_timestamp() AS started, pg_sleep(0.02), clock_timestamp() AS later"
        ).fetchone()
        assert row is not None
        assert now == row["started"]
        assert row["later"] > now
        assert tx.now() == now  # fixed for the transaction, sleeping or not
    with store.transaction() as tx:
        assert tx.now() > now
    assert now.tzinfo is UTC


def test_a_non_durable_transaction_turns_synchronous_commit_off_for_itself(
    store: PostgresStore,
) -> None:
    def setting(tx: Any) -> str:
        row = tx.connection.execute("SHOW synchronous_commit").fetchone()
        assert row is not None
        return str(row["synchronous_commit"])

    with store.transaction() as tx:
        default = setting(tx)  # the test server's is off already, a real one's on
    with store.transaction(durable=False) as tx:
        assert setting(tx) == "off"
    with store.transaction() as tx:
        assert setting(tx) == default  # SET LOCAL ended with the transaction


def test_a_failing_first_statement_rolls_back_and_the_connection_goes_on(
    store: PostgresStore,
) -> None:
    # The first statement travels in one pipeline with BEGIN: its error must surface
    # there, and leave no transaction open on the pooled connection.
    broken = replace(outbox_row("bad"), lease_owner="w")  # a lease owner with no until
    with pytest.raises(psycopg.errors.CheckViolation), store.transaction() as tx:
        tx.outbox_add([broken])
    with store.transaction() as tx:
        assert tx.insert_entity(entity("after"))
    with store.transaction() as tx:
        assert tx.get_entity(M, "after") is not None
        assert tx.outbox_rows() == []


# -- the pool


def backend_pid(store: PostgresStore) -> int:
    with store.transaction() as tx:
        row = tx.connection.execute("SELECT pg_backend_pid() AS pid").fetchone()
        assert row is not None
        return int(row["pid"])


def test_transactions_reuse_pooled_connections(tmp_path: Path, opened: list[PostgresStore]) -> None:
    store = postgres_store(tmp_path, max_size=2)
    opened.append(store)
    pids = {backend_pid(store) for _ in range(30)}
    assert len(pids) == 1  # one after the other: the one connection, every time


def test_a_full_pool_makes_the_next_transaction_wait_then_time_out(
    opened: list[PostgresStore],
) -> None:
    store = PostgresStore(server_dsn(), schema=fresh_schema(), max_size=2, timeout=0.3)
    opened.append(store)
    release = threading.Event()
    holding = threading.Barrier(3)

    def hold() -> None:
        with store.transaction():
            holding.wait()
            release.wait()

    threads = [threading.Thread(target=hold) for _ in range(2)]
    for thread in threads:
        thread.start()
    holding.wait()
    with pytest.raises(PoolTimeout), store.transaction():
        pass
    release.set()
    for thread in threads:
        thread.join()
    assert backend_pid(store) > 0  # the connections came back


# -- READ COMMITTED


def test_transactions_are_read_committed_whatever_the_session_default(
    opened: list[PostgresStore],
) -> None:
    dsn = make_conninfo(server_dsn(), options="-c default_transaction_isolation=serializable")
    store = PostgresStore(dsn, schema=fresh_schema())
    other = PostgresStore(dsn, schema=store.schema)
    opened += [store, other]
    with store.transaction() as tx:
        tx.insert_entity(entity("o-1"))
    with store.transaction() as tx:
        level = tx.connection.execute("SHOW transaction_isolation").fetchone()
        assert level == {"transaction_isolation": "read committed"}
        assert tx.get_entity(M, "o-1") == entity("o-1")
        with other.transaction() as tx2:
            tx2.update_entity(EntityRow(M, "o-1", "DONE", {}, 2, T0), expected_version=1)
        # Each statement sees what was committed before it: a non-repeatable read.
        seen = tx.get_entity(M, "o-1")
        assert seen is not None
        assert seen.version == 2


# -- schemas and migrations


def test_stores_in_two_schemas_of_one_database_are_apart(
    store: PostgresStore, opened: list[PostgresStore]
) -> None:
    other = PostgresStore(server_dsn(), schema=fresh_schema())
    opened.append(other)
    with store.transaction() as tx:
        tx.insert_entity(entity("o-1"))
    with other.transaction() as tx:
        assert tx.get_entity(M, "o-1") is None
        tables = tx.connection.execute(
            "SELECT count(*) AS n FROM pg_tables WHERE schemaname = %s", (other.schema,)
        ).fetchone()
    assert tables == {"n": 7}  # six tables and schema_migrations


def test_stores_opening_a_fresh_schema_at_once_migrate_it_once(
    opened: list[PostgresStore],
) -> None:
    schema = fresh_schema()
    start = threading.Barrier(5)

    def open_() -> PostgresStore:
        start.wait()
        return PostgresStore(server_dsn(), schema=schema)

    results: list[PostgresStore] = []
    threads = [threading.Thread(target=lambda: results.append(open_())) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    opened += results
    assert len(results) == 5
    with results[0].transaction() as tx:
        rows = tx.connection.execute("SELECT version FROM schema_migrations").fetchall()
    assert rows == [{"version": v} for v in range(1, SCHEMA_VERSION + 1)]


def test_a_failing_migration_leaves_no_trace(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = (*MIGRATIONS, Migration(len(MIGRATIONS) + 1, ("CREATE TABLE oops (",), "broken"))
    monkeypatch.setattr("statewise.runtime.postgres.MIGRATIONS", broken)
    schema = fresh_schema()
    with pytest.raises(psycopg.errors.SyntaxError):
        PostgresStore(server_dsn(), schema=schema)
    with psycopg.connect(server_dsn()) as conn:
        found = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
        assert found.fetchone() is None  # DDL is transactional: not even the schema


def test_a_newer_schema_is_refused_without_showing_the_password(
    opened: list[PostgresStore],
) -> None:
    if DSN_ENV in os.environ:
        pytest.skip("needs the throwaway cluster, which ignores passwords (trust)")
    dsn = make_conninfo(server_dsn(), password="s3cret")
    store = PostgresStore(dsn, schema=fresh_schema())
    opened.append(store)
    with store.transaction() as tx:
        tx.connection.execute(
            "INSERT INTO schema_migrations VALUES (%s, '2099-01-01T00:00:00+00:00')",
            (SCHEMA_VERSION + 1,),
        )
    assert "s3cret" in store.url  # the URL opens the store again, password and all
    with pytest.raises(SchemaVersionError) as caught:
        PostgresStore(store.url)
    assert caught.value.found == SCHEMA_VERSION + 1
    assert "s3cret" not in str(caught.value)
    assert "s3cret" not in repr(store)
    assert "password=***" in repr(store)


# -- URLs


def test_the_url_names_the_schema_and_opens_the_same_store(
    store: PostgresStore, opened: list[PostgresStore]
) -> None:
    assert f"schema={store.schema}" in store.url
    with store.transaction() as tx:
        tx.insert_entity(entity("o-1"))
    again = open_store(store.url)
    assert isinstance(again, PostgresStore)
    opened.append(again)
    assert (again.schema, again.url) == (store.schema, store.url)
    with again.transaction() as tx:
        assert tx.get_entity(M, "o-1") == entity("o-1")


def test_a_key_value_dsn_becomes_a_url(opened: list[PostgresStore]) -> None:
    params = psycopg.conninfo.conninfo_to_dict(server_dsn())
    dsn = " ".join(f"{key}={value}" for key, value in params.items())
    store = PostgresStore(dsn, schema=fresh_schema())
    opened.append(store)
    assert store.url.startswith("postgresql://?")
    assert psycopg.conninfo.conninfo_to_dict(store.url.replace(f"&schema={store.schema}", "")) == {
        key: str(value) for key, value in params.items()
    }


def test_a_server_that_cannot_be_reached_fails_the_open_at_once() -> None:
    started = time.monotonic()
    with pytest.raises(RuntimeStoreError, match=r"cannot open postgresql://u:\*\*\*@127") as caught:
        PostgresStore("postgresql://u:s3cret@127.0.0.1:1/db?schema=x")
    assert "s3cret" not in str(caught.value)
    assert time.monotonic() - started < 5


def test_a_libpq_without_pipeline_mode_is_refused_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(psycopg.Pipeline, "is_supported", classmethod(lambda cls: False))
    with pytest.raises(RuntimeStoreError, match="needs libpq 14 or later for pipeline mode"):
        PostgresStore(server_dsn(), schema=fresh_schema())


def test_a_schema_named_twice_must_be_the_same() -> None:
    with pytest.raises(ValueError, match="schema 'a' given, but the URL names 'b'"):
        PostgresStore("postgresql://h/db?schema=b", schema="a")


# -- prepared statements


def ours_prepared(store: PostgresStore) -> int:
    """How many of the store's statements are prepared on the connection a transaction
    gets (the pool has one connection in these tests)."""
    with store.transaction() as tx:
        row = tx.connection.execute(
            "SELECT count(*) AS n FROM pg_prepared_statements WHERE name LIKE 'sw\\_%'"
        ).fetchone()
    assert row is not None
    return int(row["n"])


def work(store: PostgresStore) -> None:
    with store.transaction() as tx:
        tx.insert_entity(entity("o-1"))
        assert tx.get_entity(M, "o-1") == entity("o-1")
        assert tx.lock_entity(M, "o-1") == entity("o-1")


@pytest.mark.parametrize(
    ("options", "query", "prepared", "in_url"),
    [
        ({}, "", True, False),
        ({"prepare": False}, "", False, True),
        ({}, "?prepare=off", False, True),
        ({}, "?prepare=No", False, True),
        ({}, "?prepare=on", True, False),
        ({"prepare": True}, "?prepare=1", True, False),
    ],
)
def test_statements_are_prepared_unless_told_not_to(
    opened: list[PostgresStore],
    options: dict[str, Any],
    query: str,
    prepared: bool,
    in_url: bool,
) -> None:
    dsn = psycopg.conninfo.conninfo_to_dict(server_dsn())
    url = f"postgresql://{dsn['user']}@{dsn['host']}:{dsn['port']}/{dsn['dbname']}{query}"
    store = PostgresStore(url, schema=fresh_schema(), max_size=1, **options)
    opened.append(store)
    work(store)
    assert (ours_prepared(store) > 0) is prepared
    assert ("prepare=off" in store.url) is in_url
    again = open_store(store.url, max_size=1)  # the URL keeps the choice
    assert isinstance(again, PostgresStore)
    opened.append(again)
    with again.transaction() as tx:
        assert tx.get_entity(M, "o-1") == entity("o-1")
    assert (ours_prepared(again) > 0) is prepared


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("postgresql://h/db?prepare=maybe", {}, "?prepare= takes on or off, got 'maybe'"),
        ("postgresql://h/db?prepare=off", {"prepare": True}, "prepare=True given, but the URL"),
    ],
)
def test_a_prepare_option_must_be_clear(url: str, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        PostgresStore(url, **options)


# -- JSON


def test_json_round_trips_and_nan_is_refused(store: PostgresStore) -> None:
    context: dict[str, Any] = {
        "text": 'Grüße, 東京 "quoted" \\ back',
        "nested": {"list": [1, 2.5, None, True, {"deep": []}], "empty": {}},
        "big": 2**62,
    }
    with store.transaction() as tx:
        tx.insert_entity(EntityRow(M, "o-1", "OPEN", context, 1, T0))
    with store.transaction() as tx:
        found = tx.get_entity(M, "o-1")
        assert found is not None
        assert found.context == context
        with pytest.raises(ValueError, match="JSON"):
            tx.insert_entity(EntityRow(M, "o-2", "OPEN", {"x": float("nan")}, 1, T0))


# -- your own statements in the store's transaction


def test_the_connection_commits_and_rolls_back_with_the_store(store: PostgresStore) -> None:
    with store.transaction() as tx:
        tx.connection.execute("CREATE TABLE mine (n integer)")

    def write(n: int, fail: bool) -> None:
        with store.transaction() as tx:
            tx.connection.execute("INSERT INTO mine VALUES (%s)", (n,))
            tx.insert_entity(entity(f"o-{n}"))
            if fail:
                raise KeyError(n)

    write(1, fail=False)
    with pytest.raises(KeyError):
        write(2, fail=True)
    with store.transaction() as tx:
        assert tx.connection.execute("SELECT n FROM mine").fetchall() == [{"n": 1}]
        assert tx.get_entity(M, "o-2") is None
        assert tx.connection is not None
    with pytest.raises(RuntimeStoreError, match="has ended"):
        _ = tx.connection


def test_transactions_do_not_nest_and_a_closed_store_refuses(tmp_path: Path) -> None:
    with postgres_store(tmp_path) as store:
        with store.transaction(), pytest.raises(RuntimeStoreError, match="not reentrant"):
            store.transaction().__enter__()
        with store.transaction() as tx:  # the refused one left nothing behind
            assert tx.get_entity(M, "o-1") is None
    store.close()
    with pytest.raises(RuntimeStoreError, match="closed"), store.transaction():
        pass
    with pytest.raises(RuntimeStoreError, match="closed"):
        store.wait(0)


# -- wake-up hints


def test_a_transaction_that_leaves_work_wakes_a_waiter(store: PostgresStore) -> None:
    assert store.wait(0.05) is False  # starts listening; nothing sent yet
    with store.transaction() as tx:
        tx.insert_entity(entity("o-1"))
    assert store.wait(0.05) is False  # nothing for a worker to do

    with store.transaction() as tx:  # an event left unprocessed: a worker's job
        tx.inbox_add(M, "o-1", "k1", {"trigger": "go"}, T0)
    assert store.wait(5) is True
    assert store.wait(0.05) is False  # one wake-up per hint

    with store.transaction() as tx:  # added and applied at once: nothing left over
        row, _ = tx.inbox_add(M, "o-1", "k2", {"trigger": "go"}, T0)
        tx.inbox_done(row.id, {"success": True})
        tx.outbox_add([outbox_row("mine", owner="me")])  # leased already: ours to run
    assert store.wait(0.05) is False

    def add_then_fail() -> None:
        with store.transaction() as tx:
            tx.inbox_add(M, "o-1", "k3", {"trigger": "go"}, T0)
            raise KeyError("rolled back: no hint")

    with pytest.raises(KeyError):
        add_then_fail()
    assert store.wait(0.05) is False

    with store.transaction() as tx:
        tx.outbox_add([outbox_row("anyones")])
    with store.transaction() as tx:
        tx.outbox_add([outbox_row("a"), outbox_row("b")])
    time.sleep(0.2)  # hints reach the listener asynchronously: let both arrive
    assert store.wait(5) is True  # two hints waiting, one wake-up
    assert store.wait(0.05) is False

    with store.transaction() as tx:
        assert tx.outbox_release("me") == 1
    assert store.wait(5) is True
    with store.transaction() as tx:
        assert tx.outbox_release("me") == 0
    assert store.wait(0.05) is False


def test_a_lost_listener_reconnects_and_reports_a_wake_up(store: PostgresStore) -> None:
    assert store.wait(0.01) is False
    with psycopg.connect(server_dsn(), autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = %s",
            (
                sql.SQL("LISTEN {}")
                .format(sql.Identifier(f"statewise.{store.schema}"))
                .as_string(conn),
            ),
        )
    assert store.wait(5) is True  # hints may have been lost meanwhile
    with store.transaction() as tx:
        tx.outbox_add([outbox_row("k")])
    assert store.wait(5) is True  # listening again


def test_an_idle_worker_wakes_at_a_hint_not_at_the_end_of_its_nap(store: PostgresStore) -> None:
    machine = StateMachine.from_dict(
        {
            "meta": {"machine_name": "hint"},
            "states": [{"name": "A", "type": "initial"}, {"name": "B"}],
            "transitions": [{"trigger": "go", "source": "A", "dest": "B"}],
        }
    )
    rt = Runtime(machine, store)
    rt.create("e1")
    # Naps of 20 s: without the hint, the event would wait for the nap to end.
    worker = Worker(rt, idle_min=20, idle_max=20, heartbeat_seconds=60)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with store.transaction() as tx:
                if [w.status for w in tx.workers()] == ["waiting"]:
                    break
            time.sleep(0.02)
        else:
            pytest.fail("the worker did not go idle")
        started = time.monotonic()
        assert rt.enqueue("e1", Event("go", id="g-1"))  # its commit sends the hint
        while rt.get("e1").state != "B" and time.monotonic() - started < 10:
            time.sleep(0.02)
        assert rt.get("e1").state == "B"
        assert time.monotonic() - started < 10
    finally:
        worker.stop()
        thread.join(timeout=60)
    assert not thread.is_alive()
