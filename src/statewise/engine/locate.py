"""Turning semantic issues (paths into the spec) into located problems.

A machine loaded from text keeps a :class:`Locator` (the document's line index) so
that problems found after loading, when guards or actions are bound, still point at
file:line:col. A machine built in code has none, and its problems carry paths only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from statewise.errors import Problem, format_path
from statewise.model.checks import Issue

__all__ = ["Locator", "problems_for"]


class Locator(Protocol):
    """Where a path of the spec stands in its source file, for error messages."""

    def problem(
        self,
        path: tuple[str | int, ...],
        message: str,
        *,
        key: bool = ...,
        expected: str | None = ...,
        got: str | None = ...,
    ) -> Problem: ...


def problems_for(issues: Iterable[Issue], source: Locator | None) -> list[Problem]:
    """``issues`` as :class:`Problem` records, located through ``source`` when given."""
    make: Callable[[Issue], Problem]
    if source is None:

        def make(i: Issue) -> Problem:
            return Problem(format_path(i.path), i.message, expected=i.expected, got=i.got)
    else:

        def make(i: Issue) -> Problem:
            return source.problem(i.path, i.message, expected=i.expected, got=i.got)

    return [make(i) for i in issues]
