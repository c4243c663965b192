"""read_yaml: YAML 1.2 core values, safety limits, every problem at once, positions."""

from __future__ import annotations

import codecs
import gc
import math
import re
import string
import tracemalloc
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from statewise.errors import Problem, SpecError
from statewise.spec import yaml_reader
from statewise.spec.source import Document, Location, Path
from statewise.spec.yaml_reader import MAX_DEPTH, read_yaml
from tests.spec.paths import walk_paths


def load(text: str | bytes, **options: Any) -> Any:
    return read_yaml(text, **options).data


def problems(text: str | bytes, **options: Any) -> list[tuple[str, int | None, int | None, str]]:
    """(path, line, column, message) of every problem, in the order reported."""
    with pytest.raises(SpecError) as caught:
        read_yaml(text, file="spec.yaml", **options)
    assert all(p.file == "spec.yaml" for p in caught.value.problems)
    return [(p.path, p.line, p.column, p.message) for p in caught.value.problems]


def only_problem(text: str | bytes, **options: Any) -> Problem:
    with pytest.raises(SpecError) as caught:
        read_yaml(text, file="spec.yaml", **options)
    (problem,) = caught.value.problems
    return problem


# -- the YAML 1.2 core schema ------------------------------------------------------


@pytest.mark.parametrize(
    ("scalar", "value"),
    [
        # null
        ("~", None),
        ("null", None),
        ("Null", None),
        ("NULL", None),
        ("", None),
        # bool: only the six spellings of true and false
        ("true", True),
        ("True", True),
        ("TRUE", True),
        ("false", False),
        ("False", False),
        ("FALSE", False),
        # int
        ("0", 0),
        ("-0", 0),
        ("42", 42),
        ("+42", 42),
        ("-17", -17),
        ("012", 12),  # decimal in YAML 1.2, not octal
        ("007", 7),
        ("0o17", 15),
        ("0o0", 0),
        ("0x1F", 31),
        ("0xff", 255),
        ("123456789012345678901234567890", 123456789012345678901234567890),
        # float
        ("1.5", 1.5),
        ("1.", 1.0),
        (".5", 0.5),
        ("-.5", -0.5),
        ("+1.5e3", 1500.0),
        ("1e5", 100000.0),
        ("1E-2", 0.01),
        ("0.0", 0.0),
        (".inf", math.inf),
        (".Inf", math.inf),
        ("+.INF", math.inf),
        ("-.inf", -math.inf),
        # strings: YAML 1.1 booleans, octals, sexagesimals, timestamps, merge keys...
        ("on", "on"),
        ("off", "off"),
        ("yes", "yes"),
        ("no", "no"),
        ("y", "y"),
        ("n", "n"),
        ("Yes", "Yes"),
        ("ON", "ON"),
        ("tRue", "tRue"),
        ("NuLL", "NuLL"),
        ("~~", "~~"),
        ("2024-01-01", "2024-01-01"),
        ("2024-01-01T10:00:00Z", "2024-01-01T10:00:00Z"),
        ("1_000", "1_000"),
        ("1:20", "1:20"),
        ("0b101", "0b101"),
        ("0o8", "0o8"),
        ("+0x1", "+0x1"),
        ("0x", "0x"),
        ("1e", "1e"),
        ("e5", "e5"),
        ("1.2.3", "1.2.3"),
        (".", "."),
        ("+", "+"),
        ("-x", "-x"),
        ("inf", "inf"),
        ("nan", "nan"),
        (".Nan", ".Nan"),
        ("+.nan", "+.nan"),
        ("<<", "<<"),
        ("=", "="),
        ("'1'", "1"),
        ('"true"', "true"),
        ("'null'", "null"),
        ("''", ""),
        ("hello world", "hello world"),
    ],
)
def test_core_schema_resolution(scalar: str, value: Any) -> None:
    assert load(f"v: {scalar}\n") == {"v": value}
    assert type(load(f"v: {scalar}\n")["v"]) is type(value)


@pytest.mark.parametrize("scalar", [".nan", ".NaN", ".NAN"])
def test_core_schema_nan(scalar: str) -> None:
    assert math.isnan(load(f"v: {scalar}")["v"])


def test_resolution_of_repeated_scalars_is_consistent() -> None:
    # The per-load memo must not confuse equal texts in different styles.
    data = load("a: [1, '1', 1, \"1\", true, 'true', true]\n")
    assert data == {"a": [1, "1", 1, "1", True, "true", True]}


