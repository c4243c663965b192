"""The immutable machine definition: states, transitions, timeouts, error policy.

A definition is plain data, apart from any current state and from any bound guard
or action functions. Every class is a frozen, slotted, hashable dataclass;
collections are tuples and :class:`~statewise.model.frozen.FrozenDict`. ``to_dict``
gives back a spec that loads into an equal definition.

Guards and actions are named in a spec and bound to Python functions later; here
they are :class:`GuardCall` and :class:`ActionCall` values: a name plus the
parameters the spec passes. Programmatic callers may write plain names
(``actions=("notify",)``); they are stored as calls with no parameters.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from statewise.model.frozen import EMPTY, FrozenDict, deep_freeze, thaw

__all__ = [
    "DEFAULT_BACKOFF_SECONDS",
    "DEFAULT_MAX_BACKOFF_SECONDS",
    "ERROR_TRIGGER",
    "TIMEOUT_TRIGGER",
    "WILDCARD",
    "ActionCall",
    "ErrorPolicy",
    "GuardCall",
    "MachineDefinition",
    "State",
    "StateType",
    "Timeout",
    "Transition",
    "TriggerSpec",
    "action_calls",
    "guard_calls",
]

WILDCARD = "*"
"""As a transition's source: every non-terminal state."""

TIMEOUT_TRIGGER = "timeout"
"""The trigger of the result a state's timeout produces."""

ERROR_TRIGGER = "error"
"""The trigger of the result that moves an entity to ``error_policy.default_fallback``."""

DEFAULT_BACKOFF_SECONDS = 0.5
DEFAULT_MAX_BACKOFF_SECONDS = 30.0


class StateType(enum.Enum):
    INITIAL = "initial"
    STABLE = "stable"
    TERMINAL = "terminal"
    ERROR = "error"


def _frozen_params(obj: object) -> None:
    params = getattr(obj, "params")  # noqa: B009 - shared by two slotted classes
    if not isinstance(params, FrozenDict) or params:
        object.__setattr__(obj, "params", deep_freeze(params))


@dataclass(frozen=True, slots=True)
class Retry:
    """Run a failing action again, up to ``attempts`` more times after the first.

    The wait before retry *k* (1-based) is ``backoff_seconds * 2 ** (k - 1)``, capped at
    ``max_backoff_seconds``, then jittered by the executor.
    """

    attempts: int
    backoff_seconds: float = DEFAULT_BACKOFF_SECONDS
    max_backoff_seconds: float = DEFAULT_MAX_BACKOFF_SECONDS

    def __post_init__(self) -> None:
        if type(self.attempts) is not int or self.attempts < 0:
            raise ValueError(f"Retry.attempts must be an int >= 0, got {self.attempts!r}")
        if self.backoff_seconds < 0 or self.max_backoff_seconds < 0:
            raise ValueError("Retry backoff times must be >= 0")

    def delay(self, retry: int) -> float:
        """The un-jittered wait before retry number ``retry`` (1-based)."""
        return float(min(self.max_backoff_seconds, self.backoff_seconds * 2 ** (retry - 1)))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"attempts": self.attempts}
        if self.backoff_seconds != DEFAULT_BACKOFF_SECONDS:
            out["backoff_seconds"] = self.backoff_seconds
        if self.max_backoff_seconds != DEFAULT_MAX_BACKOFF_SECONDS:
            out["max_backoff_seconds"] = self.max_backoff_seconds
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Retry:
        return cls(
            int(data["attempts"]),
            float(data.get("backoff_seconds", DEFAULT_BACKOFF_SECONDS)),
            float(data.get("max_backoff_seconds", DEFAULT_MAX_BACKOFF_SECONDS)),
        )


