"""What ``runtime/pg_pipeline.py`` does on a real PostgreSQL server (``tests/runtime/pg.py``).

* ``numbered``: ``%s`` becomes ``$1..$n`` and ``%%`` a ``%``; any other ``%`` is refused;
  the count is right; the answer is memoised.
* ``Pipeline.run``: values of every common type go out as text and come back as psycopg
  loads them; the statements of one call run in order, each seeing what the ones before
  it did; ``rowcount``, ``fetchone`` and ``fetchall`` answer as documented.
* Errors: the first failing statement's error, as psycopg's own exception class with its
  ``diag``, once every result is read (the connection goes on working); in an explicit
  transaction the transaction is left failed and nothing after the failure ran; outside
  one the whole call was one implicit transaction and is rolled back as a whole.
* Prepared statements: prepared once per connection (seen in ``pg_prepared_statements``),
  never with ``prepare=False``, at most ``max_prepared`` kept in LRU order, the evicted
  ones deallocated with the next call; a failed or skipped PREPARE is not remembered.
* Client-side mistakes (parameter count, unadaptable values) are refused before anything
  is sent; a broken connection or an exception while waiting closes the connection.
* Large payloads and many parameters (the flush loop) round-trip intact.

No mocks: every statement goes to the session's server, each test in a schema of its own.
"""

from __future__ import annotations

import select
import signal
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg import errors, sql
from psycopg.pq import TransactionStatus
from psycopg.types.json import Jsonb

from statewise.runtime import pg_pipeline
from statewise.runtime.pg_pipeline import Pipeline, Result, Statement, numbered
from tests.runtime.pg import fresh_schema, server_dsn

Conn = psycopg.Connection[Any]


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture
def dsn() -> str:
    return server_dsn()


@pytest.fixture
def schema(dsn: str) -> Iterator[str]:
    """A schema of the test's own, holding ``items`` (primary key ``items_pkey``, a NOT
    NULL column) and the sequence ``ticks``; dropped afterwards."""
    name = fresh_schema()
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        admin.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(name)))
        admin.execute(
            "CREATE TABLE items (id bigint CONSTRAINT items_pkey PRIMARY KEY,"
            " name text NOT NULL, qty int NOT NULL DEFAULT 0)"
        )
        admin.execute("CREATE SEQUENCE ticks")
    yield name
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def connect(dsn: str, schema: str) -> Conn:
    """An autocommit connection on ``schema``, in UTC, that prepares nothing of its own
    (so ``pg_prepared_statements`` holds only the pipeline's statements)."""
    conn: Conn = psycopg.connect(dsn, autocommit=True, prepare_threshold=None)
    conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
    conn.execute("SET TimeZone TO 'UTC'")
    return conn


@pytest.fixture
def conn(dsn: str, schema: str) -> Iterator[Conn]:
    conn = connect(dsn, schema)
    yield conn
    conn.close()


@pytest.fixture
def pipe(conn: Conn) -> Pipeline:
    return Pipeline(conn)


def prepared(conn: Conn) -> dict[str, str]:
    """The pipeline's prepared statements on ``conn``: statement text -> name. Asserts
    that no text is prepared twice."""
    rows = conn.execute(
        r"SELECT name, statement FROM pg_prepared_statements WHERE name LIKE 'sw\_%'"
    ).fetchall()
    found = {statement: name for name, statement in rows}
    assert len(found) == len(rows), f"a statement is prepared twice: {rows}"
    return found


def committed_items(dsn: str, schema: str) -> list[tuple[int, str]]:
    """``items`` as another connection sees it: what is committed."""
    with connect(dsn, schema) as other:
        return [(i, n) for i, n in other.execute("SELECT id, name FROM items ORDER BY id")]


def ticks_taken(dsn: str, schema: str) -> bool:
    """Whether ``nextval('ticks')`` ever ran (sequences ignore rollbacks)."""
    with connect(dsn, schema) as other:
        row = other.execute("SELECT is_called FROM ticks").fetchone()
    assert row is not None
    return bool(row[0])


def status(conn: Conn) -> TransactionStatus:
    """The connection's transaction status, read afresh (not narrowed by mypy)."""
    return conn.info.transaction_status


def one(pipe: Pipeline, query: str | bytes, *params: Any) -> dict[str, Any] | None:
    return pipe.run([(query, params)])[0].fetchone()


