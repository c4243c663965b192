"""Validate machine specs against the packaged JSON Schema, quickly and legibly.

The schema (``statewise/schemas/machine.schema.json``) is the single source of truth.
``jsonschema`` interprets it faithfully but spends ~150 µs per item, seconds for a
large machine, so ``spec.schema_compiler`` turns the schema into a tree of closures
once, and those answer "valid?" in a small fraction of that time. Only a rejected
document is handed to ``jsonschema`` (and only the parts of it the compiled checks
reject), whose errors are then rewritten into :class:`SchemaIssue` records that say
what was expected and what came in.
"""

from __future__ import annotations

import datetime
import json
import numbers
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any, Final

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from statewise.errors import did_you_mean
from statewise.spec.schema_compiler import (
    ANNOTATION_KEYWORDS,
    SUPPORTED_KEYWORDS,
    TYPE_PREDICATES,
    Check,
    SchemaCompiler,
    compile_schema,
    first_duplicate,
    is_integer,
    is_number,
    resolve_ref,
    type_list,
)

__all__ = [
    "SUPPORTED_KEYWORDS",
    "SchemaIssue",
    "SchemaValidator",
    "compile_schema",
    "is_valid",
    "load_machine_schema",
    "validate",
]

# Plain-language readings of patterns the packaged schema uses; a pattern missing
# here is shown as the regex itself.
_PATTERN_PROSE: Final = {
    "^[A-Za-z_][A-Za-z0-9_]*(?![\\s\\S])": "letters, digits, _; not starting with a digit",
    "^P[0-9YWDTHMS.]*[YWDHMS](?![\\s\\S])": "ISO 8601, such as PT30S, PT5M, P1DT12H",
}

_SHOW_LIMIT: Final = 40


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
    if is_integer(value):
        return "integer"
    for name in ("number", "null", "string", "object", "array"):
        if TYPE_PREDICATES[name](value):
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
    return isinstance(schema, Mapping) and schema.keys() - ANNOTATION_KEYWORDS == {"$ref"}


def _is_alternation(schema: Any) -> bool:
    return isinstance(schema, Mapping) and not {"anyOf", "oneOf"}.isdisjoint(schema)


def _unquoted_text(value: Any) -> str | None:
    """What an unquoted YAML scalar that parsed as a number or date probably said."""
    # ``version: 1.0`` arrives as a float and ``released: 2024-01-01`` as a date; the
    # quoted form is what the author meant more often than not. (Booleans are left
    # out: ``yes`` and ``on`` also parse as true, so the text cannot be recovered.)
    if isinstance(value, datetime.date):
        return value.isoformat()
    if is_number(value):
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
_PIECEWISE: Final = SUPPORTED_KEYWORDS - {"$ref", "allOf", "anyOf", "oneOf", "not"}


class _Explainer:
    """Rewrites jsonschema's errors for one schema into :class:`SchemaIssue` lists."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        schema = _false_as_not(schema)
        self._schema = schema
        self._validator = Draft202012Validator(schema)
        self._compiler = SchemaCompiler(schema)
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
            schema = resolve_ref(self._schema, schema["$ref"])
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
                first, again = first_duplicate(value) or (0, 0)
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
        types = type_list(schema) or ()
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
        keys = _key_choice(branches)
        if keys is not None and isinstance(value, Mapping):
            # ``oneOf: [{required: [a]}, {required: [b]}]``: exactly one of the keys.
            present = [k for k in keys if k in value]
            options = " or ".join(repr(k) for k in keys)
            if not present:
                yield path, f"missing required key: one of {options}", f"key {options}", None, False
            else:
                got = " and ".join(repr(k) for k in present)
                message = f"expected only one of the keys {options}, got {got}"
                yield path, message, f"one of the keys {options}", got, False
            return
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
        types = type_list(schema)
        if types is not None:
            expanded = {*types, *(["integer"] if "number" in types else [])}
            kinds &= expanded
        if "const" in schema:
            kinds &= {_kind(schema["const"])}
        if "enum" in schema:
            kinds &= {_kind(option) for option in schema["enum"]}
        if "$ref" in schema:
            kinds &= self._kinds(resolve_ref(self._schema, schema["$ref"]))
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
            target = resolve_ref(self._schema, ref)
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
        types = type_list(schema)
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


def _key_choice(branches: Any) -> list[str] | None:
    """The keys of a ``oneOf`` whose every branch is ``{"required": [key]}``, else None."""
    keys: list[str] = []
    for branch in branches:
        if not (isinstance(branch, Mapping) and set(branch) == {"required"}):
            return None
        required = branch["required"]
        if len(required) != 1:
            return None
        keys.append(required[0])
    return keys


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
    # Issues at the same place are ordered by their text: jsonschema's own order there
    # depends on how the document was split up for explaining, and must not show.
    return sorted(ranked, key=lambda issue: (ranked[issue], issue.message))


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
