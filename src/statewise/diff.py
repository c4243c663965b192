"""Compare two versions of a spec: what a deploy changes, and which stored entities it
would strand.

:func:`diff_machines` reads both frozen definitions (no guard runs, nothing needs to be
bound) and returns a :class:`SpecDiff`. Old names are read in the *new* spec's terms: a
name the new spec maps (``migrate:`` or a state's ``renamed_from``, together its
``aliases``) counts as the state it means now, so a renamed state whose transitions are
otherwise unchanged shows up once, as a rename.

States

* ``states_added``: new states with no old counterpart (neither the same name nor
  renamed from an old state).
* ``states_removed``: old states the new spec neither defines nor maps.
* ``states_renamed``: ``(old, new)`` for each old state the new spec maps to another
  state (a rename, or a merge into a state that existed already).
* ``state_changes``: a state's type, timeout, ``on_enter`` or ``on_exit`` differ. A new
  state is compared with the old state of the same name, else with the first old state
  renamed to it. Descriptions and metadata are documentation, never compared.

Transitions are matched in passes, first match wins, each old and new transition used
at most once; old sources and destinations are mapped through the new aliases first:

1. within a group of the same ``trigger`` and the same *set* of sources (``"*"`` stays
   ``"*"``: a wildcard matches only a wildcard): the same behaviour (dest, ``when``,
   guards, actions, all with their params and retries), then the same condition
   (``when`` and guards), then the same dest;
2. across groups of the same trigger: the same behaviour (only the sources changed);
3. within a group, what is left, in declaration order.

Whatever is left is added or removed. A matched pair is *changed* when any of
``source``, ``dest``, ``when``, ``guards``, ``actions`` differ, or ``priority``: its rank
among the matched transitions of its group differs (the first that passes wins, so a
reordering can change decisions). Descriptions and metadata are not compared.

Stored entities

* ``orphaned``: every name an entity may be stored under today (each old state,
  terminal and initial ones included, then each old alias) that the new spec neither
  defines nor maps: ``process`` would raise ``UndefinedStateError`` for those entities.
  Add ``migrate: {OLD: NEW}`` (or ``renamed_from``) to the new spec, or migrate the rows.
* ``aliases_unused``: new aliases whose old name the old spec neither defined nor
  accepted (informational: nothing can be stored under it yet).

``machine_changes`` covers the rest that changes decisions: ``strict_mode``, the error
policy, the context schema and triggers' payload schemas.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from statewise.engine.expressions import label
from statewise.engine.machine import Machine
from statewise.machine import StateMachine
from statewise.model.definition import (
    ActionCall,
    GuardCall,
    MachineDefinition,
    State,
    Timeout,
    Transition,
)
from statewise.model.frozen import thaw

__all__ = [
    "SpecDiff",
    "SpecRef",
    "StateChange",
    "TransitionDiff",
    "describe_transition",
    "diff_files",
    "diff_machines",
]


@dataclass(frozen=True, slots=True)
class SpecRef:
    """Which machine a side of the diff is: its name and version."""

    name: str
    version: str | None = None

    def __str__(self) -> str:
        return self.name if self.version is None else f"{self.name} {self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version}


@dataclass(frozen=True, slots=True)
class StateChange:
    """State ``name`` (new spec; ``old_name`` in the old one) differs in ``changes``,
    each ``"<field>: <old> -> <new>"``, e.g. ``"type: stable -> terminal"``."""

    name: str
    old_name: str
    changes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "old_name": self.old_name, "changes": list(self.changes)}


@dataclass(frozen=True, slots=True)
class TransitionDiff:
    """An added, removed or changed transition.

    ``old_index``/``new_index`` are positions in each spec's ``transitions`` (``None`` on
    the side it is missing from); ``old``/``new`` describe it as that spec writes it
    (see :func:`describe_transition`). ``changes`` names what differs, in the order
    ``source, dest, when, guards, actions, priority``; empty for added or removed ones.
    """

    trigger: str
    old_index: int | None
    new_index: int | None
    old: str | None
    new: str | None
    changes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "trigger": self.trigger,
            "old_index": self.old_index,
            "new_index": self.new_index,
            "old": self.old,
            "new": self.new,
            "changes": list(self.changes),
        }


@dataclass(frozen=True, slots=True)
class SpecDiff:
    """What changes from ``old`` to ``new``; see the module for each field's rules.

    Each tuple is in the declaration order of the spec its names come from (added
    states and state changes: the new spec; removed, renamed and orphaned: the old one,
    states before aliases); transitions by index, changed ones by old index.
    """

    old: SpecRef
    new: SpecRef
    states_added: tuple[str, ...] = ()
    states_removed: tuple[str, ...] = ()
    states_renamed: tuple[tuple[str, str], ...] = ()
    state_changes: tuple[StateChange, ...] = ()
    transitions_added: tuple[TransitionDiff, ...] = ()
    transitions_removed: tuple[TransitionDiff, ...] = ()
    transitions_changed: tuple[TransitionDiff, ...] = ()
    machine_changes: tuple[str, ...] = ()
    orphaned: tuple[str, ...] = ()
    aliases_unused: tuple[tuple[str, str], ...] = ()

    @property
    def empty(self) -> bool:
        """No differences at all (names, versions and documentation aside)."""
        return not (
            self.states_added
            or self.states_removed
            or self.states_renamed
            or self.state_changes
            or self.transitions_added
            or self.transitions_removed
            or self.transitions_changed
            or self.machine_changes
            or self.orphaned
            or self.aliases_unused
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe; always these keys, in this order::

        old, new: {name, version}
        empty: bool
        states_added, states_removed, orphaned, machine_changes: [str]
        states_renamed, aliases_unused: [{old, new}]
        state_changes: [{name, old_name, changes: [str]}]
        transitions_added, transitions_removed, transitions_changed:
            [{trigger, old_index, new_index, old, new, changes: [str]}]
        """
        return {
            "old": self.old.to_dict(),
            "new": self.new.to_dict(),
            "empty": self.empty,
            "states_added": list(self.states_added),
            "states_removed": list(self.states_removed),
            "states_renamed": [{"old": o, "new": n} for o, n in self.states_renamed],
            "state_changes": [c.to_dict() for c in self.state_changes],
            "transitions_added": [t.to_dict() for t in self.transitions_added],
            "transitions_removed": [t.to_dict() for t in self.transitions_removed],
            "transitions_changed": [t.to_dict() for t in self.transitions_changed],
            "machine_changes": list(self.machine_changes),
            "orphaned": list(self.orphaned),
            "aliases_unused": [{"old": o, "new": n} for o, n in self.aliases_unused],
        }

    def render_text(self) -> str:
        """A report for people: one section per kind of difference, nothing for the
        empty ones; orphaned names come under a line with the word ``orphaned``,
        followed by the ``migrate:`` to add. Ends with a newline."""
        lines = [f"{self.old} -> {self.new}"]
        if self.empty:
            return "\n".join([*lines, "no differences"]) + "\n"

        def section(title: str, items: list[str]) -> None:
            if items:
                lines.append(f"{title} ({len(items)}):")
                lines.extend(f"  {item}" for item in items)

        section("states added", [f"+ {s}" for s in self.states_added])
        section("states removed", [f"- {s}" for s in self.states_removed])
        section("states renamed", [f"{o} -> {n}" for o, n in self.states_renamed])
        section("states changed", [_state_line(c) for c in self.state_changes])
        section("transitions added", [f"+ [{t.new_index}] {t.new}" for t in self.transitions_added])
        section(
            "transitions removed", [f"- [{t.old_index}] {t.old}" for t in self.transitions_removed]
        )
        section("transitions changed", [_changed_lines(t) for t in self.transitions_changed])
        section("machine changed", list(self.machine_changes))
        if self.orphaned:
            lines.append(
                f"orphaned (stored entities would no longer load): {', '.join(self.orphaned)}"
            )
            mapping = ", ".join(f"{name}: <new state>" for name in self.orphaned)
            lines.append(f"  add migrate: {{{mapping}}} to the new spec, or migrate those rows")
        section(
            "aliases naming no old state",
            [f"{o} -> {n}" for o, n in self.aliases_unused],
        )
        return "\n".join(lines) + "\n"


