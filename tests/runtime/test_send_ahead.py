"""``Runtime.send``'s fast path (``Runtime._send_ahead``), on every store.

The runtime remembers the row it last wrote per entity (``Runtime._seen``), decides the
next event from it before locking, and writes it with ``Tx.write_expected``, which
re-checks under the lock that nothing moved (version, backlog, timer generation, key).
When anything moved, or the decision raised, nothing is written and ``send`` takes the
locked path (``Tx.receive``, then decide). The rule every test here checks: whatever
the fast path does, the outcome is the locked path's.

How: the same scenario is run twice on the test's store, once by runtimes that try the
fast path and once by runtimes that never do (their ``_send_ahead`` answers ``None``),
each run under a machine name of its own (``pay<n>``: the payment machine of
``test_runtime``), so that the entity ids are the same and what the two runs stored can
be compared row by row (:func:`observe`). Which path a send took is read from counting
wrappers around the store's ``Tx.receive`` and ``Tx.write_expected`` (the ``paths``
fixture), never from timing.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from random import Random
from typing import Any, Protocol

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from statewise import Event, GuardError
from statewise.model.result import TransitionResult
from statewise.runtime import ConcurrencyError, Runtime
from statewise.runtime import runtime as runtime_module
from statewise.runtime.runtime import _AHEAD_CAP, _MISS_COST
from statewise.runtime.store import HistoryRow, Received, Store
from tests.runtime.test_runtime import SPEC, T0, Actions, Clock, machine

TIMER = "timeout"
_names = itertools.count(1)


# -- which path a send took ---------------------------------------------------------------


def plain(value: Any) -> Any:
    """``value`` with the read-only views an action gets turned into dicts and lists."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [plain(v) for v in value]
    return value


def outcome(call: Callable[[], TransitionResult]) -> tuple[Any, ...]:
    """A send's result as a dict, or what it raised (type and message)."""
    try:
        return ("result", call().to_dict())
    except Exception as exc:
        return ("raised", type(exc).__name__, str(exc))


@dataclass
class Paths:
    """Calls to the store's ``Tx.receive`` and ``Tx.write_expected`` so far, and how many
    of the latter raised ``ConcurrencyError`` (missed)."""

    receive: int = 0
    ahead: int = 0
    missed: int = 0

    def counts(self) -> tuple[int, int, int]:
        return (self.receive, self.ahead, self.missed)

    def step(self, call: Callable[[], TransitionResult]) -> tuple[str, tuple[Any, ...]]:
        """Run ``call`` (one send): the path it took and its :func:`outcome`. Paths:
        ``locked`` (one receive), ``ahead`` (one write_expected that held), ``missed``
        (a write_expected that raised ConcurrencyError, then one receive). Anything
        else fails the test. (A decision made ahead that raised shows as ``locked``:
        it never reached the store.)"""
        before = self.counts()
        out = outcome(call)
        delta = tuple(a - b for a, b in zip(self.counts(), before, strict=True))
        names = {(1, 0, 0): "locked", (0, 1, 0): "ahead", (1, 1, 1): "missed"}
        assert delta in names, f"unexpected calls (receive, write_expected, missed): {delta}"
        return names[delta], out


@pytest.fixture
def paths(store: Store, monkeypatch: pytest.MonkeyPatch) -> Paths:
    with store.transaction() as tx:
        cls = type(tx)
    counts = Paths()
    receive = cls.receive
    write_expected = cls.write_expected

    def counting_receive(self: Any, *args: Any, **kwargs: Any) -> Received | None:
        counts.receive += 1
        got: Received | None = receive(self, *args, **kwargs)
        return got

    def counting_write_expected(self: Any, *args: Any, **kwargs: Any) -> list[int]:
        counts.ahead += 1
        try:
            ids: list[int] = write_expected(self, *args, **kwargs)
        except ConcurrencyError:
            counts.missed += 1
            raise
        return ids

    monkeypatch.setattr(cls, "receive", counting_receive)
    monkeypatch.setattr(cls, "write_expected", counting_write_expected)
    return counts


# -- building runtimes, observing what they stored -------------------------------------------


class Build(Protocol):
    def __call__(
        self,
        name: str,
        *,
        fast: bool = True,
        clock: Clock | None = None,
        actions: Actions | None = None,
        worker_id: str = "w1",
        spec: Mapping[str, Any] = SPEC,
        lease_seconds: float = 30.0,
    ) -> Runtime: ...


@pytest.fixture
def build(store: Store, monkeypatch: pytest.MonkeyPatch) -> Build:
    """``build(name, ...)``: a runtime over the test's store for the payment machine
    renamed ``name``; ``fast=False``: one that never sends ahead (its ``_send_ahead``
    always answers ``None``, so every send takes the locked path): the reference."""

    def make(
        name: str,
        *,
        fast: bool = True,
        clock: Clock | None = None,
        actions: Actions | None = None,
        worker_id: str = "w1",
        spec: Mapping[str, Any] = SPEC,
        lease_seconds: float = 30.0,
    ) -> Runtime:
        rt = Runtime(
            machine({**spec, "meta": {"machine_name": name}}),
            store,
            actions=(actions or Actions()).registry(),
            clock=clock,
            worker_id=worker_id,
            lease_seconds=lease_seconds,
            random=Random(7),
        )
        if not fast:
            monkeypatch.setattr(rt, "_send_ahead", lambda *args: None)
        return rt

    return make