def test_root_scalars() -> None:
    assert load("42") == 42
    assert load("hello") == "hello"
    assert load("!!int '3'") == 3
    assert load("'x'") == "x"


@pytest.mark.parametrize(
    ("tagged", "value"),
    [
        ("!!str 12", "12"),
        ("!!str true", "true"),
        ("!!str", ""),
        ("!!str ~", "~"),
        ("!!int '12'", 12),
        ("!!int 0x10", 16),
        ("!!int -3", -3),
        ("!!float 1", 1.0),
        ("!!float '2.5'", 2.5),
        ("!!float .inf", math.inf),
        ("!!bool 'false'", False),
        ("!!bool TRUE", True),
        ("!!null ''", None),
        ("!!null ~", None),
        ("!!null", None),
        ("!!map {a: 1}", {"a": 1}),
        ("!!seq [1]", [1]),
        ("!<tag:yaml.org,2002:str> 1", "1"),
    ],
)
def test_explicit_standard_tags_are_honoured(tagged: str, value: Any) -> None:
    assert load(f"v: {tagged}\n") == {"v": value}


def test_str_tag_makes_a_string_key() -> None:
    assert load("!!str 1: a\n!!str null: b\n") == {"1": "a", "null": "b"}


@pytest.mark.parametrize(
    ("tagged", "message"),
    [
        ("!!int x", "'x' is not a valid !!int value"),
        ("!!int 1.5", "'1.5' is not a valid !!int value"),
        ("!!int 1_000", "'1_000' is not a valid !!int value"),
        ("!!float abc", "'abc' is not a valid !!float value"),
        ("!!bool yes", "'yes' is not a valid !!bool value"),
        ("!!null 0", "'0' is not a valid !!null value"),
        ("!!map x", "YAML tag !!map cannot be used on a scalar"),
        ("!!seq x", "YAML tag !!seq cannot be used on a scalar"),
        ("!!seq {a: 1}", "YAML tag !!seq cannot be used on a mapping"),
        ("!!int [1]", "YAML tag !!int cannot be used on a sequence"),
        ("!!str {a: 1}", "YAML tag !!str cannot be used on a mapping"),
        (
            "!!python/object/apply:os.system [ls]",
            "unsupported YAML tag !!python/object/apply:os.system",
        ),
        ("!!python/name:os.system", "unsupported YAML tag !!python/name:os.system"),
        ("!custom x", "unsupported YAML tag !custom"),
        ("!custom {a: 1}", "unsupported YAML tag !custom"),
        ("!!binary aGk=", "unsupported YAML tag !!binary"),
        ("!!timestamp 2024-01-01", "unsupported YAML tag !!timestamp"),
        ("!!set {a}", "unsupported YAML tag !!set"),
        ("!!omap [a: 1]", "unsupported YAML tag !!omap"),
        ("!!merge <<", "unsupported YAML tag !!merge"),
    ],
)
def test_bad_tags_are_problems_at_the_tag(tagged: str, message: str) -> None:
    assert problems(f"top:\n  v: {tagged}\n") == [("top.v", 2, 6, message)]


def test_bad_tag_problem_names_what_is_allowed() -> None:
    problem = only_problem("v: !custom x")
    assert problem.got == "!custom"
    assert problem.expected == "no tag or !!str, !!int, !!float, !!bool, !!null, !!map or !!seq"


def test_tags_from_a_tag_directive_are_unsupported() -> None:
    text = "%TAG !e! tag:example.com,2000:\n---\nv: !e!thing x\n"
    assert problems(text) == [("v", 3, 4, "unsupported YAML tag tag:example.com,2000:thing")]


def test_python_tags_never_construct_anything(monkeypatch: pytest.MonkeyPatch) -> None:
    # Were the tag honoured, the loader would import and call this.
    monkeypatch.setattr("os.system", lambda *_: pytest.fail("os.system was called"))
    text = "a: !!python/object/apply:os.system ['echo pwned']\n"
    assert problems(text) == [("a", 1, 4, "unsupported YAML tag !!python/object/apply:os.system")]


def test_global_pyyaml_resolvers_are_untouched() -> None:
    load("a: on\n")
    assert yaml.safe_load("a: on\nb: 012\n") == {"a": True, "b": 10}  # still YAML 1.1
    assert (
        yaml_reader._LOADER.yaml_implicit_resolvers is not yaml.SafeLoader.yaml_implicit_resolvers
    )
    assert "o" in yaml.SafeLoader.yaml_implicit_resolvers
    assert "o" not in yaml_reader._LOADER.yaml_implicit_resolvers


