"""ActionExecutor.execute: order, isolation, retries, keys, done, fallback."""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass
from random import Random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statewise import Event, SpecError
from statewise.engine.actions import ActionRegistry
from statewise.errors import ActionNotFoundError
from statewise.execution import (
    ActionExecutor,
    ActionStatus,
    ExecutionResult,
    idempotency_key,
    idempotency_keys,
)
from tests.execution.support import GO, Calls, Clock, executor, machine, registry

OK, FAILED, SKIPPED = ActionStatus.OK, ActionStatus.FAILED, ActionStatus.SKIPPED


def run(
    event: Event | str = GO,
    state: str = "A",
    *,
    fail: Mapping[str, int] | None = None,
    context: object = None,
    done: tuple[str, ...] = (),
    **options: Any,
) -> tuple[ExecutionResult, Calls, Clock]:
    m = machine(**options.pop("machine_options", {}))
    calls, clock = Calls(), Clock()
    ex = executor(registry(calls, fail=fail), clock, machine=m, **options)
    return ex.execute(m.process(state, event), context, done=done), calls, clock


def statuses(execution: ExecutionResult) -> list[tuple[str, ActionStatus]]:
    return [(o.name, o.status) for o in execution.outcomes]


# -- order, isolation, what actions get ------------------------------------------------


def test_actions_run_in_order_and_a_failure_does_not_stop_the_next() -> None:
    execution, calls, _ = run()
    assert execution.result.action_names == ("leave_a", "log", "boom", "enter_b", "charge")
    assert statuses(execution) == [
        ("leave_a", OK),
        ("log", OK),
        ("boom", FAILED),
        ("enter_b", OK),
        ("charge", OK),
    ]
    assert calls.names == ["leave_a", "log", "boom", "boom", "boom", "enter_b", "charge"]
    assert [o.position for o in execution.outcomes] == [0, 1, 2, 3, 4]
    assert not execution.all_succeeded
    assert execution.failed_actions == (execution.outcomes[2],)


def test_actions_get_the_context_over_the_payload_and_their_params() -> None:
    execution, calls, _ = run(context={"order": 1, "limit": 9})
    name, ctx, kwargs = calls.seen[-1]
    assert (name, ctx, kwargs["amount"]) == ("charge", {"order": 1, "limit": 9, "qty": 1}, 5)
    assert execution.outcomes[-1].params == {"amount": 5}
    assert execution.outcomes[-1].value == 5
    assert execution.outcomes[0].value == "leave_a done"


@dataclass(frozen=True)
class Stored:
    order: int


def test_a_dataclass_context_is_read_like_a_mapping() -> None:
    _, calls, _ = run(context=Stored(order=3))
    assert calls.seen[0][1] == {"order": 3, "qty": 1}


def test_a_context_of_the_wrong_kind_raises_before_any_action_runs() -> None:
    with pytest.raises(TypeError, match="context must be a mapping"):
        run(context=42)


def test_failed_outcomes_carry_the_last_error() -> None:
    execution, _, _ = run()
    failed = execution.outcomes[2]
    assert (failed.error, failed.error_type, failed.value) == ("boom failed", "RuntimeError", None)
    assert isinstance(failed.exception, RuntimeError)
    assert execution.outcomes[0].exception is None


@pytest.mark.parametrize(
    ("event", "state", "strict"),
    [
        pytest.param("finish", "A", True, id="rejected"),
        pytest.param("finish", "A", False, id="ignored"),
        pytest.param("go", "T", True, id="terminal"),
    ],
)
def test_nothing_runs_for_a_failed_or_ignored_result(event: str, state: str, strict: bool) -> None:
    execution, calls, _ = run(event, state, machine_options={"strict": strict})
    assert not execution.result.success or execution.result.ignored
    assert (execution.outcomes, execution.fallback, calls.names) == ((), None, [])
    assert execution.all_succeeded


# -- attempts, durations, retries ------------------------------------------------------


def test_durations_span_every_attempt_and_wait() -> None:
    m = machine(retry_attempts=2, backoff_seconds=1.0, max_backoff_seconds=3.0)
    clock = Clock()
    reg = ActionRegistry()

    def slow(ctx: Mapping[str, Any]) -> None:
        clock.now += 0.5

    def slow_boom(ctx: Mapping[str, Any]) -> None:
        clock.now += 0.5
        raise RuntimeError("boom")

    for name in ("leave_a", "log", "enter_b", "leave_b", "tick", "alert", "leave_e", "archive"):
        reg.register(name, slow)
    reg.register("boom", slow_boom)
    reg.register("charge", lambda ctx, amount: None)
    execution = executor(reg, clock, machine=m).execute(m.process("A", GO))
    assert [(o.attempts, o.duration) for o in execution.outcomes] == [
        (1, 0.5),
        (1, 0.5),
        (3, 0.5 * 3 + 1.0 + 2.0),  # three calls, and waits of 1 s and 2 s between them
        (1, 0.5),
        (1, 0.0),
    ]