def at(seconds: float) -> datetime:
    """``seconds`` after ``T0``, when every test clock starts."""
    return T0 + timedelta(seconds=seconds)


def fresh_name() -> str:
    return f"pay{next(_names)}"


@dataclass
class Observed:
    """What one run left in the store, with its machine's name taken out (and, when
    the run had no clock of its own, its times: they are the store's)."""

    history: list[HistoryRow]
    inbox: dict[str, dict[str, Any] | None]
    outbox: list[tuple[Any, ...]]
    entities: dict[str, tuple[Any, ...]]
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def observe(
    store: Store, name: str, entity_ids: Sequence[str], actions: Actions, *, times: bool
) -> Observed:
    store.flush_acks()
    history: list[HistoryRow] = []
    inbox: dict[str, dict[str, Any] | None] = {}
    entities: dict[str, tuple[Any, ...]] = {}
    with store.transaction() as tx:
        for entity_id in entity_ids:
            rows = tx.history(name, entity_id)
            history += [replace(r, machine="M", at=r.at if times else T0) for r in rows]
            entity = tx.get_entity(name, entity_id)
            assert entity is not None
            timer = tx.timer_get(name, entity_id, TIMER)
            entities[entity_id] = (
                entity.state,
                entity.version,
                entity.entered_at if times else None,
                None if timer is None else timer.generation,
                None if timer is None or not times else timer.due_at,
            )
            for row in rows:
                key = str(row.event["id"])  # every send here keys an event by its id
                got = tx.receive(name, entity_id, key, TIMER)
                assert got is not None and got.inbox is not None
                inbox[f"{entity_id}/{key}"] = got.inbox.result
        outbox = [
            (
                r.key.split(":", 1)[1],
                r.entity_id,
                r.status,
                r.action,
                r.context,
                r.attempts,
                r.next_attempt_at if times else None,
                r.lease_owner,
                r.lease_until if times else None,
                r.last_error,
            )
            for r in tx.outbox_rows(machine=name)
        ]
    calls = [
        (n, {k: v.split(":", 1)[1] if k == "key" else plain(v) for k, v in extra.items()})
        for n, extra in actions.calls
    ]
    return Observed(history, inbox, outbox, entities, calls)


Scenario = Callable[[Sequence[Runtime], Clock], list[Any]]


@dataclass
class Run:
    name: str
    runtimes: list[Runtime]
    outputs: list[Any]
    observed: Observed


def run(
    build: Build,
    store: Store,
    scenario: Scenario,
    *,
    fast: bool,
    runtimes: int = 1,
    entities: Sequence[str] = ("p1",),
    own_clock: bool = True,
) -> Run:
    """Run ``scenario`` under a fresh machine name, by ``runtimes`` runtimes (workers
    ``w1``, ``w2``...) sharing one clock and one action log; what it stored."""
    name = fresh_name()
    clock = Clock()
    actions = Actions()
    rts = [
        build(
            name,
            fast=fast,
            clock=clock if own_clock else None,
            actions=actions,
            worker_id=f"w{i + 1}",
        )
        for i in range(runtimes)
    ]
    outputs = scenario(rts, clock)
    return Run(name, rts, outputs, observe(store, name, entities, actions, times=own_clock))


def both(
    build: Build,
    store: Store,
    scenario: Scenario,
    *,
    runtimes: int = 1,
    entities: Sequence[str] = ("p1",),
    own_clock: bool = True,
) -> tuple[Run, Run]:
    """The scenario run with the fast path and without: both must give the same
    outputs and store the same rows. Returns (fast run, locked run)."""
    opts: dict[str, Any] = {"runtimes": runtimes, "entities": entities, "own_clock": own_clock}
    fast = run(build, store, scenario, fast=True, **opts)
    locked = run(build, store, scenario, fast=False, **opts)
    assert fast.outputs == locked.outputs
    assert fast.observed.history == locked.observed.history
    assert fast.observed.inbox == locked.observed.inbox
    assert fast.observed.outbox == locked.observed.outbox
    assert fast.observed.entities == locked.observed.entities
    assert fast.observed.calls == locked.observed.calls
    return fast, locked


def history_of(store: Store, name: str, entity_id: str) -> list[HistoryRow]:
    with store.transaction() as tx:
        return tx.history(name, entity_id)


def outbox_keys(store: Store, name: str) -> list[str]:
    store.flush_acks()
    with store.transaction() as tx:
        return [r.key for r in tx.outbox_rows(machine=name)]


# -- 1. the fast path gives the locked path's outcome ---------------------------------------

SEQUENCES: dict[str, tuple[dict[str, Any], list[Event]]] = {
    # self-transition (re-armed timer), internal transition in a state with a timeout,
    # a trigger the state does not allow, leaving the timeout state (timer cancelled),
    # actions with params (notify's channel), rejected after that, internal again.
    "mixed": (
        {"amount": 5},
        [
            Event("note", id="e1"),
            Event("wait", id="e2"),
            Event("wait", id="e3"),
            Event("note", id="e4"),
            Event("big", id="e5"),
            Event("capture", id="e6"),
            Event("wait", id="e7"),
            Event("note", id="e8"),
        ],
    ),
    # a guard that lets the transition through, then triggers CAPTURED refuses.
    "guard-passes": (
        {"amount": 500},
        [
            Event("note", id="e1"),
            Event("big", id="e2"),
            Event("capture", id="e3"),
            Event("nope", id="e4"),
            Event("note", id="e5"),
        ],
    ),
    # a guard that says no, an unknown trigger, then the timeout state and out of it.
    "guard-rejects": (
        {"amount": 5},
        [
            Event("note", id="e1"),
            Event("big", id="e2"),
            Event("nope", id="e3"),
            Event("wait", id="e4"),
            Event("capture", id="e5"),
        ],
    ),
    # payloads: in the stored event, and in the actions' context (under the context).
    "payloads": (
        {"amount": 1, "card": "stored"},
        [
            Event("wait", id="e1"),
            Event("note", {"text": "héllo \u2603", "n": [1, 2.5, None]}, id="e2"),
            Event("capture", {"card": "new", "cvv": "1", "deep": {"a": []}}, id="e3"),
            Event("note", {"amount": 7}, id="e4"),
        ],
    ),
}


