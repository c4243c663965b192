"""Diagrams: Mermaid and DOT text against golden files, escaping, images through dot.

Golden files live in ``tests/render/golden/``; each test compares the whole output
exactly. After an intended change of output, rewrite them and review the diff:

    STATEWISE_UPDATE_GOLDEN=1 .venv/bin/pytest tests/render -q

Tests that run Graphviz's ``dot`` are skipped when it is not installed (CI installs
the ``graphviz`` package, so they run there).
"""

from __future__ import annotations

import os
import re
import stat
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest

from statewise import StateMachine, StatewiseError
from statewise.analysis.findings import Finding, Severity
from statewise.analysis.graph import EdgeKind, MachineGraph
from statewise.render import (
    MISSING_DOT,
    RenderError,
    render,
    render_image,
    to_dot,
    to_mermaid,
)
from statewise.render.diagram import ANY, Highlight, arrows, duration
from statewise.render.dot import quote
from tests.conftest import ORDER_SPEC
from tests.markers import needs_dot

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("STATEWISE_UPDATE_GOLDEN") == "1"
SVG = "{http://www.w3.org/2000/svg}"

# Everything a diagram must tell apart: an internal transition, a self-transition,
# "*" sources (external and internal), guards and `when:` (with quotes, backslashes,
# a line break and every character Mermaid cannot take in a label), a timeout, an
# error state, a terminal one and a state no arrow touches.
FEATURES = r"""
meta: {machine_name: 'door "main"'}
states:
  - {name: CLOSED, type: initial, description: 'Shut; "safe"'}
  - name: OPENED
    timeout: {duration: PT2M, destination: CLOSED, actions: [beep]}
  - {name: LOCKED}
  - {name: PARKED}
  - {name: BROKEN, type: error}
  - {name: GONE, type: terminal}
transitions:
  - trigger: open
    source: CLOSED
    dest: OPENED
    when: |-
      user == "O\"Brien"
      || key == "C:\\keys\\front"
  - {trigger: close, source: OPENED, dest: CLOSED, guards: [nobody_inside, not_blocked]}
  - {trigger: knock, source: [CLOSED, LOCKED], actions: [log_knock], description: Nothing moves.}
  - {trigger: lock, source: CLOSED, dest: LOCKED}
  - {trigger: relock, source: LOCKED, dest: LOCKED, actions: [reset_timer]}
  - trigger: unlock
    source: LOCKED
    dest: CLOSED
    when: 'attempts % 2 == 0 && code != "#1;<b>"'
    guards: [has_key]
    actions: [log_unlock, chime]
  - {trigger: smash, source: "*", dest: BROKEN, actions: [call_police]}
  - {trigger: ping, source: "*", actions: [pong]}
  - {trigger: demolish, source: BROKEN, dest: GONE}
"""
OPEN, KNOCK, SMASH, PING = 0, 2, 6, 7  # indices in FEATURES' transitions
FINDING = Finding(
    "test-finding",
    Severity.WARNING,
    "what a check would point at",
    states=("LOCKED", "BROKEN"),
    transitions=(OPEN, KNOCK, SMASH),
)


@pytest.fixture(scope="module")
def order() -> MachineGraph:
    return MachineGraph.of(StateMachine.from_yaml(ORDER_SPEC))


@pytest.fixture(scope="module")
def features() -> MachineGraph:
    return MachineGraph.of(StateMachine.from_string(FEATURES))


def graph_of(text: str) -> MachineGraph:
    return MachineGraph.of(StateMachine.from_string(text))


def check_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(actual, encoding="utf-8")
    assert path.exists(), f"no golden file {path}: run with STATEWISE_UPDATE_GOLDEN=1"
    assert actual == path.read_text(encoding="utf-8")


# -- golden outputs ---------------------------------------------------------------

Renderer = Callable[..., str]
RENDERERS: dict[str, Renderer] = {"mmd": to_mermaid, "dot": to_dot}


@pytest.mark.parametrize("ext", RENDERERS)
def test_order_machine(order: MachineGraph, ext: str) -> None:
    check_golden(f"order.{ext}", RENDERERS[ext](order))


@pytest.mark.parametrize("ext", RENDERERS)
def test_features_machine(features: MachineGraph, ext: str) -> None:
    check_golden(f"features.{ext}", RENDERERS[ext](features))


@pytest.mark.parametrize("ext", RENDERERS)
def test_features_highlighted(features: MachineGraph, ext: str) -> None:
    check_golden(f"features_highlighted.{ext}", RENDERERS[ext](features, highlight=[FINDING]))


