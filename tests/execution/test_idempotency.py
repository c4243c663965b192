"""Idempotency keys: stable for equal events, distinct wherever anything differs."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from statewise import Event, StateMachine
from statewise.execution import event_key, idempotency_key, idempotency_keys
from tests.execution.support import GO, machine

M = machine()
HEX32 = re.compile(r"[0-9a-f]{32}\Z")


def test_the_key_is_the_documented_recipe() -> None:
    # Pinned: changing the derivation would re-run every action of every replayed event.
    result = M.process("A", GO)
    shared = json.dumps(["msg-1", "A", "go", "B"], separators=(",", ":"), ensure_ascii=False)
    mine = json.dumps([2, "boom"], separators=(",", ":"), ensure_ascii=False)
    expected = hashlib.sha256((shared + mine).encode()).hexdigest()[:32]
    assert idempotency_key(result, 2) == expected
    assert all(HEX32.match(k) for k in idempotency_keys(result))


def test_equal_events_processed_twice_get_equal_keys() -> None:
    first = M.process("A", Event("go", {"qty": 1}, id="m"))
    again = M.process("A", Event("go", {"qty": 1}, id="m"))
    assert first is not again
    assert idempotency_keys(first) == idempotency_keys(again)
    assert idempotency_keys(first) == tuple(
        idempotency_key(first, i) for i in range(len(first.all_actions))
    )


@pytest.mark.parametrize(
    ("other_state", "other_event"),
    [
        pytest.param("A", Event("go", {"qty": 1}, id="n"), id="event-id"),
        pytest.param("A", Event("calm", {"qty": 1}, id="m"), id="trigger"),
        pytest.param("B", Event("once", {"qty": 1}, id="m"), id="source-and-target"),
    ],
)
def test_keys_differ_when_the_event_or_the_edge_does(other_state: str, other_event: Event) -> None:
    base = set(idempotency_keys(M.process("A", Event("go", {"qty": 1}, id="m"))))
    other = set(idempotency_keys(M.process(other_state, other_event)))
    assert other
    assert not base & other


def test_keys_differ_by_position_even_for_the_same_action() -> None:
    twice = StateMachine.from_dict(
        {
            "meta": {"machine_name": "twice"},
            "states": [{"name": "A", "type": "initial", "on_exit": ["log"]}, {"name": "B"}],
            "transitions": [{"trigger": "go", "source": "A", "dest": "B", "actions": ["log"]}],
        }
    )
    result = twice.process("A", Event("go", id="k"))
    assert result.action_names == ("log", "log")
    first, second = idempotency_keys(result)
    assert first != second


@pytest.mark.parametrize(
    ("payload", "same_as", "equal"),
    [
        pytest.param({"a": 1, "b": [1, 2]}, {"b": [1, 2], "a": 1}, True, id="key-order"),
        pytest.param({"a": 1}, {"a": 2}, False, id="value"),
        pytest.param({"a": 1}, {}, False, id="missing-key"),
        pytest.param({"s": "é"}, {"s": "é"}, True, id="unicode"),
    ],
)
def test_events_without_ids_are_keyed_by_content(
    payload: dict[str, Any], same_as: dict[str, Any], equal: bool
) -> None:
    one = idempotency_keys(M.process("A", Event("go", payload)))
    two = idempotency_keys(M.process("A", Event("go", same_as)))
    assert (one == two) is equal
    assert event_key(Event("go", payload)) == json.dumps(
        {"trigger": "go", "payload": payload, "id": None},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({"when": object()}, id="object"),
        pytest.param({"raw": b"\x00"}, id="bytes"),
        pytest.param({"x": float("nan")}, id="nan"),
    ],
)
def test_an_id_less_event_needs_a_json_payload(payload: dict[str, Any]) -> None:
    result = M.process("A", Event("go", payload))
    with pytest.raises(TypeError, match="has no id and its payload is not JSON data"):
        idempotency_keys(result)
    assert idempotency_keys(M.process("A", Event("go", payload, id="x")))
    assert idempotency_keys(M.fail("E", "x")) == ()  # nothing to key: nothing asked


@pytest.mark.parametrize("position", [-1, 5, 99])
def test_a_position_outside_all_actions_is_an_index_error(position: int) -> None:
    with pytest.raises(IndexError, match=f"no action at position {position}"):
        idempotency_key(M.process("A", GO), position)


@given(st.text(max_size=20), st.text(max_size=20))
def test_distinct_ids_never_share_a_key(a: str, b: str) -> None:
    keys_a = idempotency_keys(M.process("A", Event("go", id=a)))
    keys_b = idempotency_keys(M.process("A", Event("go", id=b)))
    assert (keys_a == keys_b) is (a == b)
    assert (set(keys_a) & set(keys_b)) == (set(keys_a) if a == b else set())
