"""The definition's newer parts built in code: calls, retries, triggers, schemas."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from statewise import (
    ActionCall,
    ActionNotFoundError,
    ActionRegistry,
    ErrorPolicy,
    FrozenDict,
    GuardCall,
    Machine,
    MachineDefinition,
    SpecError,
    State,
    StateMachine,
    StateType,
    Transition,
    TriggerSpec,
)
from statewise.engine.expressions import _syntax_message, plain
from statewise.engine.signatures import accepts_keyword, call_style, params_problem
from statewise.engine.views import ObjectView, as_mapping
from statewise.spec.user_schemas import compile_json_schema


def definition(**extra: Any) -> MachineDefinition:
    return MachineDefinition(
        "m",
        (State("A", StateType.INITIAL, on_enter=(ActionCall("hello"),)), State("B")),
        (Transition("go", ("A",), "B"),),
        **extra,
    )


def test_plain_mappings_are_frozen() -> None:
    d = definition(
        triggers={"go": TriggerSpec("go", {"type": "object"})},  # type: ignore[arg-type]
        context_schema={"type": "object"},
    )
    assert isinstance(d.triggers, FrozenDict)
    assert isinstance(d.triggers["go"].payload_schema, FrozenDict)
    assert isinstance(d.context_schema, FrozenDict)
    assert hash(d) == hash(definition(triggers=d.triggers, context_schema=d.context_schema))


def test_to_dict_writes_only_what_differs_from_defaults() -> None:
    policy = ErrorPolicy("B", 2, backoff_seconds=1.0, max_backoff_seconds=9.0)
    assert policy.to_dict() == {
        "default_fallback": "B",
        "retry_attempts": 2,
        "backoff_seconds": 1.0,
        "max_backoff_seconds": 9.0,
    }
    assert ErrorPolicy().to_dict() == {}
    spec = TriggerSpec("go", FrozenDict({"type": "object"}), "described")
    assert spec.to_dict() == {"payload_schema": {"type": "object"}, "description": "described"}
    assert TriggerSpec("go").to_dict() == {}


def test_calls_pass_through() -> None:
    a = ActionCall("a", FrozenDict({"x": 1}))
    g = GuardCall("g")
    assert ActionCall.from_spec(a) is a and GuardCall.from_spec(g) is g
    assert GuardCall.from_spec({"name": "g", "params": {"n": 1}}) == GuardCall("g", {"n": 1})
    assert GuardCall("g", {"n": [1]}).to_spec() == {"name": "g", "params": {"n": [1]}}


def test_machine_reports_bad_schemas_built_in_code() -> None:
    bad = definition(context_schema=FrozenDict({"type": "objekt"}))
    with pytest.raises(SpecError) as info:
        Machine(bad, schemas=compile_json_schema)
    [p] = info.value.problems
    assert p.path == "context_schema" and p.message.startswith("not a valid JSON Schema")
    with pytest.raises(ValueError, match="not a valid JSON Schema"):
        compile_json_schema({"type": 3})


def test_machine_check_actions() -> None:
    m = StateMachine.from_definition(definition())
    with pytest.raises(ActionNotFoundError) as info:
        m.check_actions(ActionRegistry())
    assert info.value.names == ("hello",)
    m.check_actions(ActionRegistry({"hello": lambda ctx: None}))


def test_object_views() -> None:
    class Model(pydantic.BaseModel):
        a: int
        b: list[int]

    view = as_mapping(Model(a=1, b=[2]))
    assert isinstance(view, ObjectView)
    assert (len(view), list(view), view.get("b")[0], view.get("zz", 7)) == (2, ["a", "b"], 2, 7)
    with pytest.raises(KeyError):
        view["zz"]
    assert repr(view).startswith("ObjectView(")
    assert plain(Model(a=1, b=[2])) == {"a": 1, "b": [2]}


def test_signature_less_callables() -> None:
    # Builtins without an introspectable signature are taken as fn(ctx).
    fn: Any = type("NoSig", (), {"__call__": lambda self, *a: True, "__signature__": 3})()
    assert call_style(fn) == 1
    assert not accepts_keyword(fn, "idempotency_key")
    assert params_problem(fn, ("x",), 1) is None


def test_cel_messages_without_a_position_pass_through() -> None:
    assert _syntax_message("something else went wrong") == "something else went wrong"