@pytest.mark.parametrize("ext", RENDERERS)
def test_output_is_deterministic(features: MachineGraph, ext: str) -> None:
    again = MachineGraph.of(StateMachine.from_string(FEATURES))
    assert RENDERERS[ext](features, highlight=[FINDING]) == RENDERERS[ext](
        again, highlight=iter([FINDING])
    )


# -- what is drawn ----------------------------------------------------------------


def test_every_graph_edge_is_drawn_exactly_once(order: MachineGraph) -> None:
    drawn = [e for a in arrows(order) for e in a.edges]
    assert len(drawn) == len(order.edges)
    assert set(map(id, drawn)) == set(map(id, order.edges))


def test_a_wildcard_transition_is_one_arrow_from_any(order: MachineGraph) -> None:
    (arrow,) = [a for a in arrows(order) if a.label == "system_error"]
    assert (arrow.source, arrow.dest, arrow.kind) == (ANY, "ERROR", EdgeKind.EVENT)
    assert [e.source for e in arrow.edges] == ["PENDING_NEW", "OPEN", "PARTIALLY_FILLED", "ERROR"]


def test_an_internal_wildcard_is_a_loop_on_any(features: MachineGraph) -> None:
    (arrow,) = [a for a in arrows(features) if a.label == "ping / pong"]
    assert (arrow.source, arrow.dest, arrow.kind) == (ANY, ANY, EdgeKind.INTERNAL)
    assert len(arrow.edges) == 5  # every state but the terminal GONE


def test_labels(order: MachineGraph, features: MachineGraph) -> None:
    labels = {a.label for a in arrows(order)}
    assert "execution_report [is_full_fill] / update_positions" in labels
    assert "after 5s / alert_operations" in labels
    assert "operator_cancel" in labels
    (unlock,) = [a for a in arrows(features) if a.edges[0].index == 5]
    assert unlock.label == (
        'unlock [when: attempts % 2 == 0 && code != "#1;<b>", has_key] / log_unlock, chime'
    )


def test_highlight_marks_states_and_transitions_by_spec_index(features: MachineGraph) -> None:
    marks = Highlight.of([FINDING, Finding("x", Severity.INFO, "y", transitions=(PING,))])
    assert marks.states == {"LOCKED", "BROKEN"}
    assert marks.transitions == {OPEN, KNOCK, SMASH, PING}
    highlighted = {(a.source, a.label) for a in arrows(features, marks) if a.highlighted}
    assert highlighted == {
        ("CLOSED", 'open [when: user == "O\\"Brien"\n|| key == "C:\\\\keys\\\\front"]'),
        ("CLOSED", "knock / log_knock"),
        ("LOCKED", "knock / log_knock"),
        (ANY, "smash / call_police"),
        (ANY, "ping / pong"),
    }


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(5, "5s"), (0.25, "0.25s"), (90, "90s"), (0, "0s"), (900, "15m"), (7200, "2h"),
     (5400, "90m"), (172800, "2d")],
)  # fmt: skip
def test_duration(seconds: float, text: str) -> None:
    assert duration(seconds) == text


# -- Mermaid ----------------------------------------------------------------------


def test_mermaid_labels_hold_nothing_mermaid_misreads(features: MachineGraph) -> None:
    text = to_mermaid(features)
    lines = [line.strip() for line in text.splitlines()]
    assert (
        'CLOSED --> OPENED : open [when#58; user == "O\\"Brien" || key == "C#58;\\\\keys\\\\front"]'
        in lines
    )
    assert (
        "LOCKED --> CLOSED : unlock [when#58; attempts #37; 2 == 0 && "
        'code != "#35;1#59;#lt;b#gt;", has_key] / log_unlock, chime'
    ) in lines
    for line in lines:
        if " : " in line:
            # What is left once Mermaid has taken its entity codes out must be plain.
            label = re.sub(r"#\w+;", "", line.split(" : ", 1)[1])
            assert not set(label) & set("#:;<>%"), line


def test_mermaid_styles_states_by_type(order: MachineGraph) -> None:
    lines = [line.strip() for line in to_mermaid(order).splitlines()]
    assert lines[:2] == ["stateDiagram-v2", "direction LR"]
    assert "[*] --> PENDING_NEW" in lines
    assert "class PENDING_NEW initialState" in lines
    assert "class FILLED,CANCELED,REJECTED,TIMED_OUT terminalState" in lines
    assert "class ERROR errorState" in lines
    assert "class PENDING_NEW timedState" in lines
    assert {"FILLED --> [*]", "TIMED_OUT --> [*]"} <= set(lines)
    assert not any("highlighted" in line for line in lines)  # no classDef nobody uses


