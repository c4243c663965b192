"""ActionRegistry (the GuardRegistry API, for actions) and check_actions."""

from __future__ import annotations

from collections.abc import Mapping
from operator import itemgetter
from typing import Any

import pytest

from statewise import (
    FrozenDict,
    MachineDefinition,
    Problem,
    SpecError,
    State,
    StateMachine,
    StateType,
    Transition,
)
from statewise.engine.actions import ActionRegistry, RegisteredAction, action_uses, check_actions
from statewise.engine.locate import Locator
from statewise.errors import ActionNotFoundError
from statewise.model.definition import ActionCall, Timeout


def notify(ctx: Mapping[str, Any]) -> None:
    """A plain action."""


# -- registering -----------------------------------------------------------------------


def test_every_form_of_register_returns_the_function() -> None:
    reg = ActionRegistry({"first": notify})
    assert reg.register("second", notify) is notify

    @reg.register("third")
    def third(ctx: Mapping[str, Any]) -> None: ...

    @reg.register
    def fourth(ctx: Mapping[str, Any]) -> None: ...

    assert (reg.get("third"), reg.get("fourth")) == (third, fourth)
    assert list(reg) == ["first", "second", "third", "fourth"]
    assert reg.names == frozenset(reg)
    assert len(reg) == 4
    assert "first" in reg
    assert reg.has("second")
    assert "fifth" not in reg
    assert repr(reg) == "ActionRegistry(['first', 'fourth', 'second', 'third'])"


def test_registering_a_name_twice_needs_replace() -> None:
    reg = ActionRegistry({"a": notify})

    def other(ctx: Mapping[str, Any]) -> None: ...

    with pytest.raises(ValueError, match="action 'a' is registered already"):
        reg.register("a", other)
    assert reg.get("a") is notify
    reg.register("a", other, replace=True)
    assert reg.get("a") is other


@pytest.mark.parametrize(
    ("name", "fn", "error", "match"),
    [
        pytest.param("not-an-id", notify, ValueError, "must be an identifier", id="dash"),
        pytest.param("9lives", notify, ValueError, "must be an identifier", id="digit"),
        pytest.param(3, notify, ValueError, "must be an identifier", id="int"),
        pytest.param("x", "notify", TypeError, "must be callable, got str", id="not-callable"),
        pytest.param("x", lambda: None, TypeError, "context as its first", id="no-params"),
        pytest.param("x", lambda *, k: None, TypeError, "context as its first", id="kw-only"),
    ],
)
def test_bad_registrations_are_refused_at_once(
    name: Any, fn: Any, error: type[Exception], match: str
) -> None:
    reg = ActionRegistry()
    with pytest.raises(error, match=match):
        reg.register(name, fn)
    assert len(reg) == 0


def test_get_names_what_is_registered() -> None:
    with pytest.raises(KeyError, match="no action named 'b'; registered: a"):
        ActionRegistry({"a": notify}).get("b")
    with pytest.raises(KeyError, match="registered: none"):
        ActionRegistry().entry("b")


async def async_action(ctx: Mapping[str, Any]) -> None: ...


class AsyncCallable:
    async def __call__(self, ctx: Mapping[str, Any]) -> None: ...


class SyncCallable:
    def __call__(self, ctx: Mapping[str, Any], *, idempotency_key: str) -> None: ...


@pytest.mark.parametrize(
    ("fn", "takes_key", "is_async"),
    [
        pytest.param(notify, False, False, id="plain"),
        pytest.param(lambda ctx, idempotency_key: None, True, False, id="positional-or-kw"),
        pytest.param(lambda ctx, *, idempotency_key=None: None, True, False, id="kw-only"),
        pytest.param(lambda ctx, **kw: None, True, False, id="var-kw"),
        pytest.param(lambda ctx, *a: None, False, False, id="var-positional"),
        pytest.param(lambda *a: None, False, False, id="only-var-positional"),
        pytest.param(async_action, False, True, id="async-def"),
        pytest.param(AsyncCallable(), False, True, id="async-callable"),
        pytest.param(SyncCallable(), True, False, id="sync-callable"),
        pytest.param(print, False, False, id="builtin"),
        pytest.param(dict.get, False, False, id="builtin-method"),
        pytest.param(itemgetter("order"), False, False, id="no-signature"),
    ],
)
def test_registration_records_how_the_action_is_called(
    fn: Any, takes_key: bool, is_async: bool
) -> None:
    reg = ActionRegistry({"a": fn})
    assert reg.entry("a") == RegisteredAction("a", fn, takes_key, is_async)
    assert reg.snapshot() == {"a": reg.entry("a")}


def test_a_snapshot_is_a_copy() -> None:
    reg = ActionRegistry({"a": notify})
    snap = reg.snapshot()
    reg.register("b", notify)
    assert list(snap) == ["a"]


# -- check_actions ---------------------------------------------------------------------

SPEC = """\
meta: {machine_name: t}
states:
  - name: A
    type: initial
    on_exit: lave
    timeout: {seconds: 1, destination: B, actions: [tick]}
  - name: B
    on_enter: [notify, nope]
    on_exit:
      - notify
      - nope
transitions:
  - trigger: go
    source: A
    dest: B
    actions: [notify, missing]
"""


