"""The order service demo, checked against what it leaves in its SQLite file."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from statewise import (
    ActionExecutor,
    ActionNotFoundError,
    ActionRegistry,
    Event,
    FrozenDict,
    GuardRejectedError,
    StateMachine,
)
from statewise.engine.actions import action_uses
from statewise.execution import idempotency_keys
from tests.examples.recording import EXAMPLES, Call, Recorder, quiet_executor, svc

T0 = 1_700_000_000.0
DOWN = "positions service unavailable"


class FakeClock:
    """Starts at T0 and moves one second per reading."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        t = self.now
        self.now += 1.0
        return t


def new_db(path: Path, machine: StateMachine) -> sqlite3.Connection:
    conn = svc.open_db(path)
    svc.create_order(conn, machine, "A", 100, T0)
    return conn


@pytest.fixture
def db(db_path: Path, machine: StateMachine) -> Iterator[sqlite3.Connection]:
    with closing(new_db(db_path, machine)) as conn:
        yield conn


def order(db: sqlite3.Connection, order_id: str = "A") -> dict[str, Any]:
    row = db.execute("SELECT * FROM orders WHERE order_id = ?", (order_id,)).fetchone()
    return dict(row)


def audit(db: sqlite3.Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in db.execute("SELECT * FROM audit ORDER BY id")]


def send(
    db: sqlite3.Connection,
    machine: StateMachine,
    trigger: str,
    payload: dict[str, Any] | None = None,
    *,
    executor: ActionExecutor | None = None,
    **kwargs: Any,
) -> svc.Handled:
    kwargs.setdefault("clock", FakeClock())
    return svc.handle(
        db,
        machine,
        "A",
        Event(trigger, FrozenDict(payload), id=f"id-{trigger}"),
        executor=executor or quiet_executor(machine),
        **kwargs,
    )


def fill(
    db: sqlite3.Connection, machine: StateMachine, qty: int, rec: Recorder | None = None
) -> svc.Handled:
    payload = {"fill_qty": qty, "price": 1.0}
    executor = None if rec is None else rec.executor(machine)
    return send(db, machine, "execution_report", payload, executor=executor)


# -- the whole demo ----------------------------------------------------------------------


