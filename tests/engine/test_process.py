"""The rules of process(), one table row each (numbers refer to the core issue's list)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from statewise import (
    Event,
    GuardError,
    GuardRegistry,
    GuardRejectedError,
    GuardsNotBoundError,
    InvalidTransitionError,
    StateMachine,
    TerminalStateError,
    TransitionError,
    UndefinedStateError,
    UndefinedTriggerError,
)
from tests.conftest import spec

STATES: list[dict[str, Any]] = [
    {
        "name": "A",
        "type": "initial",
        "on_exit": "x_a",
        "timeout": {"seconds": 5, "destination": "T"},
    },
    {
        "name": "B",
        "on_enter": ["e_b"],
        "on_exit": ["x_b"],
        "timeout": {"seconds": 2.5, "destination": "C"},
    },
    {"name": "C"},
    {"name": "T", "type": "terminal", "on_enter": "e_t"},
    {"name": "E", "type": "error"},
]
TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "go", "source": "A", "dest": "B", "actions": ["a_go"]},
    {"trigger": "loop", "source": "B", "dest": "B", "actions": ["l"]},
    {"trigger": "touch", "source": "B", "actions": ["t"]},
    {"trigger": "pick", "source": "B", "dest": "C", "guards": ["g_no"]},
    {"trigger": "pick", "source": "B", "dest": "T", "guards": ["g_yes"]},
    {"trigger": "deny", "source": "B", "dest": "C", "guards": ["g_yes", "g_no"]},
    {"trigger": "deny", "source": "B", "dest": "T", "guards": ["g_no2"]},
    {"trigger": "boom", "source": "B", "dest": "C", "guards": ["g_raise"]},
    {"trigger": "bad", "source": "B", "dest": "C", "guards": ["g_none"]},
    {"trigger": "prio", "source": "*", "dest": "C", "guards": ["g_no"]},
    {"trigger": "prio", "source": "B", "dest": "T"},
    {"trigger": "reset", "source": "*", "dest": "A"},
    {"trigger": "finish", "source": ["C", "E"], "dest": "T"},
    {"trigger": "shadow", "source": "A", "dest": "B"},
    {"trigger": "shadow", "source": "A", "dest": "C"},
    {"trigger": "amount", "source": "C", "dest": "T", "guards": ["g_amount"]},
    {"trigger": "pair", "source": "C", "dest": "E", "guards": ["g_pair"]},
]


def registry() -> GuardRegistry:
    guards = GuardRegistry()
    guards.register("g_yes", lambda ctx: True)
    guards.register("g_no", lambda ctx: False)
    guards.register("g_no2", lambda ctx: False)

    def g_raise(ctx: Mapping[str, Any]) -> bool:
        raise ZeroDivisionError("bug in guard")

    guards.register("g_raise", g_raise)
    guards.register("g_none", lambda ctx: None)
    guards.register("g_amount", lambda ctx: ctx["amount"] <= ctx["limit"])

    def g_pair(context: Mapping[str, Any], event: Event) -> bool:
        return bool(context.get("limit") == 5 and event.payload.get("limit") == 500)

    guards.register("g_pair", g_pair)
    return guards


@pytest.fixture(scope="module")
def machine() -> StateMachine:
    return StateMachine.from_dict(spec(STATES, TRANSITIONS), guards=registry())


@pytest.fixture(scope="module")
def lax() -> StateMachine:
    return StateMachine.from_dict(spec(STATES, TRANSITIONS, strict_mode=False), guards=registry())


# (state, trigger, target, all_actions, state_changed, is_self_transition)
SUCCESSES = [
    pytest.param("A", "go", "B", ("x_a", "a_go", "e_b"), True, False, id="7-exit-actions-enter"),
    pytest.param("B", "loop", "B", ("x_b", "l", "e_b"), False, True, id="7-external-self"),
    pytest.param("B", "touch", "B", ("t",), False, False, id="7-internal-actions-only"),
    pytest.param("B", "pick", "T", ("x_b", "e_t"), True, False, id="3-second-candidate"),
    pytest.param("B", "prio", "T", ("x_b", "e_t"), True, False, id="3-wildcard-in-order"),
    pytest.param("E", "reset", "A", (), True, False, id="3-wildcard-any-live"),
    pytest.param("C", "reset", "A", (), True, False, id="3-wildcard-stable"),
    pytest.param("A", "shadow", "B", ("x_a", "e_b"), True, False, id="3-first-wins"),
]


@pytest.mark.parametrize(("state", "trigger", "target", "actions", "changed", "self_t"), SUCCESSES)
def test_success(
    machine: StateMachine,
    state: str,
    trigger: str,
    target: str,
    actions: tuple[str, ...],
    changed: bool,
    self_t: bool,
) -> None:
    r = machine.process(state, trigger)
    assert (r.success, r.ignored, r.error) == (True, False, None)
    assert (r.source_state, r.target_state, r.trigger) == (state, target, trigger)
    assert r.action_names == actions
    assert r.all_actions == r.on_exit_actions + r.actions_to_execute + r.on_enter_actions
    assert (r.state_changed, r.is_self_transition) == (changed, self_t)
    assert r.transition is not None and r.transition.trigger == trigger


# (state, trigger, error type, strict only)
FAILURES = [
    pytest.param("T", "go", TerminalStateError, id="2-terminal"),
    pytest.param("T", "nonsense", TerminalStateError, id="2-terminal-before-unknown"),
    pytest.param("A", "nonsense", UndefinedTriggerError, id="5-unknown-trigger"),
    pytest.param("C", "go", InvalidTransitionError, id="5-known-not-here"),
    pytest.param("B", "deny", GuardRejectedError, id="6-all-guards-said-no"),
]


@pytest.mark.parametrize(("state", "trigger", "error"), FAILURES)
def test_failure(
    machine: StateMachine, state: str, trigger: str, error: type[TransitionError]
) -> None:
    r = machine.process(state, trigger)
    assert (r.success, r.ignored, r.target_state, r.state_changed) == (False, False, state, False)
    assert type(r.error) is error
    assert r.error.state == state and r.error.trigger == trigger
    assert r.all_actions == () and r.transition is None and r.timeout is None
    with pytest.raises(error):
        r.raise_for_error()


def test_guard_rejection_names_the_guards_that_said_no(machine: StateMachine) -> None:
    r = machine.process("B", "deny")
    assert isinstance(r.error, GuardRejectedError)
    assert r.error.guards == ("g_no", "g_no2")
    assert [(s.transition.dest, s.guards, s.selected) for s in r.trace] == [
        ("C", (("g_yes", True), ("g_no", False)), False),
        ("T", (("g_no2", False),), False),
    ]


def test_trace_records_candidates_and_verdicts(machine: StateMachine) -> None:
    r = machine.process("B", "pick")
    assert [(s.transition.dest, s.guards, s.selected) for s in r.trace] == [
        ("C", (("g_no", False),), False),
        ("T", (("g_yes", True),), True),
    ]


@pytest.mark.parametrize(("state", "trigger"), [("A", "nonsense"), ("C", "go")])
def test_non_strict_ignores(lax: StateMachine, state: str, trigger: str) -> None:
    r = lax.process(state, trigger)
    assert (r.success, r.ignored, r.target_state, r.all_actions, r.error) == (
        True,
        True,
        state,
        (),
        None,
    )
    assert not r.state_changed and not lax.can_transition(state, trigger)


def test_non_strict_still_fails_in_terminal_and_on_guards(lax: StateMachine) -> None:
    assert isinstance(lax.process("T", "go").error, TerminalStateError)
    assert isinstance(lax.process("B", "deny").error, GuardRejectedError)


def test_1_unknown_state_raises(machine: StateMachine) -> None:
    with pytest.raises(UndefinedStateError, match="did you mean 'A'") as info:
        machine.process("a", "go")
    assert info.value.state == "a"


def test_4_raising_guard_raises_chained(machine: StateMachine) -> None:
    with pytest.raises(GuardError, match=r"g_raise.*'boom'.*'B'.*transitions\[7\]") as info:
        machine.process("B", "boom")
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    assert (info.value.guard, info.value.transition_index) == ("g_raise", 7)


def test_4_non_bool_guard_is_a_bug(machine: StateMachine) -> None:
    with pytest.raises(GuardError) as info:
        machine.process("B", "bad")
    assert isinstance(info.value.__cause__, TypeError)
    assert "must return a bool" in str(info.value.__cause__)


def test_guard_missing_key_is_a_guard_error(machine: StateMachine) -> None:
    with pytest.raises(GuardError) as info:
        machine.process("C", "amount", {"amount": 3})
    assert isinstance(info.value.__cause__, KeyError)


@pytest.mark.parametrize(
    ("context", "payload", "target"),
    [
        pytest.param({"amount": 3, "limit": 5}, {}, "T", id="context-only"),
        pytest.param({"limit": 5}, {"amount": 3}, "T", id="payload-fills-in"),
        pytest.param({"limit": 5}, {"amount": 3, "limit": 500}, "T", id="context-wins"),
        pytest.param(
            {"limit": 5}, {"amount": 30, "limit": 500}, "C", id="payload-cannot-raise-limit"
        ),
    ],
)
def test_context_wins_over_payload(
    machine: StateMachine, context: dict[str, Any], payload: dict[str, Any], target: str
) -> None:
    r = machine.process("C", Event("amount", payload), context)
    assert r.target_state == target


def test_two_parameter_guard_gets_context_and_event_apart(machine: StateMachine) -> None:
    assert machine.process("C", Event("pair", {"limit": 500}), {"limit": 5}).target_state == "E"
    assert machine.process("C", Event("pair", {"limit": 5}), {"limit": 5}).success is False


def test_guarded_transition_without_guards_bound_is_an_error() -> None:
    m = StateMachine.from_dict(spec(STATES, TRANSITIONS))
    assert m.process("A", "go").success  # unguarded still works
    with pytest.raises(GuardsNotBoundError, match="g_no"):
        m.process("B", "pick")


def test_memo_stays_bounded_and_results_stay_right(
    machine: StateMachine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import statewise.engine.machine as engine

    monkeypatch.setattr(engine, "_MEMO_LIMIT", 4)
    fresh = StateMachine.from_dict(spec(STATES, TRANSITIONS), guards=registry())
    cases = [
        ("A", "go"),
        ("B", "loop"),
        ("B", "touch"),
        ("B", "pick"),
        ("C", "go"),
        ("T", "go"),
        ("B", "deny"),
        ("E", "reset"),
    ] * 3
    for state, trigger in cases:
        assert fresh.process(state, trigger) == machine.process(state, trigger)
        assert len(fresh._memo) <= 4
    for trigger in ("x1", "x2", "x3"):  # unknown triggers are never remembered
        fresh.process("A", trigger)
    assert all(key[1] not in {"x1", "x2", "x3"} for key in fresh._memo)


def test_entered(machine: StateMachine) -> None:
    assert machine.process("A", "go").entered
    assert machine.process("B", "loop").entered
    assert not machine.process("B", "touch").entered
    assert not machine.process("C", "go").entered


def test_timeout_of_entered_state(machine: StateMachine) -> None:
    entered = machine.process("A", "go").timeout
    assert entered is not None and (entered.seconds, entered.destination) == (2.5, "C")
    assert machine.process("B", "loop").timeout == entered  # re-entered: restarts
    assert machine.process("B", "touch").timeout is None  # internal: keeps running
    assert machine.process("C", "reset").timeout is not None


def test_event_object_and_string_agree(machine: StateMachine) -> None:
    by_name = machine.process("A", "go")
    by_event = machine.process("A", Event("go"))
    assert by_name == by_event and hash(by_name) == hash(by_event)
    with_id = machine.process("A", Event("go", id="m-1"))
    assert with_id.decision == by_name.decision and with_id.event.id == "m-1"
    assert with_id != by_name


@pytest.mark.parametrize("bad", [None, 3, b"go", ["go"]])
def test_bad_event_type(machine: StateMachine, bad: Any) -> None:
    with pytest.raises(TypeError, match="event must be"):
        machine.process("A", bad)


def test_bad_context_type(machine: StateMachine) -> None:
    with pytest.raises(TypeError, match="context must be a mapping"):
        machine.process("C", "amount", [("amount", 1)])


def test_errors_compare_by_value(machine: StateMachine) -> None:
    a, b = machine.process("C", "go").error, machine.process("C", "go").error
    assert a is not b and a == b and hash(a) == hash(b)
    assert a != machine.process("A", "nonsense").error
    assert a != "InvalidTransitionError"
