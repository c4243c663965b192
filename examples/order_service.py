"""An order service handler: load -> decide -> commit -> act, against a real SQLite file.

    python examples/order_service.py [path/to/orders.db]

Every event follows the same four steps. LOAD the order inside a write transaction,
DECIDE with ``machine.process`` (pure: no I/O, no clock), COMMIT the new state and an
audit row together, and only then ACT. An action that runs before its state is durable
can tell the world about something that never happened (a rollback, a crash), so
actions wait for the commit and never run when it fails.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from statewise import Event, FrozenDict, GuardRegistry, StateMachine, TransitionResult

HERE = Path(__file__).resolve().parent
SPEC = HERE / "order_fsm.yaml"
DEFAULT_DB = HERE / "orders.db"

Clock = Callable[[], float]  # seconds since the epoch; injected so tests can fix time
Action = Callable[[str, TransitionResult], None]
R = TypeVar("R", bound=TransitionResult | None)  # what a decision gives transact()

SCHEMA = """
CREATE TABLE orders (order_id TEXT PRIMARY KEY, state TEXT NOT NULL, order_qty INTEGER NOT NULL,
    filled_qty INTEGER NOT NULL, version INTEGER NOT NULL, entered_at REAL NOT NULL,
    deadline_at REAL);
CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, order_id TEXT NOT NULL,
    event_id TEXT, trigger TEXT NOT NULL, from_state TEXT NOT NULL, to_state TEXT NOT NULL,
    success INTEGER NOT NULL, error TEXT, actions TEXT NOT NULL, at REAL NOT NULL);