def diff_machines(old: Machine, new: Machine) -> SpecDiff:
    """The differences from ``old`` to ``new`` (either may be a ``StateMachine``)."""
    a, b = old.definition, new.definition
    aliases = b.aliases
    old_states = {s.name: s for s in a.states}
    new_states = {s.name: s for s in b.states}

    def now(name: str) -> str:
        return aliases.get(name, name)

    renamed = tuple(
        (name, aliases[name]) for name in old_states if name not in new_states and name in aliases
    )
    counterpart = {n: n for n in new_states if n in old_states}
    for old_name, new_name in renamed:
        counterpart.setdefault(new_name, old_name)
    state_changes = [
        _state_change(old_states[counterpart[name]], state, now)
        for name, state in new_states.items()
        if name in counterpart
    ]
    # Entities may still carry a name the old spec only accepted as an alias.
    stored_today = [*old_states, *a.aliases]
    removed, added, changed = _diff_transitions(a, b, now)
    return SpecDiff(
        old=SpecRef(a.name, a.version),
        new=SpecRef(b.name, b.version),
        states_added=tuple(n for n in new_states if n not in counterpart),
        states_removed=tuple(n for n in old_states if n not in new_states and n not in aliases),
        states_renamed=renamed,
        state_changes=tuple(c for c in state_changes if c is not None),
        transitions_added=added,
        transitions_removed=removed,
        transitions_changed=changed,
        machine_changes=_machine_changes(a, b, now),
        orphaned=tuple(n for n in stored_today if n not in new_states and n not in aliases),
        aliases_unused=tuple(
            (o, n) for o, n in aliases.items() if o not in old_states and o not in a.aliases
        ),
    )


