"""Static checks: each code on a spec that must raise it and one that must not, with
locations, messages and counterexamples asserted exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from statewise import ActionRegistry, GuardRegistry, StateMachine
from statewise.analysis import CODES, Finding, Severity, analyze
from tests.conftest import ORDER_SPEC, spec

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "analysis"


def load(text: str) -> StateMachine:
    return StateMachine.from_string(text, file="spec.yaml")


def found(machine: StateMachine, code: str, **registries: Any) -> list[tuple[Any, ...]]:
    """(line:col, message, counterexample, states, transitions) of each ``code`` finding."""
    return [
        (f"{f.line}:{f.column}", f.message, f.counterexample, f.states, f.transitions)
        for f in analyze(machine, **registries)
        if f.code == code
    ]


# -- unreachable-state -----------------------------------------------------------------

UNREACHABLE = """\
meta: {machine_name: t}
states:
  - {name: A, type: initial}
  - {name: B}
  - {name: C}
  - {name: D, type: terminal}
  - {name: E, type: terminal}
transitions:
  - {trigger: go, source: A, dest: B}
  - {trigger: go, source: A, dest: C}
  - {trigger: done, source: [B, C], dest: D}
"""

ALL_REACHABLE = """\
meta: {machine_name: t}
states:
  - {name: A, type: initial, timeout: {seconds: 1, destination: C}}
  - {name: B}
  - {name: C}
  - {name: D, type: terminal}
transitions:
  - {trigger: go, source: A, dest: B, guards: [maybe]}
  - {trigger: done, source: [B, C], dest: D}
"""


def test_unreachable_states_are_reported_where_they_are_named() -> None:
    # C's only way in comes after an unguarded candidate for the same trigger: it
    # never fires, so C is unreachable; E has no way in at all.
    assert found(load(UNREACHABLE), "unreachable-state") == [
        ("5:12", "state 'C' cannot be reached from the initial state 'A'", None, ("C",), ()),
        ("7:12", "state 'E' cannot be reached from the initial state 'A'", None, ("E",), ()),
    ]


def test_guards_and_timeouts_reach_states() -> None:
    assert found(load(ALL_REACHABLE), "unreachable-state") == []


def test_the_error_fallback_reaches_its_state() -> None:
    states = [
        {"name": "A", "type": "initial"},
        {"name": "ERR", "type": "error"},
        {"name": "Z", "type": "terminal"},
    ]
    transitions = [{"trigger": "go", "source": "A", "dest": "Z"}]
    with_fallback = spec(states, transitions, strict_mode=True)
    with_fallback["error_policy"] = {"default_fallback": "ERR"}
    assert [f.states for f in analyze(StateMachine.from_dict(with_fallback))] == [("ERR",)]
    # ...where it is a trap, and the fallback is the counterexample's last step.
    (trap,) = analyze(StateMachine.from_dict(with_fallback))
    assert (trap.code, trap.counterexample) == ("trap-state", ("error",))
    without = StateMachine.from_dict(spec(states, transitions))
    assert [f.code for f in analyze(without)] == ["trap-state", "unreachable-state"]


# -- trap-state ------------------------------------------------------------------------

TRAPS = """\
meta: {machine_name: t}
states:
  - {name: A, type: initial}
  - {name: B}
  - {name: LOOP1}
  - {name: LOOP2}
  - {name: DEAD}
  - {name: DONE, type: terminal}
  - {name: LOST}
transitions:
  - {trigger: go, source: A, dest: B}
  - {trigger: finish, source: B, dest: DONE}
  - {trigger: spin, source: B, dest: LOOP1}
  - {trigger: spin, source: LOOP1, dest: LOOP2}
  - {trigger: spin, source: LOOP2, dest: LOOP1}
  - {trigger: poke, source: LOOP2}
  - {trigger: drop, source: A, dest: DEAD}
