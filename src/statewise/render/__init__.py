"""Diagrams of a machine: Mermaid and Graphviz DOT text, and SVG or PNG images.

Everything is drawn from :class:`~statewise.analysis.graph.MachineGraph`, the model
analysis reads, so a diagram shows the edges ``process`` takes and can highlight what
analysis finds (``highlight=`` takes :class:`~statewise.analysis.findings.Finding`
values: the states and transitions they name are marked).

    render(machine, "mermaid")                        # str
    render(machine, "svg", highlight=analyze(machine))  # bytes; needs Graphviz's dot
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, overload

from statewise.analysis.findings import Finding
from statewise.analysis.graph import MachineGraph
from statewise.engine.machine import Machine
from statewise.render.dot import to_dot
from statewise.render.image import MISSING_DOT, ImageFormat, RenderError, render_image
from statewise.render.mermaid import to_mermaid

__all__ = [
    "MISSING_DOT",
    "Format",
    "ImageFormat",
    "RenderError",
    "render",
    "render_image",
    "to_dot",
    "to_mermaid",
]

Format = Literal["mermaid", "dot", "svg", "png"]


@overload
def render(
    source: Machine | MachineGraph,
    format: Literal["mermaid", "dot"],
    *,
    highlight: Iterable[Finding] = (),
) -> str: ...
@overload
def render(
    source: Machine | MachineGraph,
    format: ImageFormat,
    *,
    highlight: Iterable[Finding] = (),
) -> bytes: ...
@overload
def render(
    source: Machine | MachineGraph, format: Format, *, highlight: Iterable[Finding] = ()
) -> str | bytes: ...
def render(
    source: Machine | MachineGraph, format: Format, *, highlight: Iterable[Finding] = ()
) -> str | bytes:
    """``source`` drawn as ``format``: text for ``mermaid`` and ``dot``, image bytes for
    ``svg`` and ``png`` (see :func:`render_image` for what those need)."""
    graph = source if isinstance(source, MachineGraph) else MachineGraph.of(source)
    if format == "mermaid":
        return to_mermaid(graph, highlight=highlight)
    if format == "dot":
        return to_dot(graph, highlight=highlight)
    if format in ("svg", "png"):
        return render_image(to_dot(graph, highlight=highlight), format)
    raise ValueError(f"format must be one of mermaid, dot, svg, png; got {format!r}")
