"""An order service handler: load -> decide -> commit -> act, against a real SQLite file.

    python examples/order_service.py [path/to/orders.db]

Every event follows the same four steps. LOAD the order inside a write transaction,
DECIDE with ``machine.process`` (pure: no I/O, no clock), COMMIT the new state and an
audit row together, and only then ACT. An action that runs before its state is durable
can tell the world about something that never happened (a rollback, a crash), so
actions wait for the commit and never run when it fails.

ACT is statewise's :class:`~statewise.ActionExecutor`. Each action is called with the
stored order (its id included) over the event payload, the params the spec gives it,
and an idempotency key: the same for the same action of the same event on every run,
so a downstream service can drop repeats. An action that raises is retried with
backoff (the spec's ``error_policy``); one that still fails hands back a *fallback*
result to the ERROR state, which is committed and acted on like any other result.
In the demo the positions service fails once for ORD-1 (a retry succeeds) and for
good for ORD-6 (which falls back to ERROR); retry waits are printed, not slept.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from random import Random
from typing import Any

from statewise import (
    ActionExecutor,
    ActionRegistry,
    Event,
    ExecutionResult,
    FrozenDict,
    GuardRegistry,
    StateMachine,
    TransitionResult,
)

HERE = Path(__file__).resolve().parent
SPEC = HERE / "order_fsm.yaml"
DEFAULT_DB = HERE / "orders.db"

Clock = Callable[[], float]  # seconds since the epoch; injected so tests can fix time
Sleep = Callable[[float], object]  # how the executor waits between retries
BeforeCommit = Callable[[sqlite3.Connection], None]
KEY_SHOWN = 8  # hex digits of an idempotency key printed: enough to tell actions apart

SCHEMA = """
CREATE TABLE orders (order_id TEXT PRIMARY KEY, state TEXT NOT NULL, order_qty INTEGER NOT NULL,
    filled_qty INTEGER NOT NULL, version INTEGER NOT NULL, entered_at REAL NOT NULL,
    deadline_at REAL);
CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, order_id TEXT NOT NULL,
    event_id TEXT, trigger TEXT NOT NULL, from_state TEXT NOT NULL, to_state TEXT NOT NULL,
    success INTEGER NOT NULL, error TEXT, actions TEXT NOT NULL, payload TEXT NOT NULL,
    at REAL NOT NULL);
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


def stored_context(order: sqlite3.Row) -> dict[str, Any]:
    """What decisions and actions read from the stored order, over the event payload.

    The context wins over the payload on a clash, so a payload can neither fake the
    fill total the guards check nor point an action at another order.
    """
    return {
        "order_id": order["order_id"],
        "from_state": order["state"],  # where the event found the order
        "order_qty": order["order_qty"],
        "filled_qty": order["filled_qty"],
    }


