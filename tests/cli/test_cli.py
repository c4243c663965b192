"""The CLI, run in-process through ``main(argv)`` (and once as a real subprocess)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from statewise.cli import main
from tests.markers import needs_dot

ROOT = Path(__file__).resolve().parent.parent.parent
ORDER = str(ROOT / "examples" / "order_fsm.yaml")
BROKEN = str(ROOT / "tests" / "fixtures" / "invalid" / "bad_dest.yaml")

TRAP = """\
meta: {machine_name: trap}
states:
  - {name: A, type: initial}
  - {name: B}
  - {name: DONE, type: terminal}
transitions:
  - {trigger: go, source: A, dest: B}
  - {trigger: stay, source: B}
  - {trigger: finish, source: A, dest: DONE}
"""


@pytest.fixture
def trap(tmp_path: Path) -> str:
    path = tmp_path / "trap.yaml"
    path.write_text(TRAP)
    return str(path)


def run(capsys: pytest.CaptureFixture[str], *argv: str, stdin: str = "") -> tuple[int, str, str]:
    status = main(list(argv), stdin=io.StringIO(stdin))
    out, err = capsys.readouterr()
    return status, out, err


def test_validate_a_good_spec(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "validate", ORDER)
    assert status == 0
    assert "1 spec loaded" in err
    assert "error[" not in out


def test_validate_a_spec_that_does_not_load(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "validate", BROKEN, ORDER)
    assert status == 2
    assert out.splitlines()[0] == (
        f"{BROKEN}:9:11: error[spec]: transitions[0].dest: dest 'OPNE' is not a defined "
        "state (did you mean 'OPEN'?)"
    )


def test_validate_analysis_errors_exit_1(capsys: pytest.CaptureFixture[str], trap: str) -> None:
    status, out, _ = run(capsys, "validate", trap)
    assert status == 1
    assert f"{trap}:4:12: error[trap-state]: state 'B' is a trap" in out


def test_validate_json_is_stable(capsys: pytest.CaptureFixture[str], trap: str) -> None:
    status, out, _ = run(capsys, "validate", trap, BROKEN, "--format", "json")
    report = json.loads(out)
    assert status == report["status"] == 2
    assert [s["loaded"] for s in report["specs"]] == [True, False]
    assert set(report["specs"][0]) == {"spec", "loaded", "problems", "findings"}
    trap_finding = next(f for f in report["specs"][0]["findings"] if f["code"] == "trap-state")
    assert trap_finding["states"] == ["B"] and trap_finding["line"] == 4
    assert report["specs"][1]["problems"][0]["path"] == "transitions[0].dest"


def test_validate_ignore(capsys: pytest.CaptureFixture[str], trap: str) -> None:
    status, out, _ = run(capsys, "validate", trap, "--ignore", "trap-state")
    assert "trap-state" not in out
    assert status == 0


def test_schema(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "schema")
    assert status == 0 and json.loads(out)["$id"] == "urn:statewise:schema:machine:1"
    _, out, _ = run(capsys, "schema", "event")
    assert json.loads(out)["$id"] == "urn:statewise:schema:event:1"


def test_simulate_with_guards_from_a_module(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(
        capsys,
        "simulate",
        ORDER,
        "order_acknowledged",
        'execution_report={"fill_qty": 4}',
        'execution_report={"fill_qty": 10}',
        "--context",
        '{"order_qty": 10}',
        "--guards",
        "tests.conftest:order_guards",
    )
    assert status == 0
    lines = out.splitlines()
    assert lines[0] == (
        "PENDING_NEW --order_acknowledged--> OPEN  actions: log_exit, record_exchange_id, notify_ui"
    )
    assert "OPEN --execution_report--> PARTIALLY_FILLED" in lines[2]
    assert "is_full_fill=no" in out and "is_partial_fill=yes" in out
    assert lines[-1] == "final state: FILLED"


def test_simulate_rejections_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "simulate", ORDER, "--state", "FILLED", "cancel_requested")
    assert status == 1
    assert "REJECTED: state 'FILLED' is terminal" in out


def test_simulate_assume_and_prompt(capsys: pytest.CaptureFixture[str]) -> None:
    script = "order_acknowledged\n\nexecution_report\nquit\nnever_read\n"
    status, out, _ = run(capsys, "simulate", ORDER, "--assume", "pass", stdin=script)
    assert status == 0
    assert "triggers: order_acknowledged" in out
    assert out.splitlines()[-1] == "final state: FILLED"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["simulate", ORDER, "--state", "NOPE"], "--state: undefined state 'NOPE'"),
        (["simulate", ORDER, "--context", "[1]"], "--context must be a JSON object"),
        (["simulate", ORDER, "x={"], "the payload of 'x' is not JSON"),
        (["validate", ORDER, "--guards", "nomodule"], "expected MODULE:NAME"),
        (["validate", ORDER, "--guards", "json:nothing"], "cannot import 'json:nothing'"),
        (["validate", ORDER, "--guards", "json:dumps"], "is not a GuardRegistry"),
        (["validate", ORDER, "--guards", "json:JSONDecoder"], "is not a GuardRegistry"),
    ],
)
def test_usage_errors_go_to_stderr(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    status, out, err = run(capsys, *argv)
    assert status == 2 and out == ""
    assert message in err


def test_guards_not_bound_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "simulate", ORDER, "--state", "OPEN", "execution_report")
    assert status == 1
    assert "GuardsNotBoundError" in err


def test_help_and_bad_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "statewise validate examples/order_fsm.yaml" in capsys.readouterr().out
    assert main(["frobnicate"]) == 2


def test_graph_mermaid_and_dot(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status, out, _ = run(capsys, "graph", ORDER)
    assert status == 0 and out.startswith("stateDiagram-v2")
    target = tmp_path / "order.dot"
    status, _, err = run(capsys, "graph", ORDER, "--format", "dot", "-o", str(target))
    assert status == 0 and target.read_text().startswith("digraph")
    assert f"wrote {target}" in err


@needs_dot
def test_graph_svg(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "order.svg"
    assert main(["graph", ORDER, "--format", "svg", "--highlight", "-o", str(target)]) == 0
    assert b"<svg" in target.read_bytes()


def test_paths(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "paths", ORDER)
    assert status == 0
    first = out.splitlines()[0]
    assert first.startswith("PENDING_NEW ") and first.endswith("(the initial state: no events)")
    status, out, _ = run(capsys, "paths", ORDER, "--cover", "transitions", "--format", "json")
    report = json.loads(out)
    assert status == 0 and report["cover"] == "transitions" and report["paths"]


def test_real_subprocess(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "statewise", "validate", ORDER, "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["specs"][0]["loaded"] is True


def test_diff(capsys: pytest.CaptureFixture[str]) -> None:
    fixtures = ROOT / "tests" / "fixtures" / "diff"
    old, new = str(fixtures / "tickets_v1.yaml"), str(fixtures / "tickets_v2.yaml")
    status, out, _ = run(capsys, "diff", old, new)
    assert status == 1
    assert "orphaned (stored entities would no longer load)" in out
    status, out, _ = run(capsys, "diff", old, new, "--format", "json")
    assert status == 1 and json.loads(out)["orphaned"]
    status, out, _ = run(capsys, "diff", old, old)
    assert status == 0 and out.endswith("no differences\n")


def test_unknown_options_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", ORDER, "--bogus"]) == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err
    assert main(["simulate", ORDER, "go", "--bogus"]) == 2


def test_commands_report_spec_problems_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "graph", BROKEN)
    assert (status, out) == (2, "")
    assert f"{BROKEN}:9:11: error[spec]: transitions[0].dest:" in err


@needs_dot
def test_binary_output(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    buffer = io.BytesIO()
    fake = io.TextIOWrapper(buffer)
    monkeypatch.setattr(sys, "stdout", fake)
    assert main(["graph", ORDER, "--format", "png"]) == 0
    fake.flush()
    assert buffer.getvalue().startswith(b"\x89PNG")
    monkeypatch.setattr(fake, "isatty", lambda: True)
    assert main(["graph", ORDER, "--format", "svg"]) == 2
    assert "svg is binary: pass -o FILE" in capsys.readouterr().err


def test_paths_text_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "paths", ORDER, "--cover", "transitions")
    assert status == 0
    assert out.splitlines()[0] == (
        "path 1: order_acknowledged -> OPEN, execution_report -> FILLED [assuming is_full_fill]"
    )
    status, out, _ = run(capsys, "paths", ORDER, "--format", "json")
    report = json.loads(out)
    assert report["cover"] == "states"
    assert report["paths"]["TIMED_OUT"]["steps"][0]["trigger"] == "timeout"


LENIENT = """\
meta: {machine_name: lenient, strict_mode: false}
states: [{name: A, type: initial}, {name: B}]
transitions:
  - {trigger: go, source: A, dest: B, actions: [log]}
  - {trigger: note, source: B}
"""


def test_simulate_ignored_internal_and_payloads(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    spec = tmp_path / "lenient.yaml"
    spec.write_text(LENIENT)
    status, out, _ = run(capsys, "simulate", str(spec), "nothing", 'go={"why": "test"}', "note")
    assert status == 0
    assert out.splitlines() == [
        "A --nothing--> A (ignored: no transition matches)",
        "A --go--> B  actions: log",
        "    go -> B: no guards; chosen",
        "B --note--> B  actions: none",
        "    note -> (internal): no guards; chosen",
        "final state: B",
    ]


def test_python_dash_m(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import runpy

    monkeypatch.setattr(sys, "argv", ["statewise", "schema", "result"])
    with pytest.raises(SystemExit) as info:
        runpy.run_module("statewise", run_name="__main__")
    assert info.value.code == 0
    assert '"urn:statewise:schema:transition_result:1"' in capsys.readouterr().out
