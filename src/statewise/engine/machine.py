"""The machine: a checked definition, its rule table, bound guards, and ``process``.

``process`` contains no I/O whatsoever: no clock, no random ids, no logging, and it
never writes to its inputs. Its result depends only on the definition, the current
state, the event and what the guards say about the context.

Theory of operation. Deciding an event walks the candidates from the rule table
(``engine.rules``) in priority order and runs their guards. The outcome, a
:class:`~statewise.model.result.Decision`, is fixed by (state, trigger, guard
verdicts), so each distinct decision is built once and kept in a bounded memo; a
result is that shared decision paired with the event. This keeps the cost of an
event close to the cost of the dictionary lookups it needs, whatever the size of
the machine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import Any

from statewise.engine.guards import GuardRegistry
from statewise.engine.locate import Locator, problems_for
from statewise.engine.rules import Candidates, RuleTable
from statewise.engine.views import make_view
from statewise.errors import (
    GuardError,
    GuardNotFoundError,
    GuardRejectedError,
    GuardsNotBoundError,
    InvalidTransitionError,
    SpecError,
    TerminalStateError,
    UndefinedStateError,
    UndefinedTriggerError,
)
from statewise.model.checks import Issue, check_definition
from statewise.model.definition import (
    ERROR_TRIGGER,
    TIMEOUT_TRIGGER,
    MachineDefinition,
    State,
    Transition,
)
from statewise.model.event import Event
from statewise.model.frozen import EMPTY, FrozenDict
from statewise.model.result import Decision, TraceStep, TransitionResult, make_result

__all__ = ["Locator", "Machine"]

_MEMO_LIMIT = 1 << 15
_EMPTY_CONTEXT: Mapping[str, Any] = {}

_TERMINAL = TerminalStateError.code
_UNDEFINED_TRIGGER = UndefinedTriggerError.code
_INVALID = InvalidTransitionError.code
_REJECTED = GuardRejectedError.code


@dataclass(slots=True, eq=False)
class _Guarded:
    """Memo entry of a guarded (state, trigger): its candidates, and the result for
    each way their guards have answered so far (keyed like ``_decide``'s verdicts)."""

    candidates: Candidates
    outcomes: dict[tuple[int, ...], TransitionResult]


class Machine:
    """An immutable machine definition, ready to decide events.

    Two machines are equal when their definitions are. Guards are bound once, at
    start-up (``guards=`` or :meth:`bind_guards`); after that nothing changes.
    """

    __slots__ = ("_guards", "_memo", "_plain_events", "_rules", "definition", "source")

    definition: MachineDefinition
    source: Locator | None

    def __init__(
        self,
        definition: MachineDefinition,
        *,
        guards: GuardRegistry | None = None,
        source: Locator | None = None,
        _checked: bool = False,
    ) -> None:
        if not _checked:
            issues = check_definition(definition)
            if issues:
                raise SpecError(problems_for(issues, source))
        self.definition = definition
        self.source = source
        self._rules = RuleTable.build(definition)
        self._guards: dict[str, tuple[Callable[..., Any], int]] | None = None
        self._memo: dict[tuple[str, str], TransitionResult | _Guarded] = {}
        self._plain_events = {t: Event(t) for t in self._rules.triggers}
        if guards is not None:
            self.bind_guards(guards)

    # -- binding ---------------------------------------------------------------------

    def bind_guards(self, registry: GuardRegistry) -> Machine:
        """Bind the guards this machine names, once; returns the machine.

        Raises :class:`GuardNotFoundError` listing every guard the spec names that
        ``registry`` lacks (with where each is used). The registry's functions are
        copied: registering more later does not change a bound machine.
        """
        if self._guards is not None:
            raise RuntimeError("guards are bound already: bind once, at start-up")
        missing: dict[str, list[tuple[str | int, ...]]] = {}
        for i, t in enumerate(self.definition.transitions):
            for k, name in enumerate(t.guards):
                if not registry.has(name):
                    missing.setdefault(name, []).append(("transitions", i, "guards", k))
        if missing:
            issues = [
                Issue(
                    "unknown-guard",
                    path,
                    f"guard {name!r} is not registered",
                    expected="a registered guard",
                    got=repr(name),
                )
                for name, paths in missing.items()
                for path in paths
            ]
            raise GuardNotFoundError(missing, problems_for(issues, self.source))
        self._guards = registry.snapshot()
        return self

    # -- deciding --------------------------------------------------------------------

    def process(
        self, current_state: str, event: str | Event, context: Mapping[str, Any] | None = None
    ) -> TransitionResult:
        """Decide ``event`` in ``current_state``; pure, and never raises for a rejection.

        ``context`` is read only by guards, through a read-only view; when a guard
        needs it, it must be a mapping (or ``None``, read as empty).

        Raises :class:`UndefinedStateError` for an unknown ``current_state``,
        :class:`GuardError` when a guard raises or returns a non-bool, and
        :class:`GuardsNotBoundError` when a guard is needed but none are bound.
        """
        # Hot path: every line here is paid per event. The memo holds finished results
        # for plain-trigger events; an Event gets the shared decision and itself.
        if type(event) is str:
            trigger = event
            ev = None
        elif isinstance(event, Event):
            trigger = event.trigger
            ev = event
        else:
            raise TypeError(f"event must be a trigger name or an Event, got {type(event).__name__}")
        # Most events repeat a decision already made: one lookup answers them. The memo
        # maps (state, trigger) to the finished result, or for a guarded pair (whose
        # decision depends on the guards) to a _Guarded plan. Only known states and
        # triggers get in, so a hit needs no further checks.
        key = (current_state, trigger)
        known = self._memo.get(key)
        if known is None:
            rules = self._rules.by_state.get(current_state)
            if rules is None:
                raise UndefinedStateError(current_state, self._rules.states)
            candidates = rules.get(trigger)
            if candidates is None:
                decision = self._no_candidate(current_state, trigger)
                if trigger not in self._plain_events:
                    # Unknown triggers come from outside: never let them fill the memo.
                    return make_result(decision, ev or Event(trigger))
            elif candidates[0].guards:
                plan = _Guarded(candidates, {})
                self._remember(key, plan)
                return self._run_guards(current_state, trigger, plan, context, ev)
            else:
                decision = self._decide(current_state, candidates, ())
            known = make_result(decision, self._plain_events[trigger])
            self._remember(key, known)
        elif isinstance(known, _Guarded):
            return self._run_guards(current_state, trigger, known, context, ev)
        if ev is None:
            return known
        return make_result(known.decision, ev)

    def _remember(self, key: tuple[str, str], value: TransitionResult | _Guarded) -> None:
        memo = self._memo
        if len(memo) >= _MEMO_LIMIT:
            # Bounded: drop the older half (dicts keep insertion order), keep the rest.
            for old in list(islice(memo, _MEMO_LIMIT // 2)):
                del memo[old]
        memo[key] = value

    def _no_candidate(self, state: str, trigger: str) -> Decision:
        if state in self._rules.terminal:
            return Decision.rejected(state, trigger, _TERMINAL)
        if not self.definition.strict_mode:
            return Decision.ignored_event(state, trigger)
        if trigger in self._rules.triggers:
            return Decision.rejected(state, trigger, _INVALID)
        return Decision.rejected(state, trigger, _UNDEFINED_TRIGGER)

    def _run_guards(
        self,
        state: str,
        trigger: str,
        plan: _Guarded,
        context: Mapping[str, Any] | None,
        ev: Event | None,
    ) -> TransitionResult:
        guards = self._guards
        if context is None:
            context = _EMPTY_CONTEXT
        elif type(context) is not dict and not isinstance(context, Mapping):
            raise TypeError(f"context must be a mapping or None, got {type(context).__name__}")
        if ev is None:
            ev = self._plain_events[trigger]
        payload = ev.payload
        # The payload is a FrozenDict: read its dict directly, at C speed.
        merged = make_view(context, None if payload is EMPTY else _raw(payload))
        candidates = plan.candidates
        verdicts: tuple[int, ...] = ()  # per candidate: index of the guard that said no, or -1
        for t in candidates:
            failed = -1
            for i, name in enumerate(t.guards):
                if guards is None:
                    raise GuardsNotBoundError(name)
                fn, arity = guards[name]
                try:
                    ok = fn(merged) if arity == 1 else fn(make_view(context, None), ev)
                except Exception as exc:
                    raise GuardError(name, state, trigger, self._index(t)) from exc
                if ok is not True:
                    if ok is not False:
                        raise GuardError(name, state, trigger, self._index(t)) from TypeError(
                            f"guard {name!r} must return a bool, got {type(ok).__name__}"
                        )
                    failed = i
                    break
            verdicts += (failed,)
            if failed < 0:
                break
        known = plan.outcomes.get(verdicts)
        if known is None:
            # At most one entry per way the guards can answer: bounded by the spec.
            decision = self._decide(state, candidates, verdicts)
            known = plan.outcomes[verdicts] = make_result(decision, self._plain_events[trigger])
        return make_result(known.decision, ev)

    def _decide(self, state: str, candidates: Candidates, verdicts: tuple[int, ...]) -> Decision:
        """Build the decision for ``verdicts`` (see ``_run_guards``); memoized by callers."""
        trace: list[TraceStep] = []
        for t, failed in zip(candidates, verdicts or (-1,), strict=False):
            if failed < 0:
                steps = tuple((g, True) for g in t.guards)
                trace.append(TraceStep(t, steps, selected=True))
                source = self._rules.states[state]
                dest = None if t.dest is None else self._rules.states[t.dest]
                return Decision.transitioned(source, dest, t, tuple(trace))
            steps = (*((g, True) for g in t.guards[:failed]), (t.guards[failed], False))
            trace.append(TraceStep(t, steps, selected=False))
        said_no = tuple(dict.fromkeys(step.guards[-1][0] for step in trace))
        return Decision.rejected(
            state, candidates[0].trigger, _REJECTED, guards=said_no, trace=tuple(trace)
        )

    def _index(self, transition: Transition) -> int:
        for i, t in enumerate(self.definition.transitions):
            if t is transition:
                return i
        raise AssertionError("transition not in this machine")  # pragma: no cover

    # -- edges no outside event takes ------------------------------------------------

    def timeout_result(self, state: str, *, event_id: str | None = None) -> TransitionResult | None:
        """The result of ``state``'s timeout firing: trigger ``timeout``, the state's exit
        actions, the timeout's actions, the destination's enter actions. ``None`` when
        the state has no timeout. Whether it is due is the caller's clock's business
        (see :mod:`statewise.timeouts`)."""
        edge = self._rules.timeouts.get(state)
        if edge is None:
            self.get_state(state)  # an unknown state is a bug: raise
            return None
        return self._edge_result(state, edge, Event(TIMEOUT_TRIGGER, EMPTY, event_id))

    def fail(
        self, current_state: str, error: BaseException | str, *, event_id: str | None = None
    ) -> TransitionResult:
        """Move an entity whose actions keep failing to ``error_policy.default_fallback``.

        The result has trigger ``error``, runs ``current_state``'s exit actions and the
        fallback state's enter actions, and carries the error in its event payload
        (``{"error": message, "error_type": class name}``). It is a failed result, with
        nothing to commit, when ``current_state`` is terminal (what a terminal state
        records stays true) or is the fallback state itself (no loop). Raises
        ``ValueError`` when the machine has no ``default_fallback``.
        """
        fallback = self.definition.error_policy.default_fallback
        if fallback is None:
            raise ValueError(
                f"machine {self.name!r} has no error_policy.default_fallback to fail to"
            )
        if isinstance(error, BaseException):
            payload = {"error": str(error), "error_type": type(error).__name__}
        else:
            payload = {"error": str(error), "error_type": None}
        event = Event(ERROR_TRIGGER, payload, event_id)
        edge = self._rules.fallbacks.get(current_state)
        if edge is None:
            self.get_state(current_state)
            code = _TERMINAL if current_state in self._rules.terminal else _INVALID
            return make_result(Decision.rejected(current_state, ERROR_TRIGGER, code), event)
        return self._edge_result(current_state, edge, event)

    def _edge_result(self, state: str, edge: Transition, event: Event) -> TransitionResult:
        source = self._rules.states[state]
        dest = self._rules.states[edge.dest or state]
        steps = (TraceStep(edge, (), selected=True),)
        return make_result(Decision.transitioned(source, dest, edge, steps), event)

    # -- queries ---------------------------------------------------------------------

    def get_state(self, name: str) -> State:
        state = self._rules.states.get(name)
        if state is None:
            raise UndefinedStateError(name, self._rules.states)
        return state

    @property
    def initial_state(self) -> State:
        return next(s for s in self.definition.states if s.is_initial)

    def get_available_transitions(self, state: str) -> tuple[Transition, ...]:
        """Transitions that may leave ``state``, in declaration order (guards not run)."""
        rules = self._rules.by_state.get(state)
        if rules is None:
            raise UndefinedStateError(state, self._rules.states)
        mine = {id(t) for candidates in rules.values() for t in candidates}
        return tuple(t for t in self.definition.transitions if id(t) in mine)

    def get_available_triggers(self, state: str) -> tuple[str, ...]:
        """Triggers with at least one transition from ``state``, in declaration order."""
        return tuple(dict.fromkeys(t.trigger for t in self.get_available_transitions(state)))

    def can_transition(
        self, state: str, trigger: str | Event, context: Mapping[str, Any] | None = None
    ) -> bool:
        """Would ``process`` take a transition? Guards run; a raising guard raises."""
        decision = self.process(state, trigger, context).decision
        return decision.success and not decision.ignored

    def is_terminal(self, state: str) -> bool:
        return self.get_state(state).is_terminal

    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.definition.states)

    @property
    def trigger_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t.trigger for t in self.definition.transitions))

    @property
    def terminal_states(self) -> frozenset[str]:
        return self._rules.terminal

    @property
    def rules(self) -> RuleTable:
        """The rule table ``process`` decides with; analysis and diagrams read it too."""
        return self._rules

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def version(self) -> str | None:
        return self.definition.version

    @property
    def strict_mode(self) -> bool:
        return self.definition.strict_mode

    @property
    def guards_bound(self) -> bool:
        return self._guards is not None

    def to_dict(self) -> dict[str, Any]:
        """A spec (plain dict) that loads back into an equal machine."""
        return self.definition.to_dict()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Machine):
            return NotImplemented
        return self.definition == other.definition

    def __hash__(self) -> int:
        return hash(self.definition)

    def __repr__(self) -> str:
        d = self.definition
        return (
            f"{type(self).__name__}({d.name!r}, version={d.version!r}, "
            f"states={len(d.states)}, transitions={len(d.transitions)})"
        )


def _raw(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    """The dict inside an event's FrozenDict payload (read-only use only)."""
    return payload._data if isinstance(payload, FrozenDict) else payload