@pytest.mark.parametrize("own_clock", [True, False], ids=["clock", "store-clock"])
@pytest.mark.parametrize("sequence", list(SEQUENCES))
def test_sends_after_the_first_go_ahead_and_store_what_the_locked_path_stores(
    build: Build, store: Store, paths: Paths, sequence: str, own_clock: bool
) -> None:
    context, events = SEQUENCES[sequence]
    taken: list[str] = []

    def scenario(rts: Sequence[Runtime], clock: Clock) -> list[Any]:
        [rt] = rts
        rt.create("p1", context)
        outputs: list[Any] = []
        for event in events:
            clock.advance(1)
            path, out = paths.step(partial(rt.send, "p1", event))
            taken.append(path)
            outputs.append(out)
        return outputs

    fast, _ = both(build, store, scenario, own_clock=own_clock)
    n = len(events)
    # Fast run: nothing seen after create, so the first send locks; then all go ahead.
    # Locked run: every send locks.
    assert taken == ["locked"] + ["ahead"] * (n - 1) + ["locked"] * n
    assert fast.runtimes[0]._ahead == min(n - 1, _AHEAD_CAP)
    # What send returned is what the inbox keeps under its key.
    for event, (kind, result) in zip(events, fast.outputs, strict=True):
        assert kind == "result"
        assert fast.observed.inbox[f"p1/{event.id}"] == result
    history = fast.observed.history
    assert [h.seq for h in history] == list(range(1, n + 1))
    assert [h.event["id"] for h in history] == [e.id for e in events]
    assert fast.observed.entities["p1"][1] == history[-1].version
    assert len({row[0] for row in fast.observed.outbox}) == len(fast.observed.outbox)
    assert {row[2] for row in fast.observed.outbox} == {"done"}


def test_the_mixed_sequence_stores_exactly_this(build: Build, store: Store) -> None:
    """The reference itself pinned down, so that both runs agreeing is not both wrong."""
    context, events = SEQUENCES["mixed"]

    def scenario(rts: Sequence[Runtime], clock: Clock) -> list[Any]:
        [rt] = rts
        rt.create("p1", context)
        outputs: list[Any] = []
        for event in events:
            clock.advance(1)
            outputs.append(outcome(partial(rt.send, "p1", event)))
        return outputs

    fast, _ = both(build, store, scenario)
    assert [
        (h.event["id"], h.from_state, h.to_state, h.version, h.success, h.actions, h.at)
        for h in fast.observed.history
    ] == [
        ("e1", "NEW", "NEW", 2, True, ["record"], at(1)),
        ("e2", "NEW", "WAITING", 3, True, [], at(2)),
        ("e3", "WAITING", "WAITING", 4, True, [], at(3)),
        ("e4", "WAITING", "WAITING", 5, True, ["record"], at(4)),
        ("e5", "WAITING", "WAITING", 5, False, [], at(5)),
        ("e6", "WAITING", "CAPTURED", 6, True, ["charge_card", "notify"], at(6)),
        ("e7", "CAPTURED", "CAPTURED", 6, False, [], at(7)),
        ("e8", "CAPTURED", "CAPTURED", 7, True, ["record"], at(8)),
    ]
    assert [(row[0], row[2], row[3]) for row in fast.observed.outbox] == [
        ("p1:2:0", "done", {"name": "record"}),
        ("p1:5:0", "done", {"name": "record"}),
        ("p1:6:0", "done", {"name": "charge_card"}),
        ("p1:6:1", "done", {"name": "notify", "params": {"channel": "email"}}),
        ("p1:7:0", "done", {"name": "record"}),
    ]
    # Armed by e3 (generation 4), kept by the internal e4, cancelled by leaving (e6).
    assert fast.observed.entities["p1"] == ("CAPTURED", 7, at(6), None, None)


def test_a_timer_armed_ahead_is_the_locked_path_s(build: Build, store: Store) -> None:
    def scenario(rts: Sequence[Runtime], clock: Clock) -> list[Any]:
        [rt] = rts
        rt.create("p1")
        clock.advance(1)
        outputs = [outcome(partial(rt.send, "p1", Event("note", id="e1")))]
        clock.advance(1)
        outputs.append(outcome(partial(rt.send, "p1", Event("wait", id="e2"))))
        clock.advance(1)
        outputs.append(outcome(partial(rt.send, "p1", Event("note", id="e3"))))
        return outputs

    fast, _ = both(build, store, scenario)
    # Armed when e2 entered WAITING (version 3), due 30 s later; e3 kept it.
    assert fast.observed.entities["p1"] == ("WAITING", 4, at(2), 3, at(32))


