"""execution layer: running a committed result's actions (load, decide, commit, **act**).

Above the pure core: it may use the clock, randomness and asyncio. Run an
:class:`ActionExecutor` only once the result's new state is committed; commit an
:class:`ExecutionResult`'s ``fallback`` (if any) the same way, then execute it.
"""

from statewise.execution.executor import ActionExecutor
from statewise.execution.idempotency import event_key, idempotency_key, idempotency_keys
from statewise.execution.outcome import ActionOutcome, ActionStatus, ExecutionResult

__all__ = [
    "ActionExecutor",
    "ActionOutcome",
    "ActionStatus",
    "ExecutionResult",
    "event_key",
    "idempotency_key",
    "idempotency_keys",
]