def test_mermaid_internal_transitions_sit_inside_their_state(order: MachineGraph) -> None:
    lines = [line.strip() for line in to_mermaid(order).splitlines()]
    assert "OPEN : amend_price / apply_amendment" in lines
    assert not any(line.startswith("OPEN --> OPEN") for line in lines)


def test_mermaid_highlight(features: MachineGraph) -> None:
    lines = [line.strip() for line in to_mermaid(features, highlight=[FINDING]).splitlines()]
    assert "class LOCKED,BROKEN highlighted" in lines
    assert "any_state --> BROKEN : ⚠ smash / call_police" in lines
    assert "LOCKED : ⚠ knock / log_knock" in lines
    assert "CLOSED --> LOCKED : lock" in lines


def test_mermaid_aliases_states_its_lexer_takes_for_keywords() -> None:
    graph = graph_of("""
meta: {machine_name: words}
states:
  - {name: default_route, type: initial}
  - {name: note}
  - {name: sort_direction}
  - {name: Class}
  - {name: s1}
  - {name: any_state}
  - {name: notes, type: terminal}
transitions:
  - {trigger: go, source: default_route, dest: note}
  - {trigger: go, source: note, dest: sort_direction}
  - {trigger: go, source: sort_direction, dest: Class}
  - {trigger: go, source: Class, dest: s1}
  - {trigger: go, source: s1, dest: notes}
  - {trigger: stop, source: "*", dest: notes}
""")
    lines = [line.strip() for line in to_mermaid(graph).splitlines()]
    assert 'state "any non-terminal state" as any_state_' in lines
    assert 'state "default_route" as s0' in lines
    assert 'state "note" as s1_' in lines  # s1 is a state's own name
    assert 'state "sort_direction" as s2' in lines
    assert 'state "Class" as s3' in lines
    assert "s0 --> s1_ : go" in lines
    assert "s3 --> s1 : go" in lines
    assert "s1 --> notes : go" in lines  # "notes" is no keyword: kept
    assert "any_state_ --> notes : stop" in lines
    assert "class s0 initialState" in lines


def test_mermaid_breaks_the_direction_keyword_in_labels() -> None:
    graph = graph_of("""
meta: {machine_name: m}
states: [{name: A, type: initial}, {name: B}]
transitions:
  - {trigger: go, source: A, dest: B, when: 'mode == "Direction  lr"'}
""")
    assert 'A --> B : go [when#58; mode == "Directio#110;  lr"]' in to_mermaid(graph)


def test_mermaid_draws_a_state_no_arrow_touches(features: MachineGraph) -> None:
    assert "\n    PARKED\n" in to_mermaid(features)


# -- DOT --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("plain", '"plain"'),
        ('say "hi"', r'"say \"hi\""'),
        ("C:\\dir\\", r'"C:\\dir\\"'),
        ('\\"', r'"\\\""'),
        ("two\nlines\r\nthree\rfour", r'"two\nlines\nthree\nfour"'),
        ("a && b", '"a && b"'),
        ("&amp; &#58; &x", '"&amp;amp; &amp;#58; &x"'),
    ],
)
def test_dot_quote(text: str, quoted: str) -> None:
    assert quote(text) == quoted


def test_dot_escapes_when_text(features: MachineGraph) -> None:
    text = to_dot(features)
    assert (
        r'"CLOSED" -> "OPENED" [label="open [when: user == \"O\\\"Brien\"\n'
        r'|| key == \"C:\\\\keys\\\\front\"]"]'
    ) in text
    assert r'"CLOSED" [style="rounded,bold", tooltip="Shut; \"safe\""]' in text
    assert text.startswith('digraph "door \\"main\\"" {\n')


def test_dot_edge_styles(order: MachineGraph) -> None:
    lines = [line.strip() for line in to_dot(order).splitlines()]
    assert '"[*]" -> "PENDING_NEW"' in lines
    assert (
        '"PENDING_NEW" -> "TIMED_OUT" [label="after 5s / alert_operations", style=dashed]' in lines
    )
    assert any(line.startswith('"OPEN" -> "OPEN" [label="amend_price') and "style=dotted" in line
               for line in lines)  # fmt: skip
    # An external self-transition (exit and re-enter) is a solid loop.
    loop = '"PARTIALLY_FILLED" -> "PARTIALLY_FILLED" [label="execution_report [is_partial_fill]'
    assert any(line.startswith(loop) and "style" not in line for line in lines)
    assert '"*" -> "ERROR" [label="system_error"]' in lines
    assert '"FILLED" [peripheries=2]' in lines
    assert "rankdir=LR" in lines


