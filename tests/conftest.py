"""Shared fixtures: the order machine from examples/, and small spec builders."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from statewise import GuardRegistry, StateMachine

ROOT = Path(__file__).resolve().parent.parent
ORDER_SPEC = ROOT / "examples" / "order_fsm.yaml"


def order_guards() -> GuardRegistry:
    guards = GuardRegistry()

    @guards.register("is_full_fill")
    def is_full_fill(ctx: Mapping[str, Any]) -> bool:
        return bool(ctx["fill_qty"] >= ctx["order_qty"])

    @guards.register("is_partial_fill")
    def is_partial_fill(ctx: Mapping[str, Any]) -> bool:
        return bool(0 < ctx["fill_qty"] < ctx["order_qty"])

    return guards


@pytest.fixture(scope="session")
def order_machine() -> StateMachine:
    return StateMachine.from_yaml(ORDER_SPEC, guards=order_guards())


def spec(
    states: list[dict[str, Any]], transitions: list[dict[str, Any]] | None = None, **meta: Any
) -> dict[str, Any]:
    """A spec dict with ``machine_name: t`` and the given parts."""
    return {
        "meta": {"machine_name": "t", **meta},
        "states": copy.deepcopy(states),
        "transitions": copy.deepcopy(transitions or []),
    }
