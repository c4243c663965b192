"""Validate machine specs against the packaged JSON Schema, quickly and legibly.

The schema (``statewise/schemas/machine.schema.json``) is the single source of truth.
``jsonschema`` interprets it faithfully but spends ~150 µs per item, seconds for a
large machine, so :func:`compile_schema` turns the schema into a tree of closures
once, and those answer "valid?" in a small fraction of that time. Only a rejected
document is handed to ``jsonschema`` (and only the parts of it the compiled checks
reject), whose errors are then rewritten into :class:`SchemaIssue` records that say
what was expected and what came in.

The compiler knows a deliberately small set of keywords and refuses every other one,
so a schema edit can never be enforced by half without anyone noticing: teach the
compiler the keyword first.
"""

from __future__ import annotations

import datetime
import json
import numbers
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any, Final
from urllib.parse import unquote

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError

from statewise.errors import did_you_mean

__all__ = [
    "SUPPORTED_KEYWORDS",
    "SchemaIssue",
    "SchemaValidator",
    "compile_schema",
    "is_valid",
    "load_machine_schema",
    "validate",
]

Check = Callable[[Any], bool]
"""A compiled schema: takes a JSON-like document, says whether it is valid."""

_DRAFT_2020_12: Final = "https://json-schema.org/draft/2020-12/schema"

_ANNOTATION_KEYWORDS: Final = frozenset(
    {"$schema", "$id", "$comment", "$defs", "title", "description", "default", "examples"}
)
_ASSERTION_KEYWORDS: Final = frozenset(
    {
        "type",
        "enum",
        "const",
        "$ref",
        "allOf",
        "anyOf",
        "oneOf",
        "not",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "minItems",
        "maxItems",
        "uniqueItems",
        "pattern",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
    }
)
SUPPORTED_KEYWORDS: Final = _ANNOTATION_KEYWORDS | _ASSERTION_KEYWORDS
"""Every keyword :func:`compile_schema` accepts; any other one is a ``ValueError``."""

# Identifiers repeat a lot (every transition names states that were already seen), so
# each pattern remembers its verdicts. The memo is cleared wholesale when full: cheaper
# than LRU bookkeeping, and a refill costs one regex search per distinct string.
_MEMO_LIMIT: Final = 1 << 15
# Long strings rarely repeat, and keeping them alive in a memo would pin their memory.
_MEMO_MAX_LENGTH: Final = 64

# Plain-language readings of patterns the packaged schema uses; a pattern missing
# here is shown as the regex itself.
_PATTERN_PROSE: Final = {
    "^[A-Za-z_][A-Za-z0-9_]*(?![\\s\\S])": "letters, digits, _; not starting with a digit",
}

_SHOW_LIMIT: Final = 40


# --- JSON types, the way jsonschema's draft 2020-12 type checker sees them --------


def _accept(_value: Any) -> bool:
    return True


def _reject(_value: Any) -> bool:
    return False


def _is_object(value: Any) -> bool:
    return isinstance(value, dict)


def _is_array(value: Any) -> bool:
    return isinstance(value, list)


def _is_string(value: Any) -> bool:
    return isinstance(value, str)


def _is_boolean(value: Any) -> bool:
    return isinstance(value, bool)


def _is_null(value: Any) -> bool:
    return value is None


def _is_number(value: Any) -> bool:
    kind = type(value)
    if kind is int or kind is float:
        return True
    # bool subclasses int, but JSON keeps booleans and numbers apart.
    return isinstance(value, numbers.Number) and not isinstance(value, bool)


def _is_integer(value: Any) -> bool:
    kind = type(value)
    if kind is int:
        return True
    if kind is float:
        # jsonschema counts 1.0 as an integer (since draft 6); so must we.
        return bool(value.is_integer())
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


_TYPE_PREDICATES: Final[Mapping[str, Check]] = {
    "object": _is_object,
    "array": _is_array,
    "string": _is_string,
    "number": _is_number,
    "integer": _is_integer,
    "boolean": _is_boolean,
    "null": _is_null,
}


# --- JSON equality ------------------------------------------------------------------
# jsonschema compares enum/const/uniqueItems values so that true != 1 and
# false != 0, at any depth, while 1 == 1.0. Freezing a value into a hashable key
# with booleans replaced by private markers gives exactly that equality, and lets
# membership tests use hashing instead of pairwise comparison.

_TRUE: Final = object()
_FALSE: Final = object()
_SEQUENCE: Final = object()
_MAPPING: Final = object()
_OPAQUE: Final = object()


def _freeze(value: Any) -> Any:
    if isinstance(value, str):
        return value
    if value is True:
        return _TRUE
    if value is False:
        return _FALSE
    if isinstance(value, list | tuple):
        return (_SEQUENCE, *map(_freeze, value))
    if isinstance(value, dict):
        return (_MAPPING, frozenset((key, _freeze(item)) for key, item in value.items()))
    try:
        hash(value)
    except TypeError:
        # Not JSON (a YAML set, say): equal to nothing but itself.
        return (_OPAQUE, id(value))
    return value


def _first_duplicate(items: Sequence[Any]) -> tuple[int, int] | None:
    """The indexes of the first item equal to an earlier one, or ``None``."""
    seen: dict[Any, int] = {}
    for index, item in enumerate(items):
        frozen = _freeze(item)
        earlier = seen.setdefault(frozen, index)
        if earlier != index:
            return earlier, index
    return None