"""


def test_trap_states_with_the_shortest_way_in() -> None:
    machine = load(TRAPS)
    assert found(machine, "trap-state") == [
        (
            "5:12",
            "state 'LOOP1' is a trap: no terminal state can be reached from it",
            ("go", "spin"),
            ("LOOP1",),
            (),
        ),
        (
            "6:12",
            "state 'LOOP2' is a trap: no terminal state can be reached from it",
            ("go", "spin", "spin"),
            ("LOOP2",),
            (),
        ),
        # An internal transition or a self-loop is no way out.
        ("7:12", "state 'DEAD' is a trap: no way out", ("drop",), ("DEAD",), ()),
        ("9:12", "state 'LOST' is a trap: no way out", None, ("LOST",), ()),
    ]
    trap = next(f for f in analyze(machine) if f.code == "trap-state")
    assert str(trap) == (
        "spec.yaml:5:12: error[trap-state]: state 'LOOP1' is a trap: no terminal state "
        "can be reached from it (from the initial state: go -> spin)"
    )


def test_timeouts_are_a_way_out() -> None:
    machine = StateMachine.from_dict(
        spec(
            [
                {"name": "A", "type": "initial", "timeout": {"seconds": 1, "destination": "Z"}},
                {"name": "Z", "type": "terminal"},
            ]
        )
    )
    assert analyze(machine, ignore=["timeout-only"]) == []


@pytest.mark.parametrize(
    ("transitions", "traps"),
    [
        # Cyclic by design: no terminal state, every state has a way on.
        (
            [
                {"trigger": "next", "source": "RED", "dest": "GREEN"},
                {"trigger": "next", "source": "GREEN", "dest": "AMBER"},
                {"trigger": "next", "source": "AMBER", "dest": "RED"},
            ],
            [],
        ),
        # ...but a dead end is still a trap.
        (
            [
                {"trigger": "next", "source": "RED", "dest": "GREEN"},
                {"trigger": "next", "source": "GREEN", "dest": "AMBER"},
                {"trigger": "noop", "source": "AMBER", "dest": "AMBER"},
            ],
            [("states[2]", "state 'AMBER' is a trap: no way out", ("next", "next"))],
        ),
    ],
)
def test_machines_without_terminal_states_report_dead_ends_only(
    transitions: list[dict[str, Any]], traps: list[tuple[Any, ...]]
) -> None:
    states = [{"name": "RED", "type": "initial"}, {"name": "GREEN"}, {"name": "AMBER"}]
    machine = StateMachine.from_dict(spec(states, transitions))
    assert [
        (f.path.removesuffix(".name"), f.message, f.counterexample)
        for f in analyze(machine)
        if f.code == "trap-state"
    ] == traps


# -- shadowed-transition ----------------------------------------------------------------

SHADOWED = """\
meta: {machine_name: t}
states:
  - {name: A, type: initial}
  - {name: B}
  - {name: C}
  - {name: D, type: terminal}
transitions:
  - {trigger: go, source: A, dest: B}
  - trigger: go
    source: [A, B]
    dest: C
    guards: [ok]
  - {trigger: go, source: A, dest: D}
  - {trigger: stop, source: "*", dest: D}
  - {trigger: stop, source: [B, C], dest: A}
"""


def test_shadowed_transitions_name_where_and_by_what() -> None:
    assert found(load(SHADOWED), "shadowed-transition") == [
        (
            "9:5",
            "transitions[1] ('go') can never fire from A: it always loses to transitions[0] "
            "(no guard, declared first)",
            (),
            ("A",),
            (1, 0),
        ),
        (
            "13:5",
            "transitions[2] ('go') can never fire: it always loses to transitions[0] "
            "(no guard, declared first)",
            (),
            ("A",),
            (2, 0),
        ),
        (
            "15:5",
            "transitions[4] ('stop') can never fire: it always loses to transitions[3] "
            "(no guard, declared first)",
            ("go",),
            ("B", "C"),
            (4, 3),
        ),
    ]


def test_guarded_candidates_shadow_nothing() -> None:
    text = SHADOWED.replace("dest: B}", "dest: B, guards: [g]}").replace('"*"', "A")
    assert found(load(text), "shadowed-transition") == []


# -- duplicate-transition ---------------------------------------------------------------

DUPLICATES = """\
meta: {machine_name: t}
states:
  - {name: A, type: initial}
  - {name: B}
  - {name: Z, type: terminal}
