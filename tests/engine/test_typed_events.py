"""Typed events and contexts: payload_schema per trigger, context_schema per machine."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from statewise import (
    ContextError,
    Event,
    GuardRegistry,
    Machine,
    PayloadError,
    SpecError,
    StateMachine,
    TransitionResult,
)
from statewise.model.frozen import thaw

SPEC = """\
meta: {machine_name: payments}
states:
  - {name: NEW, type: initial}
  - {name: AUTHORIZED}
  - {name: DONE, type: terminal}
transitions:
  - {trigger: authorize, source: NEW, dest: AUTHORIZED, guards: [within_limit]}
  - {trigger: capture, source: AUTHORIZED, dest: DONE}
  - {trigger: note, source: "*"}
triggers:
  authorize:
    description: The bank authorized an amount.
    payload_schema:
      type: object
      required: [amount, currency]
      additionalProperties: false
      properties:
        amount: {type: integer, minimum: 1}
        currency: {enum: [EUR, USD]}
  capture:
    payload_schema: {type: object, required: [amount]}
context_schema:
  type: object
  required: [limit]
  properties:
    limit: {type: integer}
"""


def guards() -> GuardRegistry:
    g = GuardRegistry()
    g.register("within_limit", lambda ctx: ctx["amount"] <= ctx["limit"])
    return g


@pytest.fixture(scope="module")
def machine() -> StateMachine:
    return StateMachine.from_string(SPEC, guards=guards())


def test_valid_payload_transitions(machine: StateMachine) -> None:
    r = machine.process("NEW", Event("authorize", {"amount": 5, "currency": "EUR"}), {"limit": 9})
    assert (r.success, r.target_state) == (True, "AUTHORIZED")


def test_invalid_payload_is_a_failed_result_listing_every_problem(machine: StateMachine) -> None:
    event = Event("authorize", {"amount": 0, "currency": "GBP", "memo": "x"})
    r = machine.process("NEW", event, {"limit": 9})
    assert (r.success, r.target_state, r.all_actions) == (False, "NEW", ())
    error = r.error
    assert isinstance(error, PayloadError) and error.code == "invalid_payload"
    assert [(p.path, p.message) for p in error.problems] == [
        ("amount", "expected an integer >= 1, got 0"),
        ("currency", "expected one of EUR, USD; got 'GBP'"),
        ("memo", "unknown key 'memo'; expected one of: amount, currency"),
    ]
    assert "amount: expected an integer >= 1, got 0" in str(error)
    # It survives the wire, problems included.
    again = TransitionResult.from_dict(json.loads(json.dumps(r.to_dict())))
    assert again == r and again.error == error


def test_payload_is_checked_before_guards(machine: StateMachine) -> None:
    # A guard reading a missing amount would raise; the payload check answers first.
    r = machine.process("NEW", Event("authorize", {"currency": "EUR"}), {"limit": 9})
    assert r.error is not None and r.error.code == "invalid_payload"
    assert [p.path for p in r.decision.problems] == [""]
    assert r.decision.problems[0].message == "missing required key 'amount'"


def test_unguarded_trigger_with_schema(machine: StateMachine) -> None:
    assert machine.process("AUTHORIZED", Event("capture", {"amount": 5})).target_state == "DONE"
    r = machine.process("AUTHORIZED", Event("capture", {}))
    assert not r.success and r.error is not None and r.error.code == "invalid_payload"
    # A plain trigger name is an event with an empty payload: checked too.
    assert machine.process("AUTHORIZED", "capture").error == r.error


def test_not_allowed_beats_payload_problems(machine: StateMachine) -> None:
    r = machine.process("DONE", Event("capture", {}))
    assert r.error is not None and r.error.code == "terminal_state"


def test_context_schema_is_enforced_when_guards_read_it(machine: StateMachine) -> None:
    with pytest.raises(ContextError) as info:
        machine.process("NEW", Event("authorize", {"amount": 5, "currency": "EUR"}), {"limit": "9"})
    assert [(p.path, p.message) for p in info.value.problems] == [
        ("limit", "expected an integer, got string '9'")
    ]
    assert isinstance(info.value, ValueError)
    # No guard runs for `note`: the context is not read, so it is not checked.
    assert machine.process("NEW", "note", {"limit": "9"}).success


@dataclasses.dataclass(frozen=True)
class Ctx:
    limit: int


class PydCtx(pydantic.BaseModel):
    limit: int


@pytest.mark.parametrize("context", [{"limit": 9}, Ctx(9), PydCtx(limit=9)])
def test_contexts_of_every_kind(machine: StateMachine, context: Any) -> None:
    ok = Event("authorize", {"amount": 5, "currency": "EUR"})
    too_much = Event("authorize", {"amount": 50, "currency": "EUR"})
    assert machine.process("NEW", ok, context).success
    assert not machine.process("NEW", too_much, context).success


@pytest.mark.parametrize("context", [42, "limit", Ctx])
def test_other_contexts_are_refused(machine: StateMachine, context: Any) -> None:
    with pytest.raises(TypeError, match="context must be a mapping, a dataclass"):
        machine.process("NEW", Event("authorize", {"amount": 5, "currency": "EUR"}), context)


def test_schema_with_keywords_the_fast_compiler_lacks() -> None:
    m = StateMachine.from_dict(
        {
            "meta": {"machine_name": "m"},
            "states": [{"name": "A", "type": "initial"}, {"name": "B"}],
            "transitions": [{"trigger": "go", "source": "A", "dest": "B"}],
            "triggers": {
                "go": {
                    "payload_schema": {
                        "type": "object",
                        "patternProperties": {"^n_": {"type": "integer"}},
                    }
                }
            },
        }
    )
    assert m.process("A", Event("go", {"n_a": 1})).success
    r = m.process("A", Event("go", {"n_a": "x"}))
    assert [(p.path, p.message) for p in r.decision.problems] == [
        ("n_a", "'x' is not of type 'integer'")
    ]


def test_boolean_schemas() -> None:
    base: dict[str, Any] = {
        "meta": {"machine_name": "m"},
        "states": [{"name": "A", "type": "initial"}, {"name": "B"}],
        "transitions": [{"trigger": "go", "source": "A", "dest": "B"}],
    }
    anything = StateMachine.from_dict({**base, "triggers": {"go": {"payload_schema": True}}})
    assert anything.process("A", Event("go", {"x": 1})).success
    nothing = StateMachine.from_dict({**base, "triggers": {"go": {"payload_schema": False}}})
    assert not nothing.process("A", Event("go", {"x": 1})).success


def test_bare_machine_needs_a_schema_compiler() -> None:
    definition = StateMachine.from_string(SPEC).definition
    with pytest.raises(TypeError, match="pass schemas= a SchemaCompiler"):
        Machine(definition)


def test_spec_round_trip_keeps_triggers_and_context_schema() -> None:
    m = StateMachine.from_string(SPEC)
    exported = m.to_dict()
    assert exported["triggers"]["authorize"]["description"] == "The bank authorized an amount."
    assert exported["context_schema"]["required"] == ["limit"]
    assert StateMachine.from_dict(exported) == m


BAD_SCHEMAS = """\
meta: {machine_name: m}
states:
  - {name: A, type: initial}
