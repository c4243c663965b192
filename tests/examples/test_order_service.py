"""The order service demo, checked against what it leaves in its SQLite file."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from statewise import Event, FrozenDict, GuardRejectedError, StateMachine, TransitionResult

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

import order_service as svc  # noqa: E402 - examples/ is not a package

T0 = 1_700_000_000.0


class FakeClock:
    """Starts at T0 and moves one second per reading."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        t = self.now
        self.now += 1.0
        return t


class Recorder:
    """Actions that record their name and the state another connection sees meanwhile."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self.calls: list[tuple[str, str, str]] = []

    def action(self, name: str) -> svc.Action:
        def run(order_id: str, _r: TransitionResult) -> None:
            # A second connection only sees committed data: this proves the commit came first.
            with closing(sqlite3.connect(self.db_path)) as other:
                (state,) = other.execute(
                    "SELECT state FROM orders WHERE order_id = ?", (order_id,)
                ).fetchone()
            self.calls.append((name, order_id, state))

        return run

    def actions(self) -> dict[str, svc.Action]:
        return {name: self.action(name) for name in svc.ACTIONS}


@pytest.fixture(scope="module")
def machine() -> StateMachine:
    return svc.build_machine()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "orders.db"


@pytest.fixture
def rec(db_path: Path) -> Recorder:
    return Recorder(db_path)


@pytest.fixture
def db(db_path: Path, machine: StateMachine) -> Iterator[sqlite3.Connection]:
    with closing(svc.open_db(db_path)) as conn:
        svc.create_order(conn, machine, "A", 100, T0)
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
    **kwargs: Any,
) -> TransitionResult:
    kwargs.setdefault("clock", FakeClock())
    return svc.handle(
        db, machine, "A", Event(trigger, FrozenDict(payload), id=f"id-{trigger}"), **kwargs
    )


# -- the whole demo ----------------------------------------------------------------------


def test_main_leaves_the_expected_database(
    db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert svc.main([str(db_path)], clock=FakeClock()) == 0

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
    }
    # ORD-4 never left PENDING_NEW: its 5 s timeout, armed at creation, still stands.
    assert orders["ORD-4"]["deadline_at"] == orders["ORD-4"]["entered_at"] + 5.0
    assert orders["ORD-1"]["deadline_at"] is None

    # Every event is audited, in order, except the one whose commit failed (msg-12).
    assert [r["event_id"] for r in rows] == [f"msg-{n}" for n in range(1, len(svc.SCRIPT) + 1)]
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

    out = capsys.readouterr().out
    for line in [
        "5 orders created in PENDING_NEW",
        "ORD-1 order_acknowledged  PENDING_NEW -> OPEN, committed (v2)",
        "      act: log that ORD-1 left PENDING_NEW",
        "      act: record exchange id X-9001 for ORD-1",
        "ORD-1 execution_report    OPEN -> PARTIALLY_FILLED, committed (v3)",
        "ORD-1 amend_price         PARTIALLY_FILLED (internal: no exit, no enter), committed (v4)",
        "      act: send ORD-1 to settlement",
        "ORD-2 execution_report    REJECTED in CANCELED, audited (v3): state 'CANCELED' is",
        "rejected by guard(s): is_full_fill, is_partial_fill",
        "ORD-4 execution_report    REJECTED in PENDING_NEW, audited (v1)",
        "ORD-5 amend_price         commit FAILED (ORD-5 is no longer at version 2): rolled back, "
        "no actions ran",
        "ORD-4  PENDING_NEW          0/25    1  22:13:28",  # created at T0 + 3, plus 5 s
        "audit rows: 11 (3 rejected events)",
    ]:
        assert line in out, line
    assert "amend ORD-5" not in out  # the failed commit's action never ran


def test_the_script_runs_as_a_program(db_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "order_service.py"), str(db_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "audit rows: 11 (3 rejected events)" in proc.stdout
    assert proc.stderr == ""


def test_main_recreates_the_database(db_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    svc.main([str(db_path)], clock=FakeClock())
    svc.main([str(db_path)], clock=FakeClock())
    with closing(sqlite3.connect(db_path)) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (5,)
    assert capsys.readouterr().out.count("audit rows: 11") == 2


# -- one event at a time -------------------------------------------------------------


def test_success_commits_state_version_and_audit_then_acts(
    db: sqlite3.Connection, machine: StateMachine, rec: Recorder
) -> None:
    r = send(db, machine, "order_acknowledged", {"exchange_id": "X1"}, actions=rec.actions())

    assert r.success
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
    # Actions ran in order, and each one already saw the committed state.
    assert rec.calls == [(name, "A", "OPEN") for name in r.action_names]


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
    r = svc.handle(db, machine, "A", event, clock=FakeClock(), actions=rec.actions())

    assert not r.success
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
    def fill(qty: int) -> TransitionResult:
        return send(db, machine, "execution_report", {"fill_qty": qty, "price": 1.0})

    send(db, machine, "order_acknowledged")
    assert [fill(30).target_state, fill(30).target_state] == ["PARTIALLY_FILLED"] * 2
    over = fill(41)  # 60 + 41 > 100: neither guard accepts it
    assert over.error == GuardRejectedError(
        "PARTIALLY_FILLED", "execution_report", ["is_full_fill", "is_partial_fill"]
    )
    assert fill(40).target_state == "FILLED"
    assert (order(db)["state"], order(db)["filled_qty"], order(db)["version"]) == ("FILLED", 100, 5)
    assert [r["success"] for r in audit(db)] == [1, 1, 1, 0, 1]


def test_a_payload_cannot_overwrite_the_stored_fill(
    db: sqlite3.Connection, machine: StateMachine
) -> None:
    send(db, machine, "order_acknowledged")
    # The stored filled_qty (0) wins over the payload's claim, so 10 is a partial fill.
    r = send(db, machine, "execution_report", {"fill_qty": 10, "filled_qty": 90})
    assert r.target_state == "PARTIALLY_FILLED"
    assert order(db)["filled_qty"] == 10


def test_internal_transition_keeps_entered_at_and_runs_only_its_actions(
    db: sqlite3.Connection, machine: StateMachine, rec: Recorder
) -> None:
    send(db, machine, "order_acknowledged")
    entered = order(db)["entered_at"]
    r = send(
        db, machine, "amend_price", {"price": 9.5}, clock=lambda: T0 + 60, actions=rec.actions()
    )
    assert (r.source_state, r.target_state, r.action_names) == (
        "OPEN",
        "OPEN",
        ("apply_amendment",),
    )
    assert (order(db)["entered_at"], order(db)["version"]) == (entered, 3)
    assert rec.calls == [("apply_amendment", "A", "OPEN")]


def test_deadline_follows_the_entered_state(db: sqlite3.Connection, machine: StateMachine) -> None:
    assert order(db)["deadline_at"] == T0 + 5.0  # PENDING_NEW: 5 s to hear from the exchange
    send(db, machine, "order_acknowledged", clock=lambda: T0 + 2)
    assert (order(db)["entered_at"], order(db)["deadline_at"]) == (T0 + 2, None)


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
            actions=rec.actions(),
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
        send(db, machine, "cancel_requested", actions=rec.actions(), before_commit=disk_full)
    assert (rec.calls, audit(db), order(db)["state"]) == ([], [], "PENDING_NEW")
    assert not db.in_transaction


def test_unknown_order_raises_and_leaves_no_transaction_open(
    db: sqlite3.Connection, machine: StateMachine
) -> None:
    with pytest.raises(LookupError, match="no order 'nope'"):
        svc.handle(db, machine, "nope", Event("cancel_requested"), clock=FakeClock())
    assert not db.in_transaction
    assert audit(db) == []


@pytest.mark.parametrize(
    ("filled", "fill", "full", "partial"),
    [
        (0, 100, True, False),
        (0, 40, False, True),
        (60, 40, True, False),
        (60, 50, False, False),
        (0, 0, False, False),
    ],
)
def test_guards(filled: int, fill: int, full: bool, partial: bool) -> None:
    ctx = {"order_qty": 100, "filled_qty": filled, "fill_qty": fill}
    assert (svc.is_full_fill(ctx), svc.is_partial_fill(ctx)) == (full, partial)


def test_every_action_the_machine_names_has_a_function(machine: StateMachine) -> None:
    d = machine.definition
    named = {a.name for s in d.states for a in (*s.on_enter, *s.on_exit)}
    named |= {a.name for t in d.transitions for a in t.actions}
    named |= {a.name for s in d.states if s.timeout is not None for a in s.timeout.actions}
    assert named == set(svc.ACTIONS)


def test_an_action_missing_a_payload_field_prints_a_placeholder(
    db: sqlite3.Connection, machine: StateMachine, capsys: pytest.CaptureFixture[str]
) -> None:
    send(db, machine, "order_acknowledged")  # no exchange_id in the payload
    assert "act: record exchange id ? for A" in capsys.readouterr().out