@pytest.mark.parametrize(
    ("upper", "attempts", "backoff", "cap", "sleeps"),
    [
        pytest.param(True, 5, 1.0, 4.0, [1.0, 2.0, 4.0, 4.0, 4.0], id="exponential-capped"),
        pytest.param(False, 5, 1.0, 4.0, [0.5, 1.0, 2.0, 2.0, 2.0], id="jitter-floor"),
        pytest.param(True, 3, 0.5, 30.0, [0.5, 1.0, 2.0], id="defaults"),
        pytest.param(True, 2, 0.0, 30.0, [0.0, 0.0], id="no-backoff"),
        pytest.param(True, 0, 1.0, 4.0, [], id="retry_attempts-0"),
    ],
)
def test_retries_wait_exponentially_capped_and_jittered(
    upper: bool, attempts: int, backoff: float, cap: float, sleeps: list[float]
) -> None:
    options = {"retry_attempts": attempts, "backoff_seconds": backoff, "max_backoff_seconds": cap}
    execution, calls, clock = run(upper=upper, machine_options=options)
    assert clock.sleeps == sleeps
    assert execution.outcomes[2].attempts == attempts + 1
    assert calls.names.count("boom") == attempts + 1


@settings(max_examples=50, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    attempts=st.integers(0, 6),
    backoff=st.floats(0.0, 5.0),
    cap=st.floats(0.0, 20.0),
)
def test_every_wait_lies_between_half_the_delay_and_the_delay(
    seed: int, attempts: int, backoff: float, cap: float
) -> None:
    m = machine(retry_attempts=attempts, backoff_seconds=backoff, max_backoff_seconds=cap)
    clock = Clock()
    ex = ActionExecutor(
        registry(Calls()), machine=m, sleep=clock.sleep, clock=clock, random=Random(seed)
    )
    ex.execute(m.process("A", GO))
    policy = m.definition.error_policy.retry
    assert len(clock.sleeps) == attempts
    for k, waited in enumerate(clock.sleeps, start=1):
        assert policy.delay(k) / 2 <= waited <= policy.delay(k) <= cap


def test_an_action_that_succeeds_on_a_retry_is_ok() -> None:
    execution, _, clock = run("calm", fail={"log": 1})
    assert [(o.name, o.status, o.attempts) for o in execution.outcomes[:2]] == [
        ("leave_a", OK, 1),
        ("log", OK, 2),
    ]
    assert (clock.sleeps, execution.fallback) == ([1.0], None)


@pytest.mark.parametrize(
    ("trigger", "attempts", "sleeps"),
    [
        pytest.param("flaky", 2, [0.25], id="own-retry-1-over-policy-2"),
        pytest.param("once", 1, [], id="own-retry-0-over-policy-2"),
        pytest.param("crash", 3, [1.0, 2.0], id="policy"),
    ],
)
def test_an_actions_own_retry_overrides_the_policy(
    trigger: str, attempts: int, sleeps: list[float]
) -> None:
    execution, _, clock = run(trigger, "B")
    boom = next(o for o in execution.outcomes if o.name == "boom")
    assert (boom.attempts, clock.sleeps) == (attempts, sleeps)


def test_without_a_machine_only_an_actions_own_retry_applies() -> None:
    m = machine(retry_attempts=4)
    calls, clock = Calls(), Clock()
    ex = executor(registry(calls), clock)
    assert ex.machine is None
    crash = ex.execute(m.process("B", "crash"))
    flaky = ex.execute(m.process("B", "flaky"))
    assert [o.attempts for o in crash.outcomes if o.name == "boom"] == [1]
    assert [o.attempts for o in flaky.outcomes] == [2]
    assert clock.sleeps == [0.25]
    assert (crash.fallback, flaky.fallback) == (None, None)


# -- idempotency keys and done ---------------------------------------------------------