def _equals_any(options: Sequence[Any]) -> Check:
    if all(type(option) is str for option in options):
        strings = frozenset(options)

        def one_of_strings(value: Any) -> bool:
            return isinstance(value, str) and value in strings

        return one_of_strings
    frozen = frozenset(map(_freeze, options))

    def one_of_values(value: Any) -> bool:
        return _freeze(value) in frozen

    return one_of_values


# --- combinators --------------------------------------------------------------------


def _all_of(checks: Iterable[Check]) -> Check:
    parts = [check for check in checks if check is not _accept]
    if _reject in parts:
        return _reject
    if not parts:
        return _accept
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        first, second = parts
        return lambda value: first(value) and second(value)
    frozen = tuple(parts)

    def every(value: Any) -> bool:
        # Explicit loops here and below: a generator inside all()/any() costs more
        # than the loop on this hot path.
        for check in frozen:  # noqa: SIM110
            if not check(value):
                return False
        return True

    return every


def _any_of(checks: Iterable[Check]) -> Check:
    parts = [check for check in checks if check is not _reject]
    if _accept in parts:
        return _accept
    if not parts:
        return _reject
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        first, second = parts
        return lambda value: first(value) or second(value)
    frozen = tuple(parts)

    def some(value: Any) -> bool:
        for check in frozen:  # noqa: SIM110
            if check(value):
                return True
        return False

    return some


def _one_of(checks: Sequence[Check]) -> Check:
    frozen = tuple(checks)

    def exactly_one(value: Any) -> bool:
        found = False
        for check in frozen:
            if check(value):
                if found:
                    return False
                found = True
        return found

    return exactly_one


def _negate(check: Check) -> Check:
    if check is _accept:
        return _reject
    if check is _reject:
        return _accept
    return lambda value: not check(value)


# --- type-specific keyword groups ---------------------------------------------------
# Each group takes ``other``: the verdict for an instance of some other type. It is
# True when the group merely constrains its type, and False when the schema's ``type``
# is exactly that type, so the type test and the constraints share one call.


def _closed_object(
    properties: Mapping[str, Check], required: tuple[str, ...], extra: Check, other: bool
) -> Check:
    # additionalProperties is false or a schema: every key has a check, found with one
    # dict lookup per key (an unknown key's check is ``extra``, e.g. _reject).
    lookup = dict(properties).get

    def closed_object(value: Any) -> bool:
        if not isinstance(value, dict):
            return other
        for name in required:
            if name not in value:
                return False
        for key, item in value.items():  # noqa: SIM110
            if not lookup(key, extra)(item):
                return False
        return True

    return closed_object


_ABSENT: Final = object()


def _open_object(properties: Mapping[str, Check], required: tuple[str, ...], other: bool) -> Check:
    checks = tuple((name, check) for name, check in properties.items() if check is not _accept)

    def open_object(value: Any) -> bool:
        if not isinstance(value, dict):
            return other
        for name in required:
            if name not in value:
                return False
        for name, check in checks:
            item = value.get(name, _ABSENT)
            if item is not _ABSENT and not check(item):
                return False
        return True

    return open_object


def _array(item: Check, low: int, high: int | None, unique: bool, other: bool) -> Check:
    each = None if item is _accept else item

    def array(value: Any) -> bool:
        if not isinstance(value, list):
            return other
        count = len(value)
        if count < low or (high is not None and count > high):
            return False
        if each is not None and not all(map(each, value)):
            return False
        return not unique or _first_duplicate(value) is None

    return array


def _remember(memo: dict[str, bool], text: str, verdict: bool) -> bool:
    if len(text) <= _MEMO_MAX_LENGTH:
        if len(memo) >= _MEMO_LIMIT:
            memo.clear()
        memo[text] = verdict
    return verdict


def _matcher(memo: dict[str, bool], search: Callable[[str], object]) -> Check:
    recall = memo.get

    def matches(text: str) -> bool:
        verdict = recall(text)
        if verdict is None:
            verdict = _remember(memo, text, search(text) is not None)
        return verdict

    return matches


def _patterned_string(memo: dict[str, bool], search: Callable[[str], object], other: bool) -> Check:
    # The identifier shape (a string and a pattern, nothing else) is by far the most
    # common node, so the memo lookup is inlined rather than called.
    recall = memo.get

    def patterned_string(value: Any) -> bool:
        if not isinstance(value, str):
            return other
        verdict = recall(value)
        if verdict is None:
            verdict = _remember(memo, value, search(value) is not None)
        return verdict

    return patterned_string


def _string(low: int, high: int | None, matches: Check | None, other: bool) -> Check:
    def string(value: Any) -> bool:
        if not isinstance(value, str):
            return other
        length = len(value)
        if length < low or (high is not None and length > high):
            return False
        return matches is None or matches(value)

    return string


def _number(
    is_kind: Check,
    bounds: tuple[float | None, float | None, float | None, float | None],
    other: bool,
) -> Check:
    low, above, high, below = bounds

    def number(value: Any) -> bool:
        if not is_kind(value):
            return other
        # Written as negated failures (jsonschema fails on ``value < minimum`` and so
        # on) so that NaN passes here exactly when it passes there.
        return not (
            (low is not None and value < low)
            or (above is not None and value <= above)
            or (high is not None and value > high)
            or (below is not None and value >= below)
        )

    return number


