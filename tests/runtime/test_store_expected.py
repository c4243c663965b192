"""``Tx.write_expected``: an event decided before its entity was locked, written only
if what the decision took for granted still holds under the lock.

Every test with ``store`` runs on SQLite and on PostgreSQL (``conftest.py``). Each one
starts from :func:`seed`: the entity o-1 at version 2, its ``timeout`` timer at
generation 2 and a ``reminder``, a processed event of its own, and rows of others that
must not count (o-2's unprocessed event under the same key, its ``timeout`` timer at
another generation, the same key on another machine). A write that is refused must
leave every table as it was: :func:`snapshot` reads them whole, through a connection of
its own (so that it writes none of the acks the store holds).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeAlias, cast

import pytest

from statewise.runtime.errors import ConcurrencyError, RuntimeStoreError
from statewise.runtime.sqlite import SQLiteStore
from statewise.runtime.store import (
    EntityRow,
    EventWrite,
    Expected,
    Store,
    TimerRow,
    Tx,
)
from tests.runtime.conftest import Backend, postgres_backend
from tests.runtime.rows import T0, M, at, outbox_row
from tests.runtime.test_store import EVENT, RESULT, entity, event_write, history_row

if TYPE_CHECKING:
    from statewise.runtime.pg_pipeline import Result, Statement
    from statewise.runtime.postgres import PostgresStore, PostgresTx

VERSION = 2  # o-1's version after seed()
TIMER = "timeout"
HOLDS = Expected(VERSION, TIMER, 2, store_clock=False)  # all of it true after seed()
OWNER = "w"

Rows: TypeAlias = dict[str, list[tuple[Any, ...]]]


def seed(store: Store) -> None:
    with store.transaction() as tx:
        assert tx.insert_entity(entity(version=VERSION, qty=3))
        assert tx.insert_entity(entity("o-2"))
        tx.timer_set(TimerRow(M, "o-1", TIMER, at(5), 2))
        tx.timer_set(TimerRow(M, "o-1", "reminder", at(50), 1))
        tx.timer_set(TimerRow(M, "o-2", TIMER, at(5), 9))
        old, _ = tx.inbox_add(M, "o-1", "old", EVENT, T0)
        tx.inbox_done(old.id, {"first": True})
        tx.inbox_add(M, "o-2", "k", EVENT, T0)  # another entity's, under the write's key
        tx.inbox_add("invoices", "o-1", "k", EVENT, T0)  # another machine's
        tx.history_add(history_row(1))  # o-1's event to version 2
        tx.outbox_add([outbox_row("orders:o-1:2:0")])  # that event's action


def applied(seen: int = VERSION, *, entity_id: str = "o-1", key: str = "k") -> EventWrite:
    """An event that moves the entity, decided on it at version ``seen``: three actions
    (the second leased to run at once), the timer re-armed, the reminder cancelled."""
    version = seen + 1
    rows = [
        outbox_row(f"{M}:{entity_id}:{version}:{n}", entity_id=entity_id, name=name)
        for n, name in enumerate(("notify", "settle", "audit"))
    ]
    rows[1] = replace(rows[1], lease_owner=OWNER, lease_until=at(31))
    rows[2] = replace(rows[2], next_attempt_at=at(9))
    write = event_write(
        version,
        key=key,
        entered_at=at(1),
        outbox=rows,
        timer_set=TimerRow(M, entity_id, TIMER, at(60), version),
        timer_cancel="reminder",
    )
    return replace(write, history=replace(write.history, entity_id=entity_id))


def rejected(seen: int = VERSION, *, entity_id: str = "o-1", key: str = "k") -> EventWrite:
    """An event that did not apply (a guard said no), decided on version ``seen``: its
    history row keeps that version, and it cancels the reminder."""
    write = event_write(seen, applied=False, key=key, to_state="OPEN", timer_cancel="reminder")
    history = replace(
        write.history, entity_id=entity_id, success=False, error="guard_rejected", actions=[]
    )
    return replace(write, history=history, result={"success": False, "error": "guard_rejected"})


WRITES: dict[str, Callable[..., EventWrite]] = {"applied": applied, "rejected": rejected}
SHAPES = list(WRITES)

_TABLES = {
    "entities": "machine, entity_id",
    "inbox": "id",
    "history": "machine, entity_id, seq",
    "outbox": "id",
    "timers": "machine, entity_id, name",
}


def read_past(store: Store, queries: dict[str, str]) -> Rows:
    """The rows of each query, read through a connection of the test's own."""
    if isinstance(store, SQLiteStore):
        with closing(sqlite3.connect(store.path)) as conn:
            return {name: [tuple(r) for r in conn.execute(q)] for name, q in queries.items()}
    import psycopg
    from psycopg import sql

    from tests.runtime.pg import server_dsn

    schema = cast("PostgresStore", store).schema
    with psycopg.connect(server_dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        return {name: conn.execute(q).fetchall() for name, q in queries.items()}


def snapshot(store: Store) -> Rows:
    """Every row of the five tables, as stored."""
    return read_past(
        store, {table: f"SELECT * FROM {table} ORDER BY {key}" for table, key in _TABLES.items()}
    )


def stored_status(store: Store, row_id: int) -> tuple[str, str | None]:
    """The outbox row's status and lease owner as stored: no ack waiting is written."""
    query = f"SELECT status, lease_owner FROM outbox WHERE id = {row_id:d}"
    ((status, owner),) = read_past(store, {"row": query})["row"]
    return status, owner


def changed(before: Rows, after: Rows) -> dict[str, tuple[int, int]]:
    """Per table that changed: how many rows went, how many came."""
    counts = {
        table: (
            sum(r not in after[table] for r in before[table]),
            sum(r not in before[table] for r in after[table]),
        )
        for table in before
    }
    return {table: n for table, n in counts.items() if n != (0, 0)}


def leased_row(store: Store) -> int:
    """An outbox row leased to OWNER, for an ack to wait on."""
    with store.transaction() as tx:
        (row_id,) = tx.outbox_add([outbox_row("orders:other:1:0", entity_id="other")])
        claimed = tx.outbox_claim(now=T0, lease_until=at(30), owner=OWNER, limit=1, ids=[row_id])
        assert [r.id for r in claimed] == [row_id]
    return row_id


# -- all of it holds: the write is applied, committed with the block


@pytest.mark.parametrize(
    "expected",
    [HOLDS, Expected(VERSION, "deadline", None, store_clock=False)],
    ids=["timer at its generation", "no timer of that name"],
)
def test_an_applied_event_is_written_whole(store: Store, expected: Expected) -> None:
    seed(store)
    before = snapshot(store)
    write = applied()
    with store.transaction() as tx:
        ids = tx.write_expected(expected, write)
    assert len(ids) == 3
    assert ids == sorted(set(ids))
    with store.transaction() as tx:
        assert tx.get_entity(M, "o-1") == EntityRow(M, "o-1", "FILLED", {"qty": 3}, 3, at(1))
        got = tx.receive(M, "o-1", "k", TIMER)
        assert got is not None
        assert got.inbox is not None
        assert (got.inbox.event, got.inbox.received_at, got.inbox.result) == (EVENT, at(1), RESULT)
        assert got.backlog is False
        assert got.timer == TimerRow(M, "o-1", TIMER, at(60), 3)
        assert tx.timer_get(M, "o-1", "reminder") is None
        assert tx.history(M, "o-1") == [history_row(1), replace(write.history, seq=2)]
        mine = [r for r in tx.outbox_rows() if r.entity_id == "o-1"][1:]
        assert mine == [replace(r, id=i) for r, i in zip(write.outbox, ids, strict=True)]
        # Still as it was: o-2's unprocessed event under the same key.
        assert [(r.machine, r.entity_id, r.key) for r in tx.inbox_pending(M, 10)] == [
            (M, "o-2", "k")
        ]
    assert changed(before, snapshot(store)) == {
        "entities": (1, 1),
        "inbox": (0, 1),
        "history": (0, 1),
        "outbox": (0, 3),
        "timers": (2, 1),  # the reminder gone, the timeout re-armed
    }


def test_a_rejected_event_keeps_the_entity_and_records_its_history(store: Store) -> None:
    seed(store)
    before = snapshot(store)
    write = rejected()
    with store.transaction() as tx:
        assert tx.write_expected(HOLDS, write) == []
    with store.transaction() as tx:
        assert tx.get_entity(M, "o-1") == entity(version=VERSION, qty=3)
        (_, second) = tx.history(M, "o-1")
        assert second == replace(write.history, seq=2)
        assert (second.version, second.success) == (VERSION, False)
        got = tx.receive(M, "o-1", "k", TIMER)
        assert got is not None
        assert got.inbox is not None
        assert got.inbox.result == {"success": False, "error": "guard_rejected"}
        assert got.timer == TimerRow(M, "o-1", TIMER, at(5), 2)  # untouched
        assert tx.timer_get(M, "o-1", "reminder") is None
    assert changed(before, snapshot(store)) == {
        "inbox": (0, 1),
        "history": (0, 1),
        "timers": (1, 0),
    }


AFTERWARDS: dict[str, Callable[[Tx], object]] = {
    "get_entity": lambda tx: tx.get_entity(M, "o-1"),
    "write_expected": lambda tx: tx.write_expected(
        replace(HOLDS, version=3, generation=3), applied(3, key="k2")
    ),
    "write_event": lambda tx: tx.write_event(rejected(3, key="k2")),
}


@pytest.mark.parametrize("call", list(AFTERWARDS))
def test_a_successful_write_ends_the_transaction(store: Store, call: str) -> None:
    # As write_event(last=True): the block's end commits, and nothing else may run.
    seed(store)
    with store.transaction() as tx:
        (first, _, _) = tx.write_expected(HOLDS, applied())
        with pytest.raises(RuntimeStoreError, match="transaction has ended"):
            AFTERWARDS[call](tx)
    with store.transaction() as tx:
        got = tx.receive(M, "o-1", "k", TIMER)
        assert got is not None
        assert (got.entity.state, got.entity.version) == ("FILLED", 3)
        assert got.inbox is not None
        assert got.inbox.result == RESULT
        assert first in [r.id for r in tx.outbox_rows()]
        assert len(tx.history(M, "o-1")) == 2  # nothing of the call after it
        later = tx.receive(M, "o-1", "k2", TIMER)
        assert later is not None
        assert later.inbox is None


# -- anything differs: ConcurrencyError, and nothing written


@dataclass(frozen=True)
class Mismatch:
    id: str
    expected: Expected
    seen: int = VERSION  # the version the write was decided on
    entity_id: str = "o-1"
    before: Callable[[Tx], object] | None = None  # what changed since the decision


def _queue(key: str, *, processed: bool = False) -> Callable[[Tx], object]:
    def add(tx: Tx) -> None:
        row, _ = tx.inbox_add(M, "o-1", key, EVENT, at(2))
        if processed:
            tx.inbox_done(row.id, {"earlier": True})

    return add


MISMATCHES = [
    # decided on the version expected: its outbox keys are those of rows written since
    Mismatch("version lower", replace(HOLDS, version=1), seen=1),
    Mismatch("version higher", replace(HOLDS, version=3), seen=3),
    # decided on the stored version: only Expected.version says no
    Mismatch("version lower, write fits the stored one", replace(HOLDS, version=1)),
    Mismatch("version higher, write fits the stored one", replace(HOLDS, version=3)),
    Mismatch("an unprocessed event of the entity", HOLDS, before=_queue("q")),
    Mismatch("a processed event under the key", HOLDS, before=_queue("k", processed=True)),
    Mismatch("an unprocessed event under the key", HOLDS, before=_queue("k")),
    Mismatch("timer at another generation", replace(HOLDS, generation=1)),
    Mismatch(
        "timer re-armed since",
        HOLDS,
        before=lambda tx: tx.timer_set(TimerRow(M, "o-1", TIMER, at(5), 3)),
    ),
    Mismatch("timer expected, none armed", replace(HOLDS, timer="deadline", generation=4)),
    Mismatch("timer cancelled since", HOLDS, before=lambda tx: tx.timer_cancel(M, "o-1", TIMER)),
    Mismatch("timer armed, none expected", replace(HOLDS, generation=None)),
    Mismatch("no such entity", replace(HOLDS, generation=None), entity_id="ghost"),
]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("case", MISMATCHES, ids=[c.id for c in MISMATCHES])
def test_a_mismatch_raises_and_writes_nothing(store: Store, case: Mismatch, shape: str) -> None:
    seed(store)
    if case.before is not None:
        with store.transaction() as tx:
            case.before(tx)
    before = snapshot(store)
    write = WRITES[shape](case.seen, entity_id=case.entity_id)
    with pytest.raises(ConcurrencyError) as caught, store.transaction() as tx:
        tx.write_expected(case.expected, write)
    error = caught.value
    assert (error.machine, error.entity_id, error.expected_version) == (
        M,
        case.entity_id,
        case.expected.version,
    )
    assert snapshot(store) == before


@pytest.mark.parametrize("shape", SHAPES)
def test_a_mismatch_caught_in_the_block_still_commits_nothing(store: Store, shape: str) -> None:
    seed(store)
    before = snapshot(store)

    def catch_the_mismatch() -> None:
        with store.transaction() as tx:
            tx.timer_set(TimerRow(M, "o-2", "extra", at(7), 1))  # goes with the rest
            with pytest.raises(ConcurrencyError):
                tx.write_expected(replace(HOLDS, version=1), WRITES[shape]())

    with pytest.raises(RuntimeStoreError, match="cannot commit: rolled back"):
        catch_the_mismatch()
    assert snapshot(store) == before


# -- acks waiting for a transaction to carry them


def test_an_ack_waiting_goes_with_the_write(backend: Backend) -> None:
    store = backend.open(ack_delay=3600.0)  # only a transaction writes it
    seed(store)
    row_id = leased_row(store)
    store.ack_later(row_id, OWNER)
    with store.transaction() as tx:
        tx.write_expected(HOLDS, applied())
    assert stored_status(store, row_id) == ("done", None)


REFUSED = {
    "stale version": (replace(HOLDS, version=1), "k"),
    "key taken": (HOLDS, "old"),
    "timer differs": (replace(HOLDS, generation=None), "k"),
}


@pytest.mark.parametrize("then", ["an empty block", "the write decided again"])
@pytest.mark.parametrize("refused", list(REFUSED))
def test_an_ack_waiting_outlives_a_refused_write(backend: Backend, refused: str, then: str) -> None:
    store = backend.open(ack_delay=3600.0)  # only a transaction writes it
    seed(store)
    row_id = leased_row(store)
    store.ack_later(row_id, OWNER)
    before = snapshot(store)  # the ack not written yet
    expected, key = REFUSED[refused]
    with pytest.raises(ConcurrencyError), store.transaction() as tx:
        tx.write_expected(expected, applied(key=key))
    assert snapshot(store) == before  # rolled back, the ack with it
    assert stored_status(store, row_id) == ("pending", OWNER)
    with store.transaction() as tx:  # it writes the acks waiting first
        if then == "the write decided again":
            got = tx.receive(M, "o-1", None, TIMER)
            assert got is not None
            assert got.timer is not None
            holds = Expected(got.entity.version, TIMER, got.timer.generation, store_clock=False)
            tx.write_expected(holds, applied(key="fresh"))
    assert stored_status(store, row_id) == ("done", None)
    with store.transaction() as tx:
        moved = tx.get_entity(M, "o-1")
    assert moved is not None
    assert moved.version == (VERSION + 1 if then == "the write decided again" else VERSION)


# -- times: the store's clock, or as given


def clock_write(shape: str, base: datetime) -> EventWrite:
    """A write whose times all count from ``base`` (its received_at): entered at it,
    one action due at it and leased for 30 s, one due 1.5 s before it (an action
    already late), the timer due 60.5 s after it."""
    write = WRITES[shape]()
    fields: dict[str, Any] = {
        "received_at": base,
        "history": replace(write.history, at=base),
    }
    if write.applied:
        notify, settle, _ = write.outbox
        fields |= {
            "entered_at": base,
            "outbox": [
                replace(notify, next_attempt_at=base - timedelta(seconds=1.5)),
                replace(settle, next_attempt_at=base, lease_until=base + timedelta(seconds=30)),
            ],
            "timer_set": TimerRow(M, "o-1", TIMER, base + timedelta(seconds=60.5), 3),
        }
    return replace(write, **fields)


def stored_times(store: Store) -> dict[str, Any]:
    with store.transaction() as tx:
        got = tx.receive(M, "o-1", "k", TIMER)
        assert got is not None
        assert got.inbox is not None
        outbox = [r for r in tx.outbox_rows() if r.entity_id == "o-1"][1:]
        return {
            "received_at": got.inbox.received_at,
            "history.at": tx.history(M, "o-1")[-1].at,
            "entered_at": got.entity.entered_at,
            "outbox": [(r.next_attempt_at, r.lease_until) for r in outbox],
            "timer": None if got.timer is None else got.timer.due_at,
        }


LONG_AGO = datetime(2001, 1, 1, 0, 0, 0, 654321, tzinfo=UTC)


@pytest.mark.parametrize("shape", SHAPES)
def test_on_the_store_clock_every_time_moves_by_the_same_amount(store: Store, shape: str) -> None:
    seed(store)
    with store.transaction() as tx:
        clock = tx.now()
        tx.write_expected(replace(HOLDS, store_clock=True), clock_write(shape, LONG_AGO))
    got = stored_times(store)
    assert (got["received_at"], got["history.at"]) == (clock, clock)
    if shape == "applied":
        assert got["entered_at"] == clock
        assert got["outbox"] == [
            (clock - timedelta(seconds=1.5), None),
            (clock, clock + timedelta(seconds=30)),
        ]
        assert got["timer"] == clock + timedelta(seconds=60.5)
    else:
        assert got["entered_at"] == T0  # the entity is not written
        assert got["timer"] == at(5)


def test_on_the_store_clock_times_land_now_not_when_decided(store: Store) -> None:
    seed(store)
    started = datetime.now(UTC)
    with store.transaction() as tx:  # nothing but the write: its clock is never asked for
        tx.write_expected(replace(HOLDS, store_clock=True), clock_write("applied", LONG_AGO))
    ended = datetime.now(UTC)
    got = stored_times(store)
    received = got["received_at"]
    assert started - timedelta(minutes=1) <= received <= ended + timedelta(minutes=1)
    assert got["history.at"] == received == got["entered_at"]
    (late_at, _), (due_at, lease_until) = got["outbox"]
    assert lease_until - due_at == timedelta(seconds=30)
    assert due_at - late_at == timedelta(seconds=1.5)
    assert got["timer"] - received == timedelta(seconds=60.5)


@pytest.mark.parametrize("shape", SHAPES)
def test_off_the_store_clock_times_are_written_as_given(store: Store, shape: str) -> None:
    seed(store)
    with store.transaction() as tx:
        tx.write_expected(HOLDS, clock_write(shape, LONG_AGO))
    got = stored_times(store)
    assert (got["received_at"], got["history.at"]) == (LONG_AGO, LONG_AGO)
    if shape == "applied":
        assert got["entered_at"] == LONG_AGO
        assert got["outbox"] == [
            (LONG_AGO - timedelta(seconds=1.5), None),
            (LONG_AGO, LONG_AGO + timedelta(seconds=30)),
        ]
        assert got["timer"] == LONG_AGO + timedelta(seconds=60.5)


# -- refused before anything is sent


@pytest.mark.parametrize("inbox_id", ["a processed row", "an unknown row"])
def test_an_inbox_id_is_a_value_error(store: Store, inbox_id: str) -> None:
    seed(store)
    with store.transaction() as tx:
        got = tx.receive(M, "o-1", "old", TIMER)
        assert got is not None
        assert got.inbox is not None
        row_id = got.inbox.id if inbox_id == "a processed row" else 10_000
    before = snapshot(store)
    with pytest.raises(ValueError, match="inbox_id must be None"), store.transaction() as tx:
        tx.write_expected(HOLDS, replace(applied(), inbox_id=row_id))
    assert snapshot(store) == before


@pytest.mark.parametrize("store_clock", [False, True], ids=["as given", "store clock"])
def test_a_write_without_received_at_is_a_value_error(store: Store, store_clock: bool) -> None:
    # The new inbox row needs its time, and on the store clock every time counts from it.
    seed(store)
    before = snapshot(store)
    with pytest.raises(ValueError, match="needs received_at"), store.transaction() as tx:
        tx.write_expected(
            replace(HOLDS, store_clock=store_clock), replace(applied(), received_at=None)
        )
    assert snapshot(store) == before


def _naive(value: datetime | None) -> datetime | None:
    return None if value is None else value.replace(tzinfo=None)


NAIVE: dict[str, Callable[[EventWrite], EventWrite]] = {
    "every time": lambda w: replace(
        w,
        received_at=_naive(w.received_at),
        entered_at=_naive(w.entered_at),
        history=replace(w.history, at=cast(datetime, _naive(w.history.at))),
        outbox=[
            replace(
                r,
                next_attempt_at=r.next_attempt_at.replace(tzinfo=None),
                lease_until=_naive(r.lease_until),
            )
            for r in w.outbox
        ],
        timer_set=None
        if w.timer_set is None
        else replace(w.timer_set, due_at=w.timer_set.due_at.replace(tzinfo=None)),
    ),
    "one lease": lambda w: replace(
        w, outbox=[replace(r, lease_until=_naive(r.lease_until)) for r in w.outbox]
    ),
}


@pytest.mark.parametrize("naive", list(NAIVE))
@pytest.mark.parametrize("store_clock", [False, True], ids=["as given", "store clock"])
def test_a_naive_time_is_a_value_error_and_writes_nothing(
    store: Store, naive: str, store_clock: bool
) -> None:
    seed(store)
    before = snapshot(store)
    with pytest.raises(ValueError, match="naive"), store.transaction() as tx:
        tx.write_expected(replace(HOLDS, store_clock=store_clock), NAIVE[naive](applied()))
    assert snapshot(store) == before


@pytest.mark.parametrize("refused", ["inbox_id given", "a naive time"])
def test_an_ack_survives_a_value_error_caught_in_the_block(backend: Backend, refused: str) -> None:
    store = backend.open(ack_delay=3600.0)
    seed(store)
    row_id = leased_row(store)
    store.ack_later(row_id, OWNER)
    write = applied()
    if refused == "inbox_id given":
        write = replace(write, inbox_id=10_000)
    else:
        write = replace(write, received_at=_naive(write.received_at))
    # SQLite refuses to commit a block whose write failed half way; either way the ack
    # must be written, by this transaction or the next one.
    with (
        contextlib.suppress(RuntimeStoreError),
        store.transaction() as tx,
        pytest.raises(ValueError, match=r"inbox_id must be None|naive"),
    ):
        tx.write_expected(HOLDS, write)
    with store.transaction():
        pass  # writes the acks still waiting
    assert stored_status(store, row_id) == ("done", None)


# -- PostgreSQL: one round trip, and the check made after the lock


@pytest.fixture
def pg_backend() -> Iterator[Backend]:
    """The PostgreSQL backend alone, for what only it has: round trips, row locks."""
    opened: list[Store] = []
    yield postgres_backend(opened)
    for store in opened:
        store.close()


@pytest.mark.parametrize("ack", [False, True], ids=["no ack waiting", "an ack waiting"])
@pytest.mark.parametrize("shape", SHAPES)
def test_on_postgresql_a_write_expected_block_is_one_round_trip(
    pg_backend: Backend, monkeypatch: pytest.MonkeyPatch, shape: str, ack: bool
) -> None:
    backend = pg_backend
    import psycopg

    from statewise.runtime.pg_pipeline import Pipeline

    store = backend.open(ack_delay=3600.0)
    seed(store)
    row_id = leased_row(store)
    if ack:
        store.ack_later(row_id, OWNER)
    main = threading.current_thread()
    trips: list[list[bytes]] = []
    executed: list[object] = []
    run, execute = Pipeline.run, psycopg.Connection.execute

    def counting_run(self: Pipeline, statements: Sequence[Statement]) -> list[Result]:
        if threading.current_thread() is main:
            trips.append([q if isinstance(q, bytes) else q.encode() for q, _ in statements])
        return run(self, statements)

    def counting_execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        if threading.current_thread() is main:
            executed.append(query)
        return execute(self, query, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "run", counting_run)
    monkeypatch.setattr(psycopg.Connection, "execute", counting_execute)
    with store.transaction() as tx:
        tx.write_expected(HOLDS, WRITES[shape]())
    monkeypatch.undo()
    assert len(trips) == 1, trips
    assert executed == []
    (trip,) = trips
    assert trip[0].startswith(b"BEGIN")
    assert trip[-1] == b"COMMIT"
    with store.transaction() as tx:
        got = tx.receive(M, "o-1", "k", TIMER)
        assert got is not None
        assert got.inbox is not None  # committed
    assert stored_status(store, row_id) == (("done", None) if ack else ("pending", OWNER))


def _blocked_by(pid: int, timeout: float) -> bool:
    """Whether a session came to wait for ``pid``'s locks within ``timeout`` seconds."""
    import psycopg

    from tests.runtime.pg import server_dsn

    deadline = time.monotonic() + timeout
    with psycopg.connect(server_dsn(), autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
                (pid,),
            ).fetchone()
            if row is not None and row[0] > 0:
                return True
            time.sleep(0.01)
    return False


CONCURRENT: dict[str, Callable[[Tx], object]] = {
    "moves the version": lambda tx: tx.update_entity(
        EntityRow(M, "o-1", "SHIPPED", {"qty": 3}, VERSION + 1, at(3)), expected_version=VERSION
    ),
    "queues an event": lambda tx: tx.inbox_add(M, "o-1", "q", EVENT, at(3)),
    "re-arms the timer": lambda tx: tx.timer_set(TimerRow(M, "o-1", TIMER, at(9), 3)),
    "changes nothing": lambda tx: None,
}


@pytest.mark.parametrize("holder", list(CONCURRENT))
def test_on_postgresql_the_check_sees_what_the_lock_holder_committed(
    pg_backend: Backend, holder: str
) -> None:
    backend = pg_backend
    store = backend.open()
    seed(store)
    locked = threading.Event()
    blocked: list[bool] = []
    errors: list[BaseException] = []

    def hold() -> None:
        try:
            with store.transaction() as tx:
                assert tx.lock_entity(M, "o-1") is not None
                CONCURRENT[holder](tx)
                pid = cast("PostgresTx", tx).connection.info.backend_pid
                locked.set()
                # Commits once the write waits for the lock (or gives up waiting).
                blocked.append(_blocked_by(pid, timeout=10.0))
        except BaseException as exc:  # reported to the main thread below
            errors.append(exc)
        finally:
            locked.set()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    try:
        assert locked.wait(10.0)
        outcome: BaseException | list[int]
        try:
            with store.transaction() as tx:
                outcome = tx.write_expected(HOLDS, applied())
        except ConcurrencyError as exc:
            outcome = exc
    finally:
        thread.join(15.0)
    assert not thread.is_alive()
    assert errors == []
    assert blocked == [True]  # the write did wait for the lock
    with store.transaction() as tx:
        got = tx.receive(M, "o-1", "k", TIMER)
        history = tx.history(M, "o-1")
    assert got is not None
    if holder == "changes nothing":
        assert isinstance(outcome, list)
        assert len(outcome) == 3
        assert (got.entity.version, got.inbox is not None, len(history)) == (3, True, 2)
    else:
        assert isinstance(outcome, ConcurrencyError)
        assert (got.inbox, len(history)) == (None, 1)  # the write left nothing
        assert got.entity.state != "FILLED"
