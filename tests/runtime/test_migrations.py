"""The migration runner, on real SQLite connections, with migration lists of its own."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from statewise.runtime.errors import SchemaVersionError
from statewise.runtime.migrations import (
    VERSION_TABLE_DDL,
    Migration,
    apply,
    check_sequence,
    check_version,
    latest_version,
    pending,
)
from statewise.runtime.sqlite import SQLiteMigrationTarget

URL = "sqlite:////tmp/m.db"
V1 = Migration(1, ("CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",), "things")
V2 = Migration(
    2,
    (
        "ALTER TABLE things ADD COLUMN colour TEXT",
        "CREATE INDEX things_colour ON things (colour)",
    ),
)
BROKEN_V2 = Migration(2, ("CREATE TABLE more (x INTEGER)", "THIS IS NOT SQL"))


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    yield connection
    connection.close()


def migrate(conn: sqlite3.Connection, migrations: list[Migration]) -> list[int]:
    """What a store does: one write transaction around ``apply``."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        applied = apply(SQLiteMigrationTarget(conn), migrations, url=URL)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return applied


def tables(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {name for (name,) in rows} - {"sqlite_sequence"}


def test_a_fresh_database_is_at_version_zero(conn: sqlite3.Connection) -> None:
    assert SQLiteMigrationTarget(conn).current_version() == 0
    assert migrate(conn, []) == []
    assert tables(conn) == set()  # nothing to do: not even the version table


def test_migrations_apply_in_order_once(conn: sqlite3.Connection) -> None:
    assert migrate(conn, [V1]) == [1]
    assert tables(conn) == {"schema_migrations", "things"}
    assert migrate(conn, [V1]) == []
    assert migrate(conn, [V1, V2]) == [2]
    assert migrate(conn, [V1, V2]) == []
    conn.execute("INSERT INTO things (name, colour) VALUES ('a', 'red')")
    rows = conn.execute("SELECT version, applied_at FROM schema_migrations ORDER BY version")
    stamped = list(rows)
    assert [v for v, _ in stamped] == [1, 2]
    assert all(datetime.fromisoformat(at).utcoffset() is not None for _, at in stamped)
    assert SQLiteMigrationTarget(conn).current_version() == 2


def test_a_failing_migration_leaves_the_schema_as_it_was(conn: sqlite3.Connection) -> None:
    migrate(conn, [V1])
    with pytest.raises(sqlite3.OperationalError, match="syntax error"):
        migrate(conn, [V1, BROKEN_V2])
    assert tables(conn) == {"schema_migrations", "things"}
    assert SQLiteMigrationTarget(conn).current_version() == 1


def test_a_newer_database_is_refused_and_nothing_runs(conn: sqlite3.Connection) -> None:
    migrate(conn, [V1, V2])
    with pytest.raises(SchemaVersionError) as caught:
        migrate(conn, [V1])
    assert (caught.value.url, caught.value.found, caught.value.known) == (URL, 2, 1)


@pytest.mark.parametrize(
    "versions",
    [[2], [1, 3], [1, 1], [2, 1], [0, 1]],
    ids=["starts-at-2", "gap", "repeat", "out-of-order", "zero"],
)
def test_a_list_that_is_not_1_to_n_is_a_bug_found_before_anything_runs(
    conn: sqlite3.Connection, versions: list[int]
) -> None:
    migrations = [Migration(v, ("CREATE TABLE t (x)",)) for v in versions]
    with pytest.raises(ValueError, match=r"must be 1\.\.n in order"):
        check_sequence(migrations)
    with pytest.raises(ValueError, match=r"must be 1\.\.n in order"):
        migrate(conn, migrations)
    assert tables(conn) == set()


def test_latest_and_pending() -> None:
    assert latest_version([]) == 0
    assert latest_version([V1, V2]) == 2
    assert pending([V1, V2], 0) == (V1, V2)
    assert pending([V1, V2], 1) == (V2,)
    assert pending([V1, V2], 2) == ()


@pytest.mark.parametrize(
    ("found", "migrate", "refused"),
    [
        (2, True, False),
        (2, False, False),
        (1, True, False),
        (1, False, True),
        (0, False, True),
        (3, True, True),
        (3, False, True),
    ],
)
def test_check_version(found: int, migrate: bool, refused: bool) -> None:
    if refused:
        with pytest.raises(SchemaVersionError):
            check_version(found, known=2, url=URL, migrate=migrate)
    else:
        check_version(found, known=2, url=URL, migrate=migrate)


def test_the_version_table_ddl_is_idempotent(conn: sqlite3.Connection) -> None:
    conn.execute(VERSION_TABLE_DDL)
    conn.execute(VERSION_TABLE_DDL)
    assert SQLiteMigrationTarget(conn).current_version() == 0  # present but empty
