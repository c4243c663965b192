"""State timeouts, decided against a clock the caller owns.

A state's timeout fires once ``now >= entered_at + timeout``: at the deadline exactly,
not a microsecond later. Nothing here reads a clock: ``now`` is always an argument, so
a cron job, a test and a replay all decide the same way for the same inputs.

Datetimes must be aware. A naive one (no ``tzinfo``, or one whose ``utcoffset()`` is
``None``) raises ``ValueError`` naming the argument: guessing the local zone would
move deadlines by hours on a server in another zone, or twice a year at a DST change.
Everything is computed in UTC, whatever zones the arguments are in, and the deadlines
returned are UTC datetimes (``.astimezone(zone)`` them for display): adding a
``timedelta`` to a datetime in a DST zone adds wall-clock time, not elapsed time. A
deadline past ``datetime.max`` (year 9999) raises ``OverflowError``.

A firing gets a deterministic event id, ``timeout:{state}:{deadline}`` (with the
entity, ``timeout:{entity_id}:{state}:{deadline}``; the deadline in UTC ISO 8601), so
a job that runs twice over the same row offers the same idempotency key twice.

The pattern is the usual one, with the timeout as the event: load the entity's state
and ``entered_at``; decide with :func:`check_timeout` (``None``: nothing to do);
commit ``result.target_state`` with a new ``entered_at``, guarded by a version check,
since the entity may have moved on since it was found due; then run the actions.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

from statewise.engine.machine import Machine
from statewise.model.result import TransitionResult

__all__ = ["DueTimeout", "TimeoutInfo", "TimeoutManager", "check_timeout"]

K = TypeVar("K")
_ZERO = timedelta(0)


def check_timeout(
    machine: Machine,
    state: str,
    entered_at: datetime,
    now: datetime,
    *,
    event_id: str | None = None,
) -> TransitionResult | None:
    """The result of ``state``'s timeout firing, if it is due at ``now``; else ``None``.

    Due means ``now >= entered_at + timeout`` (the exact deadline fires). ``None`` also
    when ``state`` has no timeout. The result is :meth:`Machine.timeout_result`'s; its
    event id is ``event_id``, or by default ``timeout:{state}:{deadline}``.

    Raises ``TypeError`` when ``entered_at`` or ``now`` is not a datetime,
    ``ValueError`` when one is naive, and :class:`UndefinedStateError` for a state the
    machine does not define.
    """
    deadline = _due_deadline(machine, state, entered_at, now)
    if deadline is None:
        return None
    if event_id is None:
        event_id = _event_id(state, deadline)
    return machine.timeout_result(state, event_id=event_id)


@dataclass(frozen=True, slots=True)
class TimeoutInfo:
    """Where an entity stands against its state's timeout at some ``now``.

    ``expires_at`` is in UTC; ``remaining`` is never negative (zero once expired);
    ``expired`` is true from the deadline on, exactly when :func:`check_timeout` fires.
    ``entered_at`` is the datetime given, as given.
    """

    state: str
    entered_at: datetime
    expires_at: datetime
    remaining: timedelta
    expired: bool


@dataclass(frozen=True, slots=True)
class DueTimeout(Generic[K]):
    """An entity whose timeout is due: the result to commit, then act on.

    ``deadline`` is in UTC; ``result.event.id`` is
    ``timeout:{entity_id}:{state}:{deadline}``.
    """

    entity_id: K
    state: str
    deadline: datetime
    result: TransitionResult


@dataclass(frozen=True, slots=True)
class TimeoutManager:
    """Timeout queries for one machine, for schedulers and dashboards.

    Every method takes aware datetimes only (see the module's documentation) and
    raises :class:`UndefinedStateError` for a state the machine does not define: a
    stored state the machine does not know is a bug, not a state without a timeout.
    """

    machine: Machine

    def deadline(self, state: str, entered_at: datetime) -> datetime | None:
        """When ``state``'s timeout is due (UTC) for an entity that entered it at
        ``entered_at``; ``None`` when the state has no timeout."""
        return _deadline(self.machine, state, _aware("entered_at", entered_at))

    def get_timeout_info(
        self, state: str, entered_at: datetime, now: datetime
    ) -> TimeoutInfo | None:
        """Where an entity in ``state`` since ``entered_at`` stands at ``now``;
        ``None`` when the state has no timeout."""
        entered = _aware("entered_at", entered_at)
        current = _aware("now", now)
        deadline = _deadline(self.machine, state, entered)
        if deadline is None:
            return None
        return TimeoutInfo(
            state, entered_at, deadline, max(deadline - current, _ZERO), current >= deadline
        )

    def check(
        self, entity_id: K, state: str, entered_at: datetime, now: datetime
    ) -> DueTimeout[K] | None:
        """One entity: its :class:`DueTimeout` if its timeout is due at ``now``, else
        ``None``. :meth:`due` for a single row, e.g. to re-check a row re-read inside
        the write transaction."""
        deadline = _due_deadline(self.machine, state, entered_at, now)
        if deadline is None:
            return None
        event_id = _event_id(state, deadline, entity_id)
        result = self.machine.timeout_result(state, event_id=event_id)
        # None only for a state the engine gives no timeout edge (a terminal one).
        return None if result is None else DueTimeout(entity_id, state, deadline, result)

    def due(
        self, rows: Iterable[tuple[K, str, datetime]], now: datetime
    ) -> Iterator[DueTimeout[K]]:
        """The rows ``(entity_id, state, entered_at)`` whose timeout is due at ``now``,
        in the rows' order.

        Lazy: a row is read only when the next due timeout is asked for, so a cursor
        over a large table can be passed as it is. Rows in states without a timeout
        are skipped. ``now`` is checked at once, each row when it is read.
        """
        _aware("now", now)
        return self._due(rows, now)

    def _due(
        self, rows: Iterable[tuple[K, str, datetime]], now: datetime
    ) -> Iterator[DueTimeout[K]]:
        for entity_id, state, entered_at in rows:
            hit = self.check(entity_id, state, entered_at, now)
            if hit is not None:
                yield hit


def _due_deadline(
    machine: Machine, state: str, entered_at: datetime, now: datetime
) -> datetime | None:
    """The deadline (UTC) of ``state``'s timeout if it is due at ``now``, else ``None``."""
    entered = _aware("entered_at", entered_at)
    current = _aware("now", now)
    deadline = _deadline(machine, state, entered)
    if deadline is None or current < deadline:
        return None
    return deadline


def _event_id(state: str, deadline: datetime, *entity: object) -> str:
    # UTC, so the same instant gives the same id whatever zone the caller used.
    return ":".join(["timeout", *map(str, entity), state, deadline.isoformat()])


def _deadline(machine: Machine, state: str, entered_at: datetime) -> datetime | None:
    timeout = machine.get_state(state).timeout
    if timeout is None:
        return None
    return entered_at + timedelta(seconds=timeout.seconds)


def _aware(name: str, value: datetime) -> datetime:
    """``value`` in UTC; raises for anything but an aware datetime."""
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.utcoffset() is None:
        raise ValueError(
            f"{name} is a naive datetime ({value.isoformat()}): give it a time zone, "
            f"e.g. datetime.now(UTC); statewise never assumes the local one"
        )
    return value.astimezone(UTC)
