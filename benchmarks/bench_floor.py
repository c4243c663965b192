"""The floor: about the least work a correct ``process`` can do, to measure the others by.

It is a plain dict from (state, trigger) to the candidate transitions in priority
order; the first candidate whose guards all pass wins. Each candidate carries its
target and its precomputed action list (exit + transition + enter), so deciding an
event is one dict lookup plus the guard calls. It keeps the spec's semantics that
matter for a decision: ``"*"`` sources mean every non-terminal state, a transition
without ``dest`` is internal (the state stays, only its own actions run), terminal
states accept nothing. It does not build result objects, error codes or traces.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["Candidate", "Floor", "FloorGuard", "Outcome"]

# A floor guard reads the context first and the event payload second (context wins).
FloorGuard = Callable[[Mapping[str, Any], Mapping[str, Any]], bool]
Candidate = tuple[tuple[FloorGuard, ...], str, tuple[str, ...]]
Outcome = tuple[bool, str, tuple[str, ...]]
NO_ACTIONS: tuple[str, ...] = ()


def _names(value: Any) -> tuple[str, ...]:
    if value is None:
        return NO_ACTIONS
    return (value,) if isinstance(value, str) else tuple(value)


class Floor:
    """``process(state, (trigger, payload), context) -> (ok, target, actions)``."""

    __slots__ = ("table",)

    def __init__(self, spec: Mapping[str, Any], guards: Mapping[str, FloorGuard]) -> None:
        states = {s["name"]: s for s in spec["states"]}
        terminal = {n for n, s in states.items() if s.get("type") == "terminal"}
        live = [n for n in states if n not in terminal]
        table: dict[tuple[str, str], list[Candidate]] = {}
        for t in spec.get("transitions") or ():
            sources = live if t["source"] == "*" else _names(t["source"])
            checks = tuple(guards[g] for g in _names(t.get("guards")))
            actions = _names(t.get("actions"))
            dest = t.get("dest")
            for s in sources:
                if s in terminal:
                    continue
                if dest is None:  # internal: no exit, no enter
                    candidate: Candidate = (checks, s, actions)
                else:
                    on_exit = _names(states[s].get("on_exit"))
                    on_enter = _names(states[dest].get("on_enter"))
                    candidate = (checks, dest, on_exit + actions + on_enter)
                table.setdefault((s, t["trigger"]), []).append(candidate)
        self.table: dict[tuple[str, str], tuple[Candidate, ...]] = {
            key: tuple(candidates) for key, candidates in table.items()
        }

    def process(
        self, state: str, event: tuple[str, Mapping[str, Any]], context: Mapping[str, Any]
    ) -> Outcome:
        trigger, payload = event
        for checks, target, actions in self.table.get((state, trigger), ()):
            for check in checks:
                if not check(context, payload):
                    break
            else:
                return True, target, actions
        return False, state, NO_ACTIONS