# -- numbered -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected", "count"),
    [
        ("SELECT 1", b"SELECT 1", 0),
        ("", b"", 0),
        ("SELECT %s", b"SELECT $1", 1),
        ("SELECT %s, %s, %s", b"SELECT $1, $2, $3", 3),
        ("SELECT %s%s", b"SELECT $1$2", 2),
        ("SELECT '100%%'", b"SELECT '100%'", 0),
        ("SELECT %s LIKE 'a%%'", b"SELECT $1 LIKE 'a%'", 1),
        ("%%s", b"%s", 0),  # a percent sign, then a plain s: no placeholder
        ("%%%s", b"%$1", 1),
        ("%%%%", b"%%", 0),
        (b"SELECT %s::int", b"SELECT $1::int", 1),
        (b"SELECT '%%'", b"SELECT '%'", 0),
        ("SELECT 'é ✓', %s", "SELECT 'é ✓', $1".encode(), 1),
        (
            "VALUES (" + ", ".join(["%s"] * 12) + ")",
            ("VALUES (" + ", ".join(f"${i}" for i in range(1, 13)) + ")").encode(),
            12,
        ),
    ],
)
def test_numbered_turns_placeholders_into_positions(
    query: str | bytes, expected: bytes, count: int
) -> None:
    assert numbered(query) == (expected, count)
    assert numbered(query) == (expected, count)  # the memoised answer is the same


@pytest.mark.parametrize(
    "query",
    [
        "SELECT %d",
        "SELECT 100%",
        "SELECT %",
        "SELECT %(name)s",
        "SELECT % s",
        "SELECT %S",
        "SELECT %%%",
        b"SELECT %b",
    ],
)
def test_numbered_refuses_any_other_percent(query: str | bytes) -> None:
    text = query.decode() if isinstance(query, bytes) else query
    with pytest.raises(ValueError, match=r"only %s and %% may follow a % in a statement") as exc:
        numbered(query)
    assert repr(text) in str(exc.value)  # the statement is named
    with pytest.raises(ValueError, match="only %s and %%"):
        numbered(query)  # a refusal is not memoised as an answer


def test_numbered_memoises_and_starts_over_when_full() -> None:
    query = f"SELECT %s AS memo_{uuid.uuid4().hex}"
    assert numbered(query) is numbered(query)
    for n in range(pg_pipeline._NUMBERED_MAX + 10):
        assert numbered(f"SELECT %s, {n}") == (f"SELECT $1, {n}".encode(), 1)
    assert len(pg_pipeline._numbered) <= pg_pipeline._NUMBERED_MAX
    assert numbered(query) == (query.replace("%s", "$1").encode(), 1)


@given(st.lists(st.text().filter(lambda s: "%" not in s), min_size=1, max_size=8))
def test_numbered_numbers_every_placeholder_in_order(parts: list[str]) -> None:
    sql_text, count = numbered("%s".join(parts))
    expected = parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], start=1))
    assert (sql_text, count) == (expected.encode(), len(parts) - 1)


# -- values -------------------------------------------------------------------------------

TOKYO = timezone(timedelta(hours=9))
SOME_UUID = uuid.UUID("12345678-1234-5678-1234-567812345678")


@pytest.mark.parametrize(
    ("cast", "value", "expected"),
    [
        pytest.param("int", 42, 42, id="int"),
        pytest.param("int", -7, -7, id="negative-int"),
        pytest.param("bigint", 2**62 + 3, 2**62 + 3, id="bigint"),
        pytest.param("bigint", -(2**63), -(2**63), id="bigint-min"),
        pytest.param("numeric", 10**30, Decimal(10**30), id="huge-int-as-numeric"),
        pytest.param("numeric", Decimal("-1.25"), Decimal("-1.25"), id="decimal"),
        pytest.param("float8", 1.5, 1.5, id="float"),
        pytest.param("text", "héllo ✓ 日本 🎉", "héllo ✓ 日本 🎉", id="unicode"),
        pytest.param("text", "", "", id="empty-text"),
        pytest.param("text", 'it\'s "q" \\ %s %% $1', 'it\'s "q" \\ %s %% $1', id="sql-ish"),
        pytest.param("text", "a\nb\tc", "a\nb\tc", id="control-chars"),
        pytest.param("int", None, None, id="null-int"),
        pytest.param("text", None, None, id="null-text"),
        pytest.param("boolean", True, True, id="true"),
        pytest.param("boolean", False, False, id="false"),
        pytest.param(
            "timestamptz",
            datetime(2026, 3, 1, 21, 30, 15, 123456, tzinfo=TOKYO),
            datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC),
            id="timestamptz",
        ),
        pytest.param("date", date(2024, 2, 29), date(2024, 2, 29), id="date"),
        pytest.param("uuid", SOME_UUID, SOME_UUID, id="uuid"),
        pytest.param("bytea", b"\x00\x01'\\\xff", b"\x00\x01'\\\xff", id="bytea"),
        pytest.param(
            "jsonb",
            Jsonb({"a": [1, None, True], "b": {"c": "é"}, "d": 1.5}),
            {"a": [1, None, True], "b": {"c": "é"}, "d": 1.5},
            id="jsonb-object",
        ),
        pytest.param("jsonb", Jsonb([1, "x", None]), [1, "x", None], id="jsonb-array"),
        pytest.param("jsonb", Jsonb("%s"), "%s", id="jsonb-string"),
        pytest.param("bigint[]", [1, 2, 3], [1, 2, 3], id="bigint-array"),
        pytest.param("bigint[]", [], [], id="empty-array"),
        pytest.param("bigint[]", [2**40, None, -1], [2**40, None, -1], id="array-with-null"),
        pytest.param("text[]", ["a", "b,c", '"q"', ""], ["a", "b,c", '"q"', ""], id="text-array"),
    ],
)
def test_values_round_trip(pipe: Pipeline, cast: str, value: Any, expected: Any) -> None:
    row = one(pipe, f"SELECT %s::{cast} AS v", value)
    assert row is not None
    assert row == {"v": expected}
    assert type(row["v"]) is type(expected)