# -- actions: side effects, run by the executor after the commit. Here they only print
# what a real one would do, with the start of their idempotency key.
class _Fields(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"  # a payload without the field must not crash an action after commit


def _act(line: str, key: str, failure: str = "") -> None:
    print(f"      act: {line}  (key {key[:KEY_SHOWN]}){failure}")


def _prints(template: str) -> Callable[..., None]:
    """An action printing ``template`` filled from its context and params."""

    def action(ctx: Mapping[str, Any], *, idempotency_key: str, **params: Any) -> None:
        _act(template.format_map(_Fields(ctx, **params)), idempotency_key)

    return action


PRINTS = {
    "log_exit": "log that {order_id} left {from_state}",
    "notify_ui": "push {order_id}'s new state to the trading UI",
    "settle_trade": "send {order_id} to settlement",
    "release_funds": "release the buying power reserved for {order_id}",
    "record_exchange_id": "record exchange id {exchange_id} for {order_id}",
    "record_reject_reason": "record why {order_id} was rejected: {reason}",
    "apply_amendment": "amend {order_id}'s limit price to {price}",
    "send_cancel": "send a cancel for {order_id} to the exchange",
}


def alert_operations(
    ctx: Mapping[str, Any], *, idempotency_key: str, reason: str | None = None
) -> None:
    """Page operations: ``reason`` from the spec's params (the timeout gives one), else
    the error a fallback event carries in its payload."""
    why = reason if reason is not None else ctx.get("error", "?")
    _act(f"page operations about {ctx['order_id']}: {why}", idempotency_key)


class PositionsDesk:
    """The positions service, as a print-only stand-in that can be told to fail.

    ``outages`` maps an order id to how many calls for it fail (``ConnectionError``)
    before one goes through: the demo's way to show retries, and the fallback to ERROR
    once they run out.
    """

    def __init__(self, outages: Mapping[str, int] | None = None) -> None:
        self._outages = dict(outages or {})

    def update_positions(self, ctx: Mapping[str, Any], *, idempotency_key: str) -> None:
        line = "book {fill_qty} @ {price} to positions".format_map(_Fields(ctx))
        left = self._outages.get(ctx["order_id"], 0)
        if left > 0:
            self._outages[ctx["order_id"]] = left - 1
            error = ConnectionError("positions service unavailable")
            _act(line, idempotency_key, f"  FAILED: {error}")
            raise error
        _act(line, idempotency_key)


def build_actions(positions: PositionsDesk | None = None) -> ActionRegistry:
    """Every action the order machine names; ``update_positions`` goes to ``positions``."""
    actions = ActionRegistry({name: _prints(template) for name, template in PRINTS.items()})
    actions.register("alert_operations", alert_operations)
    actions.register("update_positions", (positions or PositionsDesk()).update_positions)
    return actions


def build_executor(
    machine: StateMachine,
    *,
    positions: PositionsDesk | None = None,
    sleep: Sleep = time.sleep,
    random: Random | None = None,
) -> ActionExecutor:
    """The executor for ``machine``'s actions, built once at start-up.

    Raises ``ActionNotFoundError`` (or ``SpecError`` for params an action cannot take)
    here, listing every problem, rather than when an unlucky order first needs the
    action, after its commit.
    """
    return ActionExecutor(build_actions(positions), machine=machine, sleep=sleep, random=random)


@dataclass(frozen=True, slots=True)
class Handled:
    """One committed change to an order and what acting on it gave.

    ``execution``: the outcome of each action (none for a rejected event). ``fallback``:
    when an action still failed after its retries, the move to ERROR, committed and
    handled the same way; ``None`` otherwise, or when the order had moved on (or was
    gone) by the time the fallback was to be committed.
    """

    execution: ExecutionResult
    fallback: Handled | None = None

    @property
    def result(self) -> TransitionResult:
        return self.execution.result


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
    executor: ActionExecutor,
    before_commit: BeforeCommit | None = None,
) -> Handled:
    """Decide ``event`` for the order and commit it, then act (see :func:`transact`)."""

    def decide(order: sqlite3.Row) -> TransitionResult:
        # Pure. A rejected event comes back as a result, not an exception, and is audited.
        return machine.process(order["state"], event, stored_context(order))

    # Read once, up front: the row and its audit row share one time.
    handled = transact(
        db, order_id, decide, now=clock(), executor=executor, before_commit=before_commit
    )
    assert handled is not None  # this decide always decides: only a timeout finds nothing
    return handled


def transact(
    db: sqlite3.Connection,
    order_id: str,
    decide: Callable[[sqlite3.Row], TransitionResult | None],
    *,
    now: float,
    executor: ActionExecutor,
    before_commit: BeforeCommit | None = None,
) -> Handled | None:
    """LOAD the order, DECIDE with ``decide(row)``, COMMIT the result and its audit row,
    then ACT with ``executor``: the four steps every change to an order takes.

    ``decide`` returning ``None`` means there is nothing to do (a timeout that is no
    longer due, say): nothing is written, nothing runs, and ``None`` is returned.
    Raises ``LookupError`` for an unknown order and :class:`VersionConflict` when the
    row changed under us; either way nothing is committed and no action runs. An
    action that keeps failing raises nothing: its fallback to ERROR goes through these
    same four steps (``before_commit`` is this change's alone), and is in the result.
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
        return None
    # 4. ACT: the new state is durable, so the world may now hear about it. The actions
    # see what the decision saw; a failed or ignored result runs none.
    print(_describe(order_id, r, order["version"]))
    execution = executor.execute(r, stored_context(order))
    for failed in execution.failed_actions:
        print(f"      gave up on {failed.name} after {failed.attempts} attempt(s): {failed.error}")
    if execution.fallback is None:
        return Handled(execution)
    return Handled(execution, _fall_back(db, order_id, execution.fallback, now, executor))


def _fall_back(
    db: sqlite3.Connection,
    order_id: str,
    fallback: TransitionResult,
    now: float,
    executor: ActionExecutor,
) -> Handled | None:
    """Commit ``fallback`` and act on it, like any result; ``None`` (and a line saying
    why) when the order moved on or vanished since the failed actions' commit."""

    def decide(order: sqlite3.Row) -> TransitionResult | None:
        # The failure was about the state we committed. If another writer has moved the
        # order on since, that state is gone, and so is the reason to fall back.
        return fallback if order["state"] == fallback.source_state else None

    try:
        # The same time as the change that failed: the fallback is part of handling it.
        handled = transact(db, order_id, decide, now=now, executor=executor)
    except (VersionConflict, LookupError) as exc:
        print(f"{order_id} {fallback.trigger:<19} not committed ({exc}): no actions ran")
        return None
    if handled is None:
        print(f"{order_id} {fallback.trigger:<19} left alone: no longer {fallback.source_state}")
    return handled


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
    # The payload says what arrived; for a fallback (trigger "error"), what went wrong.
    payload = json.dumps(r.event.to_dict()["payload"])
    event = (order_id, r.event.id, r.trigger, r.source_state, r.target_state, r.success)
    db.execute(
        "INSERT INTO audit (order_id, event_id, trigger, from_state, to_state, success, error, "
        "actions, payload, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (*event, error, actions, payload, now),
    )


