"""Batched outbox acks (``statewise.runtime.acks``), on every store by the fixture.

An ack handed to ``store.ack_later`` waits in the store, and is written by the next
transaction the store opens, by the store's own thread once ``ack_delay`` passed, by
``flush_acks()`` or by ``close()``. Any transaction of the store writes the waiting
acks first, so what is still waiting is observed through a *second* store opened on
the same database (its transactions carry none of the first one's acks), or through
the number of acks the first one holds.
"""

from __future__ import annotations

import os
import sqlite3
import time
import warnings
import weakref
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from statewise import ActionRegistry
from statewise.machine import StateMachine
from statewise.runtime import Runtime
from statewise.runtime.acks import (
    DEFAULT_ACK_DELAY,
    AckBuffer,
    BatchedAcks,
    _close_at_exit,
    _forget_in_child,
)
from statewise.runtime.errors import RuntimeStoreError
from statewise.runtime.sqlite import SQLiteStore
from statewise.runtime.store import OutboxRow, Store
from tests.runtime.conftest import Backend
from tests.runtime.rows import T0, M, at, outbox_row

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LONG = 5.0  # an ack_delay no test waits out: only a transaction, a flush or close writes


def waiting(store: Store) -> int:
    """How many acks ``store`` holds, not written yet."""
    return len(cast(BatchedAcks, store)._acks)


def leased_rows(store: Store, count: int, owner: str = "w1") -> list[int]:
    """``count`` pending rows, each leased to ``owner`` until ``at(30)``; their ids."""
    with store.transaction() as tx:
        ids = tx.outbox_add([outbox_row(f"{M}:o-1:{n}:0") for n in range(count)])
        claimed = tx.outbox_claim(now=T0, lease_until=at(30), owner=owner, limit=count)
    assert [r.id for r in claimed] == ids
    return ids


def rows(store: Store) -> dict[int, OutboxRow]:
    with store.transaction() as tx:
        return {r.id: r for r in tx.outbox_rows()}


def state(store: Store, row_id: int) -> tuple[str, str | None, datetime | None]:
    """The row's status, lease owner and lease end, as ``store`` reads them."""
    row = rows(store)[row_id]
    return row.status, row.lease_owner, row.lease_until


def done_times(store: Store) -> dict[int, datetime | None]:
    """Every outbox row's ``done_at`` (not part of :class:`OutboxRow`), read raw."""
    if isinstance(store, SQLiteStore):
        with closing(sqlite3.connect(store.path)) as conn:
            found = conn.execute("SELECT id, done_at FROM outbox").fetchall()
        return {
            row_id: None if us is None else EPOCH + timedelta(microseconds=us)
            for row_id, us in found
        }
    from statewise.runtime.postgres import PostgresTx

    with store.transaction() as tx:
        assert isinstance(tx, PostgresTx)
        found_pg = tx.connection.execute("SELECT id, done_at FROM outbox").fetchall()
    return {r["id"]: r["done_at"] for r in found_pg}


PENDING_W1 = ("pending", "w1", at(30))
DONE = ("done", None, None)


# -- when an ack is written -------------------------------------------------------------


def test_an_ack_waits_for_the_next_transaction_of_its_store(backend: Backend) -> None:
    store = backend.open(ack_delay=LONG)
    other = backend.open()
    [row_id] = leased_rows(store, 1)
    store.ack_later(row_id, "w1")
    assert waiting(store) == 1
    assert state(other, row_id) == PENDING_W1
    assert waiting(store) == 1  # the other store's transactions carry none of them
    with store.transaction():
        pass  # an empty one writes them too
    assert waiting(store) == 0
    assert state(other, row_id) == DONE


def test_a_transaction_reads_the_acks_it_carries_as_written(backend: Backend) -> None:
    store = backend.open(ack_delay=LONG)
    other = backend.open()
    [row_id] = leased_rows(store, 1)
    store.ack_later(row_id, "w1")
    with store.transaction() as tx:
        # Written before the first statement (PostgreSQL: sent with it).
        [row] = tx.outbox_rows()
        assert (row.status, row.lease_owner, row.lease_until) == DONE
    assert state(other, row_id) == DONE