def test_timestamptz_comes_back_as_the_same_instant_in_utc(pipe: Pipeline) -> None:
    sent = datetime(2026, 3, 1, 21, 30, tzinfo=TOKYO)
    row = one(pipe, "SELECT %s::timestamptz AS t, %s::timestamptz = %s AS same", sent, sent, sent)
    assert row is not None
    assert row["t"] == sent
    assert row["t"].utcoffset() == timedelta(0)  # the session's TimeZone is UTC
    assert row["same"] is True


def test_a_parameter_of_no_inferable_type_is_text(pipe: Pipeline) -> None:
    # Parameters go out untyped: with nothing to infer from, the server takes text where
    # it may (a select list) and refuses where it may not (a function of any type).
    assert one(pipe, "SELECT %s AS v", 42) == {"v": "42"}
    with pytest.raises(errors.IndeterminateDatatype):
        one(pipe, "SELECT pg_typeof(%s) AS t", 42)
    assert one(pipe, "SELECT pg_typeof(%s::int)::text AS t", 42) == {"t": "integer"}


def test_types_inferred_from_the_column_a_value_goes_into(pipe: Pipeline) -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=TOKYO)
    values = (2**50, "zoë", True, at, Jsonb({"k": [1, 2]}), [3, 4], Decimal("9.99"), None)
    results = pipe.run(
        [
            (
                "CREATE TEMP TABLE typed (id bigint PRIMARY KEY, name text, flag boolean,"
                " at timestamptz, doc jsonb, tags bigint[], amount numeric(6, 2), note text)",
                (),
            ),
            ("INSERT INTO typed VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", values),
            ("SELECT * FROM typed WHERE id = %s AND at = %s AND flag = %s", (2**50, at, True)),
            (
                "SELECT count(*) AS n FROM typed WHERE tags = %s AND doc @> %s",
                ([3, 4], '{"k":[1]}'),
            ),
        ]
    )
    assert results[1].rowcount == 1
    assert results[2].fetchall() == [
        {
            "id": 2**50,
            "name": "zoë",
            "flag": True,
            "at": at,
            "doc": {"k": [1, 2]},
            "tags": [3, 4],
            "amount": Decimal("9.99"),
            "note": None,
        }
    ]
    assert results[3].fetchone() == {"n": 1}


def test_statements_may_be_bytes(pipe: Pipeline) -> None:
    assert one(pipe, b"SELECT %s::int + 1 AS v, '50%%' AS pct", 1) == {"v": 2, "pct": "50%"}


def test_a_percent_in_a_value_is_just_a_value(pipe: Pipeline) -> None:
    assert one(pipe, "SELECT %s::text || '%%' AS v", "%s %d %") == {"v": "%s %d %%"}


# -- several statements in one call -------------------------------------------------------


def test_statements_run_in_order_and_see_each_other(pipe: Pipeline) -> None:
    results = pipe.run(
        [
            ("INSERT INTO items (id, name) VALUES (%s, %s), (%s, %s)", (1, "a", 2, "b")),
            ("SELECT id, name FROM items ORDER BY id", ()),
            ("UPDATE items SET name = name || '!' WHERE id = %s", (1,)),
            ("SELECT name FROM items WHERE id = %s", (1,)),
            ("DELETE FROM items WHERE id = %s", (2,)),
            ("SELECT count(*) AS n FROM items", ()),
        ]
    )
    assert len(results) == 6
    assert all(isinstance(result, Result) for result in results)
    assert results[1].fetchall() == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    assert results[3].fetchone() == {"name": "a!"}
    assert results[5].fetchone() == {"n": 1}


