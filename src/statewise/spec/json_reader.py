"""Read a JSON spec into plain Python data, with positions worked out only on demand.

The standard library's C parser does the reading. Two things it accepts are
refused here: duplicate keys in an object and the ``NaN``/``Infinity`` literals.
Both are only *noticed* during the fast parse (a flag in the hooks); finding where
they are is left to a small hand-written scanner, the same one that answers
:meth:`~statewise.spec.source.Document.locate` and that runs at most once per
document, on the first call.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from statewise.errors import Problem, SpecError
from statewise.spec.source import (
    DEFAULT_MAX_BYTES,
    Document,
    LineIndex,
    Path,
    decode_source,
    format_path,
)

__all__ = ["read_json"]

# JSONDecodeError counts lines by "\n" alone; positions here must agree with it.
_JSON_BREAKS = re.compile("\n")
_SPACE = re.compile(r"[ \t\n\r]*")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_SCALAR = re.compile(
    r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?|true|false|null|NaN|-?Infinity"
)
_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
_NON_FINITE = frozenset(("NaN", "Infinity", "-Infinity"))


def read_json(
    text: str | bytes, *, file: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES
) -> Document:
    """Parse a JSON spec into plain data; raise :class:`SpecError` listing every problem.

    Text over ``max_bytes`` UTF-8 bytes is refused unparsed. A syntax error is one
    problem at the parser's line and column; otherwise every duplicate key and every
    non-finite literal is reported, each at its own position.
    """
    source = decode_source(text, file=file, max_bytes=max_bytes)
    suspect = False

    def pairs_to_dict(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal suspect
        obj = dict(pairs)
        if len(obj) != len(pairs):
            suspect = True
        return obj

    def non_finite(_literal: str) -> None:
        nonlocal suspect
        suspect = True

    try:
        data = json.loads(source, object_pairs_hook=pairs_to_dict, parse_constant=non_finite)
    except json.JSONDecodeError as exc:
        message = f"JSON syntax error: {exc.msg}"
        raise SpecError([Problem("", message, file, exc.lineno, exc.colno)]) from None
    except RecursionError:
        raise SpecError([_too_deep(source, file)]) from None
    except ValueError as exc:
        # The text is well-formed but a value would not convert (an integer too long
        # for int()): the scanner says which and where.
        problems = _JsonLocator(source).problems(file)
        raise SpecError(problems or [Problem("", f"invalid JSON: {exc}", file, 1, 1)]) from None
    if suspect:
        raise SpecError(_JsonLocator(source).problems(file))
    return Document(data, file=file, locator=partial(_JsonLocator, source))


def _too_deep(text: str, file: str | None) -> Problem:
    """The interpreter's recursion limit stopped the parser: point at the deepest spot."""
    depth = deepest = 0
    offset = 0
    for match in _BRACKET.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > deepest:
                deepest, offset = depth, match.start()
        elif token in "]}":
            depth -= 1
    line, column = LineIndex(text, _JSON_BREAKS).position(offset)
    return Problem(
        "",
        f"JSON nested too deeply ({deepest:,} levels)",
        file,
        line,
        column,
        expected="fewer levels of objects and arrays",
        got=f"{deepest:,} levels",
    )


@dataclass(slots=True, eq=False)
class _Object:
    start: int
    # key -> (offset of the last occurrence of the key, its value, offset of the first).
    members: dict[str, tuple[int, _Value, int]] = field(default_factory=dict)
    key: str = ""  # the member being read
    key_start: int = 0


@dataclass(slots=True, eq=False)
class _Array:
    start: int
    items: list[_Value] = field(default_factory=list)


# A scalar is just the offset where it starts.
_Value = int | _Object | _Array


def _start(value: _Value) -> int:
    return value if isinstance(value, int) else value.start


