"""Expression guards: ``when:`` in CEL, compiled at load, evaluated by process()."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from statewise import Event, GuardError, GuardRegistry, SpecError, StateMachine
from statewise.engine.expressions import compile_expression, plain

SPEC = """\
meta: {machine_name: fills}
states:
  - {name: OPEN, type: initial}
  - {name: FILLED, type: terminal}
  - {name: PARTIAL}
transitions:
  - trigger: fill
    source: [OPEN, PARTIAL]
    dest: FILLED
    when: "fill_qty >= order_qty && side in ['buy', 'sell']"
  - trigger: fill
    source: [OPEN, PARTIAL]
    dest: PARTIAL
    when: "event.fill_qty > 0 && state != 'PARTIAL' || fill_qty > 0"
"""


@pytest.fixture(scope="module")
def machine() -> StateMachine:
    return StateMachine.from_string(SPEC)


@pytest.mark.parametrize(
    ("context", "payload", "target", "success"),
    [
        ({"order_qty": 10, "side": "buy"}, {"fill_qty": 10}, "FILLED", True),
        ({"order_qty": 10, "side": "sell"}, {"fill_qty": 12}, "FILLED", True),
        ({"order_qty": 10, "side": "buy"}, {"fill_qty": 4}, "PARTIAL", True),
        ({"order_qty": 10, "side": "hold"}, {"fill_qty": 10}, "PARTIAL", True),
        ({"order_qty": 10, "side": "buy"}, {"fill_qty": 0}, "OPEN", False),
    ],
)
def test_expressions_decide(
    machine: StateMachine,
    context: dict[str, Any],
    payload: dict[str, Any],
    target: str,
    success: bool,
) -> None:
    r = machine.process("OPEN", Event("fill", payload), context)
    assert (r.target_state, r.success) == (target, success)


def test_rejection_names_the_expressions(machine: StateMachine) -> None:
    r = machine.process("OPEN", Event("fill", {"fill_qty": 0}), {"order_qty": 3, "side": "buy"})
    assert r.error is not None and r.error.code == "guard_rejected"
    assert r.decision.rejected_guards == (
        "when: fill_qty >= order_qty && side in ['buy', 'sell']",
        "when: event.fill_qty > 0 && state != 'PARTIAL' || fill_qty > 0",
    )
    assert [step.guards for step in r.trace] == [
        ((r.decision.rejected_guards[0], False),),
        ((r.decision.rejected_guards[1], False),),
    ]


def test_context_wins_over_payload_and_event_is_the_payload(machine: StateMachine) -> None:
    # fill_qty in the context shadows the payload's; event.fill_qty still reads the payload.
    r = machine.process(
        "OPEN", Event("fill", {"fill_qty": 10}), {"order_qty": 10, "side": "buy", "fill_qty": 1}
    )
    assert r.target_state == "PARTIAL"


def test_state_variable(machine: StateMachine) -> None:
    ctx = {"order_qty": 10, "side": "buy"}
    assert machine.process("OPEN", Event("fill", {"fill_qty": 3}), ctx).target_state == "PARTIAL"
    # In PARTIAL the first half of the || is false, the second still true.
    assert machine.process("PARTIAL", Event("fill", {"fill_qty": 3}), ctx).target_state == "PARTIAL"


def test_missing_field_is_a_clear_error(machine: StateMachine) -> None:
    # CEL's && is commutative about errors: false && <missing> is false, so the
    # missing field only matters when the other side is true.
    with pytest.raises(GuardError) as info:
        machine.process("OPEN", Event("fill", {"fill_qty": 10}), {"order_qty": 10})
    err = info.value
    assert err.guard == "when: fill_qty >= order_qty && side in ['buy', 'sell']"
    assert (err.state, err.trigger, err.transition_index) == ("OPEN", "fill", 0)
    assert err.detail is not None
    assert "uses 'side', which is in neither the context nor the event payload" in err.detail
    assert "(they have: event, fill_qty, order_qty, state)" in err.detail
    assert "uses 'side'" in str(err)


@pytest.mark.parametrize(
    ("expression", "context", "detail"),
    [
        ("qty + 1", {"qty": 1}, "must evaluate to a bool, got int 2"),
        ("qty + 'a' == 'b'", {"qty": 1}, "failed:"),
        ("qty / 0 == 1", {"qty": 1}, "failed: division by zero"),
    ],
)
def test_bad_evaluations_raise(expression: str, context: dict[str, Any], detail: str) -> None:
    m = StateMachine.from_dict(
        {
            "meta": {"machine_name": "m"},
            "states": [{"name": "A", "type": "initial"}, {"name": "B"}],
            "transitions": [{"trigger": "go", "source": "A", "dest": "B", "when": expression}],
        }
    )
    with pytest.raises(GuardError, match=detail):
        m.process("A", "go", context)


def test_when_is_checked_before_guards() -> None:
    calls: list[str] = []
    guards = GuardRegistry()

    @guards.register
    def counted(ctx: Any) -> bool:
        calls.append("counted")
        return True

    m = StateMachine.from_dict(
        {
            "meta": {"machine_name": "m"},
            "states": [{"name": "A", "type": "initial"}, {"name": "B"}],
            "transitions": [
                {"trigger": "go", "source": "A", "dest": "B", "when": "ok", "guards": ["counted"]}
            ],
        },
        guards=guards,
    )
    assert not m.process("A", "go", {"ok": False}).success
    assert calls == []
    assert m.process("A", "go", {"ok": True}).target_state == "B"
    assert calls == ["counted"]


def test_dataclass_and_pydantic_contexts_feed_expressions() -> None:
    import dataclasses

    import pydantic

    @dataclasses.dataclass
    class Limits:
        cap: int

    @dataclasses.dataclass
    class Account:
        balance: int
        limits: Limits
        tags: list[str]

    class Model(pydantic.BaseModel):
        balance: int
        limits: dict[str, int]
        tags: list[str]

    m = StateMachine.from_dict(
        {
            "meta": {"machine_name": "m"},
            "states": [{"name": "A", "type": "initial"}, {"name": "B"}],
            "transitions": [
                {
                    "trigger": "pay",
                    "source": "A",
                    "dest": "B",
                    "when": "balance >= event.amount && event.amount <= limits.cap"
                    " && 'vip' in tags",
                }
            ],
        }
    )
    ok = Event("pay", {"amount": 5})
    assert m.process("A", ok, Account(10, Limits(8), ["vip"])).success
    assert not m.process("A", ok, Account(10, Limits(4), ["vip"])).success
    assert m.process("A", ok, Model(balance=10, limits={"cap": 8}, tags=["vip"])).success
    assert not m.process("A", ok, Model(balance=1, limits={"cap": 8}, tags=["vip"])).success


def test_plain_converts_views_and_objects() -> None:
    import dataclasses

    @dataclasses.dataclass
    class P:
        x: tuple[int, ...]

    assert plain({"a": (1, {"b": P((2,))})}) == {"a": [1, {"b": {"x": [2]}}]}
    assert plain("text") == "text"
    marker = object()
    assert plain(marker) is marker


def test_compiled_once_and_cached() -> None:
    assert compile_expression("a == 1") is compile_expression("a == 1")


BAD = """\
meta: {machine_name: m}
states:
  - {name: A, type: initial}
  - {name: B}