@pytest.mark.parametrize(
    ("statement", "params", "rowcount", "rows"),
    [
        ("INSERT INTO items (id, name) VALUES (%s, 'x')", (10,), 1, []),
        ("INSERT INTO items (id, name) SELECT g, 'g' FROM generate_series(20, 24) g", (), 5, []),
        (
            "INSERT INTO items (id, name) VALUES (%s, 'r') RETURNING id",
            (30,),
            1,
            [{"id": 30}],
        ),
        ("UPDATE items SET qty = qty + 1 WHERE id < %s", (3,), 2, []),
        ("UPDATE items SET qty = 0 WHERE id = %s", (999,), 0, []),
        ("DELETE FROM items WHERE id = %s", (1,), 1, []),
        ("DELETE FROM items WHERE id > %s", (1000,), 0, []),
        ("SELECT id FROM items ORDER BY id", (), 2, [{"id": 1}, {"id": 2}]),
        ("SELECT id FROM items WHERE id = %s", (999,), 0, []),
        ("BEGIN", (), -1, []),
        ("SET LOCAL work_mem = '8MB'", (), -1, []),
        ("CREATE TEMP TABLE scratch (x int)", (), -1, []),
        ("", (), -1, []),
    ],
)
def test_rowcount_and_rows(
    pipe: Pipeline,
    statement: str,
    params: tuple[Any, ...],
    rowcount: int,
    rows: list[dict[str, Any]],
) -> None:
    pipe.run([("INSERT INTO items (id, name) VALUES (1, 'a'), (2, 'b')", ())])
    [result] = pipe.run([(statement, params)])
    assert result.rowcount == rowcount
    assert result.fetchall() == rows
    assert result.fetchall() == rows  # reading again reads the same
    assert result.fetchone() == (rows[0] if rows else None)


def test_results_read_in_any_order(pipe: Pipeline) -> None:
    first, second = pipe.run([("SELECT 1 AS a, 'x' AS b", ()), ("SELECT true AS c", ())])
    assert second.fetchone() == {"c": True}
    assert first.fetchall() == [{"a": 1, "b": "x"}]
    assert second.fetchall() == [{"c": True}]


def test_an_empty_call_returns_nothing(pipe: Pipeline, conn: Conn) -> None:
    assert pipe.run([]) == []
    assert one(pipe, "SELECT 1 AS one") == {"one": 1}
    assert status(conn) == TransactionStatus.IDLE


def test_a_transaction_spans_calls(pipe: Pipeline, conn: Conn, dsn: str, schema: str) -> None:
    pipe.run([("BEGIN", ()), ("INSERT INTO items (id, name) VALUES (1, 'a')", ())])
    assert status(conn) == TransactionStatus.INTRANS
    assert committed_items(dsn, schema) == []
    pipe.run([("INSERT INTO items (id, name) VALUES (2, 'b')", ()), ("COMMIT", ())])
    assert status(conn) == TransactionStatus.IDLE
    assert committed_items(dsn, schema) == [(1, "a"), (2, "b")]


# -- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize("prepare", [True, False], ids=["prepared", "unnamed"])
@pytest.mark.parametrize(
    ("statement", "params", "error", "sqlstate"),
    [
        ("SELECT 1/0", (), errors.DivisionByZero, "22012"),
        ("SELECT %s::int", ("x",), errors.InvalidTextRepresentation, "22P02"),
        ("SELECT * FROM no_such_table", (), errors.UndefinedTable, "42P01"),
        ("SELECT no_such_column FROM items", (), errors.UndefinedColumn, "42703"),
        ("SELEC 1", (), errors.SyntaxError, "42601"),
        ("SELECT %s::int", (2**40,), errors.NumericValueOutOfRange, "22003"),
        ("INSERT INTO items (id, name) VALUES (1, 'dup')", (), errors.UniqueViolation, "23505"),
        ("SET LOCAL statement_timeout = 1; SELECT 1", (), errors.SyntaxError, "42601"),
    ],
)
def test_errors_are_psycopgs_own_and_the_connection_goes_on(
    conn: Conn,
    prepare: bool,
    statement: str,
    params: tuple[Any, ...],
    error: type[psycopg.Error],
    sqlstate: str,
) -> None:
    pipe = Pipeline(conn, prepare=prepare)
    pipe.run([("INSERT INTO items (id, name) VALUES (1, 'a')", ())])
    with pytest.raises(error) as exc:
        pipe.run([("SELECT 'before' AS b", ()), (statement, params), ("SELECT 'after'", ())])
    assert type(exc.value) is error
    assert exc.value.sqlstate == sqlstate
    assert exc.value.diag.sqlstate == sqlstate
    assert exc.value.diag.message_primary
    assert not conn.closed
    assert status(conn) == TransactionStatus.IDLE
    # Every result of the failed call was read: the next call gets its own.
    assert one(pipe, "SELECT 'next' AS n") == {"n": "next"}