def test_keys_are_passed_only_to_actions_that_accept_them() -> None:
    execution, calls, _ = run()
    keys = idempotency_keys(execution.result)
    assert [o.idempotency_key for o in execution.outcomes] == list(keys)
    by_name = {name: kwargs for name, _, kwargs in calls.seen}
    assert by_name["charge"] == {"amount": 5, "key": keys[4]}
    assert by_name["log"] == {"idempotency_key": keys[1]}  # through **kwargs

    reg = ActionRegistry()
    seen: list[tuple[Any, ...]] = []
    reg.register("leave_a", lambda ctx: seen.append(("plain",)))
    reg.register("log", lambda ctx, idempotency_key=None: seen.append(("kw", idempotency_key)))
    reg.register("boom", lambda ctx, *, idempotency_key: seen.append(("kwonly", idempotency_key)))
    reg.register("enter_b", lambda ctx, *args: seen.append(("args", *args)))
    reg.register("charge", lambda ctx, amount: seen.append(("amount", amount)))
    result = machine().process("A", GO)
    outcome = ActionExecutor(reg).execute(result)
    assert outcome.all_succeeded
    key = idempotency_keys(result)
    assert seen == [("plain",), ("kw", key[1]), ("kwonly", key[2]), ("args",), ("amount", 5)]


def test_equal_events_give_equal_keys_and_fallbacks_across_runs() -> None:
    first, _, _ = run()
    again, _, _ = run()
    assert first == again
    assert first.fallback is not None
    assert first.fallback.event.id == f"{first.outcomes[2].idempotency_key}:fallback"


def test_done_actions_are_skipped_and_not_run() -> None:
    first, _, _ = run()
    done = tuple(o.idempotency_key for o in first.outcomes if o.status is OK)
    again, calls, _ = run(done=done)
    assert statuses(again) == [
        ("leave_a", SKIPPED),
        ("log", SKIPPED),
        ("boom", FAILED),
        ("enter_b", SKIPPED),
        ("charge", SKIPPED),
    ]
    assert calls.names == ["boom"] * 3
    assert [o.attempts for o in again.outcomes] == [0, 0, 3, 0, 0]
    assert again.fallback == first.fallback


def test_keys_not_from_this_result_skip_nothing() -> None:
    execution, _, _ = run(done=("not-a-key", idempotency_key(machine().process("A", "calm"), 0)))
    assert SKIPPED not in {o.status for o in execution.outcomes}


def test_stop_on_failure_skips_the_rest() -> None:
    execution, calls, _ = run(stop_on_failure=True)
    assert statuses(execution) == [
        ("leave_a", OK),
        ("log", OK),
        ("boom", FAILED),
        ("enter_b", SKIPPED),
        ("charge", SKIPPED),
    ]
    assert "enter_b" not in calls.names
    skipped = execution.outcomes[3]
    assert (skipped.attempts, skipped.error, skipped.value) == (0, None, None)
    assert execution.fallback is not None


# -- fallback --------------------------------------------------------------------------


def test_a_failing_action_yields_the_fallback_result() -> None:
    execution, _, _ = run()
    fallback = execution.fallback
    assert fallback is not None
    assert fallback.success
    assert (fallback.trigger, fallback.source_state, fallback.target_state) == ("error", "B", "E")
    assert fallback.action_names == ("leave_b", "alert")
    assert dict(fallback.event.payload) == {"error": "boom failed", "error_type": "RuntimeError"}


def test_the_fallback_result_is_executed_the_same_way() -> None:
    m = machine()
    calls, clock = Calls(), Clock()
    ex = executor(registry(calls), clock, machine=m)
    fallback = ex.execute(m.process("A", GO)).fallback
    assert fallback is not None
    second = ex.execute(fallback)
    assert statuses(second) == [("leave_b", OK), ("alert", OK)]
    assert second.fallback is None


def test_failing_in_the_fallback_state_does_not_loop() -> None:
    m = machine()
    fallback = m.fail("B", "x", event_id="k")
    reg = registry(Calls(), fail={"alert": 9})
    execution = executor(reg, Clock(), machine=m).execute(fallback)
    assert [o.status for o in execution.outcomes] == [OK, FAILED]
    assert execution.fallback is None


@pytest.mark.parametrize(
    ("trigger", "state", "options"),
    [
        pytest.param("crash", "B", {}, id="into-a-terminal-state"),
        pytest.param("go", "A", {"fallback": None}, id="no-default_fallback"),
    ],
)
def test_no_fallback(trigger: str, state: str, options: dict[str, Any]) -> None:
    execution, _, _ = run(trigger, state, machine_options=options)
    assert execution.failed_actions
    assert execution.fallback is None


# -- what can go wrong around the actions ----------------------------------------------