def test_main_leaves_the_expected_database(
    db_path: Path, machine: StateMachine, capsys: pytest.CaptureFixture[str]
) -> None:
    slept: list[float] = []
    assert svc.main([str(db_path)], clock=FakeClock(), sleep=slept.append) == 0

    with closing(sqlite3.connect(db_path)) as conn:
        conn.row_factory = sqlite3.Row
        orders = {r["order_id"]: dict(r) for r in conn.execute("SELECT * FROM orders")}
        rows = audit(conn)
    final = {oid: (o["state"], o["filled_qty"], o["version"]) for oid, o in orders.items()}
    assert final == {
        "ORD-1": ("FILLED", 100, 5),  # ack, partial, amend, full: 4 commits
        "ORD-2": ("CANCELED", 0, 3),
        "ORD-3": ("REJECTED", 0, 2),
        "ORD-4": ("PENDING_NEW", 0, 1),  # its one event was rejected
        "ORD-5": ("OPEN", 0, 2),  # the conflicting amend was rolled back, sneaky bump too
        "ORD-6": ("CANCELED", 10, 5),  # ack, partial, fallback to ERROR, operator's cancel
    }
    # ORD-4 never left PENDING_NEW: its 5 s timeout, armed at creation, still stands.
    assert orders["ORD-4"]["deadline_at"] == orders["ORD-4"]["entered_at"] + 5.0
    assert orders["ORD-1"]["deadline_at"] is None

    # ORD-6's fill could not be booked: its fallback's event id comes from the key of
    # the action that failed, so the same failure always falls back with the same id.
    n = 1 + [(o, t) for o, t, _ in svc.SCRIPT].index(("ORD-6", "execution_report"))
    ord6_fill = Event("execution_report", FrozenDict(svc.SCRIPT[n - 1][2]), id=f"msg-{n}")
    context = {"order_id": "ORD-6", "from_state": "OPEN", "order_qty": 20, "filled_qty": 0}
    booking_key = idempotency_keys(machine.process("OPEN", ord6_fill, context))[0]

    # Every event is audited, in order (the fallback right after the event that failed),
    # except the one whose commit failed (msg-15).
    ids = [f"msg-{i}" for i in range(1, len(svc.SCRIPT) + 1)]
    ids.insert(n, f"{booking_key}:fallback")
    assert [r["event_id"] for r in rows] == ids
    fallback = rows[n]
    assert fallback | {"id": None, "at": None} == {
        "id": None,
        "order_id": "ORD-6",
        "event_id": f"{booking_key}:fallback",
        "trigger": "error",
        "from_state": "PARTIALLY_FILLED",
        "to_state": "ERROR",
        "success": 1,
        "error": None,
        "actions": json.dumps(["alert_operations"]),
        "payload": json.dumps({"error": DOWN, "error_type": "ConnectionError"}),
        "at": None,
    }
    assert [(r["from_state"], r["to_state"]) for r in rows if r["order_id"] == "ORD-6"] == [
        ("PENDING_NEW", "OPEN"),
        ("OPEN", "PARTIALLY_FILLED"),
        ("PARTIALLY_FILLED", "ERROR"),
        ("ERROR", "CANCELED"),
    ]
    rejected = [
        (r["order_id"], r["trigger"], r["error"].split(":")[0]) for r in rows if not r["success"]
    ]
    assert rejected == [
        ("ORD-1", "execution_report", "GuardRejectedError"),
        ("ORD-2", "execution_report", "TerminalStateError"),
        ("ORD-4", "execution_report", "InvalidTransitionError"),
    ]
    assert all(
        r["from_state"] == r["to_state"] and r["actions"] == "[]" for r in rows if not r["success"]
    )

    # Retries: ORD-1's booking once (then it went through), ORD-6's three times, each
    # wait jittered between half the policy's delay (0.25 s, doubling) and all of it.
    assert all(d / 2 <= s <= d for s, d in zip(slept, [0.25, 0.25, 0.5, 1.0], strict=True))

    out = capsys.readouterr().out
    for line in [
        "6 orders created in PENDING_NEW",
        "ORD-1 order_acknowledged  PENDING_NEW -> OPEN, committed (v2)",
        "      act: log that ORD-1 left PENDING_NEW  (key ",
        "      act: record exchange id X-9001 for ORD-1  (key ",
        "ORD-1 execution_report    OPEN -> PARTIALLY_FILLED, committed (v3)",
        "ORD-1 amend_price         PARTIALLY_FILLED (internal: no exit, no enter), committed (v4)",
        "      act: send ORD-1 to settlement  (key ",
        "ORD-2 execution_report    REJECTED in CANCELED, audited (v3): state 'CANCELED' is",
        "rejected by guard(s): is_full_fill, is_partial_fill",
        "ORD-4 execution_report    REJECTED in PENDING_NEW, audited (v1)",
        "ORD-6 execution_report    OPEN -> PARTIALLY_FILLED, committed (v3)",
        f"      act: book 10 @ 42.0 to positions  (key {booking_key[:8]})  FAILED: {DOWN}\n",
        f"      gave up on update_positions after 4 attempt(s): {DOWN}\n"
        "ORD-6 error               PARTIALLY_FILLED -> ERROR, committed (v4)\n"
        f"      act: page operations about ORD-6: {DOWN}  (key ",
        "ORD-6 operator_cancel     ERROR -> CANCELED, committed (v5)",
        "ORD-5 amend_price         commit FAILED (ORD-5 is no longer at version 2): rolled back, "
        "no actions ran",
        "ORD-4  PENDING_NEW          0/25    1  22:13:28",  # created at T0 + 3, plus 5 s
        "audit rows: 15 (3 rejected events)",
    ]:
        assert line in out, line
    # ORD-1's booking failed once, then went through with the same key.
    assert re.search(
        r"act: book 40 @ 101\.2 to positions  \(key (\w{8})\)  FAILED: .*\n"
        r"      act: book 40 @ 101\.2 to positions  \(key \1\)\n",
        out,
    )
    assert out.count(f"FAILED: {DOWN}") == 1 + 4
    assert "amend ORD-5" not in out  # the failed commit's action never ran


def act_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if "(key " in line]