def diff_files(
    old_path: str | os.PathLike[str],
    new_path: str | os.PathLike[str],
    *,
    env: Mapping[str, str] | None = None,
) -> SpecDiff:
    """:func:`diff_machines` of two spec files (YAML or JSON by suffix). Guards need not
    be registered; a bad spec raises ``SpecError`` as loading it would."""
    return diff_machines(
        StateMachine.from_file(old_path, env=env), StateMachine.from_file(new_path, env=env)
    )


def describe_transition(t: Transition) -> str:
    """One line, as the spec writes it:
    ``trigger: SOURCE, SOURCE -> DEST [when: expr, guard(param=1)] / action, action``;
    an internal transition reads ``trigger: SOURCE (internal) / action``."""
    text = f"{t.trigger}: {', '.join(t.source)}"
    text += " (internal)" if t.dest is None else f" -> {t.dest}"
    conditions = ([] if t.when is None else [label(t.when)]) + [_call(g) for g in t.guards]
    if conditions:
        text += f" [{', '.join(conditions)}]"
    if t.actions:
        text += f" / {', '.join(_call(c) for c in t.actions)}"
    return text


# -- transitions -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class _Seen:
    """A transition as the matching sees it: sources and dest in the new spec's names."""

    index: int
    transition: Transition
    sources: frozenset[str]
    dest: str | None

    @property
    def trigger(self) -> str:
        return self.transition.trigger

    @property
    def condition(self) -> Hashable:
        return (self.transition.when, self.transition.guards)

    @property
    def behaviour(self) -> Hashable:
        t = self.transition
        return (self.dest, t.when, t.guards, t.actions)


def _seen(definition: MachineDefinition, now: Callable[[str], str]) -> list[_Seen]:
    return [
        _Seen(i, t, frozenset(map(now, t.source)), None if t.dest is None else now(t.dest))
        for i, t in enumerate(definition.transitions)
    ]


_Pair = tuple[_Seen, _Seen]
_Sides = tuple[list[_Seen], list[_Seen]]


