"""statewise benchmarks: ``make bench`` (or ``python benchmarks/run.py [--quick]``).

One run measures, side by side, statewise, the seed library (pygubernator 0.0.1)
and a minimal floor implementation:

1. ``process()`` cost per event on the order machine and on generated machines of
   10 to 10,000 states (identical workloads; decisions are checked to agree);
2. loading a 10,000-state YAML spec, schema validation included;
3. memory retained by the 10,000-state machine, fresh and after one workload pass;
4. one guard written in CEL (``when:``) against the same guard in Python, per event;
5. the action executor's cost per action, statewise's against the seed's and a bare loop;
6. static analysis of the 10,000-state machine: ``analyze()`` and ``shortest_paths()``.

Sections 4 and 5 are for information: they have no targets. It prints a table with
PASS/FAIL against the targets and writes JSON and text to ``benchmarks/results/``. Exit
status: 0 when it ran (whatever PASS/FAIL says), 2 when two implementations disagree on
a decision, 1 on any other error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench_analysis import best_seconds, measure_analysis
from bench_cel import Mismatch, cel_missing, measure_cel
from bench_executor import measure_executor
from bench_floor import Outcome
from bench_impls import (
    Process,
    Triple,
    floor_event,
    floor_events,
    floor_machine,
    floor_outcomes,
    gc_paused,
    noop_process,
    seed_event,
    seed_events,
    seed_load_yaml,
    seed_machine,
    seed_outcomes,
    seed_spec,
    statewise_event,
    statewise_events,
    statewise_guards,
    statewise_machine,
    statewise_outcomes,
    time_build,
    time_loop,
)
from bench_specs import (
    Item,
    Workload,
    generated_spec,
    generated_workload,
    order_workload,
    write_yaml,
)
from environment import loadavg, source_state

from statewise import StateMachine

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
IMPLS = ("floor", "statewise", "pygubernator")

# Targets: (key, description, limit, "max" | "min").
PER_EVENT_LIMIT = 4.0  # statewise ns/event at most 4x the floor's, on every workload
SCALING_LIMIT = 1.5  # statewise at 10,000 states within 1.5x of 10 states
LOAD_LIMIT = 5.0  # statewise loads at least 5x faster than the seed
MEMORY_LIMIT = 1.5  # statewise retains at most 1.5x the floor's memory
PASS_BUDGET_S = 8.0  # timed seconds per implementation and workload, at most (roughly)
CHUNK = 5_000  # events per timed chunk
MEMO_LIMIT = 1 << 15  # entries in statewise's decision memo (engine/machine.py), for the text
PRESSURE_EVENTS = 200_000  # the memo-pressure workload: 10,000 states, this many events
ANALYSIS_STATES = 10_000  # section 6 analyses the generated machine of this size, even --quick
ANALYSIS_RUNS = 3
ANALYSIS_LIMIT_S = 1.0  # analyze() and shortest_paths() each under 1 s on it


class Disagreement(Exception):
    """Two implementations decided an event differently."""


@dataclass
class Config:
    events: int
    repeats: int
    seed: int
    sizes: tuple[int, ...]
    load_states: int
    statewise_load_runs: int
    seed_load_runs: int
    cel_events: int
    executor_results: int
    quick: bool
    write: bool


@dataclass
class Report:
    config: Config
    per_event: list[dict[str, Any]] = field(default_factory=list)
    load: dict[str, Any] = field(default_factory=dict)
    memory: dict[str, Any] = field(default_factory=dict)
    targets: list[dict[str, Any]] = field(default_factory=list)
    scaling: dict[str, Any] = field(default_factory=dict)
    event_building: dict[str, float] = field(default_factory=dict)
    pressure: dict[str, Any] = field(default_factory=dict)
    cel: dict[str, Any] = field(default_factory=dict)
    executor: dict[str, Any] = field(default_factory=dict)
    analysis: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def log(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


# -- 1. per-event cost ------------------------------------------------------------------------


def _action_names(actions: Sequence[object]) -> tuple[str, ...]:
    """Action names; an ``ActionCall`` (statewise) prints as its name."""
    return tuple(a if isinstance(a, str) else str(a) for a in actions)


def check_agreement(
    name: str, outcomes: dict[str, list[Outcome]], triples: Sequence[Triple]
) -> None:
    """statewise must match the floor exactly (success, target, actions); the seed on
    success and target (see ``seed_spec`` for why not its actions)."""
    bad: list[str] = []
    floor = outcomes["floor"]
    for other, width in (("statewise", 3), ("pygubernator", 2)):
        for i, (f, o) in enumerate(zip(floor, outcomes.get(other, floor), strict=True)):
            # statewise lists actions as ActionCall (name and params): compare the names,
            # all the floor knows (these specs give no params).
            named = (o[0], o[1], _action_names(o[2]))
            if f[:width] != named[:width]:
                state, event, _ = triples[i]
                bad.append(
                    f"  event {i} ({state}, {event[0]}): floor={f[:width]} {other}={named[:width]}"
                )
    if bad:
        shown = "\n".join(bad[:20])
        raise Disagreement(f"{name}: {len(bad)} disagreement(s), first ones:\n{shown}")


def measure_workload(
    workload: Workload, cfg: Config, impls: Sequence[str] = IMPLS
) -> dict[str, Any]:
    spec = workload.spec
    builders: dict[str, tuple[Callable[[], Any], Callable[[Sequence[Item]], list[Triple]]]] = {
        "floor": (lambda: floor_machine(spec), floor_events),
        "statewise": (lambda: statewise_machine(spec), statewise_events),
        "pygubernator": (lambda: seed_machine(seed_spec(spec)), seed_events),
    }
    deciders: dict[str, Callable[[Any, Sequence[Triple]], list[Outcome]]] = {
        "floor": floor_outcomes,
        "statewise": statewise_outcomes,
        "pygubernator": seed_outcomes,
    }
    machines = {name: builders[name][0]() for name in impls}
    triples = {name: builders[name][1](workload.items) for name in impls}
    # The agreement pass doubles as the warm-up (statewise fills its memo here) and
    # gives a rough cost per implementation, to size the seed's sample below.
    rough: dict[str, float] = {}
    outcomes: dict[str, list[Outcome]] = {}
    for name in impls:
        start = time.perf_counter()
        outcomes[name] = deciders[name](machines[name], triples[name])
        rough[name] = time.perf_counter() - start
    check_agreement(workload.name, outcomes, triples["floor"])
    invalid = sum(1 for ok, _, _ in outcomes["floor"] if not ok) / len(outcomes["floor"])
    processes: dict[str, Process] = {name: machines[name].process for name in impls}
    processes["loop"] = noop_process
    triples["loop"] = triples["floor"]
    rough["loop"] = 0.0
    # Timing: the workload is cut in chunks; each pass runs every chunk through
    # every implementation in turn, so drift and other processes hit them alike.
    # "best" sums each chunk's fastest pass, "median" is the median pass. An
    # implementation too slow for PASS_BUDGET_S times only the first chunks (a
    # sample of the same uniformly drawn events): the seed on big machines.
    n = len(workload.items)
    bounds = [(i, min(i + CHUNK, n)) for i in range(0, n, CHUNK)]
    per_pass_budget = PASS_BUDGET_S / cfg.repeats
    chunks = {
        name: max(1, min(len(bounds), int(per_pass_budget / (rough[name] * CHUNK / n + 1e-9))))
        for name in processes
    }
    timed = {name: bounds[chunks[name] - 1][1] for name in processes}
    fastest = {name: [float("inf")] * chunks[name] for name in processes}
    passes: dict[str, list[float]] = {name: [] for name in processes}
    for _ in range(cfg.repeats):
        total = dict.fromkeys(processes, 0)
        with gc_paused():
            for c, (lo, hi) in enumerate(bounds):
                for name, process in processes.items():
                    if c < chunks[name]:
                        elapsed = time_loop(process, triples[name][lo:hi])
                        total[name] += elapsed
                        fastest[name][c] = min(fastest[name][c], elapsed)
        for name in processes:
            passes[name].append(total[name] / timed[name])
    ns = {
        name: {
            "best": sum(fastest[name]) / timed[name],
            "median": statistics.median(passes[name]),
            "events_timed": timed[name],
        }
        for name in processes
    }
    memo = getattr(machines["statewise"], "_memo", None)
    return {
        "workload": workload.name,
        "states": workload.n_states,
        "transitions": workload.n_transitions,
        "events": n,
        "invalid_share": invalid,
        "ns_per_event": ns,
        "statewise_vs_floor": ns["statewise"]["best"] / ns["floor"]["best"],
        "pygubernator_vs_floor": (
            ns["pygubernator"]["best"] / ns["floor"]["best"] if "pygubernator" in ns else None
        ),
        "statewise_memo_entries": None if memo is None else len(memo),
    }


def measure_event_building(workload: Workload, repeats: int) -> dict[str, float]:
    """ns to build one event, per implementation: not in the per-event numbers, but
    every caller pays it once per message."""
    makers: dict[str, Callable[[Item], object]] = {
        "floor": floor_event,
        "statewise": statewise_event,
        "pygubernator": seed_event,
    }
    best = dict.fromkeys(makers, float("inf"))
    items = workload.items[:CHUNK]
    for _ in range(repeats):
        with gc_paused():
            for name, make in makers.items():
                best[name] = min(best[name], time_build(make, items) / len(items))
    return best


# -- 2. load time --------------------------------------------------------------------------------


def measure_load(workload: Workload, cfg: Config) -> dict[str, Any]:
    guards = statewise_guards()
    # One-time costs (imports, schema compilation) are paid on a small spec first.
    StateMachine.from_yaml(HERE.parent / "examples" / "order_fsm.yaml", guards=guards)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{workload.name}.yaml"
        size = write_yaml(workload.spec, path)
        log(f"statewise from_yaml x{cfg.statewise_load_runs} ({size / 1e6:.1f} MB)")
        sw_best, sw_all = best_seconds(
            lambda: StateMachine.from_yaml(path, guards=guards), cfg.statewise_load_runs
        )
        log(f"pygubernator from_yaml x{cfg.seed_load_runs} (slow)")
        seed_best, seed_all = best_seconds(lambda: seed_load_yaml(str(path)), cfg.seed_load_runs)
    return {
        "states": workload.n_states,
        "transitions": workload.n_transitions,
        "yaml_bytes": size,
        "statewise_s": sw_best,
        "statewise_runs_s": sw_all,
        "pygubernator_s": seed_best,
        "pygubernator_runs_s": seed_all,
        "speedup": seed_best / sw_best,
    }


# -- 3. retained memory ----------------------------------------------------------------------------


def traced(build: Callable[[], Any], use: Callable[[Any], object] | None = None) -> dict[str, Any]:
    """Bytes still allocated after ``build()`` (and after ``use(obj)``), by tracemalloc."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        obj = build()
        gc.collect()
        current, peak = tracemalloc.get_traced_memory()
        out: dict[str, Any] = {"retained": current - base, "peak": peak - base}
        if use is not None:
            use(obj)
            gc.collect()
            out["retained_after_use"] = tracemalloc.get_traced_memory()[0] - base
            memo = getattr(obj, "_memo", None)
            out["memo_entries"] = None if memo is None else len(memo)
        del obj
        return out
    finally:
        tracemalloc.stop()


