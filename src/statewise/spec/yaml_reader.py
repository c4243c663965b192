"""Read a YAML spec into plain Python data, safely and with positions on demand.

PyYAML (with libyaml when available) only *composes* the text into a node graph;
the values are built here by walking that graph, so no tag can ever construct a
Python object. Scalars resolve by the YAML 1.2 core schema, not PyYAML's YAML 1.1
one: ``on``/``yes``/``no`` stay strings, ``012`` is twelve, ``2024-01-01`` and
``1_000`` are strings, and ``<<`` is an ordinary key (merge keys are not YAML 1.2).

Every problem found while building is collected and raised at once as a
:class:`~statewise.errors.SpecError`: tags other than ``!!str !!int !!float !!bool
!!null !!map !!seq``, duplicate or non-string mapping keys, values nested more than
:data:`MAX_DEPTH` levels, aliases that contain themselves, and alias expansion over
budget ("billion laughs"). Values reached through an alias are shared, not copied;
the budget bounds how large the data would be if a consumer walked it fully.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING, Any

import yaml
from yaml.events import CollectionEndEvent, CollectionStartEvent, DocumentStartEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from statewise.errors import Problem, SpecError
from statewise.spec.source import (
    DEFAULT_MAX_BYTES,
    Document,
    LineIndex,
    Path,
    decode_source,
    format_path,
)

__all__ = ["ALIAS_NODES_CEILING", "MAX_DEPTH", "read_yaml"]

if TYPE_CHECKING:
    _BaseLoader = yaml.SafeLoader
else:
    # libyaml's parser and composer when PyYAML was built with it, the pure ones if not.
    _BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MAX_DEPTH = 100
"""Deepest nesting of mappings and sequences accepted; no spec comes close."""

ALIAS_NODES_CEILING = 1_000_000
"""Most nodes aliases may add to a document, whatever its size (see :func:`read_yaml`)."""

# libyaml's composer recurses on the C stack once per nesting level and crashes the
# interpreter somewhere past 20,000 levels, so deeper text must never reach it.
_C_STACK_SAFE_DEPTH = 5_000
# For _nesting_bound: a flow pair with nothing inside that could hide a bracket.
_CLOSED_PAIR = re.compile(r"""[\[{][^\[\]{}'"#!]*[\]}]""")
_PAIR_PASSES = 8

_CORE = "tag:yaml.org,2002:"
STR_TAG = _CORE + "str"
INT_TAG = _CORE + "int"
FLOAT_TAG = _CORE + "float"
BOOL_TAG = _CORE + "bool"
NULL_TAG = _CORE + "null"
SEQ_TAG = _CORE + "seq"
MAP_TAG = _CORE + "map"

# The YAML 1.2 core schema. PyYAML's resolver uses match(), so each pattern is
# anchored at the end with \Z ($ would also accept a trailing newline).
_NULL = re.compile(r"(?:~|null|Null|NULL|)\Z")
_BOOL = re.compile(r"(?:true|True|TRUE|false|False|FALSE)\Z")
_INT = re.compile(r"(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)\Z")
_FLOAT = re.compile(
    r"(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))\Z"
)
_TRUE = frozenset(("true", "True", "TRUE"))

# What YAML counts as a line break (libyaml still honours YAML 1.1's NEL, LS and PS).
_YAML_BREAKS = re.compile("\r\n|[\n\r\x85\u2028\u2029]")
_ALIAS_OR_COMMENT = re.compile("#[^\n\r\x85\u2028\u2029]*|\\*")
_ALIAS_TOKEN = re.compile(r"\*?[^\s,\[\]{}]*")


def _core_loader(base: type[yaml.SafeLoader]) -> type[yaml.SafeLoader]:
    """A loader class on ``base`` that composes with core-schema resolution.

    Its resolver table is its own (PyYAML's global resolvers stay untouched). Specs
    repeat the same scalars thousands of times and PyYAML's resolver tries several
    regular expressions per call, so each loader remembers the tag of every plain
    scalar text it has resolved.
    """

    class CoreLoader(base):  # type: ignore[valid-type,misc]  # base is chosen at run time
        yaml_implicit_resolvers: dict[Any, Any] = {}  # noqa: RUF012 - PyYAML's protocol

        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            self._plain_tags: dict[str, str] = {}

        def resolve(self, kind: type[Node], value: Any, implicit: Any) -> str:
            if kind is ScalarNode:
                if implicit[0]:
                    tag = self._plain_tags.get(value)
                    if tag is None:
                        tag = self._plain_tags[value] = super().resolve(kind, value, implicit)
                    return tag
                return STR_TAG
            return SEQ_TAG if kind is SequenceNode else MAP_TAG

    for tag, pattern, first in (
        (NULL_TAG, _NULL, ["~", "n", "N", ""]),  # "": the empty scalar has no first character
        (BOOL_TAG, _BOOL, list("tTfF")),
        (INT_TAG, _INT, list("-+0123456789")),
        (FLOAT_TAG, _FLOAT, list("-+.0123456789")),
    ):
        CoreLoader.add_implicit_resolver(tag, pattern, first)
    return CoreLoader


_LOADER = _core_loader(_BaseLoader)


def _to_int(text: str) -> int:
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    # Decimal, leading zeros included: in YAML 1.2 "012" is twelve, not octal.
    return int(text)


def _to_float(text: str) -> float:
    # ".inf", "-.Inf", ".NaN": Python spells them without the dot.
    return float(text.replace(".", "", 1)) if text[-1] in "fFnN" else float(text)


_SCALARS: dict[str, tuple[re.Pattern[str], Any]] = {
    NULL_TAG: (_NULL, lambda _text: None),
    BOOL_TAG: (_BOOL, _TRUE.__contains__),
    INT_TAG: (_INT, _to_int),
    FLOAT_TAG: (_FLOAT, _to_float),
}
_KNOWN_TAGS = frozenset((*_SCALARS, STR_TAG, MAP_TAG, SEQ_TAG))
_SHORT_TAGS = "!!str, !!int, !!float, !!bool, !!null, !!map or !!seq"


def read_yaml(
    text: str | bytes,
    *,
    file: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_alias_nodes: int | None = None,
) -> Document:
    """Parse one YAML document into plain data; raise :class:`SpecError` listing every problem.

    Text over ``max_bytes`` UTF-8 bytes is refused unparsed. An empty document gives
    ``None``. ``max_alias_nodes`` bounds how many nodes aliases may add in total (an
    alias to a subtree of *n* nodes adds *n*); by default it is ten times the
    document's own node count plus 10,000, and never more than
    :data:`ALIAS_NODES_CEILING`, so ordinary reuse passes and exponential blow-ups
    stop at once. Positions are worked out only if the document is asked to locate
    a path.
    """
    source = decode_source(text, file=file, max_bytes=max_bytes)
    with _gc_paused():
        # One expression, so that the node graph is freed before the collector is back
        # on: otherwise its first pass would walk every node just to find them alive.
        data = _Builder(source, file, max_alias_nodes).build(_compose(source, file))
    return Document(data, file=file, locator=partial(_YamlLocator, source, file))


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Keep the cyclic collector off while a document's objects are being made.

    Composing allocates a few container objects per node, all of which live until
    the load ends; the collector would rescan them over and over (four times the
    cost of composing, measured on a 10,000-state spec) and find nothing to free.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _compose(text: str, file: str | None) -> Node | None:
    """The node graph of the single document in ``text`` (``None`` when empty)."""
    try:
        if _nesting_bound(text) > _C_STACK_SAFE_DEPTH:
            _check_depth(text, file)
        loader = _LOADER(text)
        try:
            return loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.composer.ComposerError as exc:
        if exc.context == "expected a single document in the stream":
            raise SpecError([_many_documents(text, exc, file)]) from None
        raise SpecError([_syntax_problem(exc, file)]) from None
    except yaml.MarkedYAMLError as exc:
        raise SpecError([_syntax_problem(exc, file)]) from None
    except yaml.reader.ReaderError as exc:
        line, column = LineIndex(text, _YAML_BREAKS).position(exc.position)
        char = ord(exc.character) if isinstance(exc.character, str) else exc.character
        message = f"YAML syntax error: unacceptable character #x{char:04x}: {exc.reason}"
        raise SpecError([Problem("", message, file, line, column)]) from None
    except RecursionError:
        # Only the pure-Python composer recurses in Python; libyaml's never gets here.
        message = f"YAML nested more than {MAX_DEPTH} levels deep"
        raise SpecError([Problem("", message, file, 1, 1)]) from None


def _nesting_bound(text: str) -> int:
    """An upper bound on how deeply ``text`` nests, from its characters alone.

    Block collections need more indentation (or one more ``- `` on the line) every
    level or two, so the longest line bounds them. Flow collections need an opening
    bracket per level; brackets inside quotes, comments, tags and plain text do not
    nest, and are indistinguishable here, so they are all counted, except for
    bracket pairs that hold no bracket, quote, ``#`` or ``!``: if the opening one is
    real, everything up to the closing one is flow content that cannot hide a
    bracket, so the pair really closes there and adds one level at most. Removing
    such pairs a few times over leaves typical specs (``[a, b]``, ``{name: x}``)
    with almost nothing to count.
    """
    block = 2 * max(map(len, text.split("\n"))) + 2
    flow = text.count("[") + text.count("{")
    if flow + block <= _C_STACK_SAFE_DEPTH:
        return flow + block
    passes = 0
    while passes < _PAIR_PASSES:
        text, removed = _CLOSED_PAIR.subn("", text)
        if not removed:
            break
        passes += 1
    return text.count("[") + text.count("{") + passes + block


def _check_depth(text: str, file: str | None) -> None:
    """Walk the parser's events and refuse nesting over :data:`MAX_DEPTH` levels.

    The exact check, for text whose character counts cannot rule deep nesting out;
    it costs about as much as composing, so it is not run on ordinary specs.
    """
    loader = _LOADER(text)
    try:
        depth = 0
        while loader.check_event():
            event: Any = loader.get_event()  # type: ignore[no-untyped-call]
            if isinstance(event, CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise SpecError([_too_deep("", event.start_mark, file)])
            elif isinstance(event, CollectionEndEvent):
                depth -= 1
    finally:
        loader.dispose()


def _too_deep(path: str, mark: Any, file: str | None) -> Problem:
    return Problem(
        path,
        f"nested more than {MAX_DEPTH} levels deep",
        file,
        mark.line + 1,
        mark.column + 1,
        expected=f"at most {MAX_DEPTH} levels of mappings and sequences",
    )


def _syntax_problem(exc: yaml.MarkedYAMLError, file: str | None) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    message = f"YAML syntax error: {exc.problem or exc.context}"
    if exc.problem and exc.context and exc.context_mark:
        where = f"line {exc.context_mark.line + 1}, column {exc.context_mark.column + 1}"
        message = f"{message} ({exc.context} at {where})"
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    return Problem("", message, file, line, column)


def _many_documents(text: str, exc: yaml.MarkedYAMLError, file: str | None) -> Problem:
    count, complete = _count_documents(text)
    got = f"{count}" if complete else f"at least {count}"
    mark = exc.problem_mark
    return Problem(
        "",
        f"expected one YAML document, got {got}",
        file,
        mark.line + 1 if mark else 1,
        mark.column + 1 if mark else 1,
        expected="one document",
        got=f"{got} documents",
    )


def _count_documents(text: str) -> tuple[int, bool]:
    """How many documents the stream holds, and whether it was read to the end."""
    loader = _LOADER(text)
    count = 0
    try:
        while loader.check_event():
            event = loader.get_event()  # type: ignore[no-untyped-call]
            if isinstance(event, DocumentStartEvent):
                count += 1
    except yaml.YAMLError:
        return count, False
    finally:
        loader.dispose()
    return count, True


def _position(mark: Any) -> tuple[int, int]:
    return mark.line + 1, mark.column + 1


def _written(text: str, node: Node) -> list[tuple[int, int]]:
    """Where each child of ``node`` is written: ``(key offset, value offset)`` per slot.

    A node reached through an alias is the anchored original, whose marks are those
    of the anchor; an occurrence starting before the end of the previous one (or
    the container itself) must be an alias, and is placed at its ``*`` instead. In
    a sequence the key offset is the value's.
    """
    cursor = int(node.start_mark.index)

    def place(child: Node) -> int:
        nonlocal cursor
        start = int(child.start_mark.index)
        if start >= cursor and child is not node:
            cursor = int(child.end_mark.index)
            return start
        start = _alias_offset(text, cursor)
        token = _ALIAS_TOKEN.match(text, start)
        cursor = token.end() if token else start
        return start

    if node.__class__ is MappingNode:
        return [(place(key), place(value)) for key, value in node.value]
    return [(at, at) for at in map(place, node.value)]


def _alias_offset(text: str, start: int) -> int:
    """Offset of the first ``*alias`` at or after ``start``, skipping comments."""
    pos = start
    while (match := _ALIAS_OR_COMMENT.search(text, pos)) is not None:
        if match.group() == "*":
            return match.start()
        pos = match.end()
    return start  # pragma: no cover - the composer saw an alias here


_MISSING: Any = object()
_OPEN: Any = object()  # in _Builder._built: the container is still being built


class _AliasBudgetExceeded(Exception):
    """Internal: stop building at once, the ceiling on alias expansion is passed."""


class _Builder:
    """Turns one composed node graph into plain values, collecting problems as it goes.

    The walk is recursive, one frame per nesting level (bounded by ``MAX_DEPTH``).
    ``path`` is a single list pushed and popped along the way; it becomes a tuple
    only when a problem needs it. A container reached a second time came through an
    alias: its value is shared and its expanded size is charged to the budget.
    """

    __slots__ = (
        "_aliases",
        "_built",
        "_ceiling",
        "_file",
        "_lines",
        "_max_alias_nodes",
        "_nodes",
        "_problems",
        "_scalars",
        "_sizes",
        "_spent",
        "_text",
    )

    def __init__(self, text: str, file: str | None, max_alias_nodes: int | None) -> None:
        self._text = text
        self._file = file
        self._max_alias_nodes = max_alias_nodes
        self._ceiling = ALIAS_NODES_CEILING if max_alias_nodes is None else max_alias_nodes
        self._problems: list[Problem] = []
        # id(container node) -> its value, or _OPEN while it is being built (reaching
        # an open container again means it contains itself).
        self._built: dict[int, Any] = {}
        self._scalars: dict[tuple[str, str], Any] = {}
        self._sizes: dict[int, int] = {}
        self._nodes = 1
        self._spent = 0
        # (nodes spent so far, path, parent, slot) per alias, to say which one overflowed.
        self._aliases: list[tuple[int, Path, Node, Node | int]] = []
        self._lines: LineIndex | None = None

    def build(self, root: Node | None) -> Any:
        """The value of ``root``; raises :class:`SpecError` if anything was wrong."""
        if root is None:
            return None
        try:
            if root.__class__ is ScalarNode:
                data = self._scalar(root, [])
            else:
                data = self._container(root, [], 0, root, 0)
        except _AliasBudgetExceeded:
            self._problems.append(self._alias_budget_problem(self._ceiling))
        else:
            budget = self._max_alias_nodes
            if budget is None:
                budget = min(ALIAS_NODES_CEILING, 10 * self._nodes + 10_000)
            if self._spent > budget:
                self._problems.append(self._alias_budget_problem(budget))
        if self._problems:
            raise SpecError(self._problems)
        return data

    # -- values ---------------------------------------------------------------------
    # The loops below are the hot path (hundreds of thousands of nodes for a large
    # spec): plain string scalars and already-converted scalars are handled inline,
    # without a call or a push onto ``path``.

    def _container(
        self, node: Node, path: list[Any], depth: int, parent: Node, slot: Node | int
    ) -> Any:
        ident = id(node)
        state = self._built.get(ident, _MISSING)
        if state is not _MISSING:
            if state is _OPEN:
                self._recursive_alias(node, path, parent, slot)
                return None
            return self._alias(node, state, path, parent, slot)
        if depth >= MAX_DEPTH:
            self._problems.append(_too_deep(format_path(tuple(path)), node.start_mark, self._file))
            return None
        is_mapping = node.__class__ is MappingNode
        if node.tag != (MAP_TAG if is_mapping else SEQ_TAG):
            self._bad_tag(node, path)
        self._built[ident] = _OPEN
        value = (
            self._mapping(node, path, depth + 1)
            if is_mapping
            else self._sequence(node, path, depth + 1)
        )
        self._built[ident] = value
        return value

    def _mapping(self, node: Node, path: list[Any], depth: int) -> dict[str, Any]:
        pairs = node.value
        self._nodes += 2 * len(pairs)
        scalars = self._scalars
        out: dict[str, Any] = {}
        bad_keys = 0
        for key_node, value_node in pairs:
            if key_node.__class__ is ScalarNode and key_node.tag == STR_TAG:
                key = key_node.value
            else:
                key = self._key(key_node, path)
                if key is None:
                    # Still walk the value: its own problems belong in the same report.
                    bad_keys += 1
                    path.append(key_node.value if key_node.__class__ is ScalarNode else "?")
                    self._child(value_node, path, depth, node, key_node)
                    path.pop()
                    continue
            if value_node.__class__ is ScalarNode:
                tag = value_node.tag
                if tag == STR_TAG:
                    out[key] = value_node.value
                    continue
                value = scalars.get((tag, value_node.value), _MISSING)
                if value is not _MISSING:
                    out[key] = value
                    continue
            path.append(key)
            out[key] = self._child(value_node, path, depth, node, key_node)
            path.pop()
        if len(out) + bad_keys != len(pairs):
            self._duplicates(node, path)
        return out

    def _sequence(self, node: Node, path: list[Any], depth: int) -> list[Any]:
        items = node.value
        self._nodes += len(items)
        scalars = self._scalars
        out: list[Any] = []
        append = out.append
        for index, item in enumerate(items):
            if item.__class__ is ScalarNode:
                tag = item.tag
                if tag == STR_TAG:
                    append(item.value)
                    continue
                value = scalars.get((tag, item.value), _MISSING)
                if value is not _MISSING:
                    append(value)
                    continue
            path.append(index)
            append(self._child(item, path, depth, node, index))
            path.pop()
        return out

    def _child(
        self, node: Node, path: list[Any], depth: int, parent: Node, slot: Node | int
    ) -> Any:
        if node.__class__ is ScalarNode:
            return self._scalar(node, path)
        return self._container(node, path, depth, parent, slot)

    def _scalar(self, node: Node, path: list[Any]) -> Any:
        """Convert a scalar by its tag; problems leave the text as the value."""
        if node.tag == STR_TAG:
            return node.value
        rule = _SCALARS.get(node.tag)
        if rule is None:
            self._bad_tag(node, path)
            return node.value
        pattern, convert = rule
        if not pattern.match(node.value):
            short = _short_tag(node.tag)
            self._add(
                path,
                f"{node.value!r} is not a valid {short} value",
                node.start_mark,
                expected=f"a {short} value",
                got=repr(node.value),
            )
            return node.value
        try:
            value = convert(node.value)
        except ValueError:
            # Python refuses to convert decimal integers of more than 4,300 digits.
            self._add(
                path,
                f"integer of {len(node.value):,} digits is too large",
                node.start_mark,
                expected="an integer of at most 4,300 digits",
            )
            return node.value
        # Only conversions that worked are remembered: a bad value is reported
        # wherever it appears.
        self._scalars[node.tag, node.value] = value
        return value

    def _key(self, node: Node, path: list[Any]) -> str | None:
        """A key that is not a plain string: its string value, or ``None`` and a problem."""
        if node.__class__ is ScalarNode:
            value = self._scalar(node, path)
            if isinstance(value, str):
                return value
            got = "null" if value is None else f"{type(value).__name__} {node.value}"
        else:
            got = "a mapping" if node.__class__ is MappingNode else "a sequence"
        self._add(
            path,
            f"mapping keys must be strings, got {got}",
            node.start_mark,
            expected="a string key",
            got=got,
        )
        return None

    # -- problems -------------------------------------------------------------------

    def _add(
        self,
        path: list[Any] | Path,
        message: str,
        mark: yaml.Mark | tuple[int, int],
        *,
        expected: str | None = None,
        got: str | None = None,
    ) -> None:
        line, column = mark if isinstance(mark, tuple) else _position(mark)
        self._problems.append(
            Problem(format_path(tuple(path)), message, self._file, line, column, expected, got)
        )

    def _bad_tag(self, node: Node, path: list[Any]) -> None:
        short = _short_tag(node.tag)
        if node.tag in _KNOWN_TAGS:
            kind = {ScalarNode: "a scalar", SequenceNode: "a sequence"}.get(
                node.__class__, "a mapping"
            )
            message = f"YAML tag {short} cannot be used on {kind}"
        else:
            message = f"unsupported YAML tag {short}"
        self._add(path, message, node.start_mark, expected=f"no tag or {_SHORT_TAGS}", got=short)

    def _duplicates(self, node: Node, path: list[Any]) -> None:
        first: dict[str, Node] = {}
        for key_node, _ in node.value:
            if key_node.__class__ is not ScalarNode:
                continue
            key = self._scalars.get((key_node.tag, key_node.value), key_node.value)
            if not isinstance(key, str):
                continue
            if key in first:
                line = first[key].start_mark.line + 1
                self._add(
                    [*path, key],
                    f"duplicate key {key!r} (first at line {line})",
                    key_node.start_mark,
                    expected="each key once",
                    got=f"{key!r} again",
                )
            else:
                first[key] = key_node

    def _alias_position(self, parent: Node, slot: Node | int) -> tuple[int, int]:
        if self._lines is None:
            self._lines = LineIndex(self._text, _YAML_BREAKS)
        if not isinstance(slot, int):
            slot = next(i for i, (key, _) in enumerate(parent.value) if key is slot)
        return self._lines.position(_written(self._text, parent)[slot][1])

    def _recursive_alias(self, node: Node, path: list[Any], parent: Node, slot: Node | int) -> None:
        anchor_line = node.start_mark.line + 1
        self._add(
            path,
            f"recursive alias: the value anchored at line {anchor_line} contains itself",
            self._alias_position(parent, slot),
            expected="an alias to a value that does not contain it",
        )

    def _alias(
        self, node: Node, value: Any, path: list[Any], parent: Node, slot: Node | int
    ) -> Any:
        self._spent += self._size(node, 0)
        self._aliases.append((self._spent, tuple(path), parent, slot))
        if self._spent > self._ceiling:
            raise _AliasBudgetExceeded
        return value

    def _size(self, node: Node, depth: int) -> int:
        """How many nodes ``node`` stands for once every alias inside it is expanded."""
        ident = id(node)
        known = self._sizes.get(ident)
        if known is not None:
            return known
        # Counted once while being measured: a value that contains itself (already a
        # problem) must not send the count round in circles.
        self._sizes[ident] = 1
        total = 1
        if depth < MAX_DEPTH:
            children = (
                [child for pair in node.value for child in pair]
                if node.__class__ is MappingNode
                else node.value
            )
            for child in children:
                total += 1 if child.__class__ is ScalarNode else self._size(child, depth + 1)
        self._sizes[ident] = total
        return total

    def _alias_budget_problem(self, budget: int) -> Problem:
        # Blame the alias that took the total over the budget.
        spent, path, parent, slot = next(entry for entry in self._aliases if entry[0] > budget)
        line, column = self._alias_position(parent, slot)
        return Problem(
            format_path(path),
            f"alias expansion exceeds {budget:,} nodes (billion laughs?)",
            self._file,
            line,
            column,
            expected=f"aliases adding at most {budget:,} nodes",
            got=f"{spent:,} nodes by this alias",
        )


def _short_tag(tag: str) -> str:
    return "!!" + tag.removeprefix(_CORE) if tag.startswith(_CORE) else tag


class _YamlLocator:
    """Positions in YAML text, from composing it again on the first request.

    A value reached through an alias is located at the ``*alias`` itself; what lies
    below it is located inside the anchored original.
    """

    __slots__ = ("_lines", "_root", "_text", "_written")

    def __init__(self, text: str, file: str | None) -> None:
        self._text = text
        with _gc_paused():
            self._root = _compose(text, file)
        self._lines = LineIndex(text, _YAML_BREAKS)
        self._written: dict[int, list[tuple[int, int]]] = {}  # id(node) -> _written()

    def find(self, path: Path, key: bool) -> tuple[int, int] | None:
        node = self._root
        if node is None:
            return 1, 1
        where = int(node.start_mark.index)
        for step, part in enumerate(path):
            slot = _slot(node, part)
            if slot is None:
                break
            written = self._written.get(id(node))
            if written is None:
                written = self._written[id(node)] = _written(self._text, node)
            key_at, where = written[slot]
            if key and step == len(path) - 1 and node.__class__ is MappingNode:
                where = key_at
            node = node.value[slot][1] if node.__class__ is MappingNode else node.value[slot]
        return self._lines.position(where)


def _slot(node: Node, part: str | int) -> int | None:
    """Which child of ``node`` the path part names, if it exists."""
    if node.__class__ is MappingNode:
        if not isinstance(part, str):
            return None
        found = None
        for index, (key, _) in enumerate(node.value):
            # Like a dict, the last of duplicate keys is the one that counts.
            if key.__class__ is ScalarNode and key.value == part:
                found = index
        return found
    if node.__class__ is SequenceNode and isinstance(part, int) and 0 <= part < len(node.value):
        return part
    return None
