"""A cron job that times orders out, on the order demo's SQLite file.

    python examples/timeouts_cron.py [path/to/orders.db] [--now 2026-11-22T21:00:00Z]

Run it every minute or so. It finds the orders whose state's timeout is due at
``now`` (the clock's time, or ``--now``: an ISO 8601 date and time with a UTC offset),
then takes each through the same four steps as an event in ``order_service.py``, in
its own write transaction: LOAD the row again, DECIDE again with the timeout check
(the order may have moved on since it was found due: acknowledged, canceled, or
timed out by an overlapping run), COMMIT the new state and an audit row, and only
then ACT, with the service's action executor: PENDING_NEW's timeout pages operations
(its own ``actions:`` in the spec, between the exit and the enter actions). An order
that moved on is left alone.

Running the job again does nothing new: a timed-out order sits in a state with no
timeout, or one entered anew. The audit row's event id, ``timeout:{order}:{state}:
{deadline}``, is the same whenever and however often the same firing is decided, and
so are the idempotency keys the executor derives from it for the actions.

Without a database file, the job first runs the order demo to create one, with the
job's clock: the demo's ORD-4 then waits in PENDING_NEW, whose timeout is 5 s. Run
the job again 5 s later (or with a later ``--now``) to see it time out.
"""

from __future__ import annotations

import argparse
import sqlite3
from collections.abc import Callable, Sequence
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import order_service as svc

from statewise import ActionExecutor, StateMachine, TransitionResult
from statewise.timeouts import DueTimeout, TimeoutManager

Clock = Callable[[], datetime]  # an aware datetime; injected so tests can fix time


def _wall_clock() -> datetime:
    return datetime.now(UTC)


def _at(epoch: float) -> datetime:
    """A stored epoch-seconds time as an aware datetime: the timeout API takes no naive ones."""
    return datetime.fromtimestamp(epoch, UTC)


def find_due(
    db: sqlite3.Connection, manager: TimeoutManager, now: datetime
) -> list[DueTimeout[str]]:
    """The orders whose timeout is due at ``now``, by order id.

    Only rows in states with a timeout are read. The decision is taken from
    ``entered_at`` and the spec, not from the stored ``deadline_at``: a spec whose
    timeout changed applies to orders already waiting. (A large table would also
    pre-filter on an indexed ``deadline_at``.) The list is complete before any order
    is changed: a cursor must not stay open across the write transactions.
    """
    timed = [s.name for s in manager.machine.definition.states if s.timeout is not None]
    cursor = db.execute(
        "SELECT order_id, state, entered_at FROM orders "
        f"WHERE state IN ({', '.join('?' * len(timed))}) ORDER BY order_id",
        timed,
    )
    rows = ((r["order_id"], r["state"], _at(r["entered_at"])) for r in cursor)
    return list(manager.due(rows, now))


def fire(
    db: sqlite3.Connection,
    manager: TimeoutManager,
    order_id: str,
    now: datetime,
    *,
    executor: ActionExecutor,
    before_commit: svc.BeforeCommit | None = None,
) -> svc.Handled | None:
    """Time one order out, if it is still due at ``now``: load, decide, commit, act.

    ``None`` (nothing written, nothing run) when the row, re-read inside the write
    transaction, is no longer due. The new state's ``entered_at`` is ``now``, when the
    job committed it, as for any event. Raises what :func:`order_service.transact`
    raises (``VersionConflict``, ``LookupError``), with nothing committed.
    """

    def decide(order: sqlite3.Row) -> TransitionResult | None:
        due = manager.check(order_id, order["state"], _at(order["entered_at"]), now)
        return None if due is None else due.result

    return svc.transact(
        db, order_id, decide, now=now.timestamp(), executor=executor, before_commit=before_commit
    )


def run(
    db: sqlite3.Connection,
    machine: StateMachine,
    now: datetime,
    *,
    executor: ActionExecutor,
    before_commit: svc.BeforeCommit | None = None,
) -> list[svc.Handled]:
    """Time out every order due at ``now``; what was committed and run, in order.

    An order whose commit fails (it changed under us, or is gone) is reported and
    skipped: the others still go ahead, and the next run decides it afresh.
    """
    manager = TimeoutManager(machine)
    due = find_due(db, manager, now)
    print(f"{len(due)} timeout(s) due at {now.isoformat()}")
    done: list[svc.Handled] = []
    for item in due:
        try:
            handled = fire(
                db, manager, item.entity_id, now, executor=executor, before_commit=before_commit
            )
        except (svc.VersionConflict, LookupError) as exc:
            print(f"{item.entity_id} timeout: not committed ({exc}): rolled back, no actions ran")
            continue
        if handled is None:
            print(f"{item.entity_id} timeout: moved on since it was found due, left alone")
        else:
            done.append(handled)
    return done


def print_waiting(db: sqlite3.Connection, machine: StateMachine, now: datetime) -> None:
    """The orders whose timeout is still ahead, and when it will fire."""
    manager = TimeoutManager(machine)
    for row in db.execute("SELECT order_id, state, entered_at FROM orders ORDER BY order_id"):
        info = manager.get_timeout_info(row["state"], _at(row["entered_at"]), now)
        if info is not None and not info.expired:
            print(
                f"{row['order_id']} waits in {info.state}: times out in "
                f"{info.remaining.total_seconds():g} s, at {info.expires_at:%Y-%m-%d %H:%M:%S} UTC"
            )


def aware_datetime(text: str) -> datetime:
    """``--now``: an ISO 8601 date and time with a UTC offset (never a guessed zone)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 date and time such as 2026-11-22T21:00:00Z"
        ) from None
    if value.utcoffset() is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} has no UTC offset: add one, e.g. {text}Z or {text}+01:00"
        )
    return value


def main(argv: Sequence[str] | None = None, *, clock: Clock = _wall_clock) -> int:
    parser = argparse.ArgumentParser(description="Time out the orders whose timeout is due.")
    parser.add_argument("db", nargs="?", type=Path, default=svc.DEFAULT_DB)
    parser.add_argument(
        "--now", type=aware_datetime, help="the job's time (default: the clock's), with offset"
    )
    args = parser.parse_args(argv)
    db_path: Path = args.db
    now: datetime = clock() if args.now is None else args.now
    if not db_path.exists():
        print(f"no database at {db_path}: running the order demo to create it\n")
        svc.main([str(db_path)], clock=now.timestamp)
        print()
    machine = svc.build_machine()
    executor = svc.build_executor(machine)  # checks every action is there, before any commit
    with closing(svc.connect(db_path)) as db:
        run(db, machine, now, executor=executor)
        print_waiting(db, machine, now)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