def test_dot_highlight(features: MachineGraph) -> None:
    lines = [line.strip() for line in to_dot(features, highlight=[FINDING]).splitlines()]
    assert (
        '"BROKEN" [style="rounded,filled", fontcolor="#b91c1c", color="#d97706", '
        'fillcolor="#fef3c7", penwidth=2.5]'
    ) in lines
    assert (
        '"*" -> "BROKEN" [label="smash / call_police", color="#d97706", fontcolor="#d97706", '
        "penwidth=2]"
    ) in lines
    assert '"CLOSED" -> "LOCKED" [label="lock"]' in lines


# -- render() ---------------------------------------------------------------------


def test_render_text_formats_from_a_machine_or_a_graph(order: MachineGraph) -> None:
    machine = StateMachine.from_yaml(ORDER_SPEC)
    assert render(machine, "mermaid") == to_mermaid(order)
    assert render(order, "dot") == to_dot(order)
    assert render(order, "mermaid", highlight=[FINDING]) == to_mermaid(order, highlight=[FINDING])


def test_render_rejects_an_unknown_format(order: MachineGraph) -> None:
    with pytest.raises(ValueError, match="got 'pdf'"):
        render(order, "pdf")  # type: ignore[call-overload]


# -- images -----------------------------------------------------------------------


def test_missing_dot_names_the_package_to_install() -> None:
    with pytest.raises(RenderError) as caught:
        render_image("digraph {}", "svg", which=lambda _: None)
    assert str(caught.value) == MISSING_DOT
    assert "apt-get install graphviz" in str(caught.value)
    assert "brew install graphviz" in str(caught.value)
    assert isinstance(caught.value, StatewiseError)


def test_a_failing_program_reports_its_stderr() -> None:
    # The Python interpreter rejects -Tsvg the way a broken dot would fail: exit 2.
    with pytest.raises(RenderError, match=r"-Tsvg failed \(exit status 2\): .*-T"):
        render_image("digraph {}", "svg", which=lambda _: sys.executable)


def test_a_program_that_cannot_run(tmp_path: Path) -> None:
    program = tmp_path / "dot"
    program.write_text("not a program")
    with pytest.raises(RenderError, match="could not run"):
        render_image("digraph {}", "svg", which=lambda _: str(program))


def test_a_program_that_hangs_is_stopped(tmp_path: Path) -> None:
    program = tmp_path / "dot"
    program.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(30)\n")
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    with pytest.raises(RenderError, match=r"ran for more than 0\.2 s"):
        render_image("digraph {}", "png", which=lambda _: str(program), timeout=0.2)


def test_an_unknown_image_format_is_refused_before_running_anything() -> None:
    def which(_: str) -> str:
        raise AssertionError("looked for dot")

    with pytest.raises(ValueError, match="'svg' or 'png'"):
        render_image("digraph {}", "pdf", which=which)  # type: ignore[arg-type]


def svg_texts(svg: bytes) -> list[str]:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return [e.text or "" for e in root.iter(f"{SVG}text")]


@needs_dot
def test_a_real_svg(order: MachineGraph) -> None:
    texts = svg_texts(render(order, "svg"))
    assert {n.name for n in order.nodes} <= set(texts)
    assert "after 5s / alert_operations" in texts
    assert "any non-terminal state" in texts


@needs_dot
def test_dot_draws_the_escaped_text_exactly(features: MachineGraph) -> None:
    texts = svg_texts(render(features, "svg", highlight=[FINDING]))
    assert 'door "main"' in texts
    assert 'open [when: user == "O\\"Brien"' in texts  # the line break is kept
    assert '|| key == "C:\\\\keys\\\\front"]' in texts
    assert 'unlock [when: attempts % 2 == 0 && code != "#1;<b>", has_key] / log_unlock, chime' in (
        texts
    )


@needs_dot
def test_a_real_png(order: MachineGraph) -> None:
    assert render(order, "png").startswith(b"\x89PNG\r\n\x1a\n")


@needs_dot
def test_dot_keywords_are_safe_state_names() -> None:
    graph = graph_of("""
meta: {machine_name: graph}
states: [{name: node, type: initial}, {name: Edge}, {name: subgraph, type: terminal}]
transitions:
  - {trigger: strict, source: node, dest: Edge}
  - {trigger: digraph, source: Edge, dest: subgraph}
""")
    texts = svg_texts(render(graph, "svg"))
    assert {"node", "Edge", "subgraph", "strict", "digraph"} <= set(texts)


@needs_dot
def test_dot_syntax_errors_are_reported() -> None:
    with pytest.raises(RenderError, match=r"(?i)syntax error"):
        render_image('digraph { "a" -> }', "svg")
