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
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar, overload

from statewise.engine.locate import Locator, problems_for
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
A = TypeVar("A", bound=Callable[..., Any])

IDEMPOTENCY_KEY = "idempotency_key"
"""The keyword the executor passes the idempotency key as; reserved in a spec's params."""

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
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


class ActionRegistry:
    """Names to action callables. Register at start-up; check against machines; then read only.

    Registering a name twice is an error (a silent replacement would change what a
    spec does); pass ``replace=True`` to mean it. A function that cannot take the
    context positionally is refused at registration, not when it first runs.
    """

    __slots__ = ("_entries",)

    def __init__(self, actions: Mapping[str, ActionFunction] | None = None) -> None:
        self._entries: dict[str, RegisteredAction] = {}
        for name, fn in (actions or {}).items():
            self.register(name, fn)

    @overload
    def register(self, name: str, fn: A, *, replace: bool = ...) -> A: ...
    @overload
    def register(self, name: str, fn: None = ..., *, replace: bool = ...) -> Callable[[A], A]: ...
    @overload
    def register(self, name: A, fn: None = ..., *, replace: bool = ...) -> A: ...
    def register(
        self, name: str | A, fn: A | None = None, *, replace: bool = False
    ) -> A | Callable[[A], A]:
        """``register(name, fn)``, or as a decorator: ``@reg.register("name")`` / ``@reg.register``.

        Returns ``fn`` unchanged, so decorated functions stay callable and testable.
        """
        if not isinstance(name, str):
            return self._add(getattr(name, "__name__", repr(name)), name, replace)
        if fn is None:
            label = name

            def decorator(f: A) -> A:
                return self._add(label, f, replace)

            return decorator
        return self._add(name, fn, replace)

    def _add(self, name: str, fn: A, replace: bool) -> A:
        if not isinstance(name, str) or not _IDENTIFIER.match(name):
            raise ValueError(f"action name must be an identifier, got {name!r}")
        if name in self._entries and not replace:
            raise ValueError(f"action {name!r} is registered already (pass replace=True)")
        self._entries[name] = _registered(name, fn)
        return fn

    def has(self, name: str) -> bool:
        return name in self._entries

    __contains__ = has

    def get(self, name: str) -> ActionFunction:
        return self.entry(name).fn

    def entry(self, name: str) -> RegisteredAction:
        """The function registered as ``name`` with how it is called; ``KeyError`` if none."""
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise KeyError(f"no action named {name!r}; registered: {known}") from None

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def snapshot(self) -> dict[str, RegisteredAction]:
        """A copy of name -> :class:`RegisteredAction`, taken when an executor starts."""
        return dict(self._entries)

    def __repr__(self) -> str:
        return f"ActionRegistry({sorted(self._entries)})"


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
