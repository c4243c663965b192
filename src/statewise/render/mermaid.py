"""A machine as a Mermaid ``stateDiagram-v2``: text that GitHub, GitLab and most
Markdown viewers draw.

What is drawn, and how (Mermaid state diagrams have no edge styles, so everything
that is not a plain event says so in its text or through a state's class):

* ``[*] --> INITIAL``, and ``TERMINAL --> [*]`` for each terminal state;
* an event: ``SOURCE --> DEST : trigger [guards] / actions``;
* an internal transition: a line inside its state's box (``STATE : trigger / actions``),
  UML's internal-transition compartment, so it never looks like a self-transition,
  which exits and re-enters (that one is a loop arrow);
* a timeout: an arrow labelled ``after 5s / actions``, and the state that can time
  out gets a dashed border (class ``timedState``);
* a ``"*"`` transition: one arrow from an ``any non-terminal state`` node;
* state classes: ``initialState``, ``terminalState``, ``errorState``, ``timedState``,
  ``anyState``; what ``highlight`` points at gets ``highlighted`` (states) or a
  ``⚠`` in front of its label (arrows and internal lines: no edge can be styled).

Escaping. A label runs to the end of its line and may hold no ``:`` or ``;``, so both
are written as Mermaid entity codes (``#58;``, ``#59;``), as are ``#`` itself, ``%``
(``%%`` starts a comment or a directive) and ``<``/``>`` (labels are HTML); line
breaks in a ``when:`` become spaces. State names are identifiers, but Mermaid's lexer
still takes a few for keywords (``default...``, ``class``, ``note``, ``state``,
``...direction``, and others): such a state is declared ``state "NAME" as sN`` and
drawn under that alias. Output is deterministic: declaration order throughout.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from statewise.analysis.findings import Finding
from statewise.analysis.graph import EdgeKind, MachineGraph
from statewise.render.diagram import ANY, Arrow, Highlight, arrows

__all__ = ["to_mermaid"]

WARNING = "⚠"
_INDENT = "    "
_CLASSES = {
    "initialState": "fill:#e0f2fe,stroke:#0369a1,stroke-width:2px",
    "terminalState": "fill:#f1f5f9,stroke:#334155,stroke-width:3px",
    "errorState": "fill:#fee2e2,stroke:#b91c1c,color:#b91c1c",
    "timedState": "stroke-dasharray:5 3",
    "anyState": "fill:#ffffff,stroke:#64748b,stroke-dasharray:2 2",
    "highlighted": "fill:#fef3c7,stroke:#d97706,stroke-width:3px",
}
_ESCAPES = str.maketrans({c: f"#{ord(c)};" for c in "#%:;"} | {"<": "#lt;", ">": "#gt;"})
_LINE_BREAK = re.compile(r"\s*[\r\n]+\s*")
# ".*direction\s+(TB|BT|RL|LR)" matches anywhere in a line (case-insensitively) and
# turns the whole line into a direction statement: break the word with an entity.
_DIRECTION = re.compile(r"(directio)n(?=\s+(?:tb|bt|rl|lr))", re.IGNORECASE)
# State names Mermaid's lexer reads as something else (its rules are case-insensitive,
# and the first rule that matches wins, however short).
_KEYWORD = re.compile(
    r"default.*|.*direction|class|classdef|state|statediagram|note|scale|acctitle|accdescr",
    re.IGNORECASE,
)


def to_mermaid(graph: MachineGraph, *, highlight: Iterable[Finding] = ()) -> str:
    """The ``stateDiagram-v2`` text of ``graph`` (ends with a newline). ``highlight``
    marks the states and transitions the findings name."""
    marks = Highlight.of(highlight)
    drawn = arrows(graph, marks)
    wildcard = any(a.source == ANY for a in drawn)
    ids = _ids(graph, wildcard)

    classes: dict[str, list[str]] = {name: [] for name in _CLASSES}
    for node in graph.nodes:
        if node.initial:
            classes["initialState"].append(ids[node.name])
        if node.terminal:
            classes["terminalState"].append(ids[node.name])
        if node.error:
            classes["errorState"].append(ids[node.name])
        if node.timeout is not None and not node.terminal:
            classes["timedState"].append(ids[node.name])
        if node.name in marks.states:
            classes["highlighted"].append(ids[node.name])
    if wildcard:
        classes["anyState"].append(ids[ANY])
    used = {name: members for name, members in classes.items() if members}

    body = ["direction LR"]
    body += [f"classDef {name} {_CLASSES[name]}" for name in used]
    if wildcard:
        body.append(f'state "any non-terminal state" as {ids[ANY]}')
    body += [f'state "{n.name}" as {ids[n.name]}' for n in graph.nodes if ids[n.name] != n.name]

    mentioned = {graph.initial, *(a.source for a in drawn), *(a.dest for a in drawn)}
    body.append(f"[*] --> {ids[graph.initial]}")
    for arrow in drawn:
        text = _label(arrow)
        if arrow.kind is EdgeKind.INTERNAL:
            body.append(f"{ids[arrow.source]} : {text}")
        else:
            body.append(f"{ids[arrow.source]} --> {ids[arrow.dest]} : {text}")
    for node in graph.nodes:
        if node.terminal:
            body.append(f"{ids[node.name]} --> [*]")
        elif node.name not in mentioned:
            body.append(ids[node.name])  # a state no arrow touches must still be drawn
    body += [f"class {','.join(members)} {name}" for name, members in used.items()]

    # No front-matter title: a bare diagram draws in every Mermaid, old ones included,
    # and the page it sits in names it.
    return "\n".join(["stateDiagram-v2", *(_INDENT + line for line in body)]) + "\n"


def _label(arrow: Arrow) -> str:
    text = _LINE_BREAK.sub(" ", arrow.label).translate(_ESCAPES)
    text = _DIRECTION.sub(r"\1#110;", text)
    return f"{WARNING} {text}" if arrow.highlighted else text


def _ids(graph: MachineGraph, wildcard: bool) -> dict[str, str]:
    """Each state's Mermaid id: its name, or an alias when Mermaid would misread it."""
    taken = {n.name for n in graph.nodes}
    ids: dict[str, str] = {}

    def fresh(base: str) -> str:
        alias = base
        while alias in taken:
            alias += "_"
        taken.add(alias)
        return alias

    for i, node in enumerate(graph.nodes):
        ids[node.name] = fresh(f"s{i}") if _KEYWORD.fullmatch(node.name) else node.name
    if wildcard:
        ids[ANY] = fresh("any_state")
    return ids