def measure_memory(workload: Workload) -> dict[str, Any]:
    spec = workload.spec
    seed_form = seed_spec(spec)
    sw_triples = statewise_events(workload.items)

    def run_once(machine: StateMachine) -> None:
        for state, event, context in sw_triples:
            machine.process(state, event, context)

    floor = traced(lambda: floor_machine(spec))
    statewise = traced(lambda: statewise_machine(spec), run_once)
    seed = traced(lambda: seed_machine(seed_form))
    return {
        "states": workload.n_states,
        "transitions": workload.n_transitions,
        "floor_bytes": floor["retained"],
        "statewise_bytes": statewise["retained"],
        "statewise_peak_bytes": statewise["peak"],
        "statewise_after_workload_bytes": statewise["retained_after_use"],
        "statewise_memo_entries": statewise["memo_entries"],
        "pygubernator_bytes": seed["retained"],
        "statewise_vs_floor": statewise["retained"] / floor["retained"],
        "statewise_after_workload_vs_floor": statewise["retained_after_use"] / floor["retained"],
        "pygubernator_vs_floor": seed["retained"] / floor["retained"],
    }


# -- targets, table, files ------------------------------------------------------------


def target(name: str, value: float, limit: float, kind: str) -> dict[str, Any]:
    ok = value <= limit if kind == "max" else value >= limit
    return {
        "name": name,
        "value": value,
        "limit": limit,
        "kind": kind,
        "status": "PASS" if ok else "FAIL",
    }


