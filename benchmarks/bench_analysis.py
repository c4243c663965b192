"""Static analysis of a big machine: ``analyze()`` and ``shortest_paths()`` wall time.

The machine is the generated 10,000-state spec (``bench_specs.generated_spec``), built
once with ``StateMachine.from_dict``; building it is not timed. Each function is timed
end to end (its graph included: both build their own), best of ``runs``, with the
cyclic GC on, as a caller would run it. ``transition_cover()`` is timed the same way,
for information.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from bench_specs import Spec

from statewise import StateMachine
from statewise.analysis import analyze, shortest_paths, transition_cover

__all__ = ["best_seconds", "measure_analysis"]


def best_seconds(fn: Callable[[], object], runs: int) -> tuple[float, list[float]]:
    """Wall-clock seconds of ``runs`` calls of ``fn``: the best, and every one."""
    times: list[float] = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), times


def measure_analysis(spec: Spec, runs: int = 3) -> dict[str, Any]:
    """Seconds (best of ``runs``, and every run) for each function, plus what it found."""
    machine = StateMachine.from_dict(spec)
    out: dict[str, Any] = {
        "states": len(spec["states"]),
        "transitions": len(spec.get("transitions") or ()),
        "runs": runs,
    }
    timed: dict[str, Callable[[], object]] = {
        "analyze": lambda: analyze(machine),
        "shortest_paths": lambda: shortest_paths(machine),
        "transition_cover": lambda: transition_cover(machine),
    }
    for name, fn in timed.items():
        best, every = best_seconds(fn, runs)
        out[f"{name}_s"] = best
        out[f"{name}_runs_s"] = every
    out["findings"] = dict(Counter(f.code for f in analyze(machine)))
    out["reachable_states"] = len(shortest_paths(machine))
    out["cover_paths"] = len(transition_cover(machine))
    return out
