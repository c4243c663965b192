"""The runtime: load, decide, commit, act, made durable and safe to run concurrently.

``Runtime(machine, store, actions=registry)`` keeps the entities of one machine in a
:class:`~statewise.runtime.store.Store`. What it guarantees, and how:

* **Events apply exactly once, in arrival order.** Every event is added to the inbox
  under an idempotency key, unique per entity; a redelivery finds the row and returns
  the first result, changing nothing. ``send`` locks the entity (reading, with the
  lock held, its inbox row for the key, whether older events wait, and its timer:
  ``Tx.receive``), then applies its oldest unprocessed events first (the one sent
  last), each in its own history row, all in the one transaction that also writes
  the new state, the outbox rows and the timer. When no event waits, the one sent
  is applied at once and its inbox row is written already processed, along with
  everything else it changes (``Tx.write_event``: one statement on PostgreSQL, sent
  with the COMMIT). A rejected event is recorded (history, inbox result) without
  changing the state or the version.
* **Deciding ahead, checked under the lock.** A runtime remembers each entity as it
  last wrote it (the newest few thousand). The next ``send`` to it decides from that
  before locking, and ``Tx.write_expected`` locks the entity and writes the decision
  only if, under the lock, the version, the timer's generation and the inbox (no
  event waiting, the key unused) are what the decision took for granted; on
  PostgreSQL that is the whole transaction in one round trip instead of two. Since
  ``process`` is pure, a decision from an unchanged entity is the one the lock would
  have given. When anything changed (another writer, a redelivery, a queued event),
  or the decision raised, nothing was written and ``send`` takes the locked path; a
  runtime whose guesses keep missing (many writers of the same entities) stops
  guessing for a while.
* **Actions run at least once, after the commit.** Each action of an applied result
  is an outbox row keyed ``machine:entity:version:seq`` (the key the action gets as
  ``idempotency_key``), holding what it needs to run later: the action call and the
  entity's context with the event payload under it. The rows are inserted already
  leased to this runtime, so the process that committed them makes the first attempt
  right after the commit, before any worker could. A row is acknowledged only while
  its lease is still ours. Acks are written with the store's next transaction, or
  within its ``ack_delay`` (``Store.ack_later``, :mod:`statewise.runtime.acks`), and
  claims commit without waiting for the disk: losing one to a crash only runs an
  action again, which at least once allows; the event's own transaction is always
  durable.
  A failure is retried with jittered exponential backoff (the
  action's ``retry``, else ``error_policy``); after the last attempt the row is
  ``dead`` and, when the machine has a ``default_fallback``, the entity is sent the
  fallback event (``machine.fail``) through the inbox under ``<outbox key>:fallback``,
  so it happens once however many workers saw the failure.
* **Timeouts fire once, and never late for a state already left.** Entering a state
  with a timeout arms the entity's ``timeout`` timer (due = now + seconds, generation =
  the new version); entering one without cancels it. ``sweep_timers`` sends a due
  timer through the inbox as ``timer:timeout:<generation>``. When that event's turn
  comes, it is applied only if the entity's timer still has that generation: the
  generation, not the version, because an internal transition bumps the version
  without leaving the state (its timeout still runs). A *stale* firing (the entity
  re-entered a state since: a newer generation, or no timer) is recorded as an
  ignored event, with the reason as the history row's ``error``, and changes nothing.

Versions: ``create`` stores version 1; each applied event (an internal transition too)
adds one; rejected, ignored and stale events add none.

The context is set once, by ``create``, and is what every guard of the entity reads
(with each event's payload under it). It is not replaced later: :meth:`Runtime.replay`
re-runs the history with it, so a replacement would need a history row of its own.

History rows hold exactly ``Event.to_dict()`` of each event. The runtime's own events
have ids that say what they are: a timer firing is trigger ``timeout`` with id
``timer:<name>:<generation>``, a fallback is trigger ``error`` with id ``<outbox
key>:fallback`` (its key too). So :meth:`Runtime.replay` tells them from a regular
event by the history alone.

A runtime serves one machine: every row carries the machine's name, and a runtime
finds only its own machine's (another machine's entity is an
:class:`EntityNotFoundError`). Nothing here raises ``UnknownMachineError``.

Keys and event ids starting with ``timer:`` or ending with ``:fallback`` are the
runtime's own; an event sent with one is refused (``ValueError``).

Time: ``clock`` (a callable returning an aware datetime) when given, else the store's
transaction clock; it dates history rows and decides timers and leases. A lease must
outlast the longest action: a worker whose lease was taken over by another cannot
acknowledge, so its late result changes nothing (the action may have run twice: at
least once, with the same idempotency key both times).
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from random import Random
from typing import Any, Literal, TypeAlias

from statewise.engine.actions import (
    IDEMPOTENCY_KEY,
    ActionRegistry,
    RegisteredAction,
    action_uses,
)
from statewise.engine.machine import Machine
from statewise.engine.views import context_view
from statewise.model.definition import ERROR_TRIGGER, TIMEOUT_TRIGGER, ActionCall, Retry
from statewise.model.event import Event
from statewise.model.frozen import FrozenDict, deep_freeze, thaw
from statewise.model.result import Decision, TransitionResult, make_result
from statewise.runtime.errors import ConcurrencyError, EntityExistsError, EntityNotFoundError
from statewise.runtime.store import (
    EntityRow,
    EventWrite,
    Expected,
    HistoryRow,
    InboxRow,
    OutboxRow,
    Received,
    Store,
    TimerRow,
    Tx,
    WorkerRow,
    dump_json,
)

__all__ = ["TIMER", "EntityInfo", "ReplayReport", "Runtime", "WorkerStatus"]

log = logging.getLogger("statewise.runtime")

TIMER = "timeout"
"""The name of the timer a state's ``timeout`` arms (the one timer the runtime uses)."""