def test_missing_actions_are_listed_with_their_positions() -> None:
    machine = StateMachine.from_string(SPEC, file="m.yaml")
    reg = ActionRegistry({"notify": notify, "leave": notify})
    with pytest.raises(ActionNotFoundError) as caught:
        check_actions(machine.definition, reg, machine.source)
    assert caught.value.names == ("lave", "tick", "nope", "missing")
    assert [(p.line, p.column, p.path, p.message) for p in caught.value.problems] == [
        (5, 14, "states[0].on_exit[0]", "action 'lave' is not registered (did you mean 'leave'?)"),
        (6, 53, "states[0].timeout.actions[0]", "action 'tick' is not registered"),
        (8, 24, "states[1].on_enter[1]", "action 'nope' is not registered"),
        (11, 9, "states[1].on_exit[1]", "action 'nope' is not registered"),
        (16, 23, "transitions[0].actions[1]", "action 'missing' is not registered"),
    ]
    assert {(p.file, p.expected) for p in caught.value.problems} == {
        ("m.yaml", "a registered action")
    }
    assert caught.value.problems[0].got == "'lave'"
    assert str(caught.value).startswith("5 problems in the spec\n  m.yaml:5:14: states[0]")


def problems(
    defn: MachineDefinition, reg: ActionRegistry, source: Locator | None = None
) -> tuple[Problem, ...]:
    """What check_actions reports, () when it passes."""
    try:
        check_actions(defn, reg, source)
    except SpecError as error:
        return error.problems
    return ()


def test_all_registered_passes() -> None:
    machine = StateMachine.from_string(SPEC)
    names = {call.name for _, call in action_uses(machine.definition)}
    reg = ActionRegistry(dict.fromkeys(names, notify))
    assert problems(machine.definition, reg, machine.source) == ()


def charge(ctx: Mapping[str, Any], amount: int, currency: str = "EUR") -> None: ...


def keyed(ctx: Mapping[str, Any], *, idempotency_key: str) -> None: ...


def definition(*calls: ActionCall) -> MachineDefinition:
    """A machine using ``calls`` on a transition, and ``charge`` everywhere else."""
    use = (ActionCall("charge", FrozenDict({"amount": 1})),)
    return MachineDefinition(
        "t",
        (
            State("A", StateType.INITIAL, on_enter=use, on_exit=use, timeout=Timeout(1, "B", use)),
            State("B"),
        ),
        (Transition("go", ("A",), "B", actions=calls),),
    )


REGISTRY = ActionRegistry({"charge": charge, "keyed": keyed, "notify": notify})


@pytest.mark.parametrize(
    "calls",
    [
        pytest.param(
            (ActionCall("charge", FrozenDict({"amount": 1, "currency": "USD"})),), id="all-params"
        ),
        pytest.param((ActionCall("keyed"),), id="required-idempotency-key"),
        pytest.param((ActionCall("notify"),), id="no-params"),
    ],
)
def test_params_that_fit_pass(calls: tuple[ActionCall, ...]) -> None:
    assert problems(definition(*calls), REGISTRY) == ()


@pytest.mark.parametrize(
    ("call", "path", "detail"),
    [
        pytest.param(
            ActionCall("charge"),
            "transitions[0].actions[0]",
            "missing a required argument: 'amount'",
            id="missing-param",
        ),
        pytest.param(
            ActionCall("charge", FrozenDict({"amount": 1, "amuont": 2})),
            "transitions[0].actions[0].params",
            "unexpected keyword argument 'amuont'",
            id="unknown-param",
        ),
        pytest.param(
            ActionCall("notify", FrozenDict({"level": 2})),
            "transitions[0].actions[0].params",
            "it takes params: none",
            id="params-for-none",
        ),
        pytest.param(
            ActionCall("keyed", FrozenDict({"idempotency_key": "mine"})),
            "transitions[0].actions[0].params.idempotency_key",
            "idempotency_key is passed by the executor",
            id="reserved-key",
        ),
    ],
)
def test_params_that_do_not_fit_are_spec_errors(call: ActionCall, path: str, detail: str) -> None:
    with pytest.raises(SpecError) as caught:
        check_actions(definition(call), REGISTRY)
    assert type(caught.value) is SpecError
    (problem,) = caught.value.problems
    assert (problem.path, problem.line) == (path, None)
    assert problem.message.startswith(f"action {call.name!r}")
    assert detail in problem.message


PARAMS_SPEC = """\
meta: {machine_name: t}
states:
  - {name: A, type: initial}
  - name: B
    on_enter:
      - {name: charge, params: {amount: 5, cents: 1}}
      - name: charge
        retry: {attempts: 2}
transitions:
  - {trigger: go, source: A, dest: B}
"""


def test_params_problems_point_into_the_spec() -> None:
    machine = StateMachine.from_string(PARAMS_SPEC, file="p.yaml")
    with pytest.raises(SpecError) as caught:
        check_actions(machine.definition, REGISTRY, machine.source)
    assert [(p.line, p.column, p.path) for p in caught.value.problems] == [
        (6, 32, "states[1].on_enter[0].params"),
        (7, 9, "states[1].on_enter[1]"),
    ]
    assert [p.got for p in caught.value.problems] == ["amount, cents", "none"]


def test_missing_names_and_bad_params_are_reported_together() -> None:
    calls = (
        ActionCall("charge", FrozenDict({"cost": 1})),
        ActionCall("nothing"),
        ActionCall("nothing"),
    )
    with pytest.raises(ActionNotFoundError) as caught:
        check_actions(definition(*calls), REGISTRY)
    assert caught.value.names == ("nothing",)
    assert [p.path for p in caught.value.problems] == [
        "transitions[0].actions[0].params",
        "transitions[0].actions[1]",
        "transitions[0].actions[2]",
    ]


def test_action_uses_walks_the_definition_in_order() -> None:
    paths = [path for path, _ in action_uses(definition(ActionCall("notify")))]
    assert paths == [
        ("states", 0, "on_enter", 0),
        ("states", 0, "on_exit", 0),
        ("states", 0, "timeout", "actions", 0),
        ("transitions", 0, "actions", 0),
    ]
