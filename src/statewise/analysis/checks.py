"""Static checks: what is wrong, or worth knowing, about a machine before it decides.

:func:`analyze` runs every check and returns the findings sorted by where they are
in the spec. Each check is a plain function returning
:class:`~statewise.analysis.findings.Finding` s, of :class:`Facts` (the graph and what
is reachable, worked out once) or of the machine's definition alone. None runs a
guard, an action or ``process``. Codes are stable: ``ignore=`` and the CLI's
``--ignore`` rely on them.

========================  ========  ===================================================
code                      severity  finding
========================  ========  ===================================================
``unreachable-state``     warning   no path from the initial state reaches the state
``trap-state``            error     no terminal state can be reached from the state
``shadowed-transition``   warning   an unguarded candidate declared before it always wins
``duplicate-transition``  warning   the same rule again (trigger, source, dest, checks)
``unused-trigger``        warning   declared under ``triggers:``, used by no transition
``timeout-only``          info      the state is reached only when a timeout fires
``unknown-guard``         error     a guard the given registry does not have
``unknown-action``        error     an action the given registry does not have
``unknown-field``         warning   a ``when:`` name found in no schema
``nondeterminism``        info      several guarded candidates: declaration order decides
========================  ========  ===================================================

Theory of operation. Reachability walks the edges that can fire (see
:func:`~statewise.analysis.paths.fireable_edges`): every guard is assumed able to say
yes, but a transition behind an unguarded candidate for the same (state, trigger)
never fires there. Timeouts are edges. So is the error fallback (trigger ``error``,
from every non-terminal state to ``error_policy.default_fallback``): an action failing
after a commit really does move the entity there, so the fallback state is reachable
and a counterexample may end with ``error``. A fallback is not a way *out* of a
state for ``trap-state``, though: an entity that can only end in the fallback is stuck.

A machine with no terminal state at all is cyclic by design (a traffic light); there,
``trap-state`` reports only dead ends, states with no edge to another state.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from statewise.analysis.findings import Finding, Severity
from statewise.analysis.graph import Edge, EdgeKind, MachineGraph
from statewise.analysis.paths import breadth_first, checks_of, fireable_edges, walk_back
from statewise.engine.actions import ActionRegistry, action_uses
from statewise.engine.expressions import compile_expression
from statewise.engine.guards import GuardRegistry
from statewise.engine.machine import Machine
from statewise.errors import did_you_mean, format_path

__all__ = [
    "CODES",
    "Facts",
    "analyze",
    "duplicate_transitions",
    "nondeterminism",
    "shadowed_transitions",
    "timeout_only_states",
    "trap_states",
    "unknown_actions",
    "unknown_fields",
    "unknown_guards",
    "unreachable_states",
    "unused_triggers",
]

CODES: Mapping[str, Severity] = MappingProxyType(
    {
        "unreachable-state": Severity.WARNING,
        "trap-state": Severity.ERROR,
        "shadowed-transition": Severity.WARNING,
        "duplicate-transition": Severity.WARNING,
        "unused-trigger": Severity.WARNING,
        "timeout-only": Severity.INFO,
        "unknown-guard": Severity.ERROR,
        "unknown-action": Severity.ERROR,
        "unknown-field": Severity.WARNING,
        "nondeterminism": Severity.INFO,
    }
)
"""Every finding code -> its severity."""

SpecPath = tuple[str | int, ...]
Parents = Mapping[str, tuple[str, str] | None]


@dataclass(frozen=True, slots=True, eq=False)
class Facts:
    """What the graph checks read, worked out once per analysis.

    ``fireable``: each state's edges that can fire. ``reached``: every state reachable
    from the initial one -> (previous state, trigger), breadth first over those edges
    and the error fallback. ``sources``: transition index -> the states it is a
    candidate in (a ``"*"`` expanded).
    """

    machine: Machine
    graph: MachineGraph
    fireable: Mapping[str, tuple[Edge, ...]]
    reached: Parents
    sources: Mapping[int, tuple[str, ...]]

    @classmethod
    def of(cls, machine: Machine) -> Facts:
        graph = MachineGraph.of(machine)
        fireable = fireable_edges(graph)
        sources: dict[int, list[str]] = {}
        for e in _events(graph.edges):
            sources.setdefault(_index(e), []).append(e.source)
        return cls(
            machine,
            graph,
            fireable,
            _reach(machine, graph.initial, fireable),
            {i: tuple(states) for i, states in sources.items()},
        )


def analyze(
    machine: Machine,
    guards: GuardRegistry | None = None,
    actions: ActionRegistry | None = None,
    *,
    ignore: Iterable[str] = (),
) -> list[Finding]:
    """Every finding about ``machine``, sorted by location (file, line, column, spec
    path) then code. ``unknown-guard`` and ``unknown-action`` run only when the
    registry is given. ``ignore`` skips checks by code; an unknown code raises
    ``ValueError`` (a typo must not silently keep a finding, or drop another)."""
    skip = frozenset(ignore)
    unknown = sorted(skip - CODES.keys())
    if unknown:
        raise ValueError(
            f"unknown finding code {unknown[0]!r}{did_you_mean(unknown[0], CODES)}; "
            f"codes: {', '.join(CODES)}"
        )
    facts = Facts.of(machine)
    checks: dict[str, Callable[[], list[Finding]]] = {
        "unreachable-state": lambda: unreachable_states(facts),
        "trap-state": lambda: trap_states(facts),
        "shadowed-transition": lambda: shadowed_transitions(facts),
        "duplicate-transition": lambda: duplicate_transitions(facts),
        "unused-trigger": lambda: unused_triggers(machine),
        "timeout-only": lambda: timeout_only_states(facts),
        "unknown-field": lambda: unknown_fields(machine),
        "nondeterminism": lambda: nondeterminism(facts),
    }
    if guards is not None:
        checks["unknown-guard"] = lambda: unknown_guards(machine, guards)
    if actions is not None:
        checks["unknown-action"] = lambda: unknown_actions(machine, actions)
    findings = [f for code, check in checks.items() if code not in skip for f in check()]
    return sorted(findings, key=_order)


# -- reachability ------------------------------------------------------------------------


def unreachable_states(facts: Facts) -> list[Finding]:
    """States no sequence of events, timeouts and fallbacks reaches from the initial one."""
    graph = facts.graph
    return [
        _finding(
            facts.machine,
            "unreachable-state",
            ("states", i, "name"),
            f"state {node.name!r} cannot be reached from the initial state {graph.initial!r}",
            states=(node.name,),
        )
        for i, node in enumerate(graph.nodes)
        if node.name not in facts.reached
    ]


def trap_states(facts: Facts) -> list[Finding]:
    """Non-terminal states from which no terminal state can be reached (with no terminal
    state in the machine: states with no edge to another state). The counterexample
    leads to the state; ``None`` when nothing does."""
    graph = facts.graph
    exits = {s: {e.dest for e in edges} - {s} for s, edges in facts.fireable.items()}
    terminal = [n.name for n in graph.nodes if n.terminal]
    if terminal:
        into: dict[str, list[str]] = {n.name: [] for n in graph.nodes}
        for state, dests in exits.items():
            for dest in dests:
                into[dest].append(state)
        escape = _closure(terminal, into.__getitem__)
    else:
        escape = {s for s, dests in exits.items() if dests}
    out: list[Finding] = []
    for i, node in enumerate(graph.nodes):
        if node.terminal or node.name in escape:
            continue
        why = "no terminal state can be reached from it" if exits[node.name] else "no way out"
        out.append(
            _finding(
                facts.machine,
                "trap-state",
                ("states", i, "name"),
                f"state {node.name!r} is a trap: {why}",
                counterexample=_path(facts.reached, node.name),
                states=(node.name,),
            )
        )
    return out


def timeout_only_states(facts: Facts) -> list[Finding]:
    """States reached only when a timeout fires: without timeout edges, none leads there."""
    graph, reached = facts.graph, facts.reached
    by_events = _reach(facts.machine, graph.initial, facts.fireable, timeouts=False)
    return [
        _finding(
            facts.machine,
            "timeout-only",
            ("states", i, "name"),
            f"state {node.name!r} is reached only when a timeout fires",
            counterexample=_path(reached, node.name),
            states=(node.name,),
        )
        for i, node in enumerate(graph.nodes)
        if node.name in reached and node.name not in by_events
    ]


# -- the rules themselves ----------------------------------------------------------------


def shadowed_transitions(facts: Facts) -> list[Finding]:
    """Per transition: the sources where an unguarded candidate for the same trigger,
    declared before it, always wins, so it never fires there."""
    machine, sources, reached = facts.machine, facts.sources, facts.reached
    shadowed: dict[int, dict[str, int]] = {}  # index -> {state: the index that wins}
    for state, edges in facts.graph.outgoing.items():
        winner: dict[str, int] = {}
        for e in _events(edges):
            if e.trigger in winner:
                shadowed.setdefault(_index(e), {})[state] = winner[e.trigger]
            elif not e.guarded:
                winner[e.trigger] = _index(e)
    out: list[Finding] = []
    for i, where in sorted(shadowed.items()):
        trigger = machine.definition.transitions[i].trigger
        winners = ", ".join(f"transitions[{j}]" for j in sorted(set(where.values())))
        states = tuple(s for s in sources[i] if s in where)
        scope = "" if len(states) == len(sources[i]) else f" from {_names(states)}"
        out.append(
            _finding(
                machine,
                "shadowed-transition",
                ("transitions", i),
                f"transitions[{i}] ({trigger!r}) can never fire{scope}: it always loses to "
                f"{winners} (no guard, declared first)",
                counterexample=_nearest(reached, states),
                states=states,
                transitions=(i, *sorted(set(where.values()))),
            )
        )
    return out


def duplicate_transitions(facts: Facts) -> list[Finding]:
    """Transitions repeating an earlier one (trigger, dest, guards, ``when``) for some
    of the same sources: where both apply, the later one never fires."""
    machine, sources, reached = facts.machine, facts.sources, facts.reached
    seen: dict[tuple[Any, ...], list[int]] = {}
    out: list[Finding] = []
    for i, t in enumerate(machine.definition.transitions):
        # Guards are all asked: their order does not change the verdict.
        key = (t.trigger, t.dest, frozenset(t.guards) if t.guards else None, t.when)
        earlier = seen.setdefault(key, [])
        earlier.append(i)
        if len(earlier) == 1:
            continue
        mine = sources.get(i, ())
        shared: set[str] = set()
        repeats: list[int] = []
        for j in earlier[:-1]:
            overlap = set(mine).intersection(sources.get(j, ()))
            if overlap:
                repeats.append(j)
                shared |= overlap
        if not repeats:
            continue
        states = tuple(s for s in mine if s in shared)
        scope = "" if len(states) == len(mine) else f" from {_names(states)}"
        others = ", ".join(f"transitions[{j}]" for j in repeats)
        out.append(
            _finding(
                machine,
                "duplicate-transition",
                ("transitions", i),
                f"transitions[{i}] ({t.trigger!r}) repeats {others}{scope}: "
                "same trigger, dest, guards and when",
                counterexample=_nearest(reached, states),
                states=states,
                transitions=(i, *repeats),
            )
        )
    return out


def nondeterminism(facts: Facts) -> list[Finding]:
    """(state, trigger) pairs with two or more guarded candidates before any unguarded
    one: when several would pass, declaration order decides. One finding per list of
    candidates, naming every state that has it."""
    groups: dict[tuple[int, ...], list[str]] = {}
    for state, edges in facts.graph.outgoing.items():
        guarded: dict[str, list[int]] = {}
        closed: set[str] = set()
        for e in _events(edges):
            if e.trigger in closed:
                continue
            if e.guarded:
                guarded.setdefault(e.trigger, []).append(_index(e))
            else:
                closed.add(e.trigger)
        for found in guarded.values():
            if len(found) > 1:
                groups.setdefault(tuple(found), []).append(state)
    machine, reached = facts.machine, facts.reached
    transitions = machine.definition.transitions
    out: list[Finding] = []
    for indices, states in groups.items():
        trigger = transitions[indices[0]].trigger
        order = ", then ".join(
            f"transitions[{i}] ({' and '.join(checks_of(transitions[i]))})" for i in indices
        )
        out.append(
            _finding(
                machine,
                "nondeterminism",
                ("transitions", indices[0]),
                f"{trigger!r} in {_names(states)}: {len(indices)} guarded transitions may "
                f"pass together; declaration order decides: {order}",
                counterexample=_nearest(reached, states),
                states=tuple(states),
                transitions=indices,
            )
        )
    return out


def unused_triggers(machine: Machine) -> list[Finding]:
    """Triggers declared under ``triggers:`` that no transition uses."""
    used = {t.trigger for t in machine.definition.transitions}
    return [
        _finding(
            machine,
            "unused-trigger",
            ("triggers", name),
            f"trigger {name!r} is declared under triggers: but no transition uses it"
            f"{did_you_mean(name, used)}",
            key=True,
        )
        for name in machine.definition.triggers
        if name not in used
    ]


# -- names -------------------------------------------------------------------------------


def unknown_guards(machine: Machine, registry: GuardRegistry) -> list[Finding]:
    """One finding per use of a guard ``registry`` does not have."""
    known = registry.names
    return [
        _finding(
            machine,
            "unknown-guard",
            ("transitions", i, "guards", k),
            f"guard {call.name!r} is not registered{did_you_mean(call.name, known)}",
            transitions=(i,),
        )
        for i, t in enumerate(machine.definition.transitions)
        for k, call in enumerate(t.guards)
        if not registry.has(call.name)
    ]


def unknown_actions(machine: Machine, registry: ActionRegistry) -> list[Finding]:
    """One finding per use of an action ``registry`` does not have."""
    known = registry.names
    return [
        _finding(
            machine,
            "unknown-action",
            path,
            f"action {call.name!r} is not registered{did_you_mean(call.name, known)}",
            transitions=(path[1],) if path[0] == "transitions" and isinstance(path[1], int) else (),
        )
        for path, call in action_uses(machine.definition)
        if not registry.has(call.name)
    ]


# Macros that bind a variable: ``items.all(x, x > 0)`` uses ``x``, which no schema has.
_BINDER = re.compile(r"\.\s*(?:all|exists_one|exists|map|filter)\s*\(\s*([A-Za-z_]\w*)")
_RESERVED = frozenset({"event", "state"})


def unknown_fields(machine: Machine) -> list[Finding]:
    """Names a ``when:`` expression reads that neither ``context_schema``'s properties
    nor its trigger's ``payload_schema`` name (only for a machine whose
    ``context_schema`` lists ``properties``: without one anything may be there)."""
    definition = machine.definition
    context = _fields(definition.context_schema)
    if context is None:
        return []
    out: list[Finding] = []
    for i, t in enumerate(definition.transitions):
        if t.when is None:
            continue
        spec = definition.triggers.get(t.trigger)
        payload = _fields(None if spec is None else spec.payload_schema) or frozenset()
        known = context | payload | _RESERVED
        bound = set(_BINDER.findall(t.when))
        for name in compile_expression(t.when).names:
            if name in known or name in bound:
                continue
            where = (
                f"neither context_schema nor the payload_schema of {t.trigger!r} lists"
                if payload
                else "context_schema does not list"
            )
            out.append(
                _finding(
                    machine,
                    "unknown-field",
                    ("transitions", i, "when"),
                    f"when: uses {name!r}, which {where}{did_you_mean(name, known - _RESERVED)}",
                    transitions=(i,),
                )
            )
    return out


# -- helpers -----------------------------------------------------------------------------


def _closure(starts: Iterable[str], successors: Callable[[str], Iterable[str]]) -> set[str]:
    """Every state reachable from any of ``starts``, themselves included."""
    seen = set(starts)
    queue = list(seen)
    for state in queue:  # the list grows as we go: a queue without popping
        for dest in successors(state):
            if dest not in seen:
                seen.add(dest)
                queue.append(dest)
    return seen


def _reach(
    machine: Machine,
    initial: str,
    fireable: Mapping[str, tuple[Edge, ...]],
    *,
    timeouts: bool = True,
) -> Parents:
    """Breadth-first from ``initial`` over edges that can fire, then the fallback;
    each state -> (previous state, trigger)."""
    fallbacks = machine.rules.fallbacks

    def successors(state: str) -> Iterator[tuple[str, str]]:
        for e in fireable[state]:
            if timeouts or e.kind is not EdgeKind.TIMEOUT:
                yield e.dest, e.trigger
        fallback = fallbacks.get(state)
        if fallback is not None and fallback.dest is not None:
            yield fallback.dest, fallback.trigger

    return breadth_first(initial, successors)


def _path(reached: Parents, state: str) -> tuple[str, ...] | None:
    return tuple(walk_back(reached, state)) if state in reached else None


def _nearest(reached: Parents, states: Iterable[str]) -> tuple[str, ...] | None:
    """The shortest counterexample leading to any of ``states`` (the first on a tie)."""
    paths = [p for p in (_path(reached, s) for s in states) if p is not None]
    return min(paths, key=len, default=None)


def _events(edges: Iterable[Edge]) -> Iterator[Edge]:
    return (e for e in edges if e.kind is not EdgeKind.TIMEOUT)


def _index(edge: Edge) -> int:
    assert edge.index is not None  # only timeout edges have none
    return edge.index


def _fields(schema: Mapping[str, Any] | None) -> frozenset[str] | None:
    """The field names an object schema lists (``properties`` and ``required``), or
    ``None`` when it lists no ``properties``."""
    if schema is None:
        return None
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return None
    required = schema.get("required")
    extra = (
        [r for r in required if isinstance(r, str)] if isinstance(required, list | tuple) else []
    )
    return frozenset((*properties, *extra))


def _names(states: Collection[str]) -> str:
    return ", ".join(states)


def _finding(
    machine: Machine,
    code: str,
    path: SpecPath,
    message: str,
    *,
    key: bool = False,
    counterexample: tuple[str, ...] | None = None,
    states: tuple[str, ...] = (),
    transitions: tuple[int, ...] = (),
) -> Finding:
    """A finding located through ``machine.source`` (path only for a machine from code)."""
    file = line = column = None
    where = format_path(path)
    if machine.source is not None:
        problem = machine.source.problem(path, message, key=key)
        file, line, column, where = problem.file, problem.line, problem.column, problem.path
    return Finding(
        code,
        CODES[code],
        message,
        where,
        file,
        line,
        column,
        counterexample,
        states,
        transitions,
    )


_NUMBER = re.compile(r"(\d+)")


def _order(f: Finding) -> tuple[Any, ...]:
    # Indices compare as numbers: states[2] before states[10].
    path = [int(p) if k % 2 else p for k, p in enumerate(_NUMBER.split(f.path))]
    missing = f.line is None
    return (f.file or "", missing, f.line or 0, f.column or 0, path, f.code, f.message)