class _JsonLocator:
    """Offsets of every value and key in JSON text that the standard parser accepted.

    The scan is iterative (any depth the parser took is fine) and, since the text is
    known to be well-formed, checks nothing but what it records: duplicate keys,
    non-finite literals and integers too long to convert.
    """

    __slots__ = ("_lines", "_root", "_text", "duplicates", "invalid")

    def __init__(self, text: str) -> None:
        self._text = text
        self._lines = LineIndex(text, _JSON_BREAKS)
        # (path, key, offset of the repeat, offset of the first) per repeated key.
        self.duplicates: list[tuple[Path, str, int, int]] = []
        # (path, literal, offset) per value the parser should not have produced.
        self.invalid: list[tuple[Path, str, int]] = []
        self._root = self._scan()

    def find(self, path: Path, key: bool) -> tuple[int, int]:
        node = self._root
        where = _start(node)
        for step, part in enumerate(path):
            if isinstance(node, _Object) and isinstance(part, str) and part in node.members:
                key_start, node, _ = node.members[part]
                where = key_start if key and step == len(path) - 1 else _start(node)
            elif isinstance(node, _Array) and isinstance(part, int) and 0 <= part < len(node.items):
                node = node.items[part]
                where = _start(node)
            else:
                break
        return self._lines.position(where)

    def problems(self, file: str | None) -> list[Problem]:
        """Every duplicate key and invalid literal found, in document order."""
        found: list[tuple[int, Problem]] = []
        for path, key, offset, first in self.duplicates:
            first_line = self._lines.position(first)[0]
            message = f"duplicate key {key!r} (first at line {first_line})"
            found.append((offset, self._problem(path, message, offset, file, "each key once")))
        for path, literal, offset in self.invalid:
            if literal in _NON_FINITE:
                message = f"{literal} is not valid JSON (numbers must be finite)"
                expected = "a finite number"
            else:
                message = f"integer of {len(literal.lstrip('-')):,} digits is too large"
                expected = f"an integer of at most {sys.get_int_max_str_digits():,} digits"
            found.append((offset, self._problem(path, message, offset, file, expected)))
        found.sort(key=lambda item: item[0])
        return [problem for _, problem in found]

    def _problem(
        self, path: Path, message: str, offset: int, file: str | None, expected: str
    ) -> Problem:
        line, column = self._lines.position(offset)
        return Problem(format_path(path), message, file, line, column, expected=expected)

    def _scan(self) -> _Value:
        text = self._text
        stack: list[_Object | _Array] = []
        pos = _skip_space(text, 0)
        while True:
            value: _Value
            char = text[pos]
            if char in "{[":
                container: _Object | _Array = _Object(pos) if char == "{" else _Array(pos)
                pos = _skip_space(text, pos + 1)
                if text[pos] not in "}]":
                    stack.append(container)
                    if isinstance(container, _Object):
                        pos = self._key(pos, container)
                    continue
                value, pos = container, pos + 1
            else:
                token = _token(_STRING if char == '"' else _SCALAR, text, pos)
                if token in _NON_FINITE or _too_long(token):
                    self.invalid.append((_path(stack), token, pos))
                value, pos = pos, pos + len(token)
            # Hand the finished value to its container; each closing bracket that
            # follows finishes that container in turn.
            while True:
                if not stack:
                    return value
                parent = stack[-1]
                if isinstance(parent, _Object):
                    self._member(stack, parent, value)
                else:
                    parent.items.append(value)
                pos = _skip_space(text, pos)
                if text[pos] == ",":
                    pos = _skip_space(text, pos + 1)
                    if isinstance(parent, _Object):
                        pos = self._key(pos, parent)
                    break
                value, pos = stack.pop(), pos + 1

    def _key(self, pos: int, obj: _Object) -> int:
        """Read the key at ``pos`` into ``obj``; the offset of the value that follows."""
        raw = _token(_STRING, self._text, pos)
        obj.key = json.loads(raw) if "\\" in raw else raw[1:-1]
        obj.key_start = pos
        colon = _skip_space(self._text, pos + len(raw))
        return _skip_space(self._text, colon + 1)

    def _member(self, stack: list[_Object | _Array], obj: _Object, value: _Value) -> None:
        first = obj.key_start
        earlier = obj.members.get(obj.key)
        if earlier is not None:
            first = earlier[2]
            self.duplicates.append((_path(stack), obj.key, obj.key_start, first))
        obj.members[obj.key] = (obj.key_start, value, first)


def _path(stack: list[_Object | _Array]) -> Path:
    """The path of the value being read, from the containers open around it."""
    return tuple(frame.key if isinstance(frame, _Object) else len(frame.items) for frame in stack)


def _skip_space(text: str, pos: int) -> int:
    return pos + len(_token(_SPACE, text, pos))


def _token(pattern: re.Pattern[str], text: str, pos: int) -> str:
    match = pattern.match(text, pos)
    if match is None:  # the parser accepted this text, so every token is there
        raise AssertionError(f"unexpected JSON at offset {pos}")
    return match.group()


def _too_long(token: str) -> bool:
    # Only plain integers go through int(); fractions and exponents become floats.
    # A limit of 0 means the interpreter has none.
    limit = sys.get_int_max_str_digits()
    digits = token.removeprefix("-")
    return 0 < limit < len(digits) and digits.isdigit()