def test_integer_too_long_to_convert() -> None:
    digits = "1" * 5000
    problem = only_problem(f"n: {digits}\n")
    assert (problem.path, problem.line, problem.column) == ("n", 1, 4)
    assert problem.message == "integer of 5,000 digits is too large"
    assert load(f"n: 0x{'f' * 5000}\n")["n"] == int("f" * 5000, 16)  # no limit for hex


# -- mappings -----------------------------------------------------------------------


def test_duplicate_keys_are_reported_at_each_repeat() -> None:
    text = "a: 1\nb:\n  c: 2\n  c: 3\n  c: 4\na: 5\n"
    assert problems(text) == [
        ("b.c", 4, 3, "duplicate key 'c' (first at line 3)"),
        ("b.c", 5, 3, "duplicate key 'c' (first at line 3)"),
        ("a", 6, 1, "duplicate key 'a' (first at line 1)"),
    ]


def test_duplicate_keys_in_flow_and_through_tags() -> None:
    assert problems("{x: 1, !!str x: 2}") == [("x", 1, 8, "duplicate key 'x' (first at line 1)")]
    assert problems("- {'k': 1,\n   k: 2}") == [
        ("[0].k", 2, 4, "duplicate key 'k' (first at line 1)")
    ]


@pytest.mark.parametrize(
    ("key", "got"),
    [
        ("1", "int 1"),
        ("-2", "int -2"),
        ("1.5", "float 1.5"),
        ("true", "bool true"),
        ("null", "null"),
        ("~", "null"),
        ("!!int '7'", "int 7"),
        ("[a]", "a sequence"),
        ("{a: 1}", "a mapping"),
    ],
)
def test_keys_must_be_strings(key: str, got: str) -> None:
    message = f"mapping keys must be strings, got {got}"
    assert problems(f"m:\n  {key}: x\n") == [("m", 2, 3, message)]


def test_an_empty_key_is_null() -> None:
    assert problems("m:\n  ? \n  : x\n") == [("m", 2, 4, "mapping keys must be strings, got null")]


def test_complex_keys_are_refused() -> None:
    assert problems("? [a, b]\n: c\n") == [
        ("", 1, 3, "mapping keys must be strings, got a sequence")
    ]


def test_a_bad_key_does_not_hide_problems_in_its_value() -> None:
    assert problems("1: !custom x\n2: [!!int y]\n") == [
        ("", 1, 1, "mapping keys must be strings, got int 1"),
        ('["1"]', 1, 4, "unsupported YAML tag !custom"),
        ("", 2, 1, "mapping keys must be strings, got int 2"),
        ('["2"][0]', 2, 5, "'y' is not a valid !!int value"),
    ]


def test_bad_keys_are_not_taken_for_duplicates() -> None:
    assert problems("1: a\n1: b\n") == [
        ("", 1, 1, "mapping keys must be strings, got int 1"),
        ("", 2, 1, "mapping keys must be strings, got int 1"),
    ]


def test_a_key_with_an_unsupported_tag_is_still_a_key() -> None:
    assert problems("!custom k: v\n") == [("", 1, 1, "unsupported YAML tag !custom")]


def test_duplicates_among_bad_keys() -> None:
    assert problems("? [a]\n: 1\n1: x\nb: 1\nb: 2\n") == [
        ("", 1, 3, "mapping keys must be strings, got a sequence"),
        ("", 3, 1, "mapping keys must be strings, got int 1"),
        ("b", 5, 1, "duplicate key 'b' (first at line 4)"),
    ]


def test_merge_keys_are_plain_keys() -> None:
    text = "base: &b {x: 1}\nderived:\n  <<: *b\n  y: 2\n"
    assert load(text)["derived"] == {"<<": {"x": 1}, "y": 2}


# -- aliases ------------------------------------------------------------------------


def test_aliases_share_the_anchored_value() -> None:
    data = load("a: &x {k: [1, 2]}\nb: *x\nc: &s hello\nd: *s\n")
    assert data == {"a": {"k": [1, 2]}, "b": {"k": [1, 2]}, "c": "hello", "d": "hello"}
    assert data["a"] is data["b"]


