"""The machine: a checked definition, its rule table, bound guards, and ``process``.

``process`` contains no I/O whatsoever: no clock, no random ids, no logging, and it
never writes to its inputs. Its result depends only on the definition, the current
state, the event and what the guards say about the context.

Theory of operation. Deciding an event walks the candidates from the rule table
(``engine.rules``) in priority order and runs their checks: the ``when:``
expression, then the guards, each stopping the candidate at the first "no". The
outcome, a :class:`~statewise.model.result.Decision`, is fixed by (state, trigger,
verdicts), so each distinct decision is built once and kept in a bounded memo; a
result is that shared decision paired with the event. This keeps the cost of an
event close to the cost of the dictionary lookups it needs, whatever the size of
the machine.

A (state, trigger) whose decision is fixed (its first candidate has no checks, and
its trigger no payload schema) is answered from the memo with one lookup. Any other
pair has a :class:`_Plan` in the memo: the checks of every candidate, bound once,
the payload check, and the results already built per verdicts.

JSON Schemas (``payload_schema``, ``context_schema``) are compiled by a
``SchemaCompiler`` the caller hands in (the spec layer's, through
:class:`~statewise.StateMachine`): the pure core does not validate JSON Schema itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any, TypeAlias

from statewise.engine.actions import ActionRegistry, check_actions
from statewise.engine.expressions import (
    Expression,
    ExpressionError,
    ExpressionFailed,
    MissingExtraError,
    compile_expression,
    label,
)
from statewise.engine.guards import GuardRegistry
from statewise.engine.locate import Locator, problems_for
from statewise.engine.rules import Candidates, RuleTable
from statewise.engine.signatures import call_style, params_problem, positional_names
from statewise.engine.views import as_mapping, make_view
from statewise.errors import (
    ContextError,
    GuardError,
    GuardNotFoundError,
    GuardRejectedError,
    GuardsNotBoundError,
    InvalidTransitionError,
    PayloadError,
    Problem,
    SpecError,
    TerminalStateError,
    UndefinedStateError,
    UndefinedTriggerError,
)
from statewise.model.checks import Issue, check_definition
from statewise.model.definition import (
    ERROR_TRIGGER,
    TIMEOUT_TRIGGER,
    GuardCall,
    MachineDefinition,
    State,
    Transition,
)
from statewise.model.event import Event
from statewise.model.frozen import EMPTY, FrozenDict
from statewise.model.result import Decision, TraceStep, TransitionResult, make_result

__all__ = ["Locator", "Machine", "SchemaCheck", "SchemaCompiler"]

SchemaCheck: TypeAlias = Callable[[Any], Sequence[Problem]]
"""A compiled JSON Schema: every problem with a value (paths relative to it), or none."""

SchemaCompiler: TypeAlias = Callable[[Mapping[str, Any]], SchemaCheck]
"""Compiles a JSON Schema into a :data:`SchemaCheck`; raises ``ValueError`` for a bad one."""

_MEMO_LIMIT = 1 << 15

_TERMINAL = TerminalStateError.code
_UNDEFINED_TRIGGER = UndefinedTriggerError.code
_INVALID = InvalidTransitionError.code
_REJECTED = GuardRejectedError.code
_PAYLOAD = PayloadError.code

# How a check is called: a CEL expression, fn(ctx, **params), fn(context, event, **params).
_EXPRESSION, _CTX, _CTX_EVENT = 0, 1, 2
_Check = tuple[str, int, Any, dict[str, Any] | None]
"""(label for traces, call style, function or Expression, keyword params or None)."""
_EMPTY_CONTEXT: Mapping[str, Any] = {}


@dataclass(slots=True, eq=False)
class _Plan:
    """Memo entry of a (state, trigger) whose decision depends on the event: its
    candidates, their checks (in order), the trigger's payload check, and the result
    for each way the checks have answered so far (keyed like ``_decide``'s verdicts)."""

    candidates: Candidates
    checks: tuple[tuple[_Check, ...], ...]
    payload: SchemaCheck | None
    outcomes: dict[tuple[int, ...], TransitionResult]
    steps: tuple[tuple[Transition, tuple[_Check, ...]], ...] = ()

    def __post_init__(self) -> None:
        self.steps = tuple(zip(self.candidates, self.checks, strict=False))


class Machine:
    """An immutable machine definition, ready to decide events.

    Two machines are equal when their definitions are. Guards are bound once, at
    start-up (``guards=`` or :meth:`bind_guards`); after that nothing changes.
    ``schemas`` compiles the definition's JSON Schemas (payloads, context); it is
    required when the definition has any.
    """

    __slots__ = (
        "_context_check",
        "_expressions",
        "_guards",
        "_memo",
        "_payload_checks",
        "_plain_events",
        "_rules",
        "definition",
        "source",
    )

    definition: MachineDefinition
    source: Locator | None

    def __init__(
        self,
        definition: MachineDefinition,
        *,
        guards: GuardRegistry | None = None,
        source: Locator | None = None,
        schemas: SchemaCompiler | None = None,
        _checked: bool = False,
    ) -> None:
        issues = [] if _checked else check_definition(definition)
        expressions, expression_issues = compile_expressions(definition)
        issues += expression_issues
        if issues:
            raise SpecError(problems_for(issues, source))
        self.definition = definition
        self.source = source
        self._rules = RuleTable.build(definition)
        self._guards: dict[GuardCall, tuple[Callable[..., Any], int]] | None = None
        self._expressions = expressions
        self._memo: dict[tuple[str, str], TransitionResult | _Plan] = {}
        self._plain_events = {t: Event(t) for t in self._rules.triggers}
        self._payload_checks, self._context_check = _schema_checks(definition, schemas, source)
        if guards is not None:
            self.bind_guards(guards)

    # -- binding ---------------------------------------------------------------------

    def bind_guards(self, registry: GuardRegistry) -> Machine:
        """Bind the guards this machine names, once; returns the machine.

        Raises :class:`GuardNotFoundError` listing every guard the spec names that
        ``registry`` lacks (with where each is used), and :class:`SpecError` for a guard
        that cannot take the ``params`` the spec gives it. The registry's functions are
        copied: registering more later does not change a bound machine.
        """
        if self._guards is not None:
            raise RuntimeError("guards are bound already: bind once, at start-up")
        missing: dict[str, list[tuple[str | int, ...]]] = {}
        issues: list[Issue] = []
        bound: dict[GuardCall, tuple[Callable[..., Any], int]] = {}
        functions = registry.snapshot()
        # Param names each guard is given somewhere in the spec: a use without them, of
        # a guard declared fn(ctx, limit), would otherwise be read as fn(context, event).
        given: dict[str, set[str]] = {}
        for t in self.definition.transitions:
            for call in t.guards:
                given.setdefault(call.name, set()).update(call.params)
        for i, t in enumerate(self.definition.transitions):
            for k, call in enumerate(t.guards):
                path: tuple[str | int, ...] = ("transitions", i, "guards", k)
                fn = functions.get(call.name)
                if fn is None:
                    missing.setdefault(call.name, []).append(path)
                    issues.append(
                        Issue(
                            "unknown-guard",
                            path,
                            f"guard {call.name!r} is not registered",
                            expected="a registered guard",
                            got=repr(call.name),
                        )
                    )
                    continue
                problem = _call_problem(fn, call, given[call.name])
                if isinstance(problem, str):
                    where = (*path, "params") if call.params else path
                    issues.append(
                        Issue(
                            "guard-params",
                            where,
                            f"guard {call.name!r} cannot be called as the spec says: {problem}",
                            expected="params the guard takes",
                            got=repr(dict(call.params)),
                        )
                    )
                else:
                    bound[call] = (fn, problem)
        if missing:
            raise GuardNotFoundError(missing, problems_for(issues, self.source))
        if issues:
            raise SpecError(problems_for(issues, self.source))
        self._guards = bound
        return self

    def check_actions(self, registry: ActionRegistry) -> None:
        """Check at start-up that every action the spec names is in ``registry`` and takes
        the params the spec gives it; raises :class:`ActionNotFoundError` (or
        :class:`SpecError` for params alone) listing every problem, located."""
        check_actions(self.definition, registry, self.source)

    # -- deciding --------------------------------------------------------------------

    def process(
        self, current_state: str, event: str | Event, context: object = None
    ) -> TransitionResult:
        """Decide ``event`` in ``current_state``; pure, and never raises for a rejection.

        ``context`` is read only by guards and expressions, through a read-only view;
        it may be a mapping, a dataclass instance, a Pydantic model or ``None`` (empty).
        A payload that does not match its trigger's ``payload_schema`` gives a failed
        result carrying a :class:`PayloadError` (never a transition).

        Raises :class:`UndefinedStateError` for an unknown ``current_state``,
        :class:`GuardError` when a guard or expression fails or gives a non-bool,
        :class:`GuardsNotBoundError` when a guard is needed but none are bound, and
        :class:`ContextError` when a context read by a guard breaks ``context_schema``.
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
        # Most events repeat a decision already made: one lookup answers them. Only
        # known states and triggers get in, so a hit needs no further checks.
        key = (current_state, trigger)
        known = self._memo.get(key)
        if known is None:
            rules = self._rules.by_state.get(current_state)
            if rules is None:
                # A state name an earlier version stored (migrate / renamed_from) means
                # the state it was renamed to; the memo remembers it under the old name.
                current_state = self.resolve_state(current_state)
                rules = self._rules.by_state[current_state]
            candidates = rules.get(trigger)
            if candidates is None:
                decision = self._no_candidate(current_state, trigger)
                if trigger not in self._plain_events:
                    # Unknown triggers come from outside: never let them fill the memo.
                    return make_result(decision, ev or Event(trigger))
            elif candidates[0].guarded or trigger in self._payload_checks:
                plan = self._plan(candidates, trigger)
                self._remember(key, plan)
                return self._run_plan(current_state, trigger, plan, context, ev)
            else:
                decision = self._decide(current_state, candidates, ((),), ())
            known = make_result(decision, self._plain_events[trigger])
            self._remember(key, known)
        elif isinstance(known, _Plan):
            return self._run_plan(current_state, trigger, known, context, ev)
        if ev is None:
            return known
        return make_result(known.decision, ev)

    def _remember(self, key: tuple[str, str], value: TransitionResult | _Plan) -> None:
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

    def _plan(self, candidates: Candidates, trigger: str) -> _Plan:
        """Bind the checks of ``candidates`` (raises when guards are needed but unbound)."""
        checks: list[tuple[_Check, ...]] = []
        for t in candidates:
            mine: list[_Check] = []
            if t.when is not None:
                mine.append((label(t.when), _EXPRESSION, self._expressions[t.when], None))
            for call in t.guards:
                if self._guards is None:
                    raise GuardsNotBoundError(call.name)
                fn, style = self._guards[call]
                mine.append((call.name, style, fn, dict(call.params) if call.params else None))
            checks.append(tuple(mine))
            if not mine:
                break  # it always passes: nothing after it can be reached
        return _Plan(candidates, tuple(checks), self._payload_checks.get(trigger), {})

    def _run_plan(
        self,
        state: str,
        trigger: str,
        plan: _Plan,
        context: object,
        ev: Event | None,
    ) -> TransitionResult:
        if ev is None:
            ev = self._plain_events[trigger]
        payload = ev.payload
        if plan.payload is not None:
            problems = plan.payload(payload)
            if problems:
                decision = Decision.rejected(state, trigger, _PAYLOAD, problems=tuple(problems))
                return make_result(decision, ev)
        checks = plan.checks
        if not checks[0]:
            verdicts: tuple[int, ...] = (-1,)  # the first candidate always passes
        else:
            # Inline, not a helper: this loop is the guarded hot path, and a Python
            # call costs as much as a guard. Per candidate, in order: the index of
            # the check that said no, or -1 for the one that passed (the last).
            if context is None:
                ctx: Mapping[str, Any] = _EMPTY_CONTEXT
            elif type(context) is dict:
                ctx = context
            else:
                ctx = as_mapping(context)
            if self._context_check is not None:
                problems = self._context_check(ctx)
                if problems:
                    raise ContextError(problems)
            # The payload is a FrozenDict: read its dict directly, at C speed.
            merged = make_view(ctx, None if payload is EMPTY else _raw(payload))
            verdicts = ()
            for t, mine in plan.steps:
                failed = -1
                for i, (name, style, fn, params) in enumerate(mine):
                    try:
                        if style == 1:  # _CTX (a literal: no global lookup per guard)
                            ok = fn(merged) if params is None else fn(merged, **params)
                        elif style == 2:  # _CTX_EVENT
                            view = make_view(ctx, None)
                            ok = fn(view, ev) if params is None else fn(view, ev, **params)
                        else:
                            ok = fn.evaluate(ctx, payload, state)
                    except ExpressionFailed as exc:
                        raise GuardError(name, state, trigger, self._index(t), str(exc)) from exc
                    except Exception as exc:
                        raise GuardError(name, state, trigger, self._index(t)) from exc
                    if ok is not True:
                        if ok is not False:
                            got = type(ok).__name__
                            raise GuardError(
                                name,
                                state,
                                trigger,
                                self._index(t),
                                f"it must return a bool, got {got}",
                            ) from TypeError(f"guard {name!r} must return a bool, got {got}")
                        failed = i
                        break
                verdicts += (failed,)
                if failed < 0:
                    break
        known = plan.outcomes.get(verdicts)
        if known is None:
            # At most one entry per way the checks can answer: bounded by the spec.
            labels = tuple(tuple(c[0] for c in mine) for mine in checks)
            decision = self._decide(state, plan.candidates, labels, verdicts)
            known = plan.outcomes[verdicts] = make_result(decision, self._plain_events[trigger])
        return make_result(known.decision, ev)

    def _decide(
        self,
        state: str,
        candidates: Candidates,
        labels: tuple[tuple[str, ...], ...],
        verdicts: tuple[int, ...],
    ) -> Decision:
        """Build the decision for ``verdicts`` (see ``_run_plan``); memoized by callers."""
        trace: list[TraceStep] = []
        for t, names, failed in zip(candidates, labels, verdicts or (-1,), strict=False):
            if failed < 0:
                steps = tuple((name, True) for name in names)
                trace.append(TraceStep(t, steps, selected=True))
                source = self._rules.states[state]
                dest = None if t.dest is None else self._rules.states[t.dest]
                return Decision.transitioned(source, dest, t, tuple(trace))
            steps = (*((name, True) for name in names[:failed]), (names[failed], False))
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
        state = self.resolve_state(state)  # an unknown state is a bug: raise
        edge = self._rules.timeouts.get(state)
        if edge is None:
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
        payload: dict[str, str | None]
        if isinstance(error, BaseException):
            payload = {"error": str(error), "error_type": type(error).__name__}
        else:
            payload = {"error": str(error), "error_type": None}
        event = Event(ERROR_TRIGGER, payload, event_id)
        current_state = self.resolve_state(current_state)
        edge = self._rules.fallbacks.get(current_state)
        if edge is None:
            code = _TERMINAL if current_state in self._rules.terminal else _INVALID
            return make_result(Decision.rejected(current_state, ERROR_TRIGGER, code), event)
        return self._edge_result(current_state, edge, event)

    def _edge_result(self, state: str, edge: Transition, event: Event) -> TransitionResult:
        source = self._rules.states[state]
        dest = self._rules.states[edge.dest or state]
        steps = (TraceStep(edge, (), selected=True),)
        return make_result(Decision.transitioned(source, dest, edge, steps), event)

    # -- queries ---------------------------------------------------------------------

    def resolve_state(self, name: str) -> str:
        """``name``, or the state an old stored name (``migrate``, ``renamed_from``) means
        now; :class:`UndefinedStateError` for a name that is neither."""
        if name in self._rules.states:
            return name
        new = self._rules.aliases.get(name)
        if new is None:
            raise UndefinedStateError(name, self._rules.states)
        return new

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

    def can_transition(self, state: str, trigger: str | Event, context: object = None) -> bool:
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


def compile_expressions(
    definition: MachineDefinition,
) -> tuple[dict[str, Expression], list[Issue]]:
    """Every ``when:`` of ``definition`` compiled, and an issue for each that is not."""
    compiled: dict[str, Expression] = {}
    issues: list[Issue] = []
    for i, t in enumerate(definition.transitions):
        if t.when is None or t.when in compiled:
            continue
        try:
            compiled[t.when] = compile_expression(t.when)
        except ExpressionError as exc:
            issues.append(
                Issue("expression", ("transitions", i, "when"), str(exc), got=repr(t.when))
            )
        except MissingExtraError as exc:
            issues.append(Issue("expression", ("transitions", i, "when"), str(exc)))
    return compiled, issues


def _call_problem(fn: Callable[..., Any], call: GuardCall, elsewhere: set[str]) -> int | str:
    """The call style of ``fn`` with ``call``'s params, or why it cannot be called.

    ``elsewhere`` are the param names other uses of the guard give it: a parameter
    named like one of them is a param, not the event, even when this use omits it.
    """
    try:
        style = call_style(fn, call.params, kind="guard")
    except TypeError as exc:
        return str(exc)
    if style == 2 and not call.params:
        second = positional_names(fn)[1]
        if second in elsewhere:
            return f"missing a required argument: {second!r} (other uses give it as a param)"
    problem = params_problem(fn, call.params, style)
    if problem is not None and style == 2 and call.params:
        # fn(ctx, limit) given {limt: 1}: explain it as the param guard it most likely is.
        problem = params_problem(fn, call.params, 1) or problem
    return style if problem is None else problem


def _schema_checks(
    definition: MachineDefinition, schemas: SchemaCompiler | None, source: Locator | None
) -> tuple[dict[str, SchemaCheck], SchemaCheck | None]:
    wanted: dict[tuple[str | int, ...], Mapping[str, Any]] = {
        ("triggers", name, "payload_schema"): spec.payload_schema
        for name, spec in definition.triggers.items()
        if spec.payload_schema is not None
    }
    if definition.context_schema is not None:
        wanted[("context_schema",)] = definition.context_schema
    if not wanted:
        return {}, None
    if schemas is None:
        raise TypeError(
            "this machine has JSON Schemas (payload_schema or context_schema): build it "
            "with StateMachine, or pass schemas= a SchemaCompiler"
        )
    compiled: dict[tuple[str | int, ...], SchemaCheck] = {}
    issues: list[Issue] = []
    for path, schema in wanted.items():
        try:
            compiled[path] = schemas(schema)
        except ValueError as exc:
            issues.append(Issue("schema", path, str(exc), expected="a valid JSON Schema"))
    if issues:
        raise SpecError(problems_for(issues, source))
    context = compiled.pop(("context_schema",), None)
    return {str(path[1]): check for path, check in compiled.items()}, context


def _raw(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    """The dict inside an event's FrozenDict payload (read-only use only)."""
    return payload._data if isinstance(payload, FrozenDict) else payload
