"""What an action executor adds per action: statewise's, the seed's and a bare loop.

A two-state machine has one transition carrying N actions. Each committed result is
executed by:

* ``floor``: a bare loop calling the action functions directly, ``fn(ctx)`` (or
  ``fn(ctx, **params)`` with a constant key for the params workload): the least any
  executor can do;
* ``statewise``: ``statewise.execution.ActionExecutor(registry, machine=machine)``,
  ``execute(result, context)``; per action it looks the function up, computes an
  idempotency key (a SHA-256 over the event id, states, trigger, position and name),
  reads the clock twice (the action's duration) and builds an ``ActionOutcome``; per
  result it builds the context view and an ``ExecutionResult``;
* ``pygubernator``: the seed's ``ActionExecutor(registry)``, ``execute(result,
  context)``, as it comes (``log_execution=True``: its log messages are formatted
  even when no logger is listening), and with ``log_execution=False``.

Workloads: ``noop xN`` are N no-op actions ``fn(ctx)``; ``params+key xN`` are N actions
``fn(ctx, *, amount, currency, idempotency_key=None)`` with params from the spec
(statewise passes its key; the seed, which has no params, gets the params bound with
``functools.partial``; the floor passes a constant key). No action fails, so nothing
is retried. Results are built before timing (distinct events, each with an id), and
before timing every implementation runs them once with recording actions: all must
call the same actions in the same order with the same params.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pygubernator
from bench_cel import Mismatch, interleaved
from bench_specs import Spec

from statewise import Event, StateMachine, TransitionResult
from statewise.engine.actions import IDEMPOTENCY_KEY, ActionRegistry
from statewise.execution import ActionExecutor, idempotency_keys

__all__ = ["IMPLS", "WORKLOADS", "executor_spec", "measure_executor"]

IMPLS = ("floor", "statewise", "pygubernator", "pygubernator_no_log")
WORKLOADS: tuple[tuple[str, int], ...] = (
    ("noop", 1),
    ("noop", 4),
    ("noop", 16),
    ("params+key", 4),
)
CHUNK = 100  # results per timed chunk
_PARAMS = "params+key"
_FLOOR_KEY = "0" * 32  # what the floor passes as idempotency_key: a constant


def _noop(ctx: Mapping[str, Any]) -> None:
    del ctx


def _charge(
    ctx: Mapping[str, Any], *, amount: int, currency: str, idempotency_key: str | None = None
) -> None:
    del ctx, amount, currency, idempotency_key


def _params(i: int) -> dict[str, Any]:
    return {"amount": 100 + i, "currency": "EUR"}


def _names(kind: str, n: int) -> list[str]:
    return [f"{'charge' if kind == _PARAMS else 'act'}_{i}" for i in range(n)]


def executor_spec(kind: str, n: int, *, with_params: bool = True) -> Spec:
    """``PENDING --settle--> DONE`` with ``n`` actions on the transition. The seed's
    form (``with_params=False``) names the actions only: it has no params."""
    names = _names(kind, n)
    actions: list[Any] = list(names)
    if kind == _PARAMS and with_params:
        actions = [{"name": name, "params": _params(i)} for i, name in enumerate(names)]
    return {
        "meta": {"machine_name": f"executor_{n}", "version": "1.0.0", "strict_mode": True},
        "states": [{"name": "PENDING", "type": "initial"}, {"name": "DONE", "type": "terminal"}],
        "transitions": [
            {"trigger": "settle", "source": "PENDING", "dest": "DONE", "actions": actions}
        ],
    }


Calls = list[tuple[Callable[..., Any], dict[str, Any]]]
Record = list[tuple[str, tuple[tuple[str, Any], ...], Any]]


def _recorder(record: Record, name: str) -> Callable[..., None]:
    """An action noting its name, params (the key left out) and the context it read."""

    def recorder(ctx: Mapping[str, Any], **kwargs: Any) -> None:
        kwargs.pop(IDEMPOTENCY_KEY, None)
        record.append((name, tuple(sorted(kwargs.items())), ctx["account"]))

    return recorder


def _functions(
    kind: str, n: int, record: Record | None
) -> tuple[dict[str, Callable[..., Any]], Calls]:
    """Per action name the function to register, and the floor's call list (function,
    keyword arguments). With ``record``, the functions note each call instead."""
    names = _names(kind, n)
    base: Callable[..., Any] = _charge if kind == _PARAMS else _noop
    by_name: dict[str, Callable[..., Any]] = {}
    for name in names:
        by_name[name] = base if record is None else _recorder(record, name)
    calls: Calls = []
    for i, name in enumerate(names):
        kwargs = {**_params(i), IDEMPOTENCY_KEY: _FLOOR_KEY} if kind == _PARAMS else {}
        calls.append((by_name[name], kwargs))
    return by_name, calls


def _floor_runner(calls: Calls) -> Callable[[Mapping[str, Any]], None]:
    fns = tuple(fn for fn, _ in calls)
    with_kwargs = tuple((fn, kwargs) for fn, kwargs in calls)
    if not any(kwargs for _, kwargs in calls):

        def run_plain(ctx: Mapping[str, Any]) -> None:
            for fn in fns:
                fn(ctx)

        return run_plain

    def run_kwargs(ctx: Mapping[str, Any]) -> None:
        for fn, kwargs in with_kwargs:
            fn(ctx, **kwargs)

    return run_kwargs


class _Setup:
    """One workload's executors and pre-built inputs, per implementation."""

    def __init__(self, kind: str, n: int, n_results: int, record: Record | None) -> None:
        by_name, calls = _functions(kind, n, record)
        self.machine = StateMachine.from_dict(executor_spec(kind, n))
        registry = ActionRegistry(by_name)
        self.statewise = ActionExecutor(registry, machine=self.machine)
        seed_registry = pygubernator.ActionRegistry()
        for i, (name, fn) in enumerate(by_name.items()):
            bound = functools.partial(fn, **_params(i)) if kind == _PARAMS else fn
            seed_registry.register(name, bound)
        self.seed = pygubernator.ActionExecutor(seed_registry)
        self.seed_no_log = pygubernator.ActionExecutor(seed_registry, log_execution=False)
        seed_machine = pygubernator.StateMachine.from_dict(
            executor_spec(kind, n, with_params=False)
        )
        self.floor = _floor_runner(calls)
        self.contexts: list[dict[str, Any]] = [
            {"account": f"ACC-{i % 97}", "order_id": f"O-{i}"} for i in range(n_results)
        ]
        self.results: list[TransitionResult] = []
        self.seed_results: list[Any] = []
        for i, context in enumerate(self.contexts):
            payload = {"amount": 100 + i % 50, "ref": i}
            event = Event("settle", payload, f"msg-{i}")
            self.results.append(self.machine.process("PENDING", event, context))
            seed_event = pygubernator.Event(trigger="settle", payload=payload)
            self.seed_results.append(seed_machine.process("PENDING", seed_event, context))
        if not all(r.success for r in self.results) or not all(
            r.success for r in self.seed_results
        ):
            raise Mismatch("executor workload: a result to execute did not succeed")

    def run_all(self, name: str) -> list[Any]:
        """Execute every result once with implementation ``name``."""
        if name == "floor":
            return [self.floor(c) for c in self.contexts]
        if name == "statewise":
            return [
                self.statewise.execute(r, c)
                for r, c in zip(self.results, self.contexts, strict=True)
            ]
        seed = self.seed if name == "pygubernator" else self.seed_no_log
        return [seed.execute(r, c) for r, c in zip(self.seed_results, self.contexts, strict=True)]