def evaluate(report: Report) -> None:
    rows = {row["workload"]: row for row in report.per_event}
    for row in report.per_event:
        report.targets.append(
            target(
                f"per-event {row['workload']}: statewise/floor",
                row["statewise_vs_floor"],
                PER_EVENT_LIMIT,
                "max",
            )
        )
    small, large = min(report.config.sizes), max(report.config.sizes)
    a, b = rows.get(f"generated_{small}"), rows.get(f"generated_{large}")
    if a is not None and b is not None and a is not b:
        report.scaling = {
            "from_states": small,
            "to_states": large,
            **{
                name: b["ns_per_event"][name]["best"] / a["ns_per_event"][name]["best"]
                for name in IMPLS
            },
        }
        ratio = report.scaling["statewise"]
        report.targets.append(
            target(f"scaling: statewise {large:,} / {small:,} states", ratio, SCALING_LIMIT, "max")
        )
    if report.load:
        report.targets.append(
            target(
                "load: pygubernator time / statewise time",
                report.load["speedup"],
                LOAD_LIMIT,
                "min",
            )
        )
    if report.memory:
        m = report.memory
        report.targets.append(
            target(
                "memory: statewise/floor, fresh machine",
                m["statewise_vs_floor"],
                MEMORY_LIMIT,
                "max",
            )
        )
        report.targets.append(
            target(
                "memory: statewise/floor, after one workload pass",
                m["statewise_after_workload_vs_floor"],
                MEMORY_LIMIT,
                "max",
            )
        )
    if report.analysis:
        n = report.analysis["states"]
        for name in ("analyze", "shortest_paths"):
            report.targets.append(
                target(
                    f"analysis: {name}() on {n:,} states, s",
                    report.analysis[f"{name}_s"],
                    ANALYSIS_LIMIT_S,
                    "max",
                )
            )