# --- the compiler -------------------------------------------------------------------


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _resolve(root: Any, ref: str) -> Any:
    """The subschema a local ``$ref`` (``#`` or ``#/json/pointer``) names."""
    if not ref.startswith("#"):
        raise ValueError(f"unsupported $ref {ref!r}: only local references ('#/...') are")
    pointer = unquote(ref[1:])
    if not pointer:
        return root
    if not pointer.startswith("/"):
        raise ValueError(f"unsupported $ref {ref!r}: anchors are not supported")
    node = root
    for raw in pointer[1:].split("/"):
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise ValueError(f"$ref {ref!r} does not resolve inside the schema")
    return node


def _type_list(schema: Mapping[str, Any]) -> tuple[str, ...] | None:
    declared = schema.get("type")
    if declared is None:
        return None
    if isinstance(declared, str):
        return (declared,)
    return tuple(declared)


class _Compiler:
    """Turns one root schema, and the subschemas it reaches, into checks."""

    __slots__ = ("_done", "_patterns", "_pending", "_root")

    def __init__(self, root: Mapping[str, Any]) -> None:
        self._root = root
        # Shared targets ($defs entries, $ref targets, the root) by identity; the
        # schema outlives the compiler's use of it, so ids stay meaningful.
        self._done: dict[int, Check] = {}
        self._pending: dict[int, list[Check]] = {}
        self._patterns: dict[str, tuple[dict[str, bool], Callable[[str], object]]] = {}

    def shared(self, schema: Any, at: str) -> Check:
        """The check for a schema that may be reached from several places."""
        key = id(schema)
        done = self._done.get(key)
        if done is not None:
            return done
        pending = self._pending.get(key)
        if pending is not None:
            # A recursive schema reached itself while being compiled: defer to the
            # finished check through the cell filled in below.
            cell_of_target = pending

            def deferred(value: Any) -> bool:
                return cell_of_target[0](value)

            return deferred
        cell: list[Check] = []
        self._pending[key] = cell
        check = self.node(schema, at)
        cell.append(check)
        del self._pending[key]
        self._done[key] = check
        return check

    def node(self, schema: Any, at: str) -> Check:
        """The check for one schema; ``at`` locates it in error messages."""
        if schema is True:
            return _accept
        if schema is False:
            return _reject
        unknown = [keyword for keyword in schema if keyword not in SUPPORTED_KEYWORDS]
        if unknown:
            names = ", ".join(map(repr, unknown))
            raise ValueError(
                f"unsupported JSON Schema keyword(s) {names} at {at}: the compiled "
                "validator would not enforce them; teach statewise.spec.schema first"
            )
        if "$id" in schema and at != "#":
            raise ValueError(f"'$id' at {at} is not supported: it would change how $ref resolves")
        for name, sub in schema.get("$defs", {}).items():
            self.shared(sub, f"{at}/$defs/{_escape(name)}")

        parts = self._typed(schema, at)
        if "$ref" in schema:
            ref = schema["$ref"]
            parts.append(self.shared(_resolve(self._root, ref), ref))
        if "enum" in schema:
            parts.append(_equals_any(schema["enum"]))
        if "const" in schema:
            parts.append(_equals_any([schema["const"]]))
        for index, sub in enumerate(schema.get("allOf", ())):
            parts.append(self.node(sub, f"{at}/allOf/{index}"))
        if "anyOf" in schema:
            parts.append(_any_of(self._each(schema["anyOf"], f"{at}/anyOf")))
        if "oneOf" in schema:
            parts.append(_one_of(self._each(schema["oneOf"], f"{at}/oneOf")))
        if "not" in schema:
            parts.append(_negate(self.node(schema["not"], f"{at}/not")))
        return _all_of(parts)

    def _each(self, schemas: Sequence[Any], at: str) -> list[Check]:
        return [self.node(sub, f"{at}/{index}") for index, sub in enumerate(schemas)]

    def _typed(self, schema: Mapping[str, Any], at: str) -> list[Check]:
        types = _type_list(schema)
        single = types[0] if types is not None and len(types) == 1 else None
        # Every group is built, even one the type rules out, so that an unsupported
        # keyword below it is still refused.
        groups = {
            "object": self._object(schema, at, other=single != "object"),
            "array": self._array(schema, at, other=single != "array"),
            "string": self._string(schema, other=single != "string"),
            "number": _number_group(schema, single),
        }
        groups["integer"] = groups["number"]
        if single is not None:
            group = groups.get(single)
            return [group if group is not None else _TYPE_PREDICATES[single]]
        parts = [] if types is None else [_any_of(_TYPE_PREDICATES[name] for name in types)]
        for name, group in groups.items():
            if group is not None and name != "integer":
                applies = types is None or name in types
                if name == "number":
                    applies = applies or "integer" in (types or ())
                if applies:
                    parts.append(group)
        return parts

    def _object(self, schema: Mapping[str, Any], at: str, other: bool) -> Check | None:
        if not {"properties", "required", "additionalProperties"} & schema.keys():
            return None
        properties = {
            name: self.node(sub, f"{at}/properties/{_escape(name)}")
            for name, sub in schema.get("properties", {}).items()
        }
        required = tuple(schema.get("required", ()))
        extra = self.node(schema.get("additionalProperties", True), f"{at}/additionalProperties")
        if extra is _accept:
            return _open_object(properties, required, other)
        return _closed_object(properties, required, extra, other)

    def _array(self, schema: Mapping[str, Any], at: str, other: bool) -> Check | None:
        if not {"items", "minItems", "maxItems", "uniqueItems"} & schema.keys():
            return None
        item = self.node(schema.get("items", True), f"{at}/items")
        return _array(
            item,
            schema.get("minItems", 0),
            schema.get("maxItems"),
            schema.get("uniqueItems", False),
            other,
        )

    def _string(self, schema: Mapping[str, Any], other: bool) -> Check | None:
        if not {"pattern", "minLength", "maxLength"} & schema.keys():
            return None
        pattern = schema.get("pattern")
        low = schema.get("minLength", 0)
        high = schema.get("maxLength")
        if pattern is None:
            return _string(low, high, None, other)
        memo, search = self._pattern(pattern)
        if low == 0 and high is None:
            return _patterned_string(memo, search, other)
        return _string(low, high, _matcher(memo, search), other)

    def _pattern(self, pattern: str) -> tuple[dict[str, bool], Callable[[str], object]]:
        known = self._patterns.get(pattern)
        if known is None:
            # re.search, not fullmatch: JSON Schema patterns are unanchored, and
            # jsonschema searches with Python's re (so '$' also matches before a
            # final newline there, and therefore here).
            known = self._patterns[pattern] = ({}, re.compile(pattern).search)
        return known