def test_unique_violation_outside_a_transaction_undoes_the_whole_call(
    pipe: Pipeline, conn: Conn, dsn: str, schema: str
) -> None:
    pipe.run([("INSERT INTO items (id, name) VALUES (1, 'a')", ())])
    with pytest.raises(errors.UniqueViolation) as exc:
        pipe.run(
            [
                ("INSERT INTO items (id, name) VALUES (2, 'before')", ()),
                ("INSERT INTO items (id, name) VALUES (1, 'dup')", ()),
                ("SELECT nextval('ticks')", ()),
                ("INSERT INTO items (id, name) VALUES (3, 'after')", ()),
            ]
        )
    assert exc.value.diag.constraint_name == "items_pkey"
    assert exc.value.diag.table_name == "items"
    # No BEGIN, yet the statement before the failing one is gone too: up to the sync,
    # a pipeline's statements share one implicit transaction, which the error rolls
    # back, and the server skips what was queued after the failure (libpq's pipeline
    # mode documentation says so). So autocommit means per call here, not per statement.
    assert status(conn) == TransactionStatus.IDLE
    assert committed_items(dsn, schema) == [(1, "a")]
    assert not ticks_taken(dsn, schema)  # skipped: sequences ignore rollbacks


def test_unique_violation_inside_begin_fails_the_transaction(
    pipe: Pipeline, conn: Conn, dsn: str, schema: str
) -> None:
    pipe.run([("INSERT INTO items (id, name) VALUES (1, 'a')", ())])
    with pytest.raises(errors.UniqueViolation) as exc:
        pipe.run(
            [
                ("BEGIN", ()),
                ("INSERT INTO items (id, name) VALUES (2, 'before')", ()),
                ("INSERT INTO items (id, name) VALUES (1, 'dup')", ()),
                ("SELECT nextval('ticks')", ()),
                ("INSERT INTO items (id, name) VALUES (3, 'after')", ()),
                ("COMMIT", ()),
            ]
        )
    assert exc.value.diag.constraint_name == "items_pkey"
    # The COMMIT was skipped with the rest: the transaction is open, and failed.
    assert status(conn) == TransactionStatus.INERROR
    with pytest.raises(errors.InFailedSqlTransaction):
        pipe.run([("SELECT 1", ())])
    assert not ticks_taken(dsn, schema)  # nothing after the failing statement ran
    conn.execute("ROLLBACK")
    assert status(conn) == TransactionStatus.IDLE
    assert committed_items(dsn, schema) == [(1, "a")]
    assert one(pipe, "SELECT count(*) AS n FROM items") == {"n": 1}


def test_rollback_through_the_pipeline_ends_a_failed_transaction(
    pipe: Pipeline, conn: Conn, dsn: str, schema: str
) -> None:
    with pytest.raises(errors.DivisionByZero):
        pipe.run(
            [
                ("BEGIN", ()),
                ("INSERT INTO items (id, name) VALUES (5, 'e')", ()),
                ("SELECT 1/0", ()),
            ]
        )
    assert status(conn) == TransactionStatus.INERROR
    [result] = pipe.run([("ROLLBACK", ())])
    assert result.rowcount == -1
    assert status(conn) == TransactionStatus.IDLE
    assert committed_items(dsn, schema) == []


def test_rollback_through_the_pipeline_with_an_eviction_pending(conn: Conn) -> None:
    pipe = Pipeline(conn, max_prepared=1)
    with pytest.raises(errors.DivisionByZero):
        pipe.run([("BEGIN", ()), ("SELECT 1/0", ())])  # two prepared: BEGIN is evicted
    # The DEALLOCATE waits: in the failed transaction it would fail, and the ROLLBACK
    # with it.
    pipe.run([("ROLLBACK", ())])
    assert status(conn) == TransactionStatus.IDLE
    assert "BEGIN" in prepared(conn)
    pipe.run([("SELECT 1", ())])  # idle now: the DEALLOCATE goes with it, nothing leaks
    # ROLLBACK was evicted by SELECT 1, and goes with the next run.
    assert set(prepared(conn)) == {"ROLLBACK", "SELECT 1"}
    pipe.run([("SELECT 1", ())])
    assert set(prepared(conn)) == {"SELECT 1"}


