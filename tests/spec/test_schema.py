"""The compiled schema validator agrees with jsonschema, and explains rejections well."""

from __future__ import annotations

import copy
import datetime
import enum
import random
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from statewise.spec import schema as schema_module
from statewise.spec import schema_compiler
from statewise.spec.schema import (
    SUPPORTED_KEYWORDS,
    SchemaIssue,
    SchemaValidator,
    compile_schema,
    is_valid,
    load_machine_schema,
    validate,
)

MACHINE = load_machine_schema()
REFERENCE = Draft202012Validator(MACHINE)
COMPILED = compile_schema(MACHINE)
MACHINE_EXPLAINER = schema_module._Explainer(MACHINE)

IDENT = "an identifier (letters, digits, _; not starting with a digit)"
ROOT_KEYS = "context_schema, error_policy, meta, migrate, states, transitions, triggers"
META_KEYS = "description, machine_name, metadata, strict_mode, version"
STATE_KEYS = "description, metadata, name, on_enter, on_exit, renamed_from, timeout, type"
TRANSITION_KEYS = "actions, description, dest, guards, metadata, source, trigger, when"
STATE_TYPES = "initial, stable, terminal, error"

# A valid spec that uses every key the schema defines, and each shape of the
# alternatives (one name or a list; a source that is a name, a list or "*").
BASE: dict[str, Any] = {
    "meta": {
        "machine_name": "order",
        "version": "1.0",
        "strict_mode": True,
        "description": "Orders, from cart to delivery.",
        "metadata": {"owner": "shop", "tags": ["a", 1, None], "deep": {"x": [{"y": 1.5}]}},
    },
    "states": [
        {
            "name": "cart",
            "type": "initial",
            "description": "Filling the cart.",
            "on_enter": "open_cart",
            "on_exit": ["log", "audit"],
            "metadata": {"colour": "green"},
        },
        {"name": "paying", "type": "stable", "timeout": {"seconds": 30, "destination": "cart"}},
        {"name": "paid", "on_enter": [], "timeout": {"seconds": 0.5, "destination": "failed"}},
        {"name": "done", "type": "terminal"},
        {"name": "failed", "type": "error"},
    ],
    "transitions": [
        {
            "trigger": "checkout",
            "source": "cart",
            "dest": "paying",
            "guards": "has_items",
            "actions": ["reserve"],
            "description": "Start paying.",
            "metadata": {"ui": {"button": "Pay"}},
        },
        {"trigger": "pay", "source": ["paying"], "dest": "paid", "guards": ["card_ok", "fraud_ok"]},
        {"trigger": "ship", "source": "paid", "dest": "done", "actions": "notify"},
        {"trigger": "cancel", "source": "*", "dest": "failed"},
        {"trigger": "ping", "source": ["cart", "paying"]},
    ],
    "error_policy": {"default_fallback": "failed", "retry_attempts": 3},
}

DELETE = object()
Path = tuple[str | int, ...]


def mutate(*edits: tuple[Path, Any]) -> Any:
    """A deep copy of BASE with each (path, value) set; DELETE removes the key."""
    doc: Any = copy.deepcopy(BASE)
    for path, value in edits:
        if not path:
            doc = value
            continue
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        if value is DELETE:
            del parent[path[-1]]
        else:
            parent[path[-1]] = value
    return doc


def unknown(key: str, keys: str, hint: str = "") -> str:
    return f"unknown key {key!r}; expected one of: {keys}{hint}"


Expected = list[tuple[Path, str]]

