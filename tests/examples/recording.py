"""What the example tests share: the examples as modules, and actions that record their calls."""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable, Mapping
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from random import Random
from typing import Any

from statewise import ActionExecutor, ActionRegistry, StateMachine

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

import order_service as svc  # noqa: E402 - examples/ is not a package
import timeouts_cron as cron  # noqa: E402

__all__ = ["EXAMPLES", "Call", "Recorder", "cron", "quiet_executor", "svc"]


@dataclass(frozen=True, slots=True)
class Call:
    """One call of an action. ``state`` and ``audited`` (the order's state and its count
    of audit rows, ``None`` when the row is gone) are what *another* connection saw
    during the call: it sees only committed data, so they show what was committed
    before the action ran. ``failed``: the call raised."""

    name: str
    order_id: str
    state: str | None
    audited: int
    params: dict[str, Any]
    key: str
    failed: bool = False


class Recorder:
    """Every action the order machine names, each recording its calls in ``calls``.

    ``failing[name] = n``: the action raises ``ConnectionError`` on its next ``n`` calls.
    The executor it builds records its backoff waits in ``slept`` instead of waiting.
    """

    def __init__(self, db_path: Path, failing: Mapping[str, int] | None = None) -> None:
        self.db_path = db_path
        self.failing = dict(failing or {})
        self.calls: list[Call] = []
        self.slept: list[float] = []

    def _action(self, name: str) -> Callable[..., None]:
        def run(ctx: Mapping[str, Any], *, idempotency_key: str, **params: Any) -> None:
            order_id = ctx["order_id"]
            with closing(sqlite3.connect(self.db_path)) as other:
                row = other.execute(
                    "SELECT state FROM orders WHERE order_id = ?", (order_id,)
                ).fetchone()
                (audited,) = other.execute(
                    "SELECT count(*) FROM audit WHERE order_id = ?", (order_id,)
                ).fetchone()
            fail = self.failing.get(name, 0) > 0
            state = None if row is None else row[0]
            self.calls.append(Call(name, order_id, state, audited, params, idempotency_key, fail))
            if fail:
                self.failing[name] -= 1
                raise ConnectionError(f"{name} is down")

        return run

    def registry(self) -> ActionRegistry:
        return ActionRegistry({name: self._action(name) for name in svc.build_actions().names})

    def executor(self, machine: StateMachine) -> ActionExecutor:
        return ActionExecutor(
            self.registry(), machine=machine, sleep=self.slept.append, random=Random(0)
        )

    def names(self) -> list[str]:
        return [c.name for c in self.calls]

    def keys(self) -> list[str]:
        return [c.key for c in self.calls]


def _nothing(_ctx: Mapping[str, Any], **_params: Any) -> None:
    return None


def quiet_executor(machine: StateMachine) -> ActionExecutor:
    """An executor whose actions do nothing: for setting the scene."""
    names = svc.build_actions().names
    return ActionExecutor(ActionRegistry(dict.fromkeys(names, _nothing)), machine=machine)
