"""Outbox acks waiting to be written: how a store batches them.

Theory of operation. An action that succeeded must have its outbox row marked done,
or another worker runs it again once the lease runs out. Writing that mark in a
transaction of its own costs a commit per action (on PostgreSQL a round trip too):
measured, 10 to 20% of an event's whole cost. So ``store.ack_later`` keeps the ack
here, and the store writes it at the start of the next transaction it opens anyway,
on any thread (the next event, claim or sweep; on PostgreSQL sent along with that
transaction's first statement). When none comes within ``ack_delay`` seconds, a
thread of the store opens one for every ack waiting by then; ``store.flush_acks()``
writes them at once, and ``store.close()`` (or the interpreter's exit) before it
closes.

What this changes is only *when* the mark is written, never whether: an ack leaves
the buffer only inside the transaction that writes it, and goes back if that
transaction fails. A process that dies with acks waiting (SIGKILL, a power cut)
leaves those rows leased until their lease runs out, and then the actions run again:
the at-least-once a death between an action and its ack always meant, over a window
of ``ack_delay`` seconds instead of one statement. The runtime refuses a lease under
ten times the store's ``ack_delay``, so an ack is written long before anyone else may
take its row.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from statewise.runtime.store import Tx

__all__ = ["DEFAULT_ACK_DELAY", "Ack", "AckBuffer", "BatchedAcks"]

log = logging.getLogger("statewise.runtime")

DEFAULT_ACK_DELAY = 0.05
"""Seconds an ack may wait for a transaction to carry it (a store's ``ack_delay=``)."""

Ack: TypeAlias = tuple[int, str, datetime | None]
"""An outbox row id, the lease owner acking it, and when its action succeeded
(``None``: the clock of the transaction that writes it)."""


class AckBuffer:
    """Acks waiting to be written; thread-safe.

    ``flush_once()`` writes every ack waiting, in a store transaction of its own. A
    daemon thread, started with the first ack, calls it once the oldest ack has
    waited ``delay`` seconds and no transaction took it meanwhile (a failure is
    logged, and tried again ``delay`` later). While acks keep coming the thread wakes
    once a ``delay`` by itself; it sleeps until woken only after a ``delay`` without
    any."""

    def __init__(self, flush_once: Callable[[], None], delay: float) -> None:
        if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
            raise ValueError(f"ack_delay must be a number of seconds >= 0, got {delay!r}")
        self._flush_once = flush_once
        self._delay = float(delay)
        self._acks: list[Ack] = []
        self._since = 0.0  # when the oldest waiting ack arrived (time.monotonic)
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._idle = False  # the thread waits for an ack to arrive, not for a deadline
        self._closed = False
        # Through a weak reference (the buffer may be collected first). A forked child
        # starts empty: its parent writes the acks it holds.
        ref = weakref.ref(self)
        atexit.register(_close_at_exit, ref)
        os.register_at_fork(after_in_child=lambda: _forget_in_child(ref))

    @property
    def delay(self) -> float:
        return self._delay

    def add(self, ack: Ack) -> None:
        with self._lock:
            self._acks.append(ack)
            if len(self._acks) > 1:
                return  # counting down for the oldest one already
            self._since = time.monotonic()
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(
                    target=self._run, name="statewise-acks", daemon=True
                )
                self._thread.start()
            elif self._idle:
                # Only an idle thread needs waking: one counting down wakes by itself,
                # and waking it for every ack would cost a context switch per action.
                self._wake.notify()

    def take(self) -> list[Ack]:
        """Every ack waiting, removed: the caller writes them, or :meth:`put_back`."""
        if not self._acks:  # read without the lock: a miss only waits for the next one
            return []
        with self._lock:
            acks, self._acks = self._acks, []
        return acks

    def put_back(self, acks: Sequence[Ack]) -> None:
        """Acks a failed transaction did not write: waiting again, oldest first."""
        if not acks:
            return
        with self._lock:
            if not self._acks:
                self._since = time.monotonic()
            self._acks[:0] = acks
            self._wake.notify()

    def __len__(self) -> int:
        return len(self._acks)

    def flush(self) -> None:
        """Write every ack waiting, now, in this thread (raises what the store raises;
        the acks are then waiting again)."""
        if self._acks:
            self._flush_once()

    def close(self) -> None:
        """Stop the thread (after the write it may be in), then write what is left."""
        with self._lock:
            self._closed = True
            self._wake.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        self.flush()

    def _run(self) -> None:
        while True:
            with self._lock:
                while True:
                    if self._closed:
                        self._thread = None
                        return
                    if not self._acks:
                        if time.monotonic() - self._since < self._delay:
                            # Acks came lately, and transactions took them: more will
                            # come. Waiting out a delay instead of going idle spares
                            # add() a wake-up (a system call, a thread switch) per ack.
                            self._wake.wait(self._delay)
                            continue
                        self._idle = True
                        self._wake.wait()
                        self._idle = False
                        continue
                    left = self._since + self._delay - time.monotonic()
                    if left <= 0:
                        break
                    self._wake.wait(left)
            try:
                self.flush()
            except Exception:  # put back, with a fresh wait: tried again ``delay`` later
                log.exception("writing %d outbox acks failed; trying again", len(self))

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._acks = []
        self._thread = None
        self._idle = False


class BatchedAcks:
    """Acks written later, mixed into both stores: ``ack_later``, ``flush_acks`` and
    ``ack_delay``. A store calls :meth:`_init_acks` first thing in ``__init__``,
    :meth:`_write_waiting_acks` at the start of every transaction (and
    ``self._acks.put_back`` with what it returned if the transaction fails), and
    :meth:`_close_acks` in ``close`` before closing its connections."""

    _acks: AckBuffer

    def _init_acks(self, delay: float) -> None:
        self._acks = AckBuffer(self._flush_acks_once, delay)

    @property
    def ack_delay(self) -> float:
        return self._acks.delay

    if TYPE_CHECKING:  # each store's own

        def ack(self, row_id: int, owner: str, at: datetime | None = None) -> bool: ...

        def transaction(self, *, durable: bool = True) -> AbstractContextManager[Any]: ...

    def ack_later(self, row_id: int, owner: str, at: datetime | None = None) -> None:
        if self._acks.delay == 0:
            self.ack(row_id, owner, at)
        else:
            self._acks.add((row_id, owner, at))

    def flush_acks(self) -> None:
        self._acks.flush()

    def _write_waiting_acks(self, tx: Tx) -> list[Ack]:
        """Write (or, on PostgreSQL, queue with the first statement) every ack waiting;
        what was taken, to put back if the transaction fails."""
        acks = self._acks.take()
        _write_acks(tx, acks)
        return acks

    def _flush_acks_once(self) -> None:
        """The acks waiting, written in a transaction of their own, not durable."""
        acks = self._acks.take()
        try:
            with self.transaction(durable=False) as tx:
                _write_acks(tx, acks)
        except BaseException:
            self._acks.put_back(acks)
            raise

    def _close_acks(self) -> None:
        try:
            self._acks.close()
        except Exception:
            log.exception(
                "writing %d outbox acks while closing failed: those actions will run again",
                len(self._acks),
            )


def _write_acks(tx: Tx, acks: Sequence[Ack]) -> None:
    owners: dict[str, list[tuple[int, datetime | None]]] = {}
    for row_id, owner, at in acks:
        owners.setdefault(owner, []).append((row_id, at))
    for owner, rows in owners.items():
        tx.outbox_ack_many(rows, owner)


def _close_at_exit(ref: weakref.ref[AckBuffer]) -> None:
    buffer = ref()
    if buffer is not None and len(buffer):
        try:
            buffer.close()
        except Exception:
            log.exception("writing outbox acks at exit failed: those actions will run again")


def _forget_in_child(ref: weakref.ref[AckBuffer]) -> None:
    buffer = ref()
    if buffer is not None:
        buffer._forget()
