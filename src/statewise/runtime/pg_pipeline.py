"""Statements sent through libpq's pipeline mode directly, for the PostgreSQL store.

Theory of operation. A transaction of the event path is a handful of short statements in
two round trips. psycopg's cursors and ``Connection.pipeline()`` cost about 100 µs of
client CPU per statement in Python (cursor state, generators, result bookkeeping), which
is more than the server spends on the statement, so the store talks to libpq itself:
``psycopg.pq`` (libpq's own calls) for the protocol and ``psycopg.adapt.Transformer``
(psycopg's adapters, in C) to turn values into text and results back into values.

A :class:`Pipeline` belongs to one connection. :meth:`Pipeline.run` enters pipeline mode,
queues every statement (each with its own snapshot: it runs after the one before it
finished), adds one sync point, sends it all in one write and reads the results back;
it raises the first statement's error the way psycopg would (the same exception classes,
with ``diag``). What follows a failed statement up to the sync is skipped by the server,
and inside a transaction the transaction is then failed, as with psycopg's pipeline.

Statements are prepared on the server the first time they are run on a connection and
used by name after that, so the server parses them once (and, after five runs, keeps a
generic plan when it costs no more than planning each time); the names are kept per
connection, the least recently used beyond ``max_prepared`` are released (``DEALLOCATE``
sent with the next statements). ``prepare=False`` never names a statement (for
PgBouncer before 1.21 in transaction mode, where a named statement may live on another
server connection). Code of your own on the same connection must not ``DEALLOCATE`` or
``DISCARD`` what is not its own.

Parameters are psycopg's ``%s`` placeholders (``%%`` for a percent sign), sent as text;
the server infers each one's type from where it stands, so a value whose type it cannot
infer needs a cast in the SQL (``%s::timestamptz``). Rows come back as dicts; times in
the session time zone the connection had when the pipeline first read one (the store
keeps every connection in UTC).
"""

from __future__ import annotations

import itertools
import re
import select
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg import abc, pq
from psycopg.adapt import PyFormat, Transformer

__all__ = ["Pipeline", "Result", "numbered"]

Row = dict[str, Any]
Statement = tuple[str | bytes, Sequence[Any]]

_TUPLES_OK = pq.ExecStatus.TUPLES_OK
_FATAL_ERROR = pq.ExecStatus.FATAL_ERROR
_COMMAND_OK = pq.ExecStatus.COMMAND_OK
_DONE = (_TUPLES_OK, _COMMAND_OK)
_PIPELINE_SYNC = pq.ExecStatus.PIPELINE_SYNC
_PLACEHOLDER = re.compile(r"%(s|%)|%")
_MAX_PARAMS = 65535  # the protocol's limit (a 16-bit count)
_TX_HEALTHY = (pq.TransactionStatus.IDLE, pq.TransactionStatus.INTRANS)
# Prepared names are unique in the process, so that two Pipelines on one connection
# (or one after another) never ask for the same name.
_names = itertools.count(1)

_numbered: dict[str | bytes, tuple[bytes, int]] = {}
_NUMBERED_MAX = 1024  # distinct statement texts remembered; then the memo starts over


def numbered(query: str | bytes) -> tuple[bytes, int]:
    """``query`` with its ``%s`` placeholders as ``$1``, ``$2``, ... (and ``%%`` as ``%``),
    encoded, and the number of placeholders. Any other ``%`` is a ``ValueError``."""
    found = _numbered.get(query)
    if found is not None:
        return found
    text = query.decode() if isinstance(query, bytes) else query
    count = 0

    def number(match: re.Match[str]) -> str:
        nonlocal count
        if match.group(1) == "%":
            return "%"
        if match.group(1) is None:
            raise ValueError(f"only %s and %% may follow a % in a statement: {text!r}")
        count += 1
        return f"${count}"

    found = (_PLACEHOLDER.sub(number, text).encode(), count)
    if len(_numbered) >= _NUMBERED_MAX:
        _numbered.clear()
    _numbered[query] = found
    return found


class Result:
    """One statement's result: ``rowcount`` (rows returned or changed; -1 when the
    statement says none) and its rows, as dicts."""

    __slots__ = ("_loader", "_result", "rowcount")

    def __init__(self, result: pq.abc.PGresult, loader: abc.Transformer) -> None:
        self._result = result
        self._loader = loader
        tuples = result.command_tuples
        self.rowcount: int = -1 if tuples is None else tuples

    def fetchall(self) -> list[Row]:
        res = self._result
        if res.status != _TUPLES_OK:
            return []
        names = [(res.fname(i) or b"").decode() for i in range(res.nfields)]
        self._loader.set_pgresult(res)
        return self._loader.load_rows(
            0, res.ntuples, lambda values: dict(zip(names, values, strict=True))
        )

    def fetchone(self) -> Row | None:
        rows = self.fetchall()
        return rows[0] if rows else None


