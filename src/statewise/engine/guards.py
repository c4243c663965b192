"""The guard registry: names used in a spec, bound to Python callables.

A guard is called in one of two styles, chosen by how many parameters it takes:

* ``fn(ctx)``: one read-only mapping in which the event payload fills in keys the
  context lacks (the context wins on a clash: it is the trusted, stored state);
* ``fn(context, event)``: the read-only context and the :class:`Event`, apart.

A guard returns a ``bool``. Anything else, or an exception, is a bug and makes
``process`` raise :class:`~statewise.errors.GuardError`; it never counts as False.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeAlias, TypeVar, overload

from statewise.model.event import Event

__all__ = ["ContextGuard", "EventGuard", "GuardFunction", "GuardRegistry", "guard_arity"]

ContextGuard: TypeAlias = Callable[[Mapping[str, Any]], bool]
EventGuard: TypeAlias = Callable[[Mapping[str, Any], Event], bool]
GuardFunction: TypeAlias = ContextGuard | EventGuard
G = TypeVar("G", bound=Callable[..., Any])

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def guard_arity(fn: Callable[..., Any]) -> int:
    """1 for ``fn(ctx)``, 2 for ``fn(context, event)``; ``TypeError`` for anything else."""
    if not callable(fn):
        raise TypeError(f"a guard must be callable, got {type(fn).__name__}")
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # some builtins have no signature: assume fn(ctx)
        return 1
    positional = [p for p in params if p.kind in _POSITIONAL]
    required = sum(1 for p in positional if p.default is p.empty)
    variadic = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params)
    if required == 2:
        return 2
    if required == 1 or (required == 0 and (positional or variadic)):
        return 1
    raise TypeError(
        f"guard {getattr(fn, '__name__', fn)!r} must take (ctx) or (context, event), "
        f"got signature {inspect.signature(fn)}"
    )


class GuardRegistry:
    """Names to guard callables. Register at start-up; bind to machines; then read only.

    Registering a name twice is an error (a silent replacement would change what a
    spec means); pass ``replace=True`` to mean it.
    """

    __slots__ = ("_entries",)

    def __init__(self, guards: Mapping[str, GuardFunction] | None = None) -> None:
        self._entries: dict[str, tuple[Callable[..., Any], int]] = {}
        for name, fn in (guards or {}).items():
            self.register(name, fn)

    @overload
    def register(self, name: str, fn: G, *, replace: bool = ...) -> G: ...
    @overload
    def register(self, name: str, fn: None = ..., *, replace: bool = ...) -> Callable[[G], G]: ...
    @overload
    def register(self, name: G, fn: None = ..., *, replace: bool = ...) -> G: ...
    def register(
        self, name: str | G, fn: G | None = None, *, replace: bool = False
    ) -> G | Callable[[G], G]:
        """``register(name, fn)``, or as a decorator: ``@reg.register("name")`` / ``@reg.register``.

        Returns ``fn`` unchanged, so decorated functions stay callable and testable.
        """
        if not isinstance(name, str):
            return self._add(getattr(name, "__name__", repr(name)), name, replace)
        if fn is None:
            label = name

            def decorator(f: G) -> G:
                return self._add(label, f, replace)

            return decorator
        return self._add(name, fn, replace)

    def _add(self, name: str, fn: G, replace: bool) -> G:
        if not isinstance(name, str) or not _IDENTIFIER.match(name):
            raise ValueError(f"guard name must be an identifier, got {name!r}")
        if name in self._entries and not replace:
            raise ValueError(f"guard {name!r} is registered already (pass replace=True)")
        self._entries[name] = (fn, guard_arity(fn))
        return fn

    def has(self, name: str) -> bool:
        return name in self._entries

    __contains__ = has

    def get(self, name: str) -> GuardFunction:
        try:
            return self._entries[name][0]
        except KeyError:
            raise KeyError(
                f"no guard named {name!r}; registered: {', '.join(sorted(self._entries)) or 'none'}"
            ) from None

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def snapshot(self) -> dict[str, tuple[Callable[..., Any], int]]:
        """A copy of name -> (function, arity), taken when a machine binds."""
        return dict(self._entries)

    def __repr__(self) -> str:
        return f"GuardRegistry({sorted(self._entries)})"