# -- 2. a stale memory misses, and the locked path decides ------------------------------


@pytest.mark.parametrize(
    ("theirs", "mine", "versions", "state", "keys", "success"),
    [
        # Ahead, A would write outbox key p1:3:0, which B's capture holds already.
        ("capture", "note", [2, 3, 4], "CAPTURED", ["2:0", "3:0", "3:1", "4:0"], True),
        # Ahead, A would apply NEW -> WAITING; in CAPTURED it is rejected.
        ("capture", "wait", [2, 3, 3], "CAPTURED", ["2:0", "3:0", "3:1"], False),
        # The same decision either way: only the version moved.
        ("note", "capture", [2, 3, 4], "CAPTURED", ["2:0", "3:0", "4:0", "4:1"], True),
        # A self-transition: B re-armed the timer (generation 3), A's memory has 1.
        ("wait", "wait", [2, 3, 4], "WAITING", ["2:0"], True),
        # Ahead, A's guard says no in NEW (amount 5), a rejection: no version to
        # update, so the entity's UPDATE cannot catch it; in WAITING 'big' is invalid.
        ("wait", "big", [2, 3, 3], "WAITING", ["2:0"], False),
        # The same rejection in the same state, but B moved the version (and not the
        # timer): written ahead, the history row would carry A's stale version 2.
        ("note", "big", [2, 3, 3], "NEW", ["2:0", "3:0"], False),
    ],
)
def test_a_stale_memory_misses_and_falls_back_invisibly(
    build: Build,
    store: Store,
    paths: Paths,
    theirs: str,
    mine: str,
    versions: list[int],
    state: str,
    keys: list[str],
    success: bool,
) -> None:
    taken: list[str] = []

    def scenario(rts: Sequence[Runtime], clock: Clock) -> list[Any]:
        a, b = rts
        a.create("p1", {"amount": 5})
        outputs: list[Any] = []
        for n, (rt, event) in enumerate(((a, "note"), (b, theirs), (a, mine))):
            clock.advance(1)
            path, out = paths.step(partial(rt.send, "p1", Event(event, id=f"s{n}")))
            taken.append(path)
            outputs.append(out)
        return outputs

    fast, _ = both(build, store, scenario, runtimes=2)
    # A's third send: one write_expected that failed, then one receive.
    assert taken == ["locked", "locked", "missed"] + ["locked"] * 3
    a, _b = fast.runtimes
    assert a._ahead == -_MISS_COST
    history = fast.observed.history
    assert [h.seq for h in history] == [1, 2, 3]
    assert [h.version for h in history] == versions
    assert [h.success for h in history] == [True, True, success]
    assert fast.outputs[2][1]["success"] is success
    assert fast.outputs[2][1]["source_state"] == history[1].to_state
    assert fast.observed.entities["p1"][:2] == (state, versions[-1])
    assert [row[0] for row in fast.observed.outbox] == [f"p1:{k}" for k in keys]
    # A remembers what the locked path wrote, not its stale guess.
    seen, _, _ = a._seen["p1"]
    assert (seen.state, seen.version) == (state, versions[-1])


def test_a_miss_is_counted_once_and_the_next_send_is_ahead_again_once_the_score_allows(
    build: Build, store: Store, paths: Paths
) -> None:
    name = fresh_name()
    a, b = build(name, clock=Clock()), build(name, clock=Clock(), worker_id="w2")
    a.create("p1")
    assert paths.step(partial(a.send, "p1", Event("note", id="a1")))[0] == "locked"
    assert paths.step(partial(b.send, "p1", Event("note", id="b1")))[0] == "locked"
    before = paths.counts()
    assert paths.step(partial(a.send, "p1", Event("note", id="a2")))[0] == "missed"
    assert tuple(x - y for x, y in zip(paths.counts(), before, strict=True)) == (1, 1, 1)
    # Below zero: the next _MISS_COST sends lock first; the ones after go ahead.
    later = [
        paths.step(partial(a.send, "p1", Event("note", id=f"later{i}")))[0]
        for i in range(_MISS_COST + 2)
    ]
    assert later == ["locked"] * _MISS_COST + ["ahead"] * 2
    assert a._ahead == 2
    n = 3 + len(later)
    history = history_of(store, name, "p1")
    assert [h.seq for h in history] == list(range(1, n + 1))
    assert [h.version for h in history] == list(range(2, n + 2))
    assert outbox_keys(store, name) == [f"{name}:p1:{v}:0" for v in range(2, n + 2)]


# -- 3. redelivery through the fast path ---------------------------------------------------


@pytest.mark.parametrize("trigger", ["capture", "big"], ids=["applied", "rejected"])
def test_a_redelivery_sent_ahead_returns_the_first_result_and_changes_nothing(
    build: Build, store: Store, paths: Paths, trigger: str
) -> None:
    name = fresh_name()
    clock = Clock()
    rt = build(name, clock=clock)
    rt.create("p1", {"amount": 5})
    rt.send("p1", Event("note", id="k0"))  # locked: remembered
    clock.advance(1)
    path, first = paths.step(partial(rt.send, "p1", Event(trigger, id="k1")))
    assert path == "ahead"
    state = (history_of(store, name, "p1"), rt.get("p1"), outbox_keys(store, name))
    clock.advance(1)
    # Same key, other content: the key is what identifies the event.
    path, again = paths.step(partial(rt.send, "p1", Event("wait", {"x": 1}), idempotency_key="k1"))
    assert path == "missed"
    assert again == first
    assert (history_of(store, name, "p1"), rt.get("p1"), outbox_keys(store, name)) == state
    assert len(state[0]) == 2
    # And the entity goes on from there.
    assert rt.send("p1", Event("note", id="k2")).success
    assert [h.event["id"] for h in history_of(store, name, "p1")] == ["k0", "k1", "k2"]