class Pipeline:
    """Runs statements on ``conn`` in one round trip each call; not thread-safe (the
    store gives each connection to one transaction at a time)."""

    def __init__(
        self, conn: psycopg.Connection[Any], *, prepare: bool = True, max_prepared: int = 128
    ) -> None:
        self._conn = conn
        self._prepare = prepare
        self._max_prepared = max_prepared
        self._adapt: abc.Transformer = Transformer(conn)
        self._names: OrderedDict[bytes, bytes] = OrderedDict()  # SQL -> prepared name
        self._to_release: list[bytes] = []
        self._wait_read, self._wait_read_write = _waiters(conn.pgconn.socket)

    def run(self, statements: Sequence[Statement]) -> list[Result]:
        """Run ``statements`` in order, in one round trip; their results, in order. An
        error (the first failed statement's) is raised once every result is in. A
        connection broken on the way, or an interrupt while waiting, leaves the
        connection closed (the pool then replaces it)."""
        # Everything that can fail on the client happens before anything is queued.
        queued: list[tuple[bytes | None, bytes, Sequence[Any]]] = []
        for query, params in statements:
            sql, count = numbered(query)
            if count != len(params):
                raise psycopg.ProgrammingError(
                    f"the statement has {count} placeholders but {len(params)} parameters"
                    f" were given: {sql.decode()!r}"
                )
            if count > _MAX_PARAMS:
                raise psycopg.ProgrammingError(
                    f"a statement takes at most {_MAX_PARAMS} parameters, got {count}"
                )
            values = self._adapt.dump_sequence(params, [PyFormat.TEXT] * count)
            queued.append((self._name(sql), sql, values))
        # Released only where a DEALLOCATE cannot fail: not in a failed transaction
        # (it would fail there, and take the statements after it along).
        release: list[bytes] = []
        if self._to_release and self._conn.pgconn.transaction_status in _TX_HEALTHY:
            release, self._to_release = self._to_release, []
        with self._conn.lock:
            try:
                results, prepared = self._exchange(self._conn.pgconn, queued, release)
            except BaseException:
                self._conn.close()
                raise
        self._names.update(prepared)
        while len(self._names) > self._max_prepared:
            self._to_release.append(self._names.popitem(last=False)[1])
        for res in results:
            if res.status == _FATAL_ERROR:
                raise psycopg.errors.error_from_result(res, encoding=self._conn.info.encoding)
        return [Result(res, self._adapt) for res in results]

    def _name(self, sql: bytes) -> bytes | None:
        """The statement's prepared name; ``b""`` for one to prepare now, ``None`` to
        run it unnamed."""
        if not self._prepare:
            return None
        name = self._names.get(sql)
        if name is None:
            return b""
        self._names.move_to_end(sql)
        return name

    def _exchange(
        self,
        pgconn: pq.abc.PGconn,
        queued: list[tuple[bytes | None, bytes, Sequence[Any]]],
        release: list[bytes],
    ) -> tuple[list[pq.abc.PGresult], dict[bytes, bytes]]:
        """Send, sync, read: each statement's result (the first error in place of those
        the server skipped) and the statements prepared on the way (SQL to name)."""
        commands = 0
        pgconn.enter_pipeline_mode()
        for old in release:
            pgconn.send_query_params(b"DEALLOCATE " + old, None)
            commands += 1
        preparing: dict[bytes, tuple[bytes, int]] = {}  # SQL -> (name, command number)
        answers: list[int] = []  # each statement's command number
        for known, sql, values in queued:
            name: bytes | None = known
            if name == b"":
                if sql not in preparing:
                    preparing[sql] = (b"sw_%d" % next(_names), commands)
                    pgconn.send_prepare(preparing[sql][0], sql)
                    commands += 1
                name = preparing[sql][0]
            if name is None:
                pgconn.send_query_params(sql, values)
            else:
                pgconn.send_query_prepared(name, values)
            answers.append(commands)
            commands += 1
        pgconn.pipeline_sync()
        # Read while flushing: a server blocked writing results would never read on.
        while pgconn.flush() == 1:
            self._wait_read_write()
            pgconn.consume_input()
        got: list[pq.abc.PGresult | None] = [None] * commands
        done = 0
        while True:
            while pgconn.is_busy():
                self._wait_read()
                pgconn.consume_input()
            res = pgconn.get_result()
            if res is None:
                done += 1  # the end of one command's results
            elif res.status == _PIPELINE_SYNC:
                break
            else:
                got[done] = res
        pgconn.exit_pipeline_mode()
        failed = next((r for r in got if r is not None and r.status == _FATAL_ERROR), None)
        results: list[pq.abc.PGresult] = []
        for command in answers:
            res = got[command]
            if failed is not None and (res is None or res.status not in _DONE):
                res = failed  # skipped because of it
            assert res is not None  # the server answers every command it ran
            results.append(res)
        prepared = {
            sql: name
            for sql, (name, command) in preparing.items()
            if (res := got[command]) is not None and res.status == _COMMAND_OK
        }
        return results, prepared


def _waiters(fd: int) -> tuple[Callable[[], object], Callable[[], object]]:
    """Two calls that block until ``fd`` can be read, and until it can be read or
    written: ``poll`` where the platform has it (no limit on the descriptor's number),
    else ``select`` (Windows)."""
    if hasattr(select, "poll"):
        read = select.poll()
        read.register(fd, select.POLLIN)
        read_write = select.poll()
        read_write.register(fd, select.POLLIN | select.POLLOUT)
        return read.poll, read_write.poll
    return (
        lambda: select.select([fd], [], []),
        lambda: select.select([fd], [fd], []),
    )
