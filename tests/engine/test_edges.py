"""Edges no outside event takes: a state's timeout, and the error fallback."""

from __future__ import annotations

import json

import pytest

from statewise import ActionCall, StateMachine, TransitionResult, UndefinedStateError
from statewise.model.definition import ERROR_TRIGGER, TIMEOUT_TRIGGER

SPEC = """\
meta: {machine_name: jobs}
states:
  - name: QUEUED
    type: initial
    on_exit: [unqueue]
    timeout:
      duration: PT5M
      destination: EXPIRED
      actions: [{name: notify, params: {channel: ops}}, log_expiry]
  - {name: RUNNING, on_enter: [start_clock], on_exit: [stop_clock]}
  - {name: EXPIRED, type: terminal, on_enter: [archive]}
  - {name: DONE, type: terminal}
  - {name: BROKEN, type: error, on_enter: [page_someone]}
transitions:
  - {trigger: start, source: QUEUED, dest: RUNNING}
  - {trigger: finish, source: RUNNING, dest: DONE}
error_policy:
  default_fallback: BROKEN
  retry_attempts: 2
  backoff_seconds: 0.25
"""


@pytest.fixture(scope="module")
def machine() -> StateMachine:
    return StateMachine.from_string(SPEC)


def test_duration_is_parsed_into_seconds(machine: StateMachine) -> None:
    timeout = machine.get_state("QUEUED").timeout
    assert timeout is not None and timeout.seconds == 300.0
    assert timeout.actions == (ActionCall("notify", {"channel": "ops"}), ActionCall("log_expiry"))


def test_timeout_result(machine: StateMachine) -> None:
    r = machine.timeout_result("QUEUED", event_id="t-1")
    assert r is not None
    assert (r.success, r.trigger, r.source_state, r.target_state) == (
        True,
        TIMEOUT_TRIGGER,
        "QUEUED",
        "EXPIRED",
    )
    assert r.action_names == ("unqueue", "notify", "log_expiry", "archive")
    assert r.all_actions[1].params == {"channel": "ops"}
    assert (r.event.trigger, r.event.id) == ("timeout", "t-1")
    assert r.entered and r.state_changed
    assert TransitionResult.from_dict(json.loads(json.dumps(r.to_dict()))) == r


def test_no_timeout_no_result(machine: StateMachine) -> None:
    assert machine.timeout_result("RUNNING") is None
    with pytest.raises(UndefinedStateError):
        machine.timeout_result("NOPE")


def test_rule_table_holds_the_edges(machine: StateMachine) -> None:
    rules = machine.rules
    assert set(rules.timeouts) == {"QUEUED"}
    assert rules.timeouts["QUEUED"].dest == "EXPIRED"
    # Every live state but the fallback itself may fail over; terminal ones may not.
    assert set(rules.fallbacks) == {"QUEUED", "RUNNING"}
    edges = list(rules.edges(timeouts=True))
    assert ("QUEUED", rules.timeouts["QUEUED"]) in edges
    assert ("QUEUED", rules.timeouts["QUEUED"]) not in list(rules.edges())


def test_fail_moves_to_the_fallback(machine: StateMachine) -> None:
    r = machine.fail("RUNNING", TimeoutError("bank did not answer"), event_id="e-1:fallback")
    assert (r.success, r.trigger, r.source_state, r.target_state) == (
        True,
        ERROR_TRIGGER,
        "RUNNING",
        "BROKEN",
    )
    assert r.action_names == ("stop_clock", "page_someone")
    assert dict(r.event.payload) == {
        "error": "bank did not answer",
        "error_type": "TimeoutError",
    }
    assert r.event.id == "e-1:fallback"
    assert machine.fail("RUNNING", "plain text").event.payload["error_type"] is None


@pytest.mark.parametrize(
    ("state", "code"), [("DONE", "terminal_state"), ("BROKEN", "invalid_transition")]
)
def test_fail_never_leaves_terminal_or_fallback_states(
    machine: StateMachine, state: str, code: str
) -> None:
    r = machine.fail(state, RuntimeError("x"))
    assert not r.success and r.target_state == state
    assert r.error is not None and r.error.code == code


def test_fail_needs_a_fallback() -> None:
    m = StateMachine.from_string(SPEC.split("error_policy:", maxsplit=1)[0])
    with pytest.raises(ValueError, match=r"has no error_policy\.default_fallback"):
        m.fail("RUNNING", RuntimeError("x"))
    with_fallback = StateMachine.from_string(SPEC)
    with pytest.raises(UndefinedStateError):
        with_fallback.fail("NOPE", "x")


def test_policy_retry(machine: StateMachine) -> None:
    retry = machine.definition.error_policy.retry
    assert (retry.attempts, retry.backoff_seconds, retry.max_backoff_seconds) == (2, 0.25, 30.0)
    assert [retry.delay(k) for k in (1, 2, 3)] == [0.25, 0.5, 1.0]
