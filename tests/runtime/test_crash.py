"""The crash test on every store: workers killed with SIGKILL while events flow.

Short by default (what CI runs): 30 entities x 8 events, 5% redelivered, every other
event sent from the test's process (racing the workers) and the rest enqueued for them,
a state with a timeout, a few kills, 4 workers on SQLite and 8 on PostgreSQL; then
every guarantee is checked (see :mod:`tests.runtime.crash`) and the counts printed
(``pytest -s`` shows them; a failure shows them too). ``STATEWISE_CRASH_SOAK=1`` runs
the full size instead, 200 entities x 20 events: ``make soak``.
"""

from __future__ import annotations

import os
from pathlib import Path

from statewise.runtime.store import Store
from tests.runtime.conftest import Backend
from tests.runtime.crash import CrashReport, run_crash_test

SOAK = bool(os.environ.get("STATEWISE_CRASH_SOAK"))
ENTITIES, EVENTS = (200, 20) if SOAK else (30, 8)
# Deliveries per second. Short: about 3 s of feeding, so a few kills land while events
# are applied; soak: about 40 s, some 80 kills.
FEED_RATE = 100.0 if SOAK else 80.0
WORKERS = {"sqlite": 4, "postgres": 8}


def _assert_guarantees(report: CrashReport) -> None:
    print(report.summary())
    assert report.problems() == [], report.summary()
    # The run must really have killed workers, redelivered events, fired timers and
    # acted: otherwise "nothing broke" would mean nothing.
    assert report.kills >= 2, report.summary()
    assert report.duplicate_deliveries > 0
    assert 0 < report.sent < report.events_fed  # both send and the workers applied events
    assert report.timer_firings > 0
    assert report.applied > 0
    assert report.rejected > 0
    assert report.effects == report.outbox_rows > 0


def test_crash(backend: Backend, store: Store, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    report = run_crash_test(
        store.url,
        workers=WORKERS[backend.name],
        entities=ENTITIES,
        events=EVENTS,
        seed=11,
        feed_rate=FEED_RATE,
        drain_timeout=120.0 if SOAK else 60.0,
        workdir=work,
    )
    _assert_guarantees(report)
