"""Paths: exact shortest paths and covers on a small machine, and properties on
generated ones checked against a plain reference and against ``process`` itself."""

from __future__ import annotations

from collections import deque
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from statewise import StateMachine, TransitionResult
from statewise.analysis import Path, Step, shortest_paths, transition_cover
from tests.strategies import machines as spec_machines

SPEC = """\
meta: {machine_name: p}
states:
  - {name: A, type: initial, timeout: {seconds: 1, destination: T}}
  - {name: B}
  - {name: C}
  - {name: T}
  - {name: Z, type: terminal}
  - {name: U}
transitions:
  - {trigger: b, source: A, dest: C, guards: [g1]}
  - {trigger: a, source: A, dest: B}
  - {trigger: b, source: A, dest: B, when: "x > 1", guards: [g2]}
  - {trigger: b, source: A, dest: Z}
  - {trigger: b, source: A, dest: U}
  - {trigger: go, source: [B, C], dest: Z}
  - {trigger: poke, source: B}
  - {trigger: back, source: T, dest: A}
  - {trigger: go, source: U, dest: Z}
"""

NOT_G1 = "not g1"
NOT_G2 = "not (when: x > 1 and g2)"


def machine() -> StateMachine:
    return StateMachine.from_string(SPEC)


def test_shortest_paths_exactly() -> None:
    paths = shortest_paths(machine())
    # Breadth first, each state's edges in declaration order, the timeout last; the
    # shadowed b -> U never fires, so U is nowhere.
    assert paths == {
        "A": Path("A"),
        "C": Path("A", (Step("A", "b", "C", 0, ("g1",)),)),
        "B": Path("A", (Step("A", "a", "B", 1),)),
        "Z": Path("A", (Step("A", "b", "Z", 3, (NOT_G1, NOT_G2)),)),
        "T": Path("A", (Step("A", "timeout", "T", None),)),
    }
    assert list(paths) == ["A", "C", "B", "Z", "T"]


def test_a_later_candidate_assumes_the_earlier_ones_say_no() -> None:
    (step,) = shortest_paths(machine())["Z"].steps
    assert step.assumptions == ("not g1", "not (when: x > 1 and g2)")
    cover = transition_cover(machine())
    via_b = [s for p in cover for s in p.steps if s.transition_index == 2]
    assert [s.assumptions for s in via_b] == [(NOT_G1, "when: x > 1", "g2")]


def test_transition_cover_exactly() -> None:
    cover = transition_cover(machine())
    assert [(str(p), [s.transition_index for s in p.steps]) for p in cover] == [
        ("A --b--> C --go--> Z", [0, 5]),
        ("A --a--> B --go--> Z", [1, 5]),
        ("A --b--> B --poke--> B", [2, 6]),
        ("A --b--> Z", [3]),
        ("A --timeout--> T --back--> A", [None, 7]),
    ]


def test_path_records() -> None:
    path = shortest_paths(machine())["T"]
    assert (path.triggers, path.end, path.steps[0].timeout) == (("timeout",), "T", True)
    assert path.to_dict() == {
        "start": "A",
        "end": "T",
        "triggers": ["timeout"],
        "steps": [
            {"state": "A", "trigger": "timeout", "dest": "T", "transition": None, "assumptions": []}
        ],
    }
    empty = Path("A")
    assert (empty.triggers, empty.end, str(empty)) == ((), "A", "A")
    assert not Step("A", "a", "B", 1).timeout


def test_a_machine_with_no_way_on() -> None:
    lone = StateMachine.from_dict(
        {"meta": {"machine_name": "one"}, "states": [{"name": "S", "type": "initial"}]}
    )
    assert shortest_paths(lone) == {"S": Path("S")}
    assert transition_cover(lone) == []


# -- properties on generated machines ----------------------------------------------------


def machines(guards: bool) -> st.SearchStrategy[dict[str, Any]]:
    return spec_machines(guards=["g1", "g2"] if guards else (), min_guards=1, max_transitions=14)


def reference_edges(spec: dict[str, Any]) -> dict[str, list[tuple[str, int | None]]]:
    """state -> (dest, transition index or None for the timeout) of each edge that can
    fire: candidates for a trigger up to and including the first unguarded one."""
    out: dict[str, list[tuple[str, int | None]]] = {}
    for state in spec["states"]:
        name = state["name"]
        edges: list[tuple[str, int | None]] = []
        if state["type"] != "terminal":
            closed: set[str] = set()
            for i, t in enumerate(spec["transitions"]):
                sources = t["source"] if isinstance(t["source"], list) else [t["source"]]
                if (t["source"] == "*" or name in sources) and t["trigger"] not in closed:
                    edges.append((t.get("dest", name), i))
                    if not t.get("guards"):
                        closed.add(t["trigger"])
            if "timeout" in state:
                edges.append((state["timeout"]["destination"], None))
        out[name] = edges
    return out


def reference_distances(spec: dict[str, Any]) -> dict[str, int]:
    edges = reference_edges(spec)
    start = spec["states"][0]["name"]
    distance = {start: 0}
    queue = deque([start])
    while queue:
        state = queue.popleft()
        for dest, _ in edges[state]:
            if dest not in distance:
                distance[dest] = distance[state] + 1
                queue.append(dest)
    return distance


def replay(m: StateMachine, path: Path) -> list[TransitionResult]:
    results: list[TransitionResult] = []
    state = path.start
    for step in path.steps:
        if step.timeout:
            result = m.timeout_result(state)
            assert result is not None
        else:
            result = m.process(state, step.trigger)
        results.append(result)
        state = result.target_state
    return results


def chained(path: Path, start: str) -> bool:
    here = start
    for step in path.steps:
        if step.state != here:
            return False
        here = step.dest
    return path.start == start and here == path.end


@settings(max_examples=200, deadline=None)
@given(machines(guards=False))
def test_shortest_paths_are_shortest_and_replay(spec: dict[str, Any]) -> None:
    m = StateMachine.from_dict(spec)
    paths = shortest_paths(m)
    distance = reference_distances(spec)
    assert {s: len(p.steps) for s, p in paths.items()} == distance
    for state, path in paths.items():
        assert chained(path, "S0") and path.end == state
        results = replay(m, path)
        assert all(r.success and not r.ignored for r in results)
        assert [r.target_state for r in results] == [s.dest for s in path.steps]


@settings(max_examples=200, deadline=None)
@given(machines(guards=True))
def test_transition_cover_takes_every_edge_that_can_fire(spec: dict[str, Any]) -> None:
    m = StateMachine.from_dict(spec)
    cover = transition_cover(m)
    reachable = reference_distances(spec)
    wanted = {(state, index) for state in reachable for _, index in reference_edges(spec)[state]}
    taken = {(s.state, s.transition_index) for p in cover for s in p.steps}
    assert taken == wanted
    assert all(chained(p, "S0") and p.steps for p in cover)
    # Each path adds an edge no earlier path took.
    seen: set[tuple[str, int | None]] = set()
    for p in cover:
        mine = {(s.state, s.transition_index) for s in p.steps}
        assert mine - seen
        seen |= mine


@settings(max_examples=100, deadline=None)
@given(machines(guards=False))
def test_a_cover_without_guards_replays(spec: dict[str, Any]) -> None:
    m = StateMachine.from_dict(spec)
    for path in transition_cover(m):
        results = replay(m, path)
        assert [(r.success, r.target_state) for r in results] == [
            (True, s.dest) for s in path.steps
        ]
