"""check_timeout and TimeoutManager: deadlines against a clock the caller passes in."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from statewise import StateMachine, UndefinedStateError
from statewise.timeouts import DueTimeout, TimeoutInfo, TimeoutManager, check_timeout

try:
    from zoneinfo import ZoneInfo

    NEW_YORK: tzinfo | None = ZoneInfo("America/New_York")
except Exception:  # no tz database on this machine  # pragma: no cover
    NEW_YORK = None

MACHINE = StateMachine.from_dict(
    {
        "meta": {"machine_name": "t"},
        "states": [
            {
                "name": "WAIT",
                "type": "initial",
                "on_exit": "bye",
                "timeout": {"seconds": 300, "destination": "LATE", "actions": ["warn"]},
            },
            {"name": "IDLE"},
            {"name": "RETRY", "timeout": {"seconds": 0.5, "destination": "RETRY"}},
            {"name": "LATE", "type": "terminal", "on_enter": ["alert"]},
        ],
        "transitions": [{"trigger": "go", "source": "WAIT", "dest": "IDLE"}],
    }
)
MANAGER = TimeoutManager(MACHINE)
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
DEADLINE = T0 + timedelta(seconds=300)
US = timedelta(microseconds=1)
TOKYO = timezone(timedelta(hours=9))
LIMA = timezone(timedelta(hours=-5))


# -- the boundary -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "fires"),
    [
        (T0, False),
        (DEADLINE - US, False),  # one microsecond early
        (DEADLINE, True),  # the exact deadline fires
        (DEADLINE + US, True),
        (DEADLINE + timedelta(days=400), True),  # a job that was down for a year
    ],
)
def test_fires_from_the_deadline_on(now: datetime, fires: bool) -> None:
    r = check_timeout(MACHINE, "WAIT", T0, now)
    assert (r is not None) == fires
    if r is not None:
        assert (r.success, r.trigger, r.source_state, r.target_state) == (
            True,
            "timeout",
            "WAIT",
            "LATE",
        )
        # exit WAIT, the timeout's own actions, enter LATE
        assert r.action_names == ("bye", "warn", "alert")
        assert r.event.id == "timeout:WAIT:2026-01-01T12:05:00+00:00"


def test_a_sub_second_timeout_and_a_self_transition() -> None:
    assert check_timeout(MACHINE, "RETRY", T0, T0 + timedelta(seconds=0.5) - US) is None
    r = check_timeout(MACHINE, "RETRY", T0, T0 + timedelta(seconds=0.5))
    assert r is not None
    assert (r.target_state, r.is_self_transition) == ("RETRY", True)
    assert r.event.id == "timeout:RETRY:2026-01-01T12:00:00.500000+00:00"


def test_an_explicit_event_id_wins() -> None:
    r = check_timeout(MACHINE, "WAIT", T0, DEADLINE, event_id="job-7")
    assert r is not None
    assert r.event.id == "job-7"


@pytest.mark.parametrize("state", ["IDLE", "LATE"])
def test_states_without_a_timeout_never_fire(state: str) -> None:
    far = T0 + timedelta(days=10_000)
    assert check_timeout(MACHINE, state, T0, far) is None
    assert MANAGER.deadline(state, T0) is None
    assert MANAGER.get_timeout_info(state, T0, far) is None
    assert MANAGER.check("e", state, T0, far) is None


CALLS: dict[str, Callable[[str, Any, Any], object]] = {
    "check_timeout": lambda state, entered, now: check_timeout(MACHINE, state, entered, now),
    "get_timeout_info": MANAGER.get_timeout_info,
    "check": lambda state, entered, now: MANAGER.check("e", state, entered, now),
    "due": lambda state, entered, now: list(MANAGER.due([("e", state, entered)], now)),
    "deadline": lambda state, entered, now: MANAGER.deadline(state, entered),
}


# Every (call, datetime argument) pair: deadline() takes no ``now``.
ARGUMENTS = [
    (call, argument)
    for call in CALLS
    for argument in ("entered_at", "now")
    if (call, argument) != ("deadline", "now")
]


@pytest.mark.parametrize("call", CALLS, ids=str)
def test_an_unknown_state_is_a_bug_and_raises(call: str) -> None:
    with pytest.raises(UndefinedStateError, match="undefined state 'WIAT'"):
        CALLS[call]("WIAT", T0, DEADLINE)


# -- naive datetimes are refused, never taken as local time -----------------------------


class NoOffset(tzinfo):
    """A tzinfo that does not know its offset: as naive as no tzinfo at all."""

    def utcoffset(self, _dt: datetime | None) -> timedelta | None:
        return None

    def dst(self, _dt: datetime | None) -> timedelta | None:
        return None

    def tzname(self, _dt: datetime | None) -> str | None:
        return None


NAIVE = datetime(2026, 1, 1, 12, 0)
NAIVE_TZ = datetime(2026, 1, 1, 12, 0, tzinfo=NoOffset())


@pytest.mark.parametrize(("call", "argument"), ARGUMENTS)
@pytest.mark.parametrize("naive", [NAIVE, NAIVE_TZ], ids=["no-tzinfo", "utcoffset-None"])
@pytest.mark.parametrize("state", ["WAIT", "IDLE"])  # also where there is no timeout
def test_a_naive_datetime_raises_naming_the_argument(
    call: str, argument: str, naive: datetime, state: str
) -> None:
    entered, now = (naive, DEADLINE) if argument == "entered_at" else (T0, naive)
    with pytest.raises(ValueError, match=rf"^{argument} is a naive datetime \(2026-01-01T12:00"):
        CALLS[call](state, entered, now)


@pytest.mark.parametrize(("call", "argument"), ARGUMENTS)
@pytest.mark.parametrize(
    ("value", "type_name"),
    [(date(2026, 1, 1), "date"), ("2026-01-01T12:00:00+00:00", "str"), (1.7e9, "float")],
)
def test_a_non_datetime_is_a_type_error(
    call: str, argument: str, value: object, type_name: str
) -> None:
    entered, now = (value, DEADLINE) if argument == "entered_at" else (T0, value)
    with pytest.raises(TypeError, match=f"^{argument} must be a datetime, got {type_name}$"):
        CALLS[call]("WAIT", entered, now)


def test_a_naive_now_fails_due_at_the_call_before_any_row_is_read() -> None:
    read: list[int] = []

    def rows() -> Iterator[tuple[str, str, datetime]]:
        read.append(1)
        yield ("e", "WAIT", T0)

    with pytest.raises(ValueError, match=r"^now is a naive datetime"):
        MANAGER.due(rows(), NAIVE)
    assert read == []


# -- time zones -----------------------------------------------------------------------


@pytest.mark.parametrize("entered_zone", [UTC, TOKYO, LIMA])
@pytest.mark.parametrize("now_zone", [UTC, TOKYO, LIMA])
def test_zones_compare_as_instants(entered_zone: tzinfo, now_zone: tzinfo) -> None:
    entered = T0.astimezone(entered_zone)
    assert check_timeout(MACHINE, "WAIT", entered, (DEADLINE - US).astimezone(now_zone)) is None
    r = check_timeout(MACHINE, "WAIT", entered, DEADLINE.astimezone(now_zone))
    assert r is not None
    # The same instant gives the same idempotency key, whatever zone it was written in.
    assert r.event.id == "timeout:WAIT:2026-01-01T12:05:00+00:00"
    deadline = MANAGER.deadline("WAIT", entered)
    assert deadline == DEADLINE
    assert deadline is not None
    assert deadline.tzinfo is UTC


@pytest.mark.skipif(NEW_YORK is None, reason="needs the tz database")
def test_a_dst_change_counts_elapsed_time_not_wall_clock_time() -> None:
    # 2024-11-03, New York: at 02:00 EDT the clocks go back to 01:00 EST.
    entered = datetime(2024, 11, 3, 1, 58, tzinfo=NEW_YORK)  # 01:58 EDT = 05:58 UTC
    # 5 minutes later it is 06:03 UTC: 01:03 on the *second* pass through 01:xx (EST).
    # Wall-clock arithmetic (entered + 5 min in the zone) would say 02:03 EST, an hour late.
    due = datetime(2024, 11, 3, 1, 3, fold=1, tzinfo=NEW_YORK)
    assert MANAGER.deadline("WAIT", entered) == datetime(2024, 11, 3, 6, 3, tzinfo=UTC)
    assert check_timeout(MACHINE, "WAIT", entered, due - US) is None
    assert check_timeout(MACHINE, "WAIT", entered, due) is not None


# -- TimeoutInfo ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "remaining", "expired"),
    [
        (T0, timedelta(seconds=300), False),
        (DEADLINE - US, US, False),
        (DEADLINE, timedelta(0), True),
        (DEADLINE + timedelta(hours=1), timedelta(0), True),  # never negative
    ],
)
def test_timeout_info(now: datetime, remaining: timedelta, expired: bool) -> None:
    entered = T0.astimezone(TOKYO)
    info = MANAGER.get_timeout_info("WAIT", entered, now.astimezone(LIMA))
    assert info == TimeoutInfo("WAIT", entered, DEADLINE, remaining, expired)
    assert info is not None
    assert info.entered_at.tzinfo is TOKYO  # as given
    assert info.expires_at.tzinfo is UTC


# -- due(): many rows ----------------------------------------------------------------


def test_due_yields_the_due_rows_in_order_and_skips_the_rest() -> None:
    now = T0 + timedelta(minutes=10)
    rows = [
        ("a", "WAIT", T0),  # due 5 minutes ago
        ("b", "IDLE", T0 - timedelta(days=1)),  # no timeout
        ("c", "WAIT", now - timedelta(seconds=299)),  # 1 s to go
        ("d", "LATE", T0),  # terminal
        ("e", "RETRY", now - timedelta(seconds=1)),
        ("f", "WAIT", (now - timedelta(seconds=300)).astimezone(TOKYO)),  # exactly due
    ]
    found = list(MANAGER.due(rows, now))
    assert [(d.entity_id, d.state, d.deadline) for d in found] == [
        ("a", "WAIT", DEADLINE),
        ("e", "RETRY", now - timedelta(seconds=0.5)),
        ("f", "WAIT", now),
    ]
    assert [d.result.event.id for d in found] == [
        "timeout:a:WAIT:2026-01-01T12:05:00+00:00",
        "timeout:e:RETRY:2026-01-01T12:09:59.500000+00:00",
        "timeout:f:WAIT:2026-01-01T12:10:00+00:00",
    ]
    assert [d.result.target_state for d in found] == ["LATE", "RETRY", "LATE"]


def test_due_is_lazy() -> None:
    read: list[str] = []

    def rows() -> Iterator[tuple[str, str, datetime]]:
        for entity_id, state in [("a", "IDLE"), ("b", "WAIT"), ("c", "WAIT"), ("x", "NOPE")]:
            read.append(entity_id)
            yield (entity_id, state, T0)

    found = MANAGER.due(rows(), DEADLINE)
    assert read == []
    assert next(found).entity_id == "b"
    assert read == ["a", "b"]  # nothing read beyond the first due row
    assert next(found).entity_id == "c"
    # The corrupt row raises only when it is reached.
    with pytest.raises(UndefinedStateError):
        next(found)


def test_entity_ids_of_any_type_pass_through() -> None:
    (hit,) = MANAGER.due([(42, "WAIT", T0)], DEADLINE)
    assert hit == DueTimeout(42, "WAIT", DEADLINE, hit.result)
    assert hit.entity_id == 42
    assert hit.result.event.id == "timeout:42:WAIT:2026-01-01T12:05:00+00:00"


def test_a_re_run_gives_the_same_results_and_ids() -> None:
    rows = [("a", "WAIT", T0), ("b", "WAIT", T0.astimezone(LIMA))]
    first = list(MANAGER.due(rows, DEADLINE + timedelta(seconds=5)))
    again = list(MANAGER.due(rows, DEADLINE + timedelta(hours=5)))  # a later run, same rows
    assert first == again
    assert MANAGER.check("a", "WAIT", T0, DEADLINE) == first[0]
    assert check_timeout(MACHINE, "WAIT", T0, DEADLINE) == check_timeout(
        MACHINE, "WAIT", T0.astimezone(TOKYO), DEADLINE.astimezone(LIMA)
    )


# -- properties -----------------------------------------------------------------------

offsets = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda m: timezone(timedelta(minutes=m)))
instants = st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1)).map(
    lambda d: d.replace(tzinfo=UTC)
)


@given(
    entered=instants,
    elapsed=st.integers(-(10**9), 10**9).map(lambda us: timedelta(microseconds=us)),
    entered_zone=offsets,
    now_zone=offsets,
)
def test_fires_exactly_when_the_elapsed_time_reaches_the_timeout(
    entered: datetime, elapsed: timedelta, entered_zone: tzinfo, now_zone: tzinfo
) -> None:
    now = entered + elapsed
    r = check_timeout(MACHINE, "WAIT", entered.astimezone(entered_zone), now.astimezone(now_zone))
    info = MANAGER.get_timeout_info(
        "WAIT", entered.astimezone(entered_zone), now.astimezone(now_zone)
    )
    assert info is not None
    assert (r is not None) == (elapsed >= timedelta(seconds=300)) == info.expired
    assert info.expires_at == entered + timedelta(seconds=300)
    assert info.remaining == max(info.expires_at - now, timedelta(0))


# -- a spec's ISO 8601 duration ---------------------------------------------------------


@pytest.mark.parametrize(
    ("duration", "elapsed"),
    [
        ("PT5M", timedelta(minutes=5)),
        ("PT0.5S", timedelta(milliseconds=500)),
        ("P1DT2H", timedelta(days=1, hours=2)),
        ("P2W", timedelta(weeks=2)),
    ],
)
def test_a_duration_in_the_spec_fires_after_that_long(duration: str, elapsed: timedelta) -> None:
    machine = StateMachine.from_dict(
        {
            "meta": {"machine_name": "d"},
            "states": [
                {
                    "name": "WAIT",
                    "type": "initial",
                    "timeout": {"duration": duration, "destination": "LATE"},
                },
                {"name": "LATE", "type": "terminal"},
            ],
        }
    )
    assert TimeoutManager(machine).deadline("WAIT", T0) == T0 + elapsed
    assert check_timeout(machine, "WAIT", T0, T0 + elapsed - US) is None
    assert check_timeout(machine, "WAIT", T0, T0 + elapsed) is not None
