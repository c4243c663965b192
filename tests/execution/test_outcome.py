"""ActionOutcome and ExecutionResult: properties, and the round trip through JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from statewise import FrozenDict
from statewise.execution import ActionOutcome, ActionStatus, ExecutionResult
from tests.execution.support import GO, Calls, Clock, executor, machine, registry

OK, FAILED, SKIPPED = ActionStatus.OK, ActionStatus.FAILED, ActionStatus.SKIPPED


def outcome(status: ActionStatus = OK, **changes: Any) -> ActionOutcome:
    fields: dict[str, Any] = {
        "name": "log",
        "position": 0,
        "status": status,
        "params": {},
        "idempotency_key": "k",
    }
    return ActionOutcome(**(fields | changes))


def through_json(execution: ExecutionResult) -> ExecutionResult:
    return ExecutionResult.from_dict(json.loads(json.dumps(execution.to_dict())))


def test_status_values_are_their_names() -> None:
    assert [s.value for s in ActionStatus] == ["ok", "failed", "skipped"]
    assert ActionStatus("failed") is FAILED
    assert [outcome(s).ok for s in ActionStatus] == [True, False, False]
    assert [outcome(s).failed for s in ActionStatus] == [False, True, False]
    assert [outcome(s).skipped for s in ActionStatus] == [False, False, True]


@pytest.mark.parametrize(
    ("statuses", "all_succeeded", "failed"),
    [
        pytest.param((), True, (), id="none"),
        pytest.param((OK, SKIPPED), True, (), id="ok-and-skipped"),
        pytest.param((OK, FAILED, OK, FAILED), False, (1, 3), id="two-failures"),
    ],
)
def test_all_succeeded_and_failed_actions(
    statuses: tuple[ActionStatus, ...], all_succeeded: bool, failed: tuple[int, ...]
) -> None:
    outcomes = tuple(outcome(s, position=i) for i, s in enumerate(statuses))
    execution = ExecutionResult(machine().process("A", GO), outcomes)
    assert execution.all_succeeded is all_succeeded
    assert tuple(o.position for o in execution.failed_actions) == failed


def test_params_are_frozen() -> None:
    made = outcome(params={"amount": [1, 2]})
    assert made.params == FrozenDict({"amount": (1, 2)})
    assert isinstance(made.params, FrozenDict)


def test_a_real_execution_round_trips_through_json() -> None:
    m = machine()
    calls, clock = Calls(), Clock()
    ex = executor(registry(calls), clock, machine=m, stop_on_failure=True)
    execution = ex.execute(m.process("A", GO), {"order": 1})
    assert {o.status for o in execution.outcomes} == {OK, FAILED, SKIPPED}
    assert execution.fallback is not None
    data = execution.to_dict()
    assert data["all_succeeded"] is False
    assert data["outcomes"][2] == {
        "name": "boom",
        "position": 2,
        "status": "failed",
        "idempotency_key": execution.outcomes[2].idempotency_key,
        "params": {},
        "attempts": 3,
        "duration": 3.0,
        "value": None,
        "error": "boom failed",
        "error_type": "RuntimeError",
    }
    back = through_json(execution)
    assert back == execution
    assert back.outcomes[2].exception is None  # not serialized, and not compared
    assert execution.outcomes[2].exception is not None


def test_an_execution_without_fallback_round_trips() -> None:
    execution = ExecutionResult(machine().process("A", "finish"))
    assert through_json(execution) == execution
    assert execution.to_dict()["fallback"] is None


class Opaque:
    def __repr__(self) -> str:
        return "Opaque()"


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        pytest.param({"id": 7, "tags": ["a"]}, {"id": 7, "tags": ["a"]}, id="json"),
        pytest.param((1, "two"), [1, "two"], id="tuple-as-list"),
        pytest.param(Opaque(), "Opaque()", id="repr"),
        pytest.param(float("inf"), "inf", id="infinity"),
        pytest.param({1, 2}, "{1, 2}", id="set"),
        pytest.param(None, None, id="none"),
    ],
)
def test_values_are_kept_when_json_else_their_repr(value: Any, stored: Any) -> None:
    data = outcome(value=value).to_dict()
    assert data["value"] == stored
    assert json.loads(json.dumps(data)) == data


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


@given(value=json_values, status=st.sampled_from(ActionStatus), attempts=st.integers(0, 9))
def test_outcomes_with_json_values_round_trip(
    value: Any, status: ActionStatus, attempts: int
) -> None:
    made = outcome(status, value=value, attempts=attempts, params={"p": [value]}, duration=0.5)
    assert ActionOutcome.from_dict(json.loads(json.dumps(made.to_dict()))) == made


def test_the_exception_is_not_compared_nor_shown() -> None:
    with_error = outcome(FAILED, error="x", error_type="ValueError", exception=ValueError("x"))
    assert with_error == outcome(FAILED, error="x", error_type="ValueError")
    assert "exception" not in repr(with_error)
    assert "exception" not in with_error.to_dict()
