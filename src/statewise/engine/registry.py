"""Names to functions: what guard and action registries share.

A spec names guards and actions; a registry maps those names to Python functions.
Register at start-up, then bind (guards) or check (actions) against machines, which
copy what they need: registering more later changes no bound machine. Registering a
name twice is an error, since a silent replacement would change what a spec means;
``replace=True`` says it is meant.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar, Generic, TypeVar, overload

__all__ = ["Registry"]

E = TypeVar("E")
F = TypeVar("F", bound=Callable[..., Any])

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class Registry(ABC, Generic[E]):
    """Name -> entry ``E`` built from each registered function by :meth:`_entry`."""

    __slots__ = ("_entries",)

    kind: ClassVar[str] = "function"
    """What is registered ("guard", "action"), for messages."""

    def __init__(self, functions: Mapping[str, Callable[..., Any]] | None = None) -> None:
        self._entries: dict[str, E] = {}
        for name, fn in (functions or {}).items():
            self.register(name, fn)

    @abstractmethod
    def _entry(self, name: str, fn: Callable[..., Any]) -> E:
        """Check ``fn`` and build its entry; raises ``TypeError`` for an unusable one."""

    @overload
    def register(self, name: str, fn: F, *, replace: bool = ...) -> F: ...
    @overload
    def register(self, name: str, fn: None = ..., *, replace: bool = ...) -> Callable[[F], F]: ...
    @overload
    def register(self, name: F, fn: None = ..., *, replace: bool = ...) -> F: ...
    def register(
        self, name: str | F, fn: F | None = None, *, replace: bool = False
    ) -> F | Callable[[F], F]:
        """``register(name, fn)``, or as a decorator: ``@reg.register("name")`` / ``@reg.register``.

        Returns ``fn`` unchanged, so decorated functions stay callable and testable.
        """
        if not isinstance(name, str):
            return self._add(getattr(name, "__name__", repr(name)), name, replace)
        if fn is None:
            label = name

            def decorator(f: F) -> F:
                return self._add(label, f, replace)

            return decorator
        return self._add(name, fn, replace)

    def _add(self, name: str, fn: F, replace: bool) -> F:
        if not isinstance(name, str) or not _IDENTIFIER.match(name):
            raise ValueError(f"{self.kind} name must be an identifier, got {name!r}")
        if name in self._entries and not replace:
            raise ValueError(f"{self.kind} {name!r} is registered already (pass replace=True)")
        self._entries[name] = self._entry(name, fn)
        return fn

    def has(self, name: str) -> bool:
        return name in self._entries

    __contains__ = has

    def entry(self, name: str) -> E:
        """The entry registered as ``name``; ``KeyError`` naming what there is if none."""
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise KeyError(f"no {self.kind} named {name!r}; registered: {known}") from None

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def snapshot(self) -> dict[str, E]:
        """A copy of name -> entry, taken when a machine binds or an executor starts."""
        return dict(self._entries)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({sorted(self._entries)})"
