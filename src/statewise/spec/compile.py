"""Plain spec data -> :class:`MachineDefinition`, tolerant of the parts that are bad.

The loader reports schema problems and semantic problems together. To run the
semantic checks on a spec that also has schema problems, this compiler keeps every
state and transition it can make sense of and drops the rest, recording where each
kept item came from and whether anything it dropped could make a semantic check
speak wrongly (a misspelt ``type: intial`` must not also report "no initial state").
On a schema-valid spec nothing is dropped and the record is trivial.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from statewise.model.definition import (
    WILDCARD,
    ErrorPolicy,
    MachineDefinition,
    State,
    StateType,
    Timeout,
    Transition,
)
from statewise.model.frozen import EMPTY, deep_freeze

__all__ = ["Compiled", "compile_spec"]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_TYPES = {t.value: t for t in StateType}


@dataclass(slots=True)
class Compiled:
    """A definition, and how its items map back to the document."""

    definition: MachineDefinition
    state_origin: list[int] = field(default_factory=list)
    transition_origin: list[int] = field(default_factory=list)
    dropped_states: bool = False
    uncertain_types: bool = False

    def doc_path(self, path: tuple[str | int, ...]) -> tuple[str | int, ...]:
        """Translate a definition path (``("states", 2, ...)``) to the document's."""
        if len(path) >= 2 and isinstance(path[1], int):
            origin = {"states": self.state_origin, "transitions": self.transition_origin}.get(
                str(path[0])
            )
            if origin is not None:
                return (path[0], origin[path[1]], *path[2:])
        return path


def _is_ident(value: object) -> bool:
    return isinstance(value, str) and _IDENT.match(value) is not None


def _names(value: object) -> tuple[str, ...] | None:
    """A name or list of names as a tuple; ``None`` when it is malformed."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,) if _IDENT.match(value) else None
    if isinstance(value, list) and all(_is_ident(v) for v in value):
        return tuple(value)
    return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _metadata(value: object) -> Any:
    return deep_freeze(value) if isinstance(value, Mapping) and value else EMPTY


def compile_spec(data: Any) -> Compiled:
    """Compile what can be compiled of ``data``; never raises for bad input."""
    root = data if isinstance(data, Mapping) else {}
    meta = root.get("meta")
    meta = meta if isinstance(meta, Mapping) else {}
    policy = root.get("error_policy")
    policy = policy if isinstance(policy, Mapping) else {}
    out = Compiled(MachineDefinition(name="", states=()))
    states = _states(root.get("states"), out)
    transitions = _transitions(root.get("transitions"), out)
    fallback = policy.get("default_fallback")
    retries = policy.get("retry_attempts")
    strict = meta.get("strict_mode")
    version = meta.get("version")
    name = meta.get("machine_name")
    out.definition = MachineDefinition(
        name=name if isinstance(name, str) else "",
        states=tuple(states),
        transitions=tuple(transitions),
        version=version if isinstance(version, str) else None,
        strict_mode=strict if isinstance(strict, bool) else True,
        description=_text(meta.get("description")),
        error_policy=ErrorPolicy(
            default_fallback=fallback if _is_ident(fallback) else None,
            retry_attempts=retries if type(retries) is int and retries >= 0 else 0,
        ),
        metadata=_metadata(meta.get("metadata")),
    )
    return out


def _states(items: object, out: Compiled) -> list[State]:
    states: list[State] = []
    if not isinstance(items, list):
        out.dropped_states = True
        return states
    for i, item in enumerate(items):
        if not isinstance(item, Mapping) or not _is_ident(item.get("name")):
            out.dropped_states = True
            continue
        declared = item.get("type", "stable")
        kind = _TYPES.get(declared) if isinstance(declared, str) else None
        if kind is None:
            out.uncertain_types = True
            kind = StateType.STABLE
        states.append(
            State(
                name=item["name"],
                type=kind,
                description=_text(item.get("description")),
                on_enter=_names(item.get("on_enter")) or (),
                on_exit=_names(item.get("on_exit")) or (),
                timeout=_timeout(item.get("timeout")),
                metadata=_metadata(item.get("metadata")),
            )
        )
        out.state_origin.append(i)
    return states


def _timeout(value: object) -> Timeout | None:
    if not isinstance(value, Mapping):
        return None
    seconds = value.get("seconds")
    dest = value.get("destination")
    if type(seconds) not in (int, float) or not _is_ident(dest):
        return None
    return Timeout(float(seconds), dest)  # type: ignore[arg-type]


def _transitions(items: object, out: Compiled) -> list[Transition]:
    transitions: list[Transition] = []
    if not isinstance(items, list):
        return transitions
    for i, item in enumerate(items):
        if not isinstance(item, Mapping) or not _is_ident(item.get("trigger")):
            continue
        source = item.get("source")
        sources = (WILDCARD,) if source == WILDCARD else _names(source)
        dest = item.get("dest")
        if not sources or (dest is not None and not _is_ident(dest)):
            continue  # a transition with an unusable source or dest says nothing checkable
        transitions.append(
            Transition(
                trigger=item["trigger"],
                source=sources,
                dest=dest,
                guards=_names(item.get("guards")) or (),
                actions=_names(item.get("actions")) or (),
                description=_text(item.get("description")),
                metadata=_metadata(item.get("metadata")),
            )
        )
        out.transition_origin.append(i)
    return transitions
