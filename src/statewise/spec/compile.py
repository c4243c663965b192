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
from typing import Any, TypeVar, cast

from statewise.model.definition import (
    DEFAULT_BACKOFF_SECONDS,
    DEFAULT_MAX_BACKOFF_SECONDS,
    WILDCARD,
    ActionCall,
    ErrorPolicy,
    GuardCall,
    MachineDefinition,
    Retry,
    State,
    StateType,
    Timeout,
    Transition,
    TriggerSpec,
)
from statewise.model.frozen import EMPTY, FrozenDict, deep_freeze
from statewise.spec.durations import parse_duration

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
    problems: list[tuple[tuple[str | int, ...], str, str | None, str | None]] = field(
        default_factory=list
    )
    """What only compiling finds (a duration that does not parse): path, message,
    expected, got; paths are the document's."""
    shared: dict[Any, Any] = field(default_factory=dict, repr=False)
    """Equal calls and call tuples, built once (see ``_share``)."""

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


def _params(value: object) -> FrozenDict[str, Any]:
    return deep_freeze(value) if isinstance(value, Mapping) and value else EMPTY


def _retry(value: object) -> Retry | None:
    if not isinstance(value, Mapping):
        return None
    attempts = value.get("attempts")
    backoff = value.get("backoff_seconds", DEFAULT_BACKOFF_SECONDS)
    ceiling = value.get("max_backoff_seconds", DEFAULT_MAX_BACKOFF_SECONDS)
    if type(attempts) is not int or attempts < 0 or not (_seconds(backoff) and _seconds(ceiling)):
        return None
    return Retry(attempts, float(backoff), float(ceiling))


def _seconds(value: object) -> bool:
    return type(value) in (int, float) and value >= 0  # type: ignore[operator]


def _calls(value: object) -> list[Mapping[str, Any] | str]:
    """The usable entries of a name / entry / list-of-those field (bad ones dropped)."""
    items = value if isinstance(value, list) else [] if value is None else [value]
    out: list[Mapping[str, Any] | str] = []
    for item in items:
        usable = _is_ident(item) or (isinstance(item, Mapping) and _is_ident(item.get("name")))
        if usable:
            out.append(cast(Mapping[str, Any] | str, item))
    return out


def _actions(value: object, shared: dict[Any, Any]) -> tuple[ActionCall, ...]:
    calls = tuple(
        ActionCall(item)
        if isinstance(item, str)
        else ActionCall(item["name"], _params(item.get("params")), _retry(item.get("retry")))
        for item in _calls(value)
    )
    return _share(calls, shared)


def _guards(value: object, shared: dict[Any, Any]) -> tuple[GuardCall, ...]:
    calls = tuple(
        GuardCall(item)
        if isinstance(item, str)
        else GuardCall(item["name"], _params(item.get("params")))
        for item in _calls(value)
    )
    return _share(calls, shared)


C = TypeVar("C", ActionCall, GuardCall)


def _share(calls: tuple[C, ...], shared: dict[Any, Any]) -> tuple[C, ...]:
    """``calls`` with every call, and the tuple itself, replaced by an equal one seen
    before: a large spec names the same few actions thousands of times, and frozen
    values can be shared (this keeps a loaded machine's memory close to strings')."""
    if not calls:
        return ()
    calls = tuple(shared.setdefault(c, c) for c in calls)
    return cast(tuple[C, ...], shared.setdefault(calls, calls))


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
    backoff = policy.get("backoff_seconds", DEFAULT_BACKOFF_SECONDS)
    ceiling = policy.get("max_backoff_seconds", DEFAULT_MAX_BACKOFF_SECONDS)
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
            backoff_seconds=float(backoff) if _seconds(backoff) else DEFAULT_BACKOFF_SECONDS,
            max_backoff_seconds=float(ceiling)
            if _seconds(ceiling)
            else DEFAULT_MAX_BACKOFF_SECONDS,
        ),
        metadata=_metadata(meta.get("metadata")),
        triggers=_triggers(root.get("triggers")),
        context_schema=_schema(root.get("context_schema")),
        migrate=_migrate(root.get("migrate")),
    )
    return out


def _schema(value: object) -> Any:
    # A JSON Schema may be a boolean; FrozenDict holds only mappings, so true/false
    # are stored as their equivalent objects ({} and {"not": {}}).
    if value is True:
        return EMPTY
    if value is False:
        return deep_freeze({"not": {}})
    return deep_freeze(value) if isinstance(value, Mapping) else None


def _migrate(value: object) -> FrozenDict[str, str]:
    if not isinstance(value, Mapping):
        return EMPTY
    return FrozenDict({k: v for k, v in value.items() if _is_ident(k) and _is_ident(v)})


def _triggers(value: object) -> FrozenDict[str, TriggerSpec]:
    if not isinstance(value, Mapping):
        return EMPTY
    return FrozenDict(
        {
            name: TriggerSpec(
                name,
                _schema(item.get("payload_schema")),
                _text(item.get("description")),
            )
            for name, item in value.items()
            if _is_ident(name) and isinstance(item, Mapping)
        }
    )


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
                on_enter=_actions(item.get("on_enter"), out.shared),
                on_exit=_actions(item.get("on_exit"), out.shared),
                timeout=_timeout(item.get("timeout"), ("states", i, "timeout"), out),
                renamed_from=_names(item.get("renamed_from")) or (),
                metadata=_metadata(item.get("metadata")),
            )
        )
        out.state_origin.append(i)
    return states


def _timeout(value: object, path: tuple[str | int, ...], out: Compiled) -> Timeout | None:
    if not isinstance(value, Mapping):
        return None
    seconds = value.get("seconds")
    duration = value.get("duration")
    dest = value.get("destination")
    if isinstance(duration, str) and "seconds" not in value:
        try:
            seconds = parse_duration(duration)
        except ValueError as exc:
            out.problems.append(((*path, "duration"), str(exc), "an ISO 8601 duration", None))
            return None
        if seconds <= 0:
            out.problems.append(
                ((*path, "duration"), "a timeout must be longer than zero", "> 0", repr(duration))
            )
            return None
    if type(seconds) not in (int, float) or not _is_ident(dest):
        return None
    actions = _actions(value.get("actions"), out.shared)
    return Timeout(float(seconds), dest, actions)  # type: ignore[arg-type]


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
        when = item.get("when")
        transitions.append(
            Transition(
                trigger=item["trigger"],
                source=sources,
                dest=dest,
                guards=_guards(item.get("guards"), out.shared),
                actions=_actions(item.get("actions"), out.shared),
                description=_text(item.get("description")),
                metadata=_metadata(item.get("metadata")),
                when=when if isinstance(when, str) and when else None,
            )
        )
        out.transition_origin.append(i)
    return transitions