"""


class VersionConflict(Exception):
    """The row changed between our read and our write: nothing was committed."""


# -- guards: the stored context (order_qty, filled_qty) wins over the payload on a
# clash, so the payload's *new* quantity has its own name, fill_qty.
def is_full_fill(ctx: Mapping[str, Any]) -> bool:
    fill = ctx.get("fill_qty", 0)
    return bool(fill > 0 and ctx["filled_qty"] + fill == ctx["order_qty"])


def is_partial_fill(ctx: Mapping[str, Any]) -> bool:
    fill = ctx.get("fill_qty", 0)
    return bool(fill > 0 and ctx["filled_qty"] + fill < ctx["order_qty"])


def build_machine(spec: Path = SPEC) -> StateMachine:
    guards = GuardRegistry({"is_full_fill": is_full_fill, "is_partial_fill": is_partial_fill})
    return StateMachine.from_yaml(spec, guards=guards)


# -- actions: side effects. Here they only print what a real one would do.
class _Fields(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"  # a payload without the field must not crash an action after commit


def _prints(template: str) -> Action:
    def action(order_id: str, r: TransitionResult) -> None:
        fields = _Fields(r.event.payload, order=order_id, source=r.source_state)
        print("      act: " + template.format_map(fields))

    return action


ACTIONS: dict[str, Action] = {
    "log_exit": _prints("log that {order} left {source}"),
    "notify_ui": _prints("push {order}'s new state to the trading UI"),
    "settle_trade": _prints("send {order} to settlement"),
    "release_funds": _prints("release the buying power reserved for {order}"),
    "alert_operations": _prints("page operations about {order}"),
    "record_exchange_id": _prints("record exchange id {exchange_id} for {order}"),
    "record_reject_reason": _prints("record why {order} was rejected: {reason}"),
    "update_positions": _prints("book {fill_qty} @ {price} to positions"),
    "apply_amendment": _prints("amend {order}'s limit price to {price}"),
    "send_cancel": _prints("send a cancel for {order} to the exchange"),
}


def connect(path: Path) -> sqlite3.Connection:
    """The database at ``path``. isolation_level=None: we write BEGIN/COMMIT ourselves."""
    db = sqlite3.connect(path, isolation_level=None)
    db.row_factory = sqlite3.Row
    return db


def open_db(path: Path) -> sqlite3.Connection:
    """A fresh database: any old file at ``path`` is replaced."""
    path.unlink(missing_ok=True)
    db = connect(path)
    db.executescript(SCHEMA)
    return db


def create_order(
    db: sqlite3.Connection, machine: StateMachine, oid: str, qty: int, now: float
) -> None:
    state = machine.initial_state  # its timeout is armed at creation, like any entered state
    deadline = None if state.timeout is None else now + state.timeout.seconds
    db.execute(
        "INSERT INTO orders VALUES (?, ?, ?, 0, 1, ?, ?)", (oid, state.name, qty, now, deadline)
    )


def handle(
    db: sqlite3.Connection,
    machine: StateMachine,
    order_id: str,
    event: Event,
    *,
    clock: Clock,
    actions: Mapping[str, Action] = ACTIONS,
    before_commit: Callable[[sqlite3.Connection], None] | None = None,
) -> TransitionResult:
    """Decide ``event`` for the order and commit it, then act (see :func:`transact`)."""

    def decide(order: sqlite3.Row) -> TransitionResult:
        # Pure. A rejected event comes back as a result, not an exception, and is audited.
        context = {"order_qty": order["order_qty"], "filled_qty": order["filled_qty"]}
        return machine.process(order["state"], event, context)

    # Read once, up front: the row and its audit row share one time.
    return transact(db, order_id, decide, now=clock(), actions=actions, before_commit=before_commit)


def transact(
    db: sqlite3.Connection,
    order_id: str,
    decide: Callable[[sqlite3.Row], R],
    *,
    now: float,
    actions: Mapping[str, Action] = ACTIONS,
    before_commit: Callable[[sqlite3.Connection], None] | None = None,
) -> R:
    """LOAD the order, DECIDE with ``decide(row)``, COMMIT the result and its audit row,
    then ACT: the four steps every change to an order takes.

    ``decide`` returning ``None`` means there is nothing to do (a timeout that is no
    longer due, say): nothing is written, nothing runs. Raises ``LookupError`` for an
    unknown order and :class:`VersionConflict` when the row changed under us; either
    way nothing is committed and no action runs.
    """
    # IMMEDIATE takes the write lock before the read, so nobody can change the row
    # between LOAD and COMMIT; the version check in _save is a second line of defence.
    db.execute("BEGIN IMMEDIATE")
    try:
        # 1. LOAD the state and the stored context the decision reads.
        order = db.execute("SELECT * FROM orders WHERE order_id = ?", (order_id,)).fetchone()
        if order is None:
            raise LookupError(f"no order {order_id!r}")
        # 2. DECIDE.
        r = decide(order)
        if r is not None:
            if before_commit is not None:
                before_commit(db)  # a seam for tests and the demo to break the commit
            # 3. COMMIT the order and its audit row together, or neither.
            if r.success and not r.ignored:
                _save(db, order, r, now)
            _audit(db, order_id, r, now)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    if r is None:
        return r
    # 4. ACT: the new state is durable, so the world may now hear about it. An action
    # that fails here cannot undo the commit; retrying it (an outbox) is a later concern.
    print(_describe(order_id, r, order["version"]))
    for name in r.action_names if r.success else ():
        actions[name](order_id, r)
    return r


def _save(db: sqlite3.Connection, order: sqlite3.Row, r: TransitionResult, now: float) -> None:
    filled, entered_at, deadline = order["filled_qty"], order["entered_at"], order["deadline_at"]
    if r.trigger == "execution_report":
        filled += r.event.payload["fill_qty"]
    if r.state_changed or r.is_self_transition:  # an internal transition enters nothing
        entered_at, deadline = now, None if r.timeout is None else now + r.timeout.seconds
    cur = db.execute(
        "UPDATE orders SET state = ?, filled_qty = ?, version = version + 1, entered_at = ?, "
        "deadline_at = ? WHERE order_id = ? AND version = ?",
        (r.target_state, filled, entered_at, deadline, order["order_id"], order["version"]),
    )
    if cur.rowcount != 1:  # optimistic check: someone moved the row since our read
        raise VersionConflict(f"{order['order_id']} is no longer at version {order['version']}")


def _audit(db: sqlite3.Connection, order_id: str, r: TransitionResult, now: float) -> None:
    error = None if r.error is None else f"{type(r.error).__name__}: {r.error}"
    actions = json.dumps(list(r.action_names) if r.success else [])
    event = (order_id, r.event.id, r.trigger, r.source_state, r.target_state, r.success)
    db.execute(
        "INSERT INTO audit (order_id, event_id, trigger, from_state, to_state, success, error, "
        "actions, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (*event, error, actions, now),
    )


def _describe(order_id: str, r: TransitionResult, version: int) -> str:
    head = f"{order_id} {r.trigger:<19}"
    if not r.success:
        return f"{head} REJECTED in {r.source_state}, audited (v{version}): {r.error}"
    if r.transition is not None and r.transition.is_internal:
        return f"{head} {r.source_state} (internal: no exit, no enter), committed (v{version + 1})"
    return f"{head} {r.source_state} -> {r.target_state}, committed (v{version + 1})"


# A day at the desk: (order, trigger, payload), in arrival order.
ORDERS = {"ORD-1": 100, "ORD-2": 50, "ORD-3": 10, "ORD-4": 25, "ORD-5": 30}
SCRIPT: list[tuple[str, str, dict[str, Any]]] = [
    ("ORD-1", "order_acknowledged", {"exchange_id": "X-9001"}),
    ("ORD-1", "execution_report", {"fill_qty": 40, "price": 101.2}),
    ("ORD-1", "amend_price", {"price": 101.5}),
    ("ORD-1", "execution_report", {"fill_qty": 0, "price": 101.5}),  # guards both say no
    ("ORD-1", "execution_report", {"fill_qty": 60, "price": 101.5}),
    ("ORD-2", "order_acknowledged", {"exchange_id": "X-9002"}),
    ("ORD-2", "cancel_requested", {}),
    ("ORD-2", "execution_report", {"fill_qty": 5, "price": 99.0}),  # late fill: terminal
    ("ORD-3", "order_rejected", {"reason": "price outside the exchange's band"}),
    ("ORD-4", "execution_report", {"fill_qty": 5, "price": 50.0}),  # fill before the ack
    ("ORD-5", "order_acknowledged", {"exchange_id": "X-9005"}),
]


def print_summary(db: sqlite3.Connection) -> None:
    print(f"\n{'order':<6} {'state':<17} {'filled':>7} {'ver':>4}  deadline (UTC)")
    for row in db.execute("SELECT * FROM orders ORDER BY order_id"):
        due = row["deadline_at"] and datetime.fromtimestamp(row["deadline_at"], UTC)
        filled = f"{row['filled_qty']}/{row['order_qty']}"
        print(
            f"{row['order_id']:<6} {row['state']:<17} {filled:>7} {row['version']:>4}  "
            f"{due.strftime('%H:%M:%S') if due else '-'}"
        )
    total, rejected = db.execute("SELECT count(*), sum(NOT success) FROM audit").fetchone()
    print(f"audit rows: {total} ({rejected} rejected events)")


def main(argv: Sequence[str] | None = None, *, clock: Clock = time.time) -> int:
    parser = argparse.ArgumentParser(description="Run orders through the order machine.")
    parser.add_argument("db", nargs="?", type=Path, default=DEFAULT_DB, help="recreated each run")
    db_path: Path = parser.parse_args(argv).db
    machine = build_machine()
    with closing(open_db(db_path)) as db:
        for order_id, qty in ORDERS.items():
            create_order(db, machine, order_id, qty, clock())
        print(f"{len(ORDERS)} orders created in {machine.initial_state.name} ({db_path})\n")
        # Event freezes any mapping, but its payload is annotated FrozenDict, so mypy asks.
        for n, (order_id, trigger, payload) in enumerate(SCRIPT, start=1):
            event = Event(trigger, FrozenDict(payload), id=f"msg-{n}")
            handle(db, machine, order_id, event, clock=clock)

        # A commit that fails: "another writer" bumps ORD-5's version after our read.
        # (Under our BEGIN IMMEDIATE a real one would wait for the lock, so we fake it.)
        def sneak_in(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE orders SET version = version + 1 WHERE order_id = 'ORD-5'")

        event = Event("amend_price", FrozenDict({"price": 30.5}), id=f"msg-{len(SCRIPT) + 1}")
        try:
            handle(db, machine, "ORD-5", event, clock=clock, before_commit=sneak_in)
        except VersionConflict as exc:
            print(f"ORD-5 amend_price         commit FAILED ({exc}): rolled back, no actions ran")
        print_summary(db)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