def _check(kind: str, n: int, n_results: int) -> None:
    """With recording actions: every implementation calls the same actions, in the
    same order, with the same params, and reports every one as succeeded."""
    record: Record = []
    setup = _Setup(kind, n, n_results, record)
    logs: dict[str, Record] = {}
    for name in IMPLS:
        record.clear()
        outcomes = setup.run_all(name)
        logs[name] = list(record)
        if name == "statewise" and not all(
            len(o.outcomes) == n and o.all_succeeded for o in outcomes
        ):
            raise Mismatch(f"executor {kind} x{n}: statewise reported a failed action")
        if name.startswith("pygubernator") and not all(
            len(o.action_results) == n and o.all_succeeded for o in outcomes
        ):
            raise Mismatch(f"executor {kind} x{n}: {name} reported a failed action")
    expected = len(setup.contexts) * n
    for name, log in logs.items():
        if len(log) != expected or log != logs["floor"]:
            first = next(
                (i for i, (a, b) in enumerate(zip(log, logs["floor"], strict=False)) if a != b),
                min(len(log), expected),
            )
            raise Mismatch(
                f"executor {kind} x{n}: {name} made {len(log)} calls (expected {expected}); "
                f"first difference at call {first}"
            )


def _time_execute(execute: Callable[[Any, Any], object], pairs: Sequence[tuple[Any, Any]]) -> int:
    start = time.perf_counter_ns()
    for result, context in pairs:
        execute(result, context)
    return time.perf_counter_ns() - start


