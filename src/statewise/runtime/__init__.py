"""The durable runtime: load, decide, commit, act made safe on a real database.

``Runtime(machine, store, actions=registry)`` keeps entities in a store (SQLite by
default, PostgreSQL for many worker processes), applies events exactly once, and runs
actions after the commit through an outbox, at least once, with idempotency keys.
"""

from statewise.runtime.errors import (
    ConcurrencyError,
    EntityExistsError,
    EntityNotFoundError,
    RuntimeStoreError,
    SchemaVersionError,
    StoreURLError,
    UnknownMachineError,
)
from statewise.runtime.runtime import TIMER, EntityInfo, ReplayReport, Runtime
from statewise.runtime.store import HistoryRow, OutboxRow, Store, Tx
from statewise.runtime.urls import open_store
from statewise.runtime.worker import Worker, WorkerOptions, serve, serve_many

__all__ = [
    "TIMER",
    "ConcurrencyError",
    "EntityExistsError",
    "EntityInfo",
    "EntityNotFoundError",
    "HistoryRow",
    "OutboxRow",
    "ReplayReport",
    "Runtime",
    "RuntimeStoreError",
    "SchemaVersionError",
    "Store",
    "StoreURLError",
    "Tx",
    "UnknownMachineError",
    "Worker",
    "WorkerOptions",
    "open_store",
    "serve",
    "serve_many",
]
