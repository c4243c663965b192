"""Paths, locations, documents and the text helpers every reader shares."""

from __future__ import annotations

import codecs
import re

import pytest

from statewise.errors import Problem, SpecError
from statewise.spec.source import (
    Document,
    LineIndex,
    Location,
    Path,
    decode_source,
    format_path,
)


@pytest.mark.parametrize(
    ("path", "rendered"),
    [
        ((), ""),
        (("meta",), "meta"),
        (("meta", "machine_name"), "meta.machine_name"),
        (("transitions", 3, "dest"), "transitions[3].dest"),
        (("states", 0), "states[0]"),
        ((2,), "[2]"),
        ((0, 1), "[0][1]"),
        (("metadata", "a b"), 'metadata["a b"]'),
        (("a b",), '["a b"]'),
        (("a b", "c"), '["a b"].c'),
        (("metadata", ""), 'metadata[""]'),
        (("metadata", "1x"), 'metadata["1x"]'),
        (("metadata", "with-dash"), 'metadata["with-dash"]'),
        (("metadata", 'say "hi"'), 'metadata["say \\"hi\\""]'),
        (("metadata", "café"), 'metadata["café"]'),
        (("_private", "x_1"), "_private.x_1"),
    ],
)
def test_format_path(path: Path, rendered: str) -> None:
    assert format_path(path) == rendered


class _CountingLocator:
    """A stand-in locator that records how often it is built and asked."""

    built = 0

    def __init__(self) -> None:
        type(self).built += 1
        self.asked: list[tuple[Path, bool]] = []

    def find(self, path: Path, key: bool) -> tuple[int, int] | None:
        self.asked.append((path, key))
        return None if path == ("nowhere",) else (len(path) + 1, 7 if key else 3)


def test_document_from_data_knows_no_positions() -> None:
    doc = Document.from_data({"a": 1}, file="spec.yaml")
    assert doc.data == {"a": 1}
    assert doc.file == "spec.yaml"
    assert doc.locate(("a",)) is None
    assert doc.locate(()) is None
    problem = doc.problem(("a",), "bad", expected="x", got="y")
    assert problem == Problem("a", "bad", "spec.yaml", None, None, "x", "y")


def test_document_builds_its_locator_once_and_lazily() -> None:
    _CountingLocator.built = 0
    doc = Document([1], file="f.yaml", locator=_CountingLocator)
    assert _CountingLocator.built == 0  # nothing scanned until asked
    assert doc.locate((0,)) == Location("f.yaml", 2, 3)
    assert doc.locate(("k",), key=True) == Location("f.yaml", 2, 7)
    assert doc.locate(("nowhere",)) is None
    assert _CountingLocator.built == 1


def test_document_problem_is_positioned_and_pathed() -> None:
    doc = Document({}, file="f.yaml", locator=_CountingLocator)
    problem = doc.problem(("transitions", 3, "dest"), "unknown state", key=True, got="'x'")
    assert problem == Problem(
        path="transitions[3].dest",
        message="unknown state",
        file="f.yaml",
        line=4,
        column=7,
        expected=None,
        got="'x'",
    )
    assert str(problem) == "f.yaml:4:7: transitions[3].dest: unknown state"


def test_document_repr_names_the_file_and_data_type() -> None:
    assert repr(Document.from_data([], file="x.json")) == "Document(file='x.json', data=list)"


def test_location_is_a_frozen_value() -> None:
    where = Location("f", 1, 2)
    assert where == Location("f", 1, 2)
    with pytest.raises(AttributeError):
        where.line = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "offset", "position"),
    [
        ("abc", 0, (1, 1)),
        ("abc", 2, (1, 3)),
        ("ab\ncd", 2, (1, 3)),  # the break itself belongs to its line
        ("ab\ncd", 3, (2, 1)),
        ("ab\ncd", 4, (2, 2)),
        ("a\r\nb", 3, (2, 1)),
        ("a\rb", 2, (2, 1)),
        ("\n\n\nx", 3, (4, 1)),
        ("ab\n", 3, (2, 1)),  # just past a final break: the empty last line
    ],
)
def test_line_index_positions(text: str, offset: int, position: tuple[int, int]) -> None:
    index = LineIndex(text, re.compile("\r\n|[\n\r]"))
    assert index.position(offset) == position


def test_line_index_with_newline_only_breaks() -> None:
    index = LineIndex("a\rb\nc", re.compile("\n"))
    assert index.position(2) == (1, 3)
    assert index.position(4) == (2, 1)


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        ("plain", "plain"),
        ("\ufeffwith bom", "with bom"),
        (b"bytes", "bytes"),
        ("é".encode(), "é"),
        (codecs.BOM_UTF8 + b"a: 1", "a: 1"),
        (codecs.BOM_UTF16_LE + "a: é".encode("utf-16-le"), "a: é"),
        (codecs.BOM_UTF16_BE + "a: é".encode("utf-16-be"), "a: é"),
        (codecs.BOM_UTF32_LE + "a: é".encode("utf-32-le"), "a: é"),
        (codecs.BOM_UTF32_BE + "a: é".encode("utf-32-be"), "a: é"),
        (b"", ""),
    ],
)
def test_decode_source(raw: str | bytes, text: str) -> None:
    assert decode_source(raw, file=None, max_bytes=100) == text


@pytest.mark.parametrize(
    ("raw", "size"),
    [
        ("x" * 11, 11),
        (b"x" * 11, 11),
        ("é" * 6, 12),  # 6 characters but 12 UTF-8 bytes
        ("€" * 4, 12),
    ],
)
def test_decode_source_refuses_oversized_text(raw: str | bytes, size: int) -> None:
    with pytest.raises(SpecError) as caught:
        decode_source(raw, file="big.yaml", max_bytes=10)
    assert caught.value.problems == (
        Problem(
            path="",
            message=f"spec is {size} bytes, over the limit of 10 bytes",
            file="big.yaml",
            line=1,
            column=1,
            expected="at most 10 bytes",
            got=f"{size} bytes",
        ),
    )


@pytest.mark.parametrize("raw", ["x" * 10, b"x" * 10, "é" * 5, "\U0001f600" * 2 + "xx"])
def test_decode_source_accepts_text_at_the_limit(raw: str | bytes) -> None:
    assert decode_source(raw, file=None, max_bytes=10)


def test_decode_source_counts_lone_surrogates_without_failing() -> None:
    # Not valid Unicode text, but sizing it must not raise: the parser reports it.
    assert decode_source("\ud800" * 3, file=None, max_bytes=9) == "\ud800" * 3
    with pytest.raises(SpecError):
        decode_source("\ud800" * 3, file=None, max_bytes=8)


def test_decode_source_reports_invalid_utf8_where_it_is() -> None:
    with pytest.raises(SpecError) as caught:
        decode_source(b"a: 1\nb: \xff\n", file="bad.yaml", max_bytes=100)
    (problem,) = caught.value.problems
    assert (problem.file, problem.line, problem.column) == ("bad.yaml", 2, 4)
    assert problem.message == "spec is not valid UTF-8: invalid start byte at byte 8"


def test_decode_source_reports_invalid_utf16() -> None:
    with pytest.raises(SpecError) as caught:
        decode_source(codecs.BOM_UTF16_LE + b"a\x00b", file=None, max_bytes=100)
    (problem,) = caught.value.problems
    assert problem.message.startswith("spec is not valid UTF-16: truncated data")
    assert (problem.line, problem.column) == (1, 5)