def wait_until_done(other: Store, row_id: int, timeout: float = 5.0) -> None:
    """Poll (through a store that carries none of the acks) until the row is done."""
    deadline = time.monotonic() + timeout
    while state(other, row_id) != DONE:
        assert time.monotonic() < deadline, f"the ack of row {row_id} was never written"
        time.sleep(0.01)


def test_flush_acks_writes_at_once(backend: Backend) -> None:
    store = backend.open(ack_delay=LONG)
    other = backend.open()
    first, second = leased_rows(store, 2)
    store.ack_later(first, "w1")
    store.ack_later(second, "w1", at(5))
    assert state(other, first) == PENDING_W1
    store.flush_acks()
    assert waiting(store) == 0
    assert state(other, first) == DONE
    assert state(other, second) == DONE
    assert done_times(other)[second] == at(5)
    store.flush_acks()  # nothing waiting: nothing to do
    assert waiting(store) == 0


def test_the_store_thread_writes_a_waiting_ack_within_ack_delay(backend: Backend) -> None:
    store = backend.open(ack_delay=0.05)
    other = backend.open()
    [row_id] = leased_rows(store, 1)
    store.ack_later(row_id, "w1", at(1))
    wait_until_done(other, row_id)
    assert waiting(store) == 0
    assert done_times(other)[row_id] == at(1)


def test_the_store_thread_writes_acks_again_after_an_idle_spell(backend: Backend) -> None:
    store = backend.open(ack_delay=0.05)
    other = backend.open()
    first, second = leased_rows(store, 2)
    for row_id in (first, second):
        store.ack_later(row_id, "w1")
        wait_until_done(other, row_id)
        assert waiting(store) == 0
        time.sleep(0.1)  # the thread goes idle, waiting for an ack to arrive


def test_close_writes_the_acks_still_waiting(backend: Backend) -> None:
    store = backend.open(ack_delay=LONG)
    other = backend.open()
    first, second = leased_rows(store, 2)
    store.ack_later(first, "w1")
    store.ack_later(second, "w1", at(7))
    assert state(other, first) == PENDING_W1
    started = time.monotonic()
    store.close()
    assert time.monotonic() - started < LONG / 2  # it did not wait out the delay
    assert waiting(store) == 0
    assert state(other, first) == DONE
    assert state(other, second) == DONE
    assert done_times(other)[second] == at(7)
    store.close()  # idempotent


def test_a_transaction_that_raises_puts_its_acks_back(backend: Backend) -> None:
    store = backend.open(ack_delay=LONG)
    other = backend.open()
    first, second = leased_rows(store, 2)
    store.ack_later(first, "w1")
    store.ack_later(second, "w1", at(3))

    # Without a statement of its own (on PostgreSQL nothing was sent at all)...
    with pytest.raises(RuntimeError), store.transaction():
        raise RuntimeError
    assert waiting(store) == 2
    assert state(other, first) == PENDING_W1
    assert state(other, second) == PENDING_W1

    # ... and after one, which wrote the acks before they were rolled back.
    seen: list[str] = []

    def read_then_fail() -> None:
        with store.transaction() as tx:
            seen.extend(r.status for r in tx.outbox_rows())
            raise RuntimeError

    with pytest.raises(RuntimeError):
        read_then_fail()
    assert seen == ["done", "done"]
    assert waiting(store) == 2
    assert state(other, first) == PENDING_W1
    assert state(other, second) == PENDING_W1

    store.flush_acks()
    assert waiting(store) == 0
    assert state(other, first) == DONE
    assert state(other, second) == DONE
    assert done_times(other)[second] == at(3)