transitions:
  - {trigger: pay, source: [A, B], dest: Z, guards: [g1, g2], when: "x > 1"}
  - {trigger: pay, source: B, dest: Z, guards: [g2, g1], when: "x > 1", actions: [log]}
  - {trigger: pay, source: A, dest: Z, guards: [g1], when: "x > 1"}
  - {trigger: pay, source: A, dest: B, guards: [g1, g2], when: "x > 1"}
  - {trigger: pay, source: A, dest: Z, guards: [g1, g2], when: "x > 2"}
  - {trigger: go, source: A, dest: B}
  - {trigger: go, source: B, dest: B}
  - {trigger: go, source: "*", dest: B}
"""


def test_duplicates_name_the_rule_they_repeat() -> None:
    assert found(load(DUPLICATES), "duplicate-transition") == [
        (
            "8:5",
            "transitions[1] ('pay') repeats transitions[0]: same trigger, dest, guards and when",
            ("pay",),
            ("B",),
            (1, 0),
        ),
        (
            "14:5",
            "transitions[7] ('go') repeats transitions[5], transitions[6]: "
            "same trigger, dest, guards and when",
            (),
            ("A", "B"),
            (7, 5, 6),
        ),
    ]


def test_no_overlap_no_duplicate() -> None:
    text = DUPLICATES.replace("source: [A, B], dest: Z", "source: A, dest: Z").replace(
        '{trigger: go, source: "*", dest: B}', "{trigger: go, source: A, dest: Z}"
    )
    assert found(load(text), "duplicate-transition") == []


# -- unused-trigger ---------------------------------------------------------------------

TRIGGERS = """\
meta: {machine_name: t}
states:
  - {name: A, type: initial}
  - {name: Z, type: terminal}
transitions:
  - {trigger: pay, source: A, dest: Z}
triggers:
  pay: {payload_schema: {type: object}}
  pays: {description: a typo}
  refund: {}
"""


def test_unused_triggers_point_at_their_key() -> None:
    assert found(load(TRIGGERS), "unused-trigger") == [
        (
            "9:3",
            "trigger 'pays' is declared under triggers: but no transition uses it "
            "(did you mean 'pay'?)",
            None,
            (),
            (),
        ),
        (
            "10:3",
            "trigger 'refund' is declared under triggers: but no transition uses it",
            None,
            (),
            (),
        ),
    ]
    used = TRIGGERS.replace("  pays: {description: a typo}\n  refund: {}\n", "")
    assert found(load(used), "unused-trigger") == []


# -- timeout-only -----------------------------------------------------------------------

TIMEOUTS = """\
meta: {machine_name: t}
states:
  - name: A
    type: initial
    timeout: {seconds: 5, destination: SLOW}
  - name: SLOW
    timeout: {seconds: 5, destination: SLOWER}
  - {name: SLOWER}
  - {name: Z, type: terminal}
transitions:
  - {trigger: go, source: "*", dest: Z}
"""


def test_states_reached_only_by_timeouts() -> None:
    assert found(load(TIMEOUTS), "timeout-only") == [
        ("6:11", "state 'SLOW' is reached only when a timeout fires", ("timeout",), ("SLOW",), ()),
        (
            "8:12",
            "state 'SLOWER' is reached only when a timeout fires",
            ("timeout", "timeout"),
            ("SLOWER",),
            (),
        ),
    ]
    also_by_event = TIMEOUTS + "  - {trigger: hurry, source: A, dest: SLOW}\n"
    assert [f[2] for f in found(load(also_by_event), "timeout-only")] == [("hurry", "timeout")]
    assert all(f.severity is Severity.INFO for f in analyze(load(TIMEOUTS)))


# -- unknown-guard / unknown-action -----------------------------------------------------

NAMES = """\
meta: {machine_name: t}
states:
  - name: A
    type: initial
    on_exit: [log]
    timeout: {seconds: 1, destination: Z, actions: [alert]}
  - {name: Z, type: terminal, on_enter: [notfy]}
transitions:
  - trigger: pay
    source: A
    dest: Z
    guards: [is_ok, {name: under_limit, params: {limit: 5}}, is_ok]
    actions: [capture, notify]
