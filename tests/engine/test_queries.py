"""Queries on the order machine, and binding guards."""

from __future__ import annotations

import pytest

from statewise import (
    Event,
    GuardNotFoundError,
    GuardRegistry,
    StateMachine,
    StateType,
    UndefinedStateError,
)
from tests.conftest import ORDER_SPEC, order_guards


def test_names_and_meta(order_machine: StateMachine) -> None:
    m = order_machine
    assert (m.name, m.version, m.strict_mode) == ("order_management", "1.0.0", True)
    assert m.state_names[:3] == ("PENDING_NEW", "OPEN", "PARTIALLY_FILLED")
    assert m.initial_state.name == "PENDING_NEW"
    assert m.initial_state.timeout is not None and m.initial_state.timeout.seconds == 5.0
    assert m.terminal_states == frozenset({"FILLED", "CANCELED", "REJECTED", "TIMED_OUT"})
    assert m.trigger_names == (
        "order_acknowledged",
        "order_rejected",
        "execution_report",
        "amend_price",
        "cancel_requested",
        "system_error",
        "operator_cancel",
    )
    assert m.get_state("ERROR").type is StateType.ERROR
    assert m.get_state("ERROR").metadata == {"runbook": "orders/error-state"}
    assert m.is_terminal("FILLED") and not m.is_terminal("OPEN")
    assert m.guards_bound
    assert "order_management" in repr(m)


def test_available_transitions_in_declaration_order(order_machine: StateMachine) -> None:
    triggers = [t.trigger for t in order_machine.get_available_transitions("OPEN")]
    assert triggers == [
        "execution_report",
        "execution_report",
        "amend_price",
        "cancel_requested",
        "system_error",
    ]
    assert order_machine.get_available_triggers("OPEN") == (
        "execution_report",
        "amend_price",
        "cancel_requested",
        "system_error",
    )
    assert order_machine.get_available_transitions("FILLED") == ()
    assert order_machine.get_available_triggers("ERROR") == ("system_error", "operator_cancel")


@pytest.mark.parametrize(
    "query", ["get_state", "is_terminal", "get_available_transitions", "get_available_triggers"]
)
def test_queries_reject_unknown_states(order_machine: StateMachine, query: str) -> None:
    with pytest.raises(UndefinedStateError, match=r"'OPNE'.*did you mean 'OPEN'"):
        getattr(order_machine, query)("OPNE")


@pytest.mark.parametrize(
    ("state", "event", "context", "expected"),
    [
        ("OPEN", Event("execution_report", {"fill_qty": 10}), {"order_qty": 10}, True),
        ("OPEN", Event("execution_report", {"fill_qty": 0}), {"order_qty": 10}, False),
        ("PENDING_NEW", "execution_report", None, False),
        ("FILLED", "cancel_requested", None, False),
        ("OPEN", "no_such_trigger", None, False),
    ],
)
def test_can_transition(
    order_machine: StateMachine,
    state: str,
    event: str | Event,
    context: dict[str, int] | None,
    expected: bool,
) -> None:
    assert order_machine.can_transition(state, event, context) is expected


def test_can_transition_lets_guard_bugs_raise(order_machine: StateMachine) -> None:
    from statewise import GuardError

    with pytest.raises(GuardError):
        order_machine.can_transition("OPEN", "execution_report", {})


def test_bind_guards_lists_every_missing_guard_with_location() -> None:
    partial = GuardRegistry({"is_full_fill": lambda ctx: True})
    with pytest.raises(GuardNotFoundError) as info:
        StateMachine.from_yaml(ORDER_SPEC, guards=partial)
    assert info.value.names == ("is_partial_fill",)
    [problem] = info.value.problems
    assert (problem.path, problem.line, problem.column) == ("transitions[3].guards[0]", 60, 14)
    assert isinstance(info.value, ValueError)


def test_bind_guards_in_place_once() -> None:
    m = StateMachine.from_yaml(ORDER_SPEC)
    assert not m.guards_bound
    assert m.bind_guards(order_guards()) is m and m.guards_bound
    with pytest.raises(RuntimeError, match="bound already"):
        m.bind_guards(order_guards())


def test_bound_guards_are_a_snapshot() -> None:
    guards = order_guards()
    m = StateMachine.from_yaml(ORDER_SPEC, guards=guards)
    guards.register("is_full_fill", lambda ctx: False, replace=True)
    r = m.process("OPEN", Event("execution_report", {"fill_qty": 5}), {"order_qty": 5})
    assert r.target_state == "FILLED"


def test_machines_compare_by_definition(order_machine: StateMachine) -> None:
    again = StateMachine.from_yaml(ORDER_SPEC)
    assert again == order_machine and hash(again) == hash(order_machine)
    assert again != object()
    assert {again, order_machine} == {order_machine}
