"""The exception tree, and the structured problem records a bad spec produces.

Three kinds of failure, never mixed:

* a bad spec raises :class:`SpecError` at load time, listing every :class:`Problem`;
* an event that is not allowed is *returned*: a failed ``TransitionResult`` whose
  ``error`` is a :class:`TransitionError` (never raised by ``process``);
* a bug raises: an unknown stored state (:class:`UndefinedStateError`), a guard that
  raised (:class:`GuardError`), a guarded transition with no guards bound
  (:class:`GuardsNotBoundError`).

``TransitionError`` instances compare by type and attributes, so two equal results
carry equal errors.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from difflib import get_close_matches

__all__ = [
    "ActionNotFoundError",
    "ConfigurationError",
    "ContextError",
    "GuardError",
    "GuardNotFoundError",
    "GuardRejectedError",
    "GuardsNotBoundError",
    "InvalidTransitionError",
    "PayloadError",
    "Problem",
    "SpecError",
    "StatewiseError",
    "TerminalStateError",
    "TransitionError",
    "UndefinedStateError",
    "UndefinedTriggerError",
    "format_path",
]


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class StatewiseError(Exception):
    """Base of every error statewise raises or reports."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a spec: where it is, what was expected, what came in.

    ``path`` is a dotted/indexed path into the document (``transitions[3].dest``,
    empty for the document itself); ``line`` and ``column`` are 1-based and ``None``
    when the spec did not come from text (``from_dict``).
    """

    path: str
    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    expected: str | None = None
    got: str | None = None

    def __str__(self) -> str:
        where = self.file or "<spec>"
        if self.line is not None:
            where = f"{where}:{self.line}:{self.column}"
        path = f" {self.path}:" if self.path else ""
        return f"{where}:{path} {self.message}"


def format_path(path: tuple[str | int, ...]) -> str:
    """Render a path the way problems show it: ``transitions[3].dest``, ``meta["a b"]``.

    Identifier keys are joined with dots, indices go in brackets, and any other key
    is written as a JSON string in brackets so that it cannot be misread. The empty
    path (the document itself) renders as ``""``.
    """
    out: list[str] = []
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif _IDENTIFIER.match(part):
            out.append(f".{part}" if out else part)
        else:
            out.append(f"[{json.dumps(part, ensure_ascii=False)}]")
    return "".join(out)


class SpecError(StatewiseError, ValueError):
    """The spec cannot be loaded; ``problems`` lists every problem found, in order."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in the spec"
        super().__init__("\n  ".join([head, *map(str, self.problems)]))


ConfigurationError = SpecError
"""Alias kept for callers used to the seed library's name."""


class GuardNotFoundError(SpecError):
    """Guards named by the spec are missing from the registry being bound."""

    def __init__(self, names: Iterable[str], problems: Iterable[Problem]) -> None:
        self.names: tuple[str, ...] = tuple(names)
        super().__init__(problems)


class UndefinedStateError(StatewiseError, LookupError):
    """A state name the machine does not define: a corrupt stored state is a bug."""

    def __init__(self, state: str, known: Iterable[str] = ()) -> None:
        self.state = state
        hint = did_you_mean(state, known)
        super().__init__(f"undefined state {state!r}{hint}")


class GuardError(StatewiseError):
    """A guard raised while deciding; chained to the guard's own exception."""

    def __init__(
        self,
        guard: str,
        state: str,
        trigger: str,
        transition_index: int,
        detail: str | None = None,
    ) -> None:
        self.guard = guard
        self.state = state
        self.trigger = trigger
        self.transition_index = transition_index
        self.detail = detail
        super().__init__(
            f"guard {guard!r} failed while deciding {trigger!r} in state {state!r} "
            f"(transitions[{transition_index}])" + (f": {detail}" if detail else "")
        )


class ActionNotFoundError(SpecError):
    """Actions named by the spec are missing from the action registry; ``names`` lists them."""

    def __init__(self, names: Iterable[str], problems: Iterable[Problem]) -> None:
        self.names: tuple[str, ...] = tuple(names)
        super().__init__(problems)


class ContextError(StatewiseError, ValueError):
    """The context handed to ``process`` does not match the machine's ``context_schema``.

    The context comes from the caller's own database, so a mismatch is a bug and is
    raised; ``problems`` lists every mismatch.
    """

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        lines = "".join(f"\n  {_payload_line(p)}" for p in self.problems)
        super().__init__(f"the context does not match the machine's context_schema:{lines}")


class GuardsNotBoundError(StatewiseError):
    """A guarded transition was considered but no guard registry is bound."""

    def __init__(self, guard: str) -> None:
        self.guard = guard
        super().__init__(
            f"guard {guard!r} is needed but no guards are bound: load the machine with "
            "guards=registry or call machine.bind_guards(registry) at start-up"
        )