def _billion_laughs(levels: int = 9, fan: int = 9) -> str:
    lines = ['l0: &l0 "lol"']
    for level in range(1, levels + 1):
        refs = ", ".join([f"*l{level - 1}"] * fan)
        lines.append(f"l{level}: &l{level} [{refs}]")
    return "\n".join(lines) + "\n"


def test_billion_laughs_is_refused_with_bounded_memory() -> None:
    tracemalloc.start()
    try:
        with pytest.raises(SpecError) as caught:
            read_yaml(_billion_laughs(), file="lol.yaml")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 * 1024 * 1024
    (problem,) = caught.value.problems
    # Each alias to l6 stands for 597,871 nodes: the first one passes the ceiling.
    assert (problem.path, problem.line, problem.column) == ("l7[0]", 8, 10)
    assert problem.message == "alias expansion exceeds 1,000,000 nodes (billion laughs?)"
    assert problem.got == "1,270,459 nodes by this alias"


def test_thirty_levels_of_laughs_are_refused_all_the_same() -> None:
    # 9**30 nodes if expanded: only bounded work can finish this test at all.
    (problem,) = problems(_billion_laughs(levels=30))
    assert problem[:3] == ("l7[0]", 8, 10)
    assert problem[3] == "alias expansion exceeds 1,000,000 nodes (billion laughs?)"


def test_alias_budget_scales_with_the_document() -> None:
    # 1,035 nodes: the budget is 10 * 1,035 + 10,000 = 20,350 nodes; each alias to
    # the 1,000-item list adds 1,001, so the 21st goes over.
    items = ", ".join(["x"] * 1000)
    refs = ", ".join(["*a"] * 30)
    text = f"a: &a [{items}]\nb: [{refs}]\n"
    problem = only_problem(text)
    assert (problem.path, problem.line, problem.column) == ("b[20]", 2, 85)
    assert problem.message == "alias expansion exceeds 20,350 nodes (billion laughs?)"
    # Twenty of them fit.
    assert len(load(f"a: &a [{items}]\nb: [{', '.join(['*a'] * 20)}]\n")["b"]) == 20


def test_explicit_alias_budget() -> None:
    text = "a: &x [1, 2]\nb: *x\nc: *x\n"
    assert problems(text, max_alias_nodes=5) == [
        ("c", 3, 4, "alias expansion exceeds 5 nodes (billion laughs?)")
    ]
    assert load(text, max_alias_nodes=6)["c"] == [1, 2]


def test_aliases_inside_aliased_values_are_charged_in_full() -> None:
    # b stands for 1 + 2 * 3 = 7 nodes once expanded, so c costs 7 more.
    text = "a: &a [1, 2]\nb: &b [*a, *a]\nc: *b\n"
    assert load(text, max_alias_nodes=13)["c"] == [[1, 2], [1, 2]]
    assert problems(text, max_alias_nodes=12) == [
        ("c", 3, 4, "alias expansion exceeds 12 nodes (billion laughs?)")
    ]


@pytest.mark.parametrize(
    ("text", "path", "line", "column"),
    [
        ("a: &x [1, *x]\n", "a[1]", 1, 11),
        ("a: &x\n  b: *x\n", "a.b", 2, 6),
        ("&r [*r]", "[0]", 1, 5),
        ("a: &x\n  - # a * in a comment\n    *x\n", "a[0]", 3, 5),
        ("a: &x {b: [1, {c: *x}]}", "a.b[1].c", 1, 19),
    ],
)
def test_recursive_aliases_are_problems(text: str, path: str, line: int, column: int) -> None:
    (found,) = problems(text)
    assert found[:3] == (path, line, column)
    assert found[3].startswith("recursive alias: the value anchored at line 1 contains itself")


def test_each_recursive_alias_is_reported() -> None:
    assert [p[:3] for p in problems("a: &x [*x, 1, *x]\n")] == [("a[0]", 1, 8), ("a[2]", 1, 15)]


def test_a_recursive_value_aliased_again_does_not_loop() -> None:
    text = "a: &x [1, *x]\nb: *x\nc: *x\n"
    assert [p[:3] for p in problems(text)] == [("a[1]", 1, 11)]


def test_undefined_alias_is_a_syntax_error() -> None:
    assert problems("a: *nope") == [("", 1, 4, "YAML syntax error: found undefined alias")]


# -- limits ---------------------------------------------------------------------------


