"""One guard written in CEL (``when:``) against the same guard in Python, per event.

The machine is the order machine (``examples/order_fsm.yaml``) with its full-fill
transition guarded by one condition, written four ways with the same logic:

* ``floor``: the floor implementation (``bench_floor``) with a ``(context, payload)``
  Python guard: the least a correct ``process`` can do;
* ``python``: statewise, a registered one-parameter guard ``fn(ctx)``;
* ``python_params``: statewise, a guard taking the sides from the spec's ``params``
  (``fn(ctx, sides=("buy", "sell"))``);
* ``cel``: statewise, ``when: "fill_qty >= order_qty && side in ['buy', 'sell']"``.

Every event is an ``execution_report`` on a working order (``OPEN`` or
``PARTIALLY_FILLED``), so every event evaluates that condition exactly once (it is
the first candidate); the partial-fill transition after it keeps its Python guard in
all variants. The events mix passes and failures: full fills on a valid side (the
condition says yes), partial fills (no, on its first clause; the next candidate takes
them), full fills on a side outside the list (no, on its second clause; rejected) and
empty fills (rejected). Every variant must decide every event the same way before
anything is timed.

Three more numbers say where the CEL time goes, per evaluation: the compiled
program run with only the variables the expression reads; run with ``event`` and
``state`` added, as statewise always passes them; and statewise's
``Expression.evaluate``, which builds those variables and runs the program.
"""

from __future__ import annotations

import copy
import gc
import random
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench_floor import Floor
from bench_impls import (
    Triple,
    floor_events,
    floor_outcomes,
    gc_paused,
    noop_process,
    statewise_events,
    time_loop,
)
from bench_specs import FLOOR_GUARDS, MAPPING_GUARDS, Item, Spec, order_spec

from statewise import GuardRegistry, StateMachine, TransitionResult

__all__ = [
    "CEL_WHEN",
    "VARIANTS",
    "Mismatch",
    "Timing",
    "cel_missing",
    "cel_specs",
    "cel_workload",
    "interleaved",
    "measure_cel",
]

CEL_WHEN = "fill_qty >= order_qty && side in ['buy', 'sell']"
SIDES = ("buy", "sell")
VARIANTS = ("floor", "python", "python_params", "cel")
CHUNK = 1_000  # events per timed chunk
_FULL_FILL_GUARD = "is_full_fill"  # the order machine's guard that the variants replace


class Mismatch(Exception):
    """Two implementations of the same thing disagreed: nothing was timed."""


# -- timing, shared with bench_executor ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Timing:
    """Nanoseconds for the whole workload: ``best`` adds up each chunk's fastest pass,
    ``median`` is the median pass."""

    best: float
    median: float


def interleaved(
    runners: Mapping[str, Callable[[int], int]], n_chunks: int, repeats: int
) -> dict[str, Timing]:
    """Time ``runners[name](chunk) -> ns`` over every chunk, ``repeats`` passes.

    Each pass runs every chunk through every runner in turn, with the cyclic GC
    paused, so a burst of load from other processes hits all of them alike.
    """
    fastest = {name: [float("inf")] * n_chunks for name in runners}
    passes: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(repeats):
        total = dict.fromkeys(runners, 0)
        with gc_paused():
            for chunk in range(n_chunks):
                for name, run in runners.items():
                    elapsed = run(chunk)
                    total[name] += elapsed
                    fastest[name][chunk] = min(fastest[name][chunk], elapsed)
        for name in runners:
            passes[name].append(total[name])
    return {name: Timing(sum(fastest[name]), statistics.median(passes[name])) for name in runners}


# -- the guard, four ways ----------------------------------------------------------------------


def _full_fill_on_side(m: Mapping[str, Any]) -> bool:
    ok: bool = m["fill_qty"] >= m["order_qty"] and m["side"] in SIDES
    return ok


def _full_fill_on_sides(m: Mapping[str, Any], sides: Sequence[str]) -> bool:
    ok: bool = m["fill_qty"] >= m["order_qty"] and m["side"] in sides
    return ok


def _floor_full_fill_on_side(c: Mapping[str, Any], p: Mapping[str, Any]) -> bool:
    fill = c["fill_qty"] if "fill_qty" in c else p["fill_qty"]
    qty = c["order_qty"] if "order_qty" in c else p["order_qty"]
    side = c["side"] if "side" in c else p["side"]
    ok: bool = fill >= qty and side in SIDES
    return ok