@dataclass(frozen=True, slots=True)
class ActionCall:
    """An action named by the spec, with the parameters it is called with.

    The executor calls ``fn(ctx, **params)``. ``retry``, when set, replaces the
    machine's ``error_policy`` retries for this call.
    """

    name: str
    params: Mapping[str, Any] = field(default=EMPTY)
    retry: Retry | None = None

    def __post_init__(self) -> None:
        _frozen_params(self)

    def to_spec(self) -> str | dict[str, Any]:
        """The spec form: the bare name when there is nothing else to say."""
        if not self.params and self.retry is None:
            return self.name
        out: dict[str, Any] = {"name": self.name}
        if self.params:
            out["params"] = thaw(self.params)
        if self.retry is not None:
            out["retry"] = self.retry.to_dict()
        return out

    @classmethod
    def from_spec(cls, value: str | Mapping[str, Any] | ActionCall) -> ActionCall:
        if isinstance(value, ActionCall):
            return value
        if isinstance(value, str):
            return cls(value)
        retry = value.get("retry")
        return cls(
            value["name"],
            deep_freeze(value.get("params") or EMPTY),
            None if retry is None else Retry.from_dict(retry),
        )

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class GuardCall:
    """A guard named by the spec, with the parameters it is called with:
    ``fn(ctx, **params)`` (or ``fn(context, event, **params)``)."""

    name: str
    params: Mapping[str, Any] = field(default=EMPTY)

    def __post_init__(self) -> None:
        _frozen_params(self)

    def to_spec(self) -> str | dict[str, Any]:
        if not self.params:
            return self.name
        return {"name": self.name, "params": thaw(self.params)}

    @classmethod
    def from_spec(cls, value: str | Mapping[str, Any] | GuardCall) -> GuardCall:
        if isinstance(value, GuardCall):
            return value
        if isinstance(value, str):
            return cls(value)
        return cls(value["name"], deep_freeze(value.get("params") or EMPTY))

    def __str__(self) -> str:
        return self.name


def action_calls(values: Iterable[str | Mapping[str, Any] | ActionCall]) -> tuple[ActionCall, ...]:
    """Names, spec dicts or calls -> a tuple of :class:`ActionCall`."""
    return tuple(ActionCall.from_spec(v) for v in values)


def guard_calls(values: Iterable[str | Mapping[str, Any] | GuardCall]) -> tuple[GuardCall, ...]:
    """Names, spec dicts or calls -> a tuple of :class:`GuardCall`."""
    return tuple(GuardCall.from_spec(v) for v in values)


def _coerce_actions(obj: object, *names: str) -> None:
    for name in names:
        values = getattr(obj, name)
        if type(values) is not tuple or not all(type(v) is ActionCall for v in values):
            object.__setattr__(obj, name, action_calls(values))


@dataclass(frozen=True, slots=True)
class Timeout:
    """Leave the state for ``destination`` once ``seconds`` have passed since entering it,
    running ``actions`` between the state's exit and the destination's enter actions."""

    seconds: float
    destination: str
    actions: tuple[ActionCall, ...] = ()

    def __post_init__(self) -> None:
        _coerce_actions(self, "actions")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"seconds": self.seconds, "destination": self.destination}
        if self.actions:
            out["actions"] = [a.to_spec() for a in self.actions]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Timeout:
        return cls(
            float(data["seconds"]), data["destination"], action_calls(data.get("actions", ()))
        )