def test_oversized_text_is_refused_before_parsing() -> None:
    text = "[" * 20  # not even valid YAML: the size is all that is looked at
    assert problems(text, max_bytes=10) == [
        ("", 1, 1, "spec is 20 bytes, over the limit of 10 bytes")
    ]
    assert (
        problems(text.encode(), max_bytes=10)[0][3]
        == "spec is 20 bytes, over the limit of 10 bytes"
    )
    assert load("a: 1", max_bytes=4) == {"a": 1}


def _nested_flow(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_nesting_up_to_the_limit_is_fine() -> None:
    data = load(_nested_flow(MAX_DEPTH))
    for _ in range(MAX_DEPTH - 1):
        (data,) = data
    assert data == []


def test_nesting_over_the_limit_is_a_problem_with_its_path() -> None:
    path = "[0]" * MAX_DEPTH
    message = f"nested more than {MAX_DEPTH} levels deep"
    assert problems(_nested_flow(MAX_DEPTH + 1)) == [(path, 1, MAX_DEPTH + 1, message)]


def test_deep_block_nesting_is_a_problem_with_its_path() -> None:
    text = "".join("  " * level + "a:\n" for level in range(MAX_DEPTH + 1))
    path = ".".join(["a"] * MAX_DEPTH)
    message = f"nested more than {MAX_DEPTH} levels deep"
    assert problems(text) == [(path, MAX_DEPTH + 1, 2 * MAX_DEPTH + 1, message)]


def test_an_alias_to_a_too_deep_value_reports_the_depth_once() -> None:
    text = f"a: &x {_nested_flow(MAX_DEPTH + 1)}\nb: *x\n"
    message = f"nested more than {MAX_DEPTH} levels deep"
    # The root mapping is the first level, so the 99th list inside "a" is the 101st.
    assert problems(text) == [("a" + "[0]" * (MAX_DEPTH - 1), 1, MAX_DEPTH + 6, message)]


@pytest.mark.parametrize(
    "text",
    [
        _nested_flow(6_000),
        "[" * 100_000,  # unterminated: libyaml's composer would recurse until it crashed
        "{a: " * 50_000,
        "- " * 30_000 + "x",  # block nesting on one line
    ],
)
def test_nesting_too_deep_for_the_composer_is_stopped_first(text: str) -> None:
    (found,) = problems(text)
    assert found[3] == f"nested more than {MAX_DEPTH} levels deep"
    assert found[1] == 1


@pytest.mark.parametrize(
    ("text", "real_depth"),
    [
        ("a: [x, {b: c}]\n", 3),
        ("[" * 10 + "]" * 10, 10),
        ("a: [[], {}, [[]]]", 4),
        ('a: "[[[[["\n', 1),
        ("a: x]]]]] [[[[[", 1),
        ('[ "]]]]", ' * 10 + "x" + "]" * 10, 10),
        ('[ "]",\n' * 50 + "x" + "]" * 50, 50),
        ("[ # ]]]]\n" * 20 + "x" + "]" * 20, 20),
        ("[ 'x'']]]',\n" * 20 + "x" + "]" * 20, 20),
        ("[ !<]]]> x,\n" * 20 + "x" + "]" * 20, 20),
        ("a:\n  b:\n    - - - c\n", 5),
    ],
)
def test_nesting_bound_is_never_below_the_real_depth(text: str, real_depth: int) -> None:
    assert _depth(text) == real_depth
    assert yaml_reader._nesting_bound(text) >= real_depth


def _depth(text: str) -> int:
    """The real nesting depth, from the parser's events."""
    depth = deepest = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            deepest = max(deepest, depth)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    return deepest


_FLOW_LEAF = st.one_of(
    st.sampled_from(["a", "b c", "1", "~"]),
    st.text(alphabet="[]{},#ab '", max_size=6).map(lambda s: "'" + s.replace("'", "''") + "'"),
    st.text(alphabet='[]{},#ab "', max_size=6).map(lambda s: '"' + s.replace('"', '\\"') + '"'),
)


def _flow_tree(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    separators = st.sampled_from([", ", ",\n  ", " , ", ",\n# ]]} comment\n  "])
    lists = st.tuples(st.lists(children, max_size=3), separators).map(
        lambda pair: "[" + pair[1].join(pair[0]) + "]"
    )
    maps = st.lists(children, max_size=3).map(
        lambda items: "{" + ", ".join(f"k{i}: {item}" for i, item in enumerate(items)) + "}"
    )
    return lists | maps


@settings(max_examples=200, deadline=None)
@given(st.recursive(_FLOW_LEAF, _flow_tree, max_leaves=30), st.sampled_from(["", "a: ", "- "]))
def test_nesting_bound_holds_for_generated_flow_text(flow: str, prefix: str) -> None:
    text = prefix + flow + "\n"
    assert yaml_reader._nesting_bound(text) >= _depth(text)


# -- syntax ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        (
            "a: [1, 2",
            2,
            1,
            "did not find expected ',' or ']' (while parsing a flow sequence at line 1, column 4)",
        ),
        (
            "{a: 1",
            2,
            1,
            "did not find expected ',' or '}' (while parsing a flow mapping at line 1, column 1)",
        ),
        ("a: b\n c: d", 2, 3, "mapping values are not allowed in this context"),
        (
            "\t- a",
            1,
            1,
            "found character that cannot start any token"
            " (while scanning for the next token at line 1, column 1)",
        ),
        (
            'a: "unterminated',
            1,
            17,
            "found unexpected end of stream (while scanning a quoted scalar at line 1, column 4)",
        ),
        (
            "a:\n  - b\n c: d",
            3,
            2,
            "did not find expected key (while parsing a block mapping at line 1, column 1)",
        ),
        ("a: '\x00'", 1, 5, "unacceptable character #x0000: control characters are not allowed"),
        (
            "a: 1\nb: 'x\x07'",
            2,
            6,
            "unacceptable character #x0007: control characters are not allowed",
        ),
    ],
)
def test_syntax_errors(text: str, line: int, column: int, message: str) -> None:
    assert problems(text) == [("", line, column, f"YAML syntax error: {message}")]