"""


def registries() -> dict[str, Any]:
    guards = GuardRegistry()
    guards.register("is_okay", lambda ctx: True)
    actions = ActionRegistry()
    actions.register("notify", lambda ctx: None)
    actions.register("log", lambda ctx: None)
    return {"guards": guards, "actions": actions}


def test_unknown_guards_one_finding_per_use() -> None:
    assert found(load(NAMES), "unknown-guard", **registries()) == [
        ("12:14", "guard 'is_ok' is not registered (did you mean 'is_okay'?)", None, (), (0,)),
        ("12:21", "guard 'under_limit' is not registered", None, (), (0,)),
        ("12:62", "guard 'is_ok' is not registered (did you mean 'is_okay'?)", None, (), (0,)),
    ]


def test_unknown_actions_one_finding_per_use() -> None:
    assert found(load(NAMES), "unknown-action", **registries()) == [
        ("6:53", "action 'alert' is not registered", None, (), ()),
        ("7:42", "action 'notfy' is not registered (did you mean 'notify'?)", None, (), ()),
        ("13:15", "action 'capture' is not registered", None, (), (0,)),
    ]


def test_names_are_checked_only_against_a_registry() -> None:
    machine = load(NAMES)
    assert {f.code for f in analyze(machine)} == set()
    assert {f.code for f in analyze(machine, guards=registries()["guards"])} == {"unknown-guard"}


def test_analysis_never_calls_a_guard() -> None:
    def explode(ctx: object) -> bool:
        raise AssertionError("a guard ran")

    def under_limit(ctx: object, *, limit: int) -> bool:
        raise AssertionError("a guard ran")

    guards = GuardRegistry()
    guards.register("is_ok", explode)
    guards.register("under_limit", under_limit)
    machine = StateMachine.from_string(NAMES, guards=guards)
    assert [f.code for f in analyze(machine, guards=guards)] == []


# -- unknown-field ----------------------------------------------------------------------

FIELDS = """\
meta: {machine_name: t}
states:
  - {name: A, type: initial}
  - {name: Z, type: terminal}
transitions:
  - trigger: pay
    source: A
    dest: Z
    when: "amount >= amount_du && currency == event.currency && items.all(i, i > 0)"
  - trigger: refund
    source: A
    dest: Z
    when: "reason != '' && state == 'A' && items.exists(l, l.qty > limit)"
  - {trigger: cancel, source: A, dest: Z, when: "amount_due > 0 && [1].map(x, x).size() > 0"}
triggers:
  pay:
    payload_schema: {type: object, properties: {amount: {type: number}}, required: [currency]}
context_schema:
  type: object
  properties: {amount_due: {type: number}, items: {type: array}}