def _describe(order_id: str, r: TransitionResult, version: int) -> str:
    head = f"{order_id} {r.trigger:<19}"
    if not r.success:
        return f"{head} REJECTED in {r.source_state}, audited (v{version}): {r.error}"
    if r.transition is not None and r.transition.is_internal:
        return f"{head} {r.source_state} (internal: no exit, no enter), committed (v{version + 1})"
    return f"{head} {r.source_state} -> {r.target_state}, committed (v{version + 1})"


# A day at the desk: (order, trigger, payload), in arrival order.
ORDERS = {"ORD-1": 100, "ORD-2": 50, "ORD-3": 10, "ORD-4": 25, "ORD-5": 30, "ORD-6": 20}
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
    ("ORD-6", "order_acknowledged", {"exchange_id": "X-9006"}),
    ("ORD-6", "execution_report", {"fill_qty": 10, "price": 42.0}),  # booking fails: ERROR
    ("ORD-6", "operator_cancel", {}),  # an operator takes it from there
]
# Calls to the positions service that fail, per order: ORD-1's first booking once (a
# retry gets it through), ORD-6's on every attempt (more than any retry policy allows).
OUTAGES = {"ORD-1": 1, "ORD-6": 99}


def pretend_sleep(seconds: float) -> None:
    """The demo's retry wait: says how long a real service would wait, and does not."""
    print(f"      (retry in {seconds:.2f} s; the demo does not wait)")


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


def main(
    argv: Sequence[str] | None = None, *, clock: Clock = time.time, sleep: Sleep = pretend_sleep
) -> int:
    parser = argparse.ArgumentParser(description="Run orders through the order machine.")
    parser.add_argument("db", nargs="?", type=Path, default=DEFAULT_DB, help="recreated each run")
    db_path: Path = parser.parse_args(argv).db
    machine = build_machine()
    # Seeded, so the jittered retry waits print the same on every run.
    positions = PositionsDesk(OUTAGES)
    executor = build_executor(machine, positions=positions, sleep=sleep, random=Random(0))
    with closing(open_db(db_path)) as db:
        for order_id, qty in ORDERS.items():
            create_order(db, machine, order_id, qty, clock())
        print(f"{len(ORDERS)} orders created in {machine.initial_state.name} ({db_path})")
        print("(each act line ends with the start of the action's idempotency key)\n")
        # Event freezes any mapping, but its payload is annotated FrozenDict, so mypy asks.
        for n, (order_id, trigger, payload) in enumerate(SCRIPT, start=1):
            event = Event(trigger, FrozenDict(payload), id=f"msg-{n}")
            handle(db, machine, order_id, event, clock=clock, executor=executor)

        # A commit that fails: "another writer" bumps ORD-5's version after our read.
        # (Under our BEGIN IMMEDIATE a real one would wait for the lock, so we fake it.)
        def sneak_in(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE orders SET version = version + 1 WHERE order_id = 'ORD-5'")

        event = Event("amend_price", FrozenDict({"price": 30.5}), id=f"msg-{len(SCRIPT) + 1}")
        try:
            handle(
                db, machine, "ORD-5", event, clock=clock, executor=executor, before_commit=sneak_in
            )
        except VersionConflict as exc:
            print(f"ORD-5 amend_price         commit FAILED ({exc}): rolled back, no actions ran")
        print_summary(db)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
