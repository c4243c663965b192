"""``open_store(url)``: a store from a URL, as the CLI and configuration files name one.

* ``sqlite:///orders.db``: a file relative to the working directory (three slashes);
* ``sqlite:////var/lib/app/orders.db``: an absolute path (four slashes; the fourth
  starts the path), percent-encoded where needed (``%20`` for a space);
* ``postgresql://user@host/db`` (or ``postgres://``): a libpq connection URL, handed
  unchanged to :class:`statewise.runtime.postgres.PostgresStore`, imported only then
  (its driver is an optional dependency).

Keyword options go to the store's constructor (``migrate=False``,
``synchronous="NORMAL"``, ...). Anything else raises :class:`StoreURLError`, naming the
schemes known; a password never appears in the message.
"""

from __future__ import annotations

import importlib
import urllib.parse
from collections.abc import Callable
from typing import Any

from statewise.runtime.errors import RuntimeStoreError, StoreURLError
from statewise.runtime.sqlite import SQLiteStore
from statewise.runtime.store import Store

__all__ = ["SCHEMES", "open_store", "redact", "sqlite_path"]

SCHEMES = ("sqlite", "postgresql", "postgres")
"""The URL schemes :func:`open_store` opens."""

_POSTGRES_MODULE = "statewise.runtime.postgres"
_SQLITE_FORMS = "sqlite:///relative/path.db or sqlite:////absolute/path.db"


def redact(url: str) -> str:
    """``url`` with the password (if any) replaced by ``***``, for messages and logs."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{hostinfo}"))


def sqlite_path(url: str) -> str:
    """The file path a ``sqlite:`` URL names; :class:`StoreURLError` when it names none."""
    parts = urllib.parse.urlsplit(url)
    if parts.netloc:
        raise StoreURLError(
            redact(url), f"a sqlite URL has no host; expected {_SQLITE_FORMS}", SCHEMES
        )
    if parts.query or parts.fragment:
        raise StoreURLError(
            url,
            "a sqlite URL takes no ?query or #fragment; pass options to open_store() instead",
            SCHEMES,
        )
    if not parts.path.startswith("/"):
        raise StoreURLError(url, f"expected {_SQLITE_FORMS}", SCHEMES)
    path = urllib.parse.unquote(parts.path[1:])
    if not path or path == ":memory:":
        raise StoreURLError(
            url,
            "a sqlite URL must name a file (an in-memory database is private to one "
            f"connection, and the store opens one per thread); expected {_SQLITE_FORMS}",
            SCHEMES,
        )
    return path


def open_store(url: str, **options: Any) -> Store:
    """Open the store ``url`` names; ``options`` go to the store's constructor.

    Raises :class:`StoreURLError` for a URL no store opens, and
    :class:`RuntimeStoreError` when PostgreSQL support cannot be imported.
    """
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme == "sqlite":
        return SQLiteStore(sqlite_path(url), **options)
    if scheme in ("postgresql", "postgres"):
        try:
            # Imported by name, only now: the PostgreSQL driver is optional, and a
            # SQLite user must never need it installed.
            module = importlib.import_module(_POSTGRES_MODULE)
        except ImportError as exc:
            raise RuntimeStoreError(
                f"cannot open {redact(url)}: PostgreSQL support is not available ({exc})"
            ) from exc
        factory: Callable[..., Store] = module.PostgresStore
        return factory(url, **options)
    if not scheme:
        hint = f"; to open the file, use sqlite:///{url}" if url else ""
        raise StoreURLError(
            url, f"no URL scheme; known schemes: {', '.join(SCHEMES)}{hint}", SCHEMES
        )
    raise StoreURLError(
        redact(url),
        f"unknown scheme {scheme!r}; known schemes: {', '.join(SCHEMES)}",
        SCHEMES,
    )
