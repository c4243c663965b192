"""substitute: ${VAR} references in string values, errors returned with their paths."""

from __future__ import annotations

import copy
import time
from collections import OrderedDict, UserList
from typing import Any

import pytest

from statewise.spec.envsubst import substitute

ENV = {"HOST": "db.local", "PORT": "5432", "EMPTY": "", "DOLLAR": "$HOME", "BRACE": "${HOST}"}
FORMS = "${NAME}, ${NAME:-default} or ${NAME:?message}"


@pytest.mark.parametrize(
    ("text", "result"),
    [
        ("plain", "plain"),
        ("", ""),
        ("${HOST}", "db.local"),
        ("postgres://${HOST}:${PORT}/x", "postgres://db.local:5432/x"),
        ("${EMPTY}", ""),  # set but empty is not an error
        ("[${EMPTY}]", "[]"),
        ("${MISSING:-fallback}", "fallback"),
        ("${EMPTY:-fallback}", "fallback"),
        ("${HOST:-fallback}", "db.local"),
        ("${MISSING:-}", ""),
        ("${MISSING:-a b:c-d}", "a b:c-d"),
        ("${MISSING:-$}", "$"),
        ("${HOST:?needed}", "db.local"),
        ("$${HOST}", "${HOST}"),  # escaped
        ("$${", "${"),
        ("a $$${HOST}", "a $${HOST}"),  # leftmost first: "$", then the escape
        ("$HOST", "$HOST"),  # only the braced form is a reference
        ("cost: $5", "cost: $5"),
        ("$$", "$$"),
        ("$", "$"),
        ("${DOLLAR}", "$HOME"),
        ("${BRACE}", "${HOST}"),  # values are not substituted again
        ("${_x1:-ok}", "ok"),
    ],
)
def test_string_substitutions(text: str, result: str) -> None:
    data = {"v": text}
    assert substitute(data, ENV) == ({"v": result}, [])


@pytest.mark.parametrize(
    ("text", "message", "expected", "got"),
    [
        (
            "${MISSING}",
            "environment variable MISSING is not set",
            "environment variable MISSING",
            None,
        ),
        (
            "x${MISSING:?set MISSING to the host}",
            "environment variable MISSING is not set or empty: set MISSING to the host",
            "environment variable MISSING",
            None,
        ),
        (
            "${EMPTY:?}",
            "environment variable EMPTY is not set or empty",
            "environment variable EMPTY",
            "",
        ),
        ("${1BAD}", "malformed reference '${1BAD}'", FORMS, "${1BAD}"),
        ("${}", "malformed reference '${}'", FORMS, "${}"),
        ("${HOST-x}", "malformed reference '${HOST-x}'", FORMS, "${HOST-x}"),
        ("${A B}", "malformed reference '${A B}'", FORMS, "${A B}"),
        ("x ${HOST", "unterminated '${' in 'x ${HOST'", FORMS, "${HOST"),
    ],
)
def test_string_errors(text: str, message: str, expected: str, got: str | None) -> None:
    data = {"v": text}
    result, errors = substitute(data, ENV)
    assert errors == [(("v",), message, expected, got)]
    assert result == data  # a string with an error is kept as it was


def test_all_errors_in_one_string_are_returned() -> None:
    _, errors = substitute({"v": "${A}-${HOST}-${B}"}, ENV)
    assert [e[1] for e in errors] == [
        "environment variable A is not set",
        "environment variable B is not set",
    ]


def test_errors_carry_the_path_of_their_string() -> None:
    data = {
        "meta": {"machine_name": "${NAME}"},
        "states": [{"name": "a"}, {"name": "b", "metadata": {"tags": ["x", "${TAG}"]}}],
    }
    _, errors = substitute(data, ENV)
    assert [e[0] for e in errors] == [
        ("meta", "machine_name"),
        ("states", 1, "metadata", "tags", 1),
    ]