transitions:
  - trigger: go
    source: A
    dest: B
    when: "amount >= "
"""


def test_syntax_error_is_a_spec_error_with_its_location() -> None:
    with pytest.raises(SpecError) as info:
        StateMachine.from_string(BAD, file="bad.yaml")
    [p] = info.value.problems
    assert (p.file, p.line, p.column, p.path) == ("bad.yaml", 9, 11, "transitions[0].when")
    assert p.message.startswith("not a valid CEL expression: at 1:11: Syntax error")
    assert p.got == "'amount >= '"


def test_without_the_extra_the_error_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    compile_expression.cache_clear()
    monkeypatch.setitem(sys.modules, "cel", None)  # import cel now raises ImportError
    try:
        with pytest.raises(SpecError) as info:
            StateMachine.from_string(BAD.replace("amount >= ", "amount >= 1"), file="x.yaml")
    finally:
        compile_expression.cache_clear()
    [p] = info.value.problems
    assert (p.line, p.column, p.path) == (9, 11, "transitions[0].when")
    assert "pip install 'statewise[cel]'" in p.message


def test_cel_available_reports_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from statewise.engine.expressions import cel_available

    assert cel_available()
    monkeypatch.setitem(sys.modules, "cel", None)
    assert not cel_available()


def test_spec_round_trip_keeps_when() -> None:
    m = StateMachine.from_string(SPEC)
    assert m.to_dict()["transitions"][0]["when"] == (
        "fill_qty >= order_qty && side in ['buy', 'sell']"
    )
    assert StateMachine.from_dict(m.to_dict()) == m
