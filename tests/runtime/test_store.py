"""The store contract (``statewise.runtime.store``), run on every store by the fixture.

Each test gets a fresh database; times are fixed datetimes, never the wall clock, so
due times, attempts and leases are compared exactly.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeAlias

import pytest

from statewise.runtime.errors import ConcurrencyError, RuntimeStoreError, SchemaVersionError
from statewise.runtime.store import (
    SCHEMA_VERSION,
    EntityRow,
    EventWrite,
    HistoryRow,
    OutboxRow,
    Received,
    Store,
    TimerRow,
    Tx,
    WorkerRow,
)
from tests.runtime.conftest import Backend
from tests.runtime.rows import T0, M, at, outbox_row


def entity(entity_id: str = "o-1", *, version: int = 1, **context: Any) -> EntityRow:
    return EntityRow(M, entity_id, "OPEN", dict(context), version, T0)


def history_row(seq: int, entity_id: str = "o-1") -> HistoryRow:
    return HistoryRow(
        machine=M,
        entity_id=entity_id,
        seq=seq,
        version=seq + 1,
        event={"trigger": f"t{seq}", "payload": {}},
        from_state="OPEN",
        to_state="FILLED" if seq % 2 else "OPEN",
        success=seq != 2,
        error="guard_rejected" if seq == 2 else None,
        actions=["notify_ui", "settle"] if seq % 2 else [],
        at=at(seq),
    )


# -- entities


def test_an_inserted_entity_reads_back_exactly(store: Store) -> None:
    row = EntityRow(M, "o-1", "OPEN", {"qty": 3, "note": "naïve ☃", "lines": [{"a": None}]}, 1, T0)
    with store.transaction() as tx:
        assert tx.insert_entity(row) is True
    with store.transaction() as tx:
        got = tx.get_entity(M, "o-1")
    assert got == row
    assert got is not None
    assert got.entered_at.utcoffset() == timedelta(0)


def test_a_duplicate_insert_returns_false_and_keeps_the_first(store: Store) -> None:
    with store.transaction() as tx:
        assert tx.insert_entity(entity(qty=1))
        assert tx.insert_entity(EntityRow(M, "o-1", "FILLED", {"qty": 9}, 7, at(5))) is False
        assert tx.get_entity(M, "o-1") == entity(qty=1)


def test_entity_ids_are_per_machine(store: Store) -> None:
    with store.transaction() as tx:
        assert tx.insert_entity(entity())
        assert tx.insert_entity(EntityRow("invoices", "o-1", "DRAFT", {}, 1, T0))
        assert tx.get_entity("invoices", "o-1") == EntityRow("invoices", "o-1", "DRAFT", {}, 1, T0)
        assert tx.get_entity("other", "o-1") is None


def test_a_missing_entity_is_none(store: Store) -> None:
    with store.transaction() as tx:
        assert tx.get_entity(M, "nope") is None
        assert tx.lock_entity(M, "nope") is None


def test_update_writes_only_at_the_expected_version(store: Store) -> None:
    with store.transaction() as tx:
        tx.insert_entity(entity(qty=1))
    with store.transaction() as tx:
        locked = tx.lock_entity(M, "o-1")
        assert locked == entity(qty=1)
        moved = EntityRow(M, "o-1", "FILLED", {"qty": 1, "filled": 1}, 2, at(1))
        assert tx.update_entity(moved, expected_version=1) is True
    with store.transaction() as tx:
        stale = EntityRow(M, "o-1", "CANCELLED", {}, 2, at(2))
        assert tx.update_entity(stale, expected_version=1) is False
        assert tx.get_entity(M, "o-1") == moved
        missing = EntityRow(M, "ghost", "OPEN", {}, 2, at(2))
        assert tx.update_entity(missing, expected_version=1) is False
        assert tx.get_entity(M, "ghost") is None


def test_a_block_that_raises_rolls_everything_back(store: Store) -> None:
    def write_then_fail() -> None:
        with store.transaction() as tx:
            tx.insert_entity(entity())
            tx.inbox_add(M, "o-1", "k1", {"trigger": "go"}, T0)
            tx.timer_set(TimerRow(M, "o-1", "timeout", at(5), 1))
            raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        write_then_fail()
    with store.transaction() as tx:
        assert tx.get_entity(M, "o-1") is None
        assert tx.inbox_pending(M, 10) == []
        assert tx.timer_get(M, "o-1", "timeout") is None


LockRead: TypeAlias = Callable[[Tx, str, str], EntityRow | None]


def bump_from_threads(store: Store, lock: LockRead, *, rounds: int) -> None:
    """Three threads each add 1 to a counter ``rounds`` times, reading it through
    ``lock`` (which must lock the row) and writing it back with a version check: the
    count comes out exact only if the lock serializes them."""
    with store.transaction() as tx:
        tx.insert_entity(entity(count=0, version=0))
    errors: list[BaseException] = []

    def bump() -> None:
        try:
            for _ in range(rounds):
                with store.transaction() as tx:
                    row = lock(tx, M, "o-1")
                    assert row is not None
                    after = EntityRow(
                        M, "o-1", "OPEN", {"count": row.context["count"] + 1}, row.version + 1, T0
                    )
                    # Locked: nobody can have moved the version since the read.
                    assert tx.update_entity(after, expected_version=row.version)
        except BaseException as exc:  # reported to the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=bump) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with store.transaction() as tx:
        final = tx.get_entity(M, "o-1")
    assert final is not None
    assert (final.context["count"], final.version) == (3 * rounds, 3 * rounds)


def test_lock_entity_serializes_writers(store: Store) -> None:
    bump_from_threads(
        store, lambda tx, machine, entity_id: tx.lock_entity(machine, entity_id), rounds=40
    )


def test_now_is_aware_utc_and_fixed_for_the_transaction(store: Store) -> None:
    before = datetime.now(UTC)
    with store.transaction() as tx:
        first = tx.now()
        second = tx.now()
    assert first == second
    assert first.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=5) <= first <= datetime.now(UTC) + timedelta(seconds=5)


def test_times_in_other_offsets_are_the_same_instants(store: Store) -> None:
    plus_two = timezone(timedelta(hours=2))
    local = T0.astimezone(plus_two)
    with store.transaction() as tx:
        tx.insert_entity(EntityRow(M, "o-1", "OPEN", {}, 1, local))
        tx.timer_set(TimerRow(M, "o-1", "timeout", local + timedelta(seconds=1), 1))
        got = tx.get_entity(M, "o-1")
        assert got is not None
        assert got.entered_at == T0
        assert got.entered_at.utcoffset() == timedelta(0)
        assert tx.timers_due(M, at(0.5), 10) == []
        assert [t.due_at for t in tx.timers_due(M, at(1), 10)] == [at(1)]


def test_a_naive_datetime_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="naive"), store.transaction() as tx:
        tx.insert_entity(EntityRow(M, "o-1", "OPEN", {}, 1, T0.replace(tzinfo=None)))


# -- inbox


def test_inbox_add_then_a_redelivery_returns_the_first_row(store: Store) -> None:
    event = {"trigger": "fill", "payload": {"qty": 2}, "id": "msg-1"}
    with store.transaction() as tx:
        row, added = tx.inbox_add(M, "o-1", "msg-1", event, T0)
    assert added is True
    assert (row.machine, row.entity_id, row.key, row.event) == (M, "o-1", "msg-1", event)
    assert (row.received_at, row.result) == (T0, None)
    with store.transaction() as tx:
        again, added = tx.inbox_add(M, "o-1", "msg-1", {"trigger": "other"}, at(9))
    assert added is False
    assert again == row  # the first event and arrival time stand


def test_a_processed_redelivery_carries_the_first_result(store: Store) -> None:
    result = {"success": True, "target_state": "FILLED", "actions": ["a", "b"]}
    with store.transaction() as tx:
        row, _ = tx.inbox_add(M, "o-1", "k", {"trigger": "fill"}, T0)
        tx.inbox_done(row.id, result)
    with store.transaction() as tx:
        again, added = tx.inbox_add(M, "o-1", "k", {"trigger": "fill"}, at(1))
        assert tx.inbox_first_pending(M, "o-1") is None
    assert added is False
    assert (again.id, again.result) == (row.id, result)


def test_the_same_key_on_two_entities_is_two_events(store: Store) -> None:
    with store.transaction() as tx:
        one, added_one = tx.inbox_add(M, "o-1", "k", {"n": 1}, T0)
        two, added_two = tx.inbox_add(M, "o-2", "k", {"n": 2}, T0)
        three, added_three = tx.inbox_add("invoices", "o-1", "k", {"n": 3}, T0)
    assert added_one and added_two and added_three
    assert len({one.id, two.id, three.id}) == 3


def test_pending_events_come_in_the_order_they_were_added(store: Store) -> None:
    with store.transaction() as tx:
        for entity_id in "ab":  # the runtime adds events only for entities that exist
            tx.insert_entity(entity(entity_id))
        # Arrival times out of order on purpose: the order added is what counts.
        a1, _ = tx.inbox_add(M, "a", "1", {"n": 1}, at(3))
        b1, _ = tx.inbox_add(M, "b", "1", {"n": 2}, at(1))
        a2, _ = tx.inbox_add(M, "a", "2", {"n": 3}, at(2))
        tx.inbox_add("invoices", "a", "1", {"n": 4}, at(0))
    with store.transaction() as tx:
        assert [r.id for r in tx.inbox_pending(M, 10)] == [a1.id, b1.id, a2.id]
        assert [r.id for r in tx.inbox_pending(M, 2)] == [a1.id, b1.id]
        assert tx.inbox_pending(M, 0) == []
        assert tx.inbox_first_pending(M, "a") == a1
        assert tx.inbox_first_pending(M, "b") == b1
        assert tx.inbox_first_pending(M, "c") is None
        tx.inbox_done(a1.id, {"success": True})
    with store.transaction() as tx:
        assert [r.id for r in tx.inbox_pending(M, 10)] == [b1.id, a2.id]
        assert tx.inbox_first_pending(M, "a") == a2


def test_an_event_gets_one_result_only(store: Store) -> None:
    with store.transaction() as tx:
        row, _ = tx.inbox_add(M, "o-1", "k", {"trigger": "fill"}, T0)
        tx.inbox_done(row.id, {"first": True})
    with pytest.raises(RuntimeStoreError, match="already processed"), store.transaction() as tx:
        tx.inbox_done(row.id, {"second": True})
    with pytest.raises(RuntimeStoreError, match="unknown"), store.transaction() as tx:
        tx.inbox_done(row.id + 1000, {"x": 1})
    with store.transaction() as tx:
        again, _ = tx.inbox_add(M, "o-1", "k", {}, T0)
    assert again.result == {"first": True}


def test_events_added_one_after_another_wait_in_order(store: Store) -> None:
    def backlog(entity_id: str, key: str) -> bool:
        got = tx.receive(M, entity_id, key, "timeout")
        assert got is not None
        return got.backlog

    with store.transaction() as tx:
        for entity_id in ("a", "b"):
            tx.insert_entity(entity(entity_id))
        a1, added = tx.inbox_add(M, "a", "1", {"n": 1}, T0)
        assert (added, backlog("a", "1")) == (True, False)  # the entity's only pending event
        assert tx.inbox_first_pending(M, "a") == a1
        a2, added = tx.inbox_add(M, "a", "2", {"n": 2}, T0)
        assert (added, backlog("a", "2")) == (True, True)  # a1 waits before it
        _, added = tx.inbox_add(M, "b", "1", {"n": 3}, T0)
        assert (added, backlog("b", "1")) == (True, False)  # another entity's do not count
        again, added = tx.inbox_add(M, "a", "1", {"n": 9}, at(1))
        assert (again, added) == (a1, False)  # a redelivery
        tx.inbox_done(a1.id, {"success": True})
        tx.inbox_done(a2.id, {"success": True})
        _, added = tx.inbox_add(M, "a", "3", {"n": 4}, T0)
        assert (added, backlog("a", "3")) == (True, False)  # processed events do not count


# -- history


def test_history_comes_back_by_seq(store: Store) -> None:
    rows = [history_row(seq) for seq in (1, 2, 3)]
    with store.transaction() as tx:
        assert tx.next_history_seq(M, "o-1") == 1
        for row in (rows[1], rows[0], rows[2]):  # the order written does not matter
            tx.history_add(row)
        tx.history_add(history_row(1, entity_id="o-2"))
    with store.transaction() as tx:
        assert tx.history(M, "o-1") == rows
        assert tx.next_history_seq(M, "o-1") == 4
        assert tx.next_history_seq(M, "o-2") == 2
        assert tx.history(M, "o-3") == []
        assert tx.history("invoices", "o-1") == []


def test_history_seq_0_is_the_next_one(store: Store) -> None:
    with store.transaction() as tx:
        tx.history_add(history_row(0))
        tx.history_add(history_row(0))
        tx.history_add(history_row(0, entity_id="o-2"))
        tx.history_add(history_row(7))  # an explicit seq is kept
        tx.history_add(history_row(0))
    with store.transaction() as tx:
        assert [r.seq for r in tx.history(M, "o-1")] == [1, 2, 7, 8]
        assert [r.seq for r in tx.history(M, "o-2")] == [1]


# -- outbox


def test_outbox_rows_read_back_as_added(store: Store) -> None:
    rows = [outbox_row("k1"), outbox_row("k2", due=5, name="settle")]
    with store.transaction() as tx:
        ids = tx.outbox_add(rows)
        assert tx.outbox_add([]) == []
    assert len(ids) == 2
    assert ids[0] < ids[1]
    with store.transaction() as tx:
        got = tx.outbox_rows()
    assert got == [OutboxRow(**{**vars_of(r), "id": i}) for r, i in zip(rows, ids, strict=True)]


def vars_of(row: OutboxRow) -> dict[str, Any]:
    return {name: getattr(row, name) for name in OutboxRow.__slots__}


def test_claim_leases_due_rows_oldest_due_first(store: Store) -> None:
    with store.transaction() as tx:
        late, early, later, future = tx.outbox_add(
            [
                outbox_row("a", due=2),
                outbox_row("b", due=1),
                outbox_row("c", due=2),
                outbox_row("d", due=60),
            ]
        )
    with store.transaction() as tx:
        claimed = tx.outbox_claim(now=at(10), lease_until=at(40), owner="w1", limit=2)
    assert [r.id for r in claimed] == [early, late]
    assert all(
        (r.lease_owner, r.lease_until, r.status) == ("w1", at(40), "pending") for r in claimed
    )
    with store.transaction() as tx:
        rest = tx.outbox_claim(now=at(10), lease_until=at(40), owner="w1", limit=10)
        assert [r.id for r in rest] == [later]  # the future row is not due yet
        stored = {r.id: r for r in tx.outbox_rows()}
    assert stored[early] == claimed[0]
    assert (stored[future].lease_owner, stored[future].lease_until) == (None, None)
    with store.transaction() as tx:
        assert tx.outbox_claim(now=at(10), lease_until=at(40), owner="w1", limit=0) == []


def test_a_live_lease_is_exclusive(store: Store) -> None:
    with store.transaction() as tx:
        (row_id,) = tx.outbox_add([outbox_row("k")])
        assert [r.id for r in tx.outbox_claim(now=T0, lease_until=at(30), owner="w1", limit=5)] == [
            row_id
        ]
    with store.transaction() as tx:
        assert tx.outbox_claim(now=at(29), lease_until=at(60), owner="w2", limit=5) == []
        assert tx.outbox_claim(now=at(29), lease_until=at(60), owner="w1", limit=5) == []
        assert tx.outbox_ack(row_id, "w2", at(29)) is False
        assert tx.outbox_rows()[0].lease_owner == "w1"


def test_an_expired_lease_is_reclaimed_and_the_zombie_changes_nothing(store: Store) -> None:
    with store.transaction() as tx:
        (row_id,) = tx.outbox_add([outbox_row("k")])
        tx.outbox_claim(now=T0, lease_until=at(30), owner="zombie", limit=1)
    with store.transaction() as tx:
        taken = tx.outbox_claim(now=at(30), lease_until=at(60), owner="w2", limit=1)
    assert [(r.id, r.lease_owner, r.lease_until) for r in taken] == [(row_id, "w2", at(60))]
    with store.transaction() as tx:
        assert tx.outbox_ack(row_id, "zombie", at(31)) is False
        assert not tx.outbox_retry(row_id, "zombie", attempts=1, next_attempt_at=at(99), error="x")
        assert tx.outbox_dead(row_id, "zombie", attempts=1, error="x") is False
        assert tx.outbox_rows() == taken  # untouched
        assert tx.outbox_ack(row_id, "w2", at(32)) is True
    with store.transaction() as tx:
        (done,) = tx.outbox_rows()
        assert (done.status, done.lease_owner, done.lease_until) == ("done", None, None)
        assert tx.outbox_claim(now=at(999), lease_until=at(1999), owner="w3", limit=5) == []
        assert tx.outbox_ack(row_id, "w2", at(33)) is False  # done once


def test_a_lease_that_ran_out_unclaimed_still_counts(store: Store) -> None:
    with store.transaction() as tx:
        (row_id,) = tx.outbox_add([outbox_row("k")])
        tx.outbox_claim(now=T0, lease_until=at(30), owner="slow", limit=1)
    with store.transaction() as tx:
        assert tx.outbox_ack(row_id, "slow", at(45)) is True
        assert tx.outbox_rows(status="done")[0].id == row_id


def test_claim_by_ids_takes_only_those_that_are_claimable(store: Store) -> None:
    with store.transaction() as tx:
        one, two, future, leased = tx.outbox_add(
            [outbox_row("1"), outbox_row("2"), outbox_row("3", due=60), outbox_row("4")]
        )
        tx.outbox_claim(now=T0, lease_until=at(30), owner="other", limit=1, ids=[leased])
    with store.transaction() as tx:
        got = tx.outbox_claim(
            now=at(1), lease_until=at(31), owner="w", limit=10, ids=[two, future, leased, 10_000]
        )
        assert [r.id for r in got] == [two]
        got = tx.outbox_claim(now=at(1), lease_until=at(31), owner="w", limit=1, ids=[two, one])
        assert [r.id for r in got] == [one]
        assert tx.outbox_claim(now=at(1), lease_until=at(31), owner="w", limit=5, ids=[]) == []


def test_retry_puts_the_row_back_for_later(store: Store) -> None:
    with store.transaction() as tx:
        (row_id,) = tx.outbox_add([outbox_row("k")])
        tx.outbox_claim(now=T0, lease_until=at(30), owner="w1", limit=1)
    with store.transaction() as tx:
        assert tx.outbox_retry(row_id, "w1", attempts=1, next_attempt_at=at(10), error="timeout")
        assert tx.outbox_retry(row_id, "w1", attempts=2, next_attempt_at=at(10), error="x") is False
    with store.transaction() as tx:
        (row,) = tx.outbox_rows()
        assert (row.status, row.attempts, row.next_attempt_at) == ("pending", 1, at(10))
        assert (row.last_error, row.lease_owner, row.lease_until) == ("timeout", None, None)
        assert tx.outbox_claim(now=at(9), lease_until=at(40), owner="w2", limit=1) == []
        (again,) = tx.outbox_claim(now=at(10), lease_until=at(40), owner="w2", limit=1)
        assert (again.id, again.attempts, again.last_error) == (row_id, 1, "timeout")


def test_dead_rows_are_never_claimed_again(store: Store) -> None:
    with store.transaction() as tx:
        (row_id, other) = tx.outbox_add([outbox_row("k"), outbox_row("j")])
        tx.outbox_claim(now=T0, lease_until=at(30), owner="w1", limit=1)
    with store.transaction() as tx:
        assert tx.outbox_dead(row_id, "w1", attempts=3, error="gave up") is True
        assert tx.outbox_dead(row_id, "w1", attempts=4, error="again") is False
    with store.transaction() as tx:
        (dead,) = tx.outbox_rows(status="dead")
        assert (dead.id, dead.attempts, dead.last_error, dead.lease_owner) == (
            row_id,
            3,
            "gave up",
            None,
        )
        claimed = tx.outbox_claim(now=at(999), lease_until=at(1999), owner="w2", limit=5)
        assert [r.id for r in claimed] == [other]


def test_release_gives_up_one_owners_leases(store: Store) -> None:
    with store.transaction() as tx:
        a, b, c, d = tx.outbox_add([outbox_row(k) for k in "abcd"])
        tx.outbox_claim(now=T0, lease_until=at(30), owner="stopping", limit=2, ids=[a, b])
        tx.outbox_claim(now=T0, lease_until=at(30), owner="busy", limit=1, ids=[c])
        tx.outbox_claim(now=T0, lease_until=at(30), owner="stopping", limit=1, ids=[d])
        assert tx.outbox_ack(d, "stopping", at(1))
    with store.transaction() as tx:
        assert tx.outbox_release("stopping") == 2
        assert tx.outbox_release("stopping") == 0
        assert tx.outbox_release("nobody") == 0
    with store.transaction() as tx:
        claimed = tx.outbox_claim(now=at(1), lease_until=at(31), owner="next", limit=10)
        assert [(r.id, r.attempts) for r in claimed] == [(a, 0), (b, 0)]
        assert {r.id: r.lease_owner for r in tx.outbox_rows()} == {
            a: "next",
            b: "next",
            c: "busy",
            d: None,
        }


def test_a_row_may_be_added_already_leased(store: Store) -> None:
    leased = OutboxRow(**{**vars_of(outbox_row("k")), "lease_owner": "me", "lease_until": at(30)})
    with store.transaction() as tx:
        (row_id,) = tx.outbox_add([leased])
    with store.transaction() as tx:
        assert tx.outbox_claim(now=at(1), lease_until=at(31), owner="other", limit=5) == []
        assert tx.outbox_ack(row_id, "me", at(2)) is True


def test_outbox_rows_filter_by_status_and_machine(store: Store) -> None:
    with store.transaction() as tx:
        a, b, c = tx.outbox_add(
            [outbox_row("a"), outbox_row("b"), outbox_row("c", machine="invoices")]
        )
        tx.outbox_claim(now=T0, lease_until=at(30), owner="w", limit=1, ids=[a])
        tx.outbox_ack(a, "w", T0)
    with store.transaction() as tx:
        assert [r.id for r in tx.outbox_rows()] == [a, b, c]
        assert [r.id for r in tx.outbox_rows(status="done")] == [a]
        assert [r.id for r in tx.outbox_rows(status="pending")] == [b, c]
        assert [r.id for r in tx.outbox_rows(machine="invoices")] == [c]
        assert [r.id for r in tx.outbox_rows(status="pending", machine=M)] == [b]
        assert tx.outbox_rows(status="dead") == []


# -- timers


def test_a_timer_is_armed_rearmed_and_cancelled(store: Store) -> None:
    with store.transaction() as tx:
        tx.timer_set(TimerRow(M, "o-1", "timeout", at(5), 1))
        assert tx.timer_get(M, "o-1", "timeout") == TimerRow(M, "o-1", "timeout", at(5), 1)
        tx.timer_set(TimerRow(M, "o-1", "timeout", at(9), 2))
    with store.transaction() as tx:
        assert tx.timer_get(M, "o-1", "timeout") == TimerRow(M, "o-1", "timeout", at(9), 2)
        assert tx.timers_due(M, at(100), 10) == [TimerRow(M, "o-1", "timeout", at(9), 2)]
        assert tx.timer_get(M, "o-1", "reminder") is None
        tx.timer_cancel(M, "o-1", "timeout")
        tx.timer_cancel(M, "o-1", "timeout")  # nothing left: no error
    with store.transaction() as tx:
        assert tx.timer_get(M, "o-1", "timeout") is None
        assert tx.timers_due(M, at(100), 10) == []


def test_due_timers_come_by_due_time_then_entity_and_name(store: Store) -> None:
    timers = [
        TimerRow(M, "b", "timeout", at(2), 1),
        TimerRow(M, "a", "timeout", at(3), 1),
        TimerRow(M, "a", "reminder", at(2), 4),
        TimerRow(M, "c", "timeout", at(50), 1),
        TimerRow("invoices", "a", "timeout", at(1), 1),
    ]
    with store.transaction() as tx:
        for timer in timers:
            tx.timer_set(timer)
    with store.transaction() as tx:
        assert tx.timers_due(M, at(3), 10) == [timers[2], timers[0], timers[1]]
        assert tx.timers_due(M, at(2), 10) == [timers[2], timers[0]]
        assert tx.timers_due(M, at(3), 1) == [timers[2]]
        assert tx.timers_due(M, at(3), 0) == []
        assert tx.timers_due(M, at(1), 10) == []
        assert tx.timers_due("invoices", at(1), 10) == [timers[4]]
        # Reading changes nothing: the same timers are still due.
        assert len(tx.timers_due(M, at(3), 10)) == 3


# -- workers


def test_worker_heartbeats_insert_then_replace(store: Store) -> None:
    with store.transaction() as tx:
        tx.worker_beat(WorkerRow("w-2", 200, "host-b", "running", at(1)))
        tx.worker_beat(WorkerRow("w-1", 100, "host-a", "waiting", at(0)))
    with store.transaction() as tx:
        tx.worker_beat(WorkerRow("w-1", 101, "host-a", "closed", at(5)))
        assert tx.workers() == [
            WorkerRow("w-1", 101, "host-a", "closed", at(5)),
            WorkerRow("w-2", 200, "host-b", "running", at(1)),
        ]


# -- schema


def test_a_fresh_store_is_at_the_current_schema_version(store: Store) -> None:
    assert store.schema_version() == SCHEMA_VERSION
    assert store.upgrade() == []
    assert store.schema_version() == SCHEMA_VERSION


def test_two_stores_on_one_database_see_each_others_writes(backend: Backend) -> None:
    first, second = backend.open(), backend.open(migrate=False)
    with first.transaction() as tx:
        tx.insert_entity(entity(qty=5))
    with second.transaction() as tx:
        assert tx.get_entity(M, "o-1") == entity(qty=5)


def test_without_migrations_an_empty_database_is_refused(backend: Backend) -> None:
    store = backend.open(migrate=False)  # opening never refuses: db upgrade needs it
    assert store.schema_version() == 0
    with pytest.raises(SchemaVersionError) as caught, store.transaction():
        pass
    error = caught.value
    assert (error.found, error.known, error.url) == (0, SCHEMA_VERSION, store.url)
    assert f"statewise db upgrade --store {store.url}" in str(error)
    assert store.upgrade() == list(range(1, SCHEMA_VERSION + 1))
    with store.transaction() as tx:
        assert tx.insert_entity(entity())


def test_a_database_from_a_newer_statewise_is_refused(backend: Backend) -> None:
    backend.open().close()
    future = SCHEMA_VERSION + 1
    backend.execute(
        f"INSERT INTO schema_migrations (version, applied_at) "
        f"VALUES ({future}, '2099-01-01T00:00:00+00:00')"
    )
    with pytest.raises(SchemaVersionError, match="upgrade statewise") as caught:
        backend.open()
    assert (caught.value.found, caught.value.known) == (future, SCHEMA_VERSION)
    store = backend.open(migrate=False)
    assert store.schema_version() == future
    with pytest.raises(SchemaVersionError, match=f"schema version {future}"), store.transaction():
        pass
    with pytest.raises(SchemaVersionError):
        store.upgrade()


# -- transactions that need not wait for the disk


def test_a_non_durable_transaction_commits_and_rolls_back_like_any(store: Store) -> None:
    with store.transaction() as tx:
        (row_id,) = tx.outbox_add([outbox_row("k1")])
        tx.outbox_claim(now=T0, lease_until=at(30), owner="w", limit=1)
    with store.transaction(durable=False) as tx:
        assert tx.outbox_ack(row_id, "w", at(1)) is True

    def insert_then_fail() -> None:
        with store.transaction(durable=False) as tx:
            tx.insert_entity(entity("gone"))
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError):
        insert_then_fail()
    with store.transaction() as tx:
        assert [r.status for r in tx.outbox_rows()] == ["done"]
        assert tx.get_entity(M, "gone") is None
    with store.transaction(durable=False):
        pass  # nothing run, nothing to commit


def test_an_ack_without_a_time_is_dated_by_the_transaction(store: Store) -> None:
    with store.transaction() as tx:
        (row_id,) = tx.outbox_add([outbox_row("k1")])
        tx.outbox_claim(now=T0, lease_until=at(30), owner="w", limit=1)
    with store.transaction(durable=False) as tx:
        assert tx.outbox_ack(row_id, "zombie") is False
        assert tx.outbox_ack(row_id, "w") is True
        assert tx.outbox_ack(row_id, "w") is False  # done once
    with store.transaction() as tx:
        (row,) = tx.outbox_rows()
    assert (row.status, row.lease_owner, row.lease_until) == ("done", None, None)


# -- the event path: receive

EVENT = {"trigger": "fill", "payload": {"qty": 2}, "id": None}
RESULT = {"success": True, "target_state": "FILLED", "actions": ["notify"]}


def test_receive_of_an_unknown_entity_is_none(store: Store) -> None:
    with store.transaction() as tx:
        tx.insert_entity(entity())
        tx.inbox_add(M, "ghost", "k", EVENT, T0)
        tx.timer_set(TimerRow(M, "ghost", "timeout", at(5), 1))
        assert tx.receive(M, "ghost", "k", "timeout") is None
        assert tx.receive("invoices", "o-1", None, "timeout") is None
        assert tx.receive(M, "o-1", None, "timeout") is not None  # the transaction goes on


def test_receive_reads_the_entity_and_the_transactions_clock(store: Store) -> None:
    with store.transaction() as tx:
        tx.insert_entity(entity(qty=3))
    with store.transaction() as tx:
        got = tx.receive(M, "o-1", "k", "timeout")
        assert got == Received(entity(qty=3), tx.now(), None, False, None)
    with store.transaction() as tx:
        now = tx.now()  # read first, this time
        got = tx.receive(M, "o-1", None, "timeout")
        assert got == Received(entity(qty=3), now, None, False, None)


def test_receive_returns_the_inbox_row_under_the_key(store: Store) -> None:
    with store.transaction() as tx:
        tx.insert_entity(entity())
        done, _ = tx.inbox_add(M, "o-1", "done", {"trigger": "a", "payload": {}, "id": "d"}, T0)
        tx.inbox_done(done.id, RESULT)
        pending, _ = tx.inbox_add(M, "o-1", "pending", {"trigger": "b", "payload": {"n": 1}}, at(1))
        tx.inbox_add(M, "o-2", "elsewhere", EVENT, T0)
        tx.inbox_add("invoices", "o-1", "elsewhere", EVENT, T0)
    expected: dict[str | None, Any] = {
        "done": replace(done, result=RESULT),
        "pending": pending,
        "elsewhere": None,  # another entity's and another machine's key
        "unseen": None,
        None: None,
    }
    with store.transaction() as tx:
        for key, row in expected.items():
            got = tx.receive(M, "o-1", key, "timeout")
            assert got is not None
            assert got.inbox == row, key


def test_receive_backlog_is_an_older_unprocessed_event(store: Store) -> None:
    def backlogs(tx: Tx, *keys: str | None) -> dict[str | None, tuple[int | None, bool]]:
        found = {}
        for key in keys:
            got = tx.receive(M, "o-1", key, "timeout")
            assert got is not None
            found[key] = (None if got.inbox is None else got.inbox.id, got.backlog)
        return found

    with store.transaction() as tx:
        tx.insert_entity(entity())
        tx.inbox_add(M, "o-2", "z", EVENT, T0)  # other entities' events do not count
        tx.inbox_add("invoices", "o-1", "z", EVENT, T0)
        old, _ = tx.inbox_add(M, "o-1", "old", EVENT, T0)
        tx.inbox_done(old.id, RESULT)
        assert backlogs(tx, "old", "new", None) == {
            "old": (old.id, False),
            "new": (None, False),
            None: (None, False),
        }
        a, _ = tx.inbox_add(M, "o-1", "a", EVENT, T0)
        b, _ = tx.inbox_add(M, "o-1", "b", EVENT, T0)
        late, _ = tx.inbox_add(M, "o-1", "late", EVENT, T0)
        tx.inbox_done(late.id, RESULT)
    with store.transaction() as tx:
        assert backlogs(tx, "a", "b", "old", "late", "new", None) == {
            "a": (a.id, False),  # its own row is the oldest unprocessed one
            "b": (b.id, True),
            "old": (old.id, False),  # processed before anything waited
            "late": (late.id, True),  # processed, but a and b are older and wait
            "new": (None, True),
            None: (None, True),
        }
        tx.inbox_done(a.id, RESULT)
        tx.inbox_done(b.id, RESULT)
        assert backlogs(tx, "b", "late", "new", None) == {
            "b": (b.id, False),
            "late": (late.id, False),
            "new": (None, False),
            None: (None, False),
        }


def test_receive_returns_the_timer_of_that_name(store: Store) -> None:
    def timer(tx: Tx, name: str) -> TimerRow | None:
        got = tx.receive(M, "o-1", None, name)
        assert got is not None
        return got.timer

    with store.transaction() as tx:
        tx.insert_entity(entity())
        tx.timer_set(TimerRow(M, "o-2", "timeout", at(1), 7))
        tx.timer_set(TimerRow("invoices", "o-1", "timeout", at(1), 8))
        assert timer(tx, "timeout") is None
        tx.timer_set(TimerRow(M, "o-1", "timeout", at(5), 2))
    with store.transaction() as tx:
        assert timer(tx, "timeout") == TimerRow(M, "o-1", "timeout", at(5), 2)
        assert timer(tx, "reminder") is None
        tx.timer_set(TimerRow(M, "o-1", "timeout", at(9), 3))
        assert timer(tx, "timeout") == TimerRow(M, "o-1", "timeout", at(9), 3)
        tx.timer_cancel(M, "o-1", "timeout")
        assert timer(tx, "timeout") is None


def _receive_locked(tx: Tx, machine: str, entity_id: str) -> EntityRow | None:
    got = tx.receive(machine, entity_id, None, "timeout")
    return None if got is None else got.entity


def test_receive_serializes_writers(store: Store) -> None:
    bump_from_threads(store, _receive_locked, rounds=20)


def test_receive_sees_what_the_lock_holder_committed_while_it_waited(store: Store) -> None:
    with store.transaction() as tx:
        tx.insert_entity(entity())
    locked = threading.Event()
    got: list[Received | None] = []
    errors: list[BaseException] = []

    def wait_then_receive() -> None:
        try:
            locked.wait()
            with store.transaction() as tx:
                got.append(tx.receive(M, "o-1", "k", "timeout"))
        except BaseException as exc:  # reported to the main thread below
            errors.append(exc)

    thread = threading.Thread(target=wait_then_receive)
    thread.start()
    try:
        with store.transaction() as tx:
            assert tx.lock_entity(M, "o-1") is not None
            locked.set()
            time.sleep(0.3)  # the other transaction queues up behind the lock
            tx.inbox_add(M, "o-1", "first", EVENT, T0)
            row, _ = tx.inbox_add(M, "o-1", "k", EVENT, T0)
            tx.timer_set(TimerRow(M, "o-1", "timeout", at(5), 2))
            moved = EntityRow(M, "o-1", "FILLED", {}, 2, at(1))
            assert tx.update_entity(moved, expected_version=1)
    finally:
        locked.set()
        thread.join()
    assert errors == []
    (received,) = got
    assert received is not None
    assert (received.entity, received.inbox, received.backlog, received.timer) == (
        moved,
        row,
        True,
        TimerRow(M, "o-1", "timeout", at(5), 2),
    )


# -- the event path: write_event


def event_write(
    version: int,
    *,
    to_state: str = "FILLED",
    applied: bool = True,
    inbox_id: int | None = None,
    key: str = "k",
    **fields: Any,
) -> EventWrite:
    history = HistoryRow(
        M, "o-1", 0, version, EVENT, "OPEN", to_state, True, None, ["notify"], at(1)
    )
    return EventWrite(
        history,
        RESULT,
        inbox_id=inbox_id,
        key=key,
        received_at=at(1),
        applied=applied,
        **fields,
    )


def everything(tx: Tx, key: str = "k") -> tuple[Any, ...]:
    # What a write_event could have changed, as one transaction reads it.
    got = tx.receive(M, "o-1", key, "timeout")
    assert got is not None
    return (
        got.entity,
        got.inbox,
        got.backlog,
        got.timer,
        tx.timer_get(M, "o-1", "reminder"),
        tx.history(M, "o-1"),
        tx.inbox_pending(M, 100),
        tx.outbox_rows(),
    )


def test_write_event_records_an_unqueued_event_as_processed(store: Store) -> None:
    with store.transaction() as tx:
        tx.insert_entity(entity())
        tx.write_event(event_write(2))
    with store.transaction() as tx:
        got = tx.receive(M, "o-1", "k", "timeout")
        assert got is not None
        assert got.inbox is not None
        row = got.inbox
        assert (row.machine, row.entity_id, row.key) == (M, "o-1", "k")
        assert (row.event, row.received_at, row.result) == (EVENT, at(1), RESULT)
        assert got.backlog is False
        assert tx.inbox_first_pending(M, "o-1") is None
        assert tx.inbox_pending(M, 10) == []
        again, added = tx.inbox_add(M, "o-1", "k", {"trigger": "other"}, at(9))
        assert (again, added) == (row, False)


def test_write_event_marks_the_queued_row_processed(store: Store) -> None:
    with store.transaction() as tx:
        tx.insert_entity(entity())
        first, _ = tx.inbox_add(M, "o-1", "q1", EVENT, T0)
        second, _ = tx.inbox_add(M, "o-1", "q2", EVENT, at(1))
    with store.transaction() as tx:
        tx.write_event(event_write(2, inbox_id=first.id, key="ignored"))
    with store.transaction() as tx:
        got = tx.receive(M, "o-1", "q1", "timeout")
        assert got is not None
        assert (got.inbox, got.backlog) == (replace(first, result=RESULT), False)
        assert tx.inbox_first_pending(M, "o-1") == second
        assert tx.inbox_pending(M, 10) == [second]
        ignored = tx.receive(M, "o-1", "ignored", "timeout")
        assert ignored is not None
        assert ignored.inbox is None  # no row of its own


def test_write_event_writes_the_history_row_as_given(store: Store) -> None:
    with store.transaction() as tx:
        tx.insert_entity(entity())
        tx.history_add(history_row(3))
        tx.history_add(history_row(9, entity_id="o-2"))
        queued, _ = tx.inbox_add(M, "o-1", "q", EVENT, T0)
    rejected = HistoryRow(
        M,
        "o-1",
        0,
        1,
        {"trigger": "cancel", "payload": {"why": "naïve ☃"}, "id": "r"},
        "OPEN",
        "OPEN",
        False,
        "guard_rejected",
        [],
        at(2),
    )
    moved = HistoryRow(
        M, "o-1", 0, 2, EVENT, "OPEN", "FILLED", True, None, ["notify_ui", "settle"], at(3)
    )
    with store.transaction() as tx:
        tx.write_event(EventWrite(rejected, {"success": False}, key="r", received_at=at(2)))
        tx.write_event(EventWrite(moved, RESULT, inbox_id=queued.id, applied=True))
    with store.transaction() as tx:
        assert tx.history(M, "o-1") == [
            history_row(3),
            replace(rejected, seq=4),
            replace(moved, seq=5),
        ]
        assert [r.seq for r in tx.history(M, "o-2")] == [9]
        assert tx.next_history_seq(M, "o-1") == 6


def test_an_applied_event_moves_the_entity_and_keeps_its_context(store: Store) -> None:
    with store.transaction() as tx:
        tx.insert_entity(entity(qty=3))
    steps = [
        (event_write(2, key="k1", entered_at=at(1)), ("FILLED", 2, at(1))),
        (event_write(3, key="k2"), ("FILLED", 3, at(1))),  # internal: entered_at stays
        (event_write(4, key="k3", to_state="SHIPPED", entered_at=at(7)), ("SHIPPED", 4, at(7))),
    ]
    for write, (state, version, entered_at) in steps:
        with store.transaction() as tx:
            tx.write_event(write)
        with store.transaction() as tx:
            got = tx.get_entity(M, "o-1")
        assert got == EntityRow(M, "o-1", state, {"qty": 3}, version, entered_at)


def test_an_event_that_did_not_apply_leaves_the_entity_alone(store: Store) -> None:
    with store.transaction() as tx:
        tx.insert_entity(entity(qty=3))
    with store.transaction() as tx:
        tx.write_event(event_write(1, to_state="CANCELLED", applied=False, entered_at=at(5)))
    with store.transaction() as tx:
        assert tx.get_entity(M, "o-1") == entity(qty=3)
        assert [(r.to_state, r.version) for r in tx.history(M, "o-1")] == [("CANCELLED", 1)]


def test_write_event_returns_the_outbox_ids_in_order(store: Store) -> None:
    rows = [
        outbox_row("orders:o-1:2:0", name="notify"),
        replace(outbox_row("orders:o-1:2:1", name="settle"), lease_owner="w", lease_until=at(30)),
        outbox_row("orders:o-1:2:2", due=5, name="audit"),
    ]
    with store.transaction() as tx:
        tx.insert_entity(entity())
        ids = tx.write_event(event_write(2, outbox=rows))
        assert tx.write_event(event_write(3, key="k2")) == []
    assert len(ids) == 3
    assert ids == sorted(set(ids))  # added in order: their actions run in that order
    with store.transaction() as tx:
        assert tx.outbox_rows() == [replace(r, id=i) for r, i in zip(rows, ids, strict=True)]
        claimed = tx.outbox_claim(now=at(1), lease_until=at(31), owner="w2", limit=10)
        assert [r.id for r in claimed] == [ids[0]]  # leased to w, or not due yet


def test_write_event_arms_rearms_and_cancels_timers(store: Store) -> None:
    reminder = TimerRow(M, "o-1", "reminder", at(50), 1)
    with store.transaction() as tx:
        tx.insert_entity(entity())
        tx.timer_set(reminder)
        tx.write_event(event_write(2, timer_set=TimerRow(M, "o-1", "timeout", at(5), 2)))
    with store.transaction() as tx:
        assert tx.timer_get(M, "o-1", "timeout") == TimerRow(M, "o-1", "timeout", at(5), 2)
        tx.write_event(event_write(3, key="k2", timer_set=TimerRow(M, "o-1", "timeout", at(9), 3)))
    with store.transaction() as tx:
        rearmed = TimerRow(M, "o-1", "timeout", at(9), 3)
        assert tx.timers_due(M, at(100), 10) == [rearmed, reminder]
        # An event that did not apply cancels too (the runtime drops a stale timer so).
        tx.write_event(event_write(3, key="k3", applied=False, timer_cancel="timeout"))
    with store.transaction() as tx:
        assert tx.timer_get(M, "o-1", "timeout") is None
        assert tx.timer_get(M, "o-1", "reminder") == reminder
        tx.write_event(event_write(4, key="k4", timer_cancel="timeout"))  # none armed: no error
    with store.transaction() as tx:
        assert tx.timers_due(M, at(100), 10) == [reminder]


@pytest.mark.parametrize(("version", "queued"), [(2, False), (4, True), (1, False)])
def test_a_stale_version_raises_and_writes_nothing(
    store: Store, version: int, queued: bool
) -> None:
    with store.transaction() as tx:
        tx.insert_entity(entity(version=2))
        tx.timer_set(TimerRow(M, "o-1", "timeout", at(5), 2))
        tx.timer_set(TimerRow(M, "o-1", "reminder", at(50), 1))
        inbox_id = tx.inbox_add(M, "o-1", "k", EVENT, T0)[0].id if queued else None
        before = everything(tx)
    write = event_write(
        version,
        inbox_id=inbox_id,
        outbox=[outbox_row("orders:o-1:x:0"), outbox_row("orders:o-1:x:1")],
        timer_set=TimerRow(M, "o-1", "timeout", at(60), version),
        timer_cancel="reminder",
    )
    with pytest.raises(ConcurrencyError) as caught, store.transaction() as tx:
        tx.write_event(write)
    error = caught.value
    assert (error.machine, error.entity_id, error.expected_version) == (M, "o-1", version - 1)
    with store.transaction() as tx:
        assert everything(tx) == before


@pytest.mark.parametrize("applied", [True, False])
def test_write_event_refuses_an_inbox_row_that_is_not_pending(store: Store, applied: bool) -> None:
    with store.transaction() as tx:
        tx.insert_entity(entity())
        tx.timer_set(TimerRow(M, "o-1", "reminder", at(50), 1))
        done, _ = tx.inbox_add(M, "o-1", "k", EVENT, T0)
        tx.inbox_done(done.id, {"first": True})
        before = everything(tx)
    for inbox_id in (done.id, done.id + 1000):
        write = event_write(
            2 if applied else 1,
            applied=applied,
            inbox_id=inbox_id,
            outbox=[outbox_row("orders:o-1:2:0")],
            timer_set=TimerRow(M, "o-1", "timeout", at(60), 2),
            timer_cancel="reminder",
        )
        with pytest.raises(RuntimeStoreError) as caught, store.transaction() as tx:
            tx.write_event(write)
        assert not isinstance(caught.value, ConcurrencyError)
        with store.transaction() as tx:
            assert everything(tx) == before


@pytest.mark.parametrize("failure", ["stale version", "processed inbox row"])
def test_a_write_event_that_raised_commits_nothing_even_if_caught(
    store: Store, failure: str
) -> None:
    # The contract: nothing of the write may commit, whether the store wrote nothing
    # or left the transaction unable to commit (so the block's end may raise).
    with store.transaction() as tx:
        tx.insert_entity(entity())
        tx.timer_set(TimerRow(M, "o-1", "reminder", at(50), 1))
        done, _ = tx.inbox_add(M, "o-1", "k", EVENT, T0)
        tx.inbox_done(done.id, {"first": True})
        before = everything(tx, "new")
    stale = failure == "stale version"
    write = event_write(
        3 if stale else 2,
        key="new",
        inbox_id=None if stale else done.id,
        entered_at=at(9),
        outbox=[outbox_row("orders:o-1:2:0")],
        timer_set=TimerRow(M, "o-1", "timeout", at(60), 2),
        timer_cancel="reminder",
    )
    refused = ConcurrencyError if stale else RuntimeStoreError
    with (
        pytest.raises(RuntimeStoreError, match="cannot commit: rolled back"),
        store.transaction() as tx,
        pytest.raises(refused),
    ):
        tx.write_event(write)
    with store.transaction() as tx:
        assert everything(tx, "new") == before


# -- Store.ack


def test_ack_marks_the_lease_owners_row_done(store: Store) -> None:
    with store.transaction() as tx:
        mine, other = tx.outbox_add([outbox_row("a"), outbox_row("b")])
        tx.outbox_claim(now=T0, lease_until=at(30), owner="w", limit=2)
        before = tx.outbox_rows()
    assert store.ack(mine, "w2", at(1)) is False
    assert store.ack(10_000, "w", at(1)) is False
    with store.transaction() as tx:
        assert tx.outbox_rows() == before
    # The done time (at) is not readable through the protocol: only the rest is checked.
    assert store.ack(mine, "w", at(1)) is True
    assert store.ack(mine, "w", at(2)) is False  # done once
    with store.transaction() as tx:
        assert tx.outbox_rows() == [
            replace(before[0], status="done", lease_owner=None, lease_until=None),
            before[1],
        ]
        done = tx.outbox_claim(now=at(99), lease_until=at(130), owner="w3", limit=5, ids=[mine])
        assert done == []
    assert store.ack(other, "w") is True  # no time given: the store's clock
    with store.transaction() as tx:
        assert [r.status for r in tx.outbox_rows()] == ["done", "done"]


def test_ack_refuses_rows_the_caller_does_not_hold(store: Store) -> None:
    with store.transaction() as tx:
        unleased, dead, taken = tx.outbox_add([outbox_row(k) for k in "abc"])
        tx.outbox_claim(now=T0, lease_until=at(30), owner="w", limit=2, ids=[dead, taken])
        assert tx.outbox_dead(dead, "w", attempts=1, error="gave up")
    with store.transaction() as tx:
        tx.outbox_claim(now=at(30), lease_until=at(60), owner="w2", limit=5, ids=[taken])
        before = tx.outbox_rows()
    assert store.ack(unleased, "w", at(31)) is False
    assert store.ack(dead, "w", at(31)) is False
    assert store.ack(taken, "w", at(31)) is False  # a zombie: the row was taken over
    with store.transaction() as tx:
        assert tx.outbox_rows() == before
    assert store.ack(taken, "w2", at(32)) is True


def test_ack_refuses_a_naive_time(store: Store) -> None:
    with store.transaction() as tx:
        (row_id,) = tx.outbox_add([outbox_row("k")])
        tx.outbox_claim(now=T0, lease_until=at(30), owner="w", limit=1)
        before = tx.outbox_rows()
    with pytest.raises(ValueError, match="naive"):
        store.ack(row_id, "w", at(1).replace(tzinfo=None))
    with store.transaction() as tx:
        assert tx.outbox_rows() == before


def test_a_last_write_event_commits_with_the_block_and_ends_the_tx(store: Store) -> None:
    with store.transaction() as tx:
        tx.insert_entity(entity())
    with store.transaction() as tx:
        assert tx.receive(M, "o-1", "k", "timeout") is not None
        (row_id,) = tx.write_event(event_write(2, outbox=[outbox_row("orders:o-1:2:0")]), last=True)
        with pytest.raises(RuntimeStoreError, match="transaction has ended"):
            tx.get_entity(M, "o-1")
    with store.transaction() as tx:
        got = tx.receive(M, "o-1", "k", "timeout")
        assert got is not None and (got.entity.state, got.entity.version) == ("FILLED", 2)
        assert got.inbox is not None and got.inbox.result == RESULT
        assert [r.id for r in tx.outbox_rows()] == [row_id]