Kind: TypeAlias = Literal["event", "timer", "fallback"]
WorkerStatus: TypeAlias = Literal["stopped", "waiting", "ready", "running", "closed"]
Clock: TypeAlias = Callable[[], datetime]
ShouldStop: TypeAlias = Callable[[], bool]

_DECISION_DICTS = 256  # decisions whose dict form a runtime keeps (see _result_dict)
_SEEN = 4096  # entities whose last written row a runtime keeps (see Runtime.send)
# How far ahead decisions may be tried: each success adds one (up to the cap), each
# failure takes _MISS_COST; below zero, sends lock first, each adding one meanwhile.
_AHEAD_CAP = 16
_MISS_COST = 4
_TIMER_PREFIX = "timer:"
_FALLBACK_SUFFIX = ":fallback"


def _never() -> bool:
    return False


@dataclass(frozen=True, slots=True)
class EntityInfo:
    """What ``Runtime.get`` reads: an entity as stored, state names resolved to the
    spec's current ones. ``deadlines``: the armed timers, name -> due time."""

    machine: str
    entity_id: str
    state: str
    context: Mapping[str, Any]
    version: int
    entered_at: datetime
    deadlines: Mapping[str, datetime]


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """``Runtime.replay``: the history re-run through the machine, from creation.

    ``state`` / ``version``: where the re-run ended (or stopped, at a mismatch);
    ``stored_state`` / ``stored_version``: the entity's row. ``matches``: every history
    row was reproduced (state, version, success) and the end is the stored row.
    ``mismatch`` says where it first diverged, or what the machine raised; ``events``
    counts the history rows re-run.
    """

    entity_id: str
    matches: bool
    state: str
    version: int
    stored_state: str
    stored_version: int
    events: int
    mismatch: str | None = None


def _timer_key(name: str, generation: int) -> str:
    return f"{_TIMER_PREFIX}{name}:{generation}"


