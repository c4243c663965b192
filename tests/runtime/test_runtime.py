"""The runtime's rules, on every store (the ``store`` fixture), with an injected clock.

Each test builds a :class:`Runtime` over the payment machine below and checks one rule
of ``statewise.runtime.runtime``: entities, events exactly once and in order, the
outbox (first attempt, retries, dead rows, the fallback), leases, timers, replay and
bad input. Time only moves when a test moves it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from random import Random
from typing import Any

import pytest

from statewise import ActionNotFoundError, ActionRegistry, Event, GuardError, GuardRegistry
from statewise.machine import StateMachine
from statewise.runtime import (
    ConcurrencyError,
    EntityExistsError,
    EntityNotFoundError,
    Runtime,
)
from statewise.runtime.store import OutboxRow, Received, Store

SPEC: dict[str, Any] = {
    "meta": {"machine_name": "pay"},
    "states": [
        {
            "name": "NEW",
            "type": "initial",
            "timeout": {"seconds": 60, "destination": "EXPIRED", "actions": ["expire_note"]},
        },
        {"name": "CAPTURED", "on_enter": [{"name": "notify", "params": {"channel": "email"}}]},
        {"name": "WAITING", "timeout": {"seconds": 30, "destination": "EXPIRED"}},
        {"name": "EXPIRED", "type": "terminal"},
        {"name": "NEEDS_ATTENTION", "type": "error", "on_enter": ["page_ops"]},
    ],
    "transitions": [
        {
            "trigger": "capture",
            "source": ["NEW", "WAITING"],
            "dest": "CAPTURED",
            "actions": ["charge_card"],
        },
        {"trigger": "wait", "source": ["NEW", "WAITING"], "dest": "WAITING"},
        {"trigger": "note", "source": "*", "actions": ["record"]},
        {"trigger": "big", "source": "NEW", "dest": "CAPTURED", "guards": ["is_big"]},
    ],
    "error_policy": {
        "default_fallback": "NEEDS_ATTENTION",
        "retry_attempts": 2,
        "backoff_seconds": 1.0,
    },
}
T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
FOREVER = -1


class Clock:
    """A clock that moves only when told; shared by every runtime of a test."""

    def __init__(self) -> None:
        self.now = T0
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += timedelta(seconds=seconds)


@dataclass
class Actions:
    """The payment machine's actions: each call recorded; ``fail[name]`` failures to
    come (``FOREVER``: every call); ``during[name]`` runs inside the call."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    fail: dict[str, int] = field(default_factory=dict)
    during: dict[str, Callable[[], None]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def registry(self) -> ActionRegistry:
        registry = ActionRegistry()

        def charge_card(ctx: Mapping[str, Any], *, idempotency_key: str) -> None:
            self._call("charge_card", ctx, key=idempotency_key)

        def notify(ctx: Mapping[str, Any], *, channel: str) -> None:
            self._call("notify", ctx, channel=channel)

        def page_ops(ctx: Mapping[str, Any]) -> None:
            self._call("page_ops", ctx)

        def expire_note(ctx: Mapping[str, Any]) -> None:
            self._call("expire_note", ctx)

        def record(ctx: Mapping[str, Any], idempotency_key: str) -> None:
            self._call("record", ctx, key=idempotency_key)

        for fn in (charge_card, notify, page_ops, expire_note, record):
            registry.register(fn)
        return registry

    def _call(self, name: str, ctx: Mapping[str, Any], **extra: Any) -> None:
        with self.lock:
            self.calls.append((name, {"ctx": dict(ctx), **extra}))
            left = self.fail.get(name, 0)
            if left:
                self.fail[name] = left - 1 if left > 0 else left
        hook = self.during.get(name)
        if hook is not None:
            hook()
        if left:
            raise RuntimeError(f"{name} is down")

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def keys(self, name: str) -> list[str]:
        return [extra["key"] for n, extra in self.calls if n == name]


def guards() -> GuardRegistry:
    registry = GuardRegistry()

    @registry.register("is_big")
    def is_big(ctx: Mapping[str, Any]) -> bool:
        if ctx.get("explode"):
            raise ValueError("boom")
        return bool(ctx["amount"] >= 100)

    return registry


def machine(spec: dict[str, Any] = SPEC) -> StateMachine:
    return StateMachine.from_dict(spec, guards=guards())


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def actions() -> Actions:
    return Actions()


@pytest.fixture
def make(store: Store, clock: Clock, actions: Actions) -> Callable[..., Runtime]:
    """``make(**options)``: a runtime over the test's store, clock and actions."""

    def build(spec: dict[str, Any] = SPEC, **options: Any) -> Runtime:
        options.setdefault("random", Random(7))
        return Runtime(machine(spec), store, actions=actions.registry(), clock=clock, **options)

    return build


@pytest.fixture
def rt(make: Callable[..., Runtime]) -> Runtime:
    return make(worker_id="w1")


def outbox(store: Store, status: str | None = None) -> list[OutboxRow]:
    with store.transaction() as tx:
        return tx.outbox_rows(status=status, machine="pay")


def pending_events(store: Store) -> int:
    with store.transaction() as tx:
        return len(tx.inbox_pending("pay", 1000))


# -- entities ------------------------------------------------------------------------


def test_create_puts_the_entity_in_the_initial_state_and_arms_its_timeout(rt: Runtime) -> None:
    info = rt.create("p1", {"amount": 5})
    assert (info.state, info.version, info.entered_at) == ("NEW", 1, T0)
    assert dict(info.context) == {"amount": 5}
    assert dict(info.deadlines) == {"timeout": T0 + timedelta(seconds=60)}
    assert rt.get("p1") == info
    assert rt.history("p1") == []  # only events make history


def test_create_refuses_an_existing_id_and_changes_nothing(rt: Runtime, clock: Clock) -> None:
    rt.create("p1", {"amount": 5})
    clock.advance(10)
    with pytest.raises(EntityExistsError, match="'p1' of machine 'pay' already exists"):
        rt.create("p1", {"amount": 999})
    info = rt.get("p1")
    assert dict(info.context) == {"amount": 5}
    assert info.deadlines["timeout"] == T0 + timedelta(seconds=60)


def test_create_refuses_a_context_that_is_not_a_json_object(rt: Runtime) -> None:
    with pytest.raises(TypeError, match="context must be JSON data"):
        rt.create("p1", {"when": T0})
    with pytest.raises(TypeError, match="context must be a mapping"):
        rt.create("p1", [1, 2])  # type: ignore[arg-type]
    with pytest.raises(EntityNotFoundError):
        rt.get("p1")


def test_a_state_without_a_timeout_has_no_deadline(make: Callable[..., Runtime]) -> None:
    rt = make({**SPEC, "states": [{"name": "NEW", "type": "initial"}, *SPEC["states"][1:]]})
    assert dict(rt.create("p1").deadlines) == {}
    assert rt.sweep_timers() == 0


# -- send: applied, rejected, redelivered, ordered ---------------------------------------


@dataclass
class DurabilitySpy:
    """A store that records the ``durable`` flag of every transaction opened on it,
    and ``"ack"`` for every ack handed to it."""

    inner: Store
    flags: list[bool | str] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        self.url = self.inner.url

    def transaction(self, *, durable: bool = True) -> Any:
        self.flags.append(durable)
        return self.inner.transaction(durable=durable)

    def ack_later(self, row_id: int, owner: str, at: datetime | None = None) -> None:
        self.flags.append("ack")
        self.inner.ack_later(row_id, owner, at)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.parametrize("own_clock", [True, False])
def test_the_event_commits_durably_and_only_acks_do_not(
    store: Store, clock: Clock, actions: Actions, own_clock: bool
) -> None:
    spy = DurabilitySpy(store)
    rt = Runtime(machine(), spy, actions=actions.registry(), clock=clock if own_clock else None)
    rt.create("p1", {"amount": 5, "card": "stored"})
    spy.flags.clear()
    result = rt.send("p1", Event("capture", {"card": "new", "cvv": "1"}, id="m-1"))
    assert result.action_names == ("charge_card", "notify")
    # The event's transaction, then one ack per action, handed to the store to write
    # with its next transaction (or on its ack thread, not waiting for the disk).
    assert spy.flags == [True, "ack", "ack"]
    rows = outbox(store)
    assert [r.status for r in rows] == ["done", "done"]
    assert [r.lease_owner for r in rows] == [None, None]


def test_send_applies_the_event_and_runs_its_actions_after_the_commit(
    rt: Runtime, store: Store, actions: Actions
) -> None:
    rt.create("p1", {"amount": 5, "card": "stored"})
    result = rt.send("p1", Event("capture", {"card": "new", "cvv": "1"}, id="m-1"))
    assert result.success and result.target_state == "CAPTURED"
    assert result.action_names == ("charge_card", "notify")
    info = rt.get("p1")
    assert (info.state, info.version, dict(info.deadlines)) == ("CAPTURED", 2, {})
    # The action reads the stored context over the payload, gets the spec's params and
    # the outbox row's key as its idempotency key.
    assert actions.calls == [
        ("charge_card", {"ctx": {"amount": 5, "card": "stored", "cvv": "1"}, "key": "pay:p1:2:0"}),
        ("notify", {"ctx": {"amount": 5, "card": "stored", "cvv": "1"}, "channel": "email"}),
    ]
    rows = outbox(store)
    assert [(r.key, r.status, r.lease_owner) for r in rows] == [
        ("pay:p1:2:0", "done", None),
        ("pay:p1:2:1", "done", None),
    ]
    assert rows[1].action == {"name": "notify", "params": {"channel": "email"}}
    [row] = rt.history("p1")
    assert (row.seq, row.version, row.from_state, row.to_state) == (1, 2, "NEW", "CAPTURED")
    assert (row.success, row.error, row.actions, row.at) == (
        True,
        None,
        ["charge_card", "notify"],
        T0,
    )
    assert row.event == {"trigger": "capture", "payload": {"card": "new", "cvv": "1"}, "id": "m-1"}


def test_a_rejected_event_is_recorded_without_changing_state_or_version(
    rt: Runtime, actions: Actions, store: Store
) -> None:
    rt.create("p1", {"amount": 5})
    result = rt.send("p1", Event("big", id="m-1"))
    assert not result.success
    assert result.error is not None and result.error.code == "guard_rejected"
    info = rt.get("p1")
    assert (info.state, info.version) == ("NEW", 1)
    [row] = rt.history("p1")
    assert (row.success, row.version, row.to_state, row.actions) == (False, 1, "NEW", [])
    assert row.error == str(result.error)
    assert actions.calls == [] and outbox(store) == []
    # The rejection is the event's result for good: redelivered, it is the answer again.
    assert rt.send("p1", Event("big", id="m-1")).to_dict() == result.to_dict()
    assert len(rt.history("p1")) == 1


def test_a_redelivered_event_changes_nothing_and_returns_the_first_result(
    rt: Runtime, actions: Actions, clock: Clock
) -> None:
    rt.create("p1", {"amount": 5})
    first = rt.send("p1", "capture", idempotency_key="k-1")
    clock.advance(5)
    # Same key, other content: the key is what identifies the event.
    again = rt.send("p1", Event("wait", {"x": 1}), idempotency_key="k-1")
    assert again.to_dict() == first.to_dict()
    assert rt.get("p1").version == 2
    assert len(rt.history("p1")) == 1
    assert actions.names() == ["charge_card", "notify"]


@pytest.mark.parametrize(
    "events",
    [
        [Event("capture", id="m-1")],  # applied, with actions
        [Event("big", id="m-1")],  # rejected by a guard
        [Event("nope", id="m-1")],  # no such trigger
        [Event("note", {"text": "héllo \u2603", "n": [1, 2.5, None]}, id="m-1")],  # internal
        [Event("wait", id="m-1"), Event("wait", id="m-2")],  # a self transition second
        [Event("wait", id="m-1"), Event("capture", {"deep": {"a": {"b": []}}}, id="m-2")],
    ],
)
def test_the_stored_result_is_the_result(rt: Runtime, store: Store, events: list[Event]) -> None:
    # The runtime writes the result's JSON from the decision's, made once, and the
    # event's: what the inbox keeps must be the result, whatever the decision.
    rt.create("p1", {"amount": 5})
    for event in events:
        result = rt.send("p1", event)
        assert event.id is not None
        with store.transaction() as tx:
            got = tx.receive("pay", "p1", event.id, "timeout")
        assert got is not None and got.inbox is not None
        assert got.inbox.result == result.to_dict()
        assert rt.send("p1", event).to_dict() == result.to_dict()  # and answers a redelivery


def test_the_key_is_the_event_id_by_default_and_required(rt: Runtime) -> None:
    rt.create("p1")
    rt.send("p1", Event("note", id="n-1"))
    assert rt.send("p1", Event("note", id="n-1")).success
    assert rt.get("p1").version == 2
    with pytest.raises(ValueError, match="'note' needs an idempotency key"):
        rt.send("p1", "note")
    with pytest.raises(ValueError, match="'note' needs an idempotency key"):
        rt.enqueue("p1", Event("note"))


@pytest.mark.parametrize(
    ("event", "key"),
    [
        (Event("timeout", id="timer:timeout:1"), None),
        (Event("error"), "x:fallback"),
        (Event("note", id="m:fallback"), "k"),
    ],
)
def test_the_runtime_s_own_keys_are_refused(rt: Runtime, event: Event, key: str | None) -> None:
    rt.create("p1")
    with pytest.raises(ValueError, match="is reserved"):
        rt.send("p1", event, idempotency_key=key)
    assert rt.history("p1") == []


def test_a_payload_that_is_not_json_is_refused(rt: Runtime) -> None:
    rt.create("p1")
    with pytest.raises(TypeError, match="the event payload must be JSON data"):
        rt.send("p1", Event("note", {"at": T0}, id="n-1"))
    with pytest.raises(TypeError, match="event must be a trigger name or an Event"):
        rt.send("p1", 42, idempotency_key="k")  # type: ignore[arg-type]


def test_events_apply_in_arrival_order(rt: Runtime, store: Store) -> None:
    rt.create("p1")
    assert rt.enqueue("p1", Event("wait", id="e1"))
    assert rt.enqueue("p1", Event("capture", id="e2"))
    assert not rt.enqueue("p1", Event("wait", id="e1"))  # a redelivery: not queued twice
    assert (rt.get("p1").state, pending_events(store)) == ("NEW", 2)
    # send applies the entity's older events first; the one just added comes last.
    result = rt.send("p1", Event("note", id="e3"))
    assert result.source_state == "CAPTURED"
    history = rt.history("p1")
    assert [h.event["id"] for h in history] == ["e1", "e2", "e3"]
    assert [h.version for h in history] == [2, 3, 4]
    assert [h.to_state for h in history] == ["WAITING", "CAPTURED", "CAPTURED"]
    assert pending_events(store) == 0
    # A queued event sent again before a worker got to it is applied then, once.
    assert rt.enqueue("p1", Event("note", id="e4"))
    assert rt.send("p1", Event("note", id="e4")).success
    assert [h.event["id"] for h in rt.history("p1")][-1:] == ["e4"]


def test_process_inbox_applies_queued_events_entity_by_entity(
    rt: Runtime, store: Store, actions: Actions
) -> None:
    for entity in ("a", "b"):
        rt.create(entity)
        rt.enqueue(entity, Event("note", id=f"{entity}-1"))
        rt.enqueue(entity, Event("capture", id=f"{entity}-2"))
    assert rt.process_inbox(limit=3) == 3
    assert pending_events(store) == 1
    assert rt.process_inbox() == 1
    assert rt.process_inbox() == 0
    assert (rt.get("a").state, rt.get("b").state) == ("CAPTURED", "CAPTURED")
    assert actions.names().count("charge_card") == 2
    assert rt.dispatch_outbox() == 0  # first attempts were made right after each commit


def test_process_inbox_leaves_an_event_whose_guard_raises_and_goes_on(
    rt: Runtime, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    rt.create("bad", {"explode": True})
    rt.create("good")
    rt.enqueue("bad", Event("big", id="b-1"))
    rt.enqueue("good", Event("note", id="g-1"))
    assert rt.process_inbox() == 1
    assert "entity 'bad': applying its events failed" in caplog.text
    assert pending_events(store) == 1 and rt.history("bad") == []


def test_should_stop_ends_the_background_halves_early(rt: Runtime, store: Store) -> None:
    rt.create("a")
    rt.enqueue("a", Event("note", id="a-1"))
    assert rt.process_inbox(should_stop=lambda: True) == 0
    assert rt.sweep_timers(should_stop=lambda: True) == 0
    assert pending_events(store) == 1


# -- the outbox: first attempt, retries, dead rows, the fallback ------------------------


def test_a_failing_action_is_retried_with_backoff_then_dead_then_the_fallback_once(
    rt: Runtime, store: Store, actions: Actions, clock: Clock
) -> None:
    rt.create("p1")
    actions.fail["notify"] = FOREVER
    result = rt.send("p1", Event("capture", id="m-1"))
    assert result.success  # a failing action is not the event's failure
    [row] = outbox(store, "pending")
    assert (row.key, row.attempts, row.last_error) == (
        "pay:p1:2:1",
        1,
        "RuntimeError: notify is down",
    )
    # Retry 1 waits backoff * 2**0 = 1 s, jittered into [0.5, 1].
    assert T0 + timedelta(seconds=0.5) <= row.next_attempt_at <= T0 + timedelta(seconds=1)
    assert rt.dispatch_outbox() == 0  # not due yet
    clock.advance(1)
    assert rt.dispatch_outbox() == 1
    [row] = outbox(store, "pending")
    assert row.attempts == 2
    wait = row.next_attempt_at - clock.now
    assert timedelta(seconds=1) <= wait <= timedelta(seconds=2)  # retry 2: 2 s, jittered
    clock.advance(2)
    assert rt.dispatch_outbox() == 1  # the third attempt: 1 try + 2 retries, then dead
    assert actions.names().count("notify") == 3
    assert outbox(store, "pending") == []
    [dead] = rt.dead_actions()
    assert (dead.key, dead.status, dead.attempts) == ("pay:p1:2:1", "dead", 3)
    # The entity fell back, once, through the inbox under the row's key.
    info = rt.get("p1")
    assert (info.state, info.version) == ("NEEDS_ATTENTION", 3)
    fallback = rt.history("p1")[-1]
    assert fallback.event == {
        "trigger": "error",
        "payload": {"error": "notify is down", "error_type": "RuntimeError"},
        "id": "pay:p1:2:1:fallback",
    }
    assert (fallback.from_state, fallback.to_state, fallback.actions) == (
        "CAPTURED",
        "NEEDS_ATTENTION",
        ["page_ops"],
    )
    assert actions.names()[-1] == "page_ops"
    clock.advance(3600)
    assert (rt.dispatch_outbox(), rt.process_inbox(), rt.sweep_timers()) == (0, 0, 0)
    assert len(rt.history("p1")) == 2
    assert rt.replay("p1").matches


def test_a_retry_that_succeeds_acknowledges_the_row(
    rt: Runtime, store: Store, actions: Actions, clock: Clock
) -> None:
    rt.create("p1")
    actions.fail["charge_card"] = 1
    rt.send("p1", Event("capture", id="m-1"))
    clock.advance(1)
    assert rt.dispatch_outbox() == 1
    assert [(r.status, r.attempts) for r in outbox(store)] == [("done", 1), ("done", 0)]
    assert actions.keys("charge_card") == ["pay:p1:2:0", "pay:p1:2:0"]  # the same key
    assert rt.get("p1").state == "CAPTURED"


def test_an_action_s_own_retry_replaces_the_error_policy(
    make: Callable[..., Runtime], store: Store, actions: Actions, clock: Clock
) -> None:
    spec = {**SPEC, "transitions": list(SPEC["transitions"])}
    spec["transitions"][0] = {
        **spec["transitions"][0],
        "actions": [{"name": "charge_card", "retry": {"attempts": 0}}],
    }
    rt = make(spec)
    rt.create("p1")
    actions.fail["charge_card"] = FOREVER
    rt.send("p1", Event("capture", id="m-1"))
    assert [r.key for r in rt.dead_actions()] == ["pay:p1:2:0"]  # dead at once
    assert rt.get("p1").state == "NEEDS_ATTENTION"
    # The fallback is applied, and its actions run, as soon as the row is dead: before
    # the event's next action.
    assert actions.names() == ["charge_card", "page_ops", "notify"]


def test_without_a_fallback_a_dead_action_leaves_the_state(
    make: Callable[..., Runtime], actions: Actions
) -> None:
    spec = {**SPEC, "error_policy": {"retry_attempts": 0}}
    rt = make(spec)
    rt.create("p1")
    actions.fail["notify"] = FOREVER
    rt.send("p1", Event("capture", id="m-1"))
    assert [r.key for r in rt.dead_actions()] == ["pay:p1:2:1"]
    assert (rt.get("p1").state, len(rt.history("p1"))) == ("CAPTURED", 1)


def test_a_second_dead_action_of_the_same_event_finds_the_fallback_state(
    make: Callable[..., Runtime], actions: Actions
) -> None:
    spec = {**SPEC, "error_policy": {"default_fallback": "NEEDS_ATTENTION"}}
    rt = make(spec)
    rt.create("p1")
    actions.fail.update(charge_card=FOREVER, notify=FOREVER)
    rt.send("p1", Event("capture", id="m-1"))
    assert len(rt.dead_actions()) == 2
    history = rt.history("p1")
    assert [(h.event["id"], h.success) for h in history] == [
        ("m-1", True),
        ("pay:p1:2:0:fallback", True),
        ("pay:p1:2:1:fallback", False),  # already there: no fallback from the fallback state
    ]
    assert rt.get("p1").state == "NEEDS_ATTENTION"
    assert rt.replay("p1").matches


def test_an_action_missing_from_the_registry_or_returning_an_awaitable_fails(
    rt: Runtime, store: Store, clock: Clock, make: Callable[..., Runtime]
) -> None:
    rt.create("p1")
    with store.transaction() as tx:
        tx.outbox_add([_row("pay:p1:9:0", {"name": "gone"})])
    assert rt.dispatch_outbox() == 1
    [row] = outbox(store, "pending")
    assert row.last_error == "LookupError: action 'gone' is not registered"

    registry = ActionRegistry()

    async def later() -> None:
        return None

    def sneaky(ctx: Mapping[str, Any], **params: Any) -> Any:
        return later()

    class Pending:
        def __await__(self) -> Iterator[None]:
            yield None

    def odd(ctx: Mapping[str, Any], **params: Any) -> Any:
        return Pending()

    for name in ("charge_card", "notify", "page_ops", "expire_note"):
        registry.register(name, odd)
    registry.register("record", sneaky)
    other = Runtime(machine(), store, actions=registry, clock=clock)
    other.send("p1", Event("note", id="n-1"))
    other.send("p1", Event("capture", id="c-1"))
    errors = [r.last_error for r in outbox(store, "pending")[1:]]
    assert errors == [
        "TypeError: action 'record' returned an awaitable",
        "TypeError: action 'charge_card' returned an awaitable",
        "TypeError: action 'notify' returned an awaitable",
    ]


def _row(key: str, action: dict[str, Any]) -> OutboxRow:
    return OutboxRow(
        id=0,
        key=key,
        machine="pay",
        entity_id="p1",
        action=action,
        context={},
        status="pending",
        attempts=0,
        next_attempt_at=T0,
        lease_owner=None,
        lease_until=None,
        last_error=None,
    )


# -- leases ---------------------------------------------------------------------------


def test_a_zombie_whose_lease_was_taken_over_cannot_ack(
    make: Callable[..., Runtime], store: Store, actions: Actions, clock: Clock
) -> None:
    zombie = make(worker_id="zombie", lease_seconds=30)
    other = make(worker_id="other", lease_seconds=30)
    zombie.create("p1")

    def stall() -> None:
        # The zombie's first attempt hangs past its lease; meanwhile another worker
        # claims the row, runs it and acknowledges it.
        actions.during.clear()
        clock.advance(31)
        assert other.dispatch_outbox() == 1

    actions.during["record"] = stall
    zombie.send("p1", Event("note", id="n-1"))
    [row] = outbox(store)
    assert (row.status, row.attempts, row.lease_owner, row.last_error) == ("done", 0, None, None)
    assert actions.keys("record") == ["pay:p1:2:0", "pay:p1:2:0"]  # at least once, same key


@pytest.mark.parametrize("retries", [2, 0], ids=["would-retry", "would-be-dead"])
def test_a_zombie_s_late_failure_changes_nothing(
    make: Callable[..., Runtime], store: Store, actions: Actions, clock: Clock, retries: int
) -> None:
    spec = {**SPEC, "error_policy": {**SPEC["error_policy"], "retry_attempts": retries}}
    zombie = make(spec, worker_id="zombie", lease_seconds=30)
    other = make(spec, worker_id="other", lease_seconds=30)
    zombie.create("p1")
    actions.fail["record"] = 1  # the zombie's call fails, after the other's succeeded

    def stall() -> None:
        actions.during.clear()
        clock.advance(31)
        actions.fail["record"] = 0
        assert other.dispatch_outbox() == 1
        actions.fail["record"] = 1

    actions.during["record"] = stall
    zombie.send("p1", Event("note", id="n-1"))
    [row] = outbox(store)
    assert (row.status, row.attempts, row.last_error) == ("done", 0, None)
    assert zombie.dead_actions() == []
    assert (zombie.get("p1").state, len(zombie.history("p1"))) == ("NEW", 1)  # no fallback


def test_release_gives_up_the_leases_a_runtime_holds(
    rt: Runtime, store: Store, actions: Actions, clock: Clock
) -> None:
    rt.create("p1")
    actions.fail["record"] = FOREVER
    rt.send("p1", Event("note", id="n-1"))
    clock.advance(10)
    # Claimed, then stopped before running it: the row stays leased until released.
    assert rt.dispatch_outbox(should_stop=lambda: True) == 0
    assert outbox(store)[0].lease_owner == "w1"
    assert rt.release() == 1
    assert outbox(store)[0].lease_owner is None


def test_two_workers_dispatching_at_once_never_run_a_row_twice(
    make: Callable[..., Runtime], store: Store, actions: Actions, clock: Clock
) -> None:
    runtime = make()
    actions.fail["record"] = 20  # every first attempt fails: 20 rows left to dispatch
    for n in range(20):
        runtime.create(f"p{n}")
        runtime.send(f"p{n}", Event("note", id=f"n-{n}"))
    assert len(outbox(store, "pending")) == 20
    clock.advance(5)
    workers = [make(worker_id=f"w{i}") for i in range(4)]
    done = _in_threads([partial(w.dispatch_outbox, limit=3) for w in workers] * 3)
    assert sum(done) == 20
    assert all(r.status == "done" for r in outbox(store))
    keys = actions.keys("record")
    assert len(keys) == 40 and all(keys.count(k) == 2 for k in keys)  # first try + one retry


# -- serialization ---------------------------------------------------------------------


def test_two_workers_on_one_entity_stay_serialized(
    make: Callable[..., Runtime], store: Store, actions: Actions
) -> None:
    make().create("p1")
    workers = [make(worker_id=f"w{i}") for i in range(4)]

    def feed(worker: Runtime, n: int) -> int:
        for i in range(10):
            assert worker.send("p1", Event("note", id=f"w{n}-{i}")).success
        return 10

    assert sum(_in_threads([partial(feed, w, n) for n, w in enumerate(workers)])) == 40
    history = workers[0].history("p1")
    assert [h.seq for h in history] == list(range(1, 41))
    assert [h.version for h in history] == list(range(2, 42))
    assert workers[0].get("p1").version == 41
    keys = [r.key for r in outbox(store)]
    assert sorted(keys) == sorted(f"pay:p1:{v}:0" for v in range(2, 42))
    assert sorted(actions.keys("record")) == sorted(keys)


def _in_threads(jobs: Sequence[Callable[[], int]]) -> list[int]:
    results: list[int] = [0] * len(jobs)
    errors: list[BaseException] = []
    start = threading.Barrier(len(jobs))

    def run(i: int) -> None:
        try:
            start.wait()
            results[i] = jobs[i]()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


# -- timers ----------------------------------------------------------------------------


def test_a_timer_fires_once_when_due(rt: Runtime, actions: Actions, clock: Clock) -> None:
    rt.create("p1", {"amount": 1})
    clock.advance(59.999)
    assert rt.sweep_timers() == 0
    clock.advance(0.001)  # due at exactly entered_at + 60 s: inclusive
    assert rt.sweep_timers() == 1
    info = rt.get("p1")
    assert (info.state, info.version, dict(info.deadlines)) == ("EXPIRED", 2, {})
    assert actions.names() == ["expire_note"]
    [row] = rt.history("p1")
    assert row.event == {"trigger": "timeout", "payload": {}, "id": "timer:timeout:1"}
    assert (row.from_state, row.to_state, row.at) == ("NEW", "EXPIRED", clock.now)
    clock.advance(600)
    assert rt.sweep_timers() == 0


def test_entering_a_state_re_arms_and_leaving_it_cancels(rt: Runtime, clock: Clock) -> None:
    rt.create("p1")
    clock.advance(10)
    rt.send("p1", Event("wait", id="w-1"))
    assert rt.get("p1").deadlines["timeout"] == clock.now + timedelta(seconds=30)
    clock.advance(20)
    rt.send("p1", Event("wait", id="w-2"))  # a self-transition re-enters: re-armed
    assert rt.get("p1").deadlines["timeout"] == clock.now + timedelta(seconds=30)
    clock.advance(20)
    assert rt.sweep_timers() == 0
    rt.send("p1", Event("capture", id="c-1"))
    assert dict(rt.get("p1").deadlines) == {}
    clock.advance(600)
    assert rt.sweep_timers() == 0


def test_an_internal_transition_keeps_the_timer_running(rt: Runtime, clock: Clock) -> None:
    rt.create("p1")
    clock.advance(30)
    rt.send("p1", Event("note", id="n-1"))  # version 2; the state is not re-entered
    clock.advance(30)
    assert rt.sweep_timers() == 1
    assert (rt.get("p1").state, rt.get("p1").version) == ("EXPIRED", 3)


def test_a_stale_timer_is_recorded_and_changes_nothing(
    rt: Runtime, clock: Clock, actions: Actions
) -> None:
    rt.create("p1")
    rt.enqueue("p1", Event("capture", id="c-1"))  # queued before the timer fires
    clock.advance(60)
    assert rt.sweep_timers() == 1
    history = rt.history("p1")
    assert [(h.event["id"], h.to_state, h.version) for h in history] == [
        ("c-1", "CAPTURED", 2),
        ("timer:timeout:1", "CAPTURED", 2),
    ]
    stale = history[1]
    assert stale.success and stale.actions == []
    assert stale.error == "stale timer: generation 1, the entity's timer is cancelled"
    assert "expire_note" not in actions.names()
    assert rt.replay("p1").matches


def test_a_timer_re_armed_since_the_sweep_looked_is_not_fired(
    rt: Runtime, store: Store, clock: Clock
) -> None:
    rt.create("p1")
    clock.advance(60)
    with store.transaction() as tx:
        [due] = tx.timers_due("pay", clock.now, 10)
    rt.send("p1", Event("wait", id="w-1"))  # re-armed: generation 2, due in 30 s
    with store.transaction() as tx:
        assert tx.timer_get("pay", "p1", "timeout") != due
    assert rt._fire(due) == (False, [])
    assert rt.get("p1").state == "WAITING"


def test_a_timer_fired_already_but_still_armed_is_dropped(
    rt: Runtime, store: Store, clock: Clock
) -> None:
    rt.create("p1")
    key = "timer:timeout:1"
    with store.transaction() as tx:  # its firing recorded, the timer not cancelled
        row, _ = tx.inbox_add("pay", "p1", key, Event("timeout", id=key).to_dict(), T0)
        tx.inbox_done(row.id, rt.machine.process("NEW", Event("timeout", id=key)).to_dict())
    clock.advance(60)
    assert rt.sweep_timers() == 0
    assert (rt.get("p1").state, dict(rt.get("p1").deadlines)) == ("NEW", {})


def test_sweeping_stops_when_asked_and_survives_a_failing_entity(
    rt: Runtime, clock: Clock, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt.create("p1")
    rt.create("p2")
    clock.advance(60)
    assert rt.sweep_timers(should_stop=lambda: True) == 0
    fire = rt._fire

    def flaky(timer: Any) -> Any:
        if timer.entity_id == "p1":
            raise OSError("disk on fire")
        return fire(timer)

    monkeypatch.setattr(rt, "_fire", flaky)
    assert rt.sweep_timers() == 1
    assert "entity 'p1': firing its timer failed" in caplog.text
    assert (rt.get("p1").state, rt.get("p2").state) == ("NEW", "EXPIRED")


def test_a_timer_whose_state_lost_its_timeout_is_dropped(
    rt: Runtime, make: Callable[..., Runtime], clock: Clock
) -> None:
    rt.create("p1")
    spec = {**SPEC, "states": [{"name": "NEW", "type": "initial"}, *SPEC["states"][1:]]}
    newer = make(spec)
    clock.advance(60)
    assert newer.sweep_timers() == 1
    [row] = newer.history("p1")
    assert (row.to_state, row.error) == ("NEW", "stale timer: state 'NEW' has no timeout")
    assert dict(newer.get("p1").deadlines) == {}
    assert newer.sweep_timers() == 0


# -- renamed states, replay ---------------------------------------------------------------


def test_stored_old_state_names_are_resolved(rt: Runtime, make: Callable[..., Runtime]) -> None:
    rt.create("p1")
    rt.send("p1", Event("wait", id="w-1"))
    states = [
        {**s, "name": "PAUSED", "renamed_from": ["WAITING"]} if s["name"] == "WAITING" else s
        for s in SPEC["states"]
    ]
    transitions = [
        {**t, "source": ["NEW", "PAUSED"], "dest": "PAUSED"}
        if t["trigger"] == "wait"
        else {**t, "source": ["NEW", "PAUSED"]}
        if t["trigger"] == "capture"
        else t
        for t in SPEC["transitions"]
    ]
    newer = make({**SPEC, "states": states, "transitions": transitions})
    assert newer.get("p1").state == "PAUSED"
    assert newer.replay("p1").matches
    result = newer.send("p1", Event("capture", id="c-1"))
    assert (result.source_state, result.target_state) == ("PAUSED", "CAPTURED")


def test_replay_reproduces_state_and_version(rt: Runtime, actions: Actions, clock: Clock) -> None:
    rt.create("p1", {"amount": 500})
    rt.create("p2", {"amount": 5})
    actions.fail["notify"] = FOREVER
    rt.send("p1", Event("note", id="n-1"))
    rt.send("p1", Event("wait", id="w-1"))
    rt.send("p1", Event("wait", id="w-1"))  # a redelivery: no row
    rt.send("p1", Event("big", id="b-1"))  # rejected: WAITING has no 'big'
    clock.advance(30)
    rt.sweep_timers()
    rt.send("p2", Event("big", id="b-2"))  # rejected by the guard
    rt.send("p2", Event("capture", id="c-2"))
    clock.advance(10)
    rt.dispatch_outbox()
    rt.dispatch_outbox()
    clock.advance(10)
    rt.dispatch_outbox()
    for entity, state in (("p1", "EXPIRED"), ("p2", "NEEDS_ATTENTION")):
        report = rt.replay(entity)
        stored = rt.get(entity)
        assert report.matches, report.mismatch
        assert (report.state, report.version) == (stored.state, stored.version)
        assert report.state == state
        assert report.events == len(rt.history(entity))
        assert report.mismatch is None


def test_replay_reports_a_machine_that_now_decides_otherwise(
    rt: Runtime, make: Callable[..., Runtime]
) -> None:
    rt.create("p1")
    rt.send("p1", Event("capture", id="c-1"))
    transitions = [
        {**t, "dest": "WAITING", "actions": []} if t["trigger"] == "capture" else t
        for t in SPEC["transitions"]
    ]
    report = make({**SPEC, "transitions": transitions}).replay("p1")
    assert not report.matches
    assert (report.state, report.version) == ("WAITING", 2)
    assert (report.stored_state, report.stored_version) == ("CAPTURED", 2)
    assert report.mismatch == (
        "history #1: replayed (state, version, success) ('WAITING', 2, True), "
        "stored ('CAPTURED', 2, True)"
    )


def test_replay_reports_what_the_machine_raises(rt: Runtime, store: Store) -> None:
    rt.create("p1", {"amount": 500})
    rt.send("p1", Event("big", {"explode": False}, id="b-1"))
    assert rt.get("p1").state == "CAPTURED"
    rt.create("p2", {"amount": 500, "explode": True})
    with pytest.raises(GuardError):
        rt.send("p2", Event("big", id="b-2"))
    # p2's guard raises, so none of its events is ever recorded; give it p1's row, as a
    # history written under another context would be, and replay must say what the
    # guard raised, not raise it.
    forged = replace(rt.history("p1")[0], entity_id="p2")
    with store.transaction() as tx:
        tx.history_add(forged)
    report = rt.replay("p2")
    assert not report.matches
    assert report.mismatch is not None
    assert report.mismatch.startswith("history #1: GuardError")


def test_replay_reports_a_stored_state_the_spec_does_not_know(
    rt: Runtime, make: Callable[..., Runtime]
) -> None:
    rt.create("p1")
    rt.send("p1", Event("wait", id="w-1"))
    states = [s for s in SPEC["states"] if s["name"] != "WAITING"]
    transitions = [
        {**t, "source": "NEW", "dest": "CAPTURED"} if t["trigger"] == "wait" else t
        for t in SPEC["transitions"]
    ]
    transitions = [{**t, "source": "NEW"} if t["trigger"] == "capture" else t for t in transitions]
    report = make({**SPEC, "states": states, "transitions": transitions}).replay("p1")
    assert not report.matches
    assert report.mismatch is not None and "UndefinedStateError" in report.mismatch


def test_replay_reports_a_stored_row_its_history_does_not_explain(
    rt: Runtime, store: Store, make: Callable[..., Runtime]
) -> None:
    info = rt.create("p1")
    with store.transaction() as tx:  # a write that bypassed the runtime
        row = tx.get_entity("pay", "p1")
        assert row is not None
        tx.update_entity(replace(row, version=5), expected_version=1)
    report = rt.replay("p1")
    assert (report.matches, report.state, report.version, report.events) == (False, "NEW", 1, 0)
    assert report.mismatch == "replay ends in (NEW, 1), the entity is stored as (NEW, 5)"
    assert info.version == 1
    renamed = [{"name": "FRESH", "type": "initial"}, *SPEC["states"][1:]]
    transitions = [
        {**t, "source": ["FRESH", "WAITING"] if t["source"] != "*" else "*"}
        if t["trigger"] != "big"
        else {**t, "source": "FRESH"}
        for t in SPEC["transitions"]
    ]
    report = make({**SPEC, "states": renamed, "transitions": transitions}).replay("p1")
    assert report.mismatch is not None
    assert report.mismatch.startswith("stored state: UndefinedStateError")


def test_a_fallback_for_a_machine_without_one_any_more_is_ignored(
    make: Callable[..., Runtime], store: Store
) -> None:
    rt = make({**SPEC, "error_policy": {}})
    rt.create("p1")
    key = "pay:p1:2:0:fallback"
    event = Event("error", {"error": "down", "error_type": "RuntimeError"}, id=key)
    with store.transaction() as tx:  # written under the spec that had a fallback
        tx.inbox_add("pay", "p1", key, event.to_dict(), T0)
    assert rt.process_inbox() == 1
    [row] = rt.history("p1")
    assert (row.success, row.to_state, row.error) == (True, "NEW", "no default_fallback")
    assert rt.replay("p1").matches


# -- bad input ---------------------------------------------------------------------------


def test_an_unknown_entity_is_an_error_and_nothing_is_written(
    rt: Runtime, store: Store, make: Callable[..., Runtime]
) -> None:
    for call in (
        lambda: rt.send("nope", Event("note", id="n-1")),
        lambda: rt.enqueue("nope", Event("note", id="n-1")),
        lambda: rt.get("nope"),
        lambda: rt.history("nope"),
        lambda: rt.replay("nope"),
    ):
        with pytest.raises(EntityNotFoundError, match="no entity 'nope' of machine 'pay'"):
            call()
    assert pending_events(store) == 0
    # A runtime for another machine sees none of this machine's entities.
    rt.create("p1")
    other = make({**SPEC, "meta": {"machine_name": "other"}})
    with pytest.raises(EntityNotFoundError, match="of machine 'other'"):
        other.send("p1", Event("note", id="n-1"))
    assert rt.history("p1") == []


def test_a_guard_that_raises_in_send_writes_nothing(rt: Runtime, store: Store) -> None:
    rt.create("p1", {"explode": True})
    with pytest.raises(GuardError):
        rt.send("p1", Event("big", id="b-1"))
    assert (pending_events(store), rt.history("p1"), rt.get("p1").version) == (0, [], 1)


def test_the_runtime_checks_its_actions_and_options_at_start_up(store: Store, clock: Clock) -> None:
    with pytest.raises(ActionNotFoundError):
        Runtime(machine(), store, clock=clock)
    registry = Actions().registry()

    async def record(ctx: Mapping[str, Any]) -> None:
        return None

    registry.register("record", record, replace=True)
    with pytest.raises(TypeError, match=r"actions \['record'\] are coroutine functions"):
        Runtime(machine(), store, actions=registry)
    with pytest.raises(ValueError, match="lease_seconds must be > 0"):
        Runtime(machine(), store, actions=Actions().registry(), lease_seconds=0)


def test_a_naive_clock_is_refused(store: Store) -> None:
    rt = Runtime(machine(), store, actions=Actions().registry(), clock=lambda: datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="naive datetime"):
        rt.create("p1")


def test_without_a_clock_the_store_s_is_used(store: Store) -> None:
    rt = Runtime(machine(), store, actions=Actions().registry())
    before = datetime.now(UTC)
    info = rt.create("p1")
    assert before - timedelta(seconds=5) <= info.entered_at <= datetime.now(UTC)
    assert rt.worker_id.count(":") == 2
    assert rt.store is store and rt.machine.name == "pay" and rt.name == "pay"
    assert "Runtime('pay'" in repr(rt)


def test_heartbeats_are_recorded(rt: Runtime, store: Store, clock: Clock) -> None:
    rt.heartbeat("ready")
    clock.advance(1)
    rt.heartbeat("running")
    with store.transaction() as tx:
        [row] = tx.workers()
    assert (row.worker_id, row.status, row.heartbeat_at) == ("w1", "running", clock.now)


def test_a_version_check_that_fails_under_the_lock_is_a_concurrency_error(
    rt: Runtime, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt.create("p1")
    with store.transaction() as tx:
        cls = type(tx)
    receive = cls.receive

    def stale(self: Any, *args: Any) -> Received | None:
        # What a store that does not really lock could hand over: an older version.
        got = receive(self, *args)
        assert got is not None
        return replace(got, entity=replace(got.entity, version=got.entity.version - 1))

    monkeypatch.setattr(cls, "receive", stale)
    with pytest.raises(ConcurrencyError) as caught:
        rt.send("p1", Event("note", id="n-1"))
    assert (caught.value.entity_id, caught.value.expected_version) == ("p1", 0)
    monkeypatch.undo()
    assert (rt.history("p1"), rt.get("p1").version) == ([], 1)
    with store.transaction() as tx:
        got = tx.receive("pay", "p1", "n-1", "timeout")
    assert got is not None and got.inbox is None  # no inbox row was kept either