@pytest.mark.parametrize(
    ("text", "got"),
    [
        ("a: 1\n---\nb: 2\n", "2"),
        ("--- a\n--- b\n", "2"),
        ("a: 1\n---\nb: 2\n---\nc: 3\n", "3"),
        ("a: 1\n---\nb: [\n", "at least 2"),
    ],
)
def test_one_document_only(text: str, got: str) -> None:
    problem = only_problem(text)
    assert (problem.line, problem.column) == (2, 1)
    assert problem.message == f"expected one YAML document, got {got}"
    assert problem.got == f"{got} documents"


@pytest.mark.parametrize("text", ["", "   \n\n", "# just a comment\n"])
def test_an_empty_stream_is_none(text: str) -> None:
    doc = read_yaml(text, file="empty.yaml")
    assert doc.data is None
    assert doc.locate(()) == Location("empty.yaml", 1, 1)
    assert doc.locate(("meta",)) == Location("empty.yaml", 1, 1)


@pytest.mark.parametrize("text", ["---\n", "---\n...\n", "--- # nothing\n"])
def test_an_empty_document_is_none(text: str) -> None:
    doc = read_yaml(text, file="empty.yaml")
    assert doc.data is None
    # The empty value sits where libyaml puts it: after the document start line.
    assert doc.locate(("meta",)) == Location("empty.yaml", 2, 1)


def test_every_problem_is_reported_at_once_in_document_order() -> None:
    text = (
        "meta:\n"
        "  name: !custom x\n"
        "  name: y\n"
        "states:\n"
        "  - 1: a\n"
        "  - {b: !!int nope}\n"
        "loop: &l [*l]\n"
    )
    assert problems(text) == [
        ("meta.name", 2, 9, "unsupported YAML tag !custom"),
        ("meta.name", 3, 3, "duplicate key 'name' (first at line 2)"),
        ("states[0]", 5, 5, "mapping keys must be strings, got int 1"),
        ("states[1].b", 6, 9, "'nope' is not a valid !!int value"),
        ("loop[0]", 7, 11, "recursive alias: the value anchored at line 7 contains itself"),
    ]


def test_bytes_are_read_as_utf8_and_bom_is_dropped() -> None:
    doc = read_yaml(codecs.BOM_UTF8 + "a: é\n".encode())
    assert doc.data == {"a": "é"}
    assert doc.locate(("a",)) == Location(None, 1, 4)


def test_utf16_with_bom() -> None:
    assert load(codecs.BOM_UTF16_LE + "a: [x, é]\n".encode("utf-16-le")) == {"a": ["x", "é"]}


@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_is_left_as_it_was(enabled: bool) -> None:
    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        load("a: [1, 2]\n")
        assert gc.isenabled() is enabled
        with pytest.raises(SpecError):
            load("a: [1, 2\n")
        assert gc.isenabled() is enabled
    finally:
        gc.enable() if was else gc.disable()


