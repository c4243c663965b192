"""Spec diffs: what a new version adds, removes, renames and changes, and which stored
states it would orphan."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from statewise import StateMachine, Transition
from statewise.diff import SpecDiff, describe_transition, diff_files, diff_machines
from statewise.model.definition import action_calls, guard_calls

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "diff"

FINISH_DONE = (
    "  - {trigger: finish, source: [WORKING, PAUSED], dest: DONE, guards: [approved],"
    " actions: [archive]}\n"
)
FINISH_BACK = (
    "  - {trigger: finish, source: [WORKING, PAUSED], dest: WORKING, guards: [rejected]}\n"
)
BASE = (
    """\
meta: {machine_name: tickets, version: "1"}
states:
  - {name: NEW, type: initial}
  - {name: WORKING, on_enter: [notify]}
  - {name: PAUSED}
  - {name: DONE, type: terminal}
  - {name: CANCELLED, type: terminal}
transitions:
  - {trigger: start, source: NEW, dest: WORKING}
  - {trigger: pause, source: WORKING, dest: PAUSED}
  - {trigger: resume, source: PAUSED, dest: WORKING}
"""
    + FINISH_DONE
    + FINISH_BACK
    + """  - {trigger: cancel, source: "*", dest: CANCELLED}\n"""
)

Edits = tuple[tuple[str, str], ...]


def edit(text: str, edits: Edits) -> str:
    """``text`` with each (old, new) replaced; each old must occur exactly once."""
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def load(edits: Edits = ()) -> StateMachine:
    return StateMachine.from_string(edit(BASE, edits))


def summary(diff: SpecDiff) -> dict[str, Any]:
    """The non-empty fields, transitions as (old index, new index, changes)."""
    out: dict[str, Any] = {
        "states_added": diff.states_added,
        "states_removed": diff.states_removed,
        "states_renamed": diff.states_renamed,
        "state_changes": tuple((c.name, c.old_name, c.changes) for c in diff.state_changes),
        "machine_changes": diff.machine_changes,
        "orphaned": diff.orphaned,
        "aliases_unused": diff.aliases_unused,
    }
    for kind in ("transitions_added", "transitions_removed", "transitions_changed"):
        out[kind] = tuple((t.old_index, t.new_index, t.changes) for t in getattr(diff, kind))
    return {k: v for k, v in out.items() if v}


RENAME_WORKING: Edits = (
    ("{name: WORKING, on_enter", "{name: IN_PROGRESS, renamed_from: [WORKING], on_enter"),
    ("source: NEW, dest: WORKING", "source: NEW, dest: IN_PROGRESS"),
    ("source: WORKING, dest: PAUSED", "source: IN_PROGRESS, dest: PAUSED"),
    ("source: PAUSED, dest: WORKING", "source: PAUSED, dest: IN_PROGRESS"),
    (
        "source: [WORKING, PAUSED], dest: DONE",
        "source: [PAUSED, IN_PROGRESS], dest: DONE",  # order within a source list is no change
    ),
    (
        "source: [WORKING, PAUSED], dest: WORKING",
        "source: [IN_PROGRESS, PAUSED], dest: IN_PROGRESS",
    ),
)
DROP_PAUSE_RESUME: Edits = (
    ("  - {trigger: pause, source: WORKING, dest: PAUSED}\n", ""),
    ("  - {trigger: resume, source: PAUSED, dest: WORKING}\n", ""),
)
MERGE_PAUSED: Edits = (
    ("  - {name: PAUSED}\n", ""),
    *DROP_PAUSE_RESUME,
    ("[WORKING, PAUSED], dest: DONE", "WORKING, dest: DONE"),
    ("[WORKING, PAUSED], dest: WORKING", "WORKING, dest: WORKING"),
)
SWAP_FINISH: Edits = ((FINISH_DONE + FINISH_BACK, FINISH_BACK + FINISH_DONE),)
LEGACY_ALIAS: Edits = (("  - {name: PAUSED}", "  - {name: PAUSED, renamed_from: [ON_HOLD]}"),)

CASES: list[tuple[str, Edits, Edits, dict[str, Any]]] = [
    ("identical", (), (), {}),
    ("documentation only", (), (("{name: PAUSED}", "{name: PAUSED, description: on hold}"),), {}),
    (
        "state and transition added",
        (),
        (
            ("  - {name: DONE,", "  - {name: REVIEW}\n  - {name: DONE,"),
            (
                "transitions:\n",
                "transitions:\n  - {trigger: review, source: WORKING, dest: REVIEW}\n",
            ),
        ),
        {"states_added": ("REVIEW",), "transitions_added": ((None, 0, ()),)},
    ),
    (
        "state removed: orphaned, its transitions removed, others lose it as a source",
        (),
        (
            ("  - {name: PAUSED}\n", ""),
            *DROP_PAUSE_RESUME,
            ("[WORKING, PAUSED], dest: DONE", "WORKING, dest: DONE"),
            ("[WORKING, PAUSED], dest: WORKING", "WORKING, dest: WORKING"),
        ),
        {
            "states_removed": ("PAUSED",),
            "orphaned": ("PAUSED",),
            "transitions_removed": ((1, None, ()), (2, None, ())),
            "transitions_changed": ((3, 1, ("source",)), (4, 2, ("source",))),
        },
    ),
    (
        "merged by migrate: mapped, nothing orphaned; old sources read as the new state",
        (),
        (*MERGE_PAUSED, ("transitions:", "migrate: {PAUSED: WORKING}\ntransitions:")),
        {
            "states_renamed": (("PAUSED", "WORKING"),),
            "transitions_removed": ((1, None, ()), (2, None, ())),
        },
    ),
    (
        "renamed by renamed_from: every reference follows, nothing else differs",
        (),
        RENAME_WORKING,
        {"states_renamed": (("WORKING", "IN_PROGRESS"),)},
    ),
    (
        "renamed by renamed_from, and changed",
        (),
        (*RENAME_WORKING, ("on_enter: [notify]", "on_enter: [notify, audit], type: error")),
        {
            "states_renamed": (("WORKING", "IN_PROGRESS"),),
            "state_changes": (
                (
                    "IN_PROGRESS",
                    "WORKING",
                    ("type: stable -> error", "on_enter: [notify] -> [notify, audit]"),
                ),
            ),
        },
    ),
    (
        "renamed by migrate",
        (),
        (
            ("{name: PAUSED}", "{name: ON_HOLD}"),
            ("dest: PAUSED", "dest: ON_HOLD"),
            ("source: PAUSED", "source: ON_HOLD"),
            ("[WORKING, PAUSED], dest: DONE", "[WORKING, ON_HOLD], dest: DONE"),
            ("[WORKING, PAUSED], dest: WORKING", "[WORKING, ON_HOLD], dest: WORKING"),
            ("transitions:", "migrate: {PAUSED: ON_HOLD}\ntransitions:"),
        ),
        {"states_renamed": (("PAUSED", "ON_HOLD"),)},
    ),
    (
        "terminal state dropped: entities stay in terminal states, so it is orphaned",
        (),
        (("  - {name: CANCELLED, type: terminal}\n", ""), ("dest: CANCELLED", "dest: DONE")),
        {
            "states_removed": ("CANCELLED",),
            "orphaned": ("CANCELLED",),
            "transitions_changed": ((5, 5, ("dest",)),),
        },
    ),
    (
        "an old alias dropped: entities may still carry it",
        LEGACY_ALIAS,
        (),
        {"orphaned": ("ON_HOLD",)},
    ),
    ("an old alias kept", LEGACY_ALIAS, LEGACY_ALIAS, {}),
    (
        "an alias for no old state",
        (),
        (("transitions:", "migrate: {ARCHIVED: DONE}\ntransitions:"),),
        {"aliases_unused": (("ARCHIVED", "DONE"),)},
    ),
    (
        "guards and actions changed, params count",
        (),
        (
            ("guards: [approved], actions: [archive]", "guards: [approved], actions: [archive, x]"),
            ("guards: [rejected]", "guards: [{name: rejected, params: {why: 1}}]"),
        ),
        {"transitions_changed": ((3, 3, ("actions",)), (4, 4, ("guards",)))},
    ),
    (
        "guard and dest changed together: still the same transition (last pass, by order)",
        (),
        (("dest: WORKING, guards: [rejected]", "dest: NEW, guards: [bounced]"),),
        {"transitions_changed": ((4, 4, ("dest", "guards")),)},
    ),
    (
        "a when expression added",
        (),
        (("guards: [rejected]", "when: \"reason != ''\""),),
        {"transitions_changed": ((4, 4, ("when", "guards")),)},
    ),
    (
        "candidates reordered: the first that passes wins, so priority changed",
        (),
        SWAP_FINISH,
        {"transitions_changed": ((3, 4, ("priority",)), (4, 3, ("priority",)))},
    ),
    (
        "a candidate inserted in front: the others keep their relative priority",
        (),
        (
            (
                "  - {trigger: finish, source: [WORKING, PAUSED], dest: DONE,",
                "  - {trigger: finish, source: [WORKING, PAUSED], dest: DONE, guards: [vip]}\n"
                "  - {trigger: finish, source: [WORKING, PAUSED], dest: DONE,",
            ),
        ),
        {"transitions_added": ((None, 3, ()),)},
    ),
    (
        "a wildcard written out: the sources changed",
        (),
        (('source: "*"', "source: [NEW, WORKING, PAUSED]"),),
        {"transitions_changed": ((5, 5, ("source",)),)},
    ),
    (
        "a wildcard kept: matched with the wildcard",
        (),
        (("dest: CANCELLED}", "dest: CANCELLED, actions: [refund]}"),),
        {"transitions_changed": ((5, 5, ("actions",)),)},
    ),
    (
        "an internal transition and a timeout added",
        (),
        (
            ("{name: PAUSED}", "{name: PAUSED, timeout: {duration: PT1H, destination: DONE}}"),
            ("transitions:\n", "transitions:\n  - {trigger: note, source: PAUSED}\n"),
        ),
        {
            "state_changes": (("PAUSED", "PAUSED", ("timeout: none -> after 3600s to DONE",)),),
            "transitions_added": ((None, 0, ()),),
        },
    ),
    (
        "machine settings",
        (),
        (
            ("{machine_name: tickets", "{machine_name: tickets, strict_mode: false"),
            (
                "transitions:",
                "error_policy: {default_fallback: PAUSED, retry_attempts: 2}\ntransitions:",
            ),
            ("transitions:", "context_schema: {type: object}\ntransitions:"),
            ("transitions:", "triggers: {pause: {payload_schema: {type: object}}}\ntransitions:"),
        ),
        {
            "machine_changes": (
                "strict_mode: true -> false",
                "error_policy.default_fallback: none -> PAUSED",
                "error_policy.retry_attempts: 0 -> 2",
                "context_schema: added",
                "triggers.pause.payload_schema: added",
            ),
        },
    ),
]


@pytest.mark.parametrize(
    ("old_edits", "new_edits", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_diff(old_edits: Edits, new_edits: Edits, expected: dict[str, Any]) -> None:
    diff = diff_machines(load(old_edits), load(new_edits))
    assert summary(diff) == expected
    assert diff.empty is (not expected)
    assert json.loads(json.dumps(diff.to_dict())) == diff.to_dict()


@pytest.mark.parametrize(
    ("old_spec", "new_spec", "expected"),
    [
        (
            "error_policy: {default_fallback: PAUSED, backoff_seconds: 1}",
            "error_policy: {default_fallback: ON_HOLD, max_backoff_seconds: 5}\n"
            "migrate: {PAUSED: ON_HOLD}",
            (
                "error_policy.backoff_seconds: 1.0 -> 0.5",
                "error_policy.max_backoff_seconds: 30.0 -> 5.0",
            ),
        ),
        (
            "context_schema: {type: object}\n"
            "triggers: {go: {payload_schema: {type: object}}, same: {payload_schema: {}}}",
            "triggers: {go: {description: Go.}, same: {payload_schema: {}},"
            " stop: {payload_schema: {type: object}}}",
            (
                "context_schema: removed",
                "triggers.go.payload_schema: removed",
                "triggers.stop.payload_schema: added",
            ),
        ),
        (
            "context_schema: {type: object}",
            "context_schema: {type: object, required: [x]}",
            ("context_schema: changed",),
        ),
    ],
)
def test_machine_changes(old_spec: str, new_spec: str, expected: tuple[str, ...]) -> None:
    def machine(extra: str, paused: str) -> StateMachine:
        return StateMachine.from_string(
            "meta: {machine_name: m}\n"
            f"states: [{{name: NEW, type: initial}}, {{name: {paused}}}]\n{extra}\n"
        )

    diff = diff_machines(machine(old_spec, "PAUSED"), machine(new_spec, "ON_HOLD"))
    assert diff.machine_changes == expected


@pytest.mark.parametrize(
    ("transition", "text"),
    [
        (Transition("go", ("A",), "B"), "go: A -> B"),
        (Transition("go", ("*",), "B"), "go: * -> B"),
        (
            Transition("note", ("A", "B"), None, actions=action_calls(["log"])),
            "note: A, B (internal) / log",
        ),
        (
            Transition(
                "pay",
                ("A",),
                "B",
                guards=guard_calls([{"name": "under", "params": {"limit": 10, "cur": "€"}}]),
                actions=action_calls([{"name": "capture", "retry": {"attempts": 5}}, "mail"]),
                when="amount > 0",
            ),
            'pay: A -> B [when: amount > 0, under(limit=10, cur="€")] '
            "/ capture+retry(attempts=5), mail",
        ),
    ],
)
def test_describe_transition(transition: Transition, text: str) -> None:
    assert describe_transition(transition) == text


def test_files_to_dict_exact() -> None:
    diff = diff_files(FIXTURES / "tickets_v1.yaml", FIXTURES / "tickets_v2.yaml")
    assert diff.to_dict() == {
        "old": {"name": "tickets", "version": "1"},
        "new": {"name": "tickets", "version": "2"},
        "empty": False,
        "states_added": ["ARCHIVED"],
        "states_removed": ["PAUSED", "REJECTED"],
        "states_renamed": [{"old": "WORKING", "new": "IN_PROGRESS"}],
        "state_changes": [
            {
                "name": "IN_PROGRESS",
                "old_name": "WORKING",
                "changes": ["on_enter: [notify] -> [notify, audit]"],
            },
            {
                "name": "WAITING",
                "old_name": "WAITING",
                "changes": ["timeout: after 60s to DONE -> after 120s to DONE"],
            },
        ],
        "transitions_added": [
            {
                "trigger": "wait",
                "old_index": None,
                "new_index": 1,
                "old": None,
                "new": "wait: IN_PROGRESS -> WAITING",
                "changes": [],
            },
            {
                "trigger": "archive",
                "old_index": None,
                "new_index": 3,
                "old": None,
                "new": "archive: * -> ARCHIVED",
                "changes": [],
            },
        ],
        "transitions_removed": [
            {
                "trigger": "pause",
                "old_index": 1,
                "new_index": None,
                "old": "pause: WORKING -> PAUSED",
                "new": None,
                "changes": [],
            },
            {
                "trigger": "resume",
                "old_index": 2,
                "new_index": None,
                "old": "resume: PAUSED -> WORKING",
                "new": None,
                "changes": [],
            },
            {
                "trigger": "reject",
                "old_index": 4,
                "new_index": None,
                "old": "reject: * -> REJECTED",
                "new": None,
                "changes": [],
            },
        ],
        "transitions_changed": [
            {
                "trigger": "finish",
                "old_index": 3,
                "new_index": 2,
                "old": "finish: WORKING, WAITING -> DONE [approved] / archive",
                "new": "finish: IN_PROGRESS, WAITING -> DONE [approved(level=2)] / archive",
                "changes": ["guards"],
            }
        ],
        "machine_changes": [],
        "orphaned": ["PAUSED", "REJECTED"],
        "aliases_unused": [{"old": "CLOSED", "new": "DONE"}],
    }


def test_files_render_text_exact() -> None:
    diff = diff_files(FIXTURES / "tickets_v1.yaml", FIXTURES / "tickets_v2.yaml")
    assert diff.render_text() == (
        "tickets 1 -> tickets 2\n"
        "states added (1):\n"
        "  + ARCHIVED\n"
        "states removed (2):\n"
        "  - PAUSED\n"
        "  - REJECTED\n"
        "states renamed (1):\n"
        "  WORKING -> IN_PROGRESS\n"
        "states changed (2):\n"
        "  WORKING -> IN_PROGRESS: on_enter: [notify] -> [notify, audit]\n"
        "  WAITING: timeout: after 60s to DONE -> after 120s to DONE\n"
        "transitions added (2):\n"
        "  + [1] wait: IN_PROGRESS -> WAITING\n"
        "  + [3] archive: * -> ARCHIVED\n"
        "transitions removed (3):\n"
        "  - [1] pause: WORKING -> PAUSED\n"
        "  - [2] resume: PAUSED -> WORKING\n"
        "  - [4] reject: * -> REJECTED\n"
        "transitions changed (1):\n"
        "  [3] -> [2] (guards)\n"
        "    - finish: WORKING, WAITING -> DONE [approved] / archive\n"
        "    + finish: IN_PROGRESS, WAITING -> DONE [approved(level=2)] / archive\n"
        "orphaned (stored entities would no longer load): PAUSED, REJECTED\n"
        "  add migrate: {PAUSED: <new state>, REJECTED: <new state>} to the new spec,"
        " or migrate those rows\n"
        "aliases naming no old state (1):\n"
        "  CLOSED -> DONE\n"
    )


def test_orphaned_states_really_fail_to_load_and_the_hint_fixes_them() -> None:
    """The diff's claim, checked against ``process``: each orphaned name raises in the
    new version, and mapping it as the report suggests makes it load."""
    from statewise import UndefinedStateError

    old_text = (FIXTURES / "tickets_v1.yaml").read_text()
    new_text = (FIXTURES / "tickets_v2.yaml").read_text()
    old, new = StateMachine.from_string(old_text), StateMachine.from_string(new_text)
    diff = diff_machines(old, new)
    for name in old.state_names:
        if name in diff.orphaned:
            with pytest.raises(UndefinedStateError):
                new.resolve_state(name)
        else:
            assert new.resolve_state(name) in new.state_names
    fixed = StateMachine.from_string(
        new_text.replace("{CLOSED: DONE}", "{CLOSED: DONE, PAUSED: IN_PROGRESS, REJECTED: DONE}")
    )
    after = diff_machines(old, fixed)
    assert after.orphaned == after.states_removed == ()
    assert after.states_renamed == (
        ("WORKING", "IN_PROGRESS"),
        ("PAUSED", "IN_PROGRESS"),
        ("REJECTED", "DONE"),
    )
    assert "orphaned" not in after.render_text()


def test_empty_render_and_dict() -> None:
    diff = diff_machines(load(), load())
    assert diff.render_text() == "tickets 1 -> tickets 1\nno differences\n"
    assert diff.to_dict()["empty"] is True
    assert list(diff.to_dict()) == [
        "old",
        "new",
        "empty",
        "states_added",
        "states_removed",
        "states_renamed",
        "state_changes",
        "transitions_added",
        "transitions_removed",
        "transitions_changed",
        "machine_changes",
        "orphaned",
        "aliases_unused",
    ]
