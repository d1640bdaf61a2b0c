"""Where a case stands in its workflow: the definition it follows, where a new case starts, and when its current
stage is due (``Case.next_deadline_at``, which lists sort and filter by and the deadline check reads).

Areas above the registry may add deadlines that apply when the stage sets none (the support plan's review date):
they register a function with :func:`add_deadline_source`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import func, select

from casework.cases.models import Case, CaseTransition
from casework.extensions import db
from casework.i18n import local_tz
from casework.workflow import compute_deadline, registry
from casework.workflow.definition import BASE_ANCHORS, ENTERED, RECEIVED, Definition

_EXTRA_SOURCES: list[Callable[[Case], datetime | None]] = []


def add_deadline_source(source: Callable[[Case], datetime | None]) -> None:
    """Register ``source(case)``: a deadline for an open case whose stage has none of its own."""
    if source not in _EXTRA_SOURCES:
        _EXTRA_SOURCES.append(source)


def definition_of(case: Case) -> Definition:
    return registry.definition(case.workflow)


def _anchors(case: Case, definition: Definition, stage: str) -> dict[str, datetime]:
    anchors = {RECEIVED: case.received_at, ENTERED: case.stage_entered_at or case.received_at}
    spec = definition.stage(stage)
    for deadline in (spec.deadline, spec.danger_deadline):
        if deadline is None or deadline.start in BASE_ANCHORS or deadline.start in anchors:
            continue
        last = None
        if deadline.start != stage and case.id is not None:
            last = db.session.scalar(
                select(func.max(CaseTransition.at)).where(
                    CaseTransition.case_id == case.id, CaseTransition.to_stage == deadline.start
                )
            )
        # A case that never entered the earlier stage here (imported part-way through) counts from this stage.
        anchors[deadline.start] = last or anchors[ENTERED]
    return anchors


def next_deadline(case: Case) -> datetime | None:
    """When the case must leave its stage, or the earliest registered deadline when the stage sets none; None for
    a closed case."""
    if case.closed_at is not None:
        return None
    definition = definition_of(case)
    due = compute_deadline(
        definition,
        case.stage,
        _anchors(case, definition, case.stage),
        immediate_danger=bool(case.immediate_danger),
        tz=local_tz(),
    )
    if due is None:
        extra = [d for d in (source(case) for source in _EXTRA_SOURCES) if d is not None]
        due = min(extra) if extra else None
    return due


def refresh_deadline(case: Case) -> None:
    case.next_deadline_at = next_deadline(case)


def start(case: Case) -> None:
    """Put a new case at the first stage of its province's workflow, with its first deadline."""
    definition = registry.workflow_for_province(case.province_code)
    case.workflow = definition.name
    case.stage = definition.initial
    case.stage_entered_at = case.received_at
    refresh_deadline(case)