def _json_object(value: Mapping[str, Any] | None, what: str) -> dict[str, Any]:
    """A plain JSON copy of ``value``: the store keeps JSON, so refuse anything else now
    (``TypeError``) rather than halfway through a transaction."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{what} must be a mapping, got {type(value).__name__}")
    try:
        copied: dict[str, Any] = json.loads(json.dumps(thaw(value), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must be JSON data: {exc}") from None
    return copied


def _check_json(value: Mapping[str, Any], what: str) -> None:
    try:
        dump_json(thaw(value))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must be JSON data: {exc}") from None


def _action_dict(call: ActionCall) -> dict[str, Any]:
    spec = call.to_spec()
    return {"name": spec} if isinstance(spec, str) else spec


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class Runtime:
    """The entities of ``machine`` in ``store``; see the module docstring for the rules.

    * ``actions``: the registry actions are looked up in, checked now against the
      machine (``machine.check_actions``); a coroutine-function action is refused
      (``TypeError``): the runtime runs actions synchronously.
    * ``clock``: returns the current time as an aware datetime; default: the store's.
    * ``lease_seconds``: how long a claimed outbox row is ours; must outlast an action.
    * ``worker_id``: the lease owner's name; default ``host:pid:random``, unique.
    * ``random``: the jitter source for retry backoff.

    The machine's guards must be bound already. One runtime may be used from many
    threads; every method opens its own transactions and none is held while an
    action runs.
    """

    def __init__(
        self,
        machine: Machine,
        store: Store,
        *,
        actions: ActionRegistry | None = None,
        clock: Clock | None = None,
        lease_seconds: float = 30.0,
        worker_id: str | None = None,
        random: Random | None = None,
    ) -> None:
        registry = ActionRegistry() if actions is None else actions
        machine.check_actions(registry)
        self._actions: dict[str, RegisteredAction] = registry.snapshot()
        used = {call.name for call in _calls(machine)}
        coroutines = sorted(n for n in used if self._actions[n].is_async)
        if coroutines:
            raise TypeError(
                f"actions {coroutines} are coroutine functions: the runtime runs actions "
                "synchronously"
            )
        if lease_seconds <= 0:
            raise ValueError(f"lease_seconds must be > 0, got {lease_seconds!r}")
        if lease_seconds < 10 * store.ack_delay:
            # An ack may wait ack_delay to be written: the lease must outlast that by far.
            raise ValueError(
                f"lease_seconds must be at least ten times the store's ack_delay "
                f"({store.ack_delay!r} s), got {lease_seconds!r}"
            )
        self._machine = machine
        self._store = store
        self._clock = clock
        self._lease = timedelta(seconds=lease_seconds)
        self._worker_id = worker_id or (
            f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        )
        self._random = Random() if random is None else random
        self._default_retry = machine.definition.error_policy.retry
        # Each action call's outbox form, made once; by id, the call it came from, so
        # that the first attempt need not parse it back (the dicts are never mutated).
        self._action_dicts: dict[ActionCall, dict[str, Any]] = {}
        self._known_actions: dict[int, tuple[dict[str, Any], ActionCall]] = {}
        self._decision_dicts: dict[int, tuple[Decision, dict[str, Any], str]] = {}
        # Each entity as this runtime last wrote it, its timer, and the time used then
        # (see send); and the score that turns deciding ahead of the lock off while
        # it keeps failing (other writers of the same entities).
        self._seen: dict[str, tuple[EntityRow, TimerRow | None, datetime]] = {}
        self._seen_lock = threading.Lock()
        self._ahead = 0

    @property
    def machine(self) -> Machine:
        return self._machine

    @property
    def store(self) -> Store:
        return self._store

    @property
    def worker_id(self) -> str:
        return self._worker_id

    @property
    def name(self) -> str:
        """The machine's name: the ``machine`` column of every row this runtime writes."""
        return self._machine.name

    # -- entities ----------------------------------------------------------------------

    def create(self, entity_id: str, context: Mapping[str, Any] | None = None) -> EntityInfo:
        """Store a new entity in the initial state, with ``context`` (a JSON object), and
        arm the initial state's timeout. Runs no action (nothing was entered by a
        transition). :class:`EntityExistsError` when the id is taken: nothing written."""
        ctx = _json_object(context, "context")
        initial = self._machine.initial_state
        with self._store.transaction() as tx:
            now = self._now(tx)
            row = EntityRow(self.name, entity_id, initial.name, ctx, 1, now)
            if not tx.insert_entity(row):
                raise EntityExistsError(self.name, entity_id)
            deadlines: dict[str, datetime] = {}
            if initial.timeout is not None:
                due = now + timedelta(seconds=initial.timeout.seconds)
                tx.timer_set(TimerRow(self.name, entity_id, TIMER, due, 1))
                deadlines[TIMER] = due
        return self._info(row, deadlines)

    def get(self, entity_id: str) -> EntityInfo:
        """The entity as stored; :class:`EntityNotFoundError` when there is none.
        A stored state name the spec no longer knows raises ``UndefinedStateError``."""
        with self._store.transaction() as tx:
            entity = tx.get_entity(self.name, entity_id)
            if entity is None:
                raise EntityNotFoundError(self.name, entity_id)
            timer = tx.timer_get(self.name, entity_id, TIMER)
        return self._info(entity, {} if timer is None else {TIMER: timer.due_at})

    def history(self, entity_id: str) -> list[HistoryRow]:
        """The entity's history rows, one per event processed, by ``seq``."""
        with self._store.transaction() as tx:
            if tx.get_entity(self.name, entity_id) is None:
                raise EntityNotFoundError(self.name, entity_id)
            return tx.history(self.name, entity_id)

    def dead_actions(self) -> list[OutboxRow]:
        """Outbox rows of this machine that failed their last attempt, oldest first."""
        with self._store.transaction() as tx:
            return tx.outbox_rows(status="dead", machine=self.name)

    # -- events ------------------------------------------------------------------------

    def send(
        self, entity_id: str, event: str | Event, *, idempotency_key: str | None = None
    ) -> TransitionResult:
        """Record ``event`` for the entity and apply it, exactly once; returns its result.

        The key is ``idempotency_key``, else ``event.id`` (``ValueError`` when neither is
        given). A key seen before returns the first result and changes nothing (even
        if this event differs). The entity's older unprocessed events are applied
        first. Rejected events and failing actions are not raised: see the result, the
        history and the outbox. Raises :class:`EntityNotFoundError` for an unknown
        entity, and what ``process`` raises for a bug (``GuardError``, say): then
        nothing is written, this event included, and the caller may retry it.
        """
        ev, key = _event_and_key(event, idempotency_key)
        seen = self._seen.get(entity_id)
        if seen is not None:
            done = self._send_ahead(seen, ev, key)
            if done is not None:
                return done
        after: tuple[EntityRow, TimerRow | None, datetime] | None = None
        with self._store.transaction() as tx:
            got = self._receive(tx, entity_id, key)
            now = self._now(tx, got.now)
            row = got.inbox
            if row is not None and row.result is not None:
                # A redelivery: nothing changes, and the entity is as the lock found it.
                self._remember(entity_id, (got.entity, got.timer, now))
                return TransitionResult.from_dict(row.result)
            if row is None and not got.backlog:
                # Nothing queued before it: applied at once, its inbox row written
                # already processed (one write instead of an insert and an update).
                entity, armed, result, leased = self._apply(
                    tx, got.entity, ev, now, got.timer, key=key, last=True
                )
                after = (entity, armed, now)
            else:
                if row is None:
                    row, _ = tx.inbox_add(self.name, entity_id, key, ev.to_dict(), now)
                first = None if got.backlog else row  # the entity's only pending event
                results, leased = self._drain(
                    tx, got.entity, now, got.timer, until=row.id, first=first
                )
                result = results[row.id]
        self._remember(entity_id, after)
        self._run(leased)
        return result

    def _send_ahead(
        self, seen: tuple[EntityRow, TimerRow | None, datetime], event: Event, key: str
    ) -> TransitionResult | None:
        """``send`` decided before the lock, from the entity as this runtime last wrote
        it (``seen``), then written in one go if the store finds it unchanged under
        the lock (``Tx.write_expected``: on PostgreSQL the whole transaction is one
        round trip instead of two). ``None``: it was not (another writer, a queued
        event, a redelivery) or the decision raised, and nothing was written; the
        caller then locks first and decides again, so every outcome, errors
        included, is the one the locked path gives."""
        if self._ahead < 0:
            self._ahead += 1
            return None
        entity, armed, then = seen
        # The time the decision counts from: the clock's, else a stand-in the store
        # moves onto its own clock as it writes (Expected.store_clock).
        now = then if self._clock is None else _aware(self._clock())
        expected = Expected(
            entity.version,
            TIMER,
            None if armed is None else armed.generation,
            store_clock=self._clock is None,
        )
        try:
            decided = self._decide_write(entity, event, now, armed, key=key)
        except Exception:  # decided on a row that may be stale: the locked path tells
            self._forget(entity.entity_id)
            return None
        after, armed_after, result, write = decided
        try:
            with self._store.transaction() as tx:
                ids = tx.write_expected(expected, write)
        except ConcurrencyError:
            self._forget(entity.entity_id)
            return None
        self._ahead = min(self._ahead + 1, _AHEAD_CAP)
        self._remember(entity.entity_id, (after, armed_after, now))
        self._run(_leased(write.outbox, ids))
        return result

    def _remember(
        self, entity_id: str, after: tuple[EntityRow, TimerRow | None, datetime] | None
    ) -> None:
        """Keep (or, ``None``, drop) the entity as ``send`` last wrote or read it; the
        entities written least recently go first."""
        with self._seen_lock:  # threads share the runtime: the eviction reads, then pops
            self._seen.pop(entity_id, None)  # to the end: written most recently
            if after is None:
                return
            if len(self._seen) >= _SEEN:
                del self._seen[next(iter(self._seen))]
            self._seen[entity_id] = after

    def _forget(self, entity_id: str) -> None:
        with self._seen_lock:
            self._seen.pop(entity_id, None)
            self._ahead -= _MISS_COST

    def enqueue(
        self, entity_id: str, event: str | Event, *, idempotency_key: str | None = None
    ) -> bool:
        """Record ``event`` without applying it: a worker's ``process_inbox`` (or the
        entity's next ``send``) does, in arrival order. ``False`` for a key seen before.
        Same keys and errors as :meth:`send`."""
        ev, key = _event_and_key(event, idempotency_key)
        with self._store.transaction() as tx:
            self._lock(tx, entity_id)  # the entity must exist; and ids follow lock order
            now = self._now(tx)
            _, added = tx.inbox_add(self.name, entity_id, key, ev.to_dict(), now)
        return added

    # -- the background halves: each safe in any number of processes at once ----------

    def process_inbox(self, limit: int = 100, *, should_stop: ShouldStop = _never) -> int:
        """Apply up to ``limit`` unprocessed events, entity by entity (each entity's in
        arrival order, in one transaction), then make the first attempt of the actions
        they wrote. How many events were applied. An entity whose event makes
        ``process`` raise is logged and left as it was (its events wait, in order)."""
        with self._store.transaction() as tx:
            pending = tx.inbox_pending(self.name, limit)
        done = 0
        for entity_id in dict.fromkeys(row.entity_id for row in pending):
            if done >= limit or should_stop():
                break
            try:
                with self._store.transaction() as tx:
                    got = self._receive(tx, entity_id, None)
                    now = self._now(tx, got.now)
                    results, leased = self._drain(
                        tx, got.entity, now, got.timer, limit=limit - done
                    )
            except Exception:
                log.exception("%s: entity %r: applying its events failed", self.name, entity_id)
                continue
            done += len(results)
            self._run(leased, should_stop)
        return done

    def dispatch_outbox(self, limit: int = 100, *, should_stop: ShouldStop = _never) -> int:
        """Claim up to ``limit`` due outbox rows (a lease of ``lease_seconds``) and run
        them, one after the other; how many were attempted. ``should_stop`` is asked
        before each: rows left unrun stay leased until :meth:`release` or the lease
        runs out."""
        # Lease bookkeeping only: a claim lost to a crash leaves the rows claimable again
        # (at least once allows the second run), so the commit need not wait for the disk.
        with self._store.transaction(durable=False) as tx:
            now = self._now(tx)
            rows = tx.outbox_claim(
                now=now, lease_until=now + self._lease, owner=self._worker_id, limit=limit
            )
        return self._run(rows, should_stop)

    def sweep_timers(self, limit: int = 100, *, should_stop: ShouldStop = _never) -> int:
        """Fire up to ``limit`` due timers: each is sent to its entity through the inbox
        (key ``timer:<name>:<generation>``) and applied in turn; how many were fired."""
        with self._store.transaction() as tx:
            due = tx.timers_due(self.name, self._now(tx), limit)
        fired = 0
        for timer in due:
            if should_stop():
                break
            try:
                added, leased = self._fire(timer)
            except Exception:
                log.exception("%s: entity %r: firing its timer failed", self.name, timer.entity_id)
                continue
            fired += added
            self._run(leased, should_stop)
        return fired

    def _fire(self, timer: TimerRow) -> tuple[bool, list[OutboxRow]]:
        with self._store.transaction() as tx:
            got = tx.receive(self.name, timer.entity_id, None, timer.name)
            if got is None:
                return False, []
            now = self._now(tx, got.now)
            current = got.timer
            if current is None or current.generation != timer.generation or current.due_at > now:
                return False, []  # re-armed or cancelled since we looked: not due any more
            key = _timer_key(timer.name, timer.generation)
            event = Event(TIMEOUT_TRIGGER, id=key)
            row, added = tx.inbox_add(self.name, timer.entity_id, key, event.to_dict(), now)
            if row.result is not None:
                # Fired and applied already, yet still armed: its firing must have been
                # recorded without the cancel. Drop it, or it would be due for ever.
                tx.timer_cancel(self.name, timer.entity_id, timer.name)
                return False, []
            _, leased = self._drain(tx, got.entity, now, current, until=row.id)
        return added, leased

    def release(self) -> int:
        """Give up every outbox lease this runtime holds (a worker stopping); how many."""
        with self._store.transaction() as tx:
            return tx.outbox_release(self._worker_id)

    def heartbeat(self, status: WorkerStatus) -> None:
        """Record this runtime's worker row (for ``statewise runtime status``)."""
        with self._store.transaction() as tx:
            now = self._now(tx)
            tx.worker_beat(
                WorkerRow(self._worker_id, os.getpid(), socket.gethostname(), status, now)
            )

    # -- replay ------------------------------------------------------------------------

    def replay(self, entity_id: str) -> ReplayReport:
        """Re-run the entity's history through the machine, from its creation, and say
        whether it reproduces every row and the stored state and version. Raises only
        :class:`EntityNotFoundError`; a machine that raises is reported as a mismatch."""
        with self._store.transaction() as tx:
            entity = tx.get_entity(self.name, entity_id)
            if entity is None:
                raise EntityNotFoundError(self.name, entity_id)
            rows = tx.history(self.name, entity_id)
        initial = self._machine.initial_state
        state, version = initial.name, 1
        armed = None if initial.timeout is None else 1
        mismatch: str | None = None
        for row in rows:
            try:
                state, version, armed, success = self._replay_row(
                    row, state, version, entity.context, armed
                )
                expected = (self._machine.resolve_state(row.to_state), row.version, row.success)
            except Exception as exc:
                mismatch = f"history #{row.seq}: {_error_text(exc)}"
                break
            if (state, version, success) != expected:
                mismatch = (
                    f"history #{row.seq}: replayed (state, version, success) "
                    f"{(state, version, success)}, stored {expected}"
                )
                break
        stored_state = entity.state
        if mismatch is None:
            try:
                stored_state = self._machine.resolve_state(entity.state)
            except Exception as exc:
                mismatch = f"stored state: {_error_text(exc)}"
        if mismatch is None and (state, version) != (stored_state, entity.version):
            mismatch = (
                f"replay ends in ({state}, {version}), the entity is stored as "
                f"({stored_state}, {entity.version})"
            )
        return ReplayReport(
            entity_id,
            mismatch is None,
            state,
            version,
            stored_state,
            entity.version,
            len(rows),
            mismatch,
        )

    def _replay_row(
        self,
        row: HistoryRow,
        state: str,
        version: int,
        context: Mapping[str, Any],
        armed: int | None,
    ) -> tuple[str, int, int | None, bool]:
        """One history row re-run: the state, version and armed timer generation after
        it, and whether it succeeded. ``armed`` stands in for the timer row."""
        event = Event.from_dict(row.event)
        result, _ = self._decide(_event_kind(event), state, event, context, armed)
        if not result.success or result.ignored:
            return state, version, armed, result.success
        version += 1
        if result.entered:
            armed = None if result.timeout is None else version
        return result.target_state, version, armed, True

    # -- the rules, inside a transaction -----------------------------------------------

    def _drain(
        self,
        tx: Tx,
        entity: EntityRow,
        now: datetime,
        armed: TimerRow | None,
        *,
        until: int | None = None,
        limit: int | None = None,
        first: InboxRow | None = None,
    ) -> tuple[dict[int, TransitionResult], list[OutboxRow]]:
        """Apply the locked entity's unprocessed events oldest first, up to and including
        inbox row ``until`` (or ``limit`` of them, or all); their results by inbox id,
        and the outbox rows written, leased to us. ``armed`` is the entity's timer as
        the transaction found it; ``first``, when given, is known to be the oldest
        unprocessed event (it is not looked up)."""
        results: dict[int, TransitionResult] = {}
        leased: list[OutboxRow] = []
        while limit is None or len(results) < limit:
            row = (
                first if first is not None else tx.inbox_first_pending(self.name, entity.entity_id)
            )
            first = None
            if row is None:
                break
            event = Event.from_dict(row.event)
            entity, armed, result, rows = self._apply(
                tx, entity, event, now, armed, key=row.key, inbox_id=row.id
            )
            results[row.id] = result
            leased += rows
            if row.id == until:
                break
        return results, leased

    def _apply(
        self,
        tx: Tx,
        entity: EntityRow,
        event: Event,
        now: datetime,
        armed: TimerRow | None,
        *,
        key: str,
        inbox_id: int | None = None,
        last: bool = False,
    ) -> tuple[EntityRow, TimerRow | None, TransitionResult, list[OutboxRow]]:
        """Decide one event of the locked entity and write all it changes in one
        ``write_event``: from the unprocessed inbox row ``inbox_id``, or (``None``) as
        a new inbox row under ``key``. The entity and its timer afterwards, the result,
        and the outbox rows written (leased to us). ``last``: nothing else follows in
        this transaction (``Tx.write_event``)."""
        after, armed, result, write = self._decide_write(
            entity, event, now, armed, key=key, inbox_id=inbox_id
        )
        ids = tx.write_event(write, last=last)
        return after, armed, result, _leased(write.outbox, ids)

    def _decide_write(
        self,
        entity: EntityRow,
        event: Event,
        now: datetime,
        armed: TimerRow | None,
        *,
        key: str,
        inbox_id: int | None = None,
    ) -> tuple[EntityRow, TimerRow | None, TransitionResult, EventWrite]:
        """Decide one event of ``entity`` (whose timer is ``armed``) at ``now``: the
        entity and its timer afterwards, the result, and everything to write (see
        :meth:`_apply`). Reads and writes nothing."""
        kind = _event_kind(event)
        generation = None if armed is None else armed.generation
        result, note = self._decide(kind, entity.state, event, entity.context, generation)
        applied = result.success and not result.ignored
        after = entity
        timer_set: TimerRow | None = None
        timer_cancel: str | None = None
        if applied:
            after = EntityRow(
                self.name,
                entity.entity_id,
                result.target_state,
                entity.context,
                entity.version + 1,
                now if result.entered else entity.entered_at,
            )
            if result.entered:
                if result.timeout is not None:
                    due = now + timedelta(seconds=result.timeout.seconds)
                    armed = timer_set = TimerRow(
                        self.name, entity.entity_id, TIMER, due, after.version
                    )
                elif armed is not None:
                    armed, timer_cancel = None, TIMER
        elif kind == "timer" and generation == _generation(key):
            # Fired for the state it was armed in, which has no timeout any more (the
            # spec changed): drop it, or it would stay due for ever.
            armed, timer_cancel = None, TIMER
        outbox = self._outbox(after, result, now) if applied else []
        event_dict = event.to_dict()
        event_json = dump_json(event_dict)
        result_dict, result_json = self._result_dict(
            result, (event_dict, event_json) if result.event is event else None
        )
        write = EventWrite(
            history=self._history_row(after, event_dict, result, note, now),
            result=result_dict,
            event_json=event_json,
            result_json=result_json,
            inbox_id=inbox_id,
            key=key,
            received_at=now,
            applied=applied,
            entered_at=now if applied and result.entered else None,
            outbox=outbox,
            timer_set=timer_set,
            timer_cancel=timer_cancel,
        )
        return after, armed, result, write

    def _decide(
        self,
        kind: Kind,
        state: str,
        event: Event,
        context: Mapping[str, Any],
        armed: int | None,
    ) -> tuple[TransitionResult, str | None]:
        """The result of one inbox event in ``state``, and why it was ignored when the
        event itself cannot say (a stale timer). Shared by the live path and replay."""
        machine = self._machine
        if kind == "timer":
            generation = _generation(event.id or "")
            if armed != generation:
                why = (
                    f"stale timer: generation {generation}, the entity's timer is "
                    f"{'cancelled' if armed is None else f'at generation {armed}'}"
                )
                return _ignored(machine.resolve_state(state), event), why
            fired = machine.timeout_result(state, event_id=event.id)
            if fired is None:
                return _ignored(machine.resolve_state(state), event), (
                    f"stale timer: state {state!r} has no timeout"
                )
            return fired, None
        if kind == "fallback":
            if machine.definition.error_policy.default_fallback is None:
                return _ignored(machine.resolve_state(state), event), "no default_fallback"
            failed = machine.fail(state, str(event.payload.get("error", "")), event_id=event.id)
            # The stored event (with the failure's error_type) is the result's event.
            return TransitionResult(failed.decision, event), None
        return machine.process(state, event, context), None

    def _outbox(
        self, entity: EntityRow, result: TransitionResult, now: datetime
    ) -> list[OutboxRow]:
        """The result's actions as outbox rows (ids to come), leased to us so that the
        first attempt is ours."""
        if not result.all_actions:
            return []
        # What the action reads later, without the event: the context over the payload.
        payload = result.event.payload
        context = {**thaw(payload), **entity.context} if payload else entity.context
        prefix = f"{self.name}:{entity.entity_id}:{entity.version}"
        return [
            OutboxRow(
                id=0,
                key=f"{prefix}:{seq}",
                machine=self.name,
                entity_id=entity.entity_id,
                action=self._action_dict(call),
                context=context,
                status="pending",
                attempts=0,
                next_attempt_at=now,
                lease_owner=self._worker_id,
                lease_until=now + self._lease,
                last_error=None,
            )
            for seq, call in enumerate(result.all_actions)
        ]

    def _action_dict(self, call: ActionCall) -> dict[str, Any]:
        found = self._action_dicts.get(call)
        if found is None:
            found = self._action_dicts[call] = _action_dict(call)
            self._known_actions[id(found)] = (found, call)
        return found

    def _action_call(self, action: dict[str, Any]) -> ActionCall:
        known = self._known_actions.get(id(action))
        if known is not None and known[0] is action:
            return known[1]
        return ActionCall.from_spec(action)

    def _result_dict(
        self, result: TransitionResult, event: tuple[dict[str, Any], str] | None
    ) -> tuple[dict[str, Any], str | None]:
        """``result.to_dict()`` and, when its event's dict and JSON are given
        (``event``), ``dump_json`` of it; both built from the decision's part made once
        (dict and JSON text): most events repeat a decision the machine made before,
        and the result's JSON is the biggest an event writes."""
        decision = result.decision
        known = self._decision_dicts.get(id(decision))
        if known is None or known[0] is not decision:
            if len(self._decision_dicts) >= _DECISION_DICTS:
                self._decision_dicts.clear()  # bounded, whatever the machine shares
            full = result.to_dict()
            del full["event"]
            # Its JSON without the closing brace: the event goes last, as in the dict.
            opened = dump_json(full)[:-1] + ("," if full else "")
            known = self._decision_dicts[id(decision)] = (decision, full, opened)
        if event is None:
            return {**known[1], "event": result.event.to_dict()}, None
        event_dict, event_json = event
        return {**known[1], "event": event_dict}, f'{known[2]}"event":{event_json}}}'

    def _history_row(
        self,
        after: EntityRow,
        event: dict[str, Any],
        result: TransitionResult,
        note: str | None,
        now: datetime,
    ) -> HistoryRow:
        applied = result.success and not result.ignored
        error = result.error
        return HistoryRow(
            machine=self.name,
            entity_id=after.entity_id,
            seq=0,  # the next one, numbered by the store in the insert
            version=after.version,
            event=event,
            from_state=result.source_state,
            to_state=result.target_state if applied else result.source_state,
            success=result.success,
            error=note if error is None else str(error),
            actions=list(result.action_names) if applied else [],
            at=now,
        )

    def _lock(self, tx: Tx, entity_id: str) -> EntityRow:
        entity = tx.lock_entity(self.name, entity_id)
        if entity is None:
            raise EntityNotFoundError(self.name, entity_id)
        return entity

    def _receive(self, tx: Tx, entity_id: str, key: str | None) -> Received:
        got = tx.receive(self.name, entity_id, key, TIMER)
        if got is None:
            raise EntityNotFoundError(self.name, entity_id)
        return got

    def _now(self, tx: Tx, store_now: datetime | None = None) -> datetime:
        """The clock's time, else ``store_now`` when the store read it already, else
        the transaction's; always aware."""
        if self._clock is not None:
            return _aware(self._clock())
        return _aware(tx.now() if store_now is None else store_now)

    def _info(self, row: EntityRow, deadlines: Mapping[str, datetime]) -> EntityInfo:
        return EntityInfo(
            self.name,
            row.entity_id,
            self._machine.resolve_state(row.state),
            deep_freeze(row.context),
            row.version,
            row.entered_at,
            FrozenDict(deadlines),
        )

    # -- acting, outside any transaction ----------------------------------------------

    def _run(self, rows: Iterable[OutboxRow], should_stop: ShouldStop = _never) -> int:
        ran = 0
        for row in rows:
            if should_stop():
                break
            self._attempt(row)
            ran += 1
        return ran

    def _attempt(self, row: OutboxRow) -> None:
        """Run one leased row, then record what happened, if the lease is still ours."""
        call = self._action_call(row.action)
        error = self._call(call, row)
        if error is None:
            # A lost ack only makes the action run again, which at least once allows:
            # no wait for the disk. Without a clock of our own, the store's (no read).
            at = None if self._clock is None else _aware(self._clock())
            self._store.ack_later(row.id, self._worker_id, at)  # see statewise.runtime.acks
            return
        leased: list[OutboxRow] = []
        with self._store.transaction() as tx:
            now = self._now(tx)
            attempts = row.attempts + 1
            retry: Retry = call.retry if call.retry is not None else self._default_retry
            text = _error_text(error)
            if attempts <= retry.attempts:
                delay = retry.delay(attempts)
                wait = delay / 2 + self._random.uniform(0.0, delay / 2)  # equal jitter
                tx.outbox_retry(
                    row.id,
                    self._worker_id,
                    attempts=attempts,
                    next_attempt_at=now + timedelta(seconds=wait),
                    error=text,
                )
                return
            fallback = self._machine.definition.error_policy.default_fallback is not None
            # The entity first, as everywhere: one lock order, no deadlock.
            got = tx.receive(self.name, row.entity_id, None, TIMER) if fallback else None
            if not tx.outbox_dead(row.id, self._worker_id, attempts=attempts, error=text):
                return
            log.warning("%s: action %s (%s) is dead: %s", self.name, row.key, call.name, text)
            if got is not None:
                key = row.key + _FALLBACK_SUFFIX
                payload = {"error": str(error), "error_type": type(error).__name__}
                event = Event(ERROR_TRIGGER, payload, key)
                inbox, _ = tx.inbox_add(self.name, row.entity_id, key, event.to_dict(), now)
                _, leased = self._drain(tx, got.entity, now, got.timer, until=inbox.id)
        self._run(leased)

    def _call(self, call: ActionCall, row: OutboxRow) -> Exception | None:
        entry = self._actions.get(call.name)
        if entry is None:  # a row written under another spec or registry
            return LookupError(f"action {call.name!r} is not registered")
        kwargs = dict(call.params)
        if entry.takes_idempotency_key:
            kwargs[IDEMPOTENCY_KEY] = row.key
        try:
            value = entry.fn(context_view(row.context, None), **kwargs)
        except Exception as exc:  # an action's failure is an outcome; BaseException is not
            return exc
        if inspect.isawaitable(value):
            close = getattr(value, "close", None)
            if close is not None:  # a coroutine dropped unawaited would warn when collected
                close()
            return TypeError(f"action {call.name!r} returned an awaitable")
        return None

    def __repr__(self) -> str:
        return f"Runtime({self.name!r}, {self._store.url!r}, worker_id={self._worker_id!r})"