def cel_specs() -> dict[str, Spec]:
    """The order machine, its full-fill guard replaced: ``python`` (also the floor's),
    ``python_params`` and ``cel``."""
    base = order_spec()
    out: dict[str, Spec] = {}
    guard_forms: dict[str, Any] = {
        "python": ["full_fill_on_side"],
        "python_params": [{"name": "full_fill_on_sides", "params": {"sides": list(SIDES)}}],
        "cel": None,
    }
    for name, guards in guard_forms.items():
        spec = copy.deepcopy(base)
        spec["meta"]["machine_name"] = f"order_management_{name}"
        hits = [t for t in spec["transitions"] if t.get("guards") == [_FULL_FILL_GUARD]]
        if len(hits) != 1:
            raise Mismatch(f"order spec: expected one transition guarded by {_FULL_FILL_GUARD}")
        if guards is None:
            del hits[0]["guards"]
            hits[0]["when"] = CEL_WHEN
        else:
            hits[0]["guards"] = guards
        out[name] = spec
    return out


def _registry() -> GuardRegistry:
    registry = GuardRegistry(MAPPING_GUARDS)
    registry.register("full_fill_on_side", _full_fill_on_side)
    registry.register("full_fill_on_sides", _full_fill_on_sides)  # takes params: sides
    return registry


# -- the workload ------------------------------------------------------------------------------


def cel_workload(n_events: int, seed: int) -> list[Item]:
    """Execution reports on working orders: about 45% full fills on a listed side
    (yes), 30% partial fills (no, then the partial-fill transition), 15% full fills on
    an unlisted side and 10% empty fills (no, rejected)."""
    rng = random.Random(f"cel-{seed}")
    items: list[Item] = []
    for n in range(n_events):
        state = rng.choice(("OPEN", "PARTIALLY_FILLED"))
        qty = rng.choice((100, 200, 500, 1000))
        side = rng.choice(SIDES)
        roll = rng.random()
        if roll < 0.45:
            fill = qty + rng.choice((0, 0, 0, 50))  # full, now and then over-filled
        elif roll < 0.75:
            fill = rng.randrange(1, qty)
        elif roll < 0.90:
            fill, side = qty, "sell_short"
        else:
            fill = 0
        context: dict[str, Any] = {"order_qty": qty, "side": side, "account": f"ACC-{n % 97}"}
        payload: dict[str, Any] = {"fill_qty": fill, "price": 100 + rng.randrange(50)}
        items.append(Item(state, "execution_report", payload, context))
    return items


# -- the measurement ---------------------------------------------------------------------------

Decided = tuple[bool, str, tuple[str, ...], str | None]


def _decisions(machine: StateMachine, triples: Sequence[Triple]) -> list[Decided]:
    out: list[Decided] = []
    for state, event, context in triples:
        r: TransitionResult = machine.process(state, event, context)
        out.append((r.success, r.target_state, r.action_names, r.decision.error_code))
    return out


def cel_missing() -> str | None:
    """Why the CEL variant cannot run here, or ``None`` when it can."""
    from statewise.engine.expressions import CEL_EXTRA, cel_available

    if cel_available():
        return None
    return f"the CEL extra is not installed here ({CEL_EXTRA}: pip install -e '.[cel]')"


def _time_calls(fn: Callable[[Any], object], args: Sequence[Any]) -> int:
    start = time.perf_counter_ns()
    for a in args:
        fn(a)
    return time.perf_counter_ns() - start


def _time_evaluate(expression: Any, items: Sequence[tuple[Any, Any, str]]) -> int:
    evaluate = expression.evaluate
    start = time.perf_counter_ns()
    for context, payload, state in items:
        evaluate(context, payload, state)
    return time.perf_counter_ns() - start


