"""Read-only views handed to guards: they can read the context and payload, never write.

A view wraps, it does not copy: building one costs the same whatever the size of the
context. Nested dicts and lists are wrapped too, on access, so a guard cannot reach
through a view and change the caller's data.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, cast, overload

__all__ = ["ReadOnlyList", "ReadOnlyView", "make_view", "read_only"]

_MISSING: Any = object()
_NO_FALLBACK: dict[str, Any] = {}


def read_only(value: Any) -> Any:
    """``value`` itself, or a read-only view of it when it is a dict or a list."""
    t = type(value)
    if t is dict:
        return ReadOnlyView(value)
    if t is list:
        return ReadOnlyList(value)
    return value


class ReadOnlyView(Mapping[str, Any]):
    """``primary`` overlaid on ``fallback``: a key is looked up in ``primary`` first.

    The engine passes the stored context as ``primary`` and the event payload as
    ``fallback``: the payload fills in what the context lacks and never overrides it.
    """

    __slots__ = ("_fallback", "_primary")

    def __init__(
        self, primary: Mapping[str, Any], fallback: Mapping[str, Any] = _NO_FALLBACK
    ) -> None:
        self._primary = primary
        self._fallback = fallback

    def __getitem__(self, key: str) -> Any:
        value = self._primary.get(key, _MISSING)
        if value is _MISSING:
            value = self._fallback[key]
        t = type(value)
        if t is dict or t is list:
            return read_only(value)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        value = self._primary.get(key, _MISSING)
        if value is _MISSING:
            value = self._fallback.get(key, _MISSING)
            if value is _MISSING:
                return default
        t = type(value)
        if t is dict or t is list:
            return read_only(value)
        return value

    def __contains__(self, key: object) -> bool:
        return key in self._primary or key in self._fallback

    def __iter__(self) -> Iterator[str]:
        yield from self._primary
        for key in self._fallback:
            if key not in self._primary:
                yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"ReadOnlyView({dict(self.items())!r})"


_new = object.__new__
_set_primary = cast(Any, ReadOnlyView.__dict__["_primary"]).__set__
_set_fallback = cast(Any, ReadOnlyView.__dict__["_fallback"]).__set__


def make_view(primary: Mapping[str, Any], fallback: Mapping[str, Any] | None) -> ReadOnlyView:
    """``ReadOnlyView(primary, fallback)`` without a Python-level ``__init__`` (hot path)."""
    view: ReadOnlyView = _new(ReadOnlyView)
    _set_primary(view, primary)
    _set_fallback(view, _NO_FALLBACK if fallback is None else fallback)
    return view


class ReadOnlyList(Sequence[Any]):
    """A read-only view of a list; nested dicts and lists come back as views."""

    __slots__ = ("_items",)

    def __init__(self, items: list[Any]) -> None:
        self._items = items

    @overload
    def __getitem__(self, index: int) -> Any: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Any]: ...
    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return tuple(read_only(v) for v in self._items[index])
        return read_only(self._items[index])

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"ReadOnlyList({self._items!r})"