def _ns(cell: dict[str, float] | None) -> str:
    if cell is None:
        return "-"
    return f"{cell['best']:>8,.0f} ({cell['median']:,.0f})"


def _row(r: dict[str, Any]) -> str:
    ns = r["ns_per_event"]
    seed = r["pygubernator_vs_floor"]
    return (
        f"   {r['workload']:<21}{r['states']:>7,}{r['transitions']:>7,}"
        f"{r['invalid_share']:>8.1%}{_ns(ns['floor']):>20}{_ns(ns['statewise']):>20}"
        f"{_ns(ns.get('pygubernator')):>20}{ns['loop']['best']:>11,.0f}"
        f"{r['statewise_vs_floor']:>9.2f}x" + (f"{seed:>10.1f}x" if seed else f"{'-':>11}")
    )


def _mib(n: int) -> str:
    return f"{n / 2**20:,.2f} MiB"


def render(report: Report, meta: dict[str, Any]) -> str:
    cfg = report.config
    lines = [
        f"statewise benchmark  {meta['timestamp']}  python {meta['machine']['python']}  "
        f"cpus {meta['machine']['cpu_count']}  statewise {meta['versions']['statewise']}  "
        f"pygubernator {meta['versions']['pygubernator']}" + ("  [QUICK]" if cfg.quick else ""),
        f"load average {meta['loadavg_start']} at start, {meta.get('loadavg_end', '?')} "
        f"at end (over the cpu count: other processes share the cores, expect noise)",
        "",
        f"1) process() per event, ns/event: best (median) of {cfg.repeats} passes over "
        f"{cfg.events:,} events per workload, chunks of {CHUNK:,}, GC paused while timing",
        f"   {'workload':<21}{'states':>7}{'trans':>7}{'invalid':>8}"
        f"{'floor':>20}{'statewise':>20}{'pygubernator':>20}{'loop only':>11}"
        f"{'sw/floor':>10}{'seed/floor':>11}",
    ]
    lines += [_row(r) for r in report.per_event]
    if report.pressure:
        r = report.pressure
        lines += [
            f"   memo pressure (information, not a target): the {r['states']:,}-state machine "
            f"with {r['events']:,} events, more distinct",
            f"   decisions than statewise's memo holds ({MEMO_LIMIT:,}), so it is cleared "
            "and refilled as events arrive (the seed is left out: too slow)",
            _row(r),
        ]
    lines.append("   (every number includes the 'loop only' cost: the for loop and one call)")
    memo = [
        f"{r['workload']}={r['statewise_memo_entries']:,}"
        for r in report.per_event
        if r["statewise_memo_entries"] is not None
    ]
    if memo:
        lines.append(f"   statewise memo entries after timing: {', '.join(memo)}")
    sampled = [
        f"{name} {r['workload']} {r['ns_per_event'][name]['events_timed']:,}"
        for r in report.per_event
        for name in IMPLS
        if r["ns_per_event"][name]["events_timed"] < r["events"]
    ]
    if sampled:
        lines.append(
            f"   timed on the first events only (budget {PASS_BUDGET_S:.0f} s): "
            + ", ".join(sampled)
        )
    if report.scaling:
        sc = report.scaling
        lines.append(
            f"   cost at {sc['to_states']:,} states / at {sc['from_states']:,} states: "
            + ", ".join(f"{name} {sc[name]:.2f}x" for name in IMPLS)
        )
    if report.event_building:
        eb = report.event_building
        lines.append(
            "   building one event (not included above; callers pay it per message): "
            + ", ".join(f"{name} {eb[name]:,.0f} ns" for name in IMPLS)
        )
    if report.load:
        ld = report.load
        lines += [
            "",
            f"2) spec load: {ld['states']:,} states, {ld['transitions']:,} transitions, "
            f"YAML {ld['yaml_bytes'] / 1e6:.1f} MB, schema validation on",
            f"   statewise    StateMachine.from_yaml(path, guards=...)  "
            f"{ld['statewise_s']:8.3f} s  (best of {len(ld['statewise_runs_s'])})",
            f"   pygubernator StateMachine.from_yaml(path) + bind_guards "
            f"{ld['pygubernator_s']:8.3f} s  (best of {len(ld['pygubernator_runs_s'])})",
            f"   speed-up {ld['speedup']:.1f}x",
        ]
    if report.memory:
        m = report.memory
        lines += [
            "",
            f"3) retained memory (tracemalloc), {m['states']:,}-state machine built from "
            "the same parsed dict",
            f"   floor table                              {_mib(m['floor_bytes']):>14}",
            f"   statewise from_dict                      {_mib(m['statewise_bytes']):>14}"
            f"  {m['statewise_vs_floor']:.2f}x floor  (peak while building "
            f"{_mib(m['statewise_peak_bytes'])})",
            f"   statewise after one workload pass        "
            f"{_mib(m['statewise_after_workload_bytes']):>14}"
            f"  {m['statewise_after_workload_vs_floor']:.2f}x floor  (memo entries: "
            f"{m['statewise_memo_entries']})",
            f"   pygubernator from_dict (reference)       {_mib(m['pygubernator_bytes']):>14}"
            f"  {m['pygubernator_vs_floor']:.2f}x floor",
        ]
    lines += render_cel(report)
    lines += render_executor(report)
    lines += render_analysis(report)
    lines += ["", "targets"]
    for t in report.targets:
        sign = "<=" if t["kind"] == "max" else ">="
        lines.append(
            f"   {t['status']}  {t['name']:<52} {t['value']:8.2f}  (target {sign} {t['limit']})"
        )
    passed = sum(1 for t in report.targets if t["status"] == "PASS")
    lines.append(f"   {passed} of {len(report.targets)} targets met")
    secs = ", ".join(f"{k} {v:.0f} s" for k, v in report.seconds.items())
    lines.append(f"   wall time: {secs}")
    return "\n".join(lines) + "\n"