def test_acks_put_back_keep_the_ones_that_arrived_meanwhile(backend: Backend) -> None:
    store = backend.open(ack_delay=LONG)
    other = backend.open()
    first, second = leased_rows(store, 2)
    store.ack_later(first, "w1")

    def ack_then_fail() -> None:
        with store.transaction():
            store.ack_later(second, "w1")  # arrives while the first one is taken
            raise RuntimeError

    with pytest.raises(RuntimeError):
        ack_then_fail()
    assert waiting(store) == 2
    store.flush_acks()
    assert waiting(store) == 0
    assert state(other, first) == DONE
    assert state(other, second) == DONE


def test_with_no_ack_delay_ack_later_writes_at_once(backend: Backend) -> None:
    store = backend.open(ack_delay=0)
    other = backend.open()
    assert store.ack_delay == 0
    first, second = leased_rows(store, 2)
    store.ack_later(first, "w1")
    assert waiting(store) == 0
    assert state(other, first) == DONE
    store.ack_later(second, "w1", at(4))
    assert state(other, second) == DONE
    assert done_times(other)[second] == at(4)


# -- what an ack writes -----------------------------------------------------------------


def test_an_ack_of_a_row_another_owner_took_over_changes_nothing(backend: Backend) -> None:
    store = backend.open(ack_delay=LONG)
    other = backend.open()
    [row_id] = leased_rows(store, 1, owner="w1")
    with store.transaction() as tx:  # w1's lease ran out: w2 takes the row over
        [taken] = tx.outbox_claim(now=at(30), lease_until=at(60), owner="w2", limit=1)
    assert taken.id == row_id
    store.ack_later(row_id, "w1")  # the zombie's ack
    store.flush_acks()
    assert waiting(store) == 0  # written, and it changed nothing
    assert state(other, row_id) == ("pending", "w2", at(60))
    assert done_times(other)[row_id] is None
    store.ack_later(row_id, "w2", at(31))
    store.flush_acks()
    assert state(other, row_id) == DONE
    assert done_times(other)[row_id] == at(31)


def test_many_acks_in_one_transaction_are_each_written_right(backend: Backend) -> None:
    # Seven acks by w1 (more than four: on PostgreSQL one statement for them all), two
    # by w2, with explicit times and without; four by an owner that holds no lease.
    store = backend.open(ack_delay=LONG)
    other = backend.open()
    mine = leased_rows(store, 6, owner="w1")
    with store.transaction() as tx:
        theirs, kept = tx.outbox_add(
            [outbox_row(f"{M}:o-2:1:0", entity_id="o-2"), outbox_row(f"{M}:o-2:2:0")]
        )
        tx.outbox_claim(now=T0, lease_until=at(40), owner="w2", limit=2, ids=[theirs, kept])
        [untouched] = tx.outbox_add([outbox_row(f"{M}:o-3:1:0", entity_id="o-3")])
    before = datetime.now(UTC)
    acks: list[tuple[int, str, datetime | None]] = [
        (mine[0], "w1", at(1)),
        (mine[1], "w1", None),
        (mine[2], "w1", at(2)),
        (theirs, "w1", at(9)),  # w2's row: unchanged by w1's ack
        (kept, "w1", None),  # w2's row, which w2 does not ack: stays as it is
        (mine[3], "w1", None),
        (mine[4], "w1", at(3)),
        (mine[5], "w2", at(9)),  # w1's row: unchanged by w2's ack
        (theirs, "w2", None),
        (untouched, "w1", at(9)),  # leased to nobody
    ]
    for row_id, owner, when in acks:
        store.ack_later(row_id, owner, when)
    assert waiting(store) == len(acks)
    with store.transaction():
        pass
    after = datetime.now(UTC)
    assert waiting(store) == 0

    got = rows(other)
    assert {row_id: (r.status, r.lease_owner, r.lease_until) for row_id, r in got.items()} == {
        mine[0]: DONE,
        mine[1]: DONE,
        mine[2]: DONE,
        mine[3]: DONE,
        mine[4]: DONE,
        mine[5]: PENDING_W1,
        theirs: DONE,
        kept: ("pending", "w2", at(40)),
        untouched: ("pending", None, None),
    }
    times = done_times(other)
    assert times[mine[0]] == at(1)
    assert times[mine[2]] == at(2)
    assert times[mine[4]] == at(3)
    assert times[mine[5]] is None
    assert times[kept] is None
    assert times[untouched] is None
    slack = timedelta(seconds=5)  # the database's clock, not ours
    for row_id in (mine[1], mine[3], theirs):
        when = times[row_id]
        assert when is not None, row_id
        assert before - slack <= when <= after + slack, (row_id, when)


