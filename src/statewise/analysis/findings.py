"""What analysis reports: a :class:`Finding` per problem, with where and why.

A finding's ``code`` is stable (tools and ``--ignore`` lists rely on it); its
``counterexample``, when there is one, is the shortest sequence of triggers from the
initial state that shows the problem. ``states`` and ``transitions`` name what the
finding is about, so a diagram can highlight it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

__all__ = ["Finding", "Severity"]


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing analysis found. ``line``/``column`` are 1-based, ``None`` when the
    machine was not loaded from text; ``path`` is the spec path (``transitions[3]``)."""

    code: str
    severity: Severity
    message: str
    path: str = ""
    file: str | None = None
    line: int | None = None
    column: int | None = None
    counterexample: tuple[str, ...] | None = None
    states: tuple[str, ...] = ()
    transitions: tuple[int, ...] = ()

    def __str__(self) -> str:
        where = self.file or "<spec>"
        if self.line is not None:
            where = f"{where}:{self.line}:{self.column}"
        text = f"{where}: {self.severity}[{self.code}]: {self.message}"
        if self.counterexample is not None:
            text += f" (from the initial state: {' -> '.join(self.counterexample) or 'no events'})"
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe, with stable keys (the CLI's ``--format json`` prints these)."""
        return {
            "code": self.code,
            "severity": str(self.severity),
            "message": self.message,
            "path": self.path,
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "counterexample": None if self.counterexample is None else list(self.counterexample),
            "states": list(self.states),
            "transitions": list(self.transitions),
        }
