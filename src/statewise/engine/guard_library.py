"""Ready-made guards, built by typed factories: ``equals("side", "buy")``.

Every built-in guard reads one key of the guard's view (context first, then payload)
and is False when the key is missing, so a missing field never opens a transition.
Ordering comparisons are also False when the value is ``None``; comparing values of
incomparable types (``"5" > 3``) raises, which ``process`` reports as a
:class:`~statewise.errors.GuardError`: bad data is a bug, not a "no".
Each guard has a readable ``repr`` (``equals('side', 'buy')``) for traces and logs.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Collection, Mapping
from typing import Any

from statewise.engine.guards import ContextGuard

__all__ = [
    "all_of",
    "any_of",
    "equals",
    "greater_or_equal",
    "greater_than",
    "has_key",
    "in_list",
    "is_not_none",
    "is_truthy",
    "less_or_equal",
    "less_than",
    "negate",
    "none_of",
    "not_equals",
    "not_in_list",
]

_MISSING: Any = object()


class _Guard:
    """A named predicate over the guard view; callers see only ``(ctx) -> bool``."""

    __slots__ = ("_description", "_test")

    def __init__(self, description: str, test: Callable[[Mapping[str, Any]], bool]) -> None:
        self._description = description
        self._test = test

    def __call__(self, ctx: Mapping[str, Any]) -> bool:
        return self._test(ctx)

    def __repr__(self) -> str:
        return self._description


def _on_key(
    name: str, key: str, arg: object, test: Callable[[Any], bool], *, none_is_false: bool = False
) -> ContextGuard:
    def check(ctx: Mapping[str, Any]) -> bool:
        value = ctx.get(key, _MISSING)
        if value is _MISSING or (none_is_false and value is None):
            return False
        return bool(test(value))

    args = repr(key) if arg is _MISSING else f"{key!r}, {arg!r}"
    return _Guard(f"{name}({args})", check)


def _compare(name: str, op: Callable[[Any, Any], Any]) -> Callable[[str, Any], ContextGuard]:
    def factory(key: str, value: Any) -> ContextGuard:
        return _on_key(name, key, value, lambda v: op(v, value), none_is_false=True)

    factory.__name__ = name
    factory.__doc__ = (
        f"True when ``ctx[key] {name.replace('_', ' ')} value`` (missing/None: False)."
    )
    return factory


def equals(key: str, value: object) -> ContextGuard:
    """True when ``ctx[key] == value`` (missing: False)."""
    return _on_key("equals", key, value, lambda v: v == value)


def not_equals(key: str, value: object) -> ContextGuard:
    """True when the key is present and ``ctx[key] != value`` (missing: False)."""
    return _on_key("not_equals", key, value, lambda v: v != value)


greater_than = _compare("greater_than", operator.gt)
less_than = _compare("less_than", operator.lt)
greater_or_equal = _compare("greater_or_equal", operator.ge)
less_or_equal = _compare("less_or_equal", operator.le)


def in_list(key: str, values: Collection[object]) -> ContextGuard:
    """True when ``ctx[key]`` is one of ``values`` (missing: False)."""
    frozen = tuple(values)
    return _on_key("in_list", key, list(frozen), lambda v: v in frozen)


def not_in_list(key: str, values: Collection[object]) -> ContextGuard:
    """True when the key is present and ``ctx[key]`` is none of ``values``."""
    frozen = tuple(values)
    return _on_key("not_in_list", key, list(frozen), lambda v: v not in frozen)


def has_key(key: str) -> ContextGuard:
    """True when ``key`` is in the context or the payload (even with value ``None``)."""
    return _Guard(f"has_key({key!r})", lambda ctx: key in ctx)


def is_truthy(key: str) -> ContextGuard:
    """True when ``ctx[key]`` is truthy (missing: False)."""
    return _on_key("is_truthy", key, _MISSING, bool)


def is_not_none(key: str) -> ContextGuard:
    """True when the key is present and its value is not ``None``."""
    return _on_key("is_not_none", key, _MISSING, lambda v: v is not None)


def _combine(
    name: str, guards: tuple[ContextGuard, ...], test: Callable[[Mapping[str, Any]], bool]
) -> ContextGuard:
    if not guards:
        raise ValueError(f"{name}() needs at least one guard")
    for g in guards:
        if not callable(g):
            raise TypeError(f"{name}() takes guards, got {type(g).__name__}")
    return _Guard(f"{name}({', '.join(map(repr, guards))})", test)


def all_of(*guards: ContextGuard) -> ContextGuard:
    """True when every guard is True (stops at the first False)."""
    return _combine("all_of", guards, lambda ctx: all(g(ctx) for g in guards))


def any_of(*guards: ContextGuard) -> ContextGuard:
    """True when at least one guard is True (stops at the first True)."""
    return _combine("any_of", guards, lambda ctx: any(g(ctx) for g in guards))


def none_of(*guards: ContextGuard) -> ContextGuard:
    """True when no guard is True."""
    return _combine("none_of", guards, lambda ctx: not any(g(ctx) for g in guards))


def negate(guard: ContextGuard) -> ContextGuard:
    """True when ``guard`` is False. Note: ``negate(equals(k, v))`` is True for a missing k."""
    return _combine("negate", (guard,), lambda ctx: not guard(ctx))