def test_the_script_runs_as_a_program_with_the_same_keys_every_run(tmp_path: Path) -> None:
    def run(name: str) -> str:
        proc = subprocess.run(
            [sys.executable, str(EXAMPLES / "order_service.py"), str(tmp_path / name)],
            capture_output=True,
            text=True,
            check=True,
        )
        assert proc.stderr == ""
        return proc.stdout

    first, second = run("one.db"), run("two.db")
    assert "audit rows: 15 (3 rejected events)" in first
    assert first.count("(retry in ") == 4  # the demo's sleep prints the wait it skips
    # Another run of the same events, at another time: the same actions with the same keys.
    assert act_lines(first) == act_lines(second)
    assert (
        len(act_lines(first)) == first.count("      act: ") == 34
    )  # 29 calls went through, 5 failed


def test_main_recreates_the_database(db_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    svc.main([str(db_path)], clock=FakeClock(), sleep=lambda _s: None)
    svc.main([str(db_path)], clock=FakeClock(), sleep=lambda _s: None)
    with closing(sqlite3.connect(db_path)) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (6,)
        assert conn.execute("SELECT count(*) FROM audit").fetchone() == (15,)
    assert capsys.readouterr().out.count("audit rows: 15") == 2


# -- one event at a time -------------------------------------------------------------


def test_success_commits_state_version_and_audit_then_acts(
    db: sqlite3.Connection, machine: StateMachine, rec: Recorder
) -> None:
    h = send(
        db, machine, "order_acknowledged", {"exchange_id": "X1"}, executor=rec.executor(machine)
    )

    assert h.result.success and h.execution.all_succeeded and h.fallback is None
    assert order(db) | {"entered_at": None} == {
        "order_id": "A",
        "state": "OPEN",
        "order_qty": 100,
        "filled_qty": 0,
        "version": 2,
        "entered_at": None,
        "deadline_at": None,  # OPEN has no timeout: the old one is gone
    }
    (row,) = audit(db)
    assert row["event_id"] == "id-order_acknowledged"
    assert (row["from_state"], row["to_state"], row["success"], row["error"]) == (
        "PENDING_NEW",
        "OPEN",
        1,
        None,
    )
    assert json.loads(row["actions"]) == ["log_exit", "record_exchange_id", "notify_ui"]
    assert json.loads(row["payload"]) == {"exchange_id": "X1"}
    # Actions ran in order, once each, and each already saw the committed state and audit row.
    keys = idempotency_keys(h.result)
    assert rec.calls == [
        Call(name, "A", "OPEN", 1, {}, key)
        for name, key in zip(["log_exit", "record_exchange_id", "notify_ui"], keys, strict=True)
    ]
    assert [(o.name, o.status, o.attempts) for o in h.execution.outcomes] == [
        ("log_exit", "ok", 1),
        ("record_exchange_id", "ok", 1),
        ("notify_ui", "ok", 1),
    ]


def test_keys_are_the_same_when_the_same_events_are_handled_again(
    tmp_path: Path, machine: StateMachine
) -> None:
    def day(path: Path) -> Recorder:
        rec = Recorder(path)
        with closing(new_db(path, machine)) as conn:
            send(conn, machine, "order_acknowledged", executor=rec.executor(machine))
            fill(conn, machine, 40, rec)
            send(conn, machine, "cancel_requested", executor=rec.executor(machine))
        return rec

    first, again = day(tmp_path / "one.db"), day(tmp_path / "two.db")
    assert len(set(first.keys())) == len(first.calls) == 8  # a key per action of an event
    assert [(c.name, c.params, c.key) for c in again.calls] == [
        (c.name, c.params, c.key) for c in first.calls
    ]


@pytest.mark.parametrize(
    ("event", "error"),
    [
        (Event("execution_report", FrozenDict({"fill_qty": 10})), "InvalidTransitionError"),
        (Event("no_such_trigger"), "UndefinedTriggerError"),
    ],
)
def test_a_rejected_event_is_audited_and_changes_nothing_else(
    db: sqlite3.Connection, machine: StateMachine, rec: Recorder, event: Event, error: str
) -> None:
    before = order(db)
    h = svc.handle(db, machine, "A", event, clock=FakeClock(), executor=rec.executor(machine))

    assert not h.result.success
    assert (h.execution.outcomes, h.fallback) == ((), None)
    assert order(db) == before  # same state, same version, same deadline
    (row,) = audit(db)
    assert row["success"] == 0
    assert row["error"].startswith(f"{error}: ")
    assert (row["from_state"], row["to_state"], row["actions"]) == (
        "PENDING_NEW",
        "PENDING_NEW",
        "[]",
    )
    assert rec.calls == []


def test_fills_accumulate_and_guards_read_the_stored_fill(
    db: sqlite3.Connection, machine: StateMachine
) -> None:
    send(db, machine, "order_acknowledged")
    targets = [fill(db, machine, 30).result.target_state, fill(db, machine, 30).result.target_state]
    assert targets == ["PARTIALLY_FILLED"] * 2
    over = fill(db, machine, 41)  # 60 + 41 > 100: neither guard accepts it
    assert over.result.error == GuardRejectedError(
        "PARTIALLY_FILLED", "execution_report", ["is_full_fill", "is_partial_fill"]
    )
    assert fill(db, machine, 40).result.target_state == "FILLED"
    assert (order(db)["state"], order(db)["filled_qty"], order(db)["version"]) == ("FILLED", 100, 5)
    assert [r["success"] for r in audit(db)] == [1, 1, 1, 0, 1]


def test_a_payload_cannot_overwrite_the_stored_fill_or_redirect_actions(
    db: sqlite3.Connection, machine: StateMachine, rec: Recorder
) -> None:
    svc.create_order(db, machine, "B", 100, T0)
    send(db, machine, "order_acknowledged")
    # The stored filled_qty (0) wins over the payload's claim, so 10 is a partial fill;
    # the stored order_id wins too, so the actions act on A, not on B.
    payload = {"fill_qty": 10, "filled_qty": 90, "order_id": "B"}
    h = send(db, machine, "execution_report", payload, executor=rec.executor(machine))
    assert h.result.target_state == "PARTIALLY_FILLED"
    assert order(db)["filled_qty"] == 10
    assert [(c.name, c.order_id) for c in rec.calls] == [
        ("update_positions", "A"),
        ("notify_ui", "A"),
    ]
    assert order(db, "B")["version"] == 1


def test_internal_transition_keeps_entered_at_and_runs_only_its_actions(
    db: sqlite3.Connection, machine: StateMachine, rec: Recorder
) -> None:
    send(db, machine, "order_acknowledged")
    entered = order(db)["entered_at"]
    h = send(
        db,
        machine,
        "amend_price",
        {"price": 9.5},
        clock=lambda: T0 + 60,
        executor=rec.executor(machine),
    )
    assert (h.result.source_state, h.result.target_state, h.result.action_names) == (
        "OPEN",
        "OPEN",
        ("apply_amendment",),
    )
    assert (order(db)["entered_at"], order(db)["version"]) == (entered, 3)
    assert rec.calls == [Call("apply_amendment", "A", "OPEN", 2, {}, idempotency_keys(h.result)[0])]


def test_deadline_follows_the_entered_state(db: sqlite3.Connection, machine: StateMachine) -> None:
    assert order(db)["deadline_at"] == T0 + 5.0  # PENDING_NEW: 5 s to hear from the exchange
    send(db, machine, "order_acknowledged", clock=lambda: T0 + 2)
    assert (order(db)["entered_at"], order(db)["deadline_at"]) == (T0 + 2, None)


# -- actions that fail after the commit ---------------------------------------------------


def test_a_failing_action_is_retried_with_its_key_and_can_succeed(
    db: sqlite3.Connection, machine: StateMachine, db_path: Path
) -> None:
    send(db, machine, "order_acknowledged")
    rec = Recorder(db_path, failing={"update_positions": 2})
    h = fill(db, machine, 40, rec)

    (booking, _) = h.execution.outcomes
    assert (booking.name, booking.status, booking.attempts) == ("update_positions", "ok", 3)
    key = idempotency_keys(h.result)[0]
    assert [(c.name, c.key, c.failed) for c in rec.calls] == [
        ("update_positions", key, True),
        ("update_positions", key, True),  # the same key each time: a repeat can be dropped
        ("update_positions", key, False),
        ("notify_ui", idempotency_keys(h.result)[1], False),
    ]
    assert len(rec.slept) == 2
    assert h.fallback is None
    assert (order(db)["state"], order(db)["version"]) == ("PARTIALLY_FILLED", 3)
    assert [r["to_state"] for r in audit(db)] == ["OPEN", "PARTIALLY_FILLED"]


def test_an_action_that_keeps_failing_falls_back_to_error_through_a_commit(
    db: sqlite3.Connection, machine: StateMachine, db_path: Path
) -> None:
    send(db, machine, "order_acknowledged")
    rec = Recorder(db_path, failing={"update_positions": 99})
    h = fill(db, machine, 40, rec)

    # 1 attempt + error_policy.retry_attempts (3), each seeing the committed fill; the
    # next action ran all the same.
    (failed,) = h.execution.failed_actions
    assert (failed.name, failed.attempts, failed.error) == (
        "update_positions",
        4,
        "update_positions is down",
    )
    assert len(rec.slept) == 3
    booking_key = idempotency_keys(h.result)[0]
    assert [(c.name, c.state, c.failed) for c in rec.calls[:5]] == [
        *[("update_positions", "PARTIALLY_FILLED", True)] * 4,
        ("notify_ui", "PARTIALLY_FILLED", False),
    ]

    # The fallback: committed like any result (state, version, audit row), then acted on.
    assert h.fallback is not None
    fb = h.fallback.result
    assert (fb.trigger, fb.source_state, fb.target_state) == ("error", "PARTIALLY_FILLED", "ERROR")
    assert fb.event.id == f"{booking_key}:fallback"
    assert (order(db)["state"], order(db)["filled_qty"], order(db)["version"]) == ("ERROR", 40, 4)
    last = audit(db)[-1]
    assert (last["event_id"], last["trigger"], last["from_state"], last["to_state"]) == (
        f"{booking_key}:fallback",
        "error",
        "PARTIALLY_FILLED",
        "ERROR",
    )
    assert json.loads(last["payload"]) == {
        "error": "update_positions is down",
        "error_type": "ConnectionError",
    }
    assert json.loads(last["actions"]) == ["alert_operations"]
    # ERROR's alert ran after the fallback's commit: ERROR and 3 audit rows were visible.
    alert_key = idempotency_keys(fb)[0]
    assert rec.calls[5:] == [Call("alert_operations", "A", "ERROR", 3, {}, alert_key)]
    assert h.fallback.execution.all_succeeded and h.fallback.fallback is None

    # An operator takes it from ERROR.
    assert send(db, machine, "operator_cancel").result.target_state == "CANCELED"


@pytest.mark.parametrize(
    ("meanwhile", "report", "rows_left"),
    [
        (
            "UPDATE orders SET state = 'CANCELED', version = version + 1 WHERE order_id = 'A'",
            "A error               left alone: no longer PARTIALLY_FILLED",
            [("A", "CANCELED")],
        ),
        (
            "DELETE FROM orders WHERE order_id = 'A'",
            "A error               not committed (no order 'A'): no actions ran",
            [],
        ),
    ],
)
def test_no_fallback_for_an_order_that_moved_on_or_vanished_meanwhile(
    db: sqlite3.Connection,
    machine: StateMachine,
    db_path: Path,
    capsys: pytest.CaptureFixture[str],
    meanwhile: str,
    report: str,
    rows_left: list[tuple[str, str]],
) -> None:
    send(db, machine, "order_acknowledged")
    rec = Recorder(db_path)
    actions = rec.registry()

    def book_while_another_writer_acts(_ctx: Any, *, idempotency_key: str) -> None:
        # After our commit, before the fallback's: another process changes the order.
        with closing(sqlite3.connect(db_path)) as other, other:
            other.execute(meanwhile)
        raise ConnectionError(f"down ({idempotency_key[:8]})")

    actions.register("update_positions", book_while_another_writer_acts, replace=True)
    executor = ActionExecutor(actions, machine=machine, sleep=rec.slept.append)
    h = send(db, machine, "execution_report", {"fill_qty": 40}, executor=executor)

    assert h.execution.failed_actions[0].attempts == 4
    assert h.execution.fallback is not None  # offered, but not committed:
    assert h.fallback is None
    assert [tuple(r) for r in db.execute("SELECT order_id, state FROM orders")] == rows_left
    assert [r["trigger"] for r in audit(db)] == ["order_acknowledged", "execution_report"]
    assert report in capsys.readouterr().out
    assert rec.names() == ["notify_ui"]  # the fallback's alert never ran
    assert not db.in_transaction


# -- commits that fail --------------------------------------------------------------------


def test_a_failed_commit_rolls_back_and_runs_no_actions(
    db: sqlite3.Connection, machine: StateMachine, rec: Recorder
) -> None:
    before = order(db)

    def concurrent_writer(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE orders SET version = version + 1 WHERE order_id = 'A'")

    with pytest.raises(svc.VersionConflict, match="no longer at version 1"):
        send(
            db,
            machine,
            "order_acknowledged",
            executor=rec.executor(machine),
            before_commit=concurrent_writer,
        )
    assert rec.calls == []
    assert order(db) == before  # the writer's bump was rolled back with ours
    assert audit(db) == []  # the audit row shares the transaction: gone too
    assert not db.in_transaction


def test_any_error_before_commit_rolls_back(
    db: sqlite3.Connection, machine: StateMachine, rec: Recorder
) -> None:
    def disk_full(_conn: sqlite3.Connection) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    with pytest.raises(sqlite3.OperationalError):
        send(
            db, machine, "cancel_requested", executor=rec.executor(machine), before_commit=disk_full
        )
    assert (rec.calls, audit(db), order(db)["state"]) == ([], [], "PENDING_NEW")
    assert not db.in_transaction


def test_unknown_order_raises_and_leaves_no_transaction_open(
    db: sqlite3.Connection, machine: StateMachine
) -> None:
    with pytest.raises(LookupError, match="no order 'nope'"):
        svc.handle(
            db,
            machine,
            "nope",
            Event("cancel_requested"),
            clock=FakeClock(),
            executor=quiet_executor(machine),
        )
    assert not db.in_transaction
    assert audit(db) == []


# -- the parts ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filled", "fill_qty", "full", "partial"),
    [
        (0, 100, True, False),
        (0, 40, False, True),
        (60, 40, True, False),
        (60, 50, False, False),
        (0, 0, False, False),
    ],
)
def test_guards(filled: int, fill_qty: int, full: bool, partial: bool) -> None:
    ctx = {"order_qty": 100, "filled_qty": filled, "fill_qty": fill_qty}
    assert (svc.is_full_fill(ctx), svc.is_partial_fill(ctx)) == (full, partial)


def test_every_action_the_machine_names_is_registered_and_checked_at_start_up(
    machine: StateMachine,
) -> None:
    named = {call.name for _, call in action_uses(machine.definition)}
    assert svc.build_actions().names == named
    assert svc.build_executor(machine).machine is machine  # the check passed

    incomplete = ActionRegistry({n: svc.build_actions().get(n) for n in named - {"settle_trade"}})
    with pytest.raises(ActionNotFoundError, match="settle_trade") as info:
        ActionExecutor(incomplete, machine=machine)
    assert info.value.names == ("settle_trade",)


def test_the_timeout_alert_gets_its_params_and_a_fallback_alert_its_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    svc.alert_operations({"order_id": "A"}, idempotency_key="0123456789ab", reason="late")
    svc.alert_operations({"order_id": "A", "error": "boom"}, idempotency_key="fedcba987654")
    assert capsys.readouterr().out.splitlines() == [
        "      act: page operations about A: late  (key 01234567)",
        "      act: page operations about A: boom  (key fedcba98)",
    ]


def test_the_positions_desk_fails_as_often_as_told_per_order(
    capsys: pytest.CaptureFixture[str],
) -> None:
    desk = svc.PositionsDesk({"A": 2})
    ctx = {"order_id": "A", "fill_qty": 5, "price": 1.5}
    for _ in range(2):
        with pytest.raises(ConnectionError, match=DOWN):
            desk.update_positions(ctx, idempotency_key="k" * 32)
    desk.update_positions(ctx, idempotency_key="k" * 32)
    desk.update_positions(ctx | {"order_id": "B"}, idempotency_key="k" * 32)
    assert capsys.readouterr().out.count(f"FAILED: {DOWN}") == 2


def test_an_action_missing_a_payload_field_prints_a_placeholder(
    db: sqlite3.Connection, machine: StateMachine, capsys: pytest.CaptureFixture[str]
) -> None:
    send(db, machine, "order_acknowledged", executor=svc.build_executor(machine))
    assert "act: record exchange id ? for A  (key " in capsys.readouterr().out
