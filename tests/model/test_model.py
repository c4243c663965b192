"""The frozen model: immutability, hashing, equality, conversions."""

from __future__ import annotations

import dataclasses
import pickle
from typing import Any

import pytest

from statewise import (
    ActionCall,
    Decision,
    ErrorPolicy,
    Event,
    FrozenDict,
    GuardCall,
    MachineDefinition,
    Retry,
    State,
    StateType,
    Timeout,
    TraceStep,
    Transition,
    TransitionResult,
)
from statewise.errors import (
    GuardRejectedError,
    Problem,
    SpecError,
    TerminalStateError,
    make_transition_error,
)
from statewise.model.frozen import EMPTY, deep_freeze, thaw


def test_frozen_dict_is_a_read_only_hashable_mapping() -> None:
    d = FrozenDict({"a": 1, "b": (2, 3)})
    assert d["a"] == 1 and len(d) == 2 and list(d) == ["a", "b"] and "a" in d
    assert d.get("zzz", 7) == 7
    assert d == {"a": 1, "b": (2, 3)} and d == FrozenDict({"b": (2, 3), "a": 1})
    assert hash(d) == hash(FrozenDict({"b": (2, 3), "a": 1}))
    assert d != [1] and (d == 3) is False
    with pytest.raises(TypeError):
        d["a"] = 2  # type: ignore[index]
    with pytest.raises(AttributeError):
        d.x = 1
    assert (d | {"c": 4})["c"] == 4 and "c" not in d
    assert pickle.loads(pickle.dumps(d)) == d
    assert repr(FrozenDict({"a": 1})) == "FrozenDict({'a': 1})"


def test_deep_freeze_and_thaw() -> None:
    raw: dict[str, Any] = {"a": [1, {"b": {2, 3}}], "c": {"d": []}}
    frozen = deep_freeze(raw)
    assert isinstance(frozen, FrozenDict) and isinstance(frozen["a"], tuple)
    assert isinstance(frozen["a"][1], FrozenDict) and frozen["a"][1]["b"] == frozenset({2, 3})
    hash(frozen)
    assert thaw(frozen) == {"a": [1, {"b": [2, 3]}], "c": {"d": []}}
    assert deep_freeze({}) is EMPTY
    already = FrozenDict({"x": 1})
    assert deep_freeze(already) is already
    nested = FrozenDict({"x": [1]})
    assert deep_freeze(nested) == {"x": (1,)}


def test_definitions_are_frozen_and_hashable() -> None:
    s = State("A", StateType.INITIAL, metadata={"k": [1]})  # type: ignore[arg-type]
    assert isinstance(s.metadata, FrozenDict) and s.metadata["k"] == (1,)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.name = "B"  # type: ignore[misc]
    t = Transition("go", ("A",), "B", metadata={"x": {"y": 1}})  # type: ignore[arg-type]
    d = MachineDefinition("m", [s, State("B")], [t])  # type: ignore[arg-type]
    assert isinstance(d.states, tuple) and isinstance(d.transitions, tuple)
    assert hash(d) == hash(MachineDefinition("m", (s, State("B")), (t,)))
    changed = dataclasses.replace(t, dest="C")
    assert changed.dest == "C" and t.dest == "B"
    assert s.is_initial and not s.is_terminal and not s.is_error
    assert State("E", StateType.ERROR).is_error
    assert Transition("w", ("*",)).is_wildcard and Transition("w", ("*",)).is_internal


def test_definition_to_dict_is_minimal() -> None:
    d = MachineDefinition(
        "m",
        (
            State(
                "A",
                StateType.INITIAL,
                "first",
                (ActionCall("e"),),
                (ActionCall("x"),),
                Timeout(1.5, "B"),
            ),
            State("B", StateType.TERMINAL),
        ),
        (
            Transition(
                "go",
                ("A",),
                "B",
                (GuardCall("g"),),
                (ActionCall("a"),),
                "desc",
                FrozenDict({"k": 1}),
            ),
            Transition("stay", ("A", "B")),
        ),
        version="2",
        strict_mode=False,
        description="dd",
        error_policy=ErrorPolicy("B", 2),
        metadata=FrozenDict({"owner": "me"}),
    )
    assert d.to_dict() == {
        "meta": {
            "machine_name": "m",
            "version": "2",
            "strict_mode": False,
            "description": "dd",
            "metadata": {"owner": "me"},
        },
        "states": [
            {
                "name": "A",
                "type": "initial",
                "description": "first",
                "on_enter": ["e"],
                "on_exit": ["x"],
                "timeout": {"seconds": 1.5, "destination": "B"},
            },
            {"name": "B", "type": "terminal"},
        ],
        "transitions": [
            {
                "trigger": "go",
                "source": "A",
                "dest": "B",
                "guards": ["g"],
                "actions": ["a"],
                "description": "desc",
                "metadata": {"k": 1},
            },
            {"trigger": "stay", "source": ["A", "B"]},
        ],
        "error_policy": {"default_fallback": "B", "retry_attempts": 2},
    }