CASES: list[Any] = [
    pytest.param(mutate(), [], id="base"),
    # unknown keys, at every level
    pytest.param(
        mutate((("transition",), [])),
        [(("transition",), unknown("transition", ROOT_KEYS, " (did you mean 'transitions'?)"))],
        id="unknown-root-key",
    ),
    pytest.param(
        mutate((("meta", "strict"), True)),
        [(("meta", "strict"), unknown("strict", META_KEYS, " (did you mean 'strict_mode'?)"))],
        id="unknown-meta-key",
    ),
    pytest.param(
        mutate((("states", 0, "on_entry"), "x")),
        [
            (
                ("states", 0, "on_entry"),
                unknown("on_entry", STATE_KEYS, " (did you mean 'on_enter' or 'on_exit'?)"),
            )
        ],
        id="unknown-state-key",
    ),
    pytest.param(
        mutate((("transitions", 3, "guard"), "is_admin")),
        [
            (
                ("transitions", 3, "guard"),
                unknown("guard", TRANSITION_KEYS, " (did you mean 'guards'?)"),
            )
        ],
        id="guard-typo-on-transition",
    ),
    pytest.param(
        mutate((("states", 1, "timeout", "second"), 5)),
        [
            (
                ("states", 1, "timeout", "second"),
                unknown(
                    "second",
                    "actions, destination, duration, seconds",
                    " (did you mean 'seconds'?)",
                ),
            )
        ],
        id="unknown-timeout-key",
    ),
    pytest.param(
        mutate((("error_policy", "retries"), 2)),
        [
            (
                ("error_policy", "retries"),
                unknown(
                    "retries",
                    "backoff_seconds, default_fallback, max_backoff_seconds, retry_attempts",
                ),
            )
        ],
        id="unknown-error-policy-key-without-suggestion",
    ),
    pytest.param(
        mutate((("states", 0, 1), "x")),
        [(("states", 0, "1"), f"unknown key 1; expected one of: {STATE_KEYS}")],
        id="non-string-key",
    ),
    # required keys
    pytest.param(mutate((("meta",), DELETE)), [((), "missing required key 'meta'")], id="no-meta"),
    pytest.param(
        mutate((("meta",), DELETE), (("states",), DELETE)),
        [((), "missing required key 'meta'"), ((), "missing required key 'states'")],
        id="no-meta-no-states",
    ),
    pytest.param(
        mutate((("meta", "machine_name"), DELETE)),
        [(("meta",), "missing required key 'machine_name'")],
        id="no-machine-name",
    ),
    pytest.param(
        mutate((("transitions", 2, "trigger"), DELETE)),
        [(("transitions", 2), "missing required key 'trigger'")],
        id="no-trigger",
    ),
    pytest.param(
        mutate((("states", 1, "timeout"), {})),
        [
            (("states", 1, "timeout"), "missing required key 'destination'"),
            (("states", 1, "timeout"), "missing required key: one of 'seconds' or 'duration'"),
        ],
        id="empty-timeout",
    ),
    # identifiers
    pytest.param(
        mutate((("states", 0, "name"), "my-state")),
        [(("states", 0, "name"), f"expected {IDENT}, got 'my-state'")],
        id="identifier-with-dash",
    ),
    pytest.param(
        mutate((("transitions", 0, "trigger"), "1st")),
        [(("transitions", 0, "trigger"), f"expected {IDENT}, got '1st'")],
        id="identifier-starting-with-digit",
    ),
    pytest.param(
        mutate((("transitions", 0, "guards"), "")),
        [(("transitions", 0, "guards"), f"expected {IDENT}, got ''")],
        id="empty-guard-name",
    ),
    pytest.param(
        mutate((("error_policy", "default_fallback"), "*")),
        [(("error_policy", "default_fallback"), f"expected {IDENT}, got '*'")],
        id="star-is-not-a-state",
    ),
    pytest.param(
        mutate((("states", 3, "name"), "done\n")),
        [(("states", 3, "name"), f"expected {IDENT}, got 'done\\n'")],
        id="trailing-newline-is-not-an-identifier",
    ),
    # types
    pytest.param(
        mutate((("states", 0, "name"), 5)),
        [(("states", 0, "name"), "expected a string, got integer 5")],
        id="name-is-a-number",
    ),
    pytest.param(
        mutate((("transitions", 0, "dest"), None)),
        [(("transitions", 0, "dest"), "expected a string, got null")],
        id="dest-is-null",
    ),
    pytest.param(
        mutate((("meta", "strict_mode"), "yes")),
        [(("meta", "strict_mode"), "expected a boolean, got string 'yes'")],
        id="strict-mode-is-a-string",
    ),
    pytest.param(
        mutate((("meta", "strict_mode"), 1)),
        [(("meta", "strict_mode"), "expected a boolean, got integer 1")],
        id="strict-mode-is-one",
    ),
    pytest.param(
        mutate((("states", 1, "timeout", "seconds"), True)),
        [(("states", 1, "timeout", "seconds"), "expected a number, got boolean true")],
        id="bool-where-number",
    ),
    pytest.param(
        mutate((("meta", "version"), 1.0)),
        [(("meta", "version"), 'expected a string, got number 1.0 (quote it: "1.0")')],
        id="unquoted-version",
    ),
    pytest.param(
        mutate((("transitions", 0, "description"), 5)),
        [(("transitions", 0, "description"), 'expected a string, got integer 5 (quote it: "5")')],
        id="unquoted-description",
    ),
    pytest.param(
        mutate((("states",), {})),
        [(("states",), "expected an array, got object {}")],
        id="states-is-an-object",
    ),
    pytest.param(
        mutate((("meta", "metadata"), [])),
        [(("meta", "metadata"), "expected an object, got array []")],
        id="metadata-is-a-list",
    ),
    pytest.param(mutate(((), [])), [((), "expected an object, got array []")], id="doc-is-a-list"),
    pytest.param(mutate(((), None)), [((), "expected an object, got null")], id="doc-is-null"),
    pytest.param(
        mutate((("meta", "version"), datetime.date(2024, 1, 2))),
        [(("meta", "version"), 'expected a string, got date 2024-01-02 (quote it: "2024-01-02")')],
        id="unquoted-date",
    ),
    pytest.param(
        mutate((("transitions", 0, "source"), datetime.date(2024, 1, 2))),
        [
            (
                ("transitions", 0, "source"),
                'expected an identifier, "*" or a non-empty list of identifiers, '
                "got date 2024-01-02",
            )
        ],
        id="source-date",
    ),
    pytest.param(
        mutate((("states",), {"cart": {"type": "initial"}, "done": {"type": "terminal"}})),
        [(("states",), "expected an array, got object {'cart': {'type': 'initial'}, 'done':...")],
        id="long-value-truncated",
    ),
    # sizes and bounds
    pytest.param(
        mutate((("states",), [])),
        [(("states",), "expected at least 1 item, got an empty list")],
        id="no-states",
    ),
    pytest.param(
        mutate((("meta", "machine_name"), "")),
        [(("meta", "machine_name"), "expected at least 1 character, got an empty string")],
        id="empty-machine-name",
    ),
    pytest.param(
        mutate((("states", 1, "timeout", "seconds"), 0)),
        [(("states", 1, "timeout", "seconds"), "expected a number > 0, got 0")],
        id="timeout-zero",
    ),
    pytest.param(
        mutate((("states", 1, "timeout", "seconds"), -1.5)),
        [(("states", 1, "timeout", "seconds"), "expected a number > 0, got -1.5")],
        id="timeout-negative",
    ),
    pytest.param(
        mutate((("error_policy", "retry_attempts"), -1)),
        [(("error_policy", "retry_attempts"), "expected an integer >= 0, got -1")],
        id="negative-retries",
    ),
    pytest.param(
        mutate((("error_policy", "retry_attempts"), 1.5)),
        [(("error_policy", "retry_attempts"), "expected an integer, got number 1.5")],
        id="fractional-retries",
    ),
    pytest.param(
        mutate((("error_policy", "retry_attempts"), True)),
        [(("error_policy", "retry_attempts"), "expected an integer, got boolean true")],
        id="boolean-retries",
    ),
    pytest.param(
        mutate((("error_policy", "retry_attempts"), 2.0)), [], id="integral-float-retries"
    ),
    # enum
    pytest.param(
        mutate((("states", 0, "type"), "intial")),
        [
            (
                ("states", 0, "type"),
                f"expected one of {STATE_TYPES}; got 'intial' (did you mean 'initial'?)",
            )
        ],
        id="state-type-typo",
    ),
    pytest.param(
        mutate((("states", 0, "type"), 5)),
        [(("states", 0, "type"), f"expected one of {STATE_TYPES}; got 5")],
        id="state-type-number",
    ),
    # alternatives
    pytest.param(mutate((("transitions", 0, "source"), "*")), [], id="source-star"),
    pytest.param(
        mutate((("transitions", 1, "source"), ["*"])),
        [
            (
                ("transitions", 1, "source", 0),
                f"expected {IDENT}, got '*'; '*' is only allowed on its own, not inside a list",
            )
        ],
        id="source-star-in-a-list",
    ),
    pytest.param(
        mutate((("transitions", 4, "source"), ["cart", "my-state"])),
        [(("transitions", 4, "source", 1), f"expected {IDENT}, got 'my-state'")],
        id="source-list-with-bad-name",
    ),
    pytest.param(
        mutate((("transitions", 0, "source"), 5)),
        [
            (
                ("transitions", 0, "source"),
                'expected an identifier, "*" or a non-empty list of identifiers, got integer 5',
            )
        ],
        id="source-number",
    ),
    pytest.param(
        mutate((("transitions", 0, "source"), "bad-x")),
        [(("transitions", 0, "source"), f"expected {IDENT} or \"*\", got 'bad-x'")],
        id="source-bad-name",
    ),
    pytest.param(
        mutate((("transitions", 1, "source"), [])),
        [(("transitions", 1, "source"), "expected at least 1 item, got an empty list")],
        id="source-empty-list",
    ),
    pytest.param(
        mutate((("states", 0, "on_enter"), [1])),
        [(("states", 0, "on_enter", 0), "expected an identifier or an object, got integer 1")],
        id="action-list-with-number",
    ),
    pytest.param(
        mutate((("states", 0, "on_exit"), {})),
        [(("states", 0, "on_exit"), "missing required key 'name'")],
        id="actions-object-without-name",
    ),
    # free-form metadata
    pytest.param(
        mutate(
            (("states", 0, "metadata"), {"guard": [{"a": None, "b": [1.5, True, {"c": {}}]}]}),
            (("transitions", 2, "metadata"), {"": {"1": [[], {}]}, "x-y": "z"}),
        ),
        [],
        id="metadata-anything-goes",
    ),
    # several issues: document order, not schema order
    pytest.param(
        mutate(
            (("transitions", 0, "guard"), "g"),
            (("transitions", 0, "trigger"), "bad trigger"),
            (("states", 4, "type"), "fatal"),
            (("meta", "version"), 2),
        ),
        [
            (("meta", "version"), 'expected a string, got integer 2 (quote it: "2")'),
            (("states", 4, "type"), f"expected one of {STATE_TYPES}; got 'fatal'"),
            (("transitions", 0, "trigger"), f"expected {IDENT}, got 'bad trigger'"),
            (
                ("transitions", 0, "guard"),
                unknown("guard", TRANSITION_KEYS, " (did you mean 'guards'?)"),
            ),
        ],
        id="several-issues-in-document-order",
    ),
]


