"""The durable runtime's speed: ``make bench-runtime`` (or ``python benchmarks/bench_runtime.py
[--quick]``).

End to end, per event: **send, commit, act**. ``Runtime.send`` locks the entity, adds the
event to the inbox, decides it, writes the new state, a history row and an outbox row,
commits, then runs the action and acknowledges its outbox row. It is measured on SQLite
(WAL, ``synchronous=FULL``) and on PostgreSQL (a server started for the run, at its
default durability: ``fsync=on``, ``synchronous_commit=on``), with 1, 2 and 4 processes
sending at once, each to entities of its own, as fast as it can. Each run reports events
per second (all processes together) and the p50 / p99 latency of one ``send`` call.

Beside it, in the same run and on the same database server, the **floor**: the same
transaction written by hand (lock the entity's row, update it, insert a history row,
insert an outbox row, commit), then the same action called directly: the least a
durable transition with an outbox costs. Targets (PASS/FAIL):

* the runtime makes at least 50% of the floor's events/s, on each store and process count;
* SQLite: at least 1,000 events/s with ``synchronous=FULL`` (best of the process counts);
* PostgreSQL: at least 1,500 events/s with 4 processes, default durability.

For information (no target), the same stores with the background path: the
``statewise worker`` command, 1, 2 and 4 processes of it, started on an empty store; once
they idle, ``--queued`` events are added to the inbox in one transaction, and the time
until every event is applied and every action acknowledged gives events/s.

Each run uses a fresh database (SQLite: a new file; PostgreSQL: a new schema). Floor and
runtime alternate, ``--repeats`` times each; the best run by events/s is reported (its
latencies with it), the others are kept in the JSON. Writes text and JSON to
``benchmarks/results/`` (``runtime-<UTC>.{txt,json}``, and ``runtime-latest.*`` for
full runs). Exit status 0 when it ran (whatever PASS/FAIL says), 1 on an error.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import glob
import json
import multiprocessing
import os
import platform
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

from environment import loadavg, source_state

from statewise import ActionRegistry, Event, StateMachine

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

FLOOR_SHARE = 0.5  # the runtime's events/s at least this share of the floor's
SQLITE_MIN = 1_000.0  # events/s, synchronous=FULL
POSTGRES_MIN = 1_500.0  # events/s with POSTGRES_MIN_PROCESSES processes
POSTGRES_MIN_PROCESSES = 4
MACHINE = "bench"

# Two states and one trigger flipping between them: every event applies and writes one
# outbox row, so runtime and floor do the same work per event.
SPEC: dict[str, Any] = {
    "meta": {"machine_name": MACHINE},
    "states": [{"name": "A", "type": "initial"}, {"name": "B"}],
    "transitions": [
        {"trigger": "flip", "source": "A", "dest": "B", "actions": ["act"]},
        {"trigger": "flip", "source": "B", "dest": "A", "actions": ["act"]},
    ],
}
FLIP = {"A": "B", "B": "A"}

registry = ActionRegistry()


@registry.register
def act(ctx: Mapping[str, Any], idempotency_key: str) -> None:
    """The action every event runs: nothing, so what is timed is the runtime's work."""


def log(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


# -- databases ------------------------------------------------------------------------


@dataclass
class PgServer:
    """A throwaway PostgreSQL cluster at the server's default durability, on loopback.

    As root the server runs as the ``postgres`` OS user (it refuses root)."""

    bindir: Path
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="sw-bench-pg-")))
    port: int = 0

    @staticmethod
    def find_bindir() -> Path | None:
        candidates: list[Path] = []
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            out = subprocess.run(
                ["pg_config", "--bindir"], capture_output=True, text=True, check=True
            ).stdout
            candidates.append(Path(out.strip()))
        candidates += [
            Path(p).parent for p in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))[::-1]
        ]
        if (initdb := shutil.which("initdb")) is not None:
            candidates += [Path(initdb).resolve().parent]
        for bindir in candidates:
            if all((bindir / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
                return bindir
        return None

    def _run(self, argv: list[str]) -> None:
        if os.geteuid() == 0:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: {done.stdout}{done.stderr}")

    def start(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.root, user="postgres")
        data = str(self.root / "data")
        self._run([str(self.bindir / "initdb"), "-D", data, "-U", "postgres", "-A", "trust"])
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root}"
        log_file = str(self.root / "server.log")
        self._run(
            [str(self.bindir / "pg_ctl"), "start", "-w", "-D", data, "-l", log_file, "-o", options]
        )

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError, OSError):
            self._run(
                [str(self.bindir / "pg_ctl"), "stop", "-m", "fast", "-D", str(self.root / "data")]
            )
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"