def _pair_by(olds: list[_Seen], news: list[_Seen], key: Callable[[_Seen], Hashable]) -> list[_Pair]:
    """Pair each old (in order) with the first unpaired new of the same ``key``; both
    lists lose what was paired."""
    pairs: list[_Pair] = []
    for o in list(olds):
        match = next((n for n in news if key(n) == key(o)), None)
        if match is not None:
            olds.remove(o)
            news.remove(match)
            pairs.append((o, match))
    return pairs


def _diff_transitions(
    a: MachineDefinition, b: MachineDefinition, now: Callable[[str], str]
) -> tuple[tuple[TransitionDiff, ...], tuple[TransitionDiff, ...], tuple[TransitionDiff, ...]]:
    """(removed, added, changed), each in index order (old index for changed)."""
    groups: dict[tuple[str, frozenset[str]], _Sides] = {}
    for side, seen in enumerate((_seen(a, now), _seen(b, now))):
        for s in seen:
            groups.setdefault((s.trigger, s.sources), ([], []))[side].append(s)
    sides = list(groups.values())
    in_group: list[list[_Pair]] = [[] for _ in sides]
    for pairs, (olds, news) in zip(in_group, sides, strict=True):
        for key in (_behaviour, _condition, _dest):
            pairs.extend(_pair_by(olds, news, key))
    moved = _pair_by(_left(sides, 0), _left(sides, 1), _trigger_behaviour)
    gone = {id(s) for pair in moved for s in pair}
    for pairs, (olds, news) in zip(in_group, sides, strict=True):
        olds[:] = [s for s in olds if id(s) not in gone]
        news[:] = [s for s in news if id(s) not in gone]
        pairs.extend(_pair_by(olds, news, _anything))
    reordered = {o.index for pairs in in_group for o, _ in _reordered(pairs)}
    changed = []
    for o, n in sorted([*moved, *(p for pairs in in_group for p in pairs)], key=_old_index):
        fields = _changed_fields(o, n) + (("priority",) if o.index in reordered else ())
        if fields:
            changed.append(_entry(o, n, fields))
    return (
        tuple(_entry(o, None) for o in sorted(_left(sides, 0), key=_index)),
        tuple(_entry(None, n) for n in sorted(_left(sides, 1), key=_index)),
        tuple(changed),
    )


def _behaviour(s: _Seen) -> Hashable:
    return s.behaviour


def _condition(s: _Seen) -> Hashable:
    return s.condition


def _dest(s: _Seen) -> Hashable:
    return s.dest


def _trigger_behaviour(s: _Seen) -> Hashable:
    return (s.trigger, s.behaviour)


def _anything(_: _Seen) -> Hashable:
    return None


def _index(s: _Seen) -> int:
    return s.index


def _old_index(pair: _Pair) -> int:
    return pair[0].index


def _left(sides: list[_Sides], side: int) -> list[_Seen]:
    """What is still unpaired on one side, group by group."""
    return [s for both in sides for s in both[side]]


def _reordered(pairs: list[_Pair]) -> list[_Pair]:
    """The pairs whose rank among the group's matched transitions differs old vs new."""
    by_old = sorted(pairs, key=lambda p: p[0].index)
    by_new = sorted(pairs, key=lambda p: p[1].index)
    return [p for p, q in zip(by_old, by_new, strict=True) if p is not q]


def _changed_fields(o: _Seen, n: _Seen) -> tuple[str, ...]:
    t, u = o.transition, n.transition
    differs = {
        "source": o.sources != n.sources,
        "dest": o.dest != n.dest,
        "when": t.when != u.when,
        "guards": t.guards != u.guards,
        "actions": t.actions != u.actions,
    }
    return tuple(name for name, yes in differs.items() if yes)


def _entry(o: _Seen | None, n: _Seen | None, changes: tuple[str, ...] = ()) -> TransitionDiff:
    either = o or n
    assert either is not None
    return TransitionDiff(
        trigger=either.trigger,
        old_index=None if o is None else o.index,
        new_index=None if n is None else n.index,
        old=None if o is None else describe_transition(o.transition),
        new=None if n is None else describe_transition(n.transition),
        changes=changes,
    )


