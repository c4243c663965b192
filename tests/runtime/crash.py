"""The crash harness: workers killed with SIGKILL while events flow, then every guarantee
checked. ``run_crash_test(store_url, workers=..., entities=..., events=..., seed=...)``.

What one run does:

1. creates ``entities`` entities of the crash machine (:data:`SPEC`) in the store and
   starts ``workers`` worker processes (the real ``statewise worker`` command, with the
   actions of :mod:`tests.runtime.crash_actions`, which record every effect durably in
   a separate SQLite file, keyed by idempotency key, with a count and the pid);
2. feeds ``events`` events per entity from this process (each entity's events in
   order, entities interleaved at random), and after a share ``duplicate_share`` of
   deliveries redelivers a random earlier event under the same idempotency key. Every
   ``send_every``-th event of an entity (and its redeliveries) goes through
   ``Runtime.send``, which applies it here, at once, racing the workers for the entity
   (and mostly deciding ahead of the lock, from the entity as this process last wrote
   it, which the workers keep changing); the others go into the inbox with
   ``Runtime.enqueue``. The workers apply those (``process_inbox``) and make the first
   attempt of their actions. The machine has a state with a timeout, so timers are
   armed, fire, go stale and are cancelled all along;
3. meanwhile kills a random worker with SIGKILL every ``kill_every`` seconds (drawn
   uniformly) and starts a new one in its place, until the feeding is over and the
   inbox is empty;
4. drains: no more kills; waits until no event is unprocessed, no outbox row is pending
   (the dead workers' leases expire) and no timer is armed; stops the workers;
5. checks, from the store and the effects file:

   * replaying every entity's history reproduces its stored state and version
     (``Runtime.replay``), and the history is consistent on its own: rows numbered
     1..n, each starting where the previous ended, each regular event decided as
     ``machine.process`` decides it, each timer firing applied exactly when its
     generation is still the armed one (else recorded as stale, changing nothing);
   * no event applied twice (an event id appears in an entity's history at most once)
     and none lost (every event fed is in the history);
   * every action of every applied event has an outbox row, every outbox row is done,
     and every done row's key has an effect (zero effects lost), and no effect exists
     without its outbox row;
   * an effect applied more than once only where a kill landed between the action and
     its ack: every application but the last came from a process killed afterwards;
   * nothing left pending (inbox, outbox, timers) and no action dead.

Everything it finds goes into the :class:`CrashReport` it returns: counts, and
``problems()`` naming every guarantee broken. It never raises for a broken guarantee
(only when the harness itself cannot go on); the test asserts on the report.

Run it by hand: ``python -m tests.runtime.crash URL [--workers N] [--entities N]
[--events N] [--seed N]`` (exit status 1 when a guarantee is broken).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from statewise import Event, StateMachine, TransitionResult
from statewise.runtime.runtime import TIMER, Runtime
from statewise.runtime.store import HistoryRow, Store
from statewise.runtime.urls import open_store, redact
from tests.runtime.crash_actions import EFFECTS_ENV, open_effects, registry

__all__ = ["SPEC", "CrashReport", "run_crash_test"]

ROOT = Path(__file__).resolve().parents[2]
ACTIONS = "tests.runtime.crash_actions:registry"
TIMEOUT_SECONDS = 0.25
# Lease on an outbox row: a killed worker's rows are handed out again after this long.
# Short, so draining after the last kill is quick; long enough that a live worker on a
# busy two-core machine acks well within it (an expired lease on a live worker would be
# a duplicate no kill explains, and the check would say so).
LEASE_SECONDS = 5.0
SEND_ATTEMPTS = 50
IDLE_MAX = 0.2  # seconds an idle worker naps at most

# The crash machine. Every trigger but ``settle`` is accepted in every state, so most
# events apply; ``settle`` only applies in AMBER, which only a timer firing reaches: the
# interleaving of events and timers decides it, and rejected events are recorded too.
# Every transition runs actions (exit, transition, timeout, enter), so every applied
# event and every firing leaves outbox rows.
SPEC: dict[str, Any] = {
    "meta": {"machine_name": "crash", "strict_mode": True},
    "states": [
        {"name": "NEW", "type": "initial"},
        {"name": "RED", "on_enter": ["effect"]},
        {
            "name": "GREEN",
            "on_exit": ["effect"],
            "timeout": {
                "seconds": TIMEOUT_SECONDS,
                "destination": "AMBER",
                "actions": ["effect"],
            },
        },
        {"name": "AMBER", "on_enter": ["effect"]},
    ],
    "transitions": [
        {"trigger": "red", "source": "*", "dest": "RED", "actions": ["effect"]},
        {"trigger": "green", "source": "*", "dest": "GREEN", "actions": ["effect"]},
        {"trigger": "note", "source": "*", "actions": ["effect"]},
        {"trigger": "settle", "source": "AMBER", "dest": "RED", "actions": ["effect"]},
    ],
}
TRIGGERS = ("red", "green", "green", "note", "settle")  # green twice: more timers


def crash_machine() -> StateMachine:
    return StateMachine.from_dict(SPEC)


@dataclass
class CrashReport:
    """What one crash run did and found. ``problems()`` lists each broken guarantee."""

    store: str
    workers: int
    entities: int
    events_per_entity: int
    seed: int
    events_fed: int = 0
    duplicate_deliveries: int = 0
    duplicates_recognized: int = 0  # redeliveries the inbox refused (enqueue said False,
    # or send returned the first delivery's result)
    sent: int = 0  # deliveries through Runtime.send (the rest: enqueue)
    send_retries: int = 0  # deliveries that raised (e.g. a busy database) and were repeated
    kills: int = 0
    restarts: int = 0
    unexpected_exits: list[str] = field(default_factory=list)
    history_rows: int = 0
    applied: int = 0
    rejected: int = 0
    timer_firings: int = 0
    stale_timers: int = 0
    replayed: int = 0
    replay_mismatches: list[str] = field(default_factory=list)
    history_problems: list[str] = field(default_factory=list)
    applied_twice: list[str] = field(default_factory=list)
    missing_events: list[str] = field(default_factory=list)
    outbox_rows: int = 0
    outbox_done: int = 0
    outbox_pending: int = 0
    outbox_dead: int = 0
    outbox_missing: list[str] = field(default_factory=list)  # actions committed, no row
    effects: int = 0  # distinct keys with an effect
    effect_applications: int = 0
    effects_lost: list[str] = field(default_factory=list)
    phantom_effects: list[str] = field(default_factory=list)
    duplicate_effects: int = 0  # applications beyond the first
    duplicates_explained: int = 0
    duplicates_unexplained: list[str] = field(default_factory=list)
    inbox_pending: int = 0  # entities with an event still unprocessed
    timers_armed: int = 0
    drained: bool = False
    feed_seconds: float = 0.0
    drain_seconds: float = 0.0
    total_seconds: float = 0.0

    def problems(self) -> list[str]:
        """One line per broken guarantee; empty when every one held."""
        out: list[str] = []

        def some(items: Sequence[str]) -> str:
            return ", ".join(items[:5]) + (f", ... ({len(items)} in all)" if len(items) > 5 else "")

        if not self.drained:
            out.append("the run did not drain within its time limit")
        if self.unexpected_exits:
            out.append(f"workers exited without being killed: {some(self.unexpected_exits)}")
        if self.replay_mismatches:
            out.append(
                f"replay does not reproduce the stored entity: {some(self.replay_mismatches)}"
            )
        if self.history_problems:
            out.append(f"history inconsistent: {some(self.history_problems)}")
        if self.applied_twice:
            out.append(f"events applied twice: {some(self.applied_twice)}")
        if self.missing_events:
            out.append(f"events fed but never applied: {some(self.missing_events)}")
        if self.outbox_missing:
            out.append(f"committed actions with no outbox row: {some(self.outbox_missing)}")
        if self.effects_lost:
            out.append(f"effects lost (outbox key never acted on): {some(self.effects_lost)}")
        if self.phantom_effects:
            out.append(f"effects with no outbox row: {some(self.phantom_effects)}")
        if self.duplicates_unexplained:
            out.append(
                "effects repeated with no kill between the action and its ack: "
                f"{some(self.duplicates_unexplained)}"
            )
        pending = (self.inbox_pending, self.outbox_pending, self.timers_armed, self.outbox_dead)
        if any(pending):
            out.append(
                f"left pending: inbox {pending[0]}, outbox {pending[1]}, timers {pending[2]}; "
                f"dead actions {pending[3]}"
            )
        if self.duplicate_deliveries != self.duplicates_recognized:
            out.append(
                f"{self.duplicate_deliveries} redeliveries, only {self.duplicates_recognized} "
                "answered with the first delivery's result"
            )
        return out

    @property
    def ok(self) -> bool:
        return not self.problems()

    def summary(self) -> str:
        """The counts, as the test prints them."""
        lines = [
            f"crash test: {self.store}, {self.workers} workers, {self.entities} entities x "
            f"{self.events_per_entity} events, seed {self.seed}",
            f"  fed {self.events_fed} events + {self.duplicate_deliveries} duplicate deliveries "
            f"({self.duplicates_recognized} recognized) in {self.feed_seconds:.1f} s, "
            f"{self.sent} of them by send; {self.send_retries} retried",
            f"  killed {self.kills} workers with SIGKILL, started {self.restarts} in their place; "
            f"unexpected exits {len(self.unexpected_exits)}",
            f"  history {self.history_rows} rows: {self.applied} events applied, "
            f"{self.rejected} rejected, {self.timer_firings} timers fired, {self.stale_timers} "
            f"stale; replay matches "
            f"{self.replayed - len(self.replay_mismatches)} of {self.replayed} entities",
            f"  events applied twice {len(self.applied_twice)}, fed but missing "
            f"{len(self.missing_events)}, history problems {len(self.history_problems)}",
            f"  outbox {self.outbox_rows} rows: {self.outbox_done} done, {self.outbox_pending} "
            f"pending, {self.outbox_dead} dead; committed actions without a row "
            f"{len(self.outbox_missing)}",
            f"  effects {self.effects} keys, {self.effect_applications} applications: lost "
            f"{len(self.effects_lost)}, phantom {len(self.phantom_effects)}, duplicates "
            f"{self.duplicate_effects} ({self.duplicates_explained} after a kill between "
            f"action and ack, {len(self.duplicates_unexplained)} unexplained)",
            f"  left pending: inbox {self.inbox_pending}, outbox {self.outbox_pending}, timers "
            f"{self.timers_armed}; drained in {self.drain_seconds:.1f} s, total "
            f"{self.total_seconds:.1f} s",
        ]
        problems = self.problems()
        lines.append("  OK: every guarantee held" if not problems else "  BROKEN:")
        lines += [f"    - {p}" for p in problems]
        return "\n".join(lines)


# -- workers ------------------------------------------------------------------------


@dataclass
class _Pool:
    """The worker processes: started, killed and replaced, their exits accounted for."""

    argv: list[str]
    env: dict[str, str]
    logs: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    kills: list[tuple[int, float]] = field(default_factory=list)  # (pid, time dead)
    started: int = 0
    unexpected: list[str] = field(default_factory=list)
    log_of: dict[int, Path] = field(default_factory=dict)

    def start(self) -> None:
        self.started += 1
        path = self.logs / f"worker-{self.started}.log"
        with path.open("wb") as log:
            proc = subprocess.Popen(
                self.argv, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
            )
        self.procs.append(proc)
        self.log_of[proc.pid] = path

    def kill_one(self, rng: random.Random, working: set[int]) -> None:
        """SIGKILL one worker, drawn among those already at work (``working``: pids with
        a heartbeat), so the kill lands in a transaction or an action rather than in
        Python's start-up; any worker when none is at work yet. Then start another."""
        at_work = [p for p in self.procs if p.pid in working]
        proc = rng.choice(at_work or self.procs)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # Stamped once the process is gone: every effect it recorded is earlier.
        self.kills.append((proc.pid, time.time()))
        self.procs.remove(proc)
        self.start()

    def pids(self) -> set[int]:
        return {p.pid for p in self.procs}

    def reap(self) -> None:
        """Replace workers that exited on their own (each one is a problem to report)."""
        for proc in list(self.procs):
            code = proc.poll()
            if code is not None:
                self.procs.remove(proc)
                self.unexpected.append(f"pid {proc.pid} exit {code} ({self._tail(proc.pid)})")
                self.start()

    def _tail(self, pid: int) -> str:
        """The last line the worker wrote: what it died of."""
        lines = self.log_of[pid].read_text(errors="replace").strip().splitlines()
        return lines[-1][-200:] if lines else "no output"

    def stop(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()


def worker_argv(spec_path: Path, store_url: str) -> list[str]:
    """One worker process: the ``statewise worker`` command, with the crash actions, a
    short lease and a short idle nap (so the drain does not wait on sleeping workers)."""
    return [
        sys.executable,
        "-m",
        "statewise",
        "worker",
        "--spec",
        str(spec_path),
        "--store",
        store_url,
        "--actions",
        ACTIONS,
        "--lease-seconds",
        str(LEASE_SECONDS),
        "--idle-max",
        str(IDLE_MAX),
        "--heartbeat-seconds",
        "1",
    ]


# -- feeding ------------------------------------------------------------------------


@dataclass
class _Feed:
    """The deliveries, in order: (entity, key, trigger, index); redeliveries repeat one."""

    deliveries: list[tuple[str, str, str, int]]
    fed: dict[str, list[str]]  # entity -> its event keys, in order
    duplicates: int


def plan_feed(entity_ids: Sequence[str], events: int, share: float, rng: random.Random) -> _Feed:
    """Each entity's ``events`` events in order, entities interleaved at random, and after
    any delivery, with probability ``share``, a redelivery of a random earlier one."""
    order = [e for e in entity_ids for _ in range(events)]
    rng.shuffle(order)
    counters: Counter[str] = Counter()
    deliveries: list[tuple[str, str, str, int]] = []
    fed: dict[str, list[str]] = defaultdict(list)
    duplicates = 0
    for entity in order:
        i = counters[entity]
        counters[entity] += 1
        key = f"{entity}-e{i}"
        item = (entity, key, rng.choice(TRIGGERS), i)
        deliveries.append(item)
        fed[entity].append(key)
        if rng.random() < share:
            deliveries.append(rng.choice(deliveries))
            duplicates += 1
    return _Feed(deliveries, dict(fed), duplicates)


def _feed(
    runtime: Runtime,
    feed: _Feed,
    rate: float,
    send_every: int,
    report: CrashReport,
    errors: list[BaseException],
) -> None:
    """Deliver every event at about ``rate`` per second: every ``send_every``-th of an
    entity with ``send`` (0: none), the others with ``enqueue`` for the workers. A
    delivery that raises (a busy database, say) is repeated with the same key, as a
    producer does after a timeout: the inbox makes that safe."""
    try:
        seen: set[str] = set()
        first: dict[str, TransitionResult] = {}
        start = time.monotonic()
        for n, (entity, key, trigger, i) in enumerate(feed.deliveries):
            ahead = start + n / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
            event = Event(trigger, {"i": i}, id=key)
            by_send = send_every > 0 and i % send_every == send_every - 1
            for attempt in range(SEND_ATTEMPTS):
                try:
                    if by_send:
                        result = runtime.send(entity, event, idempotency_key=key)
                        # Recognized: answered with the first delivery's result (and
                        # _check finds a second application whatever it returned).
                        recognized = first.setdefault(key, result) == result
                    else:
                        recognized = not runtime.enqueue(entity, event, idempotency_key=key)
                    break
                except Exception:
                    if attempt == SEND_ATTEMPTS - 1:
                        raise
                    report.send_retries += 1
                    time.sleep(0.05)
            report.sent += by_send
            if key in seen:
                report.duplicates_recognized += recognized
            seen.add(key)
    except BaseException as exc:
        errors.append(exc)


# -- draining and checking -----------------------------------------------------------


def _pending(store: Store, machine: str, entity_ids: Sequence[str]) -> tuple[int, int, int]:
    """(entities with an unprocessed event, pending outbox rows, armed timers).

    Entity by entity with ``inbox_first_pending`` and ``timer_get``, not with
    ``inbox_pending`` / ``timers_due``: those pass over rows another transaction has
    locked (PostgreSQL: SKIP LOCKED), so a worker busy with an entity or firing its
    timer would make its work look done."""
    with store.transaction() as tx:
        inbox = sum(tx.inbox_first_pending(machine, e) is not None for e in entity_ids)
        outbox = len(tx.outbox_rows(status="pending", machine=machine))
        timers = sum(tx.timer_get(machine, e, TIMER) is not None for e in entity_ids)
    return inbox, outbox, timers


def _check_history(
    machine: StateMachine, entity: str, rows: list[HistoryRow], report: CrashReport
) -> tuple[str, int]:
    """Re-derive the entity from its history with the machine alone, without the
    runtime's replay: from the initial state at version 1 (``create``), rows numbered
    1..n, each starting where the last ended, each event decided as ``machine.process``
    decides it, each timer firing applied exactly when its generation is the armed one
    (the version that entered the state), versions counting applied rows. Returns the
    (state, version) it ends in."""
    state, version, armed = machine.initial_state.name, 1, None
    for n, row in enumerate(rows, start=1):
        where = f"{entity}#{row.seq}"
        kind = _kind(row.event)
        if row.seq != n:
            report.history_problems.append(f"{where}: expected seq {n}")
        if row.from_state != state:
            report.history_problems.append(f"{where}: starts in {row.from_state}, not {state}")
        target, entered, success, applied = state, False, True, False
        if kind == "event":
            result = machine.process(state, Event.from_dict(row.event))
            success, applied = result.success, result.success and not result.ignored
            target, entered = result.target_state, result.entered
        elif kind == "timer":
            timeout = machine.get_state(state).timeout
            if timeout is not None and armed == _generation(row.event):
                target, entered, applied = timeout.destination, True, True
        else:  # the crash actions never fail, so no fallback is ever sent
            report.history_problems.append(f"{where}: unexpected {kind} event")
        if applied:
            version += 1
            state = target
            if entered:
                armed = version if machine.get_state(state).timeout is not None else None
        got = (row.to_state, row.version, row.success)
        if got != (state, version, success):
            report.history_problems.append(
                f"{where}: {row.from_state} --{row.event.get('trigger')}--> "
                f"(state, version, success) {got}, the machine says {(state, version, success)}"
            )
    return state, version


def _kind(event: dict[str, Any]) -> str:
    """What a history row's event is: the runtime's own events say so by their ids."""
    event_id = str(event.get("id") or "")
    if event_id.startswith("timer:"):
        return "timer"
    if event_id.endswith(":fallback"):
        return "fallback"
    return "event"


def _generation(event: dict[str, Any]) -> int:
    # timer:<name>:<generation>, the generation being the version that armed it
    return int(str(event["id"]).rsplit(":", 1)[1])


def _check(
    runtime: Runtime,
    store: Store,
    machine: StateMachine,
    feed: _Feed,
    effects_path: Path,
    kills: list[tuple[int, float]],
    report: CrashReport,
) -> None:
    name = machine.name
    expected_rows: dict[tuple[str, int], int] = {}  # (entity, version) -> actions committed
    for entity, keys in feed.fed.items():
        replay = runtime.replay(entity)
        report.replayed += 1
        with store.transaction() as tx:
            stored = tx.get_entity(name, entity)
            rows = tx.history(name, entity)
        if stored is None:
            report.replay_mismatches.append(f"{entity}: not stored")
            continue
        if not replay.matches or (replay.state, replay.version) != (stored.state, stored.version):
            report.replay_mismatches.append(
                f"{entity}: stored {stored.state} v{stored.version}, replay {replay.state} "
                f"v{replay.version} (matches={replay.matches})"
            )
        derived = _check_history(machine, entity, rows, report)
        if derived != (stored.state, stored.version):
            report.history_problems.append(
                f"{entity}: the history leads to {derived}, stored {(stored.state, stored.version)}"
            )
        report.history_rows += len(rows)
        ids: Counter[str] = Counter()
        for row in rows:
            kind = _kind(row.event)
            # Every event the runtime records has an id: ours (the key), or its own.
            ids[str(row.event.get("id"))] += 1
            if kind == "event":
                report.applied += row.success
                report.rejected += not row.success
            elif kind == "timer":
                # A stale firing (the state was left or re-entered since) is recorded
                # and changes nothing: the version stays.
                fired = row.from_state != row.to_state or row.actions
                report.timer_firings += bool(fired)
                report.stale_timers += not fired
            if row.success and row.actions:
                expected_rows[(entity, row.version)] = len(row.actions)
        report.applied_twice += [f"{entity}/{k} x{c}" for k, c in ids.items() if c > 1]
        report.missing_events += [f"{entity}/{k}" for k in keys if k not in ids]

    with store.transaction() as tx:
        outbox = tx.outbox_rows(machine=name)
    report.outbox_rows = len(outbox)
    status = Counter(ob.status for ob in outbox)
    report.outbox_done, report.outbox_pending = status["done"], status["pending"]
    report.outbox_dead = status["dead"]
    per_version: Counter[tuple[str, int]] = Counter()
    for ob in outbox:
        # machine:entity:version:seq; the version names the commit that wrote the row.
        per_version[(ob.entity_id, int(ob.key.rsplit(":", 2)[1]))] += 1
    for (entity, version), count in expected_rows.items():
        if per_version[(entity, version)] != count:
            report.outbox_missing.append(
                f"{entity} v{version}: {count} actions, {per_version[(entity, version)]} rows"
            )

    with closing(open_effects(effects_path)) as conn:
        counts = dict(conn.execute("SELECT key, count FROM effects").fetchall())
        applications: dict[str, list[tuple[float, int]]] = defaultdict(list)
        for key, pid, at in conn.execute("SELECT key, pid, at FROM applications ORDER BY at"):
            applications[key].append((at, pid))
    report.effects = len(counts)
    report.effect_applications = sum(counts.values())
    # Lost: an outbox key no action ever recorded (done or not: after the drain every
    # row should be done, and a row still pending is reported as pending too).
    report.effects_lost = sorted(ob.key for ob in outbox if ob.key not in counts)
    outbox_keys = {ob.key for ob in outbox}
    report.phantom_effects = sorted(k for k in counts if k not in outbox_keys)
    killed: dict[int, float] = dict(kills)
    for key, apps in applications.items():
        if len(apps) < 2:
            continue
        report.duplicate_effects += len(apps) - 1
        for (at, pid), (again, _) in itertools.pairwise(apps):
            # The process that acted was killed afterwards: it died between the action
            # and its ack, so the row was leased again and the action repeated.
            if pid in killed and killed[pid] >= at:
                report.duplicates_explained += 1
            else:
                # The gap says which: under the lease, two claimers held the row at once
                # (a bug); over it, a live worker stalled past its lease.
                report.duplicates_unexplained.append(
                    f"{key} (pid {pid}, not killed; repeated {again - at:.2f} s later)"
                )


# -- the run ---------------------------------------------------------------------------


def run_crash_test(
    store_url: str,
    *,
    workers: int,
    entities: int,
    events: int,
    kill_every: tuple[float, float] = (0.2, 0.8),
    duplicate_share: float = 0.05,
    seed: int,
    feed_rate: float = 100.0,
    send_every: int = 2,
    drain_timeout: float = 60.0,
    workdir: Path | None = None,
) -> CrashReport:
    """Run the crash test against the (migrated, empty) store at ``store_url``; see the
    module docstring. ``feed_rate`` paces the feeding (deliveries per second), so kills
    land while events are being applied rather than after a burst; every
    ``send_every``-th event of an entity is sent rather than enqueued (0: none);
    ``workdir`` keeps the spec, the effects file and the workers' logs (a temporary
    directory if unset).
    Returns the report; never raises for a broken guarantee."""
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="statewise-crash-") as tmp:
            return run_crash_test(
                store_url,
                workers=workers,
                entities=entities,
                events=events,
                kill_every=kill_every,
                duplicate_share=duplicate_share,
                seed=seed,
                feed_rate=feed_rate,
                send_every=send_every,
                drain_timeout=drain_timeout,
                workdir=Path(tmp),
            )
    began = time.monotonic()
    rng = random.Random(seed)
    report = CrashReport(redact(store_url), workers, entities, events, seed)
    machine = crash_machine()
    spec_path = workdir / "crash.json"
    spec_path.write_text(json.dumps(SPEC), encoding="utf-8")
    effects_path = workdir / "effects.db"
    open_effects(effects_path).close()
    env = {**os.environ, EFFECTS_ENV: str(effects_path), "PYTHONPATH": str(ROOT)}

    ids = [f"ent{n:05d}" for n in range(entities)]
    feed = plan_feed(ids, events, duplicate_share, rng)
    report.events_fed = entities * events
    report.duplicate_deliveries = feed.duplicates

    # The sends run their actions here, in the feeder's thread: they record there too.
    with (
        _environ(EFFECTS_ENV, str(effects_path)),
        _stores(store_url, 2) as (
            feeder_store,
            checker_store,
        ),
    ):
        feeder = Runtime(machine, feeder_store, actions=registry, lease_seconds=LEASE_SECONDS)
        checker = Runtime(machine, checker_store, actions=registry, lease_seconds=LEASE_SECONDS)
        for entity in ids:
            feeder.create(entity, context={})
        pool = _Pool(worker_argv(spec_path, store_url), env, workdir)
        try:
            for _ in range(workers):
                pool.start()
            # Feed once every worker is at work: on a busy machine starting Python takes
            # seconds, and events fed meanwhile would pile up and be applied in a burst.
            deadline = time.monotonic() + drain_timeout
            while len(_working(checker_store) & pool.pids()) < workers:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the workers did not start within {drain_timeout} s")
                pool.reap()
                time.sleep(0.1)
            errors: list[BaseException] = []
            thread = threading.Thread(
                target=_feed,
                args=(feeder, feed, feed_rate, send_every, report, errors),
                daemon=True,
            )
            fed_from = time.monotonic()
            thread.start()
            # Kill while events are being sent and applied: until the feeder is done and
            # the inbox is empty (bounded, should a worker never get to it).
            kill_until = fed_from + len(feed.deliveries) / feed_rate + drain_timeout
            next_kill = time.monotonic() + rng.uniform(*kill_every)
            next_look = 0.0
            while time.monotonic() < kill_until:
                time.sleep(max(0.0, min(0.05, next_kill - time.monotonic())))
                pool.reap()
                if not thread.is_alive() and time.monotonic() >= next_look:
                    if not report.feed_seconds:
                        report.feed_seconds = time.monotonic() - fed_from
                    if errors or _pending(checker_store, machine.name, ids)[0] == 0:
                        break
                    # Looking takes the write lock on SQLite: not too often.
                    next_look = time.monotonic() + 0.25
                if time.monotonic() >= next_kill:
                    pool.kill_one(rng, _working(checker_store))
                    next_kill = time.monotonic() + rng.uniform(*kill_every)
            thread.join()
            report.feed_seconds = report.feed_seconds or time.monotonic() - fed_from
            if errors:
                raise errors[0]  # the feeder gave up: the harness failed, not the runtime
            drain_from = time.monotonic()
            deadline = drain_from + drain_timeout
            while time.monotonic() < deadline:
                pool.reap()
                if _pending(checker_store, machine.name, ids) == (0, 0, 0):
                    report.drained = True
                    break
                time.sleep(0.1)
            report.drain_seconds = time.monotonic() - drain_from
        finally:
            pool.stop()
        report.kills = len(pool.kills)
        report.restarts = pool.started - workers
        report.unexpected_exits = pool.unexpected
        report.inbox_pending, report.outbox_pending, report.timers_armed = _pending(
            checker_store, machine.name, ids
        )
        _check(checker, checker_store, machine, feed, effects_path, pool.kills, report)
    report.total_seconds = time.monotonic() - began
    return report


