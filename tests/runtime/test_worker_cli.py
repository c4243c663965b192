"""Workers and the runtime's commands: ``statewise worker``, ``runtime status|dead``,
``db upgrade``, on real SQLite files.

A worker runs as a real subprocess once (stopped with SIGTERM while an action is in
hand: it finishes the action, releases its other leases and exits 0), and in-process
otherwise, stopped by a signal this process sends itself once the workers table shows
the workers at work.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from statewise import ActionRegistry, Event, StateMachine
from statewise.cli import main
from statewise.runtime import Runtime, Worker
from statewise.runtime.sqlite import SQLiteStore
from statewise.runtime.store import OutboxRow, WorkerRow
from statewise.runtime.worker import WorkerOptions, _child, import_registry, serve_many

SPEC = """\
meta: {machine_name: jobs}
states:
  - {name: IDLE, type: initial, timeout: {seconds: 0.2, destination: TIMED_OUT}}
  - {name: RUNNING}
  - {name: TIMED_OUT, type: terminal}
transitions:
  - {trigger: start, source: IDLE, dest: RUNNING, actions: [slow]}
  - {trigger: poke, source: RUNNING, actions: [flaky]}
"""

# The worker's actions, imported by the worker as ``job_actions:registry``. ``slow``
# leaves a marker when it starts and when it ends, in the directory MARKS names.
ACTIONS = """\
import os, time
from pathlib import Path
from statewise import ActionRegistry

registry = ActionRegistry()


@registry.register
def slow(ctx, idempotency_key):
    marks = Path(os.environ["MARKS"])
    (marks / f"started-{idempotency_key}").touch()
    time.sleep(float(os.environ.get("SLOW_SECONDS", "0")))
    (marks / f"finished-{idempotency_key}").touch()


@registry.register
def flaky(ctx):
    raise RuntimeError("flaky is down")


