"""Worker processes: the background halves of a runtime, run in a loop until told to stop.

``Worker(runtime).run()`` repeats a round (``sweep_timers``, ``process_inbox``,
``dispatch_outbox``, each up to ``batch`` rows) for as long as rounds find work. A
round that finds none sends it to sleep: ``idle_min`` seconds first, doubling up to
``idle_max`` while rounds stay empty, back to ``idle_min`` as soon as one finds work.
On a store that sends wake-up hints (PostgreSQL's LISTEN/NOTIFY: ``store.wait``), the
nap listens for them and ends at the first, so work another process leaves is taken
at once rather than after the nap; a hint is only a hint, and the polling stays.
Any number of workers may run against one store: the store's locks and leases keep
them from doing the same work twice.

Stopping: SIGTERM or SIGINT (or :meth:`Worker.stop`) only sets a flag. The action in
hand finishes and is recorded; nothing new starts; the loop ends, the worker gives up
every lease it still holds (those rows are claimable at once by other workers) and
``run`` returns. A signal handler never touches the store: it may arrive in the
middle of a transaction on the same thread.

Heartbeats (the store's workers table, shown by ``statewise runtime status``):
``ready`` (started), ``running`` (the last round found work), ``waiting`` (idle,
sleeping), ``stopped`` (the loop ended; releasing leases), ``closed`` (leases released,
exiting). A row is written when the status changes and at least every
``heartbeat_seconds`` meanwhile, so a live worker's heartbeat is never older than
that plus one round; an older one, not ``closed``, is a worker that died.

:func:`serve` runs one worker from :class:`WorkerOptions` (what ``statewise worker``
does); :func:`serve_many` runs several, each in its own process, under the caller's,
which forwards SIGTERM and SIGINT to them and waits for them all.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from statewise.engine.actions import ActionRegistry
from statewise.engine.guards import GuardRegistry
from statewise.runtime.runtime import Runtime, WorkerStatus

__all__ = ["Worker", "WorkerOptions", "import_registry", "serve", "serve_many"]

log = logging.getLogger("statewise.runtime.worker")

_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_NAP = 0.05  # seconds between looks at the stop flag while idle


class Worker:
    """Runs ``runtime``'s background work in a loop; see the module docstring.

    ``monotonic`` and ``sleep`` are injectable for tests; ``sleep`` is only ever asked
    for a short nap, so that a stop request is noticed within ``0.05`` s. ``hints``:
    nap on the store's ``wait`` (when it has one) instead of ``sleep``, ending the nap
    at the first wake-up hint; an injected ``sleep`` turns it off (tests own time).
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        batch: int = 100,
        idle_min: float = 0.05,
        idle_max: float = 2.0,
        heartbeat_seconds: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
        hints: bool = True,
    ) -> None:
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch!r}")
        if not 0 < idle_min <= idle_max:
            raise ValueError(f"need 0 < idle_min <= idle_max, got {idle_min!r}, {idle_max!r}")
        self._runtime = runtime
        self._batch = batch
        self._idle_min = idle_min
        self._idle_max = idle_max
        self._heartbeat = heartbeat_seconds
        self._monotonic = monotonic
        self._sleep = sleep
        wait = getattr(runtime.store, "wait", None)
        self._wait: Callable[[float], bool] | None = (
            wait if hints and sleep is time.sleep and callable(wait) else None
        )
        self._stopping = False  # a plain flag: the one thing a signal handler may set
        self._status: WorkerStatus | None = None
        self._beat_at = 0.0

    @property
    def runtime(self) -> Runtime:
        return self._runtime

    @property
    def stopping(self) -> bool:
        return self._stopping

    def stop(self) -> None:
        """Ask the loop to stop after the action in hand; safe from any thread or signal
        handler."""
        self._stopping = True

    def run_once(self) -> int:
        """One round: fire due timers, apply pending events, run due actions; how many
        rows it handled (0: nothing to do)."""
        runtime, batch, stop = self._runtime, self._batch, self._should_stop
        done = runtime.sweep_timers(batch, should_stop=stop)
        done += runtime.process_inbox(batch, should_stop=stop)
        done += runtime.dispatch_outbox(batch, should_stop=stop)
        return done

    def run(self, *, handle_signals: bool = True) -> int:
        """Loop until stopped; returns 0. With ``handle_signals`` (and on the main thread)
        SIGTERM and SIGINT stop it; the previous handlers are restored on return."""
        previous = self._install() if handle_signals else {}
        log.info("worker %s started (machine %r)", self._runtime.worker_id, self._runtime.name)
        try:
            self._beat("ready")
            idle = self._idle_min
            while not self._stopping:
                try:
                    done = self.run_once()
                except Exception:  # a store that is briefly unavailable must not end the loop
                    log.exception("worker %s: the round failed", self._runtime.worker_id)
                    done = 0
                if self._stopping:
                    break
                if done:
                    self._beat("running")
                    idle = self._idle_min
                    continue
                self._beat("waiting")
                self._nap(idle)
                idle = min(idle * 2, self._idle_max)
            self._beat("stopped")
        finally:
            try:
                released = self._runtime.release()
                log.info("worker %s stopped, %d leases released", self._runtime.worker_id, released)
                self._beat("closed")
            finally:
                for signum, handler in previous.items():
                    signal.signal(signum, handler)
        return 0

    def _should_stop(self) -> bool:
        return self._stopping

    def _install(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}  # only the main thread may set signal handlers

        def handler(_signum: int, _frame: FrameType | None) -> None:
            self._stopping = True

        return {signum: signal.signal(signum, handler) for signum in _SIGNALS}

    def _beat(self, status: WorkerStatus) -> None:
        now = self._monotonic()
        if status == self._status and now - self._beat_at < self._heartbeat:
            return
        try:
            self._runtime.heartbeat(status)
        except Exception:  # a missed heartbeat is no reason to stop working
            log.exception("worker %s: heartbeat failed", self._runtime.worker_id)
            return
        self._status = status
        self._beat_at = now

    def _nap(self, seconds: float) -> None:
        end = self._monotonic() + seconds
        while not self._stopping:
            left = end - self._monotonic()
            if left <= 0:
                return
            if self._wait is None:
                self._sleep(min(_NAP, left))
            elif self._wait(min(_NAP, left)):
                return  # a hint: work may be waiting, look now


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """What a worker process needs, as plain values (they cross process boundaries).

    ``actions`` / ``guards``: ``MODULE:NAME`` of a registry, or of a function returning
    one; ``None`` for none.
    """

    spec: str
    store: str
    actions: str | None = None
    guards: str | None = None
    batch: int = 100
    lease_seconds: float = 30.0
    idle_max: float = 2.0
    heartbeat_seconds: float = 5.0


