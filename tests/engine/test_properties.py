"""Hypothesis properties of process() on generated machines.

A plain reference implementation of the rules (``reference``) is the oracle: the
engine's memo, rule table and views must never change what the rules say.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from statewise import (
    Event,
    GuardRegistry,
    StateMachine,
    TransitionResult,
)
from tests.strategies import TRIGGERS
from tests.strategies import machines as spec_machines

GUARDS: list[Any] = [
    "g_true",
    "g_false",
    "g_key",
    "g_pay",
    {"name": "g_param", "params": {"want": 1}},
    {"name": "g_param", "params": {"want": 2}},
]
ACTIONS: list[Any] = ["a", "b", "c", {"name": "d", "params": {"n": 1}}]
# Expression guards (CEL) and what they mean, for the reference implementation.
WHENS: dict[str, Callable[[str, dict[str, Any], dict[str, Any]], bool]] = {
    "state == 'S1'": lambda state, ctx, ev: state == "S1",
    "'p' in event": lambda state, ctx, ev: "p" in ev,
    "size(event) >= 1 || state != 'S0'": lambda state, ctx, ev: len(ev) >= 1 or state != "S0",
}


def guard_registry() -> GuardRegistry:
    guards = GuardRegistry()
    guards.register("g_true", lambda ctx: True)
    guards.register("g_false", lambda ctx: False)
    guards.register("g_key", lambda ctx: ctx.get("k") == 1)

    def g_pay(context: Mapping[str, Any], event: Event) -> bool:
        return event.payload.get("p") is True

    guards.register("g_pay", g_pay)

    def g_param(ctx: Mapping[str, Any], *, want: int) -> bool:
        return ctx.get("x") == want

    guards.register("g_param", g_param)
    return guards


GUARD_FNS: dict[str, Callable[..., bool]] = {
    "g_true": lambda ctx, ev: True,
    "g_false": lambda ctx, ev: False,
    "g_key": lambda ctx, ev: {**ev, **ctx}.get("k") == 1,
    "g_pay": lambda ctx, ev: ev.get("p") is True,
    "g_param": lambda ctx, ev, want: {**ev, **ctx}.get("x") == want,
}


def guard_passes(guard: Any, context: dict[str, Any], payload: dict[str, Any]) -> bool:
    if isinstance(guard, str):
        return GUARD_FNS[guard](context, payload)
    return GUARD_FNS[guard["name"]](context, payload, **guard["params"])


def names(actions: list[Any]) -> list[str]:
    return [a if isinstance(a, str) else a["name"] for a in actions]


def machines() -> st.SearchStrategy[dict[str, Any]]:
    return spec_machines(guards=GUARDS, actions=ACTIONS, whens=sorted(WHENS))


contexts = st.dictionaries(
    st.sampled_from(["k", "p", "x"]),
    st.one_of(st.integers(0, 2), st.booleans(), st.lists(st.integers(), max_size=2)),
    max_size=3,
)


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def reference(
    spec: dict[str, Any], state: str, trigger: str, context: dict[str, Any], payload: dict[str, Any]
) -> tuple[bool, bool, str, list[str], str | None]:
    """The rules, written as plainly as possible: (success, ignored, target, actions, error)."""
    by_name = {s["name"]: s for s in spec["states"]}
    if by_name[state]["type"] == "terminal":
        return (False, False, state, [], "terminal_state")
    candidates = [
        t
        for t in spec["transitions"]
        if t["trigger"] == trigger and (t["source"] == "*" or state in as_list(t["source"]))
    ]
    for t in candidates:
        if "when" in t and not WHENS[t["when"]](state, context, payload):
            continue
        if all(guard_passes(g, context, payload) for g in as_list(t.get("guards"))):
            if "dest" not in t:
                return (True, False, state, names(as_list(t.get("actions"))), None)
            dest = by_name[t["dest"]]
            actions = (
                as_list(by_name[state].get("on_exit"))
                + as_list(t.get("actions"))
                + as_list(dest.get("on_enter"))
            )
            return (True, False, dest["name"], names(actions), None)
    if candidates:
        return (False, False, state, [], "guard_rejected")
    if not spec["meta"]["strict_mode"]:
        return (True, True, state, [], None)
    known = any(t["trigger"] == trigger for t in spec["transitions"])
    return (False, False, state, [], "invalid_transition" if known else "undefined_trigger")


@settings(max_examples=300, deadline=None)
@given(machines(), st.data())
def test_process_follows_the_rules(spec: dict[str, Any], data: st.DataObject) -> None:
    machine = StateMachine.from_dict(spec, guards=guard_registry())
    for _ in range(5):
        state = data.draw(st.sampled_from([s["name"] for s in spec["states"]]))
        trigger = data.draw(st.sampled_from([*TRIGGERS, "unknown"]))
        context = data.draw(contexts)
        payload = data.draw(contexts)
        before = copy.deepcopy((context, payload))
        event = Event(trigger, payload)
        result = machine.process(state, event, context)
        # Purity: inputs untouched, and the same inputs give an equal result.
        assert (context, payload) == before
        assert machine.process(state, event, context) == result
        expected = reference(spec, state, trigger, context, payload)
        error = result.error.code if result.error else None
        assert (
            result.success,
            result.ignored,
            result.target_state,
            list(result.action_names),
            error,
        ) == expected
        assert result.target_state in machine.state_names
        if result.success and result.transition and result.transition.dest is not None:
            assert result.timeout == machine.get_state(result.target_state).timeout
        # Results survive JSON.
        wire = json.loads(json.dumps(result.to_dict()))
        assert TransitionResult.from_dict(wire) == result


@settings(max_examples=200, deadline=None)
@given(machines())
def test_spec_round_trip(spec: dict[str, Any]) -> None:
    original = copy.deepcopy(spec)
    machine = StateMachine.from_dict(spec)
    assert spec == original  # the input mapping is never mutated
    exported = machine.to_dict()
    assert StateMachine.from_dict(exported) == machine
    assert StateMachine.from_string(yaml.safe_dump(exported), "yaml") == machine
    assert StateMachine.from_string(json.dumps(exported), "json") == machine
    assert hash(StateMachine.from_dict(exported)) == hash(machine)
