"""What running a result's actions gave: one :class:`ActionOutcome` per action.

An :class:`ExecutionResult` is written after the fact, for the caller to log, store
or act on: ``fallback`` is the result that moves the entity to the machine's
``error_policy.default_fallback`` when an action kept failing. Commit it the way the
first result was committed, then execute it.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from statewise.model.frozen import EMPTY, FrozenDict, deep_freeze, thaw
from statewise.model.result import TransitionResult

__all__ = ["ActionOutcome", "ActionStatus", "ExecutionResult"]


class ActionStatus(enum.StrEnum):
    """``ok``: it ran and returned. ``failed``: it raised on every attempt, or could not
    be run at all. ``skipped``: not run (done before, or after a failure with
    ``stop_on_failure``)."""

    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"


def _json_value(value: Any) -> Any:
    """``value`` as JSON gives it back, or its ``repr`` when it is not JSON data."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError):
        return repr(value)


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    """One action of a result: how it went.

    ``position`` is its index in ``result.all_actions``; ``attempts`` counts calls made
    (0 when it was skipped or could not be called); ``duration`` is the seconds from
    the first attempt to the last one's end, backoff waits included. ``value`` is what
    it returned; ``error`` and ``error_type`` the message and class name of the last
    exception, ``exception`` the exception itself (not compared, not serialized).
    """

    name: str
    position: int
    status: ActionStatus
    params: Mapping[str, Any]
    idempotency_key: str
    attempts: int = 0
    duration: float = 0.0
    value: Any = None
    error: str | None = None
    error_type: str | None = None
    exception: BaseException | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Stored deep-frozen, like ActionCall.params: an outcome is shared, never edited.
        if not isinstance(self.params, FrozenDict):
            object.__setattr__(self, "params", deep_freeze(self.params))

    @property
    def ok(self) -> bool:
        return self.status is ActionStatus.OK

    @property
    def failed(self) -> bool:
        return self.status is ActionStatus.FAILED

    @property
    def skipped(self) -> bool:
        return self.status is ActionStatus.SKIPPED

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict. ``value`` is kept as JSON gives it back (a tuple becomes a
        list) when it is JSON data, else replaced by its ``repr``; ``exception`` is left
        out."""
        return {
            "name": self.name,
            "position": self.position,
            "status": self.status.value,
            "idempotency_key": self.idempotency_key,
            "params": thaw(self.params),
            "attempts": self.attempts,
            "duration": self.duration,
            "value": _json_value(self.value),
            "error": self.error,
            "error_type": self.error_type,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ActionOutcome:
        """The inverse of :meth:`to_dict` (``exception`` is ``None``)."""
        return cls(
            name=data["name"],
            position=int(data["position"]),
            status=ActionStatus(data["status"]),
            idempotency_key=data["idempotency_key"],
            params=deep_freeze(data.get("params") or EMPTY),
            attempts=int(data.get("attempts", 0)),
            duration=float(data.get("duration", 0.0)),
            value=data.get("value"),
            error=data.get("error"),
            error_type=data.get("error_type"),
        )


_new = object.__new__
_slot = {name: cast(Any, ActionOutcome.__dict__[name]).__set__ for name in ActionOutcome.__slots__}
_set_name, _set_position, _set_status = _slot["name"], _slot["position"], _slot["status"]
_set_params, _set_key, _set_attempts = _slot["params"], _slot["idempotency_key"], _slot["attempts"]
_set_duration, _set_value, _set_error = _slot["duration"], _slot["value"], _slot["error"]
_set_error_type, _set_exception = _slot["error_type"], _slot["exception"]


def succeeded(
    name: str,
    position: int,
    params: Mapping[str, Any],
    key: str,
    attempts: int,
    duration: float,
    value: Any,
) -> ActionOutcome:
    """``ActionOutcome(name, position, OK, params, key, ...)`` built the fast way (one
    per action run, on the executor's hot path); ``params`` must be frozen already."""
    outcome: ActionOutcome = _new(ActionOutcome)
    _set_name(outcome, name)
    _set_position(outcome, position)
    _set_status(outcome, ActionStatus.OK)
    _set_params(outcome, params)
    _set_key(outcome, key)
    _set_attempts(outcome, attempts)
    _set_duration(outcome, duration)
    _set_value(outcome, value)
    _set_error(outcome, None)
    _set_error_type(outcome, None)
    _set_exception(outcome, None)
    return outcome


@dataclass(frozen=True, slots=True)
class ExecutionResult:
    """The outcomes of running ``result.all_actions``, in order, and the fallback.

    Actions run only after ``result.target_state`` was committed. ``fallback``, when
    set, is the ``error`` result moving the entity from ``result.target_state`` to the
    machine's ``default_fallback`` because an action still failed after its retries:
    commit its target state the same way, then execute it. ``outcomes`` is empty for
    a result with nothing to run (failed or ignored).
    """

    result: TransitionResult
    outcomes: tuple[ActionOutcome, ...] = ()
    fallback: TransitionResult | None = None

    @property
    def all_succeeded(self) -> bool:
        """No action failed (skipped ones do not count as failures)."""
        return not any(o.failed for o in self.outcomes)

    @property
    def failed_actions(self) -> tuple[ActionOutcome, ...]:
        return tuple(o for o in self.outcomes if o.failed)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict; :meth:`from_dict` gives back an equal result when every
        action's value is JSON data."""
        return {
            "result": self.result.to_dict(),
            "outcomes": [o.to_dict() for o in self.outcomes],
            "fallback": None if self.fallback is None else self.fallback.to_dict(),
            "all_succeeded": self.all_succeeded,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExecutionResult:
        """Rebuild from :meth:`to_dict` output (``all_succeeded`` is recomputed)."""
        fallback = data.get("fallback")
        return cls(
            result=TransitionResult.from_dict(data["result"]),
            outcomes=tuple(ActionOutcome.from_dict(o) for o in data.get("outcomes", ())),
            fallback=None if fallback is None else TransitionResult.from_dict(fallback),
        )
