"""The neutral graph model of a machine: what analysis, paths and diagrams all read.

Built from the engine's rule table (``machine.rules``), the one place the transition
rules live, so a diagram, a finding and ``process`` can never disagree about an edge.
Nodes are the states in declaration order. Edges are (source state, transition) pairs
as the rule table lists them: one per source a transition names (a ``"*"`` source
gives one edge per non-terminal state), in priority order within a (state, trigger),
followed by the state's timeout edge. An internal transition is a loop that exits
and enters nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from statewise.engine.expressions import label
from statewise.engine.machine import Machine
from statewise.model.definition import State, StateType, Timeout, Transition

__all__ = ["Edge", "EdgeKind", "MachineGraph", "Node"]


class EdgeKind(enum.StrEnum):
    EVENT = "event"
    """An event moves the entity to ``dest`` (maybe back to ``source``: a self-transition)."""
    INTERNAL = "internal"
    """An event runs actions only; the state is neither exited nor entered."""
    TIMEOUT = "timeout"
    """The state's timeout fires (trigger ``timeout``)."""


@dataclass(frozen=True, slots=True)
class Node:
    """A state, as a diagram or an analysis sees it."""

    name: str
    type: StateType
    timeout: Timeout | None = None
    description: str | None = None

    @property
    def initial(self) -> bool:
        return self.type is StateType.INITIAL

    @property
    def terminal(self) -> bool:
        return self.type is StateType.TERMINAL

    @property
    def error(self) -> bool:
        return self.type is StateType.ERROR


@dataclass(frozen=True, slots=True)
class Edge:
    """One way out of ``source``.

    ``index`` is the transition's position in the spec's ``transitions`` (``None`` for
    a timeout edge); ``priority`` its position among the candidates for (source,
    trigger): 0 is tried first.
    """

    source: str
    dest: str
    trigger: str
    kind: EdgeKind
    transition: Transition
    index: int | None
    priority: int = 0

    @property
    def guards(self) -> tuple[str, ...]:
        """What must say yes, in the order it is asked: ``when: ...``, then guard names."""
        t = self.transition
        names = tuple(g.name for g in t.guards)
        return names if t.when is None else (label(t.when), *names)

    @property
    def guarded(self) -> bool:
        return self.transition.guarded

    @property
    def actions(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.transition.actions)


@dataclass(frozen=True, slots=True, eq=False)
class MachineGraph:
    """Nodes and edges of one machine; built once, read by everything that draws or checks."""

    name: str
    initial: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    outgoing: Mapping[str, tuple[Edge, ...]]
    state_index: Mapping[str, int]

    @classmethod
    def of(cls, machine: Machine) -> MachineGraph:
        definition = machine.definition
        rules = machine.rules
        index = {id(t): i for i, t in enumerate(definition.transitions)}
        nodes = tuple(_node(s) for s in definition.states)
        outgoing: dict[str, list[Edge]] = {n.name: [] for n in nodes}
        for state, candidates in rules.by_state.items():
            for trigger, ts in candidates.items():
                for priority, t in enumerate(ts):
                    kind = EdgeKind.INTERNAL if t.dest is None else EdgeKind.EVENT
                    edge = Edge(state, t.dest or state, trigger, kind, t, index[id(t)], priority)
                    outgoing[state].append(edge)
            timeout = rules.timeouts.get(state)
            if timeout is not None:
                dest = timeout.dest or state
                outgoing[state].append(
                    Edge(state, dest, timeout.trigger, EdgeKind.TIMEOUT, timeout, None)
                )
        frozen = {name: tuple(edges) for name, edges in outgoing.items()}
        return cls(
            name=definition.name,
            initial=machine.initial_state.name,
            nodes=nodes,
            edges=tuple(e for n in nodes for e in frozen[n.name]),
            outgoing=MappingProxyType(frozen),
            state_index=MappingProxyType({n.name: i for i, n in enumerate(nodes)}),
        )

    def node(self, name: str) -> Node:
        return self.nodes[self.state_index[name]]

    def spec_path(self, edge: Edge) -> tuple[str | int, ...]:
        """``edge.path`` with the state's index: a path ``machine.source`` can locate."""
        if edge.index is None:
            return ("states", self.state_index[edge.source], "timeout")
        return ("transitions", edge.index)


def _node(state: State) -> Node:
    return Node(state.name, state.type, state.timeout, state.description)
