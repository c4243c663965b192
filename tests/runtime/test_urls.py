"""``open_store(url)``: the sqlite forms, PostgreSQL routing, and every bad URL."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest

from statewise.runtime.errors import RuntimeStoreError, StoreURLError
from statewise.runtime.sqlite import SQLiteStore
from statewise.runtime.store import SCHEMA_VERSION
from statewise.runtime.urls import SCHEMES, open_store, redact, sqlite_path


def test_a_relative_sqlite_url_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    store = open_store("sqlite:///data/orders.db", synchronous="NORMAL")
    assert isinstance(store, SQLiteStore)
    with store:
        assert store.path == tmp_path / "data" / "orders.db"
        assert store.synchronous == "NORMAL"
        assert store.schema_version() == SCHEMA_VERSION
    assert (tmp_path / "data" / "orders.db").is_file()


def test_an_absolute_sqlite_url_has_four_slashes(tmp_path: Path) -> None:
    target = tmp_path / "my orders.db"
    url = "SQLite:///" + target.as_posix().replace(" ", "%20")
    assert url.startswith("SQLite:////")
    store = open_store(url, migrate=False)
    assert isinstance(store, SQLiteStore)
    with store:
        assert store.path == target
        assert store.schema_version() == 0  # migrate=False went through


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite://host/orders.db", "a sqlite URL has no host"),
        ("sqlite:///orders.db?mode=ro", r"takes no \?query or #fragment"),
        ("sqlite:///orders.db#x", r"takes no \?query or #fragment"),
        ("sqlite:orders.db", "expected sqlite:///relative/path.db or sqlite:////absolute"),
        ("sqlite:///", "a sqlite URL must name a file"),
        ("sqlite://", "expected sqlite:///relative/path.db"),
        ("sqlite:///:memory:", "an in-memory database is private to one connection"),
        ("mysql://app@db/orders", "unknown scheme 'mysql'; known schemes: sqlite, postgresql"),
        (
            "orders.db",
            "no URL scheme; known schemes: .*; to open the file, use sqlite:///orders.db",
        ),
        ("", "no URL scheme"),
    ],
)
def test_a_bad_url_says_what_is_expected(url: str, message: str) -> None:
    with pytest.raises(StoreURLError, match=message) as caught:
        open_store(url)
    assert caught.value.known == SCHEMES


def test_sqlite_path() -> None:
    assert sqlite_path("sqlite:///a/b.db") == "a/b.db"
    assert sqlite_path("sqlite:////abs/b.db") == "/abs/b.db"
    assert sqlite_path("sqlite:///C:/data/b.db") == "C:/data/b.db"
    assert sqlite_path("sqlite:///a%20b%23c.db") == "a b#c.db"


def test_a_password_never_appears_in_an_error() -> None:
    with pytest.raises(StoreURLError) as caught:
        open_store("mysql://app:s3cret@db:3306/orders")
    assert "s3cret" not in str(caught.value)
    assert caught.value.url == "mysql://app:***@db:3306/orders"
    with pytest.raises(StoreURLError) as caught:
        open_store("sqlite://app:s3cret@host/x.db")
    assert "s3cret" not in str(caught.value)


def test_redact() -> None:
    assert redact("postgresql://u:pw@h:5432/db?sslmode=require") == (
        "postgresql://u:***@h:5432/db?sslmode=require"
    )
    assert redact("postgresql://u@h/db") == "postgresql://u@h/db"
    assert redact("postgresql://h/db") == "postgresql://h/db"
    assert redact("postgresql://:pw@h/db") == "postgresql://:***@h/db"


class RecordingStore:
    """Stands in for PostgresStore: routing is under test, not PostgreSQL."""

    def __init__(self, dsn: str, **options: Any) -> None:
        self.url = dsn
        self.options = options


@pytest.mark.parametrize("url", ["postgresql://app@db/orders", "postgres://app:pw@db/orders"])
def test_postgresql_urls_go_to_postgres_store_unchanged(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = types.ModuleType("statewise.runtime.postgres")
    module.PostgresStore = RecordingStore  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "statewise.runtime.postgres", module)
    store = open_store(url, migrate=False)
    assert isinstance(store, RecordingStore)
    assert (store.url, store.options) == (url, {"migrate": False})


def test_postgresql_support_that_cannot_be_imported_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # None in sys.modules makes the import fail, as a missing driver would.
    monkeypatch.setitem(sys.modules, "statewise.runtime.postgres", None)
    with pytest.raises(RuntimeStoreError, match="PostgreSQL support is not available") as caught:
        open_store("postgresql://app:pw@db/orders")
    assert "pw" not in str(caught.value)
    assert isinstance(caught.value.__cause__, ImportError)
