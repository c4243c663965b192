"""Running a result's actions, once its new state is committed: load, decide, commit, **act**.

Run an executor only after ``result.target_state`` is committed: actions are side
effects, and a side effect of a transition that was never stored is a lie. Each
action is isolated: one that raises is retried (with exponential, jittered backoff)
and, if it still fails, recorded as failed while the next one runs all the same.
When one failed and the machine has an ``error_policy.default_fallback``, the
:class:`ExecutionResult` carries ``fallback``: the result moving the entity there.
Commit it the same way, then execute it.

Theory of operation. One generator (``_run``) holds every rule: which actions run,
with which keys, how often, how long to wait. It makes no call and waits for nothing
itself: it yields what to call or how long to sleep, and a driver does it, plainly
(:meth:`ActionExecutor.execute`) or awaiting (:meth:`ActionExecutor.execute_async`).
So the two entry points cannot drift apart.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Collection, Generator, Mapping
from random import Random
from typing import Any, NamedTuple, TypeAlias

from statewise.engine.actions import IDEMPOTENCY_KEY, ActionRegistry, check_actions
from statewise.engine.machine import Machine
from statewise.engine.views import context_view
from statewise.errors import ActionNotFoundError, Problem, did_you_mean
from statewise.execution.idempotency import idempotency_keys
from statewise.execution.outcome import (
    ActionOutcome,
    ActionStatus,
    ExecutionResult,
    succeeded,
)
from statewise.model.definition import ActionCall, Retry
from statewise.model.result import TransitionResult

__all__ = ["ActionExecutor"]

_NO_RETRY = Retry(0)


class _Call(NamedTuple):
    """A step of ``_run``: call ``fn(ctx, **kwargs)``; the driver sends back a ``_Reply``.

    A named tuple, not a frozen dataclass: one is built per action, on the hot path."""

    name: str
    fn: Callable[..., Any]
    ctx: Mapping[str, Any]
    kwargs: Mapping[str, Any]


_Reply: TypeAlias = tuple[Any, Exception | None]  # (value, None) or (None, exception)
_Step: TypeAlias = _Call | float  # a call to make, or seconds to sleep
_Run: TypeAlias = Generator[_Step, _Reply, ExecutionResult]
_SLEPT: _Reply = (None, None)
_PLAIN = frozenset({str, int, float, bool, bytes, dict, list, tuple})


def _call(call: _Call) -> _Reply:
    try:
        value = call.fn(call.ctx, **call.kwargs) if call.kwargs else call.fn(call.ctx)
    except Exception as exc:  # an action's failure is an outcome; BaseException is not
        return None, exc
    if value is None or type(value) in _PLAIN:  # most actions return nothing
        return value, None
    if inspect.isawaitable(value):
        close = getattr(value, "close", None)
        if close is not None:  # a coroutine dropped unawaited would warn when collected
            close()
        return None, TypeError(
            f"action {call.name!r} returned an awaitable: run it with execute_async"
        )
    return value, None


async def _call_async(call: _Call) -> _Reply:
    try:
        value = call.fn(call.ctx, **call.kwargs)
        if inspect.isawaitable(value):
            value = await value
    except Exception as exc:  # an action's failure is an outcome; BaseException is not
        return None, exc
    return value, None


def _advance(run: _Run, reply: _Reply | None) -> _Step | ExecutionResult:
    """The next step of ``run`` given the reply to the last one (``None`` to start), or
    its result once it is finished."""
    try:
        return next(run) if reply is None else run.send(reply)
    except StopIteration as stop:
        finished: ExecutionResult = stop.value
        return finished


def _failed(
    call: ActionCall, position: int, key: str, exc: Exception, attempts: int, duration: float
) -> ActionOutcome:
    return ActionOutcome(
        call.name,
        position,
        ActionStatus.FAILED,
        call.params,
        key,
        attempts=attempts,
        duration=duration,
        error=str(exc),
        error_type=type(exc).__name__,
        exception=exc,
    )


class ActionExecutor:
    """Runs the actions of committed results, in order, each isolated and retried.

    * ``registry``: the actions, copied now (registering more later changes nothing).
    * ``machine``: checks now that every action it names is registered and can take its
      params (:func:`~statewise.engine.actions.check_actions` raises otherwise), lends
      its ``error_policy`` (retries for actions without their own ``retry``, and the
      fallback state), and builds ``fallback`` results.
    * ``sleep`` / ``async_sleep`` / ``clock`` / ``random``: how to wait, time and jitter;
      inject them to test without waiting.
    * ``stop_on_failure``: after an action fails, skip the rest instead of running them.

    The wait before retry *k* is ``retry.delay(k)`` with equal jitter: half of it, plus
    a uniform share of the other half, so that retries of many entities spread out.
    """

    __slots__ = (
        "_actions",
        "_async_sleep",
        "_clock",
        "_default_retry",
        "_machine",
        "_random",
        "_sleep",
        "_stop_on_failure",
    )

    def __init__(
        self,
        registry: ActionRegistry,
        *,
        machine: Machine | None = None,
        sleep: Callable[[float], object] = time.sleep,
        async_sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        random: Random | None = None,
        clock: Callable[[], float] = time.perf_counter,
        stop_on_failure: bool = False,
    ) -> None:
        if machine is not None:
            check_actions(machine.definition, registry, machine.source)
        self._actions = registry.snapshot()
        self._machine = machine
        self._default_retry = (
            _NO_RETRY if machine is None else machine.definition.error_policy.retry
        )
        self._sleep = sleep
        self._async_sleep = async_sleep
        self._random = Random() if random is None else random
        self._clock = clock
        self._stop_on_failure = stop_on_failure

    @property
    def machine(self) -> Machine | None:
        return self._machine

    def execute(
        self,
        result: TransitionResult,
        context: object = None,
        *,
        done: Collection[str] = (),
    ) -> ExecutionResult:
        """Run ``result.all_actions`` in order; call only once ``result`` is committed.

        Nothing runs for a failed or ignored result. ``context`` is what ``process`` got;
        actions see it as guards do, with the event payload filling in what it lacks.
        ``done``: idempotency keys of actions already completed (by a run that crashed,
        say); those are ``skipped``. An action missing from the registry (possible only
        without ``machine=``) fails with :class:`~statewise.errors.ActionNotFoundError`
        after 0 attempts, never retried. A coroutine-function action fails here (0
        attempts, ``TypeError``): use :meth:`execute_async`. Exceptions other than
        ``Exception`` (``KeyboardInterrupt``) propagate at once.
        """
        run = self._run(result, context, done, asynchronous=False)
        step = _advance(run, None)
        while not isinstance(step, ExecutionResult):
            if isinstance(step, _Call):
                step = _advance(run, _call(step))
            else:
                self._sleep(step)
                step = _advance(run, _SLEPT)
        return step

    async def execute_async(
        self,
        result: TransitionResult,
        context: object = None,
        *,
        done: Collection[str] = (),
    ) -> ExecutionResult:
        """:meth:`execute`, awaiting: coroutine actions (and awaitables that actions
        return) are awaited, one after the other; plain actions are called directly;
        backoff waits use ``async_sleep``."""
        run = self._run(result, context, done, asynchronous=True)
        step = _advance(run, None)
        while not isinstance(step, ExecutionResult):
            if isinstance(step, _Call):
                step = _advance(run, await _call_async(step))
            else:
                await self._async_sleep(step)
                step = _advance(run, _SLEPT)
        return step

    # -- the rules, free of any calling or waiting ---------------------------------------

    def _run(
        self, result: TransitionResult, context: object, done: Collection[str], asynchronous: bool
    ) -> _Run:
        if not result.success or result.ignored:
            return ExecutionResult(result)
        ctx = context_view(context, result.event.payload)
        skip = frozenset(done)
        outcomes: list[ActionOutcome] = []
        failure: BaseException | None = None
        failure_key = ""
        for position, (call, key) in enumerate(
            zip(result.all_actions, idempotency_keys(result), strict=True)
        ):
            if key in skip or (failure is not None and self._stop_on_failure):
                outcomes.append(
                    ActionOutcome(call.name, position, ActionStatus.SKIPPED, call.params, key)
                )
                continue
            outcome = yield from self._run_one(call, position, key, ctx, asynchronous)
            outcomes.append(outcome)
            if failure is None and outcome.exception is not None:
                failure, failure_key = outcome.exception, key
        return ExecutionResult(
            result, tuple(outcomes), self._fallback(result, failure, failure_key)
        )

    def _run_one(
        self,
        call: ActionCall,
        position: int,
        key: str,
        ctx: Mapping[str, Any],
        asynchronous: bool,
    ) -> Generator[_Step, _Reply, ActionOutcome]:
        entry = self._actions.get(call.name)
        if entry is None:
            hint = did_you_mean(call.name, self._actions)
            problem = Problem(
                "",
                f"action {call.name!r} is not registered{hint}",
                expected="a registered action",
                got=repr(call.name),
            )
            missing = ActionNotFoundError([call.name], [problem])
            return _failed(call, position, key, missing, 0, 0.0)
        if entry.is_async and not asynchronous:
            # Calling it would only build a coroutine: the side effect would never happen.
            error = TypeError(f"action {call.name!r} is a coroutine function: use execute_async")
            return _failed(call, position, key, error, 0, 0.0)
        retry = call.retry if call.retry is not None else self._default_retry
        kwargs = dict(call.params)  # a plain dict: ** is fastest from one
        if entry.takes_idempotency_key:
            kwargs[IDEMPOTENCY_KEY] = key
        step = _Call(call.name, entry.fn, ctx, kwargs)
        start = self._clock()
        attempts = 0
        while True:
            attempts += 1
            value, exc = yield step
            if exc is None:
                return succeeded(
                    call.name, position, call.params, key, attempts, self._clock() - start, value
                )
            if attempts > retry.attempts:
                return _failed(call, position, key, exc, attempts, self._clock() - start)
            delay = retry.delay(attempts)
            yield delay / 2 + self._random.uniform(0.0, delay / 2)

    def _fallback(
        self, result: TransitionResult, failure: BaseException | None, key: str
    ) -> TransitionResult | None:
        machine = self._machine
        if (
            failure is None
            or machine is None
            or machine.definition.error_policy.default_fallback is None
        ):
            return None
        # Derived from the failed action's key, so re-running the same event gives the
        # same fallback event, and the fallback's own actions get stable keys too.
        fallback = machine.fail(result.target_state, failure, event_id=f"{key}:fallback")
        return fallback if fallback.success else None

    def __repr__(self) -> str:
        machine = "" if self._machine is None else f", machine={self._machine.name!r}"
        return f"ActionExecutor({sorted(self._actions)}{machine})"
