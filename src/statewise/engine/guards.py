"""The guard registry: names used in a spec, bound to Python callables.

A guard is called in one of two styles, chosen by how many positional parameters
it takes (besides the ``params`` the spec passes it as keyword arguments):

* ``fn(ctx, **params)``: one read-only mapping in which the event payload fills in
  keys the context lacks (the context wins on a clash: it is the trusted, stored
  state);
* ``fn(context, event, **params)``: the read-only context and the :class:`Event`.

The style is read when a machine binds the guard, against the params each use in
the spec passes (see :mod:`statewise.engine.signatures`).

A guard returns a ``bool``. Anything else, or an exception, is a bug and makes
``process`` raise :class:`~statewise.errors.GuardError`; it never counts as False.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeAlias, TypeVar, overload

from statewise.engine.signatures import call_style
from statewise.model.event import Event

__all__ = ["ContextGuard", "EventGuard", "GuardFunction", "GuardRegistry", "guard_arity"]

ContextGuard: TypeAlias = Callable[[Mapping[str, Any]], bool]
EventGuard: TypeAlias = Callable[[Mapping[str, Any], Event], bool]
GuardFunction: TypeAlias = ContextGuard | EventGuard
G = TypeVar("G", bound=Callable[..., Any])

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def guard_arity(fn: Callable[..., Any]) -> int:
    """1 for ``fn(ctx)``, 2 for ``fn(context, event)``; ``TypeError`` for anything else."""
    return call_style(fn, (), kind="guard")


class GuardRegistry:
    """Names to guard callables. Register at start-up; bind to machines; then read only.

    Registering a name twice is an error (a silent replacement would change what a
    spec means); pass ``replace=True`` to mean it.
    """

    __slots__ = ("_entries",)

    def __init__(self, guards: Mapping[str, GuardFunction] | None = None) -> None:
        self._entries: dict[str, Callable[..., Any]] = {}
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
        if not callable(fn):
            raise TypeError(f"guard {name!r} must be callable, got {type(fn).__name__}")
        self._entries[name] = fn
        return fn

    def has(self, name: str) -> bool:
        return name in self._entries

    __contains__ = has

    def get(self, name: str) -> GuardFunction:
        try:
            return self._entries[name]
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

    def snapshot(self) -> dict[str, Callable[..., Any]]:
        """A copy of name -> function, taken when a machine binds."""
        return dict(self._entries)

    def __repr__(self) -> str:
        return f"GuardRegistry({sorted(self._entries)})"