def measure_cel(n_events: int, repeats: int, seed: int) -> dict[str, Any]:
    """ns/event for the four variants (and the bare loop), after checking that they
    all decide every event alike; plus where the CEL time goes."""
    from statewise.engine.expressions import compile_expression

    specs = cel_specs()
    items = cel_workload(n_events, seed)
    floor = Floor(specs["python"], {**FLOOR_GUARDS, "full_fill_on_side": _floor_full_fill_on_side})
    machines = {
        name: StateMachine.from_dict(specs[name], guards=_registry())
        for name in ("python", "python_params", "cel")
    }
    sw_triples = statewise_events(items)
    fl_triples = floor_events(items)
    triples: dict[str, list[Triple]] = dict.fromkeys(machines, sw_triples)
    triples["floor"] = fl_triples
    triples["loop"] = fl_triples

    # Agreement (and warm-up): statewise variants fully alike, the floor on success,
    # target and action names.
    decided = {name: _decisions(m, sw_triples) for name, m in machines.items()}
    floor_decided = floor_outcomes(floor, fl_triples)
    bad: list[str] = []
    for i, item in enumerate(items):
        reference = decided["python"][i]
        others = {name: decided[name][i] for name in ("python_params", "cel")}
        others["floor"] = (*floor_decided[i], reference[3])
        for name, got in others.items():
            if got != reference:
                bad.append(
                    f"  event {i} ({item.state}, {item.payload}, {item.context}): "
                    f"python={reference} {name}={got}"
                )
    if bad:
        shown = "\n".join(bad[:20])
        raise Mismatch(f"CEL workload: {len(bad)} disagreement(s), first ones:\n{shown}")
    rejected = sum(1 for d in decided["python"] if not d[0]) / len(items)
    filled = sum(1 for d in decided["python"] if d[1] == "FILLED") / len(items)

    # Where the CEL time goes: the program alone (with only the names it reads, then
    # with event and state added as statewise passes them), then Expression.evaluate.
    expression = compile_expression(CEL_WHEN)
    program = expression.program
    names_only: list[dict[str, Any]] = []
    with_event: list[dict[str, Any]] = []
    evaluate_args: list[tuple[Any, Any, str]] = []
    for state, event, context in sw_triples:
        variables = expression.variables(context, event.payload, state)
        with_event.append(variables)
        names_only.append({k: v for k, v in variables.items() if k in expression.names})
        evaluate_args.append((context, event.payload, state))
    for variables in names_only[:50] + with_event[:50]:  # the same verdicts, either way
        program.execute(variables)

    processes: dict[str, Callable[..., object]] = {
        "floor": floor.process,
        **{name: m.process for name, m in machines.items()},
        "loop": noop_process,
    }
    bounds = [(lo, min(lo + CHUNK, n_events)) for lo in range(0, n_events, CHUNK)]

    def process_runner(name: str) -> Callable[[int], int]:
        process, mine = processes[name], triples[name]
        return lambda c: time_loop(process, mine[bounds[c][0] : bounds[c][1]])

    runners: dict[str, Callable[[int], int]] = {name: process_runner(name) for name in processes}
    runners["cel_execute_names_only"] = lambda c: _time_calls(
        program.execute, names_only[bounds[c][0] : bounds[c][1]]
    )
    runners["cel_execute_with_event_state"] = lambda c: _time_calls(
        program.execute, with_event[bounds[c][0] : bounds[c][1]]
    )
    runners["expression_evaluate"] = lambda c: _time_evaluate(
        expression, evaluate_args[bounds[c][0] : bounds[c][1]]
    )
    timings = interleaved(runners, len(bounds), repeats)
    gc.collect()
    ns = {
        name: {"best": t.best / n_events, "median": t.median / n_events}
        for name, t in timings.items()
    }
    best = {name: cell["best"] for name, cell in ns.items()}
    return {
        "expression": CEL_WHEN,
        "events": n_events,
        "repeats": repeats,
        "chunk": CHUNK,
        "rejected_share": rejected,
        "condition_true_share": filled,
        "ns_per_event": {name: ns[name] for name in (*VARIANTS, "loop")},
        "cel_vs_python": best["cel"] / best["python"],
        "cel_minus_python_ns": best["cel"] - best["python"],
        "python_params_vs_python": best["python_params"] / best["python"],
        "python_vs_floor": best["python"] / best["floor"],
        "cel_vs_floor": best["cel"] / best["floor"],
        "cel_breakdown_ns_per_evaluation": {
            "execute_names_only": ns["cel_execute_names_only"],
            "execute_with_event_and_state": ns["cel_execute_with_event_state"],
            "expression_evaluate": ns["expression_evaluate"],
        },
        "cel_names": list(expression.names),
    }
