"""Immutable, hashable containers and the deep freeze/thaw that produce them.

Definitions, events and results hold only values built here (or tuples, frozensets,
strings and numbers), so they can be shared between threads, cached and hashed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, TypeVar, overload

__all__ = ["EMPTY", "FrozenDict", "deep_freeze", "thaw"]

K = TypeVar("K")
V = TypeVar("V")


class FrozenDict(Mapping[K, V]):
    """A read-only, hashable mapping. Build it once; derive changed copies with ``|``."""

    __slots__ = ("_data", "_hash")

    _data: dict[K, V]
    _hash: int | None

    def __init__(self, data: Mapping[K, V] | None = None) -> None:
        object.__setattr__(self, "_data", dict(data) if data else {})
        object.__setattr__(self, "_hash", None)

    @classmethod
    def _adopt(cls, data: dict[K, V]) -> FrozenDict[K, V]:
        """Wrap ``data`` without copying it: the caller gives up its only reference."""
        new = object.__new__(cls)
        object.__setattr__(new, "_data", data)
        object.__setattr__(new, "_hash", None)
        return new

    def __getitem__(self, key: K) -> V:
        return self._data[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def get(self, key: K, default: Any = None) -> Any:
        return self._data.get(key, default)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenDict):
            return self._data == other._data
        if isinstance(other, Mapping):
            return self._data == dict(other.items())
        return NotImplemented

    def __hash__(self) -> int:
        h = self._hash
        if h is None:
            h = hash(frozenset(self._data.items()))
            object.__setattr__(self, "_hash", h)
        return h

    def __or__(self, other: Mapping[K, V]) -> FrozenDict[K, V]:
        return FrozenDict({**self._data, **other})

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __repr__(self) -> str:
        return f"FrozenDict({self._data!r})"

    def __reduce__(self) -> tuple[object, ...]:
        return (FrozenDict, (self._data,))


EMPTY: FrozenDict[Any, Any] = FrozenDict()


@overload
def deep_freeze(value: Mapping[Any, Any]) -> FrozenDict[Any, Any]: ...
@overload
def deep_freeze(value: Any) -> Any: ...
def deep_freeze(value: Any) -> Any:
    """Mappings become :class:`FrozenDict`, lists and tuples tuples, sets frozensets.

    Other values are kept as they are (strings, numbers, ``None``, user objects).
    """
    t = type(value)
    if t in _SCALARS:  # the common case, checked without any ABC machinery
        return value
    if t is FrozenDict and all(type(v) in _SCALARS for v in value._data.values()):
        return value
    if t is dict or t is FrozenDict or (t is not str and isinstance(value, Mapping)):
        if not value:
            return EMPTY
        return FrozenDict._adopt(
            {k: v if type(v) in _SCALARS else deep_freeze(v) for k, v in value.items()}
        )
    if t is list or t is tuple or isinstance(value, list | tuple):
        return tuple([v if type(v) in _SCALARS else deep_freeze(v) for v in value])
    if isinstance(value, set | frozenset):
        return frozenset(deep_freeze(v) for v in value)
    return value


_SCALARS = frozenset({str, int, float, bool, type(None), bytes})


def thaw(value: Any) -> Any:
    """The inverse of :func:`deep_freeze` for JSON: mappings to dicts, sequences to lists."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [thaw(v) for v in value]
    if isinstance(value, set | frozenset):
        return [thaw(v) for v in sorted(value, key=repr)]
    return value
