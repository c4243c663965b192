"""Paths through a machine from its initial state: the shortest one to each state, and a
small set that fires every transition. What model-based tests replay.

A :class:`Path` is a start state and a sequence of :class:`Step` s. A step is an edge of
the :class:`~statewise.analysis.graph.MachineGraph` taken from one state: an event's
trigger, or ``timeout`` when the state's timeout fires (``transition_index`` is
``None``; replay it with ``machine.timeout_result``). Its ``assumptions`` say what the
guards must answer for ``process`` to take that step: each of the edge's labels
(``when: ...`` and guard names) must say yes, and each earlier candidate for the same
(state, trigger) must say no (``not <label>``, or ``not (<a> and <b>)`` for a
candidate with several checks).

Theory of operation. Only edges that *can* fire are walked: a transition listed after
an unguarded candidate for the same (state, trigger) never fires there (analysis
reports it as ``shadowed-transition``). Guards are otherwise assumed satisfiable: no
guard runs. Search is breadth first, each state's edges tried in declaration order
(by transition index; the timeout last), so the paths are the same on every run. The
error fallback (trigger ``error``) is not an edge here: no event takes it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from statewise.analysis.graph import Edge, EdgeKind, MachineGraph
from statewise.engine.expressions import label
from statewise.engine.machine import Machine
from statewise.model.definition import Transition

__all__ = [
    "Path",
    "Step",
    "breadth_first",
    "checks_of",
    "fireable_edges",
    "shortest_paths",
    "transition_cover",
    "walk_back",
]

T = TypeVar("T")
Parents = dict[str, tuple[str, T] | None]


@dataclass(frozen=True, slots=True)
class Step:
    """``trigger`` takes the entity from ``state`` to ``dest`` through
    ``transitions[transition_index]`` (``None``: the state's timeout), provided every
    one of ``assumptions`` holds."""

    state: str
    trigger: str
    dest: str
    transition_index: int | None
    assumptions: tuple[str, ...] = ()

    @property
    def timeout(self) -> bool:
        """Whether the state's timeout fires here (no event: ``machine.timeout_result``)."""
        return self.transition_index is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "trigger": self.trigger,
            "dest": self.dest,
            "transition": self.transition_index,
            "assumptions": list(self.assumptions),
        }


@dataclass(frozen=True, slots=True)
class Path:
    """Steps from ``start`` (the initial state); no steps: the entity stays in ``start``."""

    start: str
    steps: tuple[Step, ...] = ()

    @property
    def triggers(self) -> tuple[str, ...]:
        return tuple(s.trigger for s in self.steps)

    @property
    def end(self) -> str:
        return self.steps[-1].dest if self.steps else self.start

    def __str__(self) -> str:
        return self.start + "".join(f" --{s.trigger}--> {s.dest}" for s in self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "triggers": list(self.triggers),
            "steps": [s.to_dict() for s in self.steps],
        }


def fireable_edges(graph: MachineGraph) -> dict[str, tuple[Edge, ...]]:
    """Each state's edges that can fire, in declaration order (timeout last): every edge
    but those listed after an unguarded candidate for the same (state, trigger)."""
    out: dict[str, tuple[Edge, ...]] = {}
    for state, edges in graph.outgoing.items():
        closed: set[str] = set()  # triggers whose unguarded candidate was seen
        live: list[Edge] = []
        for e in edges:  # candidates come in priority order within a trigger
            if e.kind is EdgeKind.TIMEOUT or e.trigger not in closed:
                live.append(e)
                if e.kind is not EdgeKind.TIMEOUT and not e.guarded:
                    closed.add(e.trigger)
        live.sort(key=_declared)
        out[state] = tuple(live)
    return out


def breadth_first(start: str, successors: Callable[[str], Iterable[tuple[str, T]]]) -> Parents[T]:
    """Every state reachable from ``start`` -> ``(previous state, what led here)``, or
    ``None`` for ``start``. ``successors(s)`` yields ``(dest, label)`` pairs; the first
    one to reach a state, level by level, wins."""
    parents: Parents[T] = {start: None}
    queue = deque((start,))
    while queue:
        state = queue.popleft()
        for dest, via in successors(state):
            if dest not in parents:
                parents[dest] = (state, via)
                queue.append(dest)
    return parents


