"""The timeout cron job, checked against what it leaves in a real SQLite file."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from statewise import Event, StateMachine
from statewise.execution import idempotency_keys
from statewise.timeouts import DueTimeout, TimeoutManager
from tests.examples.recording import EXAMPLES, Call, Recorder, cron, quiet_executor, svc

T0 = datetime(2026, 11, 22, 21, 0, tzinfo=UTC)
DUE = T0 + timedelta(seconds=5)  # PENDING_NEW's timeout: 5 s
TIMEOUT_ACTIONS = ["log_exit", "alert_operations", "release_funds"]
# The timeout's own action, between PENDING_NEW's exit and TIMED_OUT's enter, has params.
TIMEOUT_PARAMS: list[dict[str, Any]] = [{}, {"reason": "no answer from the exchange"}, {}]


@pytest.fixture
def db(db_path: Path, machine: StateMachine) -> Iterator[sqlite3.Connection]:
    with closing(new_db(db_path, machine)) as conn:
        yield conn


def new_db(path: Path, machine: StateMachine) -> sqlite3.Connection:
    """A: waiting since T0 (due at T0 + 5 s). B: since T0 + 1 s. C: acknowledged, OPEN."""
    conn = svc.open_db(path)
    for order_id, created in [("A", T0), ("B", T0 + timedelta(seconds=1)), ("C", T0)]:
        svc.create_order(conn, machine, order_id, 10, created.timestamp())
    ack = Event("order_acknowledged", id="ack-C")
    svc.handle(conn, machine, "C", ack, clock=T0.timestamp, executor=quiet_executor(machine))
    return conn


def orders(db: sqlite3.Connection) -> dict[str, dict[str, Any]]:
    return {r["order_id"]: dict(r) for r in db.execute("SELECT * FROM orders")}


def timeout_audit(db: sqlite3.Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in db.execute("SELECT * FROM audit WHERE trigger = 'timeout'")]


# -- the job ------------------------------------------------------------------------


def test_times_out_the_due_orders_commits_then_acts(
    db: sqlite3.Connection, machine: StateMachine, rec: Recorder
) -> None:
    before = orders(db)
    done = cron.run(db, machine, DUE, executor=rec.executor(machine))

    assert [(h.result.source_state, h.result.target_state) for h in done] == [
        ("PENDING_NEW", "TIMED_OUT")
    ]
    after = orders(db)
    assert after["A"] == before["A"] | {
        "state": "TIMED_OUT",
        "version": 2,
        "entered_at": DUE.timestamp(),  # entered when the job committed it
        "deadline_at": None,  # TIMED_OUT has no timeout
    }
    assert (after["B"], after["C"]) == (before["B"], before["C"])  # B: 1 s to go; C: none
    (row,) = timeout_audit(db)
    assert row | {"id": None} == {
        "id": None,
        "order_id": "A",
        "event_id": "timeout:A:PENDING_NEW:2026-11-22T21:00:05+00:00",
        "trigger": "timeout",
        "from_state": "PENDING_NEW",
        "to_state": "TIMED_OUT",
        "success": 1,
        "error": None,
        "actions": json.dumps(TIMEOUT_ACTIONS),
        "payload": "{}",
        "at": DUE.timestamp(),
    }
    # In order, each after the commit (state and audit row were already visible), with
    # its params and the key derived from the firing's event id.
    keys = idempotency_keys(done[0].result)
    assert rec.calls == [
        Call(name, "A", "TIMED_OUT", 1, params, key)
        for name, params, key in zip(TIMEOUT_ACTIONS, TIMEOUT_PARAMS, keys, strict=True)
    ]
    assert done[0].execution.all_succeeded and done[0].fallback is None


def test_the_same_firing_gets_the_same_keys_whenever_it_is_decided(
    tmp_path: Path, machine: StateMachine
) -> None:
    # Two runs over the same rows (the second as after a crash that lost the first
    # commit), at different times past the deadline: the same actions, params and keys.
    runs = []
    for name, now in [("one.db", DUE), ("two.db", DUE + timedelta(minutes=3))]:
        rec = Recorder(tmp_path / name)
        with closing(new_db(tmp_path / name, machine)) as conn:
            cron.run(conn, machine, now, executor=rec.executor(machine))
        runs.append([(c.order_id, c.name, c.params, c.key) for c in rec.calls])
    first, second = runs
    assert [name for _, name, _, _ in first] == TIMEOUT_ACTIONS
    assert second[:3] == first  # the later run also times out B, after A


def test_a_failing_timeout_action_is_retried_and_nothing_falls_back_from_a_final_state(
    db: sqlite3.Connection, machine: StateMachine, db_path: Path
) -> None:
    rec = Recorder(db_path, failing={"alert_operations": 99})
    (done,) = cron.run(db, machine, DUE, executor=rec.executor(machine))

    (failed,) = done.execution.failed_actions
    assert (failed.name, failed.attempts) == ("alert_operations", 4)
    assert len(rec.slept) == 3
    assert rec.names() == ["log_exit", *["alert_operations"] * 4, "release_funds"]
    # TIMED_OUT is terminal: what it records stays true, so there is no fallback.
    assert (done.execution.fallback, done.fallback) == (None, None)
    assert orders(db)["A"]["state"] == "TIMED_OUT"
    assert [r["to_state"] for r in timeout_audit(db)] == ["TIMED_OUT"]


def test_one_microsecond_early_nothing_is_due(
    db: sqlite3.Connection, machine: StateMachine, rec: Recorder
) -> None:
    before = orders(db)
    early = DUE - timedelta(microseconds=1)
    assert cron.run(db, machine, early, executor=rec.executor(machine)) == []
    assert (orders(db), timeout_audit(db), rec.calls) == (before, [], [])


def test_a_later_run_takes_the_rest_and_a_re_run_does_nothing(
    db: sqlite3.Connection, machine: StateMachine, rec: Recorder
) -> None:
    quiet = quiet_executor(machine)
    cron.run(db, machine, DUE, executor=quiet)
    later = DUE + timedelta(hours=1)
    assert [h.result.event.id for h in cron.run(db, machine, later, executor=quiet)] == [
        "timeout:B:PENDING_NEW:2026-11-22T21:00:06+00:00"
    ]
    settled = (orders(db), timeout_audit(db))
    for again in [later, later, later + timedelta(days=30)]:
        assert cron.run(db, machine, again, executor=rec.executor(machine)) == []
    assert (orders(db), timeout_audit(db), rec.calls) == (*settled, [])


# -- the row moves on between finding and firing ------------------------------------------


def acknowledge(db: sqlite3.Connection, machine: StateMachine) -> None:
    ack = Event("order_acknowledged", id="ack-A")
    svc.handle(db, machine, "A", ack, clock=DUE.timestamp, executor=quiet_executor(machine))


def re_enter(db: sqlite3.Connection, _machine: StateMachine) -> None:
    # Entered anew (as a self-transition would): its new timeout is not due yet.
    db.execute(
        "UPDATE orders SET entered_at = ?, version = version + 1 WHERE order_id = 'A'",
        (DUE.timestamp(),),
    )


MoveOn = Callable[[sqlite3.Connection, StateMachine], None]


@pytest.mark.parametrize("move_on", [acknowledge, re_enter])
def test_an_order_that_moved_on_meanwhile_is_not_timed_out(
    db: sqlite3.Connection, machine: StateMachine, rec: Recorder, move_on: MoveOn
) -> None:
    manager = TimeoutManager(machine)
    (due,) = cron.find_due(db, manager, DUE)
    assert due.entity_id == "A"
    move_on(db, machine)  # another process, after the scan, before the job's transaction
    moved = orders(db)["A"]

    assert cron.fire(db, manager, "A", DUE, executor=rec.executor(machine)) is None
    assert (orders(db)["A"], timeout_audit(db), rec.calls) == (moved, [], [])
    assert not db.in_transaction


def delete(db: sqlite3.Connection, _machine: StateMachine) -> None:
    db.execute("DELETE FROM orders WHERE order_id = 'A'")


@pytest.mark.parametrize(
    ("move_on", "report"),
    [
        (acknowledge, "A timeout: moved on since it was found due, left alone"),
        (re_enter, "A timeout: moved on since it was found due, left alone"),
        (delete, "A timeout: not committed (no order 'A'): rolled back, no actions ran"),
    ],
)
def test_run_reports_an_order_that_moved_on_and_goes_on(
    db: sqlite3.Connection,
    machine: StateMachine,
    rec: Recorder,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    move_on: MoveOn,
    report: str,
) -> None:
    scan = cron.find_due

    def scan_then_move_on(
        conn: sqlite3.Connection, manager: TimeoutManager, now: datetime
    ) -> list[DueTimeout[str]]:
        found = scan(conn, manager, now)
        move_on(conn, machine)
        return found

    monkeypatch.setattr(cron, "find_due", scan_then_move_on)
    later = DUE + timedelta(seconds=1)  # A and B both due
    done = cron.run(db, machine, later, executor=rec.executor(machine))

    assert [h.result.event.id for h in done] == ["timeout:B:PENDING_NEW:2026-11-22T21:00:06+00:00"]
    assert report in capsys.readouterr().out
    assert [row["order_id"] for row in timeout_audit(db)] == ["B"]
    assert [c.order_id for c in rec.calls] == ["B"] * 3


def test_a_failed_commit_rolls_back_runs_no_actions_and_spares_the_others(
    db: sqlite3.Connection,
    machine: StateMachine,
    rec: Recorder,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = orders(db)

    sneaked: list[bool] = []

    def a_writer_sneaks_in(conn: sqlite3.Connection) -> None:
        # The fake of a concurrent writer, as in order_service: bumps A's version, once,
        # in A's transaction (the first: orders are fired in id order).
        if not sneaked:
            sneaked.append(True)
            conn.execute("UPDATE orders SET version = version + 1 WHERE order_id = 'A'")

    later = DUE + timedelta(seconds=1)  # A and B both due
    done = cron.run(
        db, machine, later, executor=rec.executor(machine), before_commit=a_writer_sneaks_in
    )

    assert [h.result.event.id for h in done] == ["timeout:B:PENDING_NEW:2026-11-22T21:00:06+00:00"]
    assert orders(db)["A"] == before["A"]  # the writer's bump was rolled back with ours
    assert [row["order_id"] for row in timeout_audit(db)] == ["B"]
    assert [c.order_id for c in rec.calls] == ["B"] * 3
    assert "A timeout: not committed (A is no longer at version 1)" in capsys.readouterr().out
    assert not db.in_transaction


# -- the program ----------------------------------------------------------------------


def test_main_creates_a_missing_database_then_runs(
    db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cron.main([str(db_path)], clock=lambda: T0) == 0
    out = capsys.readouterr().out
    assert f"no database at {db_path}: running the order demo to create it" in out
    assert "audit rows: 15 (3 rejected events)" in out  # the demo ran, at the job's clock
    assert "0 timeout(s) due at 2026-11-22T21:00:00+00:00" in out
    assert "ORD-4 waits in PENDING_NEW: times out in 5 s, at 2026-11-22 21:00:05 UTC" in out

    assert cron.main([str(db_path), "--now", "2026-11-22T22:00:05+01:00"]) == 0
    out = capsys.readouterr().out
    assert "1 timeout(s) due at 2026-11-22T22:00:05+01:00" in out
    assert "ORD-4 timeout             PENDING_NEW -> TIMED_OUT, committed (v2)" in out
    assert "      act: page operations about ORD-4: no answer from the exchange  (key " in out
    assert "waits in" not in out
    with closing(svc.connect(db_path)) as conn:
        assert orders(conn)["ORD-4"]["state"] == "TIMED_OUT"
        assert [r["event_id"] for r in timeout_audit(conn)] == [
            "timeout:ORD-4:PENDING_NEW:2026-11-22T21:00:05+00:00"
        ]


@pytest.mark.parametrize(
    ("now", "message"),
    [
        ("2026-11-22T21:00:05", "has no UTC offset: add one, e.g. 2026-11-22T21:00:05Z"),
        ("tomorrow", "'tomorrow' is not an ISO 8601 date and time"),
    ],
)
def test_now_must_be_an_aware_iso_datetime(
    db_path: Path, capsys: pytest.CaptureFixture[str], now: str, message: str
) -> None:
    with pytest.raises(SystemExit) as exc:
        cron.main([str(db_path), "--now", now])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
    assert not db_path.exists()  # refused before anything was touched


def test_the_script_runs_as_a_program(db_path: Path, db: sqlite3.Connection) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "timeouts_cron.py"),
            str(db_path),
            "--now",
            "2026-11-23T00:00Z",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout.startswith("2 timeout(s) due at 2026-11-23T00:00:00+00:00\n")
    assert proc.stderr == ""
    assert {o["state"] for o in orders(db).values()} == {"TIMED_OUT", "OPEN"}
