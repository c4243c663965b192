"""The immutable machine definition: states, transitions, timeouts, error policy.

A definition is plain data, apart from any current state and from any bound guard
functions. Every class is a frozen, slotted, hashable dataclass; collections are
tuples and :class:`~statewise.model.frozen.FrozenDict`. ``to_dict`` gives back a
spec that loads into an equal definition.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from statewise.model.frozen import EMPTY, FrozenDict, deep_freeze, thaw

__all__ = [
    "WILDCARD",
    "ErrorPolicy",
    "MachineDefinition",
    "State",
    "StateType",
    "Timeout",
    "Transition",
]

WILDCARD = "*"
"""As a transition's source: every non-terminal state."""


class StateType(enum.Enum):
    INITIAL = "initial"
    STABLE = "stable"
    TERMINAL = "terminal"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Timeout:
    """Leave the state for ``destination`` once ``seconds`` have passed since entering it."""

    seconds: float
    destination: str

    def to_dict(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "destination": self.destination}


@dataclass(frozen=True, slots=True)
class State:
    name: str
    type: StateType = StateType.STABLE
    description: str | None = None
    on_enter: tuple[str, ...] = ()
    on_exit: tuple[str, ...] = ()
    timeout: Timeout | None = None
    metadata: FrozenDict[str, Any] = field(default=EMPTY)

    def __post_init__(self) -> None:
        # Accept plain dicts from programmatic callers but store them frozen.
        if not isinstance(self.metadata, FrozenDict) or self.metadata:
            object.__setattr__(self, "metadata", deep_freeze(self.metadata))

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
            out["on_enter"] = list(self.on_enter)
        if self.on_exit:
            out["on_exit"] = list(self.on_exit)
        if self.timeout is not None:
            out["timeout"] = self.timeout.to_dict()
        if self.metadata:
            out["metadata"] = thaw(self.metadata)
        return out


@dataclass(frozen=True, slots=True)
class Transition:
    """``trigger`` takes the machine from any of ``source`` to ``dest``.

    ``source`` is a tuple of state names, or ``("*",)`` for every non-terminal state.
    ``dest`` is ``None`` for an internal transition: its actions run, the state is
    neither exited nor entered.
    """

    trigger: str
    source: tuple[str, ...]
    dest: str | None = None
    guards: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()
    description: str | None = None
    metadata: FrozenDict[str, Any] = field(default=EMPTY)

    def __post_init__(self) -> None:
        if not isinstance(self.metadata, FrozenDict) or self.metadata:
            object.__setattr__(self, "metadata", deep_freeze(self.metadata))

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
        if self.guards:
            out["guards"] = list(self.guards)
        if self.actions:
            out["actions"] = list(self.actions)
        if self.description is not None:
            out["description"] = self.description
        if self.metadata:
            out["metadata"] = thaw(self.metadata)
        return out


@dataclass(frozen=True, slots=True)
class ErrorPolicy:
    default_fallback: str | None = None
    retry_attempts: int = 0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.default_fallback is not None:
            out["default_fallback"] = self.default_fallback
        if self.retry_attempts:
            out["retry_attempts"] = self.retry_attempts
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

    def __post_init__(self) -> None:
        if not isinstance(self.metadata, FrozenDict) or self.metadata:
            object.__setattr__(self, "metadata", deep_freeze(self.metadata))
        object.__setattr__(self, "states", tuple(self.states))
        object.__setattr__(self, "transitions", tuple(self.transitions))

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
        policy = self.error_policy.to_dict()
        if policy:
            out["error_policy"] = policy
        return out
