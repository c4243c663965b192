"""Parametrized guards: ``guards: [{name, params}]`` calls ``fn(ctx, **params)``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from statewise import Event, GuardCall, GuardNotFoundError, GuardRegistry, SpecError, StateMachine

SPEC = """\
meta: {machine_name: approvals}
states:
  - {name: NEW, type: initial}
  - {name: REVIEW}
  - {name: APPROVED, type: terminal}
transitions:
  - trigger: submit
    source: NEW
    dest: REVIEW
    guards:
      - {name: amount_over, params: {limit: 1000}}
  - trigger: submit
    source: NEW
    dest: APPROVED
    guards: [{name: amount_over, params: {limit: 0}}, {name: has_role, params: {role: clerk}}]
"""


def registry() -> GuardRegistry:
    g = GuardRegistry()

    @g.register
    def amount_over(ctx: Mapping[str, Any], limit: int) -> bool:  # positional-or-keyword
        return bool(ctx["amount"] > limit)

    @g.register
    def has_role(context: Mapping[str, Any], event: Event, *, role: str) -> bool:
        return role in context["roles"]

    return g


@pytest.fixture(scope="module")
def machine() -> StateMachine:
    return StateMachine.from_string(SPEC, guards=registry())


@pytest.mark.parametrize(
    ("amount", "roles", "target"),
    [(5000, [], "REVIEW"), (50, ["clerk"], "APPROVED"), (50, ["intern"], "NEW"), (0, [], "NEW")],
)
def test_params_reach_the_guard(
    machine: StateMachine, amount: int, roles: list[str], target: str
) -> None:
    r = machine.process("NEW", Event("submit", {"amount": amount}), {"roles": roles})
    assert r.target_state == target


def test_same_guard_with_other_params_is_another_call(machine: StateMachine) -> None:
    first, second = machine.definition.transitions[:2]
    assert first.guards == (GuardCall("amount_over", {"limit": 1000}),)
    assert second.guards[0] == GuardCall("amount_over", {"limit": 0})
    assert second.guards[0] != first.guards[0]
    assert machine.to_dict()["transitions"][0]["guards"] == [
        {"name": "amount_over", "params": {"limit": 1000}}
    ]
    assert StateMachine.from_dict(machine.to_dict()) == machine


def test_params_the_guard_does_not_take_fail_at_bind_time_with_location() -> None:
    text = SPEC.replace("{limit: 1000}", "{limt: 1000}")
    with pytest.raises(SpecError) as info:
        StateMachine.from_string(text, guards=registry(), file="a.yaml")
    [p] = info.value.problems
    assert (p.line, p.column, p.path) == (11, 37, "transitions[0].guards[0].params")
    assert p.message.startswith("guard 'amount_over' cannot be called as the spec says:")
    assert "it takes params: limit; the spec gives: limt" in p.message
    assert not isinstance(info.value, GuardNotFoundError)


def test_missing_params_are_reported_on_the_guard() -> None:
    text = SPEC.replace("- {name: amount_over, params: {limit: 1000}}", "- amount_over")
    with pytest.raises(SpecError) as info:
        StateMachine.from_string(text, guards=registry())
    [p] = info.value.problems
    assert p.path == "transitions[0].guards[0]"
    assert "missing a required argument: 'limit'" in p.message


def test_missing_guards_and_bad_params_are_reported_together() -> None:
    g = GuardRegistry()
    g.register("amount_over", lambda ctx: True)  # takes no params at all
    with pytest.raises(GuardNotFoundError) as info:
        StateMachine.from_string(SPEC, guards=g)
    assert info.value.names == ("has_role",)
    assert [p.path for p in info.value.problems] == [
        "transitions[0].guards[0].params",
        "transitions[1].guards[0].params",
        "transitions[1].guards[1]",
    ]


def test_guard_with_no_usable_signature_is_reported() -> None:
    g = registry()
    g.register("has_role", lambda: True, replace=True)
    with pytest.raises(SpecError, match="must take \\(ctx\\) or \\(context, event\\)"):
        StateMachine.from_string(SPEC, guards=g)


def test_registry_refuses_non_callables() -> None:
    with pytest.raises(TypeError, match="must be callable"):
        GuardRegistry().register("x", 3)  # type: ignore[call-overload]