@pytest.mark.parametrize(("doc", "expected"), CASES)
def test_machine_schema_cases(doc: Any, expected: Expected) -> None:
    verdict = REFERENCE.is_valid(doc)
    assert COMPILED(doc) is verdict
    assert is_valid(doc) is verdict
    assert verdict is (not expected)
    issues = validate(doc)
    assert [(issue.path, issue.message) for issue in issues] == expected
    assert issues == MACHINE_EXPLAINER.explain(doc, piecewise=False)
    for issue in issues:
        assert issue.key is issue.message.startswith("unknown key")


def test_issue_fields_restate_the_message() -> None:
    [issue] = validate(mutate((("transitions", 3, "guard"), "g")))
    assert issue == SchemaIssue(
        ("transitions", 3, "guard"),
        unknown("guard", TRANSITION_KEYS, " (did you mean 'guards'?)"),
        expected=f"one of: {TRANSITION_KEYS}",
        got="'guard'",
        key=True,
    )
    [issue] = validate(mutate((("meta", "version"), 1.0)))
    assert (issue.expected, issue.got, issue.key) == ("a string", "number 1.0", False)
    [issue] = validate(mutate((("meta", "machine_name"), DELETE)))
    assert (issue.expected, issue.got) == ("key 'machine_name'", None)


def test_valid_documents_skip_jsonschema(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*_: Any) -> None:
        raise AssertionError("jsonschema consulted for a valid document")

    monkeypatch.setattr(schema_module._Explainer, "explain", explode)
    assert validate(mutate()) == []


