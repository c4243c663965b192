"""The ``store`` fixture: every store contract test runs on SQLite and on PostgreSQL.

``backend`` is the database one test gets, fresh: ``backend.open(**options)`` opens a
store on it (the same database on every call, so a test can reopen it with other
options), ``backend.execute(sql)`` runs one raw, committed statement on it (tests stamp
schema versions with it). Every store opened is closed when the test ends.

* ``sqlite``: the file ``store.db`` in the test's ``tmp_path``;
* ``postgres``: a schema of its own on the session's server (``tests/runtime/pg.py``:
  ``server_dsn()``, ``fresh_schema()``); skipped while PostgreSQL support cannot be
  imported, and by ``pg.py`` itself when no server can be had.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from statewise.runtime.sqlite import SQLiteStore
from statewise.runtime.store import Store

BACKENDS = ["sqlite", "postgres"]


@dataclass(frozen=True)
class Backend:
    """One test's database: ``open`` a store on it, ``execute`` raw SQL on it."""

    name: str
    open: Callable[..., Store]
    execute: Callable[[str], None]


def sqlite_backend(path: Path, opened: list[Store]) -> Backend:
    def open_(**options: Any) -> Store:
        store = SQLiteStore(path, **options)
        opened.append(store)
        return store

    def execute(sql: str) -> None:
        with closing(sqlite3.connect(path, isolation_level=None)) as conn:
            conn.execute(sql)

    return Backend("sqlite", open_, execute)


def postgres_backend(opened: list[Store]) -> Backend:
    try:
        import psycopg
        from psycopg import sql as pgsql

        from statewise.runtime.postgres import PostgresStore
        from tests.runtime.pg import fresh_schema, server_dsn
    except ImportError as exc:
        if os.environ.get("CI"):  # CI must run the PostgreSQL tests, never skip them
            raise
        pytest.skip(f"PostgreSQL support not available: {exc}")
    dsn = server_dsn()
    schema = fresh_schema()

    def open_(**options: Any) -> Store:
        store: Store = PostgresStore(dsn, schema=schema, **options)
        opened.append(store)
        return store

    def execute(statement: str) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(pgsql.SQL("SET search_path TO {}").format(pgsql.Identifier(schema)))
            conn.execute(statement.encode())

    return Backend("postgres", open_, execute)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    opened: list[Store] = []
    if request.param == "sqlite":
        yield sqlite_backend(tmp_path / "store.db", opened)
    else:
        yield postgres_backend(opened)
    for store in opened:
        store.close()


@pytest.fixture
def store(backend: Backend) -> Store:
    """A fresh store, migrated to ``SCHEMA_VERSION``, on the test's own database."""
    return backend.open()
