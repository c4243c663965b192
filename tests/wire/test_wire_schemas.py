"""The published event and result schemas accept what statewise writes, and only that.

Every accepted document here is a real serialized object (``Event.to_dict``,
``TransitionResult.to_dict`` of results the engine produced); every rejected one is
a real result broken in one place, so a schema that accepted anything would fail.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, ValidationError

from statewise import Event, TransitionResult
from statewise.errors import TRANSITION_ERRORS
from tests.wire import (
    SCHEMA_NAMES,
    json_payloads,
    json_round_trip,
    lenient_machine,
    load_schema,
    validator,
    wire_machine,
)

ROOT = Path(__file__).resolve().parents[2]
BUSY = {"budget": 1}  # a context: has_budget says no (minimum 5), "budget > 100" is false
RICH = {"budget": 500}


def error_paths(errors: Iterable[ValidationError]) -> set[tuple[str | int, ...]]:
    """The instance paths of ``errors`` and, through anyOf/oneOf, of their causes."""
    found: set[tuple[str | int, ...]] = set()
    for e in errors:
        found.add(tuple(e.absolute_path))
        found |= error_paths(e.context or ())
    return found


# --- the schema files ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "schema_id"),
    [
        ("event", "urn:statewise:schema:event:1"),
        ("transition_result", "urn:statewise:schema:transition_result:1"),
    ],
)
def test_schema_is_valid_draft_2020_12_with_its_id(name: str, schema_id: str) -> None:
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == schema_id
    assert schema["title"]
    assert schema["additionalProperties"] is False
    # Written for readers in other languages: every top-level key says what it is.
    undescribed = [k for k, v in schema["properties"].items() if not v.get("description")]
    assert undescribed == []


@pytest.mark.parametrize("name", ["event", "transition_result"])
def test_repo_schema_is_a_relative_symlink_to_the_packaged_file(name: str) -> None:
    link = ROOT / "schemas" / f"{name}.schema.json"
    assert link.is_symlink()
    assert os.readlink(link) == f"../src/statewise/schemas/{name}.schema.json"
    assert json.loads(link.read_text(encoding="utf-8")) == load_schema(name)


def test_schema_ids_are_distinct() -> None:
    ids = [load_schema(name)["$id"] for name in SCHEMA_NAMES]
    assert len(set(ids)) == len(SCHEMA_NAMES)


def test_error_codes_are_exactly_the_transition_errors() -> None:
    codes = load_schema("transition_result")["$defs"]["error"]["properties"]["code"]["enum"]
    assert sorted(codes) == sorted(TRANSITION_ERRORS)


# --- events ----------------------------------------------------------------------------

EVENTS = [
    pytest.param(Event("go"), id="trigger-only"),
    pytest.param(Event("go", {"qty": 3}), id="payload"),
    pytest.param(Event("go", id="msg-1"), id="id"),
    pytest.param(
        Event("execution_report", {"fill": {"qty": 10, "px": 99.5}, "tags": ["a"], "x": None}, "m"),
        id="nested-payload-and-id",
    ),
    pytest.param(Event("not an identifier!"), id="any-trigger-text"),
]


@pytest.mark.parametrize("event", EVENTS)
def test_serialized_events_validate_and_read_back(event: Event) -> None:
    data = json_round_trip(event.to_dict())
    validator("event").validate(data)
    assert Event.from_dict(data) == event


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param({"trigger": "go"}, Event("go"), id="minimal"),
        pytest.param({"trigger": "go", "payload": None, "id": None}, Event("go"), id="nulls"),
        pytest.param({"trigger": "go", "payload": {"a": [1]}}, Event("go", {"a": [1]}), id="no-id"),
    ],
)
def test_what_a_producer_may_send_is_what_from_dict_reads(
    data: dict[str, Any], expected: Event
) -> None:
    validator("event").validate(data)
    assert Event.from_dict(data) == expected


def test_event_schema_examples_are_valid() -> None:
    examples = load_schema("event")["examples"]
    assert examples
    for example in examples:
        validator("event").validate(example)
        Event.from_dict(example)


@pytest.mark.parametrize(
    ("data", "path"),
    [
        pytest.param({"payload": {}}, (), id="no-trigger"),
        pytest.param({"trigger": 7}, ("trigger",), id="trigger-not-a-string"),
        pytest.param({"trigger": "go", "payload": [1]}, ("payload",), id="payload-a-list"),
        pytest.param({"trigger": "go", "id": 17}, ("id",), id="id-a-number"),
        pytest.param({"trigger": "go", "name": "x"}, (), id="unknown-key"),
    ],
)
def test_malformed_events_are_rejected(data: dict[str, Any], path: tuple[str, ...]) -> None:
    errors = list(validator("event").iter_errors(data))
    assert errors
    assert path in error_paths(errors)


@given(trigger=st.text(max_size=30), payload=json_payloads, event_id=st.none() | st.text())
def test_any_json_event_round_trips_and_validates(
    trigger: str, payload: dict[str, Any], event_id: str | None
) -> None:
    event = Event(trigger, payload, event_id)
    data = json_round_trip(event.to_dict())
    validator("event").validate(data)
    back = Event.from_dict(data)
    assert back == event
    assert back.to_dict() == data


# --- results ---------------------------------------------------------------------------


def _process(state: str, event: str | Event, context: Any = None) -> TransitionResult:
    return wire_machine().process(state, event, context)


# (builder, what the serialized result must say): the second column makes sure each
# case produces the kind of result its id claims, not merely some valid result.
RESULTS: dict[str, tuple[Callable[[], TransitionResult | None], dict[str, Any]]] = {
    "success-with-params-retry-and-timeout": (
        lambda: _process("IDLE", Event("start", {"note": "hi"}, id="e-1"), {"budget": 10}),
        {
            "success": True,
            "state_changed": True,
            "target_state": "BUSY",
            "all_actions": [
                {"name": "log", "params": {"level": "info"}},
                {"name": "reserve", "params": {"qty": 1}},
                "notify",
                {
                    "name": "charge",
                    "params": {"amount": 10, "tags": ["a", "b"], "card": {"last4": "4242"}},
                    "retry": {"attempts": 2, "backoff_seconds": 0.1},
                },
            ],
            "timeout": {"seconds": 30.0, "destination": "EXPIRED"},
        },
    ),
    "internal-transition": (
        lambda: _process("BUSY", "ping", BUSY),
        {"success": True, "state_changed": False, "is_self_transition": False, "timeout": None},
    ),
    "self-transition": (
        lambda: _process("BUSY", "restart", BUSY),
        {"success": True, "is_self_transition": True, "on_exit_actions": ["log"]},
    ),
    "expression-guard-passes": (
        lambda: _process("BUSY", "finish", RICH),
        {"success": True, "target_state": "DONE", "error": None},
    ),
    "wildcard-source": (
        lambda: _process("IDLE", Event("abort", id="a-1")),
        {"success": True, "target_state": "DONE"},
    ),
    "ignored-non-strict": (
        lambda: lenient_machine().process("A", Event("unheard_of", {"k": 1})),
        {"success": True, "ignored": True, "transition": None, "all_actions": []},
    ),
    "terminal_state": (
        lambda: _process("DONE", "start"),
        {"success": False, "error.code": "terminal_state"},
    ),
    "undefined_trigger": (
        lambda: _process("IDLE", Event("no such trigger!", {"x": [1, 2]})),
        {"success": False, "error.code": "undefined_trigger", "trigger": "no such trigger!"},
    ),
    "invalid_transition": (
        lambda: _process("IDLE", "ping"),
        {"success": False, "error.code": "invalid_transition"},
    ),
    "guard_rejected": (
        lambda: _process("IDLE", Event("start", id="e-2"), BUSY),
        {
            "success": False,
            "error.code": "guard_rejected",
            "error.guards": ["has_budget"],
            "trace.guards": [[["has_budget", False]]],
        },
    ),
    "guard_rejected-by-expression": (
        lambda: _process("BUSY", "finish", BUSY),
        {
            "success": False,
            "error.code": "guard_rejected",
            "error.guards": ["when: budget > 100"],
            "trace.guards": [[["when: budget > 100", False]]],
        },
    ),
    "invalid_payload": (
        lambda: _process("BUSY", Event("pay", {"amount": "ten"}), BUSY),
        {
            "success": False,
            "error.code": "invalid_payload",
            "error.problems": [
                {
                    "path": "amount",
                    "message": "expected a number, got string 'ten'",
                    "expected": "a number",
                    "got": "string 'ten'",
                }
            ],
        },
    ),
    "timeout": (
        lambda: wire_machine().timeout_result("IDLE", event_id="t-1"),
        {
            "success": True,
            "trigger": "timeout",
            "target_state": "EXPIRED",
            "actions_to_execute": [{"name": "notify", "params": {"why": "timeout"}}],
        },
    ),
    "fallback": (
        lambda: wire_machine().fail("BUSY", RuntimeError("card declined"), event_id="f-1"),
        {
            "success": True,
            "trigger": "error",
            "target_state": "BROKEN",
            "all_actions": ["log", "alert"],
            "event": {
                "trigger": "error",
                "payload": {"error": "card declined", "error_type": "RuntimeError"},
                "id": "f-1",
            },
        },
    ),
    "fallback-refused-from-terminal": (
        lambda: wire_machine().fail("DONE", "late failure"),
        {"success": False, "trigger": "error", "error.code": "terminal_state"},
    ),
    "fallback-refused-from-fallback": (
        lambda: wire_machine().fail("BROKEN", "again"),
        {"success": False, "trigger": "error", "error.code": "invalid_transition"},
    ),
}


def result_dict(case: str) -> dict[str, Any]:
    result = RESULTS[case][0]()
    assert result is not None
    data: dict[str, Any] = json_round_trip(result.to_dict())
    return data


def _say(data: dict[str, Any], key: str) -> Any:
    """``key`` of a serialized result: a top-level key, ``error.<k>`` or ``trace.<k>``."""
    head, _, rest = key.partition(".")
    if head == "trace":
        return [step[rest] for step in data["trace"]]
    return data[head][rest] if rest else data[head]


@pytest.mark.parametrize("case", RESULTS)
def test_real_results_validate_and_read_back(case: str) -> None:
    build, expected = RESULTS[case]
    result = build()
    assert result is not None
    data = json_round_trip(result.to_dict())
    validator("transition_result").validate(data)
    assert {key: _say(data, key) for key in expected} == expected
    assert TransitionResult.from_dict(data) == result


def test_every_error_code_has_a_real_result() -> None:
    codes = {RESULTS[case][1].get("error.code") for case in RESULTS}
    assert codes - {None} == set(TRANSITION_ERRORS)


_STATES = [s["name"] for s in wire_machine().to_dict()["states"]]
_TRIGGERS = sorted(wire_machine().trigger_names)


@given(
    state=st.sampled_from(_STATES),
    trigger=st.sampled_from(_TRIGGERS) | st.text(max_size=15),
    payload=json_payloads,
    event_id=st.none() | st.text(max_size=10),
    budget=st.integers(min_value=-10, max_value=200),
)
def test_any_event_in_any_state_gives_a_valid_result(
    state: str, trigger: str, payload: dict[str, Any], event_id: str | None, budget: int
) -> None:
    machine = wire_machine()
    results = [
        machine.process(state, Event(trigger, payload, event_id), {"budget": budget}),
        machine.fail(state, ValueError(trigger), event_id=event_id),
        machine.timeout_result(state, event_id=event_id),
    ]
    for result in results:
        if result is None:  # no timeout in this state
            continue
        data = json_round_trip(result.to_dict())
        validator("transition_result").validate(data)
        assert TransitionResult.from_dict(data) == result


# A real result broken in exactly one place must be refused, at that place.
# (base case, path to change, new value or _DELETE, the path the schema complains at)
_DELETE = object()
BROKEN: list[Any] = [
    pytest.param("fallback", ("event",), _DELETE, (), id="missing-key"),
    pytest.param("guard_rejected", ("error", "code"), "exploded", ("error", "code"), id="code"),
    pytest.param("fallback", ("success",), "yes", ("success",), id="success-not-bool"),
    pytest.param("fallback", ("surprise",), 1, (), id="unknown-key"),
    pytest.param("timeout", ("trigger",), None, ("trigger",), id="trigger-null"),
    pytest.param(
        "success-with-params-retry-and-timeout",
        ("source_state",),
        "NOT A STATE",
        ("source_state",),
        id="state-not-identifier",
    ),
    pytest.param("guard_rejected", ("error",), None, ("error",), id="failed-without-error"),
    pytest.param("fallback", ("error",), {}, ("error",), id="success-with-error"),
    pytest.param("fallback", ("ignored",), True, ("all_actions",), id="ignored-with-actions"),
    pytest.param("guard_rejected", ("error", "guards"), [], ("error", "guards"), id="no-guards"),
    pytest.param(
        "invalid_transition", ("error", "guards"), ["g"], ("error", "guards"), id="stray-guards"
    ),
    pytest.param(
        "invalid_payload",
        ("error", "problems", 0, "line"),
        3,
        ("error", "problems", 0),
        id="problem-unknown-key",
    ),
    pytest.param(
        "guard_rejected",
        ("trace", 0, "guards", 0),
        ["has_budget"],
        ("trace", 0, "guards", 0),
        id="trace-pair-too-short",
    ),
    pytest.param(
        "fallback", ("transition", "guard"), ["x"], ("transition",), id="transition-typo-key"
    ),
    pytest.param(
        "fallback", ("all_actions", 0), "log-it", ("all_actions", 0), id="action-not-identifier"
    ),
    pytest.param(
        "success-with-params-retry-and-timeout",
        ("timeout", "seconds"),
        0,
        ("timeout", "seconds"),
        id="timeout-zero",
    ),
    pytest.param("fallback", ("event", "id"), _DELETE, ("event",), id="event-without-id"),
    pytest.param(
        "fallback", ("event", "payload"), None, ("event", "payload"), id="event-payload-null"
    ),
]


@pytest.mark.parametrize(("case", "where", "value", "complaint"), BROKEN)
def test_broken_results_are_rejected(
    case: str, where: tuple[str | int, ...], value: object, complaint: tuple[str | int, ...]
) -> None:
    data = result_dict(case)
    validator("transition_result").validate(data)  # sound before it is broken
    broken = copy.deepcopy(data)
    *parents, last = where
    target: Any = broken
    for key in parents:
        target = target[key]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    errors = list(validator("transition_result").iter_errors(broken))
    assert errors
    assert complaint in error_paths(errors)