def test_large_spec_issues_are_found_among_many_valid_parts() -> None:
    states: list[dict[str, Any]] = [
        {"name": f"s{i}", "on_enter": [f"enter_{i}", "log"]} for i in range(2000)
    ]
    transitions: list[dict[str, Any]] = [
        {"trigger": f"go_{i % 3}", "source": f"s{i}", "dest": f"s{i + 1}", "actions": ["audit"]}
        for i in range(6000)
    ]
    doc = {"meta": {"machine_name": "big"}, "states": states, "transitions": transitions}
    assert validate(doc) == []
    transitions[4321]["guard"] = "ready"
    states[1234]["on_enter"][1] = "log-it"
    assert [(issue.path, issue.message) for issue in validate(doc)] == [
        (("states", 1234, "on_enter", 1), f"expected {IDENT}, got 'log-it'"),
        (
            ("transitions", 4321, "guard"),
            unknown("guard", TRANSITION_KEYS, " (did you mean 'guards'?)"),
        ),
    ]


def test_schema_is_loaded_once() -> None:
    assert load_machine_schema() is MACHINE
    assert MACHINE["$id"] == "urn:statewise:schema:machine:1"


# --- property: the compiled machine validator never disagrees with jsonschema -------

_FIRST = "abcxyzABCXYZ_"
IDENTIFIERS = st.builds(
    str.__add__, st.sampled_from(_FIRST), st.text(alphabet=_FIRST + "0189", max_size=5)
)
NEAR_MISSES = st.sampled_from(
    ["", "*", "my-state", "1st", "a b", "done\n", "intial", "initial", "terminal", "1.0"]
)
KEY_POOL = [
        "name", "type", "guard", "guards", "source", "dest", "trigger", "metadata", "seconds",
        "destination", "timeout", "on_enter", "meta", "states", "transitions", "error_policy",
        "machine_name", "version", "retry_attempts", "default_fallback", "x", "", "1",
]  # fmt: skip
KEYS = st.sampled_from(KEY_POOL)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=3),
    st.integers(),
    st.sampled_from([0.0, 1.0, 1.5, -0.5, 2.0, -1.0, 1e300]),
    st.floats(allow_nan=False, allow_infinity=False),
    IDENTIFIERS,
    NEAR_MISSES,
    st.text(max_size=5),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(KEYS, st.text(max_size=4)), inner, max_size=4),
    ),
    max_leaves=6,
)


def optional(**fields: st.SearchStrategy[Any]) -> dict[str, st.SearchStrategy[Any]]:
    """Keyword arguments as the (typed) mapping ``fixed_dictionaries`` expects."""
    return fields


NAMES = st.one_of(IDENTIFIERS, st.lists(IDENTIFIERS, max_size=3))
METADATA = st.dictionaries(st.text(max_size=3), JSON, max_size=2)
STATES = st.fixed_dictionaries(
    {"name": IDENTIFIERS},
    optional=optional(
        type=st.sampled_from(["initial", "stable", "terminal", "error"]),
        description=st.text(max_size=5),
        on_enter=NAMES,
        on_exit=NAMES,
        timeout=st.fixed_dictionaries(
            {
                "seconds": st.one_of(
                    st.integers(min_value=1), st.floats(min_value=0.001, max_value=1e9)
                ),
                "destination": IDENTIFIERS,
            }
        ),
        metadata=METADATA,
    ),
)
TRANSITIONS = st.fixed_dictionaries(
    {
        "trigger": IDENTIFIERS,
        "source": st.one_of(IDENTIFIERS, st.just("*"), st.lists(IDENTIFIERS, min_size=1)),
    },
    optional=optional(
        dest=IDENTIFIERS, guards=NAMES, actions=NAMES, description=st.text(max_size=5),
        metadata=METADATA,
    ),
)  # fmt: skip
SPECS = st.fixed_dictionaries(
    optional(
        meta=st.fixed_dictionaries(
            {"machine_name": st.text(min_size=1, max_size=5)},
            optional=optional(
                version=st.text(max_size=4),
                strict_mode=st.booleans(),
                description=st.text(max_size=5),
                metadata=METADATA,
            ),
        ),
        states=st.lists(STATES, min_size=1, max_size=3),
    ),
    optional=optional(
        transitions=st.lists(TRANSITIONS, max_size=3),
        error_policy=st.fixed_dictionaries(
            optional(),
            optional=optional(
                default_fallback=IDENTIFIERS,
                retry_attempts=st.one_of(st.integers(min_value=0), st.just(3.0)),
            ),
        ),
    ),
)


def containers(node: Any) -> list[Any]:
    """Every dict and list inside ``node`` (itself included), outermost first."""
    found = []
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, dict | list):
            found.append(current)
            stack.extend(current.values() if isinstance(current, dict) else current)
    return found


INTERESTING: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    1.0,
    1.5,
    0.0,
    "",
    "*",
    "x-y",
    "1st",
    [],
    {},
    ["*"],
]


def edit(doc: Any, rng: random.Random, pool: list[Any]) -> None:
    """Replace, insert or delete one value somewhere inside ``doc``, in place."""
    target = rng.choice(containers(doc))
    operation = rng.choice(["replace", "insert", "delete"])
    value = copy.deepcopy(rng.choice(pool if rng.random() < 0.5 else INTERESTING))
    if isinstance(target, dict):
        if operation == "insert" or not target:
            target[rng.choice(KEY_POOL)] = value
            return
        key = rng.choice(list(target))
        if operation == "delete":
            del target[key]
        else:
            target[key] = value
    elif operation == "insert" or not target:
        target.insert(rng.randint(0, len(target)), value)
    else:
        index = rng.randrange(len(target))
        if operation == "delete":
            del target[index]
        else:
            target[index] = value


