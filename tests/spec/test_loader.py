"""Loading specs: every invalid fixture reports exactly the problems its header names.

Each YAML file in ``tests/fixtures/invalid`` ends with ``# expect: LINE:COL PATH: MESSAGE``
comment lines (at the end, so they do not move the positions they describe; ``-`` is the
empty path); a JSON file, which has no comments, has them in ``NAME.json.expect``. Every
problem must be expected and every expectation met, in order.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from statewise import Event, SpecError, StateMachine
from tests.conftest import ORDER_SPEC, spec

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "invalid"
EXPECT = re.compile(r"^# expect: (\d+):(\d+) (\S*): (.*)$")
ENV = {"UNRELATED": "1"}


def expectations(path: Path) -> list[tuple[int, int, str, str]]:
    found = []
    source = path.with_name(path.name + ".expect") if path.suffix == ".json" else path
    for line in source.read_text().splitlines():
        m = EXPECT.match(line)
        if m:
            where = "" if m[3] == "-" else m[3]
            found.append((int(m[1]), int(m[2]), where, m[4]))
    return found


CASES = sorted(
    p
    for p in FIXTURES.iterdir()
    if p.suffix in {".yaml", ".json"} and p.name != "billion_laughs.yaml"
)


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.name)
def test_invalid_fixture_reports_exact_locations(path: Path) -> None:
    expected = expectations(path)
    assert expected, f"{path.name} has no '# expect:' header"
    with pytest.raises(SpecError) as info:
        StateMachine.from_file(path, env=ENV)
    got = [(p.line, p.column, p.path, p.message) for p in info.value.problems]
    assert got == expected
    assert all(p.file == str(path) for p in info.value.problems)


def test_billion_laughs_is_rejected_quickly() -> None:
    start = time.perf_counter()
    with pytest.raises(SpecError, match="alias"):
        StateMachine.from_yaml(FIXTURES / "billion_laughs.yaml")
    assert time.perf_counter() - start < 5  # generous: the point is "not exponential"


def test_order_spec_loads_from_yaml_json_string_and_dict() -> None:
    from_yaml = StateMachine.from_yaml(ORDER_SPEC)
    data = yaml.safe_load(ORDER_SPEC.read_text())
    assert StateMachine.from_dict(data) == from_yaml
    assert StateMachine.from_string(json.dumps(data), "json") == from_yaml
    assert StateMachine.from_string(ORDER_SPEC.read_text()) == from_yaml


def test_from_json_file(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text(json.dumps(spec([{"name": "A", "type": "initial"}])))
    assert StateMachine.from_json(path).state_names == ("A",)
    assert StateMachine.from_file(path).state_names == ("A",)


def test_yaml_12_booleans_stay_names() -> None:
    text = """
meta: {machine_name: switch}
states:
  - {name: off, type: initial}
  - {name: on}
transitions:
  - {trigger: yes, source: off, dest: on}
  - {trigger: no, source: on, dest: off}
"""
    m = StateMachine.from_string(text)
    assert m.state_names == ("off", "on") and m.trigger_names == ("yes", "no")
    assert m.process("off", "yes").target_state == "on"


def test_env_substitution() -> None:
    text = """
meta:
  machine_name: ${NAME}
  version: "${VERSION:-0.0.1}"
  description: "costs $${PRICE}"
states:
  - {name: A, type: initial}
