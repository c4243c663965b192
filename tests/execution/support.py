"""What the execution tests share: a machine, a recording registry, a clock, a sleeper.

The machine is built in code (``ActionCall`` values with params and retries) so the
tests do not depend on the spec loader's action syntax.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from random import Random
from typing import Any

from statewise import (
    ErrorPolicy,
    Event,
    FrozenDict,
    MachineDefinition,
    State,
    StateMachine,
    StateType,
    Timeout,
    Transition,
)
from statewise.engine.actions import ActionRegistry
from statewise.execution import ActionExecutor
from statewise.model.definition import ActionCall, Retry, action_calls

FLAKY_RETRY = Retry(1, backoff_seconds=0.25, max_backoff_seconds=1.0)


def calls(*names: str) -> tuple[ActionCall, ...]:
    return action_calls(names)


def definition(
    *,
    fallback: str | None = "E",
    retry_attempts: int = 2,
    backoff_seconds: float = 1.0,
    max_backoff_seconds: float = 3.0,
    strict: bool = True,
) -> MachineDefinition:
    """A -go-> B -finish-> T, with every kind of action use.

    ``go`` runs ``leave_a`` (A's exit), ``log`` and ``boom`` (the transition's), then
    ``enter_b`` and ``charge(amount=5)`` (B's enter). ``crash`` fails on the way into
    the terminal T; E is the fallback.
    """
    return MachineDefinition(
        name="t",
        strict_mode=strict,
        states=(
            State("A", StateType.INITIAL, on_exit=calls("leave_a")),
            State(
                "B",
                on_enter=(*calls("enter_b"), ActionCall("charge", FrozenDict({"amount": 5}))),
                on_exit=calls("leave_b"),
                timeout=Timeout(10.0, "T", calls("tick")),
            ),
            State("E", StateType.ERROR, on_enter=calls("alert"), on_exit=calls("leave_e")),
            State("T", StateType.TERMINAL, on_enter=calls("archive")),
        ),
        transitions=(
            Transition("go", ("A",), "B", actions=calls("log", "boom")),
            Transition("calm", ("A",), "B", actions=calls("log")),
            Transition("flaky", ("B",), actions=(ActionCall("boom", retry=FLAKY_RETRY),)),
            Transition("once", ("B",), actions=(ActionCall("boom", retry=Retry(0)),)),
            Transition("crash", ("B",), "T", actions=calls("boom")),
            Transition("recover", ("E",), "B"),
        ),
        error_policy=ErrorPolicy(fallback, retry_attempts, backoff_seconds, max_backoff_seconds),
    )


def machine(**options: Any) -> StateMachine:
    return StateMachine.from_definition(definition(**options))


@dataclass
class Calls:
    """What the registry's actions saw, in call order: (name, ctx as a dict, keywords)."""

    seen: list[tuple[str, dict[str, Any], dict[str, Any]]] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [name for name, _, _ in self.seen]


def registry(calls: Calls, *, fail: Mapping[str, int] | None = None) -> ActionRegistry:
    """Every action the machine names; each records its call. ``fail[name] = n``: the
    action raises ``RuntimeError`` on its first ``n`` calls (``boom`` always raises)."""
    failures = dict(fail or {})
    reg = ActionRegistry()

    def recorder(name: str) -> Callable[..., Any]:
        def action(ctx: Mapping[str, Any], **kwargs: Any) -> str:
            calls.seen.append((name, dict(ctx), kwargs))
            if name == "boom" or failures.get(name, 0) > 0:
                failures[name] = failures.get(name, 0) - 1
                raise RuntimeError(f"{name} failed")
            return f"{name} done"

        return action

    for name in ("leave_a", "log", "enter_b", "leave_b", "tick", "alert", "leave_e", "archive"):
        reg.register(name, recorder(name))
    reg.register("boom", recorder("boom"))

    def charge(ctx: Mapping[str, Any], amount: int, *, idempotency_key: str) -> int:
        calls.seen.append(("charge", dict(ctx), {"amount": amount, "key": idempotency_key}))
        return amount

    reg.register("charge", charge)
    return reg


@dataclass
class Clock:
    """A clock that only moves when told: actions and sleeps advance it."""

    now: float = 100.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)


class Edge(Random):
    """A ``Random`` whose ``uniform`` always answers one end of the range."""

    def __init__(self, upper: bool) -> None:
        super().__init__(0)
        self.upper = upper

    def uniform(self, a: float, b: float) -> float:
        return b if self.upper else a


def executor(
    reg: ActionRegistry, clock: Clock, *, upper: bool = True, **options: Any
) -> ActionExecutor:
    """An executor that never waits: its sleeps and clock are ``clock``'s."""
    return ActionExecutor(
        reg,
        sleep=clock.sleep,
        async_sleep=clock.async_sleep,
        clock=clock,
        random=Edge(upper),
        **options,
    )


GO = Event("go", {"order": 7, "qty": 1}, id="msg-1")
