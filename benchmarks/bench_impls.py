"""The three implementations behind one calling shape, and the timing loop.

Every implementation is driven as ``process(state, event, context)`` over a list of
pre-built ``(state, event, context)`` triples, where ``event`` is that
implementation's own event value (a statewise ``Event``, a pygubernator ``Event``,
or the floor's ``(trigger, payload)`` pair). Building the events is not timed.
"""

from __future__ import annotations

import copy
import gc
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import pygubernator
from bench_floor import Floor, Outcome
from bench_specs import FLOOR_GUARDS, MAPPING_GUARDS, Item, Spec

from statewise import Event, GuardRegistry, StateMachine

__all__ = [
    "Process",
    "Triple",
    "floor_event",
    "floor_events",
    "floor_machine",
    "floor_outcomes",
    "gc_paused",
    "noop_process",
    "seed_event",
    "seed_events",
    "seed_load_yaml",
    "seed_machine",
    "seed_outcomes",
    "seed_spec",
    "statewise_event",
    "statewise_events",
    "statewise_guards",
    "statewise_machine",
    "statewise_outcomes",
    "time_build",
    "time_loop",
]

Triple = tuple[str, Any, Mapping[str, Any]]
Process = Callable[[str, Any, Mapping[str, Any]], object]


def time_loop(process: Process, triples: Sequence[Triple]) -> int:
    """Nanoseconds for one pass of ``process`` over ``triples`` (see :func:`gc_paused`)."""
    start = time.perf_counter_ns()
    for state, event, context in triples:
        process(state, event, context)
    return time.perf_counter_ns() - start


def time_build(make: Callable[[Item], object], items: Sequence[Item]) -> int:
    """Nanoseconds to build one event per item (what a caller pays before ``process``)."""
    start = time.perf_counter_ns()
    for item in items:
        make(item)
    return time.perf_counter_ns() - start


@contextmanager
def gc_paused() -> Iterator[None]:
    """Collect, then keep the cyclic GC off (as ``timeit`` does) for the block."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def noop_process(state: str, event: Any, context: Mapping[str, Any]) -> None:
    """The loop and call overhead that every measured number includes."""
    del state, event, context


# -- statewise ----------------------------------------------------------------------------


def statewise_guards() -> GuardRegistry:
    return GuardRegistry(MAPPING_GUARDS)


def statewise_machine(spec: Spec) -> StateMachine:
    return StateMachine.from_dict(spec, guards=statewise_guards())


def statewise_event(item: Item) -> Event:
    payload: Any = item.payload  # a plain dict, as callers pass it (typed FrozenDict)
    return Event(item.trigger, payload)


def statewise_events(items: Sequence[Item]) -> list[Triple]:
    return [(i.state, statewise_event(i), i.context) for i in items]


def statewise_outcomes(machine: StateMachine, triples: Sequence[Triple]) -> list[Outcome]:
    out: list[Outcome] = []
    for state, event, context in triples:
        r = machine.process(state, event, context)
        out.append((r.success, r.target_state, r.action_names))
    return out


# -- the floor ----------------------------------------------------------------------------------


def floor_machine(spec: Spec) -> Floor:
    return Floor(spec, FLOOR_GUARDS)


def floor_event(item: Item) -> tuple[str, Mapping[str, Any]]:
    return (item.trigger, item.payload)


def floor_events(items: Sequence[Item]) -> list[Triple]:
    return [(i.state, floor_event(i), i.context) for i in items]


def floor_outcomes(floor: Floor, triples: Sequence[Triple]) -> list[Outcome]:
    return [floor.process(state, event, context) for state, event, context in triples]


# -- the seed: pygubernator 0.0.1 ---------------------------------------------------------------


def seed_spec(spec: Spec) -> Spec:
    """``spec`` in the form the seed accepts, with the same decisions.

    The seed reads ``"*"`` as a state's name and requires ``dest``; so a wildcard
    becomes the list of non-terminal states, and an internal transition (no
    ``dest``) becomes one self-transition per source. A self-transition lands in
    the same state, but the seed then also lists the state's exit and enter
    actions, so only success and target are compared with the seed. Specs with
    neither feature (the generated ones) are returned unchanged.
    """
    transitions = spec.get("transitions") or []
    if not any(t["source"] == "*" or "dest" not in t for t in transitions):
        return spec
    live = [s["name"] for s in spec["states"] if s.get("type") != "terminal"]
    out = copy.deepcopy(spec)
    converted: list[dict[str, Any]] = []
    for t in out["transitions"]:
        if t["source"] == "*":
            t["source"] = list(live)
        if "dest" in t:
            converted.append(t)
            continue
        sources = [t["source"]] if isinstance(t["source"], str) else t["source"]
        converted.extend({**t, "source": s, "dest": s} for s in sources)
    out["transitions"] = converted
    return out


def _seed_guards() -> Any:
    registry = pygubernator.GuardRegistry()
    for name, fn in MAPPING_GUARDS.items():
        registry.register(name, fn)
    return registry


def seed_machine(seed_form: Spec) -> Any:
    """The seed's machine from an already-converted dict (see :func:`seed_spec`)."""
    machine = pygubernator.StateMachine.from_dict(seed_form)
    machine.bind_guards(_seed_guards())
    return machine


def seed_load_yaml(path: str) -> Any:
    """The seed's own loader: read, substitute, schema-validate, build, bind."""
    machine = pygubernator.StateMachine.from_yaml(path)
    machine.bind_guards(_seed_guards())
    return machine


def seed_event(item: Item) -> Any:
    return pygubernator.Event(trigger=item.trigger, payload=item.payload)


def seed_events(items: Sequence[Item]) -> list[Triple]:
    return [(i.state, seed_event(i), i.context) for i in items]


def seed_outcomes(machine: Any, triples: Sequence[Triple]) -> list[Outcome]:
    out: list[Outcome] = []
    for state, event, context in triples:
        r = machine.process(state, event, context)
        target = r.target_state if r.success else state  # the seed says None on failure
        out.append((bool(r.success), str(target), tuple(r.all_actions)))
    return out