def test_an_unregistered_action_fails_and_is_never_retried() -> None:
    calls, clock = Calls(), Clock()
    reg = registry(calls)
    partial = ActionRegistry({n: reg.get(n) for n in reg if n not in {"log", "charge", "boom"}})
    partial.register("logg", lambda ctx: None)
    ex = executor(partial, clock)
    execution = ex.execute(machine().process("A", GO))
    flaky = ex.execute(machine().process("B", "flaky")).outcomes[0]  # has its own retry
    log, boom, charge = execution.outcomes[1], execution.outcomes[2], execution.outcomes[4]
    for outcome in (log, boom, charge, flaky):
        assert (outcome.status, outcome.attempts, outcome.value) == (FAILED, 0, None)
        assert outcome.error_type == "ActionNotFoundError"
        assert isinstance(outcome.exception, ActionNotFoundError)
        assert outcome.exception.names == (outcome.name,)
    assert log.error is not None
    assert "action 'log' is not registered (did you mean 'logg'?)" in log.error
    assert (calls.names, clock.sleeps) == (["leave_a", "enter_b"], [])


def test_a_machine_checks_its_actions_when_the_executor_is_built() -> None:
    reg = registry(Calls())
    partial = ActionRegistry({n: reg.get(n) for n in reg if n != "tick"})
    with pytest.raises(ActionNotFoundError) as caught:
        ActionExecutor(partial, machine=machine())
    assert caught.value.names == ("tick",)
    assert [p.path for p in caught.value.problems] == ["states[1].timeout.actions[0]"]


def test_the_registry_is_copied_when_the_executor_is_built() -> None:
    reg = ActionRegistry()
    ex = ActionExecutor(reg)
    reg.register("log", lambda ctx: None)
    outcome = ex.execute(machine().process("A", "calm")).outcomes[1]
    assert (outcome.name, outcome.status) == ("log", FAILED)
    assert repr(ex) == "ActionExecutor([])"
    assert repr(ActionExecutor(registry(Calls()), machine=machine())).endswith("machine='t')")


def test_keyboard_interrupt_propagates_at_once() -> None:
    calls = Calls()
    reg = registry(calls)

    def interrupt(ctx: Mapping[str, Any]) -> None:
        raise KeyboardInterrupt

    reg.register("log", interrupt, replace=True)
    with pytest.raises(KeyboardInterrupt):
        executor(reg, Clock(), machine=machine()).execute(machine().process("A", GO))
    assert calls.names == ["leave_a"]


class Later:
    """An awaitable that is not a coroutine (it has no ``close``)."""

    def __await__(self) -> Generator[Any, None, int]:
        yield from ()
        return 1


async def coroutine_action(ctx: Mapping[str, Any]) -> int:
    return 1


async def _one() -> int:
    return 1


@pytest.mark.parametrize(
    ("action", "message", "attempts"),
    [
        pytest.param(coroutine_action, "is a coroutine function", 0, id="async-def"),
        pytest.param(lambda ctx: _one(), "returned an awaitable", 3, id="returns-coroutine"),
        pytest.param(lambda ctx: Later(), "returned an awaitable", 3, id="returns-awaitable"),
    ],
)
def test_execute_refuses_what_only_execute_async_can_run(
    action: Any, message: str, attempts: int
) -> None:
    reg = registry(Calls())
    reg.register("boom", action, replace=True)
    execution = executor(reg, Clock(), machine=machine()).execute(machine().process("B", "crash"))
    boom = execution.outcomes[1]
    assert (boom.status, boom.error_type, boom.attempts) == (FAILED, "TypeError", attempts)
    assert boom.error is not None
    assert message in boom.error
    assert "execute_async" in boom.error


def test_params_are_checked_against_the_registry_at_start_up() -> None:
    reg = registry(Calls())
    reg.register("charge", lambda ctx, total: None, replace=True)
    with pytest.raises(SpecError, match=r"states\[1\]\.on_enter\[1\]\.params"):
        ActionExecutor(reg, machine=machine())


def raising(error: BaseException) -> ActionRegistry:
    reg = registry(Calls())

    def raise_it(ctx: Mapping[str, Any]) -> None:
        raise error

    reg.register("boom", raise_it, replace=True)
    return reg


def test_a_stop_iteration_is_an_outcome_like_any_exception() -> None:
    ex = executor(raising(StopIteration("x")), Clock(), machine=machine(retry_attempts=0))
    boom = ex.execute(machine().process("B", "crash")).outcomes[1]
    assert (boom.status, boom.error_type) == (FAILED, "StopIteration")


@pytest.mark.parametrize("error", [GeneratorExit, SystemExit])
def test_base_exceptions_are_not_outcomes(error: type[BaseException]) -> None:
    ex = executor(raising(error()), Clock(), machine=machine())
    with pytest.raises(error):
        ex.execute(machine().process("B", "crash"))
