"""Renamed states: ``migrate:`` and ``renamed_from`` let stored old names keep working."""

from __future__ import annotations

import pytest

from statewise import SpecError, StateMachine, UndefinedStateError

SPEC = """\
meta: {machine_name: tickets, version: "2"}
states:
  - {name: NEW, type: initial}
  - {name: IN_PROGRESS, renamed_from: [WORKING, ACTIVE]}
  - {name: DONE, type: terminal, timeout: null}
  - name: WAITING
    timeout: {seconds: 60, destination: DONE}
transitions:
  - {trigger: start, source: NEW, dest: IN_PROGRESS}
  - {trigger: wait, source: IN_PROGRESS, dest: WAITING}
  - {trigger: finish, source: [IN_PROGRESS, WAITING], dest: DONE}
migrate:
  PAUSED: WAITING
  CLOSED: DONE
error_policy: {default_fallback: NEW}
"""


@pytest.fixture(scope="module")
def machine() -> StateMachine:
    return StateMachine.from_string(SPEC.replace("timeout: null", "description: closed"))


@pytest.mark.parametrize(
    ("stored", "now"),
    [("WORKING", "IN_PROGRESS"), ("ACTIVE", "IN_PROGRESS"), ("PAUSED", "WAITING"), ("NEW", "NEW")],
)
def test_old_names_resolve(machine: StateMachine, stored: str, now: str) -> None:
    assert machine.resolve_state(stored) == now


def test_process_accepts_old_names(machine: StateMachine) -> None:
    r = machine.process("WORKING", "finish")
    assert (r.success, r.source_state, r.target_state) == (True, "IN_PROGRESS", "DONE")
    assert machine.process("WORKING", "finish") == r  # memoized under the old name too
    terminal = machine.process("CLOSED", "finish")
    assert terminal.error is not None and terminal.error.code == "terminal_state"
    assert terminal.source_state == "DONE"
    with pytest.raises(UndefinedStateError, match="undefined state 'GONE'"):
        machine.process("GONE", "finish")


def test_timeouts_and_fallbacks_accept_old_names(machine: StateMachine) -> None:
    timed = machine.timeout_result("PAUSED")
    assert timed is not None and (timed.source_state, timed.target_state) == ("WAITING", "DONE")
    assert machine.fail("ACTIVE", "boom").source_state == "IN_PROGRESS"


def test_aliases_and_round_trip(machine: StateMachine) -> None:
    assert machine.definition.aliases == {
        "PAUSED": "WAITING",
        "CLOSED": "DONE",
        "WORKING": "IN_PROGRESS",
        "ACTIVE": "IN_PROGRESS",
    }
    exported = machine.to_dict()
    assert exported["migrate"] == {"PAUSED": "WAITING", "CLOSED": "DONE"}
    assert exported["states"][1]["renamed_from"] == ["WORKING", "ACTIVE"]
    assert StateMachine.from_dict(exported) == machine


BAD = """\
meta: {machine_name: tickets}
states:
  - {name: NEW, type: initial}
  - {name: OPEN, renamed_from: [NEW, OLD]}
  - {name: SHUT, renamed_from: OLD}
migrate:
  OPEN: SHUT
  ANCIENT: NOWHERE
  9bad: OPEN
"""


def test_bad_aliases_are_located() -> None:
    with pytest.raises(SpecError) as info:
        StateMachine.from_string(BAD, file="b.yaml")
    got = [(p.line, p.column, p.path, p.message) for p in info.value.problems]
    assert got == [
        (
            4,
            33,
            "states[1].renamed_from[0]",
            "'NEW' is a state of this version: it cannot also be an old name",
        ),
        (
            5,
            32,
            "states[2].renamed_from",
            "old state 'OLD' is mapped to 'SHUT' here and to 'OPEN' at states[1].renamed_from[1]",
        ),
        (7, 9, "migrate.OPEN", "'OPEN' is a state of this version: it cannot also be an old name"),
        (8, 12, "migrate.ANCIENT", "migrate target 'NOWHERE' is not a defined state"),
        (9, 3, 'migrate["9bad"]', "old state name '9bad' is not an identifier"),
    ]