@dataclass(frozen=True)
class Target:
    """Where one run writes: the store URL the runtime opens, or what the floor opens."""

    store: str  # "sqlite" | "postgres"
    url: str  # runtime: store URL; floor: SQLite path or PostgreSQL URL
    schema: str | None = None  # floor on PostgreSQL: its schema


SQLITE_FLOOR_DDL = (
    """CREATE TABLE entities (machine TEXT NOT NULL, entity_id TEXT NOT NULL,
        state TEXT NOT NULL, context TEXT NOT NULL, version INTEGER NOT NULL,
        entered_at INTEGER NOT NULL, PRIMARY KEY (machine, entity_id))""",
    """CREATE TABLE history (machine TEXT NOT NULL, entity_id TEXT NOT NULL,
        seq INTEGER NOT NULL, version INTEGER NOT NULL, event TEXT NOT NULL,
        from_state TEXT NOT NULL, to_state TEXT NOT NULL, success INTEGER NOT NULL,
        actions TEXT NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (machine, entity_id, seq))""",
    """CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE,
        machine TEXT NOT NULL, entity_id TEXT NOT NULL, action TEXT NOT NULL,
        context TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL,
        next_attempt_at INTEGER NOT NULL)""",
)
PG_FLOOR_DDL = (
    """CREATE TABLE entities (machine text NOT NULL, entity_id text NOT NULL,
        state text NOT NULL, context jsonb NOT NULL, version bigint NOT NULL,
        entered_at timestamptz NOT NULL, PRIMARY KEY (machine, entity_id))""",
    """CREATE TABLE history (machine text NOT NULL, entity_id text NOT NULL,
        seq bigint NOT NULL, version bigint NOT NULL, event jsonb NOT NULL,
        from_state text NOT NULL, to_state text NOT NULL, success boolean NOT NULL,
        actions jsonb NOT NULL, at timestamptz NOT NULL, PRIMARY KEY (machine, entity_id, seq))""",
    """CREATE TABLE outbox (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        key text NOT NULL UNIQUE, machine text NOT NULL, entity_id text NOT NULL,
        action jsonb NOT NULL, context jsonb NOT NULL, status text NOT NULL,
        attempts integer NOT NULL, next_attempt_at timestamptz NOT NULL)""",
)


def _sqlite_floor_connect(path: str) -> sqlite3.Connection:
    # The runtime's SQLiteStore settings: WAL, synchronous=FULL, a long busy timeout,
    # autocommit mode with explicit BEGIN IMMEDIATE.
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 30000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    return conn


def prepare(kind: str, store: str, base: str, n: int) -> Target:
    """A fresh database for run ``n``: a new SQLite file under ``base`` (a directory), or
    a new schema on the server ``base`` names; migrated (runtime) or with the floor's
    tables."""
    if store == "sqlite":
        path = os.path.join(base, f"{kind}-{n}.db")
        if kind == "floor":
            conn = _sqlite_floor_connect(path)
            for ddl in SQLITE_FLOOR_DDL:
                conn.execute(ddl)
            conn.close()
            return Target(store, path)
        from statewise.runtime.urls import open_store

        url = "sqlite:///" + path
        open_store(url).close()  # migrates
        return Target(store, url)
    schema = f"{kind}_{n}"
    if kind == "floor":
        import psycopg

        with psycopg.connect(base, autocommit=True) as pgc:
            # The schema name is ours (floor_<n>); bytes, since it is not a literal string.
            pgc.execute(f"CREATE SCHEMA {schema}".encode())
            pgc.execute(f"SET search_path TO {schema}".encode())
            for ddl in PG_FLOOR_DDL:
                pgc.execute(ddl.encode())
        return Target(store, base, schema)
    from statewise.runtime.urls import open_store

    url = f"{base}?schema={schema}"
    open_store(url).close()
    return Target(store, url)