def test_redeliveries_store_what_the_locked_path_stores(build: Build, store: Store) -> None:
    def scenario(rts: Sequence[Runtime], clock: Clock) -> list[Any]:
        [rt] = rts
        rt.create("p1", {"amount": 5})
        outputs: list[Any] = []
        for trigger, key in [
            ("note", "k0"),
            ("capture", "k1"),
            ("wait", "k1"),
            ("note", "k0"),
            ("note", "k2"),
            ("note", "k2"),
            ("note", "k3"),
        ]:
            clock.advance(1)
            outputs.append(outcome(partial(rt.send, "p1", Event(trigger, id=key))))
        return outputs

    fast, _ = both(build, store, scenario)
    assert fast.outputs[2] == fast.outputs[1]
    assert fast.outputs[3] == fast.outputs[0]
    assert fast.outputs[5] == fast.outputs[4]
    assert [h.event["id"] for h in fast.observed.history] == ["k0", "k1", "k2", "k3"]


# -- 4. a backlog is applied first ---------------------------------------------------------


@pytest.mark.parametrize("queued_key", ["q1", "s1"], ids=["another-key", "the-key-sent"])
def test_a_queued_event_is_applied_before_the_one_sent_ahead(
    build: Build, store: Store, paths: Paths, queued_key: str
) -> None:
    taken: list[str] = []

    def scenario(rts: Sequence[Runtime], clock: Clock) -> list[Any]:
        a, b = rts
        a.create("p1")
        outputs: list[Any] = [outcome(partial(a.send, "p1", Event("note", id="n1")))]
        clock.advance(1)
        outputs.append(b.enqueue("p1", Event("wait", id=queued_key)))  # A did not see it
        clock.advance(1)
        path, out = paths.step(partial(a.send, "p1", Event("capture", id="s1")))
        taken.append(path)
        outputs.append(out)
        outputs.append("p1" in a._seen)  # drained: nothing remembered
        clock.advance(1)
        path, out = paths.step(partial(a.send, "p1", Event("note", id="n2")))
        taken.append(path)
        outputs.append(out)
        return outputs

    fast, _ = both(build, store, scenario, runtimes=2)
    assert taken == ["missed", "locked", "locked", "locked"]
    assert fast.outputs[3] is False
    history = fast.observed.history
    if queued_key == "q1":
        assert [(h.event["id"], h.from_state, h.to_state) for h in history] == [
            ("n1", "NEW", "NEW"),
            ("q1", "NEW", "WAITING"),
            ("s1", "WAITING", "CAPTURED"),
            ("n2", "CAPTURED", "CAPTURED"),
        ]
        assert fast.outputs[2][1]["source_state"] == "WAITING"
    else:
        # The key sent was queued already: its queued event (wait) is the one applied.
        assert [(h.event["id"], h.event["trigger"], h.to_state) for h in history] == [
            ("n1", "note", "NEW"),
            ("s1", "wait", "WAITING"),
            ("n2", "note", "WAITING"),
        ]
        assert fast.outputs[2][1]["trigger"] == "wait"
    assert [h.version for h in history] == list(range(2, len(history) + 2))


# -- 5. timers: a firing moves the entity on under the runtime's memory ----------------------


def test_a_send_after_a_timer_fired_gives_the_locked_path_s_result(
    build: Build, store: Store, paths: Paths
) -> None:
    taken: list[str] = []

    def scenario(rts: Sequence[Runtime], clock: Clock) -> list[Any]:
        [rt] = rts
        rt.create("p1")
        clock.advance(1)
        outputs: list[Any] = [outcome(partial(rt.send, "p1", Event("note", id="n1")))]
        clock.advance(59)  # NEW's timeout: armed at T0, due at T0 + 60
        outputs += [rt.sweep_timers(), rt.process_inbox()]
        for trigger, key in (("capture", "c1"), ("note", "n2")):
            clock.advance(1)
            path, out = paths.step(partial(rt.send, "p1", Event(trigger, id=key)))
            taken.append(path)
            outputs.append(out)
        return outputs

    fast, _ = both(build, store, scenario)
    assert taken == ["missed", "locked"] + ["locked"] * 2
    assert fast.outputs[1:3] == [1, 0]
    assert [(h.event["id"], h.to_state, h.version, h.success) for h in fast.observed.history] == [
        ("n1", "NEW", 2, True),
        ("timer:timeout:1", "EXPIRED", 3, True),
        ("c1", "EXPIRED", 3, False),  # EXPIRED is terminal: rejected, not captured
        ("n2", "EXPIRED", 3, False),
    ]
    assert fast.observed.entities["p1"][:2] == ("EXPIRED", 3)