# -- the pure-Python loader (PyYAML built without libyaml) -----------------------------


@pytest.fixture
def pure_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yaml_reader, "_LOADER", yaml_reader._core_loader(yaml.SafeLoader))


@pytest.mark.usefixtures("pure_loader")
def test_pure_loader_reads_the_same() -> None:
    text = "a: [on, 012, 0x1F, .5, ~, true, '1']\nb: &x {k: v}\nc: *x\n"
    doc = read_yaml(text)
    assert doc.data == {
        "a": ["on", 12, 31, 0.5, None, True, "1"],
        "b": {"k": "v"},
        "c": {"k": "v"},
    }
    assert doc.locate(("c",)) == Location(None, 3, 4)
    assert doc.locate(("a", 4)) == Location(None, 1, 24)


@pytest.mark.usefixtures("pure_loader")
def test_pure_loader_reports_syntax_and_documents() -> None:
    assert problems("a: [1, 2")[0][3].startswith("YAML syntax error: ")
    assert problems("a: 1\n---\nb: 2\n")[0][3] == "expected one YAML document, got 2"
    assert problems("a: 'x\x07'")[0][1:3] == (1, 6)


@pytest.mark.usefixtures("pure_loader")
def test_pure_loader_recursion_is_a_problem() -> None:
    # Python-level recursion gives out before MAX_DEPTH is checked on the values.
    # (One bracket a line keeps the cheap nesting bound low: no event pre-check.)
    text = "[\n" * 1_000 + "]\n" * 1_000
    assert yaml_reader._nesting_bound(text) <= yaml_reader._C_STACK_SAFE_DEPTH
    message = f"YAML nested more than {MAX_DEPTH} levels deep"
    assert problems(text) == [("", 1, 1, message)]


# -- positions ------------------------------------------------------------------------

SAMPLE = """\
meta:
  machine_name: orders   # comment
  strict_mode: true
states:
  - name: new
    type: initial
  - {name: done, type: terminal}
  - name: "quoted"
    on_enter: [log, audit]
transitions:
- trigger: go
  source: new
  dest: done
empty:
anchor: &shared
  x: 1
again: *shared
"""


@pytest.mark.parametrize(
    ("path", "key", "line", "column"),
    [
        ((), False, 1, 1),
        (("meta",), False, 2, 3),
        (("meta",), True, 1, 1),
        (("meta", "machine_name"), False, 2, 17),
        (("meta", "machine_name"), True, 2, 3),
        (("meta", "strict_mode"), True, 3, 3),
        (("states",), False, 5, 3),
        (("states", 0), False, 5, 5),
        (("states", 0), True, 5, 5),  # no key to point at in a sequence
        (("states", 0, "name"), False, 5, 11),
        (("states", 0, "type"), False, 6, 11),
        (("states", 1), False, 7, 5),
        (("states", 1, "name"), False, 7, 12),
        (("states", 1, "type"), True, 7, 18),
        (("states", 1, "type"), False, 7, 24),
        (("states", 2, "name"), False, 8, 11),
        (("states", 2, "on_enter"), False, 9, 15),
        (("states", 2, "on_enter", 1), False, 9, 21),
        (("transitions",), False, 11, 1),
        (("transitions", 0), False, 11, 3),
        (("transitions", 0, "dest"), False, 13, 9),
        (("empty",), False, 14, 7),
        (("empty",), True, 14, 1),
        (("anchor",), False, 15, 9),
        (("anchor", "x"), False, 16, 6),
        (("again",), False, 17, 8),  # the alias itself
        (("again",), True, 17, 1),
        (("again", "x"), False, 16, 6),  # inside the anchored original
        (("again", "x"), True, 16, 3),
        # paths that do not fully exist: the deepest part that does
        (("meta", "version"), False, 2, 3),
        (("meta", "version"), True, 2, 3),
        (("states", 9), False, 5, 3),
        (("states", -1), False, 5, 3),
        (("states", "name"), False, 5, 3),
        (("meta", 0), False, 2, 3),
        (("states", 0, "name", "deeper"), False, 5, 11),
        (("nope",), False, 1, 1),
    ],
)
def test_locate(path: Path, key: bool, line: int, column: int) -> None:
    doc = read_yaml(SAMPLE, file="sample.yaml")
    assert doc.locate(path, key=key) == Location("sample.yaml", line, column)


