"""statewise.testing: replaying events, readable failures, paths as pytest cases."""

from __future__ import annotations

import subprocess
import sys

import pytest

from statewise import Event, StateMachine
from statewise.analysis import Path, Step, shortest_paths
from statewise.testing import assert_ends_in, path_cases, run_events
from tests.conftest import spec

TICKETS = StateMachine.from_dict(
    spec(
        [
            {"name": "NEW", "type": "initial", "timeout": {"seconds": 60, "destination": "STALE"}},
            {"name": "OPEN"},
            {"name": "STALE"},
            {"name": "CLOSED", "type": "terminal"},
        ],
        [
            {"trigger": "open", "source": ["NEW", "STALE"], "dest": "OPEN"},
            {"trigger": "comment", "source": "OPEN"},
            {"trigger": "close", "source": "*", "dest": "CLOSED"},
        ],
    )
)


@pytest.mark.parametrize("path", path_cases(TICKETS))
def test_every_ticket_path_ends_where_it_says(path: Path) -> None:
    results = assert_ends_in(TICKETS, path, path.end)
    assert len(results) == len(path.steps)


def test_path_cases_ids_and_values() -> None:
    cases = path_cases(TICKETS)
    assert [c.id for c in cases] == [
        "open.comment.close->CLOSED",
        "close->CLOSED",
        "timeout.open->OPEN",
        "timeout.close->CLOSED",
    ]
    assert all(isinstance(c.values[0], Path) for c in cases)
    mine = path_cases(TICKETS, shortest_paths(TICKETS).values())
    assert [c.id for c in mine] == ["start->NEW", "open->OPEN", "close->CLOSED", "timeout->STALE"]


def test_importing_the_module_does_not_import_pytest() -> None:
    code = "import sys, statewise.testing; print('pytest' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_run_events_goes_on_from_each_target(order_machine: StateMachine) -> None:
    events: list[str | Event] = [
        "order_acknowledged",
        Event("execution_report", {"fill_qty": 4}),
        "order_rejected",  # refused: the state stays PARTIALLY_FILLED
        Event("execution_report", {"fill_qty": 10}),
    ]
    results = run_events(order_machine, events, context={"order_qty": 10})
    assert [(r.success, r.target_state) for r in results] == [
        (True, "OPEN"),
        (True, "PARTIALLY_FILLED"),
        (False, "PARTIALLY_FILLED"),
        (True, "FILLED"),
    ]
    later = run_events(order_machine, ["cancel_requested"], state="OPEN")
    assert [r.target_state for r in later] == ["CANCELED"]


@pytest.mark.parametrize(
    ("state", "success", "target", "error"),
    [
        ("NEW", True, "STALE", None),
        ("OPEN", False, "OPEN", "invalid_transition"),
        ("CLOSED", False, "CLOSED", "terminal_state"),
    ],
)
def test_timeout_steps_fire_the_timeout(
    state: str, success: bool, target: str, error: str | None
) -> None:
    (result,) = run_events(TICKETS, [Step(state, "timeout", "STALE", None)], state=state)
    assert (result.success, result.target_state, result.trigger) == (success, target, "timeout")
    assert (result.error.code if result.error else None) == error


def test_a_path_that_goes_elsewhere_says_where(order_machine: StateMachine) -> None:
    path = shortest_paths(order_machine)["FILLED"]
    with pytest.raises(AssertionError) as partial:
        assert_ends_in(order_machine, path, "FILLED", context={"order_qty": 10, "fill_qty": 5})
    assert str(partial.value) == (
        "events from 'PENDING_NEW' ended in 'PARTIALLY_FILLED', expected 'FILLED':\n"
        "  1. PENDING_NEW --order_acknowledged--> OPEN\n"
        "  2. OPEN --execution_report--> PARTIALLY_FILLED"
        "   <- the path expects --execution_report--> FILLED (assuming is_full_fill)"
    )
    with pytest.raises(AssertionError) as refused:
        assert_ends_in(order_machine, path, "FILLED", context={"order_qty": 10, "fill_qty": 0})
    assert str(refused.value).splitlines()[2] == (
        "  2. OPEN --execution_report--> refused (guard_rejected): 'execution_report' in "
        "state 'OPEN' rejected by guard(s): is_full_fill, is_partial_fill"
        "   <- the path expects --execution_report--> FILLED (assuming is_full_fill)"
    )


def test_failures_with_plain_events() -> None:
    lenient = StateMachine.from_dict(
        spec(
            [{"name": "A", "type": "initial"}, {"name": "B"}],
            [{"trigger": "go", "source": "A", "dest": "B"}],
            strict_mode=False,
        )
    )
    with pytest.raises(AssertionError) as ignored:
        assert_ends_in(lenient, ["stay", "go"], "A")
    assert str(ignored.value) == (
        "events from 'A' ended in 'B', expected 'A':\n"
        "  1. A --stay--> ignored (no transition; non-strict mode)\n"
        "  2. A --go--> B"
    )
    with pytest.raises(AssertionError) as nothing:
        assert_ends_in(lenient, [], "B")
    assert str(nothing.value) == "events from 'A' ended in 'A', expected 'B':\n  (no events)"
    assert assert_ends_in(lenient, iter(["go"]), "B", state="A")[0].target_state == "B"


def test_a_path_replayed_from_the_wrong_state() -> None:
    path = shortest_paths(TICKETS)["OPEN"]
    with pytest.raises(AssertionError) as wrong:
        assert_ends_in(TICKETS, path, "OPEN", state="CLOSED")
    assert str(wrong.value) == (
        "events from 'CLOSED' ended in 'CLOSED', expected 'OPEN':\n"
        "  1. CLOSED --open--> refused (terminal_state): state 'CLOSED' is terminal; "
        "'open' not allowed   <- the path expects --open--> OPEN"
    )
