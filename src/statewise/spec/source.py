"""What a spec reader hands back: plain data, plus a way to find where a value came from.

Readers turn text into plain Python values (``dict`` with ``str`` keys, ``list``,
``str``, ``int``, ``float``, ``bool``, ``None``) wrapped in a :class:`Document`.
Positions are needed only when something is wrong, so a document keeps just enough
to work them out later (the text and a way to scan it) and does that on the first
:meth:`Document.locate`; a valid spec never pays for a position map.

Paths address values inside the data: a ``str`` part is a mapping key, an ``int``
part a sequence index. Lines and columns are 1-based.
"""

from __future__ import annotations

import codecs
import re
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from statewise.errors import Problem, SpecError, format_path

__all__ = [
    "DEFAULT_MAX_BYTES",
    "Document",
    "LineIndex",
    "Location",
    "Locator",
    "Path",
    "PathPart",
    "check_size",
    "decode_source",
    "format_path",
]

PathPart = str | int
Path = tuple[PathPart, ...]

DEFAULT_MAX_BYTES = 16 * 1024 * 1024
"""Largest spec text, in UTF-8 bytes, that a reader agrees to parse."""


# Checked longest first: the UTF-32 LE mark starts with the UTF-16 LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


@dataclass(frozen=True, slots=True)
class Location:
    """A 1-based position in a spec file (``file`` is ``None`` for unnamed text)."""

    file: str | None
    line: int
    column: int


class Locator(Protocol):
    """Finds positions in one text; built by a reader only when first needed."""

    def find(self, path: Path, key: bool) -> tuple[int, int] | None:
        """``(line, column)`` of the value at ``path`` (of its key with ``key``).

        When the path does not fully exist, the position of the deepest prefix that
        does; ``None`` only when nothing at all is known.
        """
        ...  # pragma: no cover - protocol


class Document:
    """Plain data read from a spec, and the means to locate any path in its text.

    ``data`` is what the reader produced. Values reached through YAML aliases are
    shared objects, not copies: treat the data as read-only.
    """

    __slots__ = ("_locator", "_make_locator", "data", "file")

    def __init__(
        self,
        data: Any,
        *,
        file: str | None = None,
        locator: Callable[[], Locator] | None = None,
    ) -> None:
        self.data = data
        self.file = file
        # The factory, not the locator: scanning the text waits for the first locate().
        self._make_locator = locator
        self._locator: Locator | None = None

    @classmethod
    def from_data(cls, data: Any, *, file: str | None = None) -> Document:
        """A document for data that did not come from text: ``locate`` returns ``None``."""
        return cls(data, file=file)

    def detached(self) -> Document:
        """The same text and positions without the data: what a loaded machine keeps
        to locate problems found later (unbound guards, analysis findings)."""
        return Document(None, file=self.file, locator=self._make_locator)

    def __repr__(self) -> str:
        return f"Document(file={self.file!r}, data={type(self.data).__name__})"

    def locate(self, path: Path, *, key: bool = False) -> Location | None:
        """Where the value at ``path`` is written, or with ``key`` where its key is.

        ``key`` only matters when the path ends in a mapping key; for a path that does
        not fully exist (a missing required key, say) the answer is the position of
        the deepest value that does exist. ``None`` when the document has no text.
        """
        if self._make_locator is None:
            return None
        if self._locator is None:
            self._locator = self._make_locator()
        found = self._locator.find(path, key)
        if found is None:
            return None
        return Location(self.file, found[0], found[1])

    def problem(
        self,
        path: Path,
        message: str,
        *,
        key: bool = False,
        expected: str | None = None,
        got: str | None = None,
    ) -> Problem:
        """A :class:`Problem` about the value at ``path``, positioned by :meth:`locate`."""
        where = self.locate(path, key=key)
        return Problem(
            path=format_path(path),
            message=message,
            file=self.file,
            line=where.line if where else None,
            column=where.column if where else None,
            expected=expected,
            got=got,
        )


class LineIndex:
    """Turns character offsets in a text into 1-based ``(line, column)`` pairs.

    ``breaks`` says what ends a line; a two-character break such as ``\\r\\n`` must
    come first in the pattern so that it counts once.
    """

    __slots__ = ("_starts",)

    def __init__(self, text: str, breaks: re.Pattern[str]) -> None:
        self._starts = [0, *(m.end() for m in breaks.finditer(text))]

    def position(self, offset: int) -> tuple[int, int]:
        """The line and column of the character at ``offset``."""
        line = bisect_right(self._starts, offset)
        return line, offset - self._starts[line - 1] + 1


def decode_source(text: str | bytes, *, file: str | None, max_bytes: int) -> str:
    """The spec as ``str``, refusing text over ``max_bytes`` UTF-8 bytes before any parsing.

    Bytes are UTF-8 unless they start with a UTF-16 or UTF-32 byte-order mark. A
    leading byte-order mark is dropped, so columns on line 1 match what an editor
    shows. Raises :class:`SpecError` (one problem at line 1, column 1) for oversized
    text and for bytes that do not decode.
    """
    if isinstance(text, bytes):
        check_size(len(text), file=file, max_bytes=max_bytes)
        return _decode_bytes(text, file)
    # Every character is at least one UTF-8 byte and at most four: encode only when
    # the length alone cannot settle it.
    if len(text) > max_bytes // 4:
        check_size(len(text.encode("utf-8", "surrogatepass")), file=file, max_bytes=max_bytes)
    return text.removeprefix("\ufeff")


def check_size(size: int, *, file: str | None, max_bytes: int) -> None:
    """Raise :class:`SpecError` when a spec of ``size`` bytes is over ``max_bytes``."""
    if size > max_bytes:
        raise SpecError(
            [
                Problem(
                    path="",
                    message=f"spec is {size:,} bytes, over the limit of {max_bytes:,} bytes",
                    file=file,
                    line=1,
                    column=1,
                    expected=f"at most {max_bytes:,} bytes",
                    got=f"{size:,} bytes",
                )
            ]
        )


def _decode_bytes(data: bytes, file: str | None) -> str:
    encoding = next((name for bom, name in _BOMS if data.startswith(bom)), "utf-8-sig")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SpecError(
            [
                Problem(
                    path="",
                    message=f"spec is not valid {encoding.removesuffix('-sig').upper()}: "
                    f"{exc.reason} at byte {exc.start}",
                    file=file,
                    line=line,
                    column=column,
                )
            ]
        ) from None