@st.composite
def variants(draw: st.DrawFn, base: st.SearchStrategy[Any], count: int = 8) -> list[Any]:
    """A drawn document followed by ``count`` copies carrying one to three random edits.

    Drawing is the slow part of these tests, so each drawn document (and pool of
    replacement values) is reused for several near-miss variants; hypothesis still
    controls, and can shrink, the document, the pool and the random edits.
    """
    # A copy: sampled_from hands out the same objects every time it picks them.
    doc = copy.deepcopy(draw(base))
    pool = draw(st.lists(JSON, min_size=1, max_size=4))
    rng = draw(st.randoms(use_true_random=False))
    docs = [doc]
    for _ in range(count):
        variant = copy.deepcopy(doc)
        for _ in range(rng.randint(1, 3)):
            if containers(variant):
                edit(variant, rng, pool)
        docs.append(variant)
    return docs


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(variants(SPECS))
def test_compiled_machine_schema_agrees_with_jsonschema(docs: list[Any]) -> None:
    assert REFERENCE.is_valid(docs[0]), "the spec strategy must build valid specs"
    explained = False
    for doc in docs:
        verdict = REFERENCE.is_valid(doc)
        assert COMPILED(doc) is verdict, doc
        if not verdict and not explained:
            # Whatever came in, the rejection is explained (once per example: running
            # jsonschema twice for every variant would double the cost of the test).
            issues = validate(doc)
            assert issues
            assert len(set(issues)) == len(issues)
            # Explaining only the parts the compiled checks reject loses nothing.
            assert issues == MACHINE_EXPLAINER.explain(doc, piecewise=False)
            explained = True


# --- a synthetic schema for the keywords the machine schema does not use --------------

SYNTHETIC: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema#",
    "$id": "urn:test:synthetic",
    "$comment": "exercises every keyword compile_schema supports",
    "type": "object",
    "properties": {
        "flag": {"enum": [True, 1, "1", None, [1, False], {"a": 0}]},
        "zero": {"const": 0},
        "off": {"const": False},
        "word": {"const": "x", "default": "x", "examples": ["x"]},
        "count": {"type": "integer", "maximum": 10, "exclusiveMinimum": -3},
        "ratio": {"type": ["number", "null"], "exclusiveMaximum": 2.5, "minimum": -1},
        "bounded": {"minimum": 0, "maximum": 1},
        "code": {"type": "string", "minLength": 2, "maxLength": 4, "pattern": "^[a-c]+$"},
        "short": {"maxLength": 3},
        "token": {"type": "string", "pattern": "z"},
        # uniqueItems over scalars only: jsonschema's own check sorts nested values and
        # can miss duplicates like [[1], [true], [1]], so keep the verdicts comparable.
        "tags": {
            "type": "array",
            "items": {"type": ["string", "integer", "boolean"]},
            "uniqueItems": True,
            "maxItems": 3,
        },
        "pair": {"type": ["array", "string"], "minItems": 2, "maxLength": 2},
        "choice": {
            "oneOf": [{"type": "integer"}, {"type": "number", "minimum": 5}, {"const": "x"}]
        },
        "both": {"allOf": [{"type": "string"}, {"not": {"const": "no"}}]},
        "never": False,
        "always": True,
        "empty": {"type": "array", "items": False},
        "tree": {"$ref": "#/$defs/tree"},
        "open": {"properties": {"a": {"type": "integer"}, "b": True}, "required": ["a"]},
        "extra": {
            "type": "object",
            "properties": {"k": {}},
            "additionalProperties": {"type": "boolean"},
        },
        "kinds": {
            "anyOf": [{"$ref": "#/$defs/smallNumber"}, {"type": "array"}, {"enum": ["s", "t"]}]
        },
        "self": {"$ref": "#"},
        "first": {"$ref": "#/properties/kinds/anyOf/0"},
        "label": {"anyOf": [{"type": "string", "maxLength": 1}, {"enum": ["long"]}]},
        "maybe": {"anyOf": [False, {"type": "integer"}]},
        "mixed": {"oneOf": [{"allOf": [True, {"type": "string"}]}, {"type": "integer"}]},
        "nested": {
            "anyOf": [
                {"oneOf": [{"type": "integer"}, {"type": "null"}]},
                {"type": "string", "pattern": "^a"},
            ]
        },
        "either": {"oneOf": [True, {"type": "integer"}, False]},
        "via_ref": {"anyOf": [{"$ref": "#/properties/count"}, {"type": "null"}]},
        "nest": {"$ref": "#/$defs/nest"},
        "ids": {"type": ["string", "null"], "minItems": 1, "pattern": "^i"},
    },
    "additionalProperties": False,
    "$defs": {
        "tree": {
            "type": "object",
            "additionalProperties": False,
            "required": ["value"],
            "properties": {
                "value": {"type": "integer"},
                "children": {"type": "array", "items": {"$ref": "#/$defs/tree"}},
            },
        },
        "smallNumber": {"type": "integer", "maximum": 9},
        "nest": {
            "anyOf": [{"type": "integer"}, {"type": "array", "items": {"$ref": "#/$defs/nest"}}]
        },
        "un~used/def": {"title": "never referenced, still compiled"},
    },
}
SYNTHETIC_REFERENCE = Draft202012Validator(SYNTHETIC)
SYNTHETIC_VALIDATOR = SchemaValidator(SYNTHETIC)
SYNTHETIC_EXPLAINER = schema_module._Explainer(SYNTHETIC)