# -- states and the machine ---------------------------------------------------------------


def _state_change(old: State, new: State, now: Callable[[str], str]) -> StateChange | None:
    changes = []
    if old.type is not new.type:
        changes.append(f"type: {old.type.value} -> {new.type.value}")
    if _timeout_key(old.timeout, now) != _timeout_key(new.timeout, now):
        changes.append(f"timeout: {_timeout(old.timeout)} -> {_timeout(new.timeout)}")
    for name in ("on_enter", "on_exit"):
        before: tuple[ActionCall, ...] = getattr(old, name)
        after: tuple[ActionCall, ...] = getattr(new, name)
        if before != after:
            changes.append(f"{name}: {_calls(before)} -> {_calls(after)}")
    return StateChange(new.name, old.name, tuple(changes)) if changes else None


def _timeout_key(t: Timeout | None, now: Callable[[str], str]) -> Hashable:
    return None if t is None else (t.seconds, now(t.destination), t.actions)


def _timeout(t: Timeout | None) -> str:
    if t is None:
        return "none"
    text = f"after {t.seconds:g}s to {t.destination}"
    return f"{text} / {', '.join(map(_call, t.actions))}" if t.actions else text


def _machine_changes(
    a: MachineDefinition, b: MachineDefinition, now: Callable[[str], str]
) -> tuple[str, ...]:
    changes = []
    if a.strict_mode != b.strict_mode:
        changes.append(f"strict_mode: {_json(a.strict_mode)} -> {_json(b.strict_mode)}")
    p, q = a.error_policy, b.error_policy
    before = p.default_fallback and now(p.default_fallback)
    if before != q.default_fallback:
        changes.append(
            f"error_policy.default_fallback: {p.default_fallback or 'none'} -> "
            f"{q.default_fallback or 'none'}"
        )
    for name in ("retry_attempts", "backoff_seconds", "max_backoff_seconds"):
        if getattr(p, name) != getattr(q, name):
            changes.append(f"error_policy.{name}: {getattr(p, name)} -> {getattr(q, name)}")
    if (what := _compare(a.context_schema, b.context_schema)) is not None:
        changes.append(f"context_schema: {what}")
    for trigger in [*a.triggers, *(t for t in b.triggers if t not in a.triggers)]:
        old, new = a.triggers.get(trigger), b.triggers.get(trigger)
        what = _compare(old and old.payload_schema, new and new.payload_schema)
        if what is not None:
            changes.append(f"triggers.{trigger}.payload_schema: {what}")
    return tuple(changes)


def _compare(old: object, new: object) -> str | None:
    if old == new:
        return None
    return "added" if old is None else "removed" if new is None else "changed"


# -- text ---------------------------------------------------------------------------------


def _call(call: ActionCall | GuardCall) -> str:
    """``name``, ``name(key=value, ...)`` with params, ``+retry(...)`` with a retry."""
    text = call.name
    if call.params:
        text += f"({', '.join(f'{k}={_json(v)}' for k, v in call.params.items())})"
    retry = getattr(call, "retry", None)
    if retry is not None:
        text += f"+retry({', '.join(f'{k}={v}' for k, v in retry.to_dict().items())})"
    return text


def _calls(calls: tuple[ActionCall, ...]) -> str:
    return f"[{', '.join(map(_call, calls))}]"


def _json(value: object) -> str:
    return json.dumps(thaw(value), sort_keys=True, ensure_ascii=False)


def _state_line(change: StateChange) -> str:
    name = change.name if change.old_name == change.name else f"{change.old_name} -> {change.name}"
    return f"{name}: {'; '.join(change.changes)}"


def _changed_lines(t: TransitionDiff) -> str:
    return (
        f"[{t.old_index}] -> [{t.new_index}] ({', '.join(t.changes)})\n    - {t.old}\n    + {t.new}"
    )
