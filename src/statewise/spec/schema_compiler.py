"""A JSON Schema (draft 2020-12, a deliberate subset) compiled into fast closures.

``jsonschema`` interprets a schema faithfully but spends ~150 µs per item: seconds for
a large machine. :func:`compile_schema` turns the schema into a tree of closures once,
and those answer "valid?" in a small fraction of that time, with jsonschema's exact
semantics (``true`` is not ``1``, ``1.0`` is an integer, patterns use ``re.search``).

The compiler knows a small set of keywords and refuses every other one, so a schema
edit can never be enforced by half without anyone noticing: teach the compiler the
keyword first. Explaining *why* a document is invalid is ``spec.schema``'s job.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final
from urllib.parse import unquote

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

__all__ = [
    "ANNOTATION_KEYWORDS",
    "SUPPORTED_KEYWORDS",
    "TYPE_PREDICATES",
    "Check",
    "SchemaCompiler",
    "compile_schema",
    "first_duplicate",
    "is_integer",
    "is_number",
    "resolve_ref",
    "type_list",
]

Check = Callable[[Any], bool]
"""A compiled schema: takes a JSON-like document, says whether it is valid."""

_DRAFT_2020_12: Final = "https://json-schema.org/draft/2020-12/schema"

ANNOTATION_KEYWORDS: Final = frozenset(
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
SUPPORTED_KEYWORDS: Final = ANNOTATION_KEYWORDS | _ASSERTION_KEYWORDS
"""Every keyword :func:`compile_schema` accepts; any other one is a ``ValueError``."""

# Identifiers repeat a lot (every transition names states that were already seen), so
# each pattern remembers its verdicts. The memo is cleared wholesale when full: cheaper
# than LRU bookkeeping, and a refill costs one regex search per distinct string.
_MEMO_LIMIT: Final = 1 << 15
# Long strings rarely repeat, and keeping them alive in a memo would pin their memory.
_MEMO_MAX_LENGTH: Final = 64


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


def is_number(value: Any) -> bool:
    kind = type(value)
    if kind is int or kind is float:
        return True
    # bool subclasses int, but JSON keeps booleans and numbers apart.
    return isinstance(value, numbers.Number) and not isinstance(value, bool)


def is_integer(value: Any) -> bool:
    kind = type(value)
    if kind is int:
        return True
    if kind is float:
        # jsonschema counts 1.0 as an integer (since draft 6); so must we.
        return bool(value.is_integer())
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


TYPE_PREDICATES: Final[Mapping[str, Check]] = {
    "object": _is_object,
    "array": _is_array,
    "string": _is_string,
    "number": is_number,
    "integer": is_integer,
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


def first_duplicate(items: Sequence[Any]) -> tuple[int, int] | None:
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
        return not unique or first_duplicate(value) is None

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


def resolve_ref(root: Any, ref: str) -> Any:
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


def type_list(schema: Mapping[str, Any]) -> tuple[str, ...] | None:
    declared = schema.get("type")
    if declared is None:
        return None
    if isinstance(declared, str):
        return (declared,)
    return tuple(declared)


class SchemaCompiler:
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
            parts.append(self.shared(resolve_ref(self._root, ref), ref))
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
        types = type_list(schema)
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
            return [group if group is not None else TYPE_PREDICATES[single]]
        parts = [] if types is None else [_any_of(TYPE_PREDICATES[name] for name in types)]
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
    is_kind = is_integer if single == "integer" else is_number
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
    return SchemaCompiler(schema).shared(schema, "#")