def test_event() -> None:
    e = Event("go", {"n": [1, {"m": 2}]}, id="e-1")
    assert e.payload == {"n": (1, {"m": 2})} and hash(e)
    assert Event.from_dict(e.to_dict()) == e
    assert e.to_dict() == {"trigger": "go", "payload": {"n": [1, {"m": 2}]}, "id": "e-1"}
    assert Event("go").payload is EMPTY
    with pytest.raises(TypeError, match="trigger must be a str"):
        Event(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="payload must be a mapping"):
        Event("go", [1])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown Event keys"):
        Event.from_dict({"trigger": "go", "payloda": {}})


def test_caller_payload_changes_do_not_reach_the_event() -> None:
    payload: dict[str, Any] = {"items": [1]}
    e = Event("go", payload)
    payload["items"].append(2)
    payload["new"] = 1
    assert e.payload == {"items": (1,)}


def test_result_from_dict_rejects_unknown_error_codes() -> None:
    d = TransitionResult(Decision.rejected("A", "go", "terminal_state"), Event("go")).to_dict()
    d["error"]["code"] = "nope"
    with pytest.raises(ValueError, match="unknown transition error code 'nope'"):
        TransitionResult.from_dict(d)


def test_result_repr_and_trace_round_trip() -> None:
    t = Transition("go", ("A",), "B", guards=(GuardCall("g"),))
    step = TraceStep(t, (("g", False),), selected=False)
    assert TraceStep.from_dict(step.to_dict()) == step
    failed = TransitionResult(
        Decision.rejected("A", "go", "guard_rejected", guards=("g",), trace=(step,)), Event("go")
    )
    assert "error=guard_rejected" in repr(failed)
    ignored = TransitionResult(Decision.ignored_event("A", "go"), Event("go"))
    assert "ignored" in repr(ignored)
    assert ignored.raise_for_error() is ignored


def test_transition_errors_pickle_and_rebuild() -> None:
    err = GuardRejectedError("A", "go", ("g1", "g2"))
    assert pickle.loads(pickle.dumps(err)) == err
    assert pickle.loads(pickle.dumps(TerminalStateError("T", "go"))) == TerminalStateError(
        "T", "go"
    )
    assert make_transition_error("guard_rejected", "A", "go", ("g1", "g2")) == err
    with pytest.raises(ValueError, match="expected one of"):
        make_transition_error("nope", "A", "go")


def test_spec_error_lists_every_problem() -> None:
    err = SpecError([Problem("states[0].name", "bad", "f.yaml", 3, 7), Problem("", "worse")])
    assert str(err).splitlines() == [
        "2 problems in the spec",
        "  f.yaml:3:7: states[0].name: bad",
        "  <spec>: worse",
    ]
    assert isinstance(err, ValueError) and len(err.problems) == 2


def test_plain_names_and_dicts_become_calls() -> None:
    # Untyped callers (and data from JSON) may pass names and dicts: stored as calls.
    untyped_state: Any = State
    state = untyped_state("A", on_enter=("e", {"name": "n", "params": {"to": ["ops"]}}))
    assert state.on_enter == (ActionCall("e"), ActionCall("n", {"to": ("ops",)}))
    assert isinstance(state.on_enter[1].params, FrozenDict)
    untyped: Any = Transition
    t = untyped("go", ["A"], "B", guards=["g"], actions=[{"name": "a", "retry": {"attempts": 2}}])
    assert t.source == ("A",) and t.guards == (GuardCall("g"),)
    assert t.actions == (ActionCall("a", retry=Retry(2)),)
    assert hash(t) == hash(Transition("go", ("A",), "B", (GuardCall("g"),), t.actions))
    assert str(t.actions[0]) == "a" and str(t.guards[0]) == "g"
    assert t.actions[0].to_spec() == {"name": "a", "retry": {"attempts": 2}}


@pytest.mark.parametrize("kwargs", [{"attempts": -1}, {"attempts": 1, "backoff_seconds": -1.0}])
def test_retry_refuses_negative_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="Retry"):
        Retry(**kwargs)


def test_retry_delays_double_and_cap() -> None:
    r = Retry(5, backoff_seconds=1.0, max_backoff_seconds=3.0)
    assert [r.delay(k) for k in range(1, 5)] == [1.0, 2.0, 3.0, 3.0]
    assert Retry.from_dict(r.to_dict()) == r
    assert Retry(1).to_dict() == {"attempts": 1}
