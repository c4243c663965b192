"""Semantic checks on a machine definition: what a schema cannot say.

``check_definition`` returns every issue at once, each with a structured path into
the spec (``("transitions", 3, "dest")``) so a loader can attach file positions.
The checks: exactly one initial state; unique state names; every reference (source,
dest, timeout destination, fallback) names a defined state, with "did you mean"
hints; no transition, and no timeout, leaves a terminal state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from statewise.errors import did_you_mean, format_path
from statewise.model.definition import MachineDefinition, StateType

__all__ = ["Issue", "check_definition"]

PathPart = str | int


@dataclass(frozen=True, slots=True)
class Issue:
    """A semantic problem. ``code`` names the check (stable; loaders filter on it)."""

    code: str
    path: tuple[PathPart, ...]
    message: str
    expected: str | None = None
    got: str | None = None


def check_definition(defn: MachineDefinition) -> list[Issue]:
    """Every semantic problem of ``defn``, in document order."""
    issues = [*_state_issues(defn), *_reference_issues(defn)]
    issues.sort(key=lambda issue: _order_key(issue.path))
    return issues


def _order_key(path: tuple[PathPart, ...]) -> tuple[tuple[int, int | str], ...]:
    section = {"meta": 0, "states": 1, "transitions": 2, "error_policy": 3, "migrate": 4}
    key: list[tuple[int, int | str]] = []
    for i, part in enumerate(path):
        if i == 0 and isinstance(part, str):
            key.append((0, section.get(part, 9)))
        elif isinstance(part, int):
            key.append((0, part))
        else:
            key.append((1, part))
    return tuple(key)


def _state_issues(defn: MachineDefinition) -> Iterator[Issue]:
    first_seen: dict[str, int] = {}
    initial: list[int] = []
    for i, state in enumerate(defn.states):
        if state.name in first_seen:
            yield Issue(
                "duplicate-state",
                ("states", i, "name"),
                f"duplicate state name {state.name!r} (first defined at "
                f"states[{first_seen[state.name]}])",
                expected="a state name used once",
                got=repr(state.name),
            )
        else:
            first_seen[state.name] = i
        if state.type is StateType.INITIAL:
            initial.append(i)
        if state.is_terminal and state.timeout is not None:
            yield Issue(
                "terminal-timeout",
                ("states", i, "timeout"),
                f"terminal state {state.name!r} cannot have a timeout: nothing "
                "leaves a terminal state",
                expected="no timeout",
                got="a timeout",
            )
    if not initial:
        yield Issue(
            "initial-state",
            ("states",),
            "no initial state: exactly one state needs type: initial",
            expected="exactly one initial state",
            got="none",
        )
    for i in initial[1:]:
        first = defn.states[initial[0]].name
        yield Issue(
            "initial-state",
            ("states", i, "type"),
            f"more than one initial state: {first!r} (states[{initial[0]}]) is "
            f"initial already, and so is {defn.states[i].name!r}",
            expected="exactly one initial state",
            got=f"{len(initial)}",
        )


def _reference_issues(defn: MachineDefinition) -> Iterator[Issue]:
    names = [s.name for s in defn.states]
    types = {s.name: s.type for s in defn.states}

    def unknown(path: tuple[PathPart, ...], role: str, name: str) -> Issue:
        return Issue(
            "unknown-state",
            path,
            f"{role} {name!r} is not a defined state{did_you_mean(name, names)}",
            expected="a defined state name",
            got=repr(name),
        )

    for i, state in enumerate(defn.states):
        if state.timeout is not None and state.timeout.destination not in types:
            yield unknown(
                ("states", i, "timeout", "destination"),
                "timeout destination",
                state.timeout.destination,
            )
    for i, t in enumerate(defn.transitions):
        if not t.is_wildcard:
            for k, source in enumerate(t.source):
                path: tuple[PathPart, ...] = ("transitions", i, "source", k)
                if source not in types:
                    yield unknown(path, "source", source)
                elif types[source] is StateType.TERMINAL:
                    yield Issue(
                        "terminal-source",
                        path,
                        f"source {source!r} is a terminal state: no transition may leave it",
                        expected="a non-terminal state",
                        got=repr(source),
                    )
                if source in t.source[:k]:
                    yield Issue(
                        "duplicate-source",
                        path,
                        f"source {source!r} is listed twice",
                        expected="each source once",
                        got=repr(source),
                    )
        if t.dest is not None and t.dest not in types:
            yield unknown(("transitions", i, "dest"), "dest", t.dest)
    fallback = defn.error_policy.default_fallback
    if fallback is not None and fallback not in types:
        yield unknown(("error_policy", "default_fallback"), "default_fallback", fallback)
    yield from _alias_issues(defn, types, unknown)


def _alias_issues(
    defn: MachineDefinition,
    types: dict[str, StateType],
    unknown: Callable[[tuple[PathPart, ...], str, str], Issue],
) -> Iterator[Issue]:
    """``migrate`` and ``renamed_from``: old names must not be states of this version,
    must lead to defined states, and must not be claimed twice."""
    claimed: dict[str, tuple[str, tuple[PathPart, ...]]] = {}
    uses: list[tuple[str, str, tuple[PathPart, ...]]] = [
        (old, new, ("migrate", old)) for old, new in defn.migrate.items()
    ]
    for i, state in enumerate(defn.states):
        for k, old in enumerate(state.renamed_from):
            uses.append((old, state.name, ("states", i, "renamed_from", k)))
    for old, new, path in uses:
        if old in types:
            yield Issue(
                "alias-is-state",
                path,
                f"{old!r} is a state of this version: it cannot also be an old name",
                expected="a name no state has now",
                got=repr(old),
            )
        elif new not in types:
            yield unknown(path, "migrate target", new)
        elif old in claimed and claimed[old][0] != new:
            first, where = claimed[old]
            yield Issue(
                "alias-twice",
                path,
                f"old state {old!r} is mapped to {new!r} here and to {first!r} at "
                f"{format_path(where)}",
                expected="one new state per old name",
                got=repr(new),
            )
        else:
            claimed.setdefault(old, (new, path))