"""


def test_unknown_fields_in_when_expressions() -> None:
    assert found(load(FIELDS), "unknown-field") == [
        (
            "9:11",
            "when: uses 'amount_du', which neither context_schema nor the payload_schema "
            "of 'pay' lists (did you mean 'amount_due' or 'amount'?)",
            None,
            (),
            (0,),
        ),
        ("13:11", "when: uses 'limit', which context_schema does not list", None, (), (1,)),
        ("13:11", "when: uses 'reason', which context_schema does not list", None, (), (1,)),
    ]


def test_without_context_properties_anything_goes() -> None:
    no_properties = FIELDS.replace(
        "  properties: {amount_due: {type: number}, items: {type: array}}\n", ""
    )
    assert found(load(no_properties), "unknown-field") == []
    no_schema = FIELDS.partition("context_schema:")[0]
    assert found(load(no_schema), "unknown-field") == []


# -- nondeterminism ---------------------------------------------------------------------


def test_nondeterminism_groups_the_states_sharing_candidates() -> None:
    machine = StateMachine.from_yaml(ORDER_SPEC)
    assert found(machine, "nondeterminism") == [
        (
            "51:5",
            "'execution_report' in OPEN, PARTIALLY_FILLED: 2 guarded transitions may pass "
            "together; declaration order decides: transitions[2] (is_full_fill), then "
            "transitions[3] (is_partial_fill)",
            ("order_acknowledged",),
            ("OPEN", "PARTIALLY_FILLED"),
            (2, 3),
        )
    ]


@pytest.mark.parametrize(
    ("second", "expected"),
    [
        (
            {"guards": ["g2"], "when": "x > 1"},
            "3 guarded transitions may pass together; declaration order decides: "
            "transitions[0] (g1), then transitions[1] (when: x > 1 and g2), then "
            "transitions[2] (g3)",
        ),
        ({}, None),  # guarded then unguarded: an if/else, not a choice
    ],
)
def test_nondeterminism_needs_two_guarded_candidates(
    second: dict[str, Any], expected: str | None
) -> None:
    machine = StateMachine.from_dict(
        spec(
            [{"name": "A", "type": "initial"}, {"name": "Z", "type": "terminal"}],
            [
                {"trigger": "t", "source": "A", "dest": "Z", "guards": ["g1"]},
                {"trigger": "t", "source": "A", "dest": "Z", **second},
                {"trigger": "t", "source": "A", "dest": "Z", "guards": ["g3"]},
            ],
        )
    )
    messages = [f.message for f in analyze(machine) if f.code == "nondeterminism"]
    if expected is None:
        assert messages == []
    else:
        assert messages == [f"'t' in A: {expected}"]


# -- analyze: order, ignore, locations --------------------------------------------------


def test_the_order_example_has_only_information() -> None:
    findings = analyze(StateMachine.from_yaml(ORDER_SPEC))
    assert [str(f) for f in findings] == [
        f"{ORDER_SPEC}:31:11: info[timeout-only]: state 'TIMED_OUT' is reached only when a "
        "timeout fires (from the initial state: timeout)",
        f"{ORDER_SPEC}:51:5: info[nondeterminism]: 'execution_report' in OPEN, "
        "PARTIALLY_FILLED: 2 guarded transitions may pass together; declaration order "
        "decides: transitions[2] (is_full_fill), then transitions[3] (is_partial_fill) "
        "(from the initial state: order_acknowledged)",
    ]


def test_a_fixture_with_everything_wrong() -> None:
    path = FIXTURES / "problems.yaml"
    machine = StateMachine.from_yaml(path)
    findings = analyze(machine, GuardRegistry(), ActionRegistry())
    rel = str(path)
    assert [str(f).removeprefix(rel) for f in findings] == (
        (FIXTURES / "problems.expect").read_text().splitlines()
    )
    assert {f.code for f in findings} == set(CODES)
    assert all(f.file == rel for f in findings)


def test_findings_from_a_dict_have_paths_in_natural_order() -> None:
    states = [{"name": "S0", "type": "initial"}, *({"name": f"S{i}"} for i in range(1, 12))]
    machine = StateMachine.from_dict(spec(states))
    findings = analyze(machine, ignore=["trap-state"])
    assert [(f.path, f.line, f.file) for f in findings] == [
        (f"states[{i}].name", None, None) for i in range(1, 12)
    ]
    assert str(findings[0]) == (
        "<spec>: warning[unreachable-state]: state 'S1' cannot be reached from the initial "
        "state 'S0'"
    )


def test_a_machine_from_code_has_paths_only() -> None:
    definition = StateMachine.from_string(TRAPS).definition
    machine = StateMachine.from_definition(definition)
    assert machine.source is None
    assert [(f.path, f.file, f.line, f.column) for f in analyze(machine)][:2] == [
        ("states[2].name", None, None, None),
        ("states[3].name", None, None, None),
    ]


def test_ignore_drops_codes_and_refuses_typos() -> None:
    machine = load(TRAPS)
    assert {f.code for f in analyze(machine)} == {"trap-state", "unreachable-state"}
    assert {f.code for f in analyze(machine, ignore=("trap-state",))} == {"unreachable-state"}
    with pytest.raises(
        ValueError, match=r"unknown finding code 'trap_state' \(did you mean 'trap-state'\?\)"
    ):
        analyze(machine, ignore=["trap_state"])


def test_codes_and_severities() -> None:
    assert CODES["trap-state"] is Severity.ERROR
    assert set(CODES.values()) == set(Severity)
    finding = Finding("x", Severity.INFO, "m")
    assert finding.to_dict()["severity"] == "info"
