"""Versioned schema migrations, the same logic for every store.

A store's schema is a list of :class:`Migration` values numbered 1, 2, 3, ... with no
gaps; the last one's version is the store's ``SCHEMA_VERSION``. Each database records
the versions applied to it in a ``schema_migrations (version, applied_at)`` table
(:data:`VERSION_TABLE_DDL`; ``applied_at`` is ISO-8601 UTC text), created on the first
upgrade. A database without that table is at version 0.

The runner is dialect-neutral: a store hands :func:`apply` a :class:`MigrationTarget`
that runs one SQL statement, reads the current version and records a version, all in
the transaction the store opened for it. The store also supplies the locking: apply
inside one transaction holding the database's write lock (SQLite: ``BEGIN IMMEDIATE``;
PostgreSQL: a transaction plus an advisory lock), so that processes opening a fresh
database at the same moment apply each migration exactly once: the later ones find the
versions the first one recorded. DDL is transactional on both, so a migration that
fails leaves the schema as it was once the store rolls back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from statewise.runtime.errors import SchemaVersionError

__all__ = [
    "VERSION_TABLE",
    "VERSION_TABLE_DDL",
    "Migration",
    "MigrationTarget",
    "apply",
    "check_sequence",
    "check_version",
    "latest_version",
    "pending",
]

VERSION_TABLE = "schema_migrations"
VERSION_TABLE_DDL = (
    f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} "
    "(version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
)
"""Valid SQLite and PostgreSQL alike; :func:`apply` runs it before the first migration."""


@dataclass(frozen=True, slots=True)
class Migration:
    """Schema version ``version``: the statements that take version - 1 to it.

    One SQL statement per item (drivers run one at a time; none may ``COMMIT``).
    """

    version: int
    statements: tuple[str, ...]
    description: str = ""


class MigrationTarget(Protocol):
    """A database connection inside the transaction a store opened for migrating."""

    def execute(self, sql: str) -> None:
        """Run one statement (no parameters)."""
        ...

    def current_version(self) -> int:
        """The highest version in ``schema_migrations``; 0 when it is empty or absent."""
        ...

    def record(self, version: int) -> None:
        """Insert ``(version, now as ISO-8601 UTC text)`` into ``schema_migrations``."""
        ...


def check_sequence(migrations: Sequence[Migration]) -> None:
    """Raise ``ValueError`` unless the versions are exactly 1, 2, ..., n in order.

    A gap or a repeat is a bug in the store's migration list, caught before any of it
    runs against a database.
    """
    versions = [m.version for m in migrations]
    expected = list(range(1, len(versions) + 1))
    if versions != expected:
        raise ValueError(f"migration versions must be 1..n in order, got {versions}")


def latest_version(migrations: Sequence[Migration]) -> int:
    """The version the list upgrades to (0 for an empty list)."""
    check_sequence(migrations)
    return len(migrations)


def pending(migrations: Sequence[Migration], current: int) -> tuple[Migration, ...]:
    """The migrations after version ``current``, oldest first."""
    check_sequence(migrations)
    return tuple(m for m in migrations if m.version > current)


def check_version(found: int, *, known: int, url: str, migrate: bool) -> None:
    """Refuse a schema the code cannot run against, with :class:`SchemaVersionError`.

    A schema newer than ``known`` is always refused; an older one only when
    ``migrate`` is false (with ``migrate`` the caller is about to upgrade it).
    """
    if found > known or (found < known and not migrate):
        raise SchemaVersionError(url, found, known)


def apply(target: MigrationTarget, migrations: Sequence[Migration], *, url: str) -> list[int]:
    """Bring the database up to ``latest_version(migrations)``; the versions applied.

    Reads the current version first: a database newer than the list raises
    :class:`SchemaVersionError` and nothing is run; one already up to date runs
    nothing (not even :data:`VERSION_TABLE_DDL`, so a read-only check costs no
    write). Otherwise creates the version table if needed, then runs each pending
    migration's statements in order and records its version. Whatever the target
    raises propagates; the caller's rollback undoes the partial upgrade. ``url`` only
    names the database in errors.
    """
    known = latest_version(migrations)
    found = target.current_version()
    check_version(found, known=known, url=url, migrate=True)
    todo = pending(migrations, found)
    if not todo:
        return []
    target.execute(VERSION_TABLE_DDL)
    for migration in todo:
        for statement in migration.statements:
            target.execute(statement)
        target.record(migration.version)
    return [m.version for m in todo]
