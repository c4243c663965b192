"""ActionExecutor.execute_async: the same rules as execute, awaiting."""

from __future__ import annotations

import asyncio
from collections.abc import Generator, Mapping
from typing import Any

import pytest

from statewise.engine.actions import ActionRegistry
from statewise.execution import ActionStatus, ExecutionResult
from tests.execution.support import GO, Calls, Clock, executor, machine, registry

OK, FAILED, SKIPPED = ActionStatus.OK, ActionStatus.FAILED, ActionStatus.SKIPPED


def async_registry(calls: Calls, fail: Mapping[str, int] | None = None) -> ActionRegistry:
    """``registry``'s actions, every one but ``charge`` turned into a coroutine function
    that yields to the loop before doing its work."""
    sync = registry(calls, fail=fail)
    reg = ActionRegistry()
    for name in sync:
        fn = sync.get(name)
        if name == "charge":
            reg.register(name, fn)
            continue

        def wrap(fn: Any = fn) -> Any:
            async def action(ctx: Mapping[str, Any], **kwargs: Any) -> Any:
                await asyncio.sleep(0)
                return fn(ctx, **kwargs)

            return action

        reg.register(name, wrap())
    return reg


def run_async(
    event: Any = GO,
    state: str = "A",
    *,
    fail: Mapping[str, int] | None = None,
    done: tuple[str, ...] = (),
    **options: Any,
) -> tuple[ExecutionResult, Calls, Clock]:
    m = machine()
    calls, clock = Calls(), Clock()
    ex = executor(async_registry(calls, fail), clock, machine=m, **options)
    execution = asyncio.run(ex.execute_async(m.process(state, event), done=done))
    return execution, calls, clock


def test_coroutine_actions_are_awaited_in_order() -> None:
    execution, calls, clock = run_async()
    assert [(o.name, o.status) for o in execution.outcomes] == [
        ("leave_a", OK),
        ("log", OK),
        ("boom", FAILED),
        ("enter_b", OK),
        ("charge", OK),
    ]
    assert calls.names == ["leave_a", "log", "boom", "boom", "boom", "enter_b", "charge"]
    assert [o.value for o in execution.outcomes] == [
        "leave_a done",
        "log done",
        None,
        "enter_b done",
        5,
    ]
    assert clock.sleeps == [1.0, 2.0]  # through async_sleep


@pytest.mark.parametrize(
    ("event", "state", "fail", "options"),
    [
        pytest.param(GO, "A", None, {}, id="fallback"),
        pytest.param("calm", "A", {"log": 1}, {}, id="ok-on-retry"),
        pytest.param("crash", "B", None, {}, id="terminal-no-fallback"),
        pytest.param("flaky", "B", None, {}, id="own-retry"),
        pytest.param(GO, "A", None, {"stop_on_failure": True}, id="stop_on_failure"),
        pytest.param("finish", "A", None, {}, id="rejected"),
    ],
)
def test_execute_async_decides_like_execute(
    event: Any, state: str, fail: Mapping[str, int] | None, options: dict[str, Any]
) -> None:
    m = machine()
    sync_calls, sync_clock = Calls(), Clock()
    sync = executor(registry(sync_calls, fail=fail), sync_clock, machine=m, **options)
    expected = sync.execute(m.process(state, event))
    execution, calls, clock = run_async(event, state, fail=fail, **options)
    assert execution == expected
    assert (calls.seen, clock.sleeps, clock.now) == (
        sync_calls.seen,
        sync_clock.sleeps,
        sync_clock.now,
    )


def test_the_async_fallback_is_the_sync_one() -> None:
    execution, _, _ = run_async()
    assert execution.fallback is not None
    assert (execution.fallback.source_state, execution.fallback.target_state) == ("B", "E")
    assert execution.fallback.action_names == ("leave_b", "alert")


def test_done_actions_are_skipped_without_being_awaited() -> None:
    first, _, _ = run_async()
    done = tuple(o.idempotency_key for o in first.outcomes if o.status is OK)
    again, calls, _ = run_async(done=done)
    assert [o.status for o in again.outcomes] == [SKIPPED, SKIPPED, FAILED, SKIPPED, SKIPPED]
    assert calls.names == ["boom"] * 3


class Later:
    """An awaitable that is not a coroutine."""

    def __await__(self) -> Generator[Any, None, str]:
        yield from ()
        return "later"


class AsyncCallable:
    async def __call__(self, ctx: Mapping[str, Any]) -> str:
        return f"called with {len(ctx)} keys"


async def fails_after_await(ctx: Mapping[str, Any]) -> None:
    await asyncio.sleep(0)
    raise LookupError("gone")


@pytest.mark.parametrize(
    ("action", "status", "value", "error_type"),
    [
        pytest.param(lambda ctx: Later(), OK, "later", None, id="returns-awaitable"),
        pytest.param(AsyncCallable(), OK, "called with 0 keys", None, id="async-call-object"),
        pytest.param(lambda ctx: "plain", OK, "plain", None, id="plain-function"),
        pytest.param(fails_after_await, FAILED, None, "LookupError", id="raises-after-await"),
    ],
)
def test_what_execute_async_accepts(
    action: Any, status: ActionStatus, value: Any, error_type: str | None
) -> None:
    m = machine(retry_attempts=0)
    reg = registry(Calls())
    reg.register("boom", action, replace=True)
    execution = asyncio.run(
        executor(reg, Clock(), machine=m).execute_async(m.process("B", "crash"))
    )
    boom = execution.outcomes[1]
    assert (boom.status, boom.value, boom.error_type, boom.attempts) == (
        status,
        value,
        error_type,
        1,
    )


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, asyncio.CancelledError])
def test_base_exceptions_propagate(interrupt: type[BaseException]) -> None:
    calls = Calls()
    reg = async_registry(calls)

    async def stop(ctx: Mapping[str, Any]) -> None:
        raise interrupt

    reg.register("log", stop, replace=True)
    ex = executor(reg, Clock(), machine=machine())

    async def main() -> ExecutionResult:
        return await ex.execute_async(machine().process("A", GO))

    with pytest.raises(interrupt):
        asyncio.run(main())
    assert calls.names == ["leave_a"]