def test_a_timer_dropped_without_a_new_version_is_caught_by_its_generation(
    build: Build, store: Store, paths: Paths
) -> None:
    # A newer spec whose NEW has no timeout drops the timer as it fires: the entity's
    # version stays, only its timer changed. The memory's timer (generation 1) is stale.
    newer_spec = {**SPEC, "states": [{"name": "NEW", "type": "initial"}, *SPEC["states"][1:]]}
    taken: list[str] = []

    def scenario(rts: Sequence[Runtime], clock: Clock) -> list[Any]:
        [rt] = rts
        newer = build(rt.name, clock=clock, worker_id="w9", spec=newer_spec)
        rt.create("p1")
        clock.advance(1)
        outputs: list[Any] = [outcome(partial(rt.send, "p1", Event("note", id="n1")))]
        seen, armed, _ = rt._seen["p1"]
        outputs.append((seen.version, None if armed is None else armed.generation))
        clock.advance(59)
        outputs += [newer.sweep_timers(), rt.get("p1").version, dict(rt.get("p1").deadlines)]
        for trigger, key in (("note", "n2"), ("wait", "w1")):
            clock.advance(1)
            path, out = paths.step(partial(rt.send, "p1", Event(trigger, id=key)))
            taken.append(path)
            outputs.append(out)
        return outputs

    fast, _ = both(build, store, scenario)
    assert fast.outputs[1:5] == [(2, 1), 1, 2, {}]
    assert taken == ["missed", "locked"] + ["locked"] * 2
    assert [(h.event["id"], h.to_state, h.version) for h in fast.observed.history] == [
        ("n1", "NEW", 2),
        ("timer:timeout:1", "NEW", 2),
        ("n2", "NEW", 3),
        ("w1", "WAITING", 4),
    ]
    assert fast.observed.entities["p1"][:4] == ("WAITING", 4, at(62), 4)


# -- 6. guards that raise ---------------------------------------------------------------------


def test_a_guard_raising_in_the_remembered_state_only_does_not_raise(
    build: Build, store: Store, paths: Paths
) -> None:
    taken: list[str] = []

    def scenario(rts: Sequence[Runtime], clock: Clock) -> list[Any]:
        a, b = rts
        a.create("p1", {"amount": 500, "explode": True})  # is_big raises: in NEW only
        outputs: list[Any] = [outcome(partial(a.send, "p1", Event("note", id="n1")))]
        clock.advance(1)
        outputs.append(outcome(partial(b.send, "p1", Event("wait", id="w1"))))
        clock.advance(1)
        # A remembers NEW, where deciding 'big' raises; the entity is WAITING, where
        # 'big' has no transition at all.
        path, out = paths.step(partial(a.send, "p1", Event("big", id="b1")))
        taken.append(path)
        outputs.append(out)
        return outputs

    fast, locked = both(build, store, scenario, runtimes=2)
    # The decision ahead raised before any write: only the locked path met the store.
    assert taken == ["locked", "locked"]
    assert fast.runtimes[0]._ahead == -_MISS_COST
    assert locked.runtimes[0]._ahead == 0
    kind, result = fast.outputs[2]
    assert kind == "result"
    assert (result["success"], result["source_state"], result["trigger"]) == (
        False,
        "WAITING",
        "big",
    )
    assert [(h.event["id"], h.to_state, h.version, h.success) for h in fast.observed.history] == [
        ("n1", "NEW", 2, True),
        ("w1", "WAITING", 3, True),
        ("b1", "WAITING", 3, False),
    ]


def test_a_guard_raising_in_the_real_state_raises_and_writes_nothing(
    build: Build, store: Store, paths: Paths
) -> None:
    taken: list[str] = []

    def scenario(rts: Sequence[Runtime], clock: Clock) -> list[Any]:
        [rt] = rts
        rt.create("p1", {"amount": 500, "explode": True})
        outputs: list[Any] = [outcome(partial(rt.send, "p1", Event("note", id="n1")))]
        clock.advance(1)
        path, out = paths.step(partial(rt.send, "p1", Event("big", id="b1")))
        taken.append(path)
        outputs.append(out)
        with store.transaction() as tx:
            got = tx.receive(rt.name, "p1", "b1", TIMER)
            assert got is not None
            outputs.append((got.inbox, got.backlog, got.entity.version))
        clock.advance(1)
        outputs.append(outcome(partial(rt.send, "p1", Event("note", id="n2"))))
        return outputs

    fast, _ = both(build, store, scenario)
    assert taken == ["locked", "locked"]
    assert fast.outputs[1] == (
        "raised",
        "GuardError",
        "guard 'is_big' failed while deciding 'big' in state 'NEW' (transitions[3])",
    )
    assert fast.outputs[2] == (None, False, 2)  # no inbox row, nothing queued, no version
    assert [h.event["id"] for h in fast.observed.history] == ["n1", "n2"]
    assert [row[0] for row in fast.observed.outbox] == ["p1:2:0", "p1:3:0"]


def test_a_guard_error_from_send_ahead_is_the_locked_path_s(build: Build, store: Store) -> None:
    rt = build(fresh_name(), clock=Clock())
    rt.create("p1", {"explode": True})
    rt.send("p1", Event("note", id="n1"))
    with pytest.raises(GuardError) as caught:
        rt.send("p1", Event("big", id="b1"))
    error = caught.value
    assert (error.guard, error.state, error.trigger) == ("is_big", "NEW", "big")
    assert isinstance(error.__cause__, ValueError)
    assert [h.event["id"] for h in rt.history("p1")] == ["n1"]


# -- 7. the score ---------------------------------------------------------------------------