def render_cel(report: Report) -> list[str]:
    c = report.cel
    if not c:
        return []
    head = "4) one guard, CEL when: vs. Python (information, no target)"
    if "skipped" in c:
        return ["", f"{head}: skipped, {c['skipped']}"]
    ns = c["ns_per_event"]
    labels = {
        "floor": "floor, Python guard (context, payload)",
        "python": "statewise, Python guard fn(ctx)",
        "python_params": "statewise, Python guard fn(ctx, sides=...)",
        "cel": "statewise, CEL when:",
        "loop": "loop only",
    }
    notes = {
        "floor": "",
        "python": f"  {c['python_vs_floor']:.2f}x floor",
        "python_params": f"  {c['python_params_vs_python']:.2f}x Python guard",
        "cel": (
            f"  {c['cel_vs_python']:.2f}x Python guard ({c['cel_minus_python_ns']:+,.0f} ns), "
            f"{c['cel_vs_floor']:.1f}x floor"
        ),
        "loop": "",
    }
    bd = c["cel_breakdown_ns_per_evaluation"]
    lines = [
        "",
        f"{head}: ns/event, best (median) of {c['repeats']} passes over {c['events']:,} "
        f"events, chunks of {c['chunk']:,}, GC paused",
        f'   the order machine, its full-fill transition guarded by when: "{c["expression"]}"',
        "   or by the same logic in Python; every event (an execution report on a working "
        "order) evaluates it once:",
        f"   it says yes to {c['condition_true_share']:.1%}; "
        f"{c['rejected_share']:.1%} of events are rejected",
    ]
    lines += [f"   {labels[k]:<44}{_ns(ns[k]):>20}{notes[k]}" for k in labels]
    lines += [
        "   where CEL's time goes, ns per evaluation (best): the compiled program run with only "
        f"the {len(c['cel_names'])} names it reads {bd['execute_names_only']['best']:,.0f};",
        "   with event and state added, as statewise passes them, "
        f"{bd['execute_with_event_and_state']['best']:,.0f}; Expression.evaluate (builds the "
        f"variables, runs the program) {bd['expression_evaluate']['best']:,.0f}",
    ]
    return lines