def import_registry(spec: str, kind: type[Any]) -> Any:
    """``MODULE:NAME`` -> the ``kind`` registry it names (or that calling it returns).
    ``ValueError`` when it is malformed or names something else; ``ImportError`` and
    ``AttributeError`` propagate."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"expected MODULE:NAME, got {spec!r}")
    value = getattr(importlib.import_module(module_name), attr)
    if callable(value) and not isinstance(value, kind):
        value = value()
    if not isinstance(value, kind):
        raise ValueError(f"{spec!r} is not a {kind.__name__}: {type(value).__name__}")
    return value


def serve(options: WorkerOptions) -> int:
    """Run one worker in this process until SIGTERM or SIGINT; its exit status."""
    from statewise.machine import StateMachine
    from statewise.runtime.urls import open_store

    machine = StateMachine.from_file(options.spec)
    if options.guards is not None:
        machine.bind_guards(import_registry(options.guards, GuardRegistry))
    actions = (
        ActionRegistry()
        if options.actions is None
        else import_registry(options.actions, ActionRegistry)
    )
    store = open_store(options.store)
    try:
        runtime = Runtime(machine, store, actions=actions, lease_seconds=options.lease_seconds)
        worker = Worker(
            runtime,
            batch=options.batch,
            idle_max=max(options.idle_max, 0.05),
            heartbeat_seconds=options.heartbeat_seconds,
        )
        return worker.run()
    finally:
        store.close()


def _child(options: WorkerOptions) -> None:
    configure_logging()
    sys.exit(serve(options))


def serve_many(options: WorkerOptions, processes: int) -> int:
    """Run ``processes`` workers, each in a process of its own, under this one: SIGTERM
    and SIGINT here are passed on to them (each then stops gracefully). Returns once
    all have exited: 0 when every one exited with 0, else 1."""
    if processes < 1:
        raise ValueError(f"processes must be >= 1, got {processes!r}")
    # spawn, not fork: a child must not inherit this process's threads or connections.
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(target=_child, args=(options,), name=f"statewise-worker-{i + 1}")
        for i in range(processes)
    ]

    def forward(_signum: int, _frame: FrameType | None) -> None:
        for child in children:
            if child.pid is not None and child.exitcode is None:
                with contextlib.suppress(ProcessLookupError):  # exited meanwhile
                    os.kill(child.pid, signal.SIGTERM)

    previous = {signum: signal.signal(signum, forward) for signum in _SIGNALS}
    try:
        for child in children:
            child.start()
        for child in children:
            child.join()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    failed = [c.name for c in children if c.exitcode != 0]
    if failed:
        log.error("workers %s exited with errors", ", ".join(failed))
    return 1 if failed else 0


def configure_logging() -> None:
    """Log lines to stderr with the time and process id, once per process."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