class TransitionError(StatewiseError):
    """Why an event was not allowed; carried by a failed result, not raised by it.

    Subclasses fix the attributes; equality is by type and attributes.
    """

    code = "transition_error"

    def __init__(self, state: str, trigger: str, message: str) -> None:
        self.state = state
        self.trigger = trigger
        super().__init__(message)

    def _key(self) -> tuple[object, ...]:
        return (type(self), self.state, self.trigger, self.args)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TransitionError):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __reduce__(self) -> tuple[object, ...]:
        return (
            _rebuild_transition_error,
            (
                type(self).code,
                self.state,
                self.trigger,
                getattr(self, "guards", ()),
                getattr(self, "problems", ()),
            ),
        )


class TerminalStateError(TransitionError):
    """The current state is terminal: no event leaves it."""

    code = "terminal_state"

    def __init__(self, state: str, trigger: str) -> None:
        super().__init__(state, trigger, f"state {state!r} is terminal; {trigger!r} not allowed")


class UndefinedTriggerError(TransitionError):
    """The trigger is unknown to the machine (strict mode)."""

    code = "undefined_trigger"

    def __init__(self, state: str, trigger: str) -> None:
        super().__init__(state, trigger, f"trigger {trigger!r} is not defined by the machine")


class InvalidTransitionError(TransitionError):
    """The trigger is known, but no transition takes it from this state (strict mode)."""

    code = "invalid_transition"

    def __init__(self, state: str, trigger: str) -> None:
        super().__init__(state, trigger, f"trigger {trigger!r} is not allowed in state {state!r}")


class GuardRejectedError(TransitionError):
    """Every candidate transition had a guard that said no; ``guards`` names them."""

    code = "guard_rejected"

    def __init__(self, state: str, trigger: str, guards: Iterable[str] = ()) -> None:
        self.guards: tuple[str, ...] = tuple(guards)
        names = ", ".join(self.guards)
        super().__init__(
            state, trigger, f"{trigger!r} in state {state!r} rejected by guard(s): {names}"
        )

    def _key(self) -> tuple[object, ...]:
        return (*super()._key(), self.guards)


class PayloadError(TransitionError):
    """The event's payload does not match its trigger's ``payload_schema``.

    ``problems`` lists every mismatch (path inside the payload, message, expected, got).
    """

    code = "invalid_payload"

    def __init__(self, state: str, trigger: str, problems: Iterable[Problem] = ()) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        lines = "".join(f"\n  {_payload_line(p)}" for p in self.problems)
        super().__init__(
            state, trigger, f"the payload of {trigger!r} does not match its payload_schema:{lines}"
        )

    def _key(self) -> tuple[object, ...]:
        return (*super()._key(), self.problems)


def _payload_line(p: Problem) -> str:
    return f"{p.path or '(root)'}: {p.message}"


TRANSITION_ERRORS: dict[str, type[TransitionError]] = {
    cls.code: cls
    for cls in (
        TerminalStateError,
        UndefinedTriggerError,
        InvalidTransitionError,
        GuardRejectedError,
        PayloadError,
    )
}


def make_transition_error(
    code: str,
    state: str,
    trigger: str,
    guards: tuple[str, ...] = (),
    problems: tuple[Problem, ...] = (),
) -> TransitionError:
    """Build the error for ``code`` (one of ``TRANSITION_ERRORS``)."""
    cls = TRANSITION_ERRORS.get(code)
    if cls is None:
        raise ValueError(
            f"unknown transition error code {code!r}; expected one of "
            f"{', '.join(sorted(TRANSITION_ERRORS))}"
        )
    if cls is GuardRejectedError:
        return GuardRejectedError(state, trigger, guards)
    if cls is PayloadError:
        return PayloadError(state, trigger, problems)
    return cls(state, trigger)  # type: ignore[call-arg]


def _rebuild_transition_error(
    code: str,
    state: str,
    trigger: str,
    guards: tuple[str, ...],
    problems: tuple[Problem, ...] = (),
) -> TransitionError:
    return make_transition_error(code, state, trigger, guards, problems)


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """A ``" (did you mean 'X'?)"`` suffix naming the closest known names, or ``""``.

    Case is ignored when matching (``open`` suggests ``OPEN``).
    """
    by_folded: dict[str, str] = {}
    for k in known:
        by_folded.setdefault(k.casefold(), k)
    close = get_close_matches(name.casefold(), list(by_folded), n=3, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(by_folded[c]) for c in close) + "?)"