transitions:
  - {trigger: go, source: A}
triggers:
  go:
    payload_schema: {type: objekt}
  bad-name: {}
context_schema: {required: 3}
"""


def test_bad_schemas_and_trigger_names_are_located() -> None:
    with pytest.raises(SpecError) as info:
        StateMachine.from_string(BAD_SCHEMAS, file="s.yaml")
    got = [(p.line, p.column, p.path, p.message.split(":")[0]) for p in info.value.problems]
    assert got == [
        (8, 21, "triggers.go.payload_schema", "not a valid JSON Schema"),
        (9, 3, 'triggers["bad-name"]', "trigger name 'bad-name' is not an identifier"),
        (10, 17, "context_schema", "not a valid JSON Schema"),
    ]


json_values = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False), st.text(max_size=3)
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["amount", "currency", "memo"]),
        st.one_of(json_values, st.sampled_from(["EUR", "USD", "GBP"]), st.integers(0, 20)),
    )
)
def test_an_invalid_payload_never_transitions(payload: dict[str, Any]) -> None:
    machine = StateMachine.from_string(SPEC, guards=guards())
    schema = machine.definition.triggers["authorize"].payload_schema
    valid = Draft202012Validator(thaw(schema)).is_valid(payload)
    r = machine.process("NEW", Event("authorize", payload), {"limit": 10})
    if valid:
        assert r.error is None or r.error.code == "guard_rejected"
    else:
        assert (r.success, r.target_state, r.all_actions) == (False, "NEW", ())
        assert r.error is not None and r.error.code == "invalid_payload"
        assert r.decision.problems