SYNTHETIC_VALUES = st.one_of(
    JSON,
    st.sampled_from([0, 1, 1.0, True, False, "x", "no", "1", 5, 5.5, 9.0, 10, 11, -3, -2.5, 2.5]),
    st.sampled_from([[1, False], [1, 0], [True, True], ["a", "a"], [1, 1.0], {"a": False}]),
    st.sampled_from([{"a": 1}, {"a": 1.0, "b": [1]}, {"k": 1, "z": True}, {"value": 1}]),
    st.sampled_from([{"value": 2, "children": [{"value": 3}, {"value": 1.0, "children": []}]}]),
)
SYNTHETIC_DOCS = st.dictionaries(
    st.sampled_from(sorted(SYNTHETIC["properties"])) | KEYS, SYNTHETIC_VALUES, max_size=5
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(variants(st.one_of(SYNTHETIC_DOCS, SYNTHETIC_VALUES)))
def test_compiled_synthetic_schema_agrees_with_jsonschema(docs: list[Any]) -> None:
    for doc in docs:
        verdict = SYNTHETIC_REFERENCE.is_valid(doc)
        assert SYNTHETIC_VALIDATOR.is_valid(doc) is verdict, doc
        issues = SYNTHETIC_VALIDATOR.validate(doc)
        assert bool(issues) is not verdict
        if issues:
            assert issues == SYNTHETIC_EXPLAINER.explain(doc, piecewise=False)


SYNTHETIC_CASES: list[Any] = [
    pytest.param({"flag": 1.0, "zero": 0.0, "off": False, "count": 4.0}, [], id="valid"),
    pytest.param(
        {"flag": False},
        [(("flag",), 'expected one of true, 1, "1", null, [1, false], {"a": 0}; got false')],
        id="enum-keeps-bool-and-int-apart",
    ),
    pytest.param({"zero": False}, [(("zero",), "expected 0, got false")], id="const-zero"),
    pytest.param({"off": 0}, [(("off",), "expected false, got 0")], id="const-false"),
    pytest.param({"count": 11}, [(("count",), "expected an integer <= 10, got 11")], id="max"),
    pytest.param({"count": -3}, [(("count",), "expected an integer > -3, got -3")], id="xmin"),
    pytest.param({"ratio": 2.5}, [(("ratio",), "expected a number < 2.5, got 2.5")], id="xmax"),
    pytest.param({"ratio": -2}, [(("ratio",), "expected a number >= -1, got -2")], id="min"),
    pytest.param(
        {"ratio": "1"},
        [(("ratio",), "expected a number or null, got string '1'")],
        id="type-list",
    ),
    pytest.param({"bounded": 2}, [(("bounded",), "expected a number <= 1, got 2")], id="untyped"),
    pytest.param(
        {"code": "a"},
        [(("code",), "expected at least 2 characters, got 'a' (1)")],
        id="min-length",
    ),
    pytest.param(
        {"code": "abcab"},
        [(("code",), "expected at most 4 characters, got 'abcab' (5)")],
        id="max-length",
    ),
    pytest.param(
        {"code": "ax"}, [(("code",), "expected a string matching '^[a-c]+$', got 'ax'")], id="pat"
    ),
    pytest.param(
        {"tags": ["a", 1, "a"]},
        [(("tags", 2), "expected unique items, got 'a' again (first at index 0)")],
        id="unique",
    ),
    pytest.param(
        {"tags": [1, True, 2, 3]}, [(("tags",), "expected at most 3 items, got 4")], id="max-items"
    ),
    pytest.param(
        {"pair": []}, [(("pair",), "expected at least 2 items, got an empty list")], id="few"
    ),
    pytest.param(
        {"pair": "abc"}, [(("pair",), "expected at most 2 characters, got 'abc' (3)")], id="long"
    ),
    pytest.param(
        {"choice": 7},
        [
            (
                ("choice",),
                'expected exactly one of an integer, a number or "x", got integer 7, '
                "which is an integer and a number",
            )
        ],
        id="one-of-matches-two",
    ),
    pytest.param(
        {"choice": 2.5},
        [(("choice",), "expected a number >= 5, got 2.5")],
        id="one-of-single-candidate",
    ),
    pytest.param(
        {"choice": "y"},
        [(("choice",), "expected \"x\", got 'y'")],
        id="one-of-const",
    ),
    pytest.param(
        {"choice": None},
        [(("choice",), 'expected an integer, a number or "x", got null')],
        id="one-of-no-candidate",
    ),
    pytest.param(
        {"both": "no"},
        [(("both",), "expected anything but \"no\", got string 'no'")],
        id="not",
    ),
    pytest.param({"never": 1}, [(("never",), "no value is allowed here, got integer 1")], id="F"),
    pytest.param(
        {"empty": [1, 2]}, [(("empty",), "expected an empty list, got 2 items")], id="items-false"
    ),
    pytest.param(
        {"empty": [1]}, [(("empty",), "expected an empty list, got 1 item")], id="one-item"
    ),
    pytest.param(
        {"tree": {"value": 1, "children": [{"value": 2}, {"children": []}]}},
        [(("tree", "children", 1), "missing required key 'value'")],
        id="recursive-ref",
    ),
    pytest.param(
        {"tree": {"value": 1, "leaf": True}},
        [(("tree", "leaf"), "unknown key 'leaf'; expected one of: children, value")],
        id="recursive-ref-unknown-key",
    ),
    pytest.param(
        {"open": {"b": 1}}, [(("open",), "missing required key 'a'")], id="untyped-object"
    ),
    pytest.param(
        {"extra": {"k": 1, "z": 1}},
        [(("extra", "z"), "expected a boolean, got integer 1")],
        id="additional-properties-schema",
    ),
    pytest.param(
        {"kinds": 10},
        [(("kinds",), "expected an integer <= 9, got 10")],
        id="named-def-branch",
    ),
    pytest.param(
        {"kinds": "u"},
        [(("kinds",), "expected one of s, t; got 'u'")],
        id="enum-branch",
    ),
    pytest.param(
        {"kinds": {}},
        [(("kinds",), "expected a small number, an array or one of s, t, got object {}")],
        id="no-branch-for-object",
    ),
    pytest.param(
        {"self": {"never": None}},
        [(("self", "never"), "no value is allowed here, got null")],
        id="root-ref",
    ),
    pytest.param({"first": 12}, [(("first",), "expected an integer <= 9, got 12")], id="ptr-ref"),
    pytest.param(
        {"label": "xyz"},
        [(("label",), "expected a string or one of long, got 'xyz'")],
        id="two-candidates-without-patterns",
    ),
    pytest.param(
        {"maybe": "x"}, [(("maybe",), "expected an integer, got string 'x'")], id="false-branch"
    ),
    pytest.param(
        {"mixed": None},
        [(("mixed",), "expected a value or an integer, got null")],
        id="all-of-branch",
    ),
    pytest.param(
        {"nested": True},
        [(("nested",), "expected an integer, null or a string, got boolean true")],
        id="nested-alternatives",
    ),
    pytest.param(
        {"nested": "b"},
        [(("nested",), "expected a string matching '^a', got 'b'")],
        id="nested-alternatives-string",
    ),
    pytest.param(
        {"either": 1},
        [
            (
                ("either",),
                "expected exactly one of anything, an integer or nothing, got integer 1, "
                "which is anything and an integer",
            )
        ],
        id="one-of-true-false",
    ),
    pytest.param(
        {"via_ref": "s"},
        [(("via_ref",), "expected an integer or null, got string 's'")],
        id="ref-to-unnamed-branch",
    ),
    pytest.param(
        {"nest": "s"},
        [
            (
                ("nest",),
                "expected an integer or a list of integers or lists of values, got string 's'",
            )
        ],
        id="recursive-alternation",
    ),
    pytest.param({"nest": [1, [2, [3]]]}, [], id="recursive-alternation-valid"),
    pytest.param(
        {"ids": "x"},
        [(("ids",), "expected a string matching '^i', got 'x'")],
        id="type-list-pattern",
    ),
    pytest.param({"ids": None, "short": 12345, "tags": ["a", 1, True]}, [], id="groups-skip-types"),
    pytest.param({"open": {"a": 1, "b": "x"}}, [], id="open-object"),
    pytest.param(
        {"open": {"a": "1"}}, [(("open", "a"), "expected an integer, got string '1'")], id="open"
    ),
    pytest.param(
        {"nope": 1},
        [
            (
                ("nope",),
                "unknown key 'nope'; expected one of: "
                + ", ".join(sorted(SYNTHETIC["properties"]))
                + " (did you mean 'open'?)",
            )
        ],
        id="unknown",
    ),
]


@pytest.mark.parametrize(("doc", "expected"), SYNTHETIC_CASES)
def test_synthetic_schema_cases(doc: Any, expected: Expected) -> None:
    assert SYNTHETIC_VALIDATOR.is_valid(doc) is SYNTHETIC_REFERENCE.is_valid(doc)
    issues = SYNTHETIC_VALIDATOR.validate(doc)
    assert [(issue.path, issue.message) for issue in issues] == expected
    assert issues == SYNTHETIC_EXPLAINER.explain(doc, piecewise=False)


def test_schema_validator_exposes_its_check() -> None:
    assert SYNTHETIC_VALIDATOR.check({"count": 1})
    assert not SYNTHETIC_VALIDATOR.check({"count": 1.5})


# --- compiling ----------------------------------------------------------------------

COMBINATIONS: list[dict[str, Any]] = [
    {"allOf": [{"type": "integer"}, False]},
    {"allOf": [{"type": "integer"}, {"minimum": 0}, {"maximum": 5}, {"not": {"const": 3}}]},
    {"allOf": [True, {}]},
    {"anyOf": [{"type": "string"}, True]},
    {"anyOf": [False, False]},
    {"anyOf": [False, {"type": "string"}]},
    {"anyOf": [{"type": "integer"}, {"type": "string"}, {"type": "null"}]},
    {"oneOf": [{"type": "integer"}, {"minimum": 2}]},
    {"oneOf": [False]},
    {"not": {}},
    {"not": False},
    {"not": {"type": "string"}},
    {"type": ["string", "null"], "minItems": 1, "minimum": 3},
    {"type": ["integer", "boolean"], "minimum": 3},
    {"type": "number", "maximum": 3},
    {"type": "string", "minLength": 1},
    {"type": "array", "maxItems": 1},
    {"type": "object", "required": ["a"]},
    {
        "type": "object",
        "properties": {"a": {}, "b": {"type": "string"}},
        "additionalProperties": {},
    },
    {"items": {"type": "integer"}, "uniqueItems": True},
    {"enum": [[1, {"a": True}], 1.5, "x"]},
    {"const": {"a": [1, False]}},
]
VALUES: list[Any] = [
    None, True, False, 0, 1, 1.0, 2, 3, 3.0, 4, 6, -1, 1.5, "", "x", "xy", [], [1], [1, 1.0],
    [1, True], [True, True], {}, {"a": 1}, {"a": [1, False]}, {"a": [1.0, 0]}, {"b": 2},
    {"a": 1, "b": "s"}, [1, {"a": True}], [1.0, {"a": 1}], Decimal("3.5"), Fraction(7, 2),
]  # fmt: skip


@pytest.mark.parametrize("schema", COMBINATIONS, ids=lambda schema: str(schema)[:40])
def test_compiled_combinations_agree_with_jsonschema(schema: dict[str, Any]) -> None:
    check = compile_schema(schema)
    reference = Draft202012Validator(schema)
    for value in VALUES:
        assert check(value) is reference.is_valid(value), value


class Level(enum.IntEnum):
    LOW = 1


class Ratio(float):
    pass


TYPED_VALUES: list[Any] = [
    None, True, False, 0, -7, 1.0, 1.5, float("inf"), float("nan"), "s", [], {}, (), Level.LOW,
    Ratio(2.0), Ratio(2.5), Decimal("1.0"), Fraction(1, 2), 2j, datetime.date(2024, 1, 1),
]  # fmt: skip


@pytest.mark.parametrize("name", sorted(schema_compiler.TYPE_PREDICATES))
def test_type_predicates_match_jsonschema(name: str) -> None:
    checker = Draft202012Validator.TYPE_CHECKER
    predicate = schema_compiler.TYPE_PREDICATES[name]
    for value in TYPED_VALUES:
        assert predicate(value) is checker.is_type(value, name), value


def test_unhashable_values_equal_nothing_but_themselves() -> None:
    check = compile_schema({"enum": [[1], {"a": 1}]})
    assert not check({1})
    assert not check([{1}])
    assert check([1.0])
    unique = compile_schema({"uniqueItems": True})
    shared = {1}
    assert not unique([shared, shared])
    assert Draft202012Validator({"uniqueItems": True}).is_valid([shared, shared]) is False


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"patternProperties": {"^x": {}}}, r"keyword\(s\) 'patternProperties' at #:"),
        ({"properties": {"a": {"if": {}, "then": {}}}}, r"'if', 'then' at #/properties/a:"),
        ({"$defs": {"a/b": {"format": "email"}}}, r"'format' at #/\$defs/a~1b"),
        ({"items": {"prefixItems": [{}]}}, r"'prefixItems' at #/items"),
        ({"anyOf": [{"$id": "urn:x"}]}, r"'\$id' at #/anyOf/0 is not supported"),
        ({"$ref": "other.json#/a"}, r"only local references"),
        ({"$ref": "#anchor"}, r"anchors are not supported"),
        ({"$ref": "#/$defs/missing"}, r"does not resolve"),
        ({"allOf": [{}], "not": {"$ref": "#/allOf/1"}}, r"does not resolve"),
        ({"type": "text"}, r"not a valid draft 2020-12 JSON Schema"),
        ({"$schema": "http://json-schema.org/draft-07/schema#"}, r"unsupported \$schema"),
    ],
)  # fmt: skip
def test_compile_schema_refuses_what_it_cannot_enforce(
    schema: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        compile_schema(schema)


def test_every_keyword_of_the_machine_schema_is_supported() -> None:
    def keywords(schema: Any) -> set[str]:
        if not isinstance(schema, dict):
            return set()
        found = set(schema)
        for keyword in ("properties", "$defs"):
            for sub in schema.get(keyword, {}).values():
                found |= keywords(sub)
        for keyword in ("items", "additionalProperties", "not"):
            found |= keywords(schema.get(keyword))
        for keyword in ("allOf", "anyOf", "oneOf"):
            for sub in schema.get(keyword, []):
                found |= keywords(sub)
        return found

    found = keywords(MACHINE)
    assert {"$ref", "anyOf", "pattern", "additionalProperties", "const"} <= found

    assert found <= SUPPORTED_KEYWORDS


def test_pattern_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schema_compiler, "_MEMO_LIMIT", 2)
    monkeypatch.setattr(schema_compiler, "_MEMO_MAX_LENGTH", 3)
    for limit in (None, 10):
        schema: dict[str, Any] = {"pattern": "^a"}
        if limit is not None:
            schema["maxLength"] = limit
        check = compile_schema(schema)
        for _ in range(2):
            for text in ["a", "b", "ab", "ba", "abcde", "bcdef", "a"]:
                assert check(text) is text.startswith("a")


