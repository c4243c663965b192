"""Read-only views given to guards, and the rule table they decide from."""

from __future__ import annotations

from typing import Any

import pytest

from statewise import StateMachine
from statewise.engine.views import ReadOnlyList, ReadOnlyView, make_view, read_only
from tests.conftest import spec


def test_context_wins_and_payload_fills_in() -> None:
    view = ReadOnlyView({"a": 1, "b": 2}, {"b": 20, "c": 30})
    assert (view["a"], view["b"], view["c"]) == (1, 2, 30)
    assert view.get("c") == 30 and view.get("zz") is None and view.get("zz", 5) == 5
    assert "c" in view and "zz" not in view
    assert list(view) == ["a", "b", "c"] and len(view) == 3
    assert dict(view) == {"a": 1, "b": 2, "c": 30}
    with pytest.raises(KeyError):
        view["zz"]
    assert repr(make_view({"a": 1}, None)) == "ReadOnlyView({'a': 1})"


def test_nested_values_are_read_only_too() -> None:
    context: dict[str, Any] = {"order": {"legs": [{"qty": 1}]}, "tags": ["x"]}
    view = ReadOnlyView(context)
    order = view["order"]
    assert isinstance(order, ReadOnlyView)
    legs = order["legs"]
    assert isinstance(legs, ReadOnlyList) and len(legs) == 1
    assert isinstance(legs[0], ReadOnlyView) and legs[0]["qty"] == 1
    assert legs[0:1][0]["qty"] == 1 and isinstance(legs[0:1], tuple)
    assert isinstance(view.get("tags"), ReadOnlyList)
    assert list(view.get("tags")) == ["x"] and "x" in view.get("tags")
    with pytest.raises(TypeError):
        order["legs"] = []  # type: ignore[index]
    with pytest.raises(TypeError):
        legs[0] = 1  # type: ignore[index]
    assert not hasattr(legs, "append") and not hasattr(order, "update")
    assert repr(legs) == "ReadOnlyList([{'qty': 1}])"
    assert read_only(5) == 5 and read_only("s") == "s"


def test_rule_table_is_what_process_reads() -> None:
    m = StateMachine.from_dict(
        spec(
            [{"name": "A", "type": "initial"}, {"name": "B"}, {"name": "T", "type": "terminal"}],
            [
                {"trigger": "go", "source": "A", "dest": "B"},
                {"trigger": "go", "source": "*", "dest": "T"},
                {"trigger": "back", "source": "B", "dest": "A"},
            ],
        )
    )
    rules = m.rules
    assert [t.dest for t in rules.candidates("A", "go")] == ["B", "T"]
    assert rules.candidates("A", "back") == () and rules.candidates("T", "go") == ()
    assert [(s, t.trigger, t.dest) for s, t in rules.edges()] == [
        ("A", "go", "B"),
        ("A", "go", "T"),
        ("B", "go", "T"),
        ("B", "back", "A"),
    ]
    assert rules.triggers == frozenset({"go", "back"}) and rules.terminal == frozenset({"T"})
