"""read_json: the stdlib parser for speed, a lazy scanner for positions and problems."""

from __future__ import annotations

import codecs
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statewise.errors import SpecError
from statewise.spec import json_reader
from statewise.spec.json_reader import read_json
from statewise.spec.source import Location, Path
from tests.spec.paths import walk_paths


def problems(text: str | bytes, **options: Any) -> list[tuple[str, int | None, int | None, str]]:
    """(path, line, column, message) of every problem, in the order reported."""
    with pytest.raises(SpecError) as caught:
        read_json(text, file="spec.json", **options)
    assert all(p.file == "spec.json" for p in caught.value.problems)
    return [(p.path, p.line, p.column, p.message) for p in caught.value.problems]


@pytest.mark.parametrize(
    "text",
    [
        "{}",
        "[]",
        '"just a string"',
        "42",
        "-1.5e3",
        "true",
        "null",
        ' \n\t{"a": [1, 2.5, "x", true, false, null, {}, []], "b": {"c": {"d": "e"}}}\r\n ',
        '{"esc\\u00e9": "\\"quoted\\"", "slash\\\\": "\\n"}',
    ],
)
def test_reads_what_json_loads_reads(text: str) -> None:
    assert read_json(text).data == json.loads(text)


def test_reads_bytes_and_drops_a_bom() -> None:
    doc = read_json(codecs.BOM_UTF8 + '{"a": "é"}'.encode())
    assert doc.data == {"a": "é"}
    assert doc.locate(("a",)) == Location(None, 1, 7)
    assert read_json('\ufeff{"a": 1}').data == {"a": 1}


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        ("", 1, 1, "Expecting value"),
        ('{"a": [1, 2', 1, 12, "Expecting ',' delimiter"),
        ("[1 2]", 1, 4, "Expecting ',' delimiter"),
        ('{\n  "a": 1\n  "b": 2\n}', 3, 3, "Expecting ',' delimiter"),
        ("{'a': 1}", 1, 2, "Expecting property name enclosed in double quotes"),
        ('{"a": tru}', 1, 7, "Expecting value"),
        ('{"a": 1} x', 1, 10, "Extra data"),
        ('"\x01"', 1, 2, "Invalid control character at"),
    ],
)
def test_syntax_errors(text: str, line: int, column: int, message: str) -> None:
    assert problems(text) == [("", line, column, f"JSON syntax error: {message}")]


def test_duplicate_keys_are_reported_at_each_repeat() -> None:
    text = '{\n  "a": 1,\n  "b": {"c": 2, "c": 3,\n        "c": 4},\n  "a": 5\n}'
    assert problems(text) == [
        ("b.c", 3, 17, "duplicate key 'c' (first at line 3)"),
        ("b.c", 4, 9, "duplicate key 'c' (first at line 3)"),
        ("a", 5, 3, "duplicate key 'a' (first at line 2)"),
    ]


def test_duplicate_keys_compare_decoded_text() -> None:
    assert problems('{"e": 1, "\\u0065": 2}') == [
        ("e", 1, 10, "duplicate key 'e' (first at line 1)")
    ]


def test_duplicate_keys_inside_arrays_have_indexed_paths() -> None:
    assert problems('[{}, {"x y": 1, "x y": 2}]') == [
        ('[1]["x y"]', 1, 17, "duplicate key 'x y' (first at line 1)")
    ]


@pytest.mark.parametrize(
    ("text", "path", "column", "literal"),
    [
        ('{"a": NaN}', "a", 7, "NaN"),
        ('{"a": Infinity}', "a", 7, "Infinity"),
        ("[1, -Infinity]", "[1]", 5, "-Infinity"),
        ("NaN", "", 1, "NaN"),
    ],
)
def test_non_finite_literals_are_refused(text: str, path: str, column: int, literal: str) -> None:
    message = f"{literal} is not valid JSON (numbers must be finite)"
    assert problems(text) == [(path, 1, column, message)]


def test_every_problem_is_reported_at_once_in_document_order() -> None:
    text = '{"a": NaN, "b": [1, {"k": 1, "k": Infinity}], "a": 2}'
    assert problems(text) == [
        ("a", 1, 7, "NaN is not valid JSON (numbers must be finite)"),
        ("b[1].k", 1, 30, "duplicate key 'k' (first at line 1)"),
        ("b[1].k", 1, 35, "Infinity is not valid JSON (numbers must be finite)"),
        ("a", 1, 47, "duplicate key 'a' (first at line 1)"),
    ]


def test_integers_too_long_to_convert() -> None:
    digits = "9" * 5000
    assert problems(f'{{"n": [1, -{digits}]}}') == [
        ("n[1]", 1, 11, "integer of 5,000 digits is too large")
    ]
    # Fractions and exponents become floats, which have no such limit.
    assert read_json(f"[{digits}.5]").data == [float(f"{digits}.5")]


def test_any_other_value_error_is_still_one_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise ValueError("nope")

    monkeypatch.setattr(json, "loads", refuse)
    assert problems('{"a": 1}') == [("", 1, 1, "invalid JSON: nope")]


def test_nesting_too_deep_for_the_parser() -> None:
    depth = 100_000
    text = '{"a": ' + '["x", ' * depth + "1" + "]" * depth + "}"
    (problem,) = problems(text)
    assert problem[:2] == ("", 1)
    assert problem[3] == f"JSON nested too deeply ({depth + 1:,} levels)"
    assert problem[2] == 7 + 6 * (depth - 1)  # the innermost "["