def test_not_null_violation_names_the_column(pipe: Pipeline) -> None:
    with pytest.raises(errors.NotNullViolation) as exc:
        pipe.run([("INSERT INTO items (id, name) VALUES (%s, %s)", (1, None))])
    assert exc.value.diag.column_name == "name"
    assert exc.value.diag.table_name == "items"


@pytest.mark.parametrize("prepare", [True, False], ids=["prepared", "unnamed"])
def test_a_syntax_error_is_not_remembered_as_prepared(conn: Conn, prepare: bool) -> None:
    pipe = Pipeline(conn, prepare=prepare)
    bad = "SELEKT %s::int"
    for _ in range(2):  # not remembered: the second try fails the same way, not by name
        with pytest.raises(errors.SyntaxError) as exc:
            pipe.run([(bad, (1,))])
        assert exc.value.diag.sqlstate == "42601"
        assert one(pipe, "SELECT %s::int AS v", 7) == {"v": 7}
    names = prepared(conn)
    assert numbered(bad)[0].decode() not in names
    assert set(names) == ({"SELECT $1::int AS v"} if prepare else set())


def test_a_statement_skipped_after_an_error_is_prepared_when_it_runs(conn: Conn) -> None:
    pipe = Pipeline(conn)
    skipped = "SELECT %s::int * 2 AS v"
    with pytest.raises(errors.DivisionByZero):
        pipe.run([("SELECT 1/0", ()), (skipped, (4,))])
    assert numbered(skipped)[0].decode() not in prepared(conn)
    assert one(pipe, skipped, 4) == {"v": 8}  # prepared now, not run by a name never made
    assert one(pipe, skipped, 5) == {"v": 10}
    assert numbered(skipped)[0].decode() in prepared(conn)


def test_a_statement_prepared_before_the_failure_is_kept(conn: Conn) -> None:
    pipe = Pipeline(conn)
    with pytest.raises(errors.DivisionByZero):
        pipe.run([("SELECT 2 AS two", ()), ("SELECT 1/0", ())])
    assert set(prepared(conn)) == {"SELECT 2 AS two", "SELECT 1/0"}
    assert one(pipe, "SELECT 2 AS two") == {"two": 2}
    assert set(prepared(conn)) == {"SELECT 2 AS two", "SELECT 1/0"}


# -- prepared statements ------------------------------------------------------------------


def test_a_statement_is_prepared_once_and_then_used_by_name(conn: Conn) -> None:
    pipe = Pipeline(conn)
    query = "SELECT %s::int + 1 AS v"
    assert one(pipe, query, 1) == {"v": 2}
    assert one(pipe, query, 2) == {"v": 3}
    found = prepared(conn)
    assert list(found) == ["SELECT $1::int + 1 AS v"]
    assert found["SELECT $1::int + 1 AS v"].startswith("sw_")
    if conn.info.server_version >= 140000:  # plan counts since PostgreSQL 14
        row = conn.execute(
            "SELECT generic_plans + custom_plans FROM pg_prepared_statements WHERE name = %s",
            (found["SELECT $1::int + 1 AS v"],),
        ).fetchone()
        assert row == (2,)  # both runs executed the one prepared statement


def test_the_same_statement_twice_in_one_call_is_prepared_once(conn: Conn) -> None:
    pipe = Pipeline(conn)
    results = pipe.run([("SELECT %s::int AS v", (n,)) for n in range(3)])
    assert [result.fetchone() for result in results] == [{"v": 0}, {"v": 1}, {"v": 2}]
    assert list(prepared(conn)) == ["SELECT $1::int AS v"]


def test_prepare_false_never_prepares(conn: Conn) -> None:
    pipe = Pipeline(conn, prepare=False)
    for n in range(3):
        results = pipe.run([("SELECT %s::int AS v", (n,)), ("SELECT %s::int AS v", (n,))])
        assert [result.fetchone() for result in results] == [{"v": n}, {"v": n}]
    assert prepared(conn) == {}


A, B, C, D = "SELECT 'a' AS s", "SELECT 'b' AS s", "SELECT 'c' AS s", "SELECT 'd' AS s"


@pytest.mark.parametrize(
    ("max_prepared", "runs", "kept"),
    [
        pytest.param(2, [A, B, C, C], {B, C}, id="oldest-evicted"),
        pytest.param(2, [A, B, A, C, A], {A, C}, id="reused-is-kept"),
        pytest.param(2, [A, B, A, C, C], {A, C}, id="reused-is-kept-2"),
        pytest.param(1, [A, B, B], {B}, id="one"),
        pytest.param(3, [A, B, C, A], {A, B, C}, id="room-for-all"),
        pytest.param(3, [A, B, C, D, B, D], {B, C, D}, id="longer"),
        pytest.param(2, [A, B, C, A, B, B], {A, B}, id="evicted-and-back"),
    ],
)
def test_at_most_max_prepared_kept_least_recently_used_out(
    conn: Conn, max_prepared: int, runs: list[str], kept: set[str]
) -> None:
    pipe = Pipeline(conn, max_prepared=max_prepared)
    for query in runs:
        assert one(pipe, query) == {"s": query[8]}
    assert set(prepared(conn)) == kept


