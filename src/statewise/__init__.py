"""statewise: configuration-driven, stateless finite-state machines.

Load a machine from a spec, then decide events with a pure function::

    machine = StateMachine.from_yaml("order_fsm.yaml", guards=guards)
    result = machine.process(stored_state, Event("execution_report", {"fill_qty": 10}),
                             context=stored_context)
    if result.success:
        ...  # commit result.target_state, then run result.all_actions

load -> decide -> commit -> act: ``process`` decides; the caller commits, then acts,
with :class:`ActionExecutor` (retries, idempotency keys, the error fallback). Cron jobs
find expired timeouts with :func:`check_timeout` / :class:`TimeoutManager`.
"""

from statewise.engine.actions import ActionRegistry
from statewise.engine.guards import GuardRegistry
from statewise.engine.machine import Machine
from statewise.errors import (
    ActionNotFoundError,
    ConfigurationError,
    ContextError,
    GuardError,
    GuardNotFoundError,
    GuardRejectedError,
    GuardsNotBoundError,
    InvalidTransitionError,
    PayloadError,
    Problem,
    SpecError,
    StatewiseError,
    TerminalStateError,
    TransitionError,
    UndefinedStateError,
    UndefinedTriggerError,
)
from statewise.execution import (
    ActionExecutor,
    ActionOutcome,
    ActionStatus,
    ExecutionResult,
    idempotency_key,
)
from statewise.machine import StateMachine
from statewise.model.audit import AUDIT_COLUMNS, audit_entry
from statewise.model.definition import (
    ActionCall,
    ErrorPolicy,
    GuardCall,
    MachineDefinition,
    Retry,
    State,
    StateType,
    Timeout,
    Transition,
    TriggerSpec,
)
from statewise.model.event import Event
from statewise.model.frozen import FrozenDict
from statewise.model.result import Decision, TraceStep, TransitionResult
from statewise.spec.durations import parse_duration
from statewise.timeouts import DueTimeout, TimeoutInfo, TimeoutManager, check_timeout

__version__ = "0.1.0"

__all__ = [
    "AUDIT_COLUMNS",
    "ActionCall",
    "ActionExecutor",
    "ActionNotFoundError",
    "ActionOutcome",
    "ActionRegistry",
    "ActionStatus",
    "ConfigurationError",
    "ContextError",
    "Decision",
    "DueTimeout",
    "ErrorPolicy",
    "Event",
    "ExecutionResult",
    "FrozenDict",
    "GuardCall",
    "GuardError",
    "GuardNotFoundError",
    "GuardRegistry",
    "GuardRejectedError",
    "GuardsNotBoundError",
    "InvalidTransitionError",
    "Machine",
    "MachineDefinition",
    "PayloadError",
    "Problem",
    "Retry",
    "SpecError",
    "State",
    "StateMachine",
    "StateType",
    "StatewiseError",
    "TerminalStateError",
    "Timeout",
    "TimeoutInfo",
    "TimeoutManager",
    "TraceStep",
    "Transition",
    "TransitionError",
    "TransitionResult",
    "TriggerSpec",
    "UndefinedStateError",
    "UndefinedTriggerError",
    "__version__",
    "audit_entry",
    "check_timeout",
    "idempotency_key",
    "parse_duration",
]
