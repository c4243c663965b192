"""Wire formats: the published event and result schemas, and audit rows.

Shared by the tests here: a machine whose results use every part of the result
format (actions with params and retry, timeouts with actions, internal and self
transitions, a payload schema, an expression guard, a fallback state), a non-strict
machine for ignored events, and validators that resolve the schemas' references
to one another the way a consumer in another language must: all three loaded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib.resources import files
from typing import Any

from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from statewise import GuardRegistry, StateMachine

SCHEMA_NAMES = ("machine", "event", "transition_result")

WIRE_SPEC: dict[str, Any] = {
    "meta": {"machine_name": "wire", "version": "1.0.0", "strict_mode": True},
    "states": [
        {
            "name": "IDLE",
            "type": "initial",
            "on_exit": [{"name": "log", "params": {"level": "info"}}],
            "timeout": {
                "duration": "PT5M",
                "destination": "EXPIRED",
                "actions": [{"name": "notify", "params": {"why": "timeout"}}],
            },
        },
        {
            "name": "BUSY",
            "on_enter": [
                "notify",
                {
                    "name": "charge",
                    "params": {"amount": 10, "tags": ["a", "b"], "card": {"last4": "4242"}},
                    "retry": {"attempts": 2, "backoff_seconds": 0.1},
                },
            ],
            "on_exit": "log",
            "timeout": {"seconds": 30, "destination": "EXPIRED"},
        },
        {"name": "DONE", "type": "terminal"},
        {"name": "EXPIRED", "type": "terminal"},
        {"name": "BROKEN", "type": "error", "on_enter": ["alert"]},
    ],
    "transitions": [
        {
            "trigger": "start",
            "source": "IDLE",
            "dest": "BUSY",
            "guards": [{"name": "has_budget", "params": {"minimum": 5}}],
            "actions": [{"name": "reserve", "params": {"qty": 1}}],
            "description": "Work starts once the budget allows it.",
            "metadata": {"owner": "billing"},
        },
        {"trigger": "ping", "source": "BUSY", "actions": ["record_ping"]},
        {"trigger": "restart", "source": "BUSY", "dest": "BUSY", "actions": ["reset"]},
        {"trigger": "finish", "source": "BUSY", "dest": "DONE", "when": "budget > 100"},
        {"trigger": "pay", "source": "BUSY", "actions": [{"name": "record_payment"}]},
        {"trigger": "abort", "source": "*", "dest": "DONE"},
    ],
    "triggers": {
        "pay": {
            "payload_schema": {
                "type": "object",
                "required": ["amount"],
                "properties": {"amount": {"type": "number", "minimum": 0}},
            }
        }
    },
    "error_policy": {"default_fallback": "BROKEN", "retry_attempts": 1},
}


def wire_guards() -> GuardRegistry:
    guards = GuardRegistry()

    @guards.register("has_budget")
    def has_budget(ctx: Mapping[str, Any], minimum: int) -> bool:
        return bool(ctx["budget"] >= minimum)

    return guards


@cache
def wire_machine() -> StateMachine:
    return StateMachine.from_dict(WIRE_SPEC, guards=wire_guards())


@cache
def lenient_machine() -> StateMachine:
    """strict_mode false: an event nothing matches is ignored."""
    return StateMachine.from_dict(
        {
            "meta": {"machine_name": "lenient", "strict_mode": False},
            "states": [{"name": "A", "type": "initial"}, {"name": "B"}],
            "transitions": [{"trigger": "go", "source": "A", "dest": "B"}],
        }
    )


def load_schema(name: str) -> dict[str, Any]:
    """A packaged schema, as installed (``statewise/schemas/<name>.schema.json``)."""
    text = (files("statewise") / "schemas" / f"{name}.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def registry() -> Registry[Any]:
    """Every packaged schema, by its ``$id``: what a validator needs to follow refs."""
    return Registry().with_resources(
        (schema["$id"], DRAFT202012.create_resource(schema))
        for schema in map(load_schema, SCHEMA_NAMES)
    )


@cache
def validator(name: str) -> Draft202012Validator:
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, registry=registry())


def json_round_trip(value: Any) -> Any:
    """``value`` as a program reading the JSON text gets it back."""
    return json.loads(json.dumps(value, allow_nan=False))


# JSON data: what a producer in any language can send.
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
json_payloads = st.dictionaries(st.text(max_size=10), json_values, max_size=5)
