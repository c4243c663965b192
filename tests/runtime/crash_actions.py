"""The actions the crash test's workers run: each one records its effect durably.

Workers import ``tests.runtime.crash_actions:registry``. Every action call appends one
row to ``applications`` (key, pid, time) and bumps ``effects.count`` for its
idempotency key, in one SQLite transaction committed **before** the action returns.
So once the runtime has acknowledged an outbox row, its effect is on disk; a worker
killed between the commit here and the runtime's ack leaves an effect the next
worker repeats, which shows as a count of 2 whose first application came from a pid
that was killed afterwards. That is the one duplicate at-least-once delivery allows.

The effects file is named by the environment variable ``STATEWISE_CRASH_EFFECTS``
(workers inherit it from the harness). It is a separate SQLite file, never the store,
so recording an effect can neither join nor block the runtime's transactions.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from statewise import ActionRegistry

__all__ = ["EFFECTS_ENV", "SCHEMA", "effect", "open_effects", "registry"]

EFFECTS_ENV = "STATEWISE_CRASH_EFFECTS"

SCHEMA = """
CREATE TABLE IF NOT EXISTS effects (
    key TEXT PRIMARY KEY,
    count INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS applications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    pid INTEGER NOT NULL,
    at REAL NOT NULL
);
"""

registry = ActionRegistry()
_local = threading.local()


def open_effects(path: str | Path) -> sqlite3.Connection:
    """A connection to the effects file, its tables created. WAL lets the harness read
    while workers write; ``synchronous=NORMAL`` is enough because the test kills
    processes, not the machine: a committed write has reached the OS and survives
    SIGKILL. The long busy timeout is for eight workers writing at once."""
    conn = sqlite3.connect(path, timeout=60.0, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(SCHEMA)
    return conn


def _connection() -> sqlite3.Connection:
    # One connection per thread: a worker running actions on several threads must not
    # share a sqlite3 connection between them.
    conn: sqlite3.Connection | None = getattr(_local, "conn", None)
    if conn is None:
        path = os.environ.get(EFFECTS_ENV)
        if not path:
            raise RuntimeError(f"{EFFECTS_ENV} is not set: where should effects be recorded?")
        conn = open_effects(path)
        _local.conn = conn
    return conn


@registry.register
def effect(ctx: Mapping[str, Any], idempotency_key: str) -> None:
    """Record one application of the effect keyed ``idempotency_key``; committed
    before returning, so an acknowledged outbox row always has its effect on disk."""
    conn = _connection()
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "INSERT INTO effects (key, count) VALUES (?, 1) "
            "ON CONFLICT (key) DO UPDATE SET count = count + 1",
            (idempotency_key,),
        )
        conn.execute(
            "INSERT INTO applications (key, pid, at) VALUES (?, ?, ?)",
            (idempotency_key, os.getpid(), time.time()),
        )
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