def test_keys_and_non_strings_are_left_alone() -> None:
    data = {"${HOST}": "${HOST}", "n": 1, "f": 1.5, "b": True, "z": None, "l": [2, None]}
    result, errors = substitute(data, ENV)
    assert errors == []
    assert result == {"${HOST}": "db.local", "n": 1, "f": 1.5, "b": True, "z": None, "l": [2, None]}


def test_top_level_strings_and_scalars() -> None:
    assert substitute("${HOST}", ENV) == ("db.local", [])
    assert substitute("${NOPE}", ENV) == (
        "${NOPE}",
        [((), "environment variable NOPE is not set", "environment variable NOPE", None)],
    )
    assert substitute("plain", ENV) == ("plain", [])
    assert substitute(None, ENV) == (None, [])
    assert substitute(3, ENV) == (3, [])


def test_nothing_to_substitute_returns_the_very_same_objects() -> None:
    data: dict[str, Any] = {
        "a": ["x", "cost $5", {"b": "$${literal}"}],
        "c": {"d": [1, 2]},
        "e": "$",
    }
    snapshot = copy.deepcopy(data)
    result, errors = substitute(data, ENV)
    assert errors == []
    assert result["c"] is data["c"]
    assert result["e"] is data["e"]
    # "$${literal}" changes (the escape is resolved), so only its own path is copied.
    assert result is not data
    assert result["a"] is not data["a"]
    assert result["a"][2] == {"b": "${literal}"}
    assert data == snapshot


def test_unchanged_input_is_returned_as_is() -> None:
    data = {"a": ["x", "cost $5", {"b": "$", "c": "$$"}], "d": {"e": [1, "y"]}}
    result, errors = substitute(data, ENV)
    assert result is data
    assert errors == []


def test_input_is_never_mutated() -> None:
    data = {"a": ["${HOST}", {"b": "${PORT}"}], "c": "${MISSING}", "d": {"e": "keep"}}
    snapshot = copy.deepcopy(data)
    result, _ = substitute(data, ENV)
    assert data == snapshot
    assert result == {"a": ["db.local", {"b": "5432"}], "c": "${MISSING}", "d": {"e": "keep"}}
    assert result["d"] is data["d"]  # untouched branches are shared, not copied


class _Text(str):
    __slots__ = ()


def test_subclasses_of_the_plain_types_are_walked_too() -> None:
    data = {"a": OrderedDict(h="${HOST}"), "b": UserList(), "c": [_Text("${PORT}")], "d": 1.5}
    result, errors = substitute(data, ENV)
    assert errors == []
    assert result == {"a": {"h": "db.local"}, "b": UserList(), "c": ["5432"], "d": 1.5}
    assert substitute([_Text("no dollar"), OrderedDict(x=[1])], ENV)[0] == ["no dollar", {"x": [1]}]


def test_shared_subtrees_are_substituted_everywhere() -> None:
    shared = {"host": "${HOST}"}
    result, _ = substitute({"a": shared, "b": shared}, ENV)
    assert result == {"a": {"host": "db.local"}, "b": {"host": "db.local"}}
    assert shared == {"host": "${HOST}"}


def test_no_op_on_a_large_spec_is_cheap() -> None:
    states = [
        {
            "name": f"S{i:05d}",
            "type": "stable",
            "on_enter": [f"enter_{i % 7}"],
            "metadata": {"n": i},
        }
        for i in range(10_000)
    ]
    transitions = [
        {"trigger": f"ev_{i % 8}", "source": f"S{i:05d}", "dest": "S00000", "actions": ["act"]}
        for i in range(30_000)
    ]
    data = {"meta": {"machine_name": "big"}, "states": states, "transitions": transitions}
    started = time.perf_counter()
    result, errors = substitute(data, ENV)
    elapsed = time.perf_counter() - started
    assert result is data
    assert errors == []
    assert elapsed < 2.0  # generous for slow machines; about 50 ms measured