def test_misses_turn_sending_ahead_off_for_a_while(
    build: Build, store: Store, paths: Paths
) -> None:
    assert _MISS_COST >= 1 and _AHEAD_CAP >= _MISS_COST  # what the expectations rely on
    name = fresh_name()
    clock = Clock()
    a = build(name, clock=clock)
    b = build(name, clock=clock, worker_id="w2")
    a.create("p1")
    mine: list[str] = []
    theirs: list[str] = []
    n = itertools.count()

    def send(rt: Runtime, into: list[str]) -> None:
        into.append(paths.step(partial(rt.send, "p1", Event("note", id=f"e{next(n)}")))[0])

    counts = [0, 0, 0]

    def send_a() -> None:
        before = paths.counts()
        send(a, mine)
        for i, (x, y) in enumerate(zip(paths.counts(), before, strict=True)):
            counts[i] += x - y

    # Alternating with B, every attempt of A's misses: then it locks first for
    # _MISS_COST sends, and tries again.
    rounds = 2 + 3 * (_MISS_COST + 1)
    for _ in range(rounds):
        send_a()
        send(b, theirs)
    cycle = ["locked"] * _MISS_COST + ["missed"]
    assert mine == ["locked", "missed", *cycle * 3]
    assert theirs == mine  # B is in the same position
    assert counts == [rounds, 4, 4]  # receives, write_expected, of which missed
    assert a._ahead == -_MISS_COST
    # B stops: A locks first until its score is back to zero, then goes ahead.
    mine.clear()
    for _ in range(_MISS_COST + 3):
        send_a()
    assert mine == ["locked"] * _MISS_COST + ["ahead"] * 3
    assert counts == [rounds + _MISS_COST, 7, 4]
    assert a._ahead == 3
    # Successes raise the score up to the cap, no further.
    mine.clear()
    for _ in range(_AHEAD_CAP):
        send_a()
    assert mine == ["ahead"] * _AHEAD_CAP
    assert a._ahead == _AHEAD_CAP
    # With a full score a miss does not stop A: its next send goes ahead at once.
    mine.clear()
    send(b, theirs)
    send_a()
    send_a()
    assert mine == ["missed", "ahead"]
    assert a._ahead == _AHEAD_CAP - _MISS_COST + 1
    history = history_of(store, name, "p1")
    total = 2 * rounds + _MISS_COST + 3 + _AHEAD_CAP + 3
    assert [h.seq for h in history] == list(range(1, total + 1))
    assert [h.version for h in history] == list(range(2, total + 2))
    assert outbox_keys(store, name) == [f"{name}:p1:{v}:0" for v in range(2, total + 2)]


# -- 8. the memory is bounded -----------------------------------------------------------------


def test_the_memory_keeps_the_entities_written_last(
    build: Build, store: Store, paths: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime_module, "_SEEN", 2)
    rt = build(fresh_name(), clock=Clock())
    for entity_id in ("a", "b", "c"):
        rt.create(entity_id)
    for entity_id in ("a", "b", "c"):
        assert paths.step(partial(rt.send, entity_id, Event("note", id="n1")))[0] == "locked"
    assert list(rt._seen) == ["b", "c"]
    assert [rt._seen[e][0].version for e in ("b", "c")] == [2, 2]
    # 'a' was forgotten: its next send locks first, and then it is remembered instead
    # of 'b', the one kept longest; 'c' still goes ahead.
    assert paths.step(partial(rt.send, "a", Event("note", id="n2")))[0] == "locked"
    assert list(rt._seen) == ["c", "a"]
    assert paths.step(partial(rt.send, "c", Event("note", id="n2")))[0] == "ahead"
    assert sorted(rt._seen) == ["a", "c"]
    assert [rt._seen[e][0].version for e in ("a", "c")] == [3, 3]


def test_the_memory_drops_the_entity_written_least_recently(
    build: Build, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime_module, "_SEEN", 2)
    rt = build(fresh_name(), clock=Clock())
    for entity_id in ("a", "b", "c"):
        rt.create(entity_id)
        rt.send(entity_id, Event("note", id="n1"))
    rt.send("b", Event("note", id="n2"))  # ahead: b is now the one written last
    rt.send("a", Event("note", id="n2"))  # locked: a is remembered again, one must go
    # Written last: b, then a. Kept: c (written before b) and a.
    assert sorted(rt._seen) == ["a", "b"]


# -- 9, 10. the times a send ahead writes -------------------------------------------------------


def _snapshot_outbox(store: Store, name: str, into: list[Any]) -> Callable[[], None]:
    """An action hook: the outbox as it is while the first attempt runs (before its ack
    clears the lease)."""

    def hook() -> None:
        with store.transaction() as tx:
            into.extend(
                (r.key, r.status, r.next_attempt_at, r.lease_owner, r.lease_until)
                for r in tx.outbox_rows(machine=name, status="pending")
            )

    return hook