EXECUTOR_COLUMNS = ("floor", "statewise", "pygubernator", "pygubernator_no_log")


def render_executor(report: Report) -> list[str]:
    x = report.executor
    if not x:
        return []
    lines = [
        "",
        "5) action executors (information, no target): ns per action, best (median) of "
        f"{x['repeats']} passes over {x['results_per_workload']:,} committed results per "
        "workload,",
        "   chunks of 100, GC paused; per-result costs are included, divided by the result's "
        "action count; no action fails (no retries)",
        f"   {'workload':<16}{'floor':>20}{'statewise':>20}{'pygubernator':>20}"
        f"{'seed no-log':>20}{'sw/floor':>10}{'seed/floor':>11}{'sw/seed':>9}{'sw/no-log':>11}",
    ]
    for r in x["rows"]:
        ns = r["ns_per_action"]
        lines.append(
            f"   {r['workload']:<16}"
            + "".join(f"{_ns(ns[name]):>20}" for name in EXECUTOR_COLUMNS)
            + f"{r['statewise_vs_floor']:>9.0f}x{r['pygubernator_vs_floor']:>10.1f}x"
            f"{r['statewise_vs_pygubernator']:>8.2f}x{r['statewise_vs_pygubernator_no_log']:>10.2f}x"
        )
    sp = x["split"]
    if sp:
        names = {
            "floor": "floor",
            "statewise": "statewise",
            "pygubernator": "pygubernator",
            "pygubernator_no_log": "seed no-log",
        }
        lines += [
            "   fixed cost per result + marginal cost per action, from noop "
            f"x{sp['from_actions']} and x{sp['to_actions']}:",
            "      "
            + "; ".join(
                f"{label} {sp[k]['per_result_ns']:,.0f} + {sp[k]['per_action_ns']:,.0f} ns"
                for k, label in names.items()
            ),
        ]
        lines.append(
            "   statewise, per action, also computes an idempotency key (SHA-256 over canonical "
            f"JSON; alone {sp['statewise_keys_only']['per_action_ns']:,.0f} ns per action),"
        )
        lines.append(
            "   reads the clock twice (the duration) and builds an ActionOutcome; the seed "
            "calls fn(ctx) and builds an ActionResult"
        )
    lines += [
        "   pygubernator: the seed as it comes (log_execution=True formats its log messages "
        "even when no logger listens);",
        "   seed no-log: log_execution=False. noop: fn(ctx); params+key: fn(ctx, *, amount, "
        "currency, idempotency_key) with params",
        "   from the spec (the seed gets them bound by functools.partial; the floor passes a "
        "constant key)",
    ]
    return lines