@dataclass(frozen=True, slots=True)
class State:
    name: str
    type: StateType = StateType.STABLE
    description: str | None = None
    on_enter: tuple[ActionCall, ...] = ()
    on_exit: tuple[ActionCall, ...] = ()
    timeout: Timeout | None = None
    metadata: FrozenDict[str, Any] = field(default=EMPTY)
    renamed_from: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Accept plain dicts and names from programmatic callers but store them frozen.
        if not isinstance(self.metadata, FrozenDict) or self.metadata:
            object.__setattr__(self, "metadata", deep_freeze(self.metadata))
        _coerce_actions(self, "on_enter", "on_exit")

    @property
    def is_initial(self) -> bool:
        return self.type is StateType.INITIAL

    @property
    def is_terminal(self) -> bool:
        return self.type is StateType.TERMINAL

    @property
    def is_error(self) -> bool:
        return self.type is StateType.ERROR

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.type is not StateType.STABLE:
            out["type"] = self.type.value
        if self.description is not None:
            out["description"] = self.description
        if self.on_enter:
            out["on_enter"] = [a.to_spec() for a in self.on_enter]
        if self.on_exit:
            out["on_exit"] = [a.to_spec() for a in self.on_exit]
        if self.timeout is not None:
            out["timeout"] = self.timeout.to_dict()
        if self.metadata:
            out["metadata"] = thaw(self.metadata)
        if self.renamed_from:
            out["renamed_from"] = list(self.renamed_from)
        return out


@dataclass(frozen=True, slots=True)
class Transition:
    """``trigger`` takes the machine from any of ``source`` to ``dest``.

    ``source`` is a tuple of state names, or ``("*",)`` for every non-terminal state.
    ``dest`` is ``None`` for an internal transition: its actions run, the state is
    neither exited nor entered. ``when`` is an expression guard (CEL), checked before
    ``guards``.
    """

    trigger: str
    source: tuple[str, ...]
    dest: str | None = None
    guards: tuple[GuardCall, ...] = ()
    actions: tuple[ActionCall, ...] = ()
    description: str | None = None
    metadata: FrozenDict[str, Any] = field(default=EMPTY)
    when: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.metadata, FrozenDict) or self.metadata:
            object.__setattr__(self, "metadata", deep_freeze(self.metadata))
        object.__setattr__(self, "source", tuple(self.source))
        guards = self.guards
        if type(guards) is not tuple or not all(type(g) is GuardCall for g in guards):
            object.__setattr__(self, "guards", guard_calls(guards))
        _coerce_actions(self, "actions")

    @property
    def guarded(self) -> bool:
        """Whether anything (a guard or a ``when`` expression) can say no."""
        return bool(self.guards) or self.when is not None

    @property
    def is_wildcard(self) -> bool:
        return self.source == (WILDCARD,)

    @property
    def is_internal(self) -> bool:
        return self.dest is None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "trigger": self.trigger,
            "source": self.source[0] if len(self.source) == 1 else list(self.source),
        }
        if self.dest is not None:
            out["dest"] = self.dest
        if self.when is not None:
            out["when"] = self.when
        if self.guards:
            out["guards"] = [g.to_spec() for g in self.guards]
        if self.actions:
            out["actions"] = [a.to_spec() for a in self.actions]
        if self.description is not None:
            out["description"] = self.description
        if self.metadata:
            out["metadata"] = thaw(self.metadata)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Transition:
        """The inverse of :meth:`to_dict` (no validation: for trusted, serialized data)."""
        source = data["source"]
        return cls(
            trigger=data["trigger"],
            source=(source,) if isinstance(source, str) else tuple(source),
            dest=data.get("dest"),
            guards=guard_calls(data.get("guards", ())),
            actions=action_calls(data.get("actions", ())),
            description=data.get("description"),
            metadata=deep_freeze(data.get("metadata") or EMPTY),
            when=data.get("when"),
        )


@dataclass(frozen=True, slots=True)
class TriggerSpec:
    """A trigger declared under ``triggers:``: what its events' payloads must look like."""

    name: str
    payload_schema: FrozenDict[str, Any] | None = None
    description: str | None = None

    def __post_init__(self) -> None:
        if self.payload_schema is not None and not isinstance(self.payload_schema, FrozenDict):
            object.__setattr__(self, "payload_schema", deep_freeze(self.payload_schema))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.payload_schema is not None:
            out["payload_schema"] = thaw(self.payload_schema)
        if self.description is not None:
            out["description"] = self.description
        return out


