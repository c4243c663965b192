"""The transition rules, as data. This is the one place they live.

A :class:`RuleTable` answers one question: in state S, for trigger T, which
transitions are candidates, in which order? ``process`` reads it to decide, and
analysis and diagrams read the same table, so the three can never disagree.

Theory of operation: the table is built once from a definition. Each transition is
listed under every state its ``source`` names; a ``"*"`` source lists it under every
non-terminal state. Within one (state, trigger) pair, candidates keep declaration
order, wildcard transitions included at their own position: the first candidate
whose guards all pass wins. Terminal states have no candidates at all.

Two more kinds of edge live here, outside the trigger table because no event from
outside takes them: a state's timeout (``timeouts``: trigger ``timeout``, when the
caller's clock says it is due) and the error fallback (``fallbacks``: trigger
``error``, when an action keeps failing after the commit). Each is a
:class:`Transition` like any other, built once, so results, analysis and diagrams
treat them the same way.

The table is keyed by a plain state name today. Nested and parallel states will key
it by a state configuration; nothing here assumes more than "a hashable key".
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from statewise.model.definition import (
    ERROR_TRIGGER,
    TIMEOUT_TRIGGER,
    MachineDefinition,
    State,
    Transition,
)

__all__ = ["RuleTable"]

Candidates = tuple[Transition, ...]
_NO_RULES: Mapping[str, Candidates] = MappingProxyType({})


@dataclass(frozen=True, slots=True, eq=False)
class RuleTable:
    """(state, trigger) -> candidate transitions, plus the facts ``process`` needs.

    ``by_state[s]`` exists for every defined state, terminal ones included (with no
    triggers), so "is this a defined state?" is the same lookup as "what may happen
    here?".
    """

    by_state: Mapping[str, Mapping[str, Candidates]]
    states: Mapping[str, State]
    triggers: frozenset[str]
    terminal: frozenset[str]
    timeouts: Mapping[str, Transition]
    fallbacks: Mapping[str, Transition]
    aliases: Mapping[str, str]
    """Old stored state names (``migrate``, ``renamed_from``) -> the state they mean now."""

    @classmethod
    def build(cls, definition: MachineDefinition) -> RuleTable:
        states = {s.name: s for s in definition.states}
        terminal = frozenset(n for n, s in states.items() if s.is_terminal)
        live = [n for n in states if n not in terminal]
        table: dict[str, dict[str, list[Transition]]] = {n: {} for n in states}
        for t in definition.transitions:
            for source in live if t.is_wildcard else t.source:
                table[source].setdefault(t.trigger, []).append(t)
        by_state: dict[str, Mapping[str, Candidates]] = {}
        for name, rules in table.items():
            by_state[name] = (
                {trigger: tuple(ts) for trigger, ts in rules.items()} if rules else _NO_RULES
            )
        timeouts = {
            name: Transition(
                TIMEOUT_TRIGGER, (name,), s.timeout.destination, actions=s.timeout.actions
            )
            for name, s in states.items()
            if s.timeout is not None and name not in terminal
        }
        fallback = definition.error_policy.default_fallback
        # No fallback from a terminal state (what it records stays true: a payment
        # captured stays captured), nor from the fallback state itself (no loop).
        fallbacks = (
            {}
            if fallback is None
            else {
                name: Transition(ERROR_TRIGGER, (name,), fallback)
                for name in live
                if name != fallback
            }
        )
        return cls(
            by_state=by_state,
            states=states,
            triggers=frozenset(t.trigger for t in definition.transitions),
            terminal=terminal,
            timeouts=MappingProxyType(timeouts),
            fallbacks=MappingProxyType(fallbacks),
            aliases=MappingProxyType(definition.aliases),
        )

    def candidates(self, state: str, trigger: str) -> Candidates:
        """The candidates for ``trigger`` in ``state``, in priority order (maybe none)."""
        return self.by_state[state].get(trigger, ())

    def edges(self, *, timeouts: bool = False) -> Iterator[tuple[str, Transition]]:
        """Every (source state, transition) pair, by state then priority; with
        ``timeouts=True`` each state's timeout edge follows its triggered ones."""
        for state, rules in self.by_state.items():
            for candidates in rules.values():
                for t in candidates:
                    yield state, t
            if timeouts and state in self.timeouts:
                yield state, self.timeouts[state]
