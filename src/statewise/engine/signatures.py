"""How a guard or action function is called, read once from its signature.

Guards and actions are plain functions named by the spec. The spec may pass them
parameters (``params: {limit: 1000}``), which arrive as keyword arguments; what
remains positional decides the call style. Checking a function against the
parameters the spec gives it happens when it is bound, not when it first runs:
a typo in a spec's ``params`` is a load-time error, not a 3 a.m. ``TypeError``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["accepts_keyword", "call_style", "params_problem", "positional_names"]

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_KEYWORD = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def _signature(fn: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins have no signature
        return None


def call_style(fn: Callable[..., Any], keywords: Iterable[str] = (), *, kind: str = "guard") -> int:
    """1 for ``fn(ctx, **kw)``, 2 for ``fn(context, event, **kw)``; ``TypeError`` otherwise.

    ``keywords`` are the names the spec passes as keyword arguments: they do not count
    as positional parameters even when declared positional-or-keyword.
    """
    if not callable(fn):
        raise TypeError(f"a {kind} must be callable, got {type(fn).__name__}")
    sig = _signature(fn)
    if sig is None:
        return 1
    given = set(keywords)
    params = list(sig.parameters.values())
    positional = [p for p in params if p.kind in _POSITIONAL and p.name not in given]
    required = sum(1 for p in positional if p.default is p.empty)
    variadic = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params)
    if required == 2:
        return 2
    if required == 1 or (required == 0 and (positional or variadic)):
        return 1
    raise TypeError(
        f"{kind} {getattr(fn, '__name__', fn)!r} must take (ctx) or (context, event), "
        f"got signature {sig}"
    )


def positional_names(fn: Callable[..., Any]) -> list[str]:
    """The names of ``fn``'s positional parameters, in order (none without a signature)."""
    sig = _signature(fn)
    if sig is None:
        return []
    return [p.name for p in sig.parameters.values() if p.kind in _POSITIONAL]


def accepts_keyword(fn: Callable[..., Any], name: str) -> bool:
    """Whether ``fn`` takes a keyword argument ``name`` (declared, or through ``**kwargs``)."""
    sig = _signature(fn)
    if sig is None:
        return False
    for p in sig.parameters.values():
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            return True
        if p.name == name and p.kind in _KEYWORD:
            return True
    return False


def params_problem(
    fn: Callable[..., Any], params: Iterable[str], style: int, *, extra: Iterable[str] = ()
) -> str | None:
    """Why ``fn`` cannot be called with the spec's ``params`` (``None`` when it can).

    ``style`` is the positional arity (see :func:`call_style`); ``extra`` are keywords
    the library itself may pass (``idempotency_key``), checked only when declared.
    """
    sig = _signature(fn)
    if sig is None:
        return None
    names = list(params)
    try:
        sig.bind(*([None] * style), **dict.fromkeys(names))
    except TypeError as exc:
        positional = [p.name for p in sig.parameters.values() if p.kind in _POSITIONAL]
        leading = set(positional[:style])
        declared = [
            p.name
            for p in sig.parameters.values()
            if p.kind in _KEYWORD and p.name not in extra and p.name not in leading
        ]
        wanted = ", ".join(declared) if declared else "none"
        given = ", ".join(names) if names else "none"
        return f"{exc}; it takes params: {wanted}; the spec gives: {given}"
    return None