def test_problem_helper_uses_positions() -> None:
    doc = read_yaml(SAMPLE, file="sample.yaml")
    problem = doc.problem(("states", 1, "type"), "bad type", expected="a type", got="'x'")
    assert problem == Problem("states[1].type", "bad type", "sample.yaml", 7, 24, "a type", "'x'")
    missing = doc.problem(("meta", "version"), "version is required")
    assert (missing.path, missing.line, missing.column) == ("meta.version", 2, 3)


@pytest.mark.parametrize(
    ("text", "path", "line", "column"),
    [
        ("a: &y 1\r\nb: [x, *y]\r\n", ("b", 1), 2, 8),
        ("a: &y 1\rb: [x, *y]\r", ("b", 1), 2, 8),
        ("a: &y 1\x85b:\x85  - *y\x85", ("b", 0), 3, 5),
        ("a: &y [1]\nb: # a *star in a comment\n  *y\n", ("b",), 3, 3),
        ("a: &y [1]\nb: [*y, *y]\n", ("b", 1), 2, 9),
        ("a: &y [1]\nb: [*y, *y]\n", ("b", 1, 0), 1, 8),
        ("- &y a\n- *y\n", (1,), 2, 3),
        ("&r [1, *r]", (1,), 1, 8),
        ("&r [1, *r]", (1, 1, 0), 1, 5),
    ],
)
def test_locate_aliases_and_line_breaks(text: str, path: Path, line: int, column: int) -> None:
    try:
        doc = read_yaml(text)
    except SpecError:
        # Recursive documents are refused; their positions are still well defined.
        doc = Document(None, locator=lambda: yaml_reader._YamlLocator(text, None))
    assert doc.locate(path) == Location(None, line, column)


def test_locate_a_root_scalar() -> None:
    doc = read_yaml("  42\n")
    assert doc.locate(()) == Location(None, 1, 3)
    assert doc.locate(("x",)) == Location(None, 1, 3)


def test_duplicate_key_locates_the_last_value() -> None:
    locator = yaml_reader._YamlLocator("a: 1\na: 2\n", None)
    assert locator.find(("a",), False) == (2, 4)


# -- round trips ----------------------------------------------------------------------

_CORE_PATTERNS = (yaml_reader._NULL, yaml_reader._BOOL, yaml_reader._INT, yaml_reader._FLOAT)


def _is_core_string(text: str) -> bool:
    """True when a plain scalar with this text is a string under the core schema."""
    return not any(pattern.match(text) for pattern in _CORE_PATTERNS)


_TEXT = st.text(
    alphabet=string.ascii_letters + string.digits + " -_.:#'\"!&*[]{},?|>%@`é", max_size=12
)
_KEYS = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True).filter(_is_core_string)
_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | _TEXT.filter(_is_core_string)
)
_DATA = st.recursive(
    _LEAVES,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_KEYS, children, max_size=4),
    max_leaves=25,
)


_QUOTED = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"\\]|\\.)*\"")


def _written_as(rest: str, value: Any) -> bool:
    """Does the text from a located position start with how ``value`` is written?"""
    if isinstance(value, dict):
        if not value:
            return rest.startswith("{}")
        first = next(iter(value))
        return rest.startswith("{") or _written_as(rest, first)
    if isinstance(value, list):
        return rest.startswith(("[", "-"))
    if isinstance(value, str) and rest[:1] in ("'", '"'):
        quoted = _QUOTED.match(rest)
        return quoted is not None and yaml.safe_load(quoted.group()) == value
    if value is None:
        return rest.startswith("null")
    if isinstance(value, bool):
        return rest.startswith("true" if value else "false")
    return rest.startswith(str(value)) and (str(value) != "" or rest[:1] in ("", ",", "}", "]"))


@settings(max_examples=150, deadline=None)
@given(_DATA, st.sampled_from([False, None, True]))
def test_round_trip_and_positions(data: Any, flow_style: bool | None) -> None:
    text = yaml.safe_dump(data, default_flow_style=flow_style, width=1_000_000, sort_keys=False)
    doc = read_yaml(text)
    assert doc.data == data
    lines = text.splitlines()
    for path, value in walk_paths(data):
        where = doc.locate(path)
        assert where is not None
        rest = lines[where.line - 1][where.column - 1 :]
        assert _written_as(rest, value), (path, rest)
        if path and isinstance(path[-1], str):
            at_key = doc.locate(path, key=True)
            assert at_key is not None
            assert _written_as(lines[at_key.line - 1][at_key.column - 1 :], path[-1])