def test_acks_of_one_row_twice_write_it_once(backend: Backend) -> None:
    store = backend.open(ack_delay=LONG)
    other = backend.open()
    [row_id] = leased_rows(store, 1)
    store.ack_later(row_id, "w1", at(1))
    store.ack_later(row_id, "w1", at(2))
    store.flush_acks()
    assert state(other, row_id) == DONE
    assert done_times(other)[row_id] == at(1)  # the first one; the second found it done


# -- settings ---------------------------------------------------------------------------


@pytest.mark.parametrize("delay", [-1, -0.01, True, False, "0.1", None, [0.1]])
def test_a_bad_ack_delay_is_refused(backend: Backend, delay: Any) -> None:
    with pytest.raises(ValueError, match="ack_delay must be a number of seconds >= 0"):
        backend.open(ack_delay=delay)


def test_ack_delay_is_what_the_store_was_given(backend: Backend) -> None:
    assert backend.open().ack_delay == DEFAULT_ACK_DELAY
    assert backend.open(ack_delay=0.25).ack_delay == 0.25
    one = backend.open(ack_delay=1).ack_delay
    assert one == 1.0 and isinstance(one, float)


TINY: dict[str, Any] = {
    "meta": {"machine_name": "tiny"},
    "states": [{"name": "A", "type": "initial"}, {"name": "B", "type": "terminal"}],
    "transitions": [{"trigger": "go", "source": "A", "dest": "B"}],
}


def test_the_runtime_refuses_a_lease_under_ten_times_ack_delay(backend: Backend) -> None:
    store = backend.open(ack_delay=0.5)
    machine = StateMachine.from_dict(TINY)
    with pytest.raises(ValueError, match=r"ack_delay \(0\.5 s\), got 4\.9"):
        Runtime(machine, store, actions=ActionRegistry(), lease_seconds=4.9)
    with pytest.raises(ValueError, match="ack_delay"):
        Runtime(machine, store, actions=ActionRegistry(), lease_seconds=1)
    Runtime(machine, store, actions=ActionRegistry(), lease_seconds=5.0)  # exactly ten times
    Runtime(machine, store, actions=ActionRegistry(), lease_seconds=60)
    no_delay = backend.open(ack_delay=0)
    Runtime(machine, no_delay, actions=ActionRegistry(), lease_seconds=0.001)


# -- processes --------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_forgets_the_acks_its_parent_holds(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "store.db", ack_delay=LONG) as store:
        [row_id] = leased_rows(store, 1)
        store.ack_later(row_id, "w1")
        assert waiting(store) == 1  # and the store's thread is counting down
        with warnings.catch_warnings():
            # Python 3.12+ warns about forking a process with threads.
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the child: never back into pytest
            code = 1
            try:
                code = 0 if waiting(store) == 0 else 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert waiting(store) == 1  # the parent's ack is still its own to write
        with closing(sqlite3.connect(store.path)) as conn:
            assert conn.execute("SELECT status FROM outbox").fetchall() == [("pending",)]
    with closing(sqlite3.connect(tmp_path / "store.db")) as conn:
        assert conn.execute("SELECT status FROM outbox").fetchall() == [("done",)]


# -- the buffer on its own: failures, exit and fork hooks


