"""Hypothesis strategies shared by property tests: generated machine specs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st

NAMES = [f"S{i}" for i in range(7)]
TRIGGERS = ["t0", "t1", "t2", "t3"]


@st.composite
def machines(
    draw: st.DrawFn,
    *,
    guards: Sequence[Any] = (),
    min_guards: int = 0,
    actions: Sequence[Any] = (),
    whens: Sequence[str] = (),
    max_transitions: int = 12,
) -> dict[str, Any]:
    """A valid spec dict: up to 7 states (the first initial), timeouts, transitions with
    wildcard, single and list sources, internal ones; guards, actions and ``when:``
    expressions drawn from the given choices (none when empty)."""
    n = draw(st.integers(1, len(NAMES)))
    names = NAMES[:n]
    acts = st.lists(st.sampled_from(list(actions)), max_size=2) if actions else None
    states: list[dict[str, Any]] = []
    for i, name in enumerate(names):
        kind = "initial" if i == 0 else draw(st.sampled_from(["stable", "terminal", "error"]))
        state: dict[str, Any] = {"name": name, "type": kind}
        if acts is not None and draw(st.booleans()):
            state["on_enter"] = draw(acts)
        if acts is not None and draw(st.booleans()):
            state["on_exit"] = draw(acts)
        if kind != "terminal" and draw(st.booleans()):
            state["timeout"] = {
                "seconds": draw(st.floats(0.5, 100)),
                "destination": draw(st.sampled_from(names)),
            }
        states.append(state)
    live = [s["name"] for s in states if s["type"] != "terminal"]
    transitions: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(0, max_transitions))):
        source: Any = draw(
            st.one_of(
                st.just("*"),
                st.sampled_from(live),
                st.lists(st.sampled_from(live), min_size=1, max_size=3, unique=True),
            )
        )
        t: dict[str, Any] = {"trigger": draw(st.sampled_from(TRIGGERS)), "source": source}
        if draw(st.integers(0, 4)):
            t["dest"] = draw(st.sampled_from(names))
        if draw(st.booleans()) and guards:
            choice = st.sampled_from(list(guards))
            t["guards"] = draw(st.lists(choice, min_size=min_guards, max_size=2))
        if whens and not draw(st.integers(0, 3)):
            t["when"] = draw(st.sampled_from(list(whens)))
        if acts is not None and draw(st.booleans()):
            t["actions"] = draw(acts)
        transitions.append(t)
    return {
        "meta": {"machine_name": "gen", "strict_mode": draw(st.booleans())},
        "states": states,
        "transitions": transitions,
    }