def _number_group(schema: Mapping[str, Any], single: str | None) -> Check | None:
    names = ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum")
    if not set(names) & schema.keys():
        return None
    low, above, high, below = (schema.get(name) for name in names)
    is_kind = _is_integer if single == "integer" else _is_number
    return _number(is_kind, (low, above, high, below), other=single not in ("number", "integer"))


def compile_schema(schema: Mapping[str, Any]) -> Check:
    """Compile a draft 2020-12 schema into a fast ``doc -> bool`` check.

    The check agrees with ``Draft202012Validator(schema).is_valid`` on JSON-like
    documents (dicts, lists, str, int, float, bool, None). Only the keywords in
    :data:`SUPPORTED_KEYWORDS` are understood and ``$ref`` must be local (``#...``);
    anything else, a nested ``$id``, a ``$schema`` other than draft 2020-12, or a
    schema that is not valid against the draft's metaschema raises ``ValueError``.
    The check holds no state but a memo of pattern verdicts, and may be shared
    between threads.
    """
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as error:
        raise ValueError(f"not a valid draft 2020-12 JSON Schema: {error.message}") from error
    declared = schema.get("$schema", _DRAFT_2020_12)
    if declared.rstrip("#") != _DRAFT_2020_12:
        raise ValueError(f"unsupported $schema {declared!r}: only {_DRAFT_2020_12} is compiled")
    return _Compiler(schema).shared(schema, "#")


# --- issues -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SchemaIssue:
    """One way a document breaks the schema.

    ``path`` leads from the document root to the offending value (``str`` steps are
    object keys, ``int`` steps list indexes; empty for the document itself). When
    ``key`` is true the offending thing is the last key of ``path`` rather than its
    value (an unknown key). ``expected`` and ``got`` restate the two halves of
    ``message`` on their own, when the message has them.
    """

    path: tuple[str | int, ...]
    message: str
    expected: str | None = None
    got: str | None = None
    key: bool = False


_Raw = tuple[tuple[Any, ...], str, str | None, str | None, bool]


def _tokens(value: Any) -> Iterator[str]:
    # Rendered lazily so that showing a huge value costs only the prefix shown.
    if value is None:
        yield "null"
    elif isinstance(value, bool):
        yield "true" if value else "false"
    elif isinstance(value, str):
        yield repr(value[: _SHOW_LIMIT + 1])
    elif isinstance(value, dict):
        yield "{"
        for index, (key, item) in enumerate(value.items()):
            if index:
                yield ", "
            yield from _tokens(key)
            yield ": "
            yield from _tokens(item)
        yield "}"
    elif isinstance(value, list):
        yield "["
        for index, item in enumerate(value):
            if index:
                yield ", "
            yield from _tokens(item)
        yield "]"
    else:
        # Numbers and whatever else a parser may produce (a YAML date, say) read
        # best as their plain text.
        yield str(value)


def _show(value: Any) -> str:
    """A compact, JSON-flavoured rendering of ``value``, cut to about 40 characters."""
    pieces: list[str] = []
    size = 0
    for token in _tokens(value):
        pieces.append(token)
        size += len(token)
        if size > _SHOW_LIMIT:
            break
    text = "".join(pieces)
    return text if len(text) <= _SHOW_LIMIT else text[: _SHOW_LIMIT - 3] + "..."


def _type_label(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, numbers.Number):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


def _typed(value: Any) -> str:
    """``value`` with its JSON type in front: ``integer 5``, ``array [1]``, ``null``."""
    label = _type_label(value)
    return label if value is None else f"{label} {_show(value)}"


def _kind(value: Any) -> str:
    """The JSON type ``value`` is checked as; integral floats count as integers."""
    if isinstance(value, bool):
        return "boolean"
    if _is_integer(value):
        return "integer"
    for name in ("number", "null", "string", "object", "array"):
        if _TYPE_PREDICATES[name](value):
            return name
    return "other"