def _leased(rows: Sequence[OutboxRow], ids: Sequence[int]) -> list[OutboxRow]:
    """The outbox rows as written: with the ids the store gave them."""
    return [
        OutboxRow(
            row_id,
            r.key,
            r.machine,
            r.entity_id,
            r.action,
            r.context,
            r.status,
            r.attempts,
            r.next_attempt_at,
            r.lease_owner,
            r.lease_until,
            r.last_error,
        )
        for r, row_id in zip(rows, ids, strict=True)
    ]


def _calls(machine: Machine) -> Iterable[ActionCall]:
    return (call for _, call in action_uses(machine.definition))


def _event_kind(event: Event) -> Kind:
    """What a history row's event is: the runtime's own events say so by their ids,
    which regular events may not have (see :func:`_event_and_key`)."""
    if event.trigger == TIMEOUT_TRIGGER and (event.id or "").startswith(_TIMER_PREFIX):
        return "timer"
    if event.trigger == ERROR_TRIGGER and (event.id or "").endswith(_FALLBACK_SUFFIX):
        return "fallback"
    return "event"


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"the clock gave a naive datetime {now!r}: it must be aware")
    return now


def _generation(key: str) -> int:
    return int(key.rsplit(":", 1)[1])


def _ignored(state: str, event: Event) -> TransitionResult:
    return make_result(Decision.ignored_event(state, event.trigger), event)


def _event_and_key(event: str | Event, idempotency_key: str | None) -> tuple[Event, str]:
    ev = Event(event) if isinstance(event, str) else event
    if not isinstance(ev, Event):
        raise TypeError(f"event must be a trigger name or an Event, got {type(event).__name__}")
    key = idempotency_key if idempotency_key is not None else ev.id
    if not key:
        raise ValueError(
            f"event {ev.trigger!r} needs an idempotency key: give the Event an id or pass "
            "idempotency_key="
        )
    for what, value in (("idempotency key", key), ("event id", ev.id or "")):
        if value.startswith(_TIMER_PREFIX) or value.endswith(_FALLBACK_SUFFIX):
            raise ValueError(
                f"{what} {value!r} is reserved: keys and ids starting with "
                f"{_TIMER_PREFIX!r} or ending with {_FALLBACK_SUFFIX!r} are the runtime's own"
            )
    if ev.payload:
        _check_json(ev.payload, "the event payload")  # the inbox keeps JSON
    return ev, key