def test_an_evicted_statement_is_deallocated_with_the_next_call(conn: Conn) -> None:
    pipe = Pipeline(conn, max_prepared=2)
    for query in (A, B, C):
        one(pipe, query)
    # C evicted A from the pipeline's list; the server lets it go with the next call.
    assert set(prepared(conn)) == {A, B, C}
    assert pipe.run([]) == []
    assert set(prepared(conn)) == {B, C}


def test_an_evicted_statement_runs_again_under_a_new_name(conn: Conn) -> None:
    pipe = Pipeline(conn, max_prepared=1)
    one(pipe, A)
    first = prepared(conn)[A]
    one(pipe, B)  # evicts A
    assert one(pipe, A) == {"s": "a"}  # A's DEALLOCATE and its new PREPARE, one call
    assert one(pipe, A) == {"s": "a"}
    again = prepared(conn)
    assert set(again) == {A}
    assert again[A] != first


def test_a_call_with_more_statements_than_max_prepared(conn: Conn) -> None:
    pipe = Pipeline(conn, max_prepared=2)
    results = pipe.run([(query, ()) for query in (A, B, C, D)])
    assert [result.fetchone() for result in results] == [{"s": s} for s in "abcd"]
    assert one(pipe, D) == {"s": "d"}
    assert set(prepared(conn)) == {C, D}


def test_pipelines_on_two_connections_prepare_each_their_own(dsn: str, schema: str) -> None:
    with connect(dsn, schema) as first, connect(dsn, schema) as second:
        one(Pipeline(first), A)
        other = Pipeline(second)
        one(other, B)
        assert set(prepared(first)) == {A}
        assert set(prepared(second)) == {B}


def test_two_pipelines_on_one_connection_never_share_a_name(conn: Conn) -> None:
    # Names are unique in the process: a second Pipeline asking for the first's name
    # would get DuplicatePreparedStatement.
    assert one(Pipeline(conn), "SELECT %s::int AS v", 1) == {"v": 1}
    assert one(Pipeline(conn), "SELECT %s::int AS v", 2) == {"v": 2}
    names = conn.execute(r"SELECT name FROM pg_prepared_statements WHERE name LIKE 'sw\_%'")
    assert len(set(names.fetchall())) == 2


# -- refused on the client ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("statement", "params", "counts"),
    [
        ("SELECT %s::int", (), "1 placeholders but 0 parameters"),
        ("SELECT %s::int", (1, 2), "1 placeholders but 2 parameters"),
        ("SELECT 1", (1,), "0 placeholders but 1 parameters"),
        ("SELECT %s::int, %s::int", [1], "2 placeholders but 1 parameters"),
    ],
)
def test_a_parameter_count_mismatch_sends_nothing(
    pipe: Pipeline,
    conn: Conn,
    dsn: str,
    schema: str,
    statement: str,
    params: Sequence[Any],
    counts: str,
) -> None:
    with pytest.raises(psycopg.ProgrammingError, match=counts):
        pipe.run([("INSERT INTO items (id, name) VALUES (1, 'a')", ()), (statement, params)])
    assert not conn.closed
    assert committed_items(dsn, schema) == []  # the statement before it was not sent
    assert prepared(conn) == {}
    assert one(pipe, "SELECT %s::int AS v", 3) == {"v": 3}


def test_a_value_psycopg_cannot_adapt_sends_nothing(
    pipe: Pipeline, conn: Conn, dsn: str, schema: str
) -> None:
    with pytest.raises(psycopg.ProgrammingError, match="cannot adapt"):
        pipe.run([("INSERT INTO items (id, name) VALUES (1, 'a')", ()), ("SELECT %s", (object(),))])
    assert not conn.closed
    assert committed_items(dsn, schema) == []
    assert one(pipe, "SELECT 1 AS one") == {"one": 1}


def test_a_stray_percent_sends_nothing(pipe: Pipeline, dsn: str, schema: str) -> None:
    with pytest.raises(ValueError, match="only %s and %%"):
        pipe.run([("INSERT INTO items (id, name) VALUES (1, 'a')", ()), ("SELECT 5 % 2", ())])
    assert committed_items(dsn, schema) == []
    assert one(pipe, "SELECT 5 %% 2 AS r") == {"r": 1}


