"""The ``statewise`` command: validate, draw, walk, simulate and compare specs.

Thin by design: every command loads machines with the library, calls one library
function and prints what it returns. ``main(argv) -> int`` is the whole interface, so
tests run the CLI in-process. Exit codes: 0 all well; 1 analysis found errors (or
warnings, with ``--strict``), or a simulated event was rejected; 2 a spec does not
load, or the command line is wrong. ``diff`` exits 1 when stored states would be
orphaned. Results go to stdout, errors to stderr.

The durable runtime's commands (``worker``, ``runtime status|dead``, ``db upgrade``)
import :mod:`statewise.runtime` only when they run. A store URL nobody can open is a
command-line mistake (2); a store at the wrong schema version, 1.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shlex
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

from statewise.analysis import analyze
from statewise.analysis.findings import Finding, Severity
from statewise.analysis.paths import shortest_paths, transition_cover
from statewise.engine.actions import ActionRegistry
from statewise.engine.guards import GuardRegistry
from statewise.errors import Problem, SpecError, StatewiseError, UndefinedStateError
from statewise.machine import StateMachine
from statewise.model.event import Event
from statewise.model.result import TransitionResult

__all__ = ["main"]

EXAMPLES = """\
examples:
  statewise validate examples/order_fsm.yaml
  statewise validate specs/*.yaml --format json --strict
  statewise graph examples/order_fsm.yaml --format mermaid
  statewise graph examples/order_fsm.yaml --format svg -o order.svg --highlight
  statewise paths examples/order_fsm.yaml --cover transitions
  statewise simulate examples/order_fsm.yaml --state OPEN amend_price 'cancel_requested'
  statewise simulate spec.yaml --state NEW 'pay={"amount": 5}' --context '{"limit": 10}'
  statewise diff v1.yaml v2.yaml
  statewise schema > machine.schema.json
  statewise worker --spec order_fsm.yaml --store sqlite:///orders.db --actions app:actions
  statewise runtime status --store sqlite:///orders.db
  statewise runtime dead --store sqlite:///orders.db --format json
  statewise db upgrade --store postgresql://app@db/orders
"""

_SCHEMAS = {
    "machine": "machine.schema.json",
    "event": "event.schema.json",
    "result": "transition_result.schema.json",
}


class _Usage(Exception):
    """A command-line mistake: printed to stderr, exit status 2."""


def main(argv: Sequence[str] | None = None, *, stdin: TextIO | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = _parser()
    try:
        args, extra = parser.parse_known_args(argv)
        # `simulate SPEC --state S EVENT...`: events may follow the options.
        if args.command == "simulate" and not any(x.startswith("-") for x in extra):
            args.events = [*args.events, *extra]
        elif extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:  # argparse exits on --help (0) and on usage errors (2)
        return int(exc.code or 0)
    command: Callable[[argparse.Namespace, TextIO], int] = args.run
    try:
        return command(args, stdin or sys.stdin)
    except _Usage as exc:
        print(f"statewise {args.command}: {exc}", file=sys.stderr)
        return 2
    except SpecError as exc:
        _print_problems(exc.problems, sys.stderr)
        return 2
    except StatewiseError as exc:
        print(f"statewise {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="statewise",
        description="Validate, draw, walk, simulate and compare statewise machine specs.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, run: Callable[..., int], epilog: str) -> Any:
        p = sub.add_parser(
            name,
            help=help,
            description=help,
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(run=run)
        return p

    p = command(
        "validate",
        "check specs: schema, semantics, then static analysis",
        _validate,
        "prints file:line:col: severity[code]: message per problem;\n"
        "exit 2 when a spec does not load, 1 when analysis finds an error\n"
        "(or a warning, with --strict), 0 otherwise.\n\n"
        "example: statewise validate examples/order_fsm.yaml --ignore nondeterminism",
    )
    p.add_argument("specs", nargs="+", metavar="SPEC", type=Path)
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--strict", action="store_true", help="warnings fail too (exit 1)")
    p.add_argument("--ignore", action="append", default=[], metavar="CODE", help="skip a check")
    _registry_options(p)

    p = command(
        "graph",
        "draw a machine as Mermaid, Graphviz DOT, SVG or PNG",
        _graph,
        "svg and png need Graphviz's dot program.\n\n"
        "example: statewise graph examples/order_fsm.yaml --format svg -o order.svg",
    )
    p.add_argument("spec", metavar="SPEC", type=Path)
    p.add_argument("--format", choices=("mermaid", "dot", "svg", "png"), default="mermaid")
    p.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    p.add_argument("--highlight", action="store_true", help="mark what `validate` finds")

    p = command(
        "paths",
        "event sequences for tests: the shortest way to every state, or a transition cover",
        _paths,
        "example: statewise paths examples/order_fsm.yaml --cover transitions --format json",
    )
    p.add_argument("spec", metavar="SPEC", type=Path)
    p.add_argument("--cover", choices=("states", "transitions"), default="states")
    p.add_argument("--format", choices=("text", "json"), default="text")

    p = command(
        "simulate",
        "decide events one after the other and show each result and its trace",
        _simulate,
        "EVENT is TRIGGER or TRIGGER=JSON_PAYLOAD. With no events, reads them from a\n"
        "prompt (one per line; 'quit' or end of input stops). Guards need --guards,\n"
        "or --assume pass|fail to answer every guard the same way.\n\n"
        "example: statewise simulate examples/order_fsm.yaml --state PENDING_NEW \\\n"
        "           order_acknowledged 'execution_report={\"fill_qty\": 5}' \\\n"
        "           --context '{\"order_qty\": 5}' --guards tests.conftest:order_guards",
    )
    p.add_argument("spec", metavar="SPEC", type=Path)
    p.add_argument("events", nargs="*", metavar="EVENT")
    p.add_argument("--state", help="the state to start in (default: the initial state)")
    p.add_argument("--context", default="{}", help="the context, as a JSON object")
    p.add_argument("--assume", choices=("pass", "fail"), help="answer every guard so")
    _registry_options(p, actions=False)

    p = command(
        "diff",
        "compare two versions of a spec: states, transitions, orphaned stored states",
        _diff,
        "example: statewise diff v1/order_fsm.yaml v2/order_fsm.yaml --format json",
    )
    p.add_argument("old", metavar="OLD", type=Path)
    p.add_argument("new", metavar="NEW", type=Path)
    p.add_argument("--format", choices=("text", "json"), default="text")

    p = command(
        "schema",
        "print a JSON Schema: the machine spec's (default), an event's or a result's",
        _schema,
        "example: statewise schema > machine.schema.json, then start a spec with\n"
        "  # yaml-language-server: $schema=machine.schema.json",
    )
    p.add_argument("kind", nargs="?", choices=tuple(_SCHEMAS), default="machine")

    _runtime_commands(command)
    return parser


def _runtime_commands(command: Callable[..., Any]) -> None:
    """``worker``, ``runtime status|dead`` and ``db upgrade``: the durable runtime's."""
    p = command(
        "worker",
        "run a worker: apply queued events, run actions from the outbox, fire timers",
        _worker,
        "Runs until SIGTERM or SIGINT, then finishes the action in hand, gives up its\n"
        "leases and exits 0. --concurrency N runs N worker processes under this one.\n\n"
        "example: statewise worker --spec order_fsm.yaml --store sqlite:///orders.db \\\n"
        "           --actions app.actions:registry --concurrency 4",
    )
    p.add_argument("--spec", required=True, type=Path, help="the machine spec (YAML or JSON)")
    p.add_argument("--store", required=True, metavar="URL", help="sqlite:///file.db, postgresql://")
    _registry_options(p)
    p.add_argument("--concurrency", type=_positive(int), default=1, metavar="N")
    p.add_argument("--batch", type=_positive(int), default=100, metavar="N", help="rows a round")
    p.add_argument("--lease-seconds", type=_positive(float), default=30.0, metavar="S")
    p.add_argument("--idle-max", type=_positive(float), default=2.0, metavar="S")
    p.add_argument("--heartbeat-seconds", type=_positive(float), default=5.0, metavar="S")

    p = command(
        "runtime",
        "look at a runtime store: workers and their heartbeats, dead actions",
        _group_usage,
        "examples:\n  statewise runtime status --store sqlite:///orders.db\n"
        "  statewise runtime dead --store sqlite:///orders.db --format json",
    )
    group = p.add_subparsers(dest="what", required=True, metavar="WHAT")
    for name, run, help in (
        ("status", _runtime_status, "workers (status, last heartbeat) and outbox counts"),
        ("dead", _runtime_dead, "outbox rows that failed their last attempt"),
    ):
        q = group.add_parser(name, help=help, description=help)
        q.set_defaults(run=run)
        q.add_argument("--store", required=True, metavar="URL")
        q.add_argument("--format", choices=("text", "json"), default="text")
        if name == "dead":
            q.add_argument("--machine", help="only this machine's rows")

    p = command(
        "db",
        "manage a runtime store's schema",
        _group_usage,
        "example: statewise db upgrade --store sqlite:///orders.db",
    )
    group = p.add_subparsers(dest="what", required=True, metavar="WHAT")
    q = group.add_parser("upgrade", help="apply the schema migrations not applied yet")
    q.set_defaults(run=_db_upgrade)
    q.add_argument("--store", required=True, metavar="URL")


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its error message
    return parse


def _registry_options(p: argparse.ArgumentParser, *, actions: bool = True) -> None:
    p.add_argument(
        "--guards", metavar="MODULE:NAME", help="a GuardRegistry (or a function returning one)"
    )
    if actions:
        p.add_argument(
            "--actions",
            metavar="MODULE:NAME",
            help="an ActionRegistry (or a function returning one)",
        )


# -- commands ------------------------------------------------------------------------


def _validate(args: argparse.Namespace, _stdin: TextIO) -> int:
    guards = _imported(args.guards, GuardRegistry)
    actions = _imported(getattr(args, "actions", None), ActionRegistry)
    reports: list[dict[str, Any]] = []
    status = 0
    for path in args.specs:
        try:
            machine = StateMachine.from_file(path)
        except SpecError as exc:
            status = 2
            reports.append({"spec": str(path), "loaded": False, "problems": exc.problems})
            continue
        findings = analyze(machine, guards, actions, ignore=tuple(args.ignore))
        failing = {Severity.ERROR, Severity.WARNING} if args.strict else {Severity.ERROR}
        if status == 0 and any(f.severity in failing for f in findings):
            status = 1
        reports.append({"spec": str(path), "loaded": True, "findings": findings})
    if args.format == "json":
        print(json.dumps({"status": status, "specs": [_json_report(r) for r in reports]}, indent=2))
        return status
    for report in reports:
        if not report["loaded"]:
            _print_problems(report["problems"], sys.stdout)
        for finding in report["findings"] if report["loaded"] else ():
            print(finding)
    counts = _summary(reports)
    print(counts, file=sys.stderr)
    return status


def _json_report(report: dict[str, Any]) -> dict[str, Any]:
    if not report["loaded"]:
        return {
            "spec": report["spec"],
            "loaded": False,
            "problems": [_problem_dict(p) for p in report["problems"]],
            "findings": [],
        }
    findings: list[Finding] = report["findings"]
    return {
        "spec": report["spec"],
        "loaded": True,
        "problems": [],
        "findings": [f.to_dict() for f in findings],
    }


def _summary(reports: Iterable[dict[str, Any]]) -> str:
    failed = loaded = 0
    by_severity = dict.fromkeys(Severity, 0)
    for r in reports:
        if not r["loaded"]:
            failed += 1
            continue
        loaded += 1
        for f in r["findings"]:
            by_severity[f.severity] += 1
    parts = [f"{loaded} spec{'s' if loaded != 1 else ''} loaded"]
    if failed:
        parts.append(f"{failed} did not load")
    parts += [f"{n} {severity}{'s' if n != 1 else ''}" for severity, n in by_severity.items()]
    return ", ".join(parts)


def _graph(args: argparse.Namespace, _stdin: TextIO) -> int:
    from statewise.render import render  # the renderers load only when drawing

    machine = StateMachine.from_file(args.spec)
    highlight = analyze(machine) if args.highlight else ()
    drawn = render(machine, args.format, highlight=highlight)
    if args.output is not None:
        data = drawn.encode() if isinstance(drawn, str) else drawn
        args.output.write_bytes(data)
        print(f"wrote {args.output} ({len(data)} bytes)", file=sys.stderr)
    elif isinstance(drawn, bytes):
        if sys.stdout.isatty():
            raise _Usage(f"{args.format} is binary: pass -o FILE or redirect stdout")
        sys.stdout.buffer.write(drawn)
    else:
        sys.stdout.write(drawn if drawn.endswith("\n") else drawn + "\n")
    return 0


def _paths(args: argparse.Namespace, _stdin: TextIO) -> int:
    machine = StateMachine.from_file(args.spec)
    if args.cover == "transitions":
        paths = list(transition_cover(machine))
        if args.format == "json":
            print(json.dumps({"cover": "transitions", "paths": [p.to_dict() for p in paths]}))
            return 0
        for i, path in enumerate(paths, start=1):
            print(f"path {i}: {_describe_path(path)}")
        return 0
    by_state = shortest_paths(machine)
    if args.format == "json":
        states = {state: path.to_dict() for state, path in by_state.items()}
        print(json.dumps({"cover": "states", "paths": states}))
        return 0
    width = max(map(len, by_state), default=0)
    for state, path in by_state.items():
        print(f"{state:<{width}}  {_describe_path(path)}")
    return 0


def _describe_path(path: Any) -> str:
    steps = path.steps
    if not steps:
        return "(the initial state: no events)"
    parts = []
    for step in steps:
        text = f"{step.trigger} -> {step.dest}"
        if step.assumptions:
            text += f" [assuming {', '.join(step.assumptions)}]"
        parts.append(text)
    return ", ".join(parts)


def _simulate(args: argparse.Namespace, stdin: TextIO) -> int:
    machine = StateMachine.from_file(args.spec)
    context = _json_object(args.context, "--context")
    if args.guards is not None:
        machine.bind_guards(_imported(args.guards, GuardRegistry) or GuardRegistry())
    elif args.assume is not None:
        machine.bind_guards(_assumed(machine, args.assume == "pass"))
    state = machine.initial_state.name if args.state is None else args.state
    try:
        machine.resolve_state(state)  # an unknown --state fails now, not on the first event
    except UndefinedStateError as exc:
        raise _Usage(f"--state: {exc}") from None
    events: Iterable[str] = args.events or _prompt(stdin, machine)
    status = 0
    for text in events:
        result = machine.process(state, _event(text), context)
        print(_describe_result(result))
        if not result.success:
            status = 1
        elif not result.ignored:
            state = result.target_state
    print(f"final state: {state}")
    return status


def _prompt(stdin: TextIO, machine: StateMachine) -> Iterable[str]:
    interactive = stdin.isatty()
    while True:
        if interactive:
            print("event> ", end="", flush=True)
        line = stdin.readline()
        if not line:
            return
        text = line.strip()
        if text in {"quit", "exit"}:
            return
        if text in {"", "?", "help"}:
            print(f"triggers: {', '.join(machine.trigger_names)}; 'quit' stops")
            continue
        yield text


def _event(text: str) -> Event:
    trigger, sep, payload = text.partition("=")
    if not sep:
        return Event(trigger.strip())
    return Event(trigger.strip(), _json_object(payload, f"the payload of {trigger!r}"))


def _describe_result(r: TransitionResult) -> str:
    head = f"{r.source_state} --{r.trigger}--> "
    if r.error is not None:
        lines = [f"{head}REJECTED: {r.error}"]
    elif r.ignored:
        lines = [f"{head}{r.target_state} (ignored: no transition matches)"]
    else:
        actions = ", ".join(r.action_names) or "none"
        lines = [f"{head}{r.target_state}  actions: {actions}"]
    for step in r.trace:
        verdicts = ", ".join(f"{name}={'yes' if ok else 'no'}" for name, ok in step.guards)
        chosen = "chosen" if step.selected else "passed over"
        t = step.transition
        dest = t.dest or "(internal)"
        lines.append(f"    {t.trigger} -> {dest}: {verdicts or 'no guards'}; {chosen}")
    return "\n".join(lines)


def _assumed(machine: StateMachine, answer: bool) -> GuardRegistry:
    registry = GuardRegistry()
    for t in machine.definition.transitions:
        for call in t.guards:
            if not registry.has(call.name):
                registry.register(call.name, lambda _ctx, **_params: answer)
    return registry


def _diff(args: argparse.Namespace, _stdin: TextIO) -> int:
    from statewise.diff import diff_files

    report = diff_files(args.old, args.new)
    if args.format == "json":
        print(json.dumps(report.to_dict(), indent=2))
    else:
        sys.stdout.write(report.render_text())
    # Orphaned stored states are what a deploy pipeline must stop on.
    return 1 if report.orphaned else 0


def _schema(args: argparse.Namespace, _stdin: TextIO) -> int:
    from importlib.resources import files

    text = (files("statewise") / "schemas" / _SCHEMAS[args.kind]).read_text(encoding="utf-8")
    sys.stdout.write(text)
    return 0


# -- the runtime's commands ------------------------------------------------------------


def _group_usage(_args: argparse.Namespace, _stdin: TextIO) -> int:
    raise AssertionError("argparse requires a sub-command")


def _worker(args: argparse.Namespace, _stdin: TextIO) -> int:
    from statewise.runtime.worker import WorkerOptions, configure_logging, serve, serve_many

    # Everything a worker needs is checked here, once, so that a mistake is one clear
    # message rather than N workers failing the same way.
    machine = StateMachine.from_file(args.spec)
    guards = _imported(args.guards, GuardRegistry)
    if guards is not None:
        machine.bind_guards(guards)
    else:
        named = sorted({g.name for t in machine.definition.transitions for g in t.guards})
        if named:  # or the first event that needs one would fail, in every worker
            raise _Usage(f"the spec names guards ({', '.join(named)}): pass --guards")
    machine.check_actions(_imported(args.actions, ActionRegistry) or ActionRegistry())
    _open_store(args.store).close()  # the URL opens, and the schema is migrated
    options = WorkerOptions(
        spec=str(args.spec),
        store=args.store,
        actions=args.actions,
        guards=args.guards,
        batch=args.batch,
        lease_seconds=args.lease_seconds,
        idle_max=args.idle_max,
        heartbeat_seconds=args.heartbeat_seconds,
    )
    configure_logging()
    if args.concurrency == 1:
        return serve(options)
    return serve_many(options, args.concurrency)


def _runtime_status(args: argparse.Namespace, _stdin: TextIO) -> int:
    store = _open_store(args.store, migrate=False)  # looking never migrates
    try:
        with store.transaction() as tx:
            now = tx.now()
            workers = tx.workers()
            pending = len(tx.outbox_rows(status="pending"))
            dead = len(tx.outbox_rows(status="dead"))
    finally:
        store.close()
    rows = [
        {
            "worker_id": w.worker_id,
            "pid": w.pid,
            "host": w.host,
            "status": w.status,
            "heartbeat_at": w.heartbeat_at.isoformat(),
            "heartbeat_age_seconds": round((now - w.heartbeat_at).total_seconds(), 3),
        }
        for w in workers
    ]
    if args.format == "json":
        outbox = {"pending": pending, "dead": dead}
        print(json.dumps({"store": store.url, "workers": rows, "outbox": outbox}, indent=2))
        return 0
    if not rows:
        print("no workers have reported")
    else:
        table = [("WORKER", "PID", "HOST", "STATUS", "HEARTBEAT")]
        table += [
            (
                r["worker_id"],
                str(r["pid"]),
                r["host"],
                r["status"],
                f"{r['heartbeat_at']} ({r['heartbeat_age_seconds']:.0f}s ago)",
            )
            for r in rows
        ]
        _print_table(table)
    print(f"outbox: {pending} pending, {dead} dead")
    return 0


def _runtime_dead(args: argparse.Namespace, _stdin: TextIO) -> int:
    store = _open_store(args.store, migrate=False)
    try:
        with store.transaction() as tx:
            rows = tx.outbox_rows(status="dead", machine=args.machine)
    finally:
        store.close()
    if args.format == "json":
        dead = [
            {
                "key": r.key,
                "machine": r.machine,
                "entity_id": r.entity_id,
                "action": r.action,
                "attempts": r.attempts,
                "last_error": r.last_error,
            }
            for r in rows
        ]
        print(json.dumps(dead, indent=2))
        return 0
    if not rows:
        print("no dead actions")
        return 0
    table = [("KEY", "ACTION", "ATTEMPTS", "LAST ERROR")]
    table += [(r.key, str(r.action["name"]), str(r.attempts), r.last_error or "") for r in rows]
    _print_table(table)
    return 0


def _db_upgrade(args: argparse.Namespace, _stdin: TextIO) -> int:
    store = _open_store(args.store, migrate=False)
    try:
        applied = store.upgrade()
        version = store.schema_version()
    finally:
        store.close()
    if applied:
        print(f"applied migrations {', '.join(map(str, applied))}: schema version {version}")
    else:
        print(f"already at schema version {version}: nothing to do")
    return 0


def _open_store(url: str, **options: Any) -> Any:
    from statewise.runtime.errors import StoreURLError
    from statewise.runtime.urls import open_store

    try:
        return open_store(url, **options)
    except StoreURLError as exc:
        raise _Usage(f"--store: {exc}") from None


def _print_table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        print("  ".join(cells).rstrip())


# -- helpers ---------------------------------------------------------------------------


def _print_problems(problems: Iterable[Problem], out: TextIO) -> None:
    for p in problems:
        where = p.file or "<spec>"
        if p.line is not None:
            where = f"{where}:{p.line}:{p.column}"
        path = f"{p.path}: " if p.path else ""
        print(f"{where}: error[spec]: {path}{p.message}", file=out)


def _problem_dict(p: Problem) -> dict[str, Any]:
    return {
        "file": p.file,
        "line": p.line,
        "column": p.column,
        "path": p.path,
        "message": p.message,
        "expected": p.expected,
        "got": p.got,
    }


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _Usage(f"{what} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise _Usage(f"{what} must be a JSON object, got {shlex.quote(text)}")
    return value


def _imported(spec: str | None, kind: type[Any]) -> Any:
    """``MODULE:NAME`` -> the registry it names (or that calling it returns)."""
    if spec is None:
        return None
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise _Usage(f"expected MODULE:NAME, got {spec!r}")
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")  # let MODULE be a file of the current directory, as python -m does
    try:
        value = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise _Usage(f"cannot import {spec!r}: {exc}") from None
    if callable(value) and not isinstance(value, kind):
        try:
            value = value()
        except TypeError as exc:
            why = f"{spec!r} is not a {kind.__name__}, nor a function making one: {exc}"
            raise _Usage(why) from None
    if not isinstance(value, kind):
        raise _Usage(f"{spec!r} is not a {kind.__name__}: {type(value).__name__}")
    return value