def render_analysis(report: Report) -> list[str]:
    a = report.analysis
    if not a:
        return []
    found = ", ".join(f"{code} {n:,}" for code, n in sorted(a["findings"].items())) or "none"
    return [
        "",
        f"6) static analysis: the generated {a['states']:,}-state machine "
        f"({a['transitions']:,} transitions), wall time, best of {a['runs']}, graph included",
        f"   analyze()           {a['analyze_s']:8.3f} s   findings: {found}",
        f"   shortest_paths()    {a['shortest_paths_s']:8.3f} s   "
        f"{a['reachable_states']:,} states reachable",
        f"   transition_cover()  {a['transition_cover_s']:8.3f} s   "
        f"{a['cover_paths']:,} paths (information, no target)",
    ]


def machine_info() -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    return {
        "timestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "platform": platform.platform(),
            "processor": platform.machine(),
        },
        "versions": {"statewise": version("statewise"), "pygubernator": version("pygubernator")},
        **source_state(),
        "loadavg_start": loadavg(),
    }


def write_results(report: Report, meta: dict[str, Any], text: str) -> list[Path]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = meta["timestamp"].replace("-", "").replace(":", "")
    suffix = "-quick" if report.config.quick else ""
    data = {
        **meta,
        "config": vars(report.config) | {"sizes": list(report.config.sizes)},
        "per_event": report.per_event,
        "load": report.load,
        "memory": report.memory,
        "scaling": report.scaling,
        "event_building_ns": report.event_building,
        "memo_pressure": report.pressure,
        "cel_guard": report.cel,
        "action_executor": report.executor,
        "analysis": report.analysis,
        "targets": report.targets,
        "wall_seconds": report.seconds,
    }
    body = json.dumps(data, indent=2) + "\n"
    paths = [RESULTS / f"bench-{stamp}{suffix}.json", RESULTS / f"bench-{stamp}{suffix}.txt"]
    paths[0].write_text(body, encoding="utf-8")
    paths[1].write_text(text, encoding="utf-8")
    if not report.config.quick:
        (RESULTS / "latest.json").write_text(body, encoding="utf-8")
        (RESULTS / "latest.txt").write_text(text, encoding="utf-8")
        paths += [RESULTS / "latest.json", RESULTS / "latest.txt"]
    return paths