# -- the clients (one per process) ------------------------------------------------------


Send = Callable[[str, int], None]  # (entity, event number) -> one event, end to end


@contextlib.contextmanager
def runtime_sender(target: Target, entities: Sequence[str]) -> Iterator[Send]:
    from statewise.runtime.runtime import Runtime
    from statewise.runtime.urls import open_store

    store = open_store(target.url)
    try:
        runtime = Runtime(StateMachine.from_dict(SPEC), store, actions=registry)
        for entity in entities:
            runtime.create(entity)

        def send(entity: str, n: int) -> None:
            key = f"{entity}-{n}"
            runtime.send(entity, Event("flip", id=key), idempotency_key=key)

        yield send
    finally:
        store.close()


@contextlib.contextmanager
def floor_sender(target: Target, entities: Sequence[str]) -> Iterator[Send]:
    """The hand-written transaction: lock the row, update it, insert history, insert
    the outbox row, commit; then call the action."""
    empty = "{}"
    if target.store == "sqlite":
        conn = _sqlite_floor_connect(target.url)
        for entity in entities:
            conn.execute(
                "INSERT INTO entities VALUES (?, ?, 'A', ?, 1, ?)",
                (MACHINE, entity, empty, time.time_ns() // 1000),
            )

        def send(entity: str, n: int) -> None:
            key = f"{entity}-{n}"
            now = time.time_ns() // 1000
            conn.execute("BEGIN IMMEDIATE")  # SQLite's row lock is the database's write lock
            state, version = conn.execute(
                "SELECT state, version FROM entities WHERE machine = ? AND entity_id = ?",
                (MACHINE, entity),
            ).fetchone()
            new, version = FLIP[state], version + 1
            conn.execute(
                "UPDATE entities SET state = ?, version = ?, entered_at = ? "
                "WHERE machine = ? AND entity_id = ?",
                (new, version, now, MACHINE, entity),
            )
            conn.execute(
                "INSERT INTO history VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?)",
                (MACHINE, entity, version, version, _event(key), state, new, '["act"]', now),
            )
            out = f"{MACHINE}:{entity}:{version}:0"
            conn.execute(
                "INSERT INTO outbox (key, machine, entity_id, action, context, status, "
                "attempts, next_attempt_at) VALUES (?, ?, ?, ?, ?, 'pending', 0, ?)",
                (out, MACHINE, entity, '{"name": "act"}', empty, now),
            )
            conn.execute("COMMIT")
            act({}, idempotency_key=out)

        try:
            yield send
        finally:
            conn.close()
        return

    import psycopg

    with psycopg.connect(target.url) as pg:
        pg.execute(f"SET search_path TO {target.schema}".encode())
        pg.commit()
        for entity in entities:
            pg.execute(
                "INSERT INTO entities VALUES (%s, %s, 'A', %s, 1, now())", (MACHINE, entity, empty)
            )
        pg.commit()

        def send_pg(entity: str, n: int) -> None:
            key = f"{entity}-{n}"
            state, version = pg.execute(  # type: ignore[misc]
                "SELECT state, version FROM entities WHERE machine = %s AND entity_id = %s "
                "FOR UPDATE",
                (MACHINE, entity),
            ).fetchone()
            new, version = FLIP[state], version + 1
            pg.execute(
                "UPDATE entities SET state = %s, version = %s, entered_at = now() "
                "WHERE machine = %s AND entity_id = %s",
                (new, version, MACHINE, entity),
            )
            pg.execute(
                "INSERT INTO history VALUES (%s, %s, %s, %s, %s, %s, %s, true, %s, now())",
                (MACHINE, entity, version, version, _event(key), state, new, '["act"]'),
            )
            out = f"{MACHINE}:{entity}:{version}:0"
            pg.execute(
                "INSERT INTO outbox (key, machine, entity_id, action, context, status, "
                "attempts, next_attempt_at) VALUES (%s, %s, %s, %s, %s, 'pending', 0, now())",
                (out, MACHINE, entity, '{"name": "act"}', empty),
            )
            pg.commit()
            act({}, idempotency_key=out)

        yield send_pg


def _event(key: str) -> str:
    return json.dumps({"trigger": "flip", "payload": {}, "id": key})


SENDERS: dict[str, Callable[[Target, Sequence[str]], contextlib.AbstractContextManager[Send]]] = {
    "runtime": runtime_sender,
    "floor": floor_sender,
}


def client(
    kind: str,
    target: Target,
    index: int,
    entities: int,
    warmup: int,
    seconds: float,
    barrier: Barrier,
    results: Any,
) -> None:
    """One process: create its entities, warm up, wait for the others, then send events
    round-robin to its entities for ``seconds``; put (events, start, end, latencies)."""
    ids = [f"p{index}-e{i}" for i in range(entities)]
    try:
        with SENDERS[kind](target, ids) as send:
            n = 0
            for _ in range(warmup):
                send(ids[n % entities], n)
                n += 1
            barrier.wait(timeout=120)
            latencies: list[float] = []
            start = time.monotonic()  # CLOCK_MONOTONIC: comparable across processes
            end = start + seconds
            now = start
            while now < end:
                t0 = time.perf_counter()
                send(ids[n % entities], n)
                latencies.append(time.perf_counter() - t0)
                n += 1
                now = time.monotonic()
            results.put((index, len(latencies), start, now, latencies))
    except BaseException as exc:
        with contextlib.suppress(Exception):
            barrier.abort()
        results.put((index, -1, 0.0, 0.0, f"{type(exc).__name__}: {exc}"))
        raise


def measure(kind: str, target: Target, processes: int, cfg: Config) -> dict[str, Any]:
    """One timed run: ``processes`` clients at once; events/s and latency percentiles."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes)
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=client,
            args=(kind, target, i, cfg.entities, cfg.warmup, cfg.seconds, barrier, results),
        )
        for i in range(processes)
    ]
    for p in procs:
        p.start()
    got = [results.get(timeout=cfg.seconds + 180) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    errors = [r[4] for r in got if r[1] < 0]
    if errors:
        raise RuntimeError(f"{kind} on {target.store}: {errors[0]}")
    events = sum(r[1] for r in got)
    span = max(r[3] for r in got) - min(r[2] for r in got)
    latencies = sorted(x for r in got for x in r[4])
    return {
        "events": events,
        "seconds": span,
        "events_per_s": events / span,
        "p50_ms": _percentile(latencies, 0.50) * 1e3,
        "p99_ms": _percentile(latencies, 0.99) * 1e3,
        "mean_ms": statistics.fmean(latencies) * 1e3,
    }


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    # Nearest rank: the value below which a share q of the samples lie.
    index = min(len(sorted_values) - 1, max(0, round(q * len(sorted_values)) - 1))
    return sorted_values[index]


# -- queued: statewise worker processes draining the inbox (information) --------------


def measure_queued(target: Target, processes: int, cfg: Config, workdir: Path) -> dict[str, Any]:
    """``processes`` ``statewise worker`` processes (the real command) started on an empty
    store; once all are idle, ``cfg.queued`` events are added to the inbox in one
    transaction; timed until every event is applied and every action acknowledged."""
    from statewise.runtime.runtime import Runtime
    from statewise.runtime.urls import open_store

    spec = workdir / "bench.json"
    spec.write_text(json.dumps(SPEC), encoding="utf-8")
    store = open_store(target.url)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        runtime = Runtime(StateMachine.from_dict(SPEC), store, actions=registry)
        ids = [f"q-e{i}" for i in range(cfg.entities * processes)]
        for entity in ids:
            runtime.create(entity)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        }
        argv = [
            sys.executable,
            "-m",
            "statewise",
            "worker",
            "--spec",
            str(spec),
            "--store",
            target.url,
            "--actions",
            "bench_runtime:registry",
            "--idle-max",
            "0.05",
        ]
        procs = [
            subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(processes)
        ]
        _wait(lambda: _idle_workers(store) >= processes, 120, "workers did not start")
        with store.transaction() as tx:
            now = tx.now()
            for n in range(cfg.queued):
                entity = ids[n % len(ids)]
                key = f"{entity}-{n}"
                tx.inbox_add(MACHINE, entity, key, Event("flip", id=key).to_dict(), now)
        start = time.monotonic()
        _wait(lambda: _drained(store), 600, "the workers did not drain the inbox")
        seconds = time.monotonic() - start
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        store.close()
    return {"events": cfg.queued, "seconds": seconds, "events_per_s": cfg.queued / seconds}


def _wait(done: Callable[[], bool], limit: float, what: str) -> None:
    deadline = time.monotonic() + limit
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} within {limit:g} s")
        time.sleep(0.02)


def _idle_workers(store: Any) -> int:
    with store.transaction() as tx:
        return sum(1 for w in tx.workers() if w.status == "waiting")


def _drained(store: Any) -> bool:
    with store.transaction() as tx:
        return not tx.inbox_pending(MACHINE, 1) and not tx.outbox_rows(
            status="pending", machine=MACHINE
        )


# -- the run ------------------------------------------------------------------------


@dataclass
class Config:
    seconds: float
    repeats: int
    processes: tuple[int, ...]
    stores: tuple[str, ...]
    entities: int
    warmup: int
    queued: int
    pg_url: str | None
    quick: bool
    write: bool


def run_store(
    store: str, base: str, cfg: Config, counter: Iterator[int], workdir: Path
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for processes in cfg.processes:
        runs: dict[str, list[dict[str, Any]]] = {"floor": [], "runtime": []}
        for _ in range(cfg.repeats):
            # Alternate, so drift and other load on the machine hit both alike.
            for kind in ("floor", "runtime"):
                target = prepare(kind, store, base, next(counter))
                log(f"{store}: {kind}, {processes} process(es)")
                runs[kind].append(measure(kind, target, processes, cfg))
        best = {k: max(v, key=lambda r: r["events_per_s"]) for k, v in runs.items()}
        log(f"{store}: queued, {processes} worker(s)")
        queued = measure_queued(
            prepare("queued", store, base, next(counter)), processes, cfg, workdir
        )
        rows.append(
            {
                "store": store,
                "processes": processes,
                "floor": best["floor"],
                "runtime": best["runtime"],
                "runtime_vs_floor": best["runtime"]["events_per_s"] / best["floor"]["events_per_s"],
                "queued": queued,
                "all_runs": runs,
            }
        )
    return rows


def target(name: str, value: float, limit: float) -> dict[str, Any]:
    return {
        "name": name,
        "value": value,
        "limit": limit,
        "kind": "min",
        "status": "PASS" if value >= limit else "FAIL",
    }


def evaluate(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    targets = [
        target(
            f"{r['store']}, {r['processes']} process(es): runtime/floor events/s",
            r["runtime_vs_floor"],
            FLOOR_SHARE,
        )
        for r in rows
    ]
    sqlite = [r for r in rows if r["store"] == "sqlite"]
    if sqlite:
        best = max(sqlite, key=lambda r: r["runtime"]["events_per_s"])
        targets.append(
            target(
                f"sqlite, synchronous=FULL: events/s (best: {best['processes']} process(es))",
                best["runtime"]["events_per_s"],
                SQLITE_MIN,
            )
        )
    pg = [r for r in rows if r["store"] == "postgres" and r["processes"] == POSTGRES_MIN_PROCESSES]
    if pg:
        targets.append(
            target(
                f"postgres, {POSTGRES_MIN_PROCESSES} processes, default durability: events/s",
                pg[0]["runtime"]["events_per_s"],
                POSTGRES_MIN,
            )
        )
    return targets


STORE_TITLES = {
    "sqlite": "SQLite {version} (WAL, synchronous=FULL)",
    "postgres": "PostgreSQL {version} (default durability: fsync=on, synchronous_commit=on)",
}


def render(
    rows: Sequence[dict[str, Any]],
    targets: Sequence[dict[str, Any]],
    meta: dict[str, Any],
    cfg: Config,
    skipped: Mapping[str, str],
) -> str:
    lines = [
        f"statewise runtime benchmark  {meta['timestamp']}  python {meta['python']}  "
        f"cpus {meta['cpu_count']}  statewise {meta['statewise']}"
        + ("  [QUICK]" if cfg.quick else ""),
        f"load average {meta['loadavg_start']} at start, {meta.get('loadavg_end', '?')} at end "
        "(over the cpu count: other processes share the cores, expect noise)",
        "",
        f"send, commit, act: each process sends to {cfg.entities} entities of its own, "
        f"round-robin, as fast as it can, for {cfg.seconds:g} s",
        f"after {cfg.warmup} warm-up events; a fresh database per run; best of {cfg.repeats} "
        "run(s) by events/s. Latency: one send() call (runtime),",
        "one transaction plus the action call (floor). Floor: the same transaction by hand "
        "(lock row, update, insert history, insert outbox, commit), then the action.",
        f"queued (information, no target): {cfg.queued:,} events put in the inbox at once, "
        "applied and acted on by as many `statewise worker`",
        "processes as the row says; events/s from the insert until every action is acknowledged.",
    ]
    for store in cfg.stores:
        lines += ["", STORE_TITLES[store].format(version=meta["versions"].get(store, "?"))]
        if store in skipped:
            lines.append(f"   skipped: {skipped[store]}")
            continue
        lines.append(
            f"   {'processes':>9}  {'floor ev/s':>10} {'p50 ms':>7} {'p99 ms':>7}  "
            f"{'runtime ev/s':>12} {'p50 ms':>7} {'p99 ms':>7}  {'runtime/floor':>13}"
            f"  {'queued ev/s':>11}"
        )
        for r in rows:
            if r["store"] != store:
                continue
            f, rt = r["floor"], r["runtime"]
            lines.append(
                f"   {r['processes']:>9}  {f['events_per_s']:>10,.0f} {f['p50_ms']:>7.2f} "
                f"{f['p99_ms']:>7.2f}  {rt['events_per_s']:>12,.0f} {rt['p50_ms']:>7.2f} "
                f"{rt['p99_ms']:>7.2f}  {r['runtime_vs_floor']:>12.2f}x"
                f"  {r['queued']['events_per_s']:>11,.0f}"
            )
    lines += ["", "targets"]
    for t in targets:
        lines.append(
            f"   {t['status']}  {t['name']:<62} {t['value']:9.2f}  (target >= {t['limit']:g})"
        )
    passed = sum(1 for t in targets if t["status"] == "PASS")
    lines.append(f"   {passed} of {len(targets)} targets met")
    lines.append(f"   wall time {meta.get('wall_seconds', 0):.0f} s")
    return "\n".join(lines) + "\n"


def machine_info() -> dict[str, Any]:
    try:
        statewise_version = version("statewise")
    except PackageNotFoundError:
        statewise_version = "?"
    return {
        "timestamp": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "statewise": statewise_version,
        "versions": {"sqlite": sqlite3.sqlite_version},
        **source_state(),
        "loadavg_start": loadavg(),
    }


def _pg_version(url: str) -> str:
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        fsync = conn.execute("SHOW fsync").fetchone()
        sync = conn.execute("SHOW synchronous_commit").fetchone()
    assert row is not None and fsync is not None and sync is not None
    if (fsync[0], sync[0]) != ("on", "on"):
        log(f"warning: the server runs with fsync={fsync[0]}, synchronous_commit={sync[0]}")
    return str(row[0]).split()[0]


def write_results(data: dict[str, Any], text: str, quick: bool) -> list[Path]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = data["timestamp"].replace("-", "").replace(":", "")
    suffix = "-quick" if quick else ""
    body = json.dumps(data, indent=2) + "\n"
    paths = [RESULTS / f"runtime-{stamp}{suffix}.json", RESULTS / f"runtime-{stamp}{suffix}.txt"]
    paths[0].write_text(body, encoding="utf-8")
    paths[1].write_text(text, encoding="utf-8")
    if not quick:
        (RESULTS / "runtime-latest.json").write_text(body, encoding="utf-8")
        (RESULTS / "runtime-latest.txt").write_text(text, encoding="utf-8")
        paths += [RESULTS / "runtime-latest.json", RESULTS / "runtime-latest.txt"]
    return paths


def parse_args(argv: Sequence[str] | None) -> Config:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="a smoke run: 1.5 s runs, one each")
    p.add_argument("--seconds", type=float, help="timed seconds per run (default 5)")
    p.add_argument("--repeats", type=int, help="runs per implementation and setting (default 2)")
    p.add_argument("--processes", default="1,2,4", help="process counts (default 1,2,4)")
    p.add_argument("--stores", default="sqlite,postgres", help="default sqlite,postgres")
    p.add_argument("--entities", type=int, default=32, help="entities per process (default 32)")
    p.add_argument(
        "--pg-url",
        default=os.environ.get("STATEWISE_BENCH_PG_URL"),
        help="use this PostgreSQL server (a URL; it must allow CREATE SCHEMA) instead of "
        "starting one; default $STATEWISE_BENCH_PG_URL",
    )
    p.add_argument("--queued", type=int, help="events drained by statewise workers (default 3,000)")
    p.add_argument("--no-write", action="store_true", help="print only")
    a = p.parse_args(argv)
    quick = bool(a.quick)
    stores = tuple(s.strip() for s in a.stores.split(",") if s.strip())
    unknown = set(stores) - set(STORE_TITLES)
    if unknown:
        p.error(f"unknown stores {sorted(unknown)}; known: sqlite, postgres")
    return Config(
        seconds=a.seconds or (1.5 if quick else 5.0),
        repeats=a.repeats or (1 if quick else 2),
        processes=tuple(int(n) for n in a.processes.split(",")),
        stores=stores,
        entities=a.entities,
        warmup=20 if quick else 100,
        queued=a.queued or (300 if quick else 3_000),
        pg_url=a.pg_url,
        quick=quick,
        write=not a.no_write,
    )


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    meta = machine_info()
    began = time.perf_counter()
    rows: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    counter = iter(range(1, 1_000_000))
    server: PgServer | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="sw-bench-runtime-", dir=None) as tmp:
            for store in cfg.stores:
                if store == "sqlite":
                    rows += run_store("sqlite", tmp, cfg, counter, Path(tmp))
                    continue
                url = cfg.pg_url
                if url is None:
                    bindir = PgServer.find_bindir()
                    if bindir is None:
                        skipped[store] = "no PostgreSQL server binaries (initdb, pg_ctl) found"
                        continue
                    server = PgServer(bindir)
                    log(f"starting PostgreSQL from {bindir}")
                    server.start()
                    url = server.url
                try:
                    meta["versions"]["postgres"] = _pg_version(url)
                except ImportError as exc:
                    skipped[store] = f"psycopg is not installed ({exc})"
                    continue
                rows += run_store("postgres", url, cfg, counter, Path(tmp))
    except Exception as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        if server is not None:
            server.stop()
    meta["loadavg_end"] = loadavg()
    meta["wall_seconds"] = time.perf_counter() - began
    targets = evaluate(rows)
    text = render(rows, targets, meta, cfg, skipped)
    print(text, end="")
    if cfg.write:
        data = {
            **meta,
            "config": {**vars(cfg), "processes": list(cfg.processes), "stores": list(cfg.stores)},
            "rows": rows,
            "skipped": skipped,
            "targets": targets,
        }
        for path in write_results(data, text, cfg.quick):
            print(f"wrote {path.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
