"""The action registry, and the start-up check that a definition's actions are all there.

An action is called ``fn(ctx, **params)``: ``ctx`` is the read-only view guards get
(the context, with the event payload filling in what it lacks) and ``params`` are the
spec's. An action that declares ``idempotency_key`` (or takes ``**kwargs``) is also
passed a key that is the same each time the same event is executed, so that it can
make its side effect at most once. Running actions is ``statewise.execution``'s
business; this module only names and checks them, and stays pure.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeAlias

from statewise.engine.locate import Locator, problems_for
from statewise.engine.registry import Registry
from statewise.engine.signatures import accepts_keyword, params_problem
from statewise.errors import ActionNotFoundError, SpecError, did_you_mean
from statewise.model.checks import Issue
from statewise.model.definition import ActionCall, MachineDefinition

__all__ = [
    "IDEMPOTENCY_KEY",
    "ActionFunction",
    "ActionRegistry",
    "RegisteredAction",
    "action_uses",
    "check_actions",
]

ActionFunction: TypeAlias = Callable[..., Any]

IDEMPOTENCY_KEY = "idempotency_key"
"""The keyword the executor passes the idempotency key as; reserved in a spec's params."""

_POSITIONAL = (
    inspect.Parameter.POSITIONAL_ONLY,
    inspect.Parameter.POSITIONAL_OR_KEYWORD,
    inspect.Parameter.VAR_POSITIONAL,
)

Path: TypeAlias = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class RegisteredAction:
    """An action function and how it is called, read once from its signature.

    ``takes_idempotency_key``: it declares ``idempotency_key`` or takes ``**kwargs``.
    ``is_async``: it is a coroutine function (or an object whose ``__call__`` is one),
    so only an async executor can run it.
    """

    name: str
    fn: ActionFunction
    takes_idempotency_key: bool
    is_async: bool


def _registered(name: str, fn: ActionFunction) -> RegisteredAction:
    if not callable(fn):
        raise TypeError(f"an action must be callable, got {type(fn).__name__}")
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # some builtins have no signature: assume fn(ctx)
        params = None
    if params is not None and not any(p.kind in _POSITIONAL for p in params):
        raise TypeError(
            f"action {name!r} must take the context as its first positional parameter, "
            f"got signature {inspect.signature(fn)}"
        )
    is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - a callable object's own __call__
    )
    return RegisteredAction(name, fn, accepts_keyword(fn, IDEMPOTENCY_KEY), is_async)


class ActionRegistry(Registry[RegisteredAction]):
    """Names to action callables. Register at start-up; check against machines; then
    read only. A function that cannot take the context positionally is refused at
    registration, not when it first runs."""

    __slots__ = ()
    kind = "action"

    def _entry(self, name: str, fn: Callable[..., Any]) -> RegisteredAction:
        return _registered(name, fn)

    def get(self, name: str) -> ActionFunction:
        return self.entry(name).fn


def action_uses(definition: MachineDefinition) -> Iterator[tuple[Path, ActionCall]]:
    """Every action call in ``definition`` with its path in the spec, state by state
    (``on_enter``, ``on_exit``, ``timeout.actions``), then transition by transition."""
    for i, state in enumerate(definition.states):
        for k, call in enumerate(state.on_enter):
            yield ("states", i, "on_enter", k), call
        for k, call in enumerate(state.on_exit):
            yield ("states", i, "on_exit", k), call
        if state.timeout is not None:
            for k, call in enumerate(state.timeout.actions):
                yield ("states", i, "timeout", "actions", k), call
    for i, transition in enumerate(definition.transitions):
        for k, call in enumerate(transition.actions):
            yield ("transitions", i, "actions", k), call


def _params_issue(path: Path, call: ActionCall, entry: RegisteredAction) -> Issue | None:
    where = (*path, "params") if call.params else path
    given = ", ".join(call.params) or "none"
    if IDEMPOTENCY_KEY in call.params:
        return Issue(
            "action-params",
            (*where, IDEMPOTENCY_KEY),
            f"action {call.name!r}: {IDEMPOTENCY_KEY} is passed by the executor, "
            "a spec may not set it",
            expected="params other than idempotency_key",
            got=given,
        )
    # The executor passes the key to every action that accepts it: bind it too, or an
    # action requiring it (``*, idempotency_key``) would look uncallable.
    names = [*call.params, IDEMPOTENCY_KEY] if entry.takes_idempotency_key else list(call.params)
    why = params_problem(entry.fn, names, 1, extra=(IDEMPOTENCY_KEY,))
    if why is None:
        return None
    return Issue(
        "action-params",
        where,
        f"action {call.name!r} cannot take these params: {why}",
        expected="params the action's signature accepts",
        got=given,
    )


def check_actions(
    definition: MachineDefinition, registry: ActionRegistry, source: Locator | None = None
) -> None:
    """Check, at start-up, that every action ``definition`` names is in ``registry`` and
    can be called with the params the spec gives it.

    Raises :class:`ActionNotFoundError` (``names``: the missing actions, in first-use
    order) when any is missing, else :class:`SpecError` when only params are wrong;
    either lists every problem, located through ``source`` when given and in document
    order. Returns ``None`` when all is well.
    """
    missing: dict[str, None] = {}
    issues: list[Issue] = []
    known = registry.names
    for path, call in action_uses(definition):
        if not registry.has(call.name):
            missing[call.name] = None
            issues.append(
                Issue(
                    "unknown-action",
                    path,
                    f"action {call.name!r} is not registered{did_you_mean(call.name, known)}",
                    expected="a registered action",
                    got=repr(call.name),
                )
            )
            continue
        issue = _params_issue(path, call, registry.entry(call.name))
        if issue is not None:
            issues.append(issue)
    if not issues:
        return
    problems = problems_for(issues, source)
    # Stable: problems without a position keep the order of the definition.
    problems.sort(key=lambda p: (p.line or 0, p.column or 0))
    if missing:
        raise ActionNotFoundError(missing, problems)
    raise SpecError(problems)
