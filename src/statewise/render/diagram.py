"""What every diagram draws, whatever its syntax: arrows, their labels, what is highlighted.

Read from :class:`~statewise.analysis.graph.MachineGraph` (the model analysis reads
too), so a diagram shows exactly the edges ``process`` would take. Each graph edge is
one arrow, in the graph's order (states in declaration order, then priority), with
one exception, for readability: a ``"*"`` transition, which the graph lists once per
non-terminal state, is drawn once, from a single :data:`ANY` node ("any non-terminal
state"); an internal ``"*"`` transition is a loop on that node. A transition listing
several sources by name keeps one arrow per source: those are few, and named.

An arrow's label is ``trigger [guards] / actions`` (guards in the order they are
asked, ``when: <CEL>`` first; the brackets and the actions only when there are some).
A timeout's label starts ``after <duration>`` instead of a trigger: a trigger is an
identifier, so the two can never be confused. Labels are plain text here; each
format escapes them its own way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from statewise.analysis.findings import Finding
from statewise.analysis.graph import Edge, EdgeKind, MachineGraph

__all__ = ["ANY", "Arrow", "Highlight", "arrows", "duration"]

ANY = "*"
"""The source (and, for an internal transition, the dest) of a ``"*"`` arrow."""

_UNITS = (("d", 86400), ("h", 3600), ("m", 60))


@dataclass(frozen=True, slots=True)
class Highlight:
    """What findings point at: states by name, transitions by their spec index."""

    states: frozenset[str] = frozenset()
    transitions: frozenset[int] = frozenset()

    @classmethod
    def of(cls, findings: Iterable[Finding]) -> Highlight:
        states: set[str] = set()
        transitions: set[int] = set()
        for finding in findings:
            states.update(finding.states)
            transitions.update(finding.transitions)
        return cls(frozenset(states), frozenset(transitions))

    def marks(self, edge: Edge) -> bool:
        # A timeout edge has no spec index: findings reach it only through its state.
        return edge.index is not None and edge.index in self.transitions


@dataclass(frozen=True, slots=True)
class Arrow:
    """One arrow: a graph edge, or every edge of one ``"*"`` transition (``source`` is
    then :data:`ANY`). ``edges`` are the graph edges it stands for, never empty."""

    source: str
    dest: str
    kind: EdgeKind
    label: str
    edges: tuple[Edge, ...]
    highlighted: bool = False

    @property
    def description(self) -> str | None:
        return self.edges[0].transition.description


def arrows(graph: MachineGraph, highlight: Highlight = Highlight()) -> tuple[Arrow, ...]:
    """The arrows of ``graph``, in its edge order; a ``"*"`` transition's arrow sits
    where its first edge was."""
    wildcard: dict[int, list[Edge]] = {}
    for edge in graph.edges:
        if edge.index is not None and edge.transition.is_wildcard:
            wildcard.setdefault(edge.index, []).append(edge)
    out: list[Arrow] = []
    edges: tuple[Edge, ...]
    for edge in graph.edges:
        group = wildcard.get(edge.index) if edge.index is not None else None
        if group is None:
            source, dest, edges = edge.source, edge.dest, (edge,)
        elif group[0] is edge:
            internal = edge.kind is EdgeKind.INTERNAL
            source, dest, edges = ANY, ANY if internal else edge.dest, tuple(group)
        else:
            continue  # drawn with the first edge of its group
        label = _label(graph, edge)
        out.append(Arrow(source, dest, edge.kind, label, edges, highlight.marks(edge)))
    return tuple(out)


def duration(seconds: float) -> str:
    """``5s``, ``0.25s``, ``90s``, ``15m``, ``2h``, ``1d``: the largest unit that
    divides the duration exactly."""
    for unit, size in _UNITS:
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size:g}{unit}"
    return f"{seconds:g}s"


def _label(graph: MachineGraph, edge: Edge) -> str:
    if edge.kind is EdgeKind.TIMEOUT:
        timeout = graph.node(edge.source).timeout
        # The graph only builds a timeout edge for a state that has a timeout.
        assert timeout is not None
        text = f"after {duration(timeout.seconds)}"
    else:
        text = edge.trigger
    if edge.guards:
        text += f" [{', '.join(edge.guards)}]"
    if edge.actions:
        text += f" / {', '.join(edge.actions)}"
    return text