def make_registry():
    return registry
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory with the spec, the actions module and a marks directory; the cwd."""
    (tmp_path / "jobs.yaml").write_text(SPEC)
    (tmp_path / "job_actions.py").write_text(ACTIONS)
    (tmp_path / "marks").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("MARKS", str(tmp_path / "marks"))
    return tmp_path


@pytest.fixture
def url(project: Path) -> str:
    return f"sqlite:///{project / 'store.db'}"


@pytest.fixture
def store(project: Path) -> Iterator[SQLiteStore]:
    with SQLiteStore(project / "store.db") as store:
        yield store


def registry() -> ActionRegistry:
    return import_registry("job_actions:registry", ActionRegistry)  # type: ignore[no-any-return]


def runtime(store: SQLiteStore, **options: Any) -> Runtime:
    return Runtime(StateMachine.from_string(SPEC), store, actions=registry(), **options)


def workers(store: SQLiteStore) -> list[WorkerRow]:
    with store.transaction() as tx:
        return tx.workers()


def outbox(store: SQLiteStore) -> list[OutboxRow]:
    with store.transaction() as tx:
        return tx.outbox_rows()


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def signal_self_when(condition: Callable[[], bool], signum: int = signal.SIGTERM) -> None:
    """Send ``signum`` to this process once ``condition`` holds (or after 30 s)."""

    def watch() -> None:
        wait_for(condition)
        os.kill(os.getpid(), signum)

    threading.Thread(target=watch, daemon=True).start()


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def leased_rows(store: SQLiteStore, n: int) -> None:
    """``n`` due outbox rows of ``slow``, as a failed first attempt leaves them."""
    rows = [
        OutboxRow(
            id=0,
            key=f"jobs:j1:2:{i}",
            machine="jobs",
            entity_id="j1",
            action={"name": "slow"},
            context={},
            status="pending",
            attempts=1,
            next_attempt_at=datetime(2026, 1, 1, tzinfo=UTC),
            lease_owner=None,
            lease_until=None,
            last_error="RuntimeError: earlier",
        )
        for i in range(n)
    ]
    with store.transaction() as tx:
        tx.outbox_add(rows)


# -- a real worker process ---------------------------------------------------------------


def test_sigterm_finishes_the_action_in_hand_and_releases_the_other_leases(
    project: Path, url: str, store: SQLiteStore, capsys: pytest.CaptureFixture[str]
) -> None:
    leased_rows(store, 3)
    env = {**os.environ, "SLOW_SECONDS": "1.0", "PYTHONPATH": str(project)}
    argv = [sys.executable, "-m", "statewise", "worker", "--spec", "jobs.yaml", "--store", url]
    argv += ["--actions", "job_actions:registry", "--lease-seconds", "60"]
    proc = subprocess.Popen(argv, cwd=project, env=env, stderr=subprocess.PIPE, text=True)
    try:
        marks = project / "marks"
        assert wait_for(lambda: any(marks.iterdir())), "the worker never started an action"
        [started] = list(marks.iterdir())
        # All three rows are leased to the worker; it is in the middle of the first.
        assert {r.lease_owner for r in outbox(store)} == {workers(store)[0].worker_id}
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    key = started.name.removeprefix("started-")
    assert (marks / f"finished-{key}").exists()  # the action in hand was finished
    rows = {r.key: r for r in outbox(store)}
    assert rows[key].status == "done"
    others = [r for k, r in rows.items() if k != key]
    assert [(r.status, r.lease_owner, r.attempts) for r in others] == [("pending", None, 1)] * 2
    assert "2 leases released" in err
    [worker] = workers(store)
    assert (worker.pid, worker.status) == (proc.pid, "closed")

    status, out, _ = cli(capsys, "runtime", "status", "--store", url)
    assert status == 0
    header, line, outbox_line = out.splitlines()
    assert header.split() == ["WORKER", "PID", "HOST", "STATUS", "HEARTBEAT"]
    assert line.split()[:4] == [worker.worker_id, str(proc.pid), worker.host, "closed"]
    assert outbox_line == "outbox: 2 pending, 0 dead"


# -- in-process workers ------------------------------------------------------------------


def test_the_worker_command_runs_until_sigterm(
    url: str, store: SQLiteStore, capsys: pytest.CaptureFixture[str]
) -> None:
    rt = runtime(store)
    rt.create("j1")
    rt.create("j2")
    rt.enqueue("j1", Event("start", id="s-1"))

    def done() -> bool:
        with store.transaction() as tx:
            settled = not tx.inbox_pending("jobs", 10) and not tx.timers_due("jobs", _far(), 10)
        return settled and [w.status for w in workers(store)] == ["waiting"]

    signal_self_when(done)
    status, _, _ = cli(
        capsys, "worker", "--spec", "jobs.yaml", "--store", url, "--actions", "job_actions:registry"
    )
    assert status == 0
    assert (rt.get("j1").state, rt.get("j2").state) == ("RUNNING", "TIMED_OUT")
    assert [w.status for w in workers(store)] == ["closed"]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler was restored


def test_concurrency_runs_worker_processes_under_one(
    url: str, store: SQLiteStore, capsys: pytest.CaptureFixture[str]
) -> None:
    def both_waiting() -> bool:
        rows = workers(store)
        return len(rows) == 2 and all(w.status == "waiting" for w in rows)

    signal_self_when(both_waiting, signal.SIGINT)
    argv = ["worker", "--spec", "jobs.yaml", "--store", url, "--actions", "job_actions:registry"]
    status, _, _ = cli(capsys, *argv, "--concurrency", "2", "--idle-max", "0.1")
    assert status == 0
    rows = workers(store)
    assert [w.status for w in rows] == ["closed", "closed"]
    assert len({w.pid for w in rows}) == 2 and os.getpid() not in {w.pid for w in rows}


def test_a_worker_process_exits_with_the_worker_s_status(url: str, store: SQLiteStore) -> None:
    options = WorkerOptions(spec="jobs.yaml", store=url, actions="job_actions:registry")
    signal_self_when(lambda: bool(workers(store)))
    with pytest.raises(SystemExit) as stopped:
        _child(options)
    assert stopped.value.code == 0


def test_off_the_main_thread_a_worker_leaves_signals_alone(store: SQLiteStore) -> None:
    worker = Worker(runtime(store), idle_min=0.01, idle_max=0.01)
    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=worker.run)  # handle_signals=True, but not main
    thread.start()
    assert wait_for(lambda: bool(workers(store)))
    assert signal.getsignal(signal.SIGTERM) is before
    worker.stop()
    thread.join(timeout=30)
    assert [w.status for w in workers(store)] == ["closed"]


def test_serve_many_reports_a_worker_that_failed(project: Path, url: str) -> None:
    options = WorkerOptions(spec="missing.yaml", store=url, actions="job_actions:registry")
    assert serve_many(options, 1) == 1
    with pytest.raises(ValueError, match="processes must be >= 1"):
        serve_many(options, 0)


def test_a_worker_loops_backs_off_and_stops(
    store: SQLiteStore, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = runtime(store, worker_id="w1")
    rt.create("j1")
    rt.send("j1", Event("start", id="s-1"))
    rt.enqueue("j1", Event("poke", id="p-1"))
    naps: list[float] = []
    statuses: list[str] = []
    beat = rt.heartbeat

    def heartbeat(status: Any) -> None:
        statuses.append(status)
        beat(status)

    monkeypatch.setattr(rt, "heartbeat", heartbeat)
    worker = Worker(rt, idle_min=0.01, idle_max=0.04, heartbeat_seconds=60, sleep=naps.append)
    calls = 0
    run_once = worker.run_once

    def counted() -> int:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError("the store blinked")
        if calls == 6:
            worker.stop()
        return run_once()

    monkeypatch.setattr(worker, "run_once", counted)
    assert worker.run(handle_signals=False) == 0
    assert "the round failed" in caplog.text
    # ready, running (the poke), waiting while idle; one beat per change of status.
    assert statuses == ["ready", "running", "waiting", "stopped", "closed"]
    assert worker.stopping and worker.runtime is rt
    # The naps double from idle_min up to idle_max (each cut into slices of <= 0.05 s).
    assert naps and max(naps) <= 0.05
    assert rt.history("j1")[-1].event["id"] == "p-1"
    assert [w.status for w in workers(store)] == ["closed"]


def test_the_worker_heartbeats_while_idle_and_survives_a_failing_heartbeat(
    store: SQLiteStore, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = runtime(store, worker_id="w1")
    ticks = iter(range(0, 10_000, 10))
    worker = Worker(rt, idle_min=1, idle_max=1, heartbeat_seconds=15, monotonic=lambda: next(ticks))
    beats: list[str] = []

    def heartbeat(status: str) -> None:
        beats.append(status)
        if len(beats) == 1:
            raise OSError("the store blinked")
        if len(beats) == 4:
            worker.stop()

    monkeypatch.setattr(rt, "heartbeat", heartbeat)
    assert worker.run(handle_signals=False) == 0
    assert "heartbeat failed" in caplog.text
    # The failed "ready" is tried again with the next status; "waiting" is repeated once
    # heartbeat_seconds have passed on the (fake) monotonic clock.
    assert beats[:4] == ["ready", "waiting", "waiting", "waiting"]


def test_a_worker_checks_its_options(store: SQLiteStore) -> None:
    rt = runtime(store)
    with pytest.raises(ValueError, match="batch must be >= 1"):
        Worker(rt, batch=0)
    with pytest.raises(ValueError, match="idle_min <= idle_max"):
        Worker(rt, idle_min=2, idle_max=1)


def test_import_registry_names_what_is_wrong(project: Path) -> None:
    assert import_registry("job_actions:make_registry", ActionRegistry).has("slow")
    with pytest.raises(ValueError, match="expected MODULE:NAME"):
        import_registry("job_actions", ActionRegistry)
    with pytest.raises(ValueError, match="is not a ActionRegistry: module"):
        import_registry("job_actions:os", ActionRegistry)


# -- runtime dead, db upgrade, bad input -----------------------------------------------------


def test_runtime_dead_lists_the_actions_that_gave_up(
    url: str, store: SQLiteStore, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = cli(capsys, "runtime", "dead", "--store", url)
    assert (status, out) == (0, "no dead actions\n")
    rt = runtime(store)
    rt.create("j1")
    rt.send("j1", Event("start", id="s-1"))
    rt.send("j1", Event("poke", id="p-1"))  # flaky fails; no retries: dead at once
    status, out, _ = cli(capsys, "runtime", "dead", "--store", url)
    assert status == 0
    assert [line.split(maxsplit=3) for line in out.splitlines()] == [
        ["KEY", "ACTION", "ATTEMPTS", "LAST ERROR"],
        ["jobs:j1:3:0", "flaky", "1", "RuntimeError: flaky is down"],
    ]
    status, out, _ = cli(capsys, "runtime", "dead", "--store", url, "--format", "json")
    assert json.loads(out) == [
        {
            "key": "jobs:j1:3:0",
            "machine": "jobs",
            "entity_id": "j1",
            "action": {"name": "flaky"},
            "attempts": 1,
            "last_error": "RuntimeError: flaky is down",
        }
    ]
    _, out, _ = cli(capsys, "runtime", "dead", "--store", url, "--machine", "other")
    assert out == "no dead actions\n"


def test_runtime_status_as_json_and_with_no_workers(
    url: str, store: SQLiteStore, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = cli(capsys, "runtime", "status", "--store", url)
    assert (status, out) == (0, "no workers have reported\noutbox: 0 pending, 0 dead\n")
    runtime(store, worker_id="w1").heartbeat("waiting")
    status, out, _ = cli(capsys, "runtime", "status", "--store", url, "--format", "json")
    report = json.loads(out)
    assert report["store"] == url and report["outbox"] == {"pending": 0, "dead": 0}
    [row] = report["workers"]
    assert (row["worker_id"], row["pid"], row["status"]) == ("w1", os.getpid(), "waiting")
    assert 0 <= row["heartbeat_age_seconds"] < 60


def test_db_upgrade_migrates_once(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{project / 'fresh.db'}"
    status, _, err = cli(capsys, "runtime", "status", "--store", url)
    assert status == 1 and "statewise db upgrade" in err  # looking never migrates
    status, out, _ = cli(capsys, "db", "upgrade", "--store", url)
    assert (status, out) == (0, "applied migrations 1: schema version 1\n")
    status, out, _ = cli(capsys, "db", "upgrade", "--store", url)
    assert (status, out) == (0, "already at schema version 1: nothing to do\n")
    assert cli(capsys, "runtime", "status", "--store", url)[0] == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["runtime", "status", "--store", "mysql://db"], "--store: cannot open store"),
        (["db", "upgrade", "--store", "orders.db"], "no URL scheme"),
        (["worker", "--spec", "jobs.yaml", "--store", "x://y"], "action 'slow' is not registered"),
        (
            ["worker", "--spec", "jobs.yaml", "--store", "x://y", "--actions", "job_actions:nope"],
            "cannot import 'job_actions:nope'",
        ),
        (
            [
                "worker",
                "--spec",
                "jobs.yaml",
                "--store",
                "x://",
                "--actions",
                "job_actions:registry",
            ],
            "unknown scheme 'x'",
        ),
        (["worker", "--spec", "jobs.yaml", "--store", "x://", "--concurrency", "0"], "must be > 0"),
        (["runtime"], "required: WHAT"),
    ],
)
def test_command_line_mistakes_exit_2(
    project: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    status, _, err = cli(capsys, *argv)
    assert status == 2
    assert message in err


def test_the_worker_command_binds_guards(
    project: Path, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "guarded.yaml").write_text(
        SPEC.replace("actions: [flaky]}", "actions: [flaky], guards: [allowed]}")
    )
    (project / "job_guards.py").write_text(
        "from statewise import GuardRegistry\nguards = GuardRegistry()\n"
        "guards.register('allowed', lambda ctx: True)\n"
    )
    argv = ["worker", "--spec", "guarded.yaml", "--store", url, "--actions", "job_actions:registry"]
    status, _, err = cli(capsys, *argv)  # unbound guards are found at start-up
    assert status == 2 and "the spec names guards (allowed): pass --guards" in err
    signal_self_when(lambda: bool(workers_at(url)))
    assert cli(capsys, *argv, "--guards", "job_guards:guards")[0] == 0


def workers_at(url: str) -> list[WorkerRow]:
    with SQLiteStore(url.removeprefix("sqlite:///")) as store:
        return [w for w in workers(store) if w.status == "waiting"]


def _far() -> datetime:
    return datetime(9999, 1, 1, tzinfo=UTC)