@pytest.mark.parametrize(
    ("text", "deepest", "column"),
    [
        ("[[], [[]], []]", 3, 7),
        ('["[[[[", {"a": [1]}]', 3, 16),
        ('{"]]]": [[]]}', 3, 10),
    ],
)
def test_the_deepest_point_ignores_brackets_in_strings(
    text: str, deepest: int, column: int
) -> None:
    problem = json_reader._too_deep(text, "f.json")
    assert (problem.line, problem.column) == (1, column)
    assert problem.message == f"JSON nested too deeply ({deepest} levels)"


def test_oversized_text_is_refused_before_parsing() -> None:
    assert problems("[" * 20, max_bytes=10) == [
        ("", 1, 1, "spec is 20 bytes, over the limit of 10 bytes")
    ]
    assert read_json("[1]", max_bytes=3).data == [1]


SAMPLE = """\
{
  "meta": {"machine_name": "orders", "strict_mode": true},
  "states": [
    {"name": "new", "type": "initial"},
    {
      "name" : "done",
      "on_enter": ["log", "audit"]
    }
  ],
  "empty": {},
  "none": [],
  "k\\u00e9y": null,
  "num": -12.5e1
}
"""


@pytest.mark.parametrize(
    ("path", "key", "line", "column"),
    [
        ((), False, 1, 1),
        (("meta",), False, 2, 11),
        (("meta",), True, 2, 3),
        (("meta", "machine_name"), False, 2, 28),
        (("meta", "machine_name"), True, 2, 12),
        (("meta", "strict_mode"), False, 2, 53),
        (("states",), False, 3, 13),
        (("states", 0), False, 4, 5),
        (("states", 0), True, 4, 5),
        (("states", 0, "type"), False, 4, 29),
        (("states", 1), False, 5, 5),
        (("states", 1, "name"), False, 6, 16),
        (("states", 1, "name"), True, 6, 7),
        (("states", 1, "on_enter", 1), False, 7, 27),
        (("empty",), False, 10, 12),
        (("none",), False, 11, 11),
        (("kéy",), False, 12, 15),
        (("kéy",), True, 12, 3),
        (("num",), False, 13, 10),
        # paths that do not fully exist: the deepest part that does
        (("meta", "version"), False, 2, 11),
        (("meta", "version"), True, 2, 11),
        (("states", 2), False, 3, 13),
        (("states", -1), False, 3, 13),
        (("states", "x"), False, 3, 13),
        (("meta", 0), False, 2, 11),
        (("empty", "x"), False, 10, 12),
        (("num", "x"), False, 13, 10),
        (("nope",), False, 1, 1),
    ],
)
def test_locate(path: Path, key: bool, line: int, column: int) -> None:
    doc = read_json(SAMPLE, file="sample.json")
    assert doc.locate(path, key=key) == Location("sample.json", line, column)


def test_locate_in_a_scalar_document() -> None:
    doc = read_json('  "x"')
    assert doc.locate(()) == Location(None, 1, 3)
    assert doc.locate((0,)) == Location(None, 1, 3)


def test_positions_are_not_computed_until_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    scans: list[str] = []
    original = json_reader._JsonLocator.__init__

    def counting(self: Any, text: str) -> None:
        scans.append(text)
        original(self, text)

    monkeypatch.setattr(json_reader._JsonLocator, "__init__", counting)
    doc = read_json('{"a": [1, 2]}')
    assert scans == []
    assert doc.locate(("a", 1)) == Location(None, 1, 11)
    assert doc.locate(("a",)) == Location(None, 1, 7)
    assert len(scans) == 1


def test_problem_helper_uses_positions() -> None:
    doc = read_json(SAMPLE, file="sample.json")
    problem = doc.problem(("states", 0, "type"), "bad", expected="e", got="g")
    assert (problem.path, problem.line, problem.column) == ("states[0].type", 4, 29)
    assert (problem.expected, problem.got, problem.file) == ("e", "g", "sample.json")


# -- round trips ----------------------------------------------------------------------

_KEYS = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True) | st.text(max_size=5)
_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
_DATA = st.recursive(
    _LEAVES,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_KEYS, children, max_size=4),
    max_leaves=25,
)


def _offset(text: str, line: int, column: int) -> int:
    starts = [0] + [i + 1 for i, char in enumerate(text) if char == "\n"]
    return starts[line - 1] + column - 1


@settings(max_examples=150, deadline=None)
@given(_DATA, st.sampled_from([None, 2]), st.booleans())
def test_round_trip_and_positions(data: Any, indent: int | None, ascii_only: bool) -> None:
    text = json.dumps(data, indent=indent, ensure_ascii=ascii_only)
    doc = read_json(text)
    assert doc.data == data
    decoder = json.JSONDecoder()
    for path, value in walk_paths(data):
        where = doc.locate(path)
        assert where is not None
        # The text at the position decodes to exactly the value found at the path.
        assert decoder.raw_decode(text, _offset(text, where.line, where.column))[0] == value
        if path and isinstance(path[-1], str):
            at_key = doc.locate(path, key=True)
            assert at_key is not None
            offset = _offset(text, at_key.line, at_key.column)
            assert decoder.raw_decode(text, offset)[0] == path[-1]