class Flusher:
    """A ``flush_once`` that fails ``failures`` times, then empties the buffer."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0
        self.buffer: AckBuffer | None = None

    def __call__(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError("the database is away")
        assert self.buffer is not None
        self.buffer.take()


def buffer_with(failures: int, delay: float) -> tuple[AckBuffer, Flusher]:
    flusher = Flusher(failures)
    buffer = AckBuffer(flusher, delay)
    flusher.buffer = buffer
    return buffer, flusher


def test_the_thread_logs_a_failed_write_and_tries_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    buffer, flusher = buffer_with(failures=1, delay=0.01)
    with caplog.at_level("ERROR", logger="statewise.runtime"):
        buffer.add((1, "w", None))
        deadline = time.monotonic() + 5
        while len(buffer) and time.monotonic() < deadline:
            time.sleep(0.01)
    assert len(buffer) == 0 and flusher.calls == 2
    assert "writing 1 outbox acks failed; trying again" in caplog.text
    buffer.close()


def test_a_failed_flush_leaves_the_acks_waiting() -> None:
    buffer, flusher = buffer_with(failures=1, delay=60)
    buffer.add((1, "w", None))
    with pytest.raises(RuntimeError, match="away"):
        buffer.flush()
    assert len(buffer) == 1  # the store's transaction put them back (here: never took)
    buffer.flush()
    assert len(buffer) == 0 and flusher.calls == 2
    buffer.close()


def test_the_exit_hook_writes_what_waits_and_only_logs_a_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    buffer, flusher = buffer_with(failures=0, delay=60)
    buffer.add((1, "w", None))
    _close_at_exit(weakref.ref(buffer))
    assert len(buffer) == 0 and flusher.calls == 1

    failing, _ = buffer_with(failures=5, delay=60)
    failing.add((2, "w", None))
    with caplog.at_level("ERROR", logger="statewise.runtime"):
        _close_at_exit(weakref.ref(failing))  # must not raise at interpreter exit
    assert "at exit failed: those actions will run again" in caplog.text
    assert len(failing) == 1

    gone, _ = buffer_with(failures=0, delay=60)
    ref = weakref.ref(gone)
    del gone
    _close_at_exit(ref)  # collected already: nothing to do


def test_the_fork_hook_empties_the_child_buffer() -> None:
    # As a forked child sees it: acks copied from the parent, and no thread (threads
    # do not survive fork), so put_back stands in for the parent's adds.
    buffer, flusher = buffer_with(failures=0, delay=60)
    buffer.put_back([(1, "w", None), (2, "w", None)])
    _forget_in_child(weakref.ref(buffer))
    assert len(buffer) == 0
    buffer.add((3, "w", None))  # usable afterwards: a lock and a thread of its own
    buffer.flush()
    assert flusher.calls == 1 and len(buffer) == 0
    buffer.close()


def test_a_store_that_cannot_write_its_acks_on_close_logs_it_and_closes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SQLiteStore(tmp_path / "store.db", ack_delay=60)
    (row_id,) = leased_rows(store, 1)
    store.ack_later(row_id, "w1")

    def away() -> None:
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(store._acks, "_flush_once", away)
    with caplog.at_level("ERROR", logger="statewise.runtime"):
        store.close()
    assert "while closing failed: those actions will run again" in caplog.text
    with pytest.raises(RuntimeStoreError, match="closed"), store.transaction():
        pass


def test_a_flush_whose_transaction_fails_leaves_the_acks_waiting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SQLiteStore(tmp_path / "store.db", ack_delay=60)
    (row_id,) = leased_rows(store, 1)
    store.ack_later(row_id, "w1")

    def locked(*, durable: bool = True) -> Any:
        raise RuntimeStoreError("the database stayed locked")

    monkeypatch.setattr(store, "transaction", locked)
    with pytest.raises(RuntimeStoreError, match="stayed locked"):
        store.flush_acks()
    assert waiting(store) == 1
    monkeypatch.undo()
    store.flush_acks()
    assert waiting(store) == 0 and state(store, row_id) == DONE
    store.close()