def walk_back(parents: Mapping[str, tuple[str, T] | None], state: str) -> list[T]:
    """The labels from the start to ``state`` (which ``parents`` must hold)."""
    out: list[T] = []
    link = parents[state]
    while link is not None:
        state, via = link
        out.append(via)
        link = parents[state]
    out.reverse()
    return out


def shortest_paths(machine: Machine) -> dict[str, Path]:
    """Every state an entity can reach -> a shortest path to it from the initial state
    (timeouts count as steps), in the order breadth-first search reaches them."""
    graph = MachineGraph.of(machine)
    fireable = fireable_edges(graph)
    parents = breadth_first(graph.initial, lambda s: ((e.dest, e) for e in fireable[s]))
    rules = machine.rules
    # Breadth-first order puts each state after the one it is reached from: extend that
    # path by one step (a Step is built only for the edges the paths use).
    paths: dict[str, Path] = {}
    for state, link in parents.items():
        if link is None:
            paths[state] = Path(graph.initial)
            continue
        before, edge = link
        candidates = rules.candidates(before, edge.trigger) if edge.priority else ()
        paths[state] = Path(graph.initial, (*paths[before].steps, _step(edge, candidates)))
    return paths


def transition_cover(machine: Machine) -> list[Path]:
    """Paths from the initial state that together take every edge that can fire from a
    reachable state, timeouts included, at least once.

    Greedy, not minimal: take the first edge not yet covered (edges in order of their
    source's distance from the initial state, then declaration order), reach its source
    by its shortest path, take it, then keep taking uncovered edges out of wherever the
    entity is until there are none; that is one path. Repeat until every edge is
    covered. Edges that cannot fire (from unreachable states, or shadowed by an
    unguarded candidate declared before them) are left out: ``analyze`` reports them as
    ``unreachable-state`` and ``shadowed-transition``.
    """
    graph = MachineGraph.of(machine)
    steps = _steps(machine, graph)
    parents = breadth_first(graph.initial, lambda s: ((st.dest, st) for st in steps[s]))
    # Reachable states in breadth-first order: every edge out of them can be covered.
    # A state's shortest path runs through states before it, whose edges are all taken
    # by then: the prefix never covers anything new.
    pending = {state: list(steps[state]) for state in parents}
    paths: list[Path] = []
    for state in parents:
        while pending[state]:
            walk = walk_back(parents, state)
            here = state
            while pending[here]:
                step = pending[here].pop(0)
                walk.append(step)
                here = step.dest
            paths.append(Path(graph.initial, tuple(walk)))
    return paths


def _declared(edge: Edge) -> tuple[bool, int]:
    return (edge.index is None, edge.index or 0)


def _steps(machine: Machine, graph: MachineGraph) -> dict[str, tuple[Step, ...]]:
    rules = machine.rules
    return {
        state: tuple(
            _step(e, rules.candidates(state, e.trigger) if e.priority else ()) for e in edges
        )
        for state, edges in fireable_edges(graph).items()
    }


def _step(edge: Edge, candidates: tuple[Transition, ...]) -> Step:
    # Earlier candidates are all guarded (the edge fires) and must each say no.
    refusals = tuple(f"not {_conjunction(t)}" for t in candidates[: edge.priority])
    return Step(edge.source, edge.trigger, edge.dest, edge.index, (*refusals, *edge.guards))


def checks_of(t: Transition) -> tuple[str, ...]:
    """What must say yes for ``t``, in the order it is asked (as ``Edge.guards``)."""
    names = tuple(g.name for g in t.guards)
    return names if t.when is None else (label(t.when), *names)


def _conjunction(t: Transition) -> str:
    labels = checks_of(t)
    return labels[0] if len(labels) == 1 else "(" + " and ".join(labels) + ")"
