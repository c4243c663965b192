"""A machine as Graphviz DOT: ``dot -Tsvg`` (or :func:`~statewise.render.render_image`)
draws it.

What is drawn, and how, left to right:

* the initial state: entered from a small black dot, with a bold border;
* a terminal state: a double border (``peripheries=2``); an error state: red;
* an event: a solid arrow labelled ``trigger [guards] / actions``; a self-transition
  (exits and re-enters) is a solid loop;
* an internal transition (actions only, nothing exited or entered): a dotted loop;
* a timeout: a dashed arrow labelled ``after 5s / actions``;
* a ``"*"`` transition: one arrow from a dashed ``any non-terminal state`` node;
* what ``highlight`` points at: amber (filled states, thick arrows and labels);
* descriptions (of states and transitions) as tooltips, shown on hover in an SVG.

Every id and every text is a quoted DOT string, so a state named ``node`` or ``Edge``
(DOT keywords) is safe, and user text escapes ``\\``, ``"`` and line breaks (a ``\\n``
in the label: a ``when:`` written over several lines keeps its lines). The entry dot
is ``"[*]"`` and the wildcard node ``"*"``: no state name can be either. Output is
deterministic: nodes in declaration order, then arrows in the graph's order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from statewise.analysis.findings import Finding
from statewise.analysis.graph import EdgeKind, MachineGraph, Node
from statewise.render.diagram import ANY, Arrow, Highlight, arrows

__all__ = ["quote", "to_dot"]

ENTRY = "[*]"
HIGHLIGHT = "#d97706"
_HIGHLIGHT_FILL = "#fef3c7"
_ERROR = "#b91c1c"
_INDENT = "    "
_LINE_BREAK = re.compile(r"\r\n?|\n")
# Graphviz decodes HTML entities (&amp;, &#58;) even in plain labels: keep them literal.
# A lone & (as in CEL's &&) is left alone, to keep the text readable.
_ENTITY = re.compile(r"&(?=#?\w+;)")


def to_dot(graph: MachineGraph, *, highlight: Iterable[Finding] = ()) -> str:
    """The ``digraph`` text of ``graph`` (ends with a newline). ``highlight`` marks the
    states and transitions the findings name."""
    marks = Highlight.of(highlight)
    drawn = arrows(graph, marks)
    lines = [
        f"digraph {quote(graph.name)} {{",
        f"label={quote(graph.name)}",
        "labelloc=t",
        'fontname="Helvetica"',
        "rankdir=LR",
        'node [shape=box, style=rounded, fontname="Helvetica", fontsize=11]',
        'edge [fontname="Helvetica", fontsize=9]',
        f"{quote(ENTRY)} [shape=point, width=0.15]",
    ]
    lines += [f"{quote(n.name)}{_attrs(_node(n, n.name in marks.states))}" for n in graph.nodes]
    if any(a.source == ANY for a in drawn):
        lines.append(f'{quote(ANY)} [label="any non-terminal state", style="rounded,dashed"]')
    lines.append(f"{quote(ENTRY)} -> {quote(graph.initial)}")
    lines += [f"{quote(a.source)} -> {quote(a.dest)}{_attrs(_edge(a))}" for a in drawn]
    return "\n".join([lines[0], *(_INDENT + line for line in lines[1:]), "}"]) + "\n"


def quote(text: str) -> str:
    """``text`` as a quoted DOT string that Graphviz shows exactly as ``text``."""
    text = text.replace("\\", "\\\\").replace('"', '\\"')
    text = _ENTITY.sub("&amp;", text)
    return '"' + _LINE_BREAK.sub(r"\\n", text) + '"'


def _node(node: Node, marked: bool) -> list[tuple[str, str]]:
    style = ["rounded"]
    attrs: list[tuple[str, str]] = []
    if node.initial:
        style.append("bold")
    if node.terminal:
        attrs.append(("peripheries", "2"))
    if node.error:
        attrs += [("color", quote(_ERROR)), ("fontcolor", quote(_ERROR))]
    if marked:
        style.append("filled")
        # Amber wins over red for the border; an error state keeps its red text.
        attrs = [(k, v) for k, v in attrs if k != "color"]
        attrs += [
            ("color", quote(HIGHLIGHT)),
            ("fillcolor", quote(_HIGHLIGHT_FILL)),
            ("penwidth", "2.5"),
        ]
    if len(style) > 1:
        attrs.insert(0, ("style", quote(",".join(style))))
    if node.description:
        attrs.append(("tooltip", quote(node.description)))
    return attrs


def _edge(arrow: Arrow) -> list[tuple[str, str]]:
    attrs = [("label", quote(arrow.label))]
    if arrow.kind is EdgeKind.INTERNAL:
        attrs.append(("style", "dotted"))
    elif arrow.kind is EdgeKind.TIMEOUT:
        attrs.append(("style", "dashed"))
    if arrow.highlighted:
        attrs += [("color", quote(HIGHLIGHT)), ("fontcolor", quote(HIGHLIGHT)), ("penwidth", "2")]
    if arrow.description:
        attrs.append(("tooltip", quote(arrow.description)))
    return attrs


def _attrs(attrs: list[tuple[str, str]]) -> str:
    return f" [{', '.join(f'{k}={v}' for k, v in attrs)}]" if attrs else ""
