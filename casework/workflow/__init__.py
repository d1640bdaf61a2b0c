"""The workflow engine: case procedures are data (``workflows/*.toml``), read and checked here at start-up.

``load_all("workflows")`` returns every definition by name; :mod:`casework.workflow.engine` says which transitions
are open for a case and a user, and when a stage is due; :mod:`casework.workflow.deadlines` counts hours and
Vietnamese working days.
"""

from __future__ import annotations

from casework.workflow.definition import (
    DEFAULT_WORKFLOW,
    Deadline,
    Definition,
    Label,
    Stage,
    Transition,
    WorkflowDefinitionError,
    load_all,
    load_definition,
)
from casework.workflow.engine import (
    CONDITIONS,
    Facts,
    TransitionOption,
    TransitionRefused,
    available_transitions,
    check_transition,
    compute_deadline,
)

__all__ = [
    "CONDITIONS",
    "DEFAULT_WORKFLOW",
    "Deadline",
    "Definition",
    "Facts",
    "Label",
    "Stage",
    "Transition",
    "TransitionOption",
    "TransitionRefused",
    "WorkflowDefinitionError",
    "available_transitions",
    "check_transition",
    "compute_deadline",
    "load_all",
    "load_definition",
]
