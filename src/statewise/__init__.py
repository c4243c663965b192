"""statewise: configuration-driven, stateless finite-state machines.

Load a machine from a spec, then decide events with a pure function::

    machine = StateMachine.from_yaml("order_fsm.yaml", guards=guards)
    result = machine.process(stored_state, Event("execution_report", {"fill_qty": 10}),
                             context=stored_context)
    if result.success:
        ...  # commit result.target_state, then run result.all_actions

load -> decide -> commit -> act: ``process`` decides; the caller commits, then acts.
"""

from statewise.engine.guards import GuardRegistry
from statewise.engine.machine import Machine
from statewise.errors import (
    ConfigurationError,
    GuardError,
    GuardNotFoundError,
    GuardRejectedError,
    GuardsNotBoundError,
    InvalidTransitionError,
    Problem,
    SpecError,
    StatewiseError,
    TerminalStateError,
    TransitionError,
    UndefinedStateError,
    UndefinedTriggerError,
)
from statewise.machine import StateMachine
from statewise.model.definition import (
    ErrorPolicy,
    MachineDefinition,
    State,
    StateType,
    Timeout,
    Transition,
)
from statewise.model.event import Event
from statewise.model.frozen import FrozenDict
from statewise.model.result import Decision, TraceStep, TransitionResult

__version__ = "0.1.0"

__all__ = [
    "ConfigurationError",
    "Decision",
    "ErrorPolicy",
    "Event",
    "FrozenDict",
    "GuardError",
    "GuardNotFoundError",
    "GuardRegistry",
    "GuardRejectedError",
    "GuardsNotBoundError",
    "InvalidTransitionError",
    "Machine",
    "MachineDefinition",
    "Problem",
    "SpecError",
    "State",
    "StateMachine",
    "StateType",
    "StatewiseError",
    "TerminalStateError",
    "Timeout",
    "TraceStep",
    "Transition",
    "TransitionError",
    "TransitionResult",
    "UndefinedStateError",
    "UndefinedTriggerError",
    "__version__",
]