_ALL_KINDS: Final = frozenset({"object", "array", "string", "number", "integer", "boolean", "null"})

_TYPE_NOUNS: Final = {
    "object": ("an object", "objects"),
    "array": ("an array", "arrays"),
    "string": ("a string", "strings"),
    "number": ("a number", "numbers"),
    "integer": ("an integer", "integers"),
    "boolean": ("a boolean", "booleans"),
    "null": ("null", "nulls"),
}


def _join(words: Sequence[str], conjunction: str = "or") -> str:
    if len(words) <= 1:
        return "".join(words)
    return f"{', '.join(words[:-1])} {conjunction} {words[-1]}"


def _literal(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


_BARE_OPTION: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def _option(value: Any) -> str:
    if isinstance(value, str) and _BARE_OPTION.fullmatch(value):
        return value
    return _literal(value)


def _name_noun(name: str) -> tuple[str, str]:
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).replace("_", " ").lower()
    article = "an" if words[:1] in ("a", "e", "i", "o", "u") else "a"
    if words.endswith(("s", "x", "ch", "sh")):
        plural = words + "es"
    elif words.endswith("y") and words[-2:-1] not in ("a", "e", "i", "o", "u"):
        plural = words[:-1] + "ies"
    else:
        plural = words + "s"
    return f"{article} {words}", plural


def _is_bare_ref(schema: Any) -> bool:
    """Whether ``schema`` is a ``$ref`` with nothing beside it that could fail."""
    return isinstance(schema, Mapping) and schema.keys() - _ANNOTATION_KEYWORDS == {"$ref"}


def _is_alternation(schema: Any) -> bool:
    return isinstance(schema, Mapping) and not {"anyOf", "oneOf"}.isdisjoint(schema)


def _unquoted_text(value: Any) -> str | None:
    """What an unquoted YAML scalar that parsed as a number or date probably said."""
    # ``version: 1.0`` arrives as a float and ``released: 2024-01-01`` as a date; the
    # quoted form is what the author meant more often than not. (Booleans are left
    # out: ``yes`` and ``on`` also parse as true, so the text cannot be recovered.)
    if isinstance(value, datetime.date):
        return value.isoformat()
    if _is_number(value):
        return str(value)
    return None


def _pattern_detail(schema: Any) -> str:
    pattern = schema.get("pattern") if isinstance(schema, Mapping) else None
    if pattern is None:
        return ""
    prose = _PATTERN_PROSE.get(pattern)
    return f" ({prose})" if prose is not None else f" matching {pattern!r}"


_NOTHING: Final[Mapping[str, Any]] = {"not": True}


def _false_as_not(schema: Any) -> Any:
    """A copy of ``schema`` where a ``false`` property or alternative is ``{"not": true}``.

    jsonschema loses the path of an error raised by a ``false`` subschema it descends
    into (it leaves out the property name, or the anyOf branch index); the equivalent
    ``{"not": true}`` keeps them. Keyword values that are data (enum, const) are left
    alone, as are ``items``/``additionalProperties: false``, which report correctly.
    """
    if not isinstance(schema, Mapping):
        return schema
    copied: dict[str, Any] = {}
    for keyword, value in schema.items():
        if keyword == "properties":
            copied[keyword] = {
                name: _NOTHING if sub is False else _false_as_not(sub)
                for name, sub in value.items()
            }
        elif keyword in ("allOf", "anyOf", "oneOf"):
            copied[keyword] = [_NOTHING if sub is False else _false_as_not(sub) for sub in value]
        elif keyword == "$defs":
            copied[keyword] = {name: _false_as_not(sub) for name, sub in value.items()}
        elif keyword in ("items", "additionalProperties", "not"):
            copied[keyword] = _false_as_not(value)
        else:
            copied[keyword] = value
    return copied


# Keywords whose errors a schema raises about the instance itself, plus the
# applicators that merely hand each child to one subschema. A schema made of nothing
# else can be explained piecewise: its own keywords first, then only the children
# whose compiled check fails.
_PIECEWISE: Final = _ANNOTATION_KEYWORDS | {
    "type",
    "enum",
    "const",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "uniqueItems",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
}


