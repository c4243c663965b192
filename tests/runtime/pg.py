"""A real PostgreSQL server for the runtime tests: ``postgres_store(tmp_path)``.

One mechanism, here, and nowhere else (``.ci/run`` only installs Debian's ``postgresql``
package; it starts no server):

* ``STATEWISE_TEST_PG_DSN`` set: that server is used as it is (it must let the user
  create schemas in its database).
* Otherwise a throwaway cluster is started once per test session, on first use:
  ``initdb`` into a fresh directory under the system temp dir (not pytest's, which
  is private to the invoking user), ``pg_ctl start`` listening on a free loopback
  port, its unix socket in the same directory, trust authentication, durability off
  (a test cluster is thrown away anyway). As root, initdb and pg_ctl refuse to run,
  so they run as the ``postgres`` OS user through ``runuser`` (or ``su``), and the
  directory is chowned to it. An ``atexit`` hook stops the server (``-m immediate``)
  and deletes the directory when the session ends; a small watcher process does the
  same within a second if pytest dies without running it (SIGKILL, ``timeout``).
  Starting takes about a second (initdb); each test's schema a few milliseconds.

The binaries are looked for in ``pg_config --bindir``, then the newest
``/usr/lib/postgresql/*/bin``, then ``PATH``. None found: the test is skipped with the
reason, except when ``CI`` is set, where it fails: the PostgreSQL tests must never be
skipped silently in CI.

Isolation: every call gets a schema of its own (``test_<token>_<n>``) in the one
database; ``PostgresStore(..., schema=...)`` keeps every table of a store there. With
an external server the schemas are dropped at exit, so a shared server is left clean.
Call sites should close the store they get (its pool holds connections open).
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import itertools
import os
import shlex
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from statewise.runtime.postgres import PostgresStore

__all__ = ["DSN_ENV", "find_bindir", "fresh_schema", "postgres_store", "server_dsn"]

DSN_ENV = "STATEWISE_TEST_PG_DSN"
_SETTINGS = {
    # Durability buys nothing in a throwaway cluster and costs most of the run time.
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    # Room for the pools of stores a failing test never closed.
    "max_connections": "300",
}


def find_bindir() -> Path | None:
    """A directory holding ``initdb``, ``pg_ctl`` and ``postgres``, or ``None``."""
    candidates: list[Path] = []
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        out = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, check=True
        ).stdout
        candidates.append(Path(out.strip()))

    def version(path: str) -> tuple[int, ...]:
        name = Path(path).parent.name
        return tuple(int(part) for part in name.split(".") if part.isdigit())

    candidates += [
        Path(p).parent
        for p in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version, reverse=True)
    ]
    if (initdb := shutil.which("initdb")) is not None:
        # /usr/local/bin/initdb may be a symlink into the real bindir: follow it, since
        # pg_ctl finds ``postgres`` next to itself.
        candidates += [Path(initdb).parent, Path(initdb).resolve().parent]
    for bindir in candidates:
        if all((bindir / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _tmp() -> str | None:
    # As root, $TMPDIR may be a directory the ``postgres`` user cannot enter (/root/...);
    # /tmp is world-traversable.
    return "/tmp" if os.geteuid() == 0 and os.path.isdir("/tmp") else None


_watchers: list[subprocess.Popen[bytes]] = []  # referenced, so never collected while running


@dataclass
class _Cluster:
    """A throwaway cluster: started by :meth:`start`, gone after :meth:`stop`."""

    bindir: Path
    root: Path = field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="statewise-pg-", dir=_tmp()))
    )
    port: int = 0

    @property
    def data(self) -> Path:
        return self.root / "data"

    def _as_owner(self, argv: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return argv
        if shutil.which("runuser"):
            return ["runuser", "-u", "postgres", "--", *argv]
        return ["su", "postgres", "-s", "/bin/sh", "-c", shlex.join(argv)]

    def _run(self, argv: list[str]) -> None:
        done = subprocess.run(self._as_owner(argv), capture_output=True, text=True, check=False)
        if done.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(
                f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}{done.stderr}{tail}"
            )

    def start(self) -> None:
        if os.geteuid() == 0:
            # The server refuses to run as root; its files belong to ``postgres``.
            try:
                shutil.chown(self.root, user="postgres")
            except LookupError:
                raise RuntimeError(
                    "running as root, but there is no `postgres` OS user to run the server as"
                ) from None
        self._run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]
        )
        options = " ".join(f"-c {key}={value}" for key, value in _SETTINGS.items())
        for attempt in range(3):
            # The port is free when chosen, but may be taken before the server binds it.
            self.port = _free_port()
            try:
                self._run(
                    [
                        str(self.bindir / "pg_ctl"),
                        "start",
                        "-w",
                        "-t",
                        "60",
                        "-D",
                        str(self.data),
                        "-l",
                        str(self.root / "server.log"),
                        "-o",
                        f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} {options}",
                    ]
                )
                self._watch()
                return
            except RuntimeError:
                if attempt == 2:
                    raise

    def _stop_argv(self) -> list[str]:
        return [str(self.bindir / "pg_ctl"), "stop", "-m", "immediate", "-D", str(self.data)]

    def _watch(self) -> None:
        # pg_ctl detaches the server, and atexit hooks do not run when pytest is killed
        # (SIGKILL, or SIGTERM from `timeout`): a watcher in a session of its own stops
        # the server and removes the directory once this process is gone, however it
        # ended. After a normal exit it finds both gone already.
        stop = shlex.join(self._as_owner(self._stop_argv()))
        script = (
            f"while kill -0 {os.getpid()} 2>/dev/null; do sleep 1; done; "
            f"{stop} >/dev/null 2>&1; rm -rf {shlex.quote(str(self.root))}"
        )
        _watchers.append(
            subprocess.Popen(
                ["sh", "-c", script],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )

    def stop(self) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            self._run(self._stop_argv())
        shutil.rmtree(self.root, ignore_errors=True)

    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"


@dataclass
class _Session:
    """The one server of this test session, found or started on first use."""

    dsn: str | None = None
    failure: str | None = None  # why there is none: every later test fails alike, fast
    schemas: list[str] = field(default_factory=list)
    counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    # Unique per session, so runs sharing an external server never pick the same names.
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def start(self) -> str:
        if external := os.environ.get(DSN_ENV):
            atexit.register(self.drop_schemas, external)
            return external
        bindir = find_bindir()
        if bindir is None:
            reason = (
                "PostgreSQL server binaries (initdb, pg_ctl) not found in pg_config --bindir, "
                f"/usr/lib/postgresql/*/bin or PATH, and {DSN_ENV} is not set"
            )
            if os.environ.get("CI"):
                pytest.fail(f"{reason}; CI is set, so this is a failure, not a skip")
            pytest.skip(reason)
        cluster = _Cluster(bindir)
        try:
            cluster.start()
        except BaseException:
            cluster.stop()
            raise
        atexit.register(cluster.stop)
        return cluster.dsn()

    def drop_schemas(self, dsn: str) -> None:
        with contextlib.suppress(psycopg.Error), psycopg.connect(dsn, autocommit=True) as conn:
            for name in self.schemas:
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name))
                )


_session = _Session()


def server_dsn() -> str:
    """The session's server: ``STATEWISE_TEST_PG_DSN``, or a cluster started now.

    Skips the test when no server can be had, and fails instead when ``CI`` is set.
    A server that failed to start is not tried again: later tests fail with its error.
    """
    if _session.dsn is None:
        if _session.failure is not None:
            pytest.fail(_session.failure)
        try:
            _session.dsn = _session.start()
        except RuntimeError as exc:
            _session.failure = f"the test PostgreSQL server did not start: {exc}"
            raise
    return _session.dsn


def fresh_schema() -> str:
    """A schema name not used before on this server (the schema itself is not created)."""
    name = f"test_{_session.token}_{next(_session.counter)}"
    _session.schemas.append(name)
    return name


def postgres_store(
    tmp_path: Path, *, migrate: bool = True, min_size: int = 1, max_size: int = 4
) -> PostgresStore:
    """A new :class:`PostgresStore` in a schema of its own on the session's server
    (the caller closes it). ``tmp_path`` is unused: the SQLite twin keeps its file
    there."""
    return PostgresStore(
        server_dsn(), schema=fresh_schema(), migrate=migrate, min_size=min_size, max_size=max_size
    )