def _time_floor(run: Callable[[Mapping[str, Any]], None], contexts: Sequence[Any]) -> int:
    start = time.perf_counter_ns()
    for context in contexts:
        run(context)
    return time.perf_counter_ns() - start


def _time_keys(results: Sequence[TransitionResult]) -> int:
    start = time.perf_counter_ns()
    for result in results:
        idempotency_keys(result)
    return time.perf_counter_ns() - start


def _measure_one(kind: str, n: int, n_results: int, repeats: int) -> dict[str, Any]:
    _check(kind, n, n_results)
    s = _Setup(kind, n, n_results, None)
    for name in IMPLS:  # warm-up
        s.run_all(name)
    bounds = [(lo, min(lo + CHUNK, n_results)) for lo in range(0, n_results, CHUNK)]
    sw_pairs = list(zip(s.results, s.contexts, strict=True))
    seed_pairs = list(zip(s.seed_results, s.contexts, strict=True))
    runners: dict[str, Callable[[int], int]] = {
        "floor": lambda c: _time_floor(s.floor, s.contexts[bounds[c][0] : bounds[c][1]]),
        "statewise": lambda c: _time_execute(
            s.statewise.execute, sw_pairs[bounds[c][0] : bounds[c][1]]
        ),
        "pygubernator": lambda c: _time_execute(
            s.seed.execute, seed_pairs[bounds[c][0] : bounds[c][1]]
        ),
        "pygubernator_no_log": lambda c: _time_execute(
            s.seed_no_log.execute, seed_pairs[bounds[c][0] : bounds[c][1]]
        ),
        "statewise_keys_only": lambda c: _time_keys(s.results[bounds[c][0] : bounds[c][1]]),
    }
    timings = interleaved(runners, len(bounds), repeats)
    actions = n_results * n
    ns = {
        name: {
            "best": t.best / actions,
            "median": t.median / actions,
            "best_per_result": t.best / n_results,
        }
        for name, t in timings.items()
    }
    best = {name: cell["best"] for name, cell in ns.items()}
    return {
        "workload": f"{kind} x{n}",
        "kind": kind,
        "actions_per_result": n,
        "results": n_results,
        "ns_per_action": ns,
        "statewise_vs_floor": best["statewise"] / best["floor"],
        "pygubernator_vs_floor": best["pygubernator"] / best["floor"],
        "pygubernator_no_log_vs_floor": best["pygubernator_no_log"] / best["floor"],
        "statewise_vs_pygubernator": best["statewise"] / best["pygubernator"],
        "statewise_vs_pygubernator_no_log": best["statewise"] / best["pygubernator_no_log"],
    }


def measure_executor(n_results: int, repeats: int) -> dict[str, Any]:
    """Every workload of ``WORKLOADS``, and per implementation the split into a fixed
    cost per result and a marginal cost per action (from the smallest and the largest
    no-op workloads)."""
    rows = [_measure_one(kind, n, n_results, repeats) for kind, n in WORKLOADS]
    noop = [r for r in rows if r["kind"] == "noop"]
    small = min(noop, key=lambda r: r["actions_per_result"])
    large = max(noop, key=lambda r: r["actions_per_result"])
    split: dict[str, Any] = {}
    if large is not small:
        a, b = small["actions_per_result"], large["actions_per_result"]
        for name in (*IMPLS, "statewise_keys_only"):
            ta = small["ns_per_action"][name]["best_per_result"]
            tb = large["ns_per_action"][name]["best_per_result"]
            marginal = (tb - ta) / (b - a)
            split[name] = {"per_result_ns": ta - a * marginal, "per_action_ns": marginal}
        split["from_actions"] = a
        split["to_actions"] = b
    return {"results_per_workload": n_results, "repeats": repeats, "rows": rows, "split": split}
