"""Expression guards: a transition's ``when:``, written in CEL.

CEL (the Common Expression Language) is a small, side-effect-free language made for
exactly this: conditions in configuration. It cannot loop forever, open a file or
import a module, and statewise never falls back to ``eval``. CEL comes from the
optional extra ``statewise[cel]`` (the ``common-expression-language`` package);
a spec using ``when:`` without it fails to load with a message naming the extra.

Theory of operation. Each expression is compiled once, when the machine is loaded
(a syntax error is a spec problem with its location). Deciding an event evaluates
it with these variables: every name the expression uses is looked up in the
context, then in the event payload (the context wins, as for guards); ``event`` is
the payload and ``state`` the current state's name, and those two win over fields
of the same name. An expression must evaluate to a bool: anything else, a missing
field or a type error is a bug in the spec and raises ``GuardError``, never "no".
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

__all__ = [
    "CEL_EXTRA",
    "Expression",
    "ExpressionError",
    "MissingExtraError",
    "cel_available",
    "compile_expression",
    "label",
]

CEL_EXTRA = "statewise[cel]"
_RESERVED = ("event", "state")
_UNDEFINED = re.compile(r"Undefined variable or function: '([^']*)'")
_PLAIN = frozenset({str, int, float, bool, type(None), bytes})


class ExpressionError(ValueError):
    """An expression that does not compile; the message says where and why."""


class MissingExtraError(ImportError):
    """A spec uses ``when:`` but the CEL extra is not installed."""

    def __init__(self) -> None:
        super().__init__(
            f"expression guards (when:) need the optional extra: pip install '{CEL_EXTRA}'"
        )


def label(text: str) -> str:
    """How an expression guard is named in traces and rejections: ``when: <text>``."""
    return f"when: {text}"


def cel_available() -> bool:
    try:
        import cel  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True, slots=True, eq=False)
class Expression:
    """A compiled ``when:`` expression. ``names`` are the identifiers it uses."""

    text: str
    program: Any
    names: tuple[str, ...]
    uses_event: bool = False
    uses_state: bool = False

    def variables(
        self, context: Mapping[str, Any], payload: Mapping[str, Any], state: str
    ) -> dict[str, Any]:
        """The CEL variables for one evaluation: only the names the expression uses."""
        out: dict[str, Any] = {}
        for name in self.names:
            value = context.get(name, _MISSING)
            if value is _MISSING:
                value = payload.get(name, _MISSING)
                if value is _MISSING:
                    continue  # a comprehension variable, or really missing: CEL will say
            out[name] = value if type(value) in _PLAIN else plain(value)
        # Only what the expression reads: handing CEL a variable costs a conversion.
        if self.uses_event:
            out["event"] = payload
        if self.uses_state:
            out["state"] = state
        return out

    def evaluate(self, context: Mapping[str, Any], payload: Mapping[str, Any], state: str) -> bool:
        """The expression's verdict. Raises :class:`ExpressionFailed` with a readable
        reason when it cannot be evaluated or does not give a bool."""
        variables = self.variables(context, payload, state)
        try:
            value = self.program.execute(variables)
        except Exception as exc:  # CEL raises RuntimeError, TypeError, ValueError...
            raise ExpressionFailed(self._reason(exc, context, payload)) from exc
        if value is True or value is False:
            return value
        raise ExpressionFailed(
            f"expression {self.text!r} must evaluate to a bool, got {type(value).__name__} "
            f"{value!r}"
        )

    def _reason(
        self, exc: Exception, context: Mapping[str, Any], payload: Mapping[str, Any]
    ) -> str:
        missing = _UNDEFINED.search(str(exc))
        if missing is None:
            return f"expression {self.text!r} failed: {exc}"
        known = sorted({*context, *payload, *_RESERVED})
        return (
            f"expression {self.text!r} uses {missing.group(1)!r}, which is in neither the "
            f"context nor the event payload (they have: {', '.join(known)})"
        )


class ExpressionFailed(Exception):
    """Evaluating an expression went wrong (the engine wraps it in ``GuardError``)."""


_MISSING: Any = object()


def plain(value: Any) -> Any:
    """``value`` as plain data CEL can read: mappings, dataclasses and Pydantic models
    become dicts, other sequences lists. Strings and bytes stay as they are."""
    t = type(value)
    if t in _PLAIN:
        return value
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, Sequence):
        return [plain(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    fields = getattr(t, "model_fields", None)
    if isinstance(fields, Mapping):
        return {name: plain(getattr(value, name)) for name in fields}
    return value


@lru_cache(maxsize=4096)
def compile_expression(text: str) -> Expression:
    """Compile ``text`` (cached by text). Raises :class:`MissingExtraError` without the
    CEL extra and :class:`ExpressionError` for an expression that does not compile."""
    try:
        import cel
    except ImportError:
        raise MissingExtraError() from None
    try:
        program = cel.compile(text)
    except (ValueError, RuntimeError) as exc:
        raise ExpressionError(_syntax_message(str(exc))) from None
    names = tuple(program.variables())
    return Expression(text, program, names, "event" in names, "state" in names)


def _syntax_message(message: str) -> str:
    # CEL's parser reports "Failed to parse expression '...': ERROR: <input>:1:13: ...";
    # keep the part after the position, and the caret drawing that follows it.
    _head, _, rest = message.partition("ERROR: <input>:")
    if not rest:
        return message
    position, _, detail = rest.partition(": ")
    # The caret drawing after the first line repeats what "at line:column" says.
    return f"not a valid CEL expression: at {position}: {detail.splitlines()[0]}"