# -- main ----------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> Config:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument(
        "--quick",
        action="store_true",
        help="a fast smoke run (small workloads, 1,000-state load); "
        "results are not written to latest.*",
    )
    p.add_argument("--events", type=int, help="events per workload (default 50,000)")
    p.add_argument("--repeats", type=int, help="timed passes per workload (default 7)")
    p.add_argument("--seed", type=int, default=1, help="seed for specs and workloads")
    p.add_argument(
        "--seed-load-runs",
        type=int,
        default=1,
        help="times to load the big spec with pygubernator (~30 s each)",
    )
    p.add_argument(
        "--cel-events", type=int, help="events for the CEL guard comparison (default 20,000)"
    )
    p.add_argument(
        "--executor-results",
        type=int,
        help="results executed per action-executor workload (default 2,000)",
    )
    p.add_argument("--no-write", action="store_true", help="print only")
    a = p.parse_args(argv)
    quick = bool(a.quick)
    return Config(
        events=a.events or (3_000 if quick else 50_000),
        repeats=a.repeats or (2 if quick else 7),
        seed=a.seed,
        sizes=(10, 100, 1_000) if quick else (10, 100, 1_000, 10_000),
        load_states=1_000 if quick else 10_000,
        statewise_load_runs=1 if quick else 3,
        seed_load_runs=a.seed_load_runs,
        cel_events=a.cel_events or (3_000 if quick else 20_000),
        executor_results=a.executor_results or (300 if quick else 2_000),
        quick=quick,
        write=not a.no_write,
    )


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    report = Report(cfg)
    meta = machine_info()
    clock = time.perf_counter()
    try:
        specs = {n: generated_spec(n, cfg.seed) for n in sorted({*cfg.sizes, cfg.load_states})}
        workloads = [order_workload(cfg.events, cfg.seed)]
        workloads += [generated_workload(specs[n], cfg.events, cfg.seed) for n in cfg.sizes]
        for w in workloads:
            log(f"per-event: {w.name}")
            report.per_event.append(measure_workload(w, cfg))
        if not cfg.quick:
            log(f"memo pressure: {PRESSURE_EVENTS:,} events on {max(cfg.sizes):,} states")
            heavy = generated_workload(specs[max(cfg.sizes)], PRESSURE_EVENTS, cfg.seed + 1)
            report.pressure = measure_workload(
                heavy, replace(cfg, repeats=3), impls=("floor", "statewise")
            )
            report.pressure["workload"] += f"/{PRESSURE_EVENTS // 1000}k"
        log("building events")
        report.event_building = measure_event_building(workloads[0], cfg.repeats)
        report.seconds["per-event"] = time.perf_counter() - clock
        big = next((w for w in workloads if w.n_states == cfg.load_states), None)
        if big is None:
            big = generated_workload(specs[cfg.load_states], cfg.events, cfg.seed)
        clock = time.perf_counter()
        report.load = measure_load(big, cfg)
        report.seconds["load"] = time.perf_counter() - clock
        clock = time.perf_counter()
        log(f"memory: {big.name}")
        report.memory = measure_memory(big)
        report.seconds["memory"] = time.perf_counter() - clock
        clock = time.perf_counter()
        missing = cel_missing()
        if missing is None:
            log(f"CEL guard vs. Python guard: {cfg.cel_events:,} events")
            report.cel = measure_cel(cfg.cel_events, cfg.repeats, cfg.seed)
        else:
            log(f"CEL guard: skipped, {missing}")
            report.cel = {"skipped": missing}
        report.seconds["cel"] = time.perf_counter() - clock
        clock = time.perf_counter()
        log(f"action executors: {cfg.executor_results:,} results per workload")
        report.executor = measure_executor(cfg.executor_results, cfg.repeats)
        report.seconds["executor"] = time.perf_counter() - clock
        clock = time.perf_counter()
        log(f"static analysis: {ANALYSIS_STATES:,} states, best of {ANALYSIS_RUNS}")
        analysed = specs.get(ANALYSIS_STATES) or generated_spec(ANALYSIS_STATES, cfg.seed)
        report.analysis = measure_analysis(analysed, ANALYSIS_RUNS)
        report.seconds["analysis"] = time.perf_counter() - clock
    except (Disagreement, Mismatch) as exc:
        print(f"DISAGREEMENT: {exc}", file=sys.stderr)
        return 2
    meta["loadavg_end"] = loadavg()
    evaluate(report)
    text = render(report, meta)
    print(text, end="")
    if cfg.write:
        for path in write_results(report, meta, text):
            print(f"wrote {path.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