"""
    m = StateMachine.from_string(text, env={"NAME": "from_env"})
    assert (m.name, m.version, m.definition.description) == ("from_env", "0.0.1", "costs ${PRICE}")


def test_from_dict_never_mutates_and_reports_paths_without_lines() -> None:
    data: dict[str, Any] = spec(
        [{"name": "A", "type": "initial"}], [{"trigger": "go", "source": "A", "dest": "B"}]
    )
    snapshot = json.dumps(data)
    with pytest.raises(SpecError) as info:
        StateMachine.from_dict(data)
    assert json.dumps(data) == snapshot
    [problem] = info.value.problems
    assert (problem.path, problem.line, problem.file) == ("transitions[0].dest", None, None)
    assert problem.expected == "a defined state name" and problem.got == "'B'"


def test_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("meta: {machine_name: x}\n" + "# padding\n" * 100)
    with pytest.raises(SpecError, match="over the limit of 100 bytes"):
        StateMachine.from_yaml(path, max_bytes=100)
    with pytest.raises(SpecError):
        StateMachine.from_string("x" * 101, max_bytes=100)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read the spec") as info:
        StateMachine.from_yaml(tmp_path / "missing.yaml")
    assert info.value.problems[0].file == str(tmp_path / "missing.yaml")


def test_bad_format_name() -> None:
    with pytest.raises(ValueError, match="format must be"):
        StateMachine.from_string("{}", "toml")  # type: ignore[arg-type]


def test_definition_built_in_code_is_checked() -> None:
    from statewise import MachineDefinition, State, StateType, Transition

    good = MachineDefinition(
        "m", (State("A", StateType.INITIAL), State("B")), (Transition("go", ("A",), "B"),)
    )
    assert StateMachine.from_definition(good).process("A", "go").target_state == "B"
    bad = MachineDefinition("m", (State("A"),), (Transition("go", ("A",), "Z"),))
    with pytest.raises(SpecError) as info:
        StateMachine.from_definition(bad)
    assert [p.path for p in info.value.problems] == ["states", "transitions[0].dest"]


def test_problems_carry_expected_and_got() -> None:
    with pytest.raises(SpecError) as info:
        StateMachine.from_yaml(FIXTURES / "bad_dest.yaml")
    [p] = info.value.problems
    assert (p.expected, p.got) == ("a defined state name", "'OPNE'")
    assert str(p).startswith(f"{FIXTURES / 'bad_dest.yaml'}:9:11: transitions[0].dest: ")


def test_loaded_machine_processes_events() -> None:
    m = StateMachine.from_yaml(ORDER_SPEC)
    assert m.process("PENDING_NEW", Event("order_acknowledged", id="1")).target_state == "OPEN"


BASE_STATES: list[dict[str, Any]] = [
    {"name": "A", "type": "initial"},
    {"name": "B"},
    {"name": "DONE", "type": "terminal"},
]

# (states, transitions, [(path, message start)]) for specs given as dicts (no lines).
DICT_CASES = [
    pytest.param(
        BASE_STATES,
        [{"trigger": "go", "source": "DONE", "dest": "A"}],
        [("transitions[0].source", "source 'DONE' is a terminal state")],
        id="single-string-source-path-fits-the-document",
    ),
    pytest.param(
        BASE_STATES,
        [{"trigger": "go", "source": ["A", "Q"], "dest": "B"}],
        [("transitions[0].source[1]", "source 'Q' is not a defined state")],
        id="unknown-source",
    ),
    pytest.param(
        BASE_STATES,
        [{"trigger": "go", "source": ["A", "B", "A"], "dest": "B"}],
        [("transitions[0].source[2]", "source 'A' is listed twice")],
        id="duplicate-source",
    ),
    pytest.param(
        [*BASE_STATES, {"name": "bad name"}],
        [{"trigger": "go", "source": "A", "dest": "bad_name"}],
        [("states[3].name", "expected an identifier")],
        id="no-unknown-state-guess-when-a-state-was-unreadable",
    ),
    pytest.param(
        [{"name": "A", "type": "initial", "timeout": {"seconds": "5", "destination": "A"}}],
        [],
        [("states[0].timeout.seconds", "expected a number")],
        id="bad-timeout-seconds",
    ),
    pytest.param("not a list", [], [("states", "expected an array")], id="states-not-a-list"),
    pytest.param(
        [5, {"name": "A", "type": "initial"}],
        [],
        [("states[0]", "expected an object")],
        id="state-not-a-mapping",
    ),
    pytest.param(
        BASE_STATES,
        [7, {"trigger": "go", "source": 3}],
        [
            ("transitions[0]", "expected an object"),
            ("transitions[1].source", "expected an identifier"),
        ],
        id="transitions-malformed",
    ),
]


@pytest.mark.parametrize(("states", "transitions", "expected"), DICT_CASES)
def test_dict_spec_problems(
    states: Any, transitions: list[Any], expected: list[tuple[str, str]]
) -> None:
    data = {"meta": {"machine_name": "t"}, "states": states, "transitions": transitions}
    with pytest.raises(SpecError) as info:
        StateMachine.from_dict(data)
    got = [(p.path, p.message) for p in info.value.problems]
    assert [path for path, _ in got] == [path for path, _ in expected]
    for (_, message), (_, start) in zip(got, expected, strict=True):
        assert message.startswith(start), message


def test_schema_file_at_top_level_is_the_packaged_one() -> None:
    from jsonschema import Draft202012Validator

    from statewise.spec.schema import load_machine_schema

    top = json.loads(
        (Path(__file__).resolve().parents[2] / "schemas" / "machine.schema.json").read_text()
    )
    assert top == load_machine_schema()
    Draft202012Validator.check_schema(top)
