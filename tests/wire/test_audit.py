"""Audit rows: every column, JSON-safe, the caller's time kept exactly, never a naive one."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from statewise import Event, TransitionResult
from statewise.model.audit import AUDIT_COLUMNS, audit_entry
from tests.wire import json_payloads, lenient_machine, wire_machine

AT = datetime(2026, 11, 22, 21, 32, 11, 250_000, tzinfo=UTC)
AT_TEXT = "2026-11-22T21:32:11.250000+00:00"


def _base(**row: Any) -> dict[str, Any]:
    """A row with the columns every case below shares; ``row`` fills in the rest."""
    return {"entity_id": "order-1", "at": AT_TEXT, **row}


ROWS: list[Any] = [
    pytest.param(
        lambda: wire_machine().process(
            "IDLE", Event("start", {"note": "hi", "n": [1, {"k": None}]}, id="e-1"), {"budget": 9}
        ),
        _base(
            event_id="e-1",
            trigger="start",
            source_state="IDLE",
            target_state="BUSY",
            success=True,
            ignored=False,
            state_changed=True,
            error_code=None,
            error_message=None,
            actions=["log", "reserve", "notify", "charge"],
            payload={"note": "hi", "n": [1, {"k": None}]},
        ),
        id="success",
    ),
    pytest.param(
        lambda: wire_machine().process("IDLE", Event("start", id="e-2"), {"budget": 1}),
        _base(
            event_id="e-2",
            trigger="start",
            source_state="IDLE",
            target_state="IDLE",
            success=False,
            ignored=False,
            state_changed=False,
            error_code="guard_rejected",
            error_message="'start' in state 'IDLE' rejected by guard(s): has_budget",
            actions=[],
            payload={},
        ),
        id="guard-rejected",
    ),
    pytest.param(
        lambda: wire_machine().process("BUSY", Event("pay", {"amount": -1}), {"budget": 1}),
        _base(
            event_id=None,
            trigger="pay",
            source_state="BUSY",
            target_state="BUSY",
            success=False,
            ignored=False,
            state_changed=False,
            error_code="invalid_payload",
            error_message="the payload of 'pay' does not match its payload_schema:\n"
            "  amount: expected a number >= 0, got -1",
            actions=[],
            payload={"amount": -1},
        ),
        id="invalid-payload",
    ),
    pytest.param(
        lambda: lenient_machine().process("A", Event("unheard_of", id="e-3")),
        _base(
            event_id="e-3",
            trigger="unheard_of",
            source_state="A",
            target_state="A",
            success=True,
            ignored=True,
            state_changed=False,
            error_code=None,
            error_message=None,
            actions=[],
            payload={},
        ),
        id="ignored",
    ),
    pytest.param(
        lambda: wire_machine().fail("BUSY", RuntimeError("card declined"), event_id="f-1"),
        _base(
            event_id="f-1",
            trigger="error",
            source_state="BUSY",
            target_state="BROKEN",
            success=True,
            ignored=False,
            state_changed=True,
            error_code=None,
            error_message=None,
            actions=["log", "alert"],
            payload={"error": "card declined", "error_type": "RuntimeError"},
        ),
        id="fallback",
    ),
    pytest.param(
        lambda: wire_machine().timeout_result("BUSY", event_id="t-1"),
        _base(
            event_id="t-1",
            trigger="timeout",
            source_state="BUSY",
            target_state="EXPIRED",
            success=True,
            ignored=False,
            state_changed=True,
            error_code=None,
            error_message=None,
            actions=["log"],
            payload={},
        ),
        id="timeout",
    ),
]


@pytest.mark.parametrize(("build", "expected"), ROWS)
def test_audit_row(build: Any, expected: dict[str, Any]) -> None:
    result: TransitionResult = build()
    row = audit_entry(result, "order-1", AT)
    assert row == expected
    assert tuple(row) == AUDIT_COLUMNS
    assert json.loads(json.dumps(row, allow_nan=False)) == row


def test_failed_row_carries_the_results_error() -> None:
    result = wire_machine().process("DONE", Event("start", id="late"))
    error = result.error
    assert error is not None
    row = audit_entry(result, "order-9", AT)
    assert (row["error_code"], row["error_message"]) == (error.code, str(error))
    assert row["error_code"] == "terminal_state"
    assert row["target_state"] == row["source_state"] == "DONE"
    assert row["success"] is False


def test_columns_are_the_documented_ones() -> None:
    assert AUDIT_COLUMNS == (
        "entity_id",
        "at",
        "event_id",
        "trigger",
        "source_state",
        "target_state",
        "success",
        "ignored",
        "state_changed",
        "error_code",
        "error_message",
        "actions",
        "payload",
    )


@pytest.mark.parametrize(
    ("at", "text"),
    [
        pytest.param(AT, AT_TEXT, id="utc"),
        pytest.param(
            datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=5, minutes=30))),
            "2026-01-02T03:04:05.000000+05:30",
            id="offset-kept-microseconds-always-written",
        ),
        pytest.param(
            datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone(-timedelta(hours=8))),
            "2026-01-02T03:04:05.000006-08:00",
            id="negative-offset",
        ),
    ],
)
def test_at_is_iso_8601_with_the_callers_offset(at: datetime, text: str) -> None:
    row = audit_entry(wire_machine().process("IDLE", "abort"), "x", at)
    assert row["at"] == text


def test_naive_datetime_is_refused() -> None:
    result = wire_machine().process("IDLE", "abort")
    with pytest.raises(ValueError, match="timezone-aware, got the naive datetime 2026-11-22T21"):
        audit_entry(result, "order-1", AT.replace(tzinfo=None))


@pytest.mark.parametrize(
    "at",
    [
        pytest.param("2026-11-22T21:32:11+00:00", id="a-string"),
        pytest.param(date(2026, 11, 22), id="a-date"),
    ],
)
def test_at_must_be_a_datetime(at: Any) -> None:
    result = wire_machine().process("IDLE", "abort")
    with pytest.raises(TypeError, match="at must be a timezone-aware datetime"):
        audit_entry(result, "order-1", at)


def test_entity_id_must_be_a_string() -> None:
    result = wire_machine().process("IDLE", "abort")
    with pytest.raises(TypeError, match="entity_id must be a str, got int"):
        audit_entry(result, 17, AT)  # type: ignore[arg-type]


def test_a_time_of_day_is_refused_by_the_type_checker_too() -> None:
    # The protocol lists timestamp() so mypy refuses a datetime.time; this line would
    # fail `mypy --strict` (unused ignore) if the protocol stopped refusing it.
    result = wire_machine().process("IDLE", "abort")
    with pytest.raises(TypeError):
        audit_entry(result, "x", time(1, tzinfo=UTC))  # type: ignore[arg-type]


_offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


@given(
    trigger=st.sampled_from(["start", "ping", "pay", "finish", "abort"]) | st.text(max_size=10),
    payload=json_payloads,
    at=st.datetimes(timezones=_offsets),
    entity_id=st.text(max_size=20),
)
def test_any_row_is_json_and_keeps_time_and_payload(
    trigger: str, payload: dict[str, Any], at: datetime, entity_id: str
) -> None:
    result = wire_machine().process("BUSY", Event(trigger, payload), {"budget": 50})
    row = audit_entry(result, entity_id, at)
    assert json.loads(json.dumps(row, allow_nan=False)) == row
    back = datetime.fromisoformat(row["at"])
    assert back == at
    assert back.utcoffset() == at.utcoffset()
    assert row["payload"] == payload
    assert row["actions"] == list(result.action_names)
    assert (row["error_code"] is None) == result.success


def test_the_result_method_is_the_function() -> None:
    result = wire_machine().process("BUSY", Event("ping", id="m-1"))
    at = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)
    assert result.audit_entry("ORD-1", at) == audit_entry(result, "ORD-1", at)
    assert list(result.audit_entry("ORD-1", at)) == list(AUDIT_COLUMNS)