class _Explainer:
    """Rewrites jsonschema's errors for one schema into :class:`SchemaIssue` lists."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        schema = _false_as_not(schema)
        self._schema = schema
        self._validator = Draft202012Validator(schema)
        self._compiler = _Compiler(schema)
        self._checks: dict[int, Check] = {}
        self._shallow: dict[int, Any] = {}
        self._originals: dict[int, Any] = {}
        # jsonschema hands back the very subschema objects of ``schema``, so a $defs
        # entry is recognised, and named, by identity.
        self._names = {id(sub): name for name, sub in schema.get("$defs", {}).items()}

    def explain(self, doc: Any, piecewise: bool = True) -> list[SchemaIssue]:
        """Every issue with ``doc``, in document order.

        ``piecewise`` runs jsonschema only over the parts of ``doc`` that the compiled
        checks reject (one bad transition among thousands costs milliseconds rather
        than a full jsonschema pass); the issues are the same either way.
        """
        raw: list[_Raw] = []
        if piecewise:
            self._explain_part(self._schema, doc, (), raw)
        else:
            for error in self._validator.iter_errors(doc):
                raw.extend(self._translate(error, ()))
        return _in_document_order(doc, raw)

    def _explain_part(
        self, schema: Any, value: Any, path: tuple[Any, ...], raw: list[_Raw]
    ) -> None:
        """Add the issues of ``value`` (at ``path``) against ``schema`` to ``raw``."""
        # A bare $ref fails exactly as its target does.
        seen: set[str] = set()
        while _is_bare_ref(schema) and schema["$ref"] not in seen:
            seen.add(schema["$ref"])
            schema = _resolve(self._schema, schema["$ref"])
        if not isinstance(schema, Mapping) or not schema.keys() <= _PIECEWISE:
            self._run(schema, value, path, raw)
            return
        self._run(self._shallow_of(schema), value, path, raw)
        if isinstance(value, dict):
            properties = schema.get("properties", {})
            extra = schema.get("additionalProperties", True)
            for key, item in value.items():
                sub = properties.get(key, extra)
                if not isinstance(sub, bool) and not self._check(sub)(item):
                    self._explain_part(sub, item, (*path, key), raw)
        elif isinstance(value, list):
            items = schema.get("items", True)
            if not isinstance(items, bool):
                check = self._check(items)
                for index, item in enumerate(value):
                    if not check(item):
                        self._explain_part(items, item, (*path, index), raw)

    def _run(self, schema: Any, value: Any, path: tuple[Any, ...], raw: list[_Raw]) -> None:
        # evolve() keeps the root's resolver, so $refs inside ``schema`` still resolve.
        for error in self._validator.evolve(schema=schema).iter_errors(value):
            raw.extend(self._translate(error, path))

    def _shallow_of(self, schema: Mapping[str, Any]) -> Any:
        """``schema`` with its children's schemas replaced by ``true``.

        Running it reports what is wrong with the value itself (its type, missing and
        unknown keys, its size...) and nothing about the children.
        """
        shallow = self._shallow.get(id(schema))
        if shallow is None:
            copied = dict(schema)
            if "properties" in copied:
                copied["properties"] = dict.fromkeys(copied["properties"], True)
            for keyword in ("items", "additionalProperties"):
                if isinstance(copied.get(keyword), Mapping):
                    copied[keyword] = True
            shallow = self._shallow[id(schema)] = copied
            self._originals[id(copied)] = schema
        return shallow

    def _check(self, schema: Any) -> Check:
        check = self._checks.get(id(schema))
        if check is None:
            check = self._checks[id(schema)] = self._compiler.node(schema, "#")
        return check

    def _translate(self, error: ValidationError, prefix: tuple[Any, ...]) -> Iterator[_Raw]:
        """Issues for one jsonschema error about the value at ``prefix``."""
        path = (*prefix, *error.absolute_path)
        value: Any = error.instance
        schema: Any = self._originals.get(id(error.schema), error.schema)
        keyword = error.validator
        limit: Any = error.validator_value
        match keyword:
            case "additionalProperties":
                yield from _unknown_keys(path, value, schema)
            case "required":
                for name in limit:
                    if name not in value:
                        yield path, f"missing required key {name!r}", f"key {name!r}", None, False
            case "type":
                yield self._wrong_type(path, value, schema)
            case "pattern":
                expected = f"{self._def_noun(schema) or 'a string'}{_pattern_detail(schema)}"
                yield _expected(path, expected, _show(value))
            case "enum" | "const":
                options = limit if keyword == "enum" else [limit]
                yield _not_an_option(path, value, options)
            case "minItems" | "maxItems" | "minLength" | "maxLength":
                yield _wrong_size(path, value, keyword, limit)
            case "minimum" | "exclusiveMinimum" | "maximum" | "exclusiveMaximum":
                noun = "an integer" if schema.get("type") == "integer" else "a number"
                operator = _COMPARISONS[keyword]
                yield _expected(path, f"{noun} {operator} {limit!r}", _show(value))
            case "uniqueItems":
                first, again = _first_duplicate(value) or (0, 0)
                shown = _show(value[again])
                yield (
                    (*path, again),
                    f"expected unique items, got {shown} again (first at index {first})",
                    "unique items",
                    shown,
                    False,
                )
            case "items":
                # Only ``items: false`` fails here itself (no prefixItems is supported).
                got = f"{len(value)} item{'s' if len(value) != 1 else ''}"
                yield path, f"expected an empty list, got {got}", "an empty list", got, False
            case "anyOf" | "oneOf":
                yield from self._alternatives(error, path, prefix)
            case "not" if limit is not True:
                yield _expected(path, f"anything but {self._noun(limit)[0]}", _typed(value))
            case "not" | None:
                got = _typed(value)
                yield path, f"no value is allowed here, got {got}", "nothing", got, False
            case _:
                raise AssertionError(f"compile_schema let through keyword {keyword!r}")

    def _wrong_type(self, path: tuple[Any, ...], value: Any, schema: Mapping[str, Any]) -> _Raw:
        types = _type_list(schema) or ()
        expected = _join([_TYPE_NOUNS[name][0] for name in types])
        got = _typed(value)
        message = f"expected {expected}, got {got}"
        text = _unquoted_text(value) if "string" in types else None
        if text is not None and self._check(schema)(text):
            message += f' (quote it: "{text}")'
        return path, message, expected, got, False

    def _alternatives(
        self, error: ValidationError, path: tuple[Any, ...], prefix: tuple[Any, ...]
    ) -> Iterator[_Raw]:
        branches: Any = error.validator_value
        value: Any = error.instance
        if not error.context:
            # oneOf fails this way only when several branches accept the value.
            matched = [self._noun(b)[0] for b in branches if self._check(b)(value)]
            expected = "exactly one of " + self._noun({"anyOf": branches})[0]
            got = _typed(value)
            yield (
                path,
                f"expected {expected}, got {got}, which is {_join(matched, 'and')}",
                expected,
                got,
                False,
            )
            return
        errors: dict[int, list[ValidationError]] = {}
        for sub in error.context:
            errors.setdefault(int(sub.relative_schema_path[0]), []).append(sub)
        kind = _kind(value)
        candidates = [i for i, branch in enumerate(branches) if kind in self._kinds(branch)]
        if not candidates:
            possible = [branch for branch in branches if self._kinds(branch)]
            expected = self._noun({"anyOf": possible})[0] or "nothing"
            got = _typed(value)
            yield _expected(path, expected, got)
            return
        depth = {i: max(len(sub.path) for sub in errors[i]) for i in candidates}
        if len(candidates) > 1 and not any(depth.values()):
            # Several branches take this type and all reject the value outright:
            # name them all rather than guess which one was meant.
            chosen_branches = [branches[i] for i in candidates]
            expected = self._noun({"anyOf": chosen_branches}, detailed=True)[0]
            yield _expected(path, expected, _show(value))
            return
        # Otherwise the branch that got deepest into the value is the one meant.
        chosen = max(candidates, key=depth.__getitem__)
        others = [branch for i, branch in enumerate(branches) if i != chosen]
        for sub in errors[chosen]:
            for raw in self._translate(sub, prefix):
                yield self._alone_hint(raw, path, value, others)

    def _alone_hint(
        self, raw: _Raw, path: tuple[Any, ...], value: Any, others: Sequence[Any]
    ) -> _Raw:
        # A list item that another branch would accept on its own (``source: ["*"]``)
        # was most likely meant to stand alone: say so.
        issue_path, message, expected, got, key = raw
        if isinstance(value, list) and len(issue_path) == len(path) + 1:
            item = value[issue_path[-1]]
            if any(self._check(branch)(item) for branch in others):
                message += f"; {_show(item)} is only allowed on its own, not inside a list"
        return issue_path, message, expected, got, key

    def _kinds(self, schema: Any) -> frozenset[str]:
        """The JSON types a schema can accept at all (integer counts under number).

        A ``$ref`` cycle that never moves into the instance would make jsonschema
        recurse forever before any error reached here, so none is guarded against.
        """
        if schema is False or schema is _NOTHING:
            return frozenset()
        if schema is True:
            return _ALL_KINDS
        kinds = _ALL_KINDS
        types = _type_list(schema)
        if types is not None:
            expanded = {*types, *(["integer"] if "number" in types else [])}
            kinds &= expanded
        if "const" in schema:
            kinds &= {_kind(schema["const"])}
        if "enum" in schema:
            kinds &= {_kind(option) for option in schema["enum"]}
        if "$ref" in schema:
            kinds &= self._kinds(_resolve(self._schema, schema["$ref"]))
        for sub in schema.get("allOf", ()):
            kinds &= self._kinds(sub)
        for keyword in ("anyOf", "oneOf"):
            if keyword in schema:
                union: set[str] = set()
                for sub in schema[keyword]:
                    union |= self._kinds(sub)
                kinds &= union
        return kinds

    def _def_noun(self, schema: Any) -> str | None:
        name = self._names.get(id(schema))
        return None if name is None else _name_noun(name)[0]

    def _noun(
        self, schema: Any, detailed: bool = False, seen: frozenset[str] = frozenset()
    ) -> tuple[str, str]:
        """What a schema accepts, as a noun phrase: (singular, plural)."""
        nouns = self._nouns(schema, detailed, seen)
        return _join([s for s, _ in nouns]), _join([p for _, p in nouns])

    def _nouns(
        self, schema: Any, detailed: bool = False, seen: frozenset[str] = frozenset()
    ) -> list[tuple[str, str]]:
        """The alternatives a schema accepts, each as a (singular, plural) noun phrase.

        Alternations are flattened, so nested ones still read as one list.
        """
        if schema is True:
            return [("anything", "anything")]
        if schema is False or schema is _NOTHING:
            return [("nothing", "nothing")]
        if "const" in schema:
            literal = _literal(schema["const"])
            return [(literal, literal)]
        if "enum" in schema:
            options = ", ".join(map(_option, schema["enum"]))
            return [(f"one of {options}", f"values among {options}")]
        ref = schema.get("$ref")
        if ref is not None and ref not in seen:
            target = _resolve(self._schema, ref)
            name = self._names.get(id(target))
            # A named alternation ("one name or a list of names") reads better spelled
            # out than named; any other named definition is called by its name.
            if name is not None and not _is_alternation(target):
                singular, plural = _name_noun(name)
                return [(singular + (_pattern_detail(target) if detailed else ""), plural)]
            return self._nouns(target, detailed, seen | {ref})
        for keyword in ("anyOf", "oneOf"):
            if keyword in schema:
                flat = [n for sub in schema[keyword] for n in self._nouns(sub, detailed, seen)]
                return list(dict.fromkeys(flat))
        types = _type_list(schema)
        if types == ("array",):
            base = "non-empty list" if schema.get("minItems", 0) >= 1 else "list"
            items = schema.get("items", True)
            if items is True:
                return [_TYPE_NOUNS["array"] if base == "list" else (f"a {base}", f"{base}s")]
            of = self._noun(items, False, seen)[1]
            return [(f"a {base} of {of}", f"{base}s of {of}")]
        if types is not None:
            nouns = [_TYPE_NOUNS[name] for name in types]
            if detailed and len(nouns) == 1:
                singular, plural = nouns[0]
                nouns = [(singular + _pattern_detail(schema), plural)]
            return nouns
        return [("a value", "values")]


_COMPARISONS: Final = {
    "minimum": ">=",
    "exclusiveMinimum": ">",
    "maximum": "<=",
    "exclusiveMaximum": "<",
}


def _expected(path: tuple[Any, ...], expected: str, got: str, separator: str = ", ") -> _Raw:
    return path, f"expected {expected}{separator}got {got}", expected, got, False


def _unknown_keys(path: tuple[Any, ...], value: Any, schema: Mapping[str, Any]) -> Iterator[_Raw]:
    known = schema.get("properties", {})
    names = sorted(known)
    expected = f"one of: {', '.join(names)}" if names else "no keys at all"
    for key in value:
        if key not in known:
            hint = did_you_mean(str(key), names)
            message = f"unknown key {key!r}; expected {expected}{hint}"
            yield (*path, key), message, expected, repr(key), True


def _not_an_option(path: tuple[Any, ...], value: Any, options: Sequence[Any]) -> _Raw:
    if len(options) == 1:
        expected = _literal(options[0])
        return _expected(path, expected, _show(value))
    expected = f"one of {', '.join(map(_option, options))}"
    hint = ""
    if isinstance(value, str):
        hint = did_you_mean(value, [option for option in options if isinstance(option, str)])
    return path, f"expected {expected}; got {_show(value)}{hint}", expected, _show(value), False


def _wrong_size(path: tuple[Any, ...], value: Any, keyword: str, limit: int) -> _Raw:
    unit = "item" if keyword.endswith("Items") else "character"
    bound = "at least" if keyword.startswith("min") else "at most"
    expected = f"{bound} {limit} {unit}{'s' if limit != 1 else ''}"
    size = len(value)
    if size == 0:
        got = "an empty list" if unit == "item" else "an empty string"
    elif unit == "item":
        got = f"{size}"
    else:
        got = f"{_show(value)} ({size})"
    return _expected(path, expected, got)


def _in_document_order(doc: Any, raw: Iterable[_Raw]) -> list[SchemaIssue]:
    """Issues sorted by where their path leads in ``doc``, duplicates dropped.

    A dict's keys are ordered by insertion (as YAML and JSON parsers build them), so
    the position of each step reproduces the order of the source text; an object's
    own issues come before those of its children.
    """
    key_positions: dict[int, dict[Any, int]] = {}
    ranked: dict[SchemaIssue, tuple[int, ...]] = {}
    for path, message, expected, got, key in raw:
        node = doc
        rank: list[int] = []
        steps: list[str | int] = []
        for step in path:
            if isinstance(node, dict):
                positions = key_positions.get(id(node))
                if positions is None:
                    positions = key_positions[id(node)] = {k: i for i, k in enumerate(node)}
                rank.append(positions[step])
                steps.append(step if isinstance(step, str) else str(step))
            else:
                rank.append(step)
                steps.append(step)
            node = node[step]
        issue = SchemaIssue(tuple(steps), message, expected, got, key)
        ranked.setdefault(issue, tuple(rank))
    # sorted is stable: issues at the same place keep jsonschema's (schema) order.
    return sorted(ranked, key=ranked.__getitem__)


# --- the public entry points --------------------------------------------------------


class SchemaValidator:
    """A schema compiled for speed, with jsonschema behind it to explain rejections."""

    __slots__ = ("_check", "_explainer", "_schema")

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self._schema = schema
        self._check = compile_schema(schema)
        self._explainer: _Explainer | None = None

    @property
    def check(self) -> Check:
        """The compiled ``doc -> bool`` check."""
        return self._check

    def is_valid(self, doc: Any) -> bool:
        """Whether ``doc`` satisfies the schema."""
        return self._check(doc)

    def validate(self, doc: Any) -> list[SchemaIssue]:
        """Every issue with ``doc``, in document order; ``[]`` when it is valid.

        A valid document costs one compiled check. For a rejected one, jsonschema
        (set up on first need) is run over the parts the compiled checks reject, and
        its errors are what is reported.
        """
        if self._check(doc):
            return []
        if self._explainer is None:
            self._explainer = _Explainer(self._schema)
        return self._explainer.explain(doc)


@cache
def load_machine_schema() -> Mapping[str, Any]:
    """The packaged machine-spec schema, parsed once; callers must not mutate it."""
    resource = files("statewise") / "schemas" / "machine.schema.json"
    loaded: Mapping[str, Any] = json.loads(resource.read_text(encoding="utf-8"))
    return loaded


@cache
def _machine() -> SchemaValidator:
    return SchemaValidator(load_machine_schema())


def is_valid(doc: Any) -> bool:
    """Whether a machine-spec document (already parsed) satisfies the schema."""
    return _machine().is_valid(doc)


def validate(doc: Any) -> list[SchemaIssue]:
    """Every schema issue with a machine-spec document, in document order."""
    return _machine().validate(doc)