def test_the_protocols_parameter_limit(pipe: Pipeline) -> None:
    query = "SELECT array_length(ARRAY[" + ", ".join(["%s::int"] * 65535) + "], 1) AS n"
    assert one(pipe, query, *[1] * 65535) == {"n": 65535}


def test_too_many_parameters_leave_the_connection_open(pipe: Pipeline, conn: Conn) -> None:
    query = "SELECT array_length(ARRAY[" + ", ".join(["%s::int"] * 65536) + "], 1) AS n"
    with pytest.raises(psycopg.Error):
        pipe.run([(query, [1] * 65536)])
    assert one(pipe, "SELECT 1 AS one") == {"one": 1}


# -- a broken connection, an interrupt ----------------------------------------------------


def test_a_terminated_backend_closes_the_connection(pipe: Pipeline, conn: Conn, dsn: str) -> None:
    assert one(pipe, "SELECT 1 AS one") == {"one": 1}
    pid = conn.info.backend_pid
    with psycopg.connect(dsn, autocommit=True) as other:
        row = other.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,)).fetchone()
        assert row == (True,)
    with pytest.raises(psycopg.OperationalError):
        pipe.run([("SELECT 1 AS one", ())])
    assert conn.closed
    with pytest.raises(psycopg.OperationalError):
        pipe.run([("SELECT 1 AS one", ())])  # and it stays so


class Interrupted(Exception):
    pass


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs SIGALRM")
def test_an_exception_while_waiting_closes_the_connection(pipe: Pipeline, conn: Conn) -> None:
    def interrupt(signum: int, frame: object) -> None:
        raise Interrupted

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(Interrupted):
            pipe.run([("SELECT pg_sleep(5)", ())])
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    # Mid-exchange, the connection's state is unknown: closed, never reused.
    assert conn.closed


def test_without_poll_the_pipeline_waits_with_select(
    conn: Conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Windows has no select.poll: the same exchange, large enough to wait both ways.
    monkeypatch.delattr(select, "poll")
    pipe = Pipeline(conn)
    payload = "x" * 300_000
    [result] = pipe.run([("SELECT %s::text || %s AS v", (payload, "!"))])
    assert result.fetchone() == {"v": payload + "!"}


# -- large payloads -----------------------------------------------------------------------


def test_a_large_value_round_trips(pipe: Pipeline) -> None:
    big = "é✓x" * 70_000  # 210,000 characters, 420,000 bytes of UTF-8
    results = pipe.run(
        [
            ("INSERT INTO items (id, name) VALUES (%s, %s)", (1, big)),
            ("SELECT name, length(name) AS n, octet_length(name) AS bytes FROM items", ()),
        ]
    )
    assert results[1].fetchone() == {"name": big, "n": 210_000, "bytes": 420_000}


def test_two_thousand_parameters(pipe: Pipeline) -> None:
    values = [n * 7919 - 5000 for n in range(2000)]
    query = "SELECT ARRAY[" + ", ".join(["%s::bigint"] * 2000) + "] AS a"
    assert numbered(query)[1] == 2000
    assert one(pipe, query, *values) == {"a": values}
    rows = ", ".join(["(%s, %s)"] * 1000)
    [inserted, counted] = pipe.run(
        [
            (
                f"INSERT INTO items (id, name) VALUES {rows}",
                [v for n in range(1000) for v in (n, f"n{n}")],
            ),
            ("SELECT count(*) AS n, sum(id) AS s FROM items", ()),
        ]
    )
    assert inserted.rowcount == 1000
    assert counted.fetchone() == {"n": 1000, "s": Decimal(sum(range(1000)))}


def test_many_large_statements_both_ways(pipe: Pipeline) -> None:
    # Far more than a socket buffer in each direction: the server must be read while
    # the rest is still being sent, or both sides would wait on each other.
    payload = "ü" * 100_000
    results = pipe.run(
        [("SELECT %s::text || repeat('y', 100000) || %s AS v", (payload, n)) for n in range(150)]
    )
    assert len(results) == 150
    for n, result in enumerate(results):
        assert result.fetchone() == {"v": payload + "y" * 100_000 + str(n)}


def test_many_statements_in_one_call(pipe: Pipeline) -> None:
    statements: list[Statement] = [
        ("INSERT INTO items (id, name) VALUES (%s, %s)", (n, str(n))) for n in range(500)
    ]
    statements.append(("SELECT count(*) AS n FROM items", ()))
    results = pipe.run(statements)
    assert [result.rowcount for result in results[:-1]] == [1] * 500
    assert results[-1].fetchone() == {"n": 500}
