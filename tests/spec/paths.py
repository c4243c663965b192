"""A helper the reader tests share: every path in plain data, with its value."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from statewise.spec.source import Path


def walk_paths(value: Any, path: Path = ()) -> Iterator[tuple[Path, Any]]:
    """``(path, value)`` for ``value`` and everything inside it, depth first."""
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from walk_paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from walk_paths(item, (*path, index))
