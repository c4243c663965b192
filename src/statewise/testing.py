"""Helpers for model-based tests: replay event sequences, and turn the paths analysis
finds into pytest cases.

    from statewise.testing import assert_ends_in, path_cases

    @pytest.mark.parametrize("path", path_cases(machine))
    def test_every_transition(path):
        assert_ends_in(machine, path, path.end, context=context_for(path))

A sequence of events is any iterable of trigger names, :class:`~statewise.Event` s and
:class:`~statewise.analysis.paths.Step` s, or a whole
:class:`~statewise.analysis.paths.Path`. A step replays its own edge: an event with its
trigger (no payload), or, for a timeout step, the state's timeout
(``machine.timeout_result``).
A plain ``"timeout"`` string is an ordinary trigger, as ``process`` sees it.

pytest is imported only by :func:`path_cases`: importing this module never needs it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from statewise.analysis.paths import Path, Step, transition_cover
from statewise.engine.machine import Machine
from statewise.errors import InvalidTransitionError, TerminalStateError
from statewise.model.definition import TIMEOUT_TRIGGER
from statewise.model.event import Event
from statewise.model.result import Decision, TransitionResult, make_result

__all__ = ["assert_ends_in", "path_cases", "run_events"]

Events = Path | Iterable[str | Event | Step]


def path_cases(machine: Machine, paths: Iterable[Path] | None = None) -> list[Any]:
    """``pytest.param(path, id=...)`` for each of ``paths`` (by default
    :func:`~statewise.analysis.paths.transition_cover`: every transition that can fire,
    at least once). The id is the triggers and where the path ends:
    ``order_acknowledged.execution_report->FILLED``."""
    import pytest

    chosen = transition_cover(machine) if paths is None else list(paths)
    return [pytest.param(p, id=f"{'.'.join(p.triggers) or 'start'}->{p.end}") for p in chosen]


def run_events(
    machine: Machine,
    events: Events,
    *,
    state: str | None = None,
    context: object = None,
) -> list[TransitionResult]:
    """Decide ``events`` one after the other from ``state`` (default: the initial state),
    each in the state the previous one left, all with the same ``context``; one result
    per event. A rejected event leaves the state as it was, and the run goes on. A
    timeout step in a state with no timeout gives a failed result
    (``InvalidTransitionError``, or ``TerminalStateError`` in a terminal state)."""
    current = machine.initial_state.name if state is None else state
    results: list[TransitionResult] = []
    for item in _items(events):
        result = _decide(machine, current, item, context)
        results.append(result)
        current = result.target_state
    return results


def assert_ends_in(
    machine: Machine,
    events: Events,
    expected_state: str,
    *,
    state: str | None = None,
    context: object = None,
) -> list[TransitionResult]:
    """Run ``events`` (see :func:`run_events`) and return the results; raise
    ``AssertionError`` when the run does not end in ``expected_state``. The message
    shows every step (``state --trigger--> target``, or why the event was refused),
    marking each step of a :class:`Path` that did not go where the path says."""
    items = _items(events)
    start = machine.initial_state.name if state is None else state
    results = run_events(machine, items, state=start, context=context)
    end = results[-1].target_state if results else start
    if end == expected_state:
        return results
    lines = [f"events from {start!r} ended in {end!r}, expected {expected_state!r}:"]
    if not results:
        lines.append("  (no events)")
    for n, (item, result) in enumerate(zip(items, results, strict=True), 1):
        line = f"  {n}. {_describe(result)}"
        if isinstance(item, Step) and (not result.success or result.target_state != item.dest):
            line += f"   <- the path expects --{item.trigger}--> {item.dest}"
            if item.assumptions:
                line += f" (assuming {', '.join(item.assumptions)})"
        lines.append(line)
    raise AssertionError("\n".join(lines))


def _items(events: Events) -> Sequence[str | Event | Step]:
    if isinstance(events, Path):
        return events.steps
    return list(events)


def _decide(
    machine: Machine, state: str, item: str | Event | Step, context: object
) -> TransitionResult:
    if not isinstance(item, Step):
        return machine.process(state, item, context)
    if not item.timeout:
        return machine.process(state, item.trigger, context)
    result = machine.timeout_result(state)
    if result is not None:
        return result
    code = (TerminalStateError if machine.is_terminal(state) else InvalidTransitionError).code
    return make_result(Decision.rejected(state, TIMEOUT_TRIGGER, code), Event(TIMEOUT_TRIGGER))


def _describe(result: TransitionResult) -> str:
    head = f"{result.source_state} --{result.trigger}-->"
    if result.error is not None:
        return f"{head} refused ({result.error.code}): {result.error}"
    if result.ignored:
        return f"{head} ignored (no transition; non-strict mode)"
    return f"{head} {result.target_state}"