@dataclass(frozen=True, slots=True)
class ErrorPolicy:
    """What happens when an action keeps failing after the commit.

    ``retry_attempts``: retries after the first attempt (unless an action has its
    own ``retry``), waiting ``backoff_seconds`` doubled each time, capped at
    ``max_backoff_seconds``. ``default_fallback``: the state an entity is moved to
    (trigger ``error``) when an action still fails.
    """

    default_fallback: str | None = None
    retry_attempts: int = 0
    backoff_seconds: float = DEFAULT_BACKOFF_SECONDS
    max_backoff_seconds: float = DEFAULT_MAX_BACKOFF_SECONDS

    @property
    def retry(self) -> Retry:
        """The retry policy of actions with no ``retry`` of their own."""
        return Retry(self.retry_attempts, self.backoff_seconds, self.max_backoff_seconds)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.default_fallback is not None:
            out["default_fallback"] = self.default_fallback
        if self.retry_attempts:
            out["retry_attempts"] = self.retry_attempts
        if self.backoff_seconds != DEFAULT_BACKOFF_SECONDS:
            out["backoff_seconds"] = self.backoff_seconds
        if self.max_backoff_seconds != DEFAULT_MAX_BACKOFF_SECONDS:
            out["max_backoff_seconds"] = self.max_backoff_seconds
        return out


@dataclass(frozen=True, slots=True)
class MachineDefinition:
    """A whole machine, in declaration order. Checked by ``model.checks``."""

    name: str
    states: tuple[State, ...]
    transitions: tuple[Transition, ...] = ()
    version: str | None = None
    strict_mode: bool = True
    description: str | None = None
    error_policy: ErrorPolicy = ErrorPolicy()
    metadata: FrozenDict[str, Any] = field(default=EMPTY)
    triggers: FrozenDict[str, TriggerSpec] = field(default=EMPTY)
    context_schema: FrozenDict[str, Any] | None = None
    migrate: FrozenDict[str, str] = field(default=EMPTY)
    """Old stored state name -> the state it means now (``renamed_from`` adds to it)."""

    def __post_init__(self) -> None:
        if not isinstance(self.metadata, FrozenDict) or self.metadata:
            object.__setattr__(self, "metadata", deep_freeze(self.metadata))
        object.__setattr__(self, "states", tuple(self.states))
        object.__setattr__(self, "transitions", tuple(self.transitions))
        if not isinstance(self.triggers, FrozenDict):
            object.__setattr__(self, "triggers", FrozenDict(self.triggers))
        if not isinstance(self.migrate, FrozenDict):
            object.__setattr__(self, "migrate", FrozenDict(self.migrate))
        if self.context_schema is not None and not isinstance(self.context_schema, FrozenDict):
            object.__setattr__(self, "context_schema", deep_freeze(self.context_schema))

    @property
    def aliases(self) -> dict[str, str]:
        """Every old state name this version still accepts -> the state it means now:
        ``migrate`` plus each state's ``renamed_from``."""
        out = dict(self.migrate)
        for state in self.states:
            for old in state.renamed_from:
                out.setdefault(old, state.name)
        return out

    def to_dict(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"machine_name": self.name}
        if self.version is not None:
            meta["version"] = self.version
        meta["strict_mode"] = self.strict_mode
        if self.description is not None:
            meta["description"] = self.description
        if self.metadata:
            meta["metadata"] = thaw(self.metadata)
        out: dict[str, Any] = {
            "meta": meta,
            "states": [s.to_dict() for s in self.states],
            "transitions": [t.to_dict() for t in self.transitions],
        }
        if self.triggers:
            out["triggers"] = {name: spec.to_dict() for name, spec in self.triggers.items()}
        if self.context_schema is not None:
            out["context_schema"] = thaw(self.context_schema)
        if self.migrate:
            out["migrate"] = dict(self.migrate)
        policy = self.error_policy.to_dict()
        if policy:
            out["error_policy"] = policy
        return out