def test_with_a_clock_of_its_own_a_send_ahead_writes_the_clock_s_times(
    build: Build, store: Store, paths: Paths
) -> None:
    name = fresh_name()
    clock = Clock()
    actions = Actions()
    rt = build(name, clock=clock, actions=actions, lease_seconds=45)
    rt.create("p1")
    clock.advance(1)
    rt.send("p1", Event("note", id="n1"))
    clock.advance(5)
    assert paths.step(partial(rt.send, "p1", Event("wait", id="w1")))[0] == "ahead"
    t1 = at(6)
    info = rt.get("p1")
    assert (info.state, info.entered_at, dict(info.deadlines)) == (
        "WAITING",
        t1,
        {"timeout": t1 + timedelta(seconds=30)},
    )
    with store.transaction() as tx:
        got = tx.receive(name, "p1", "w1", TIMER)
    assert got is not None and got.inbox is not None and got.timer is not None
    assert (got.inbox.received_at, got.timer.generation) == (t1, 3)
    clock.advance(7)
    t2 = t1 + timedelta(seconds=7)
    rows: list[Any] = []
    actions.during["charge_card"] = _snapshot_outbox(store, name, rows)
    assert paths.step(partial(rt.send, "p1", Event("capture", id="c1")))[0] == "ahead"
    assert rows == [
        (f"{name}:p1:4:0", "pending", t2, "w1", t2 + timedelta(seconds=45)),
        (f"{name}:p1:4:1", "pending", t2, "w1", t2 + timedelta(seconds=45)),
    ]
    assert [h.at for h in rt.history("p1")] == [at(1), t1, t2]
    assert rt.get("p1").entered_at == t2


def test_without_a_clock_a_send_ahead_writes_the_store_s_time(
    build: Build, store: Store, paths: Paths
) -> None:
    name = fresh_name()
    actions = Actions()
    rt = build(name, actions=actions, lease_seconds=45)
    rt.create("p1")
    rt.send("p1", Event("note", id="n1"))
    [first] = rt.history("p1")
    stand_in = rt._seen["p1"][2]
    assert stand_in == first.at  # the time the locked path used
    assert paths.step(partial(rt.send, "p1", Event("wait", id="w1")))[0] == "ahead"
    second = rt.history("p1")[1]
    assert second.at > first.at
    assert abs(second.at - datetime.now(UTC)) < timedelta(minutes=1)
    assert rt._seen["p1"][2] < second.at  # what it remembers is older than what it wrote
    # Every time the write holds moved by the same amount: onto the store's clock.
    info = rt.get("p1")
    assert (info.entered_at, dict(info.deadlines)) == (
        second.at,
        {"timeout": second.at + timedelta(seconds=30)},
    )
    with store.transaction() as tx:
        got = tx.receive(name, "p1", "w1", TIMER)
    assert got is not None and got.inbox is not None
    assert got.inbox.received_at == second.at
    # A stand-in a day old: the times written are still the store's, now.
    seen, armed, _ = rt._seen["p1"]
    rt._seen["p1"] = (seen, armed, stand_in - timedelta(days=1))
    rows: list[Any] = []
    actions.during["charge_card"] = _snapshot_outbox(store, name, rows)
    assert paths.step(partial(rt.send, "p1", Event("capture", id="c1")))[0] == "ahead"
    third = rt.history("p1")[2]
    assert third.at > second.at
    assert abs(third.at - datetime.now(UTC)) < timedelta(minutes=1)
    assert rows == [
        (f"{name}:p1:4:0", "pending", third.at, "w1", third.at + timedelta(seconds=45)),
        (f"{name}:p1:4:1", "pending", third.at, "w1", third.at + timedelta(seconds=45)),
    ]
    assert rt.get("p1").entered_at == third.at


# -- the property: any interleaving, two runtimes, two entities ---------------------------------

# Weighted towards what lets a runtime go ahead; "big!": its guard raises in NEW.
TRIGGERS = ["note"] * 4 + ["wait"] * 2 + ["capture", "big", "big!", "nope"]
STEP = st.tuples(
    st.sampled_from(["send"] * 12 + ["enqueue", "sweep", "process"]),
    st.integers(0, 1),  # the entity
    st.sampled_from([0] * 5 + [1]),  # the runtime: mostly the first
    st.sampled_from(TRIGGERS),
    st.one_of(*[st.none()] * 5, st.integers(0, 30)),  # now and then, an earlier key
)
Step = tuple[str, int, int, str, int | None]


def play(steps: Sequence[Step]) -> Scenario:
    def scenario(rts: Sequence[Runtime], clock: Clock) -> list[Any]:
        entities = ("e0", "e1")
        rts[0].create("e0", {"amount": 500})
        rts[0].create("e1", {"amount": 5})
        keys: dict[str, list[str]] = {e: [] for e in entities}
        outputs: list[Any] = []
        for n, (op, e, r, trigger, reuse) in enumerate(steps):
            clock.advance(1)
            rt, entity_id = rts[r], entities[e]
            used = keys[entity_id]
            key = used[reuse % len(used)] if reuse is not None and used else f"k{n}"
            used.append(key)
            payload = {"explode": True} if trigger == "big!" else {}
            event = Event(trigger.rstrip("!"), payload, id=key)
            if op == "send":
                outputs.append(outcome(partial(rt.send, entity_id, event)))
            elif op == "enqueue":
                outputs.append(rt.enqueue(entity_id, event))
            elif op == "sweep":
                clock.advance(30)
                outputs.append(rt.sweep_timers())
            else:
                outputs.append(rt.process_inbox())
        return outputs

    return scenario


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(steps=st.lists(STEP, min_size=6, max_size=30))
def test_any_interleaving_stores_what_the_locked_path_stores(
    build: Build, store: Store, steps: list[Step]
) -> None:
    # Every example runs under machine names of its own: no example sees another's rows.
    fast, _ = both(build, store, play(steps), runtimes=2, entities=("e0", "e1"))
    a = fast.runtimes[0]
    for entity_id in ("e0", "e1"):
        report = a.replay(entity_id)
        info = a.get(entity_id)
        assert report.matches, report.mismatch
        assert (report.state, report.version) == (info.state, info.version)
        assert report.events == len(a.history(entity_id))