@contextmanager
def _environ(name: str, value: str) -> Iterator[None]:
    """``os.environ[name] = value`` for the block, then as it was."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            del os.environ[name]
        else:
            os.environ[name] = before


def _working(store: Store) -> set[int]:
    """Pids of workers that have written a heartbeat and not stopped."""
    with store.transaction() as tx:
        rows = tx.workers()
    return {w.pid for w in rows if w.status in ("ready", "running", "waiting")}


@contextmanager
def _stores(url: str, n: int) -> Iterator[list[Store]]:
    stores = [open_store(url) for _ in range(n)]
    try:
        yield stores
    finally:
        for store in stores:
            store.close()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Run the crash test against a store URL.")
    p.add_argument("store_url")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--entities", type=int, default=200)
    p.add_argument("--events", type=int, default=20)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--feed-rate", type=float, default=100.0)
    p.add_argument("--send-every", type=int, default=2, help="0: enqueue every event")
    p.add_argument("--drain-timeout", type=float, default=120.0)
    a = p.parse_args(argv)
    report = run_crash_test(
        a.store_url,
        workers=a.workers,
        entities=a.entities,
        events=a.events,
        seed=a.seed,
        feed_rate=a.feed_rate,
        send_every=a.send_every,
        drain_timeout=a.drain_timeout,
    )
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