def test_recursive_schema_compiles_once_and_recurses() -> None:
    schema = {
        "$defs": {"list": {"type": "array", "items": {"$ref": "#/$defs/list"}}},
        "$ref": "#/$defs/list",
    }
    check = compile_schema(schema)
    assert check([[], [[]]])
    assert not check([[], [1]])


# --- rendering ----------------------------------------------------------------------


NESTED: dict[str, Any] = {"k": {"k": {"k": {"k": {"k": {"k": {"k": {}}}}}}}}


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "null"),
        (True, "true"),
        ("it's", '"it\'s"'),
        (1.0, "1.0"),
        ({"a": [1, None], 2: False}, "{'a': [1, null], 2: false}"),
        (list(range(100)), "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11..."),
        ("x" * 100, "'" + "x" * 36 + "..."),
        (NESTED, "{'k': {'k': {'k': {'k': {'k': {'k': {..."),
        (datetime.date(2024, 1, 2), "2024-01-02"),
        (Decimal("2.50"), "2.50"),
    ],
)  # fmt: skip
def test_values_are_shown_compactly(value: Any, shown: str) -> None:
    assert schema_module._show(value) == shown
    assert len(shown) <= 40


@pytest.mark.parametrize(
    ("name", "nouns"),
    [
        ("identifier", ("an identifier", "identifiers")),
        ("errorPolicy", ("an error policy", "error policies")),
        ("state", ("a state", "states")),
        ("box", ("a box", "boxes")),
        ("day", ("a day", "days")),
        ("time_zone", ("a time zone", "time zones")),
    ],
)
def test_definition_names_read_as_nouns(name: str, nouns: tuple[str, str]) -> None:
    assert schema_module._name_noun(name) == nouns
