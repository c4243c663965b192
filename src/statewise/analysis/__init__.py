"""See and check a machine before it decides anything: its graph, static analysis,
paths for tests. Everything here reads the frozen definition; nothing runs a guard."""

from statewise.analysis.checks import CODES, analyze
from statewise.analysis.findings import Finding, Severity
from statewise.analysis.graph import Edge, EdgeKind, MachineGraph, Node
from statewise.analysis.paths import Path, Step, shortest_paths, transition_cover

__all__ = [
    "CODES",
    "Edge",
    "EdgeKind",
    "Finding",
    "MachineGraph",
    "Node",
    "Path",
    "Severity",
    "Step",
    "analyze",
    "shortest_paths",
    "transition_cover",
]
