"""Read-only views handed to guards: they can read the context and payload, never write.

A view wraps, it does not copy: building one costs the same whatever the size of the
context. Nested dicts and lists are wrapped too, on access, so a guard cannot reach
through a view and change the caller's data.

A context may be a mapping, a dataclass instance or a Pydantic model: the last two
are read through an :class:`ObjectView`, a mapping of their declared fields.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, cast, overload

__all__ = [
    "ObjectView",
    "ReadOnlyList",
    "ReadOnlyView",
    "as_mapping",
    "context_view",
    "make_view",
    "read_only",
]

_MISSING: Any = object()
_SCALARS = frozenset({str, int, float, bool, type(None), bytes})
_NO_FALLBACK: dict[str, Any] = {}


def read_only(value: Any) -> Any:
    """``value`` itself, or a read-only view of it when it is a dict, a list, a
    dataclass instance or a Pydantic model."""
    t = type(value)
    if t is dict:
        return ReadOnlyView(value)
    if t is list:
        return ReadOnlyList(value)
    fields = _fields_of(t)
    if fields is not None:
        return ObjectView(value, fields)
    return value


_FIELDS: dict[type, tuple[str, ...] | None] = {}


def _fields_of(t: type) -> tuple[str, ...] | None:
    """The declared field names of a dataclass or Pydantic model class, else ``None``."""
    try:
        return _FIELDS[t]
    except KeyError:
        pass
    names: tuple[str, ...] | None = None
    if dataclasses.is_dataclass(t):
        names = tuple(f.name for f in dataclasses.fields(t))
    else:
        # Pydantic v2 models, recognised without importing pydantic.
        model_fields = getattr(t, "model_fields", None)
        if isinstance(model_fields, Mapping) and callable(getattr(t, "model_dump", None)):
            names = tuple(model_fields)
    if len(_FIELDS) < 4096:  # classes are few; never let odd callers grow this forever
        _FIELDS[t] = names
    return names


class ObjectView(Mapping[str, Any]):
    """A dataclass instance or Pydantic model read as a mapping of its declared fields."""

    __slots__ = ("_names", "_obj")

    def __init__(self, obj: object, names: tuple[str, ...]) -> None:
        self._obj = obj
        self._names = names

    def __getitem__(self, key: str) -> Any:
        if key not in self._names:
            raise KeyError(key)
        return read_only(getattr(self._obj, key))

    def get(self, key: str, default: Any = None) -> Any:
        if key not in self._names:
            return default
        return read_only(getattr(self._obj, key))

    def __contains__(self, key: object) -> bool:
        return key in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        return f"ObjectView({self._obj!r})"


_EMPTY_CONTEXT: Mapping[str, Any] = {}


def as_mapping(context: object) -> Mapping[str, Any]:
    """A context as a mapping: ``None`` is empty, a mapping is itself, a dataclass
    instance or Pydantic model is an :class:`ObjectView`; anything else is a ``TypeError``."""
    if context is None:
        return _EMPTY_CONTEXT
    if type(context) is dict or isinstance(context, Mapping):
        return cast(Mapping[str, Any], context)
    fields = None if isinstance(context, type) else _fields_of(type(context))
    if fields is None:
        raise TypeError(
            "context must be a mapping, a dataclass instance, a Pydantic model or None, "
            f"got {type(context).__name__}"
        )
    return ObjectView(context, fields)


def context_view(context: object, payload: Mapping[str, Any] | None) -> ReadOnlyView:
    """The read-only mapping guards and actions get: the context, with the payload
    filling in the keys the context lacks (the context wins on a clash)."""
    return make_view(as_mapping(context), payload or None)


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
        if t in _SCALARS:
            return value
        return read_only(value)

    def get(self, key: str, default: Any = None) -> Any:
        value = self._primary.get(key, _MISSING)
        if value is _MISSING:
            value = self._fallback.get(key, _MISSING)
            if value is _MISSING:
                return default
        t = type(value)
        if t in _SCALARS:
            return value
        return read_only(value)

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
