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

from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

from statewise.engine.registry import Registry
from statewise.engine.signatures import call_style
from statewise.model.event import Event

__all__ = ["ContextGuard", "EventGuard", "GuardFunction", "GuardRegistry", "guard_arity"]

ContextGuard: TypeAlias = Callable[[Mapping[str, Any]], bool]
EventGuard: TypeAlias = Callable[[Mapping[str, Any], Event], bool]
GuardFunction: TypeAlias = ContextGuard | EventGuard


def guard_arity(fn: Callable[..., Any]) -> int:
    """1 for ``fn(ctx)``, 2 for ``fn(context, event)``; ``TypeError`` for anything else."""
    return call_style(fn, (), kind="guard")


class GuardRegistry(Registry[Callable[..., Any]]):
    """Names to guard callables. Register at start-up; bind to machines; then read only.

    How each guard is called is read when a machine binds it, against the params each
    use in the spec gives it.
    """

    __slots__ = ()
    kind = "guard"

    def _entry(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(fn):
            raise TypeError(f"guard {name!r} must be callable, got {type(fn).__name__}")
        return fn

    def get(self, name: str) -> GuardFunction:
        return self.entry(name)
