"""What ``process`` returns: a :class:`TransitionResult`, the decision plus the event.

A result is split in two on purpose. The :class:`Decision` (success, target, actions,
error, trace, timeout) is fixed by the current state, the trigger and the guards'
verdicts, so the engine builds each distinct decision once and shares it; the
result pairs it with the event that was decided. Both are frozen and hashable, and
every attribute a caller reads (``result.target_state``, ``result.all_actions``...)
is available on the result itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from statewise.errors import Problem, TransitionError, make_transition_error
from statewise.model.audit import AwareDatetime, audit_entry
from statewise.model.definition import ActionCall, State, Timeout, Transition, action_calls
from statewise.model.event import Event

__all__ = ["Decision", "TraceStep", "TransitionResult"]


@dataclass(frozen=True, slots=True)
class TraceStep:
    """One candidate transition considered, in order, with each guard's verdict.

    Guards run in declaration order and stop at the first that says no, so the
    guards after it are absent from ``guards``.
    """

    transition: Transition
    guards: tuple[tuple[str, bool], ...]
    selected: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "transition": self.transition.to_dict(),
            "guards": [[name, ok] for name, ok in self.guards],
            "selected": self.selected,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TraceStep:
        return cls(
            transition=Transition.from_dict(data["transition"]),
            guards=tuple((str(name), bool(ok)) for name, ok in data["guards"]),
            selected=bool(data["selected"]),
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """The part of a result fixed by (state, trigger, guard verdicts); shared, immutable.

    ``error_code`` names a :class:`~statewise.errors.TransitionError` subclass for a
    failed decision; ``rejected_guards`` lists the guards that said no, ``problems``
    what was wrong with the event's payload.
    ``timeout`` is the timeout armed by *entering* the target state: ``None`` when no
    state was entered (internal transition, ignored or failed event).
    """

    success: bool
    source_state: str
    target_state: str
    trigger: str
    ignored: bool = False
    transition: Transition | None = None
    on_exit_actions: tuple[ActionCall, ...] = ()
    actions_to_execute: tuple[ActionCall, ...] = ()
    on_enter_actions: tuple[ActionCall, ...] = ()
    error_code: str | None = None
    rejected_guards: tuple[str, ...] = ()
    trace: tuple[TraceStep, ...] = ()
    timeout: Timeout | None = None
    problems: tuple[Problem, ...] = ()
    all_actions: tuple[ActionCall, ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "all_actions",
            self.on_exit_actions + self.actions_to_execute + self.on_enter_actions,
        )

    @classmethod
    def transitioned(
        cls,
        source: State,
        dest: State | None,
        transition: Transition,
        trace: tuple[TraceStep, ...],
    ) -> Decision:
        """A successful decision: exit ``source``, run the actions, enter ``dest``.

        ``dest`` is ``None`` for an internal transition (no exit, no enter).
        """
        if dest is None:
            return cls(
                True,
                source.name,
                source.name,
                transition.trigger,
                transition=transition,
                actions_to_execute=transition.actions,
                trace=trace,
            )
        return cls(
            True,
            source.name,
            dest.name,
            transition.trigger,
            transition=transition,
            on_exit_actions=source.on_exit,
            actions_to_execute=transition.actions,
            on_enter_actions=dest.on_enter,
            trace=trace,
            timeout=dest.timeout,
        )

    @classmethod
    def rejected(
        cls,
        state: str,
        trigger: str,
        code: str,
        *,
        guards: tuple[str, ...] = (),
        trace: tuple[TraceStep, ...] = (),
        problems: tuple[Problem, ...] = (),
    ) -> Decision:
        """A failed decision carrying the error ``code``; the state does not change."""
        return cls(
            False,
            state,
            state,
            trigger,
            error_code=code,
            rejected_guards=guards,
            trace=trace,
            problems=problems,
        )

    @classmethod
    def ignored_event(cls, state: str, trigger: str) -> Decision:
        """Non-strict mode: the event matched nothing and is ignored."""
        return cls(True, state, state, trigger, ignored=True)

    @property
    def error(self) -> TransitionError | None:
        if self.error_code is None:
            return None
        return make_transition_error(
            self.error_code, self.source_state, self.trigger, self.rejected_guards, self.problems
        )

    @property
    def action_names(self) -> tuple[str, ...]:
        """The names of ``all_actions``, in order."""
        return tuple(a.name for a in self.all_actions)

    @property
    def state_changed(self) -> bool:
        return self.success and self.source_state != self.target_state

    @property
    def entered(self) -> bool:
        """The target state was entered (an external transition): (re)arm its timeout."""
        t = self.transition
        return self.success and t is not None and t.dest is not None

    @property
    def is_self_transition(self) -> bool:
        """An external transition back to its own source: exit and enter both run."""
        t = self.transition
        return (
            self.success
            and t is not None
            and t.dest is not None
            and self.source_state == self.target_state
        )


@dataclass(frozen=True, slots=True)
class TransitionResult:
    """The outcome of ``process(current_state, event, context)``.

    ``success`` and not ``ignored``: commit ``target_state``, then run ``all_actions``
    (``on_exit_actions`` + ``actions_to_execute`` + ``on_enter_actions``) after the
    commit. Not ``success``: nothing to commit; ``error`` says why.
    """

    decision: Decision
    event: Event

    @property
    def success(self) -> bool:
        return self.decision.success

    @property
    def ignored(self) -> bool:
        return self.decision.ignored

    @property
    def source_state(self) -> str:
        return self.decision.source_state

    @property
    def target_state(self) -> str:
        return self.decision.target_state

    @property
    def trigger(self) -> str:
        return self.decision.trigger

    @property
    def transition(self) -> Transition | None:
        return self.decision.transition

    @property
    def on_exit_actions(self) -> tuple[ActionCall, ...]:
        return self.decision.on_exit_actions

    @property
    def actions_to_execute(self) -> tuple[ActionCall, ...]:
        return self.decision.actions_to_execute

    @property
    def on_enter_actions(self) -> tuple[ActionCall, ...]:
        return self.decision.on_enter_actions

    @property
    def all_actions(self) -> tuple[ActionCall, ...]:
        """Run these, in order, once the new state is committed."""
        return self.decision.all_actions

    @property
    def action_names(self) -> tuple[str, ...]:
        return self.decision.action_names

    @property
    def error(self) -> TransitionError | None:
        """A new exception object on each access; equal to the last one."""
        return self.decision.error

    @property
    def state_changed(self) -> bool:
        return self.decision.state_changed

    @property
    def is_self_transition(self) -> bool:
        return self.decision.is_self_transition

    @property
    def entered(self) -> bool:
        """The target state was entered: store a new deadline from ``timeout`` (or none)."""
        return self.decision.entered

    @property
    def trace(self) -> tuple[TraceStep, ...]:
        return self.decision.trace

    @property
    def timeout(self) -> Timeout | None:
        return self.decision.timeout

    def audit_entry(self, entity_id: str, at: AwareDatetime) -> dict[str, Any]:
        """The JSON-safe row to insert into an audit table in the same commit (columns
        :data:`~statewise.model.audit.AUDIT_COLUMNS`); ``at`` must be timezone-aware."""
        return audit_entry(self, entity_id, at)

    def raise_for_error(self) -> TransitionResult:
        """Raise ``error`` if the event was not allowed; otherwise return ``self``."""
        error = self.decision.error
        if error is not None:
            raise error
        return self

    def __repr__(self) -> str:
        d = self.decision
        if d.error_code is not None:
            outcome = f"error={d.error_code}"
        elif d.ignored:
            outcome = "ignored"
        else:
            outcome = f"actions={list(d.action_names)}"
        return (
            f"TransitionResult({d.source_state} --{d.trigger}--> {d.target_state}, "
            f"success={d.success}, {outcome})"
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict; :meth:`from_dict` gives back an equal result."""
        d = self.decision
        error = d.error
        return {
            "success": d.success,
            "ignored": d.ignored,
            "source_state": d.source_state,
            "target_state": d.target_state,
            "trigger": d.trigger,
            "state_changed": d.state_changed,
            "is_self_transition": d.is_self_transition,
            "transition": None if d.transition is None else d.transition.to_dict(),
            "on_exit_actions": [a.to_spec() for a in d.on_exit_actions],
            "actions_to_execute": [a.to_spec() for a in d.actions_to_execute],
            "on_enter_actions": [a.to_spec() for a in d.on_enter_actions],
            "all_actions": [a.to_spec() for a in d.all_actions],
            "error": None
            if error is None
            else {
                "code": error.code,
                "message": str(error),
                "guards": list(d.rejected_guards),
                "problems": [_problem_to_dict(p) for p in d.problems],
            },
            "trace": [step.to_dict() for step in d.trace],
            "timeout": None if d.timeout is None else d.timeout.to_dict(),
            "event": self.event.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TransitionResult:
        """Rebuild a result from :meth:`to_dict` output (derived fields are recomputed)."""
        error = data.get("error")
        timeout = data.get("timeout")
        transition = data.get("transition")
        decision = Decision(
            success=bool(data["success"]),
            source_state=data["source_state"],
            target_state=data["target_state"],
            trigger=data["trigger"],
            ignored=bool(data.get("ignored", False)),
            transition=None if transition is None else Transition.from_dict(transition),
            on_exit_actions=action_calls(data.get("on_exit_actions", ())),
            actions_to_execute=action_calls(data.get("actions_to_execute", ())),
            on_enter_actions=action_calls(data.get("on_enter_actions", ())),
            error_code=None if error is None else error["code"],
            rejected_guards=() if error is None else tuple(error.get("guards", ())),
            trace=tuple(TraceStep.from_dict(s) for s in data.get("trace", ())),
            timeout=None if timeout is None else Timeout.from_dict(timeout),
            problems=()
            if error is None
            else tuple(_problem_from_dict(p) for p in error.get("problems", ())),
        )
        if decision.error_code is not None:
            decision.error  # noqa: B018 - validates the code now, not on first access
        return cls(decision, Event.from_dict(data["event"]))


_PROBLEM_FIELDS = ("path", "message", "expected", "got")


def _problem_to_dict(problem: Problem) -> dict[str, Any]:
    return {name: getattr(problem, name) for name in _PROBLEM_FIELDS}


def _problem_from_dict(data: Mapping[str, Any]) -> Problem:
    return Problem(
        data["path"], data["message"], expected=data.get("expected"), got=data.get("got")
    )


# The engine builds a result per event: skip the frozen dataclass __init__ (two
# ``object.__setattr__`` calls through Python) and set the slots directly.
_new = object.__new__
_set_decision = cast(Any, TransitionResult.__dict__["decision"]).__set__
_set_event = cast(Any, TransitionResult.__dict__["event"]).__set__


def make_result(decision: Decision, event: Event) -> TransitionResult:
    """``TransitionResult(decision, event)``, built the fast way (hot path only)."""
    result: TransitionResult = _new(TransitionResult)
    _set_decision(result, decision)
    _set_event(result, event)
    return result
