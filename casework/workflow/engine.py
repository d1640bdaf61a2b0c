"""The workflow engine: which transitions a user may take on a case now, why the others are closed, and when the
case's current stage is due.

Pure functions over a case-like object (``stage``, ``closed_at``, ``immediate_danger``), a user (``role``) and the
:class:`Facts` the caller gathers from the database; nothing here reads the database, the request or the clock.
Conditions are named predicates in :data:`CONDITIONS`; a definition names them and the loader refuses unknown names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from flask_babel import lazy_gettext as _l

from casework import codes
from casework.auth.roles import SUPERVISOR
from casework.errors import Conflict
from casework.workflow.deadlines import VIETNAM, add_hours, add_working_days
from casework.workflow.definition import Deadline, Definition, Label, Transition


class CaseLike(Protocol):
    stage: str
    closed_at: datetime | None
    immediate_danger: bool


class UserLike(Protocol):
    role: str


@dataclass(frozen=True)
class Facts:
    """What the conditions need to know about a case beyond its own columns; the caller fills it."""

    has_planned_service: bool = False
    plan_approved: bool = False  # a supervisor recorded the decision approving the current plan (Mẫu 05)
    emergency_measure_recorded: bool = False  # an emergency measure or temporary separation (Arts. 31-32)
    closure_reason: str | None = None  # a code of ``closure_reasons`` in codes.toml
    supervisor_approved_closure: bool = False
    in_scope: bool = True  # the user may act on this case (casework.scope)


@dataclass(frozen=True)
class TransitionOption:
    """A transition out of the case's stage: ``open`` for this user now, or closed for ``reason`` (the first of
    ``reasons``)."""

    id: str
    to: str
    label: Label
    open: bool
    reason: str | None = None
    reasons: tuple[str, ...] = ()


class TransitionRefused(Conflict):
    """A transition was asked for that the workflow does not allow now; the message names the rule."""

    code = "transition_refused"


Condition = Callable[[CaseLike, UserLike, Facts], "str | None"]


def _has_planned_service(case: CaseLike, user: UserLike, facts: Facts):
    if not facts.has_planned_service:
        return _l("The plan needs at least one planned service.")
    return None


def _plan_approved(case: CaseLike, user: UserLike, facts: Facts):
    if not facts.plan_approved:
        return _l("The plan cannot be carried out before a supervisor approves it.")
    return None


def _emergency_measure_recorded(case: CaseLike, user: UserLike, facts: Facts):
    if not facts.emergency_measure_recorded:
        return _l("Record the emergency measure or temporary separation first.")
    return None


def _safe_to_leave_assessment(case: CaseLike, user: UserLike, facts: Facts):
    # Decree 56/2017, Art. 31: a child in immediate danger gets an emergency measure before anything else.
    if case.immediate_danger and not facts.emergency_measure_recorded:
        return _l("The child is in immediate danger: record an emergency measure before the case leaves assessment.")
    return None


def _closure_reason(case: CaseLike, user: UserLike, facts: Facts):
    if not facts.closure_reason:
        return _l("Closing needs a reason.")
    if not codes.is_code("closure_reasons", facts.closure_reason):
        return _l("%(reason)s is not a known closure reason.", reason=facts.closure_reason)
    return None


def _closure_approved(case: CaseLike, user: UserLike, facts: Facts):
    # A supervisor closing a case approves the closure by doing it.
    if not facts.supervisor_approved_closure and user.role != SUPERVISOR:
        return _l("Closing needs a supervisor's approval.")
    return None


#: The conditions a definition may name, each returning None when it holds, else the reason (an English msgid).
CONDITIONS: Mapping[str, Condition] = {
    "has_planned_service": _has_planned_service,
    "plan_approved": _plan_approved,
    "emergency_measure_recorded": _emergency_measure_recorded,
    "safe_to_leave_assessment": _safe_to_leave_assessment,
    "closure_reason": _closure_reason,
    "closure_approved": _closure_approved,
}


def _refusals(transition: Transition, definition: Definition, case: CaseLike, user: UserLike, facts: Facts):
    if not facts.in_scope:
        # Nothing else is said about a case the user may not act on.
        return [_l("This case is outside your area.")]
    reasons = []
    source = definition.stages.get(case.stage)
    if case.closed_at is not None and not (source and source.final):
        reasons.append(_l("The case is closed; reopen it first."))
    if user.role not in transition.roles:
        reasons.append(_l("Your role cannot take this step."))
    for name in transition.conditions:
        reason = CONDITIONS[name](case, user, facts)
        if reason is not None:
            reasons.append(reason)
    return reasons


def available_transitions(
    definition: Definition, case: CaseLike, user: UserLike, facts: Facts
) -> list[TransitionOption]:
    """Every transition out of the case's stage, in file order, each open or closed with its reasons.

    :raises KeyError: the case's stage is not a stage of ``definition``.
    """
    definition.stage(case.stage)
    options = []
    for transition in definition.transitions_from(case.stage):
        reasons = tuple(_refusals(transition, definition, case, user, facts))
        options.append(
            TransitionOption(
                id=transition.id,
                to=transition.to,
                label=transition.label,
                open=not reasons,
                reason=reasons[0] if reasons else None,
                reasons=reasons,
            )
        )
    return options


def check_transition(definition: Definition, case: CaseLike, user: UserLike, facts: Facts, to: str) -> Transition:
    """The transition from the case's stage to ``to``, if this user may take it now.

    :raises TransitionRefused: there is no such transition, or a rule closes it (the message is the first reason).
    """
    for transition in definition.transitions_from(case.stage):
        if transition.to == to:
            reasons = _refusals(transition, definition, case, user, facts)
            if reasons:
                raise TransitionRefused(reasons[0])
            return transition
    raise TransitionRefused(
        _l("The workflow has no step from %(stage)s to %(to)s.", stage=case.stage, to=to), code="no_such_transition"
    )


def _due(deadline: Deadline, anchors: Mapping[str, datetime], tz: ZoneInfo) -> datetime:
    if deadline.start not in anchors:
        raise KeyError(f"the deadline counts from {deadline.start!r}, which the caller did not give")
    start = anchors[deadline.start]
    if deadline.hours is not None:
        return add_hours(start, deadline.hours, tz)
    return add_working_days(start, deadline.working_days, tz)


def compute_deadline(
    definition: Definition,
    stage: str,
    anchors: Mapping[str, datetime],
    *,
    immediate_danger: bool = False,
    tz: ZoneInfo = VIETNAM,
) -> datetime | None:
    """When the case must leave ``stage``, or None when the stage has no deadline.

    :param anchors: aware datetimes by anchor name: ``received`` (the report), ``entered`` (the case entered
        ``stage``), and, for deadlines that count from an earlier stage, that stage's id (when the case last
        entered it).
    :param immediate_danger: the child is in immediate danger: the stage's ``danger_deadline`` applies when earlier.
    :raises KeyError: the stage is unknown, or an anchor its deadline needs is missing.
    """
    spec = definition.stage(stage)
    due = [_due(d, anchors, tz) for d in (spec.deadline,) if d is not None]
    if immediate_danger and spec.danger_deadline is not None:
        due.append(_due(spec.danger_deadline, anchors, tz))
    return min(due) if due else None


__all__ = [
    "CONDITIONS",
    "Facts",
    "TransitionOption",
    "TransitionRefused",
    "available_transitions",
    "check_transition",
    "compute_deadline",
]
