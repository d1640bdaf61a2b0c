"""The rules of the support procedure: moving a case through its workflow, and recording what is done for the child.

Every operation takes the acting user, checks the rules, changes state, records an audit event and ``flush()``es;
the request, job or command that called it commits, so a transition, its note, its effects and its audit event
land together or not at all.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, time, timedelta
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from casework import audit, checks, scope
from casework.auth.models import User
from casework.auth.roles import SUPERVISOR
from casework.cases.models import Case, CaseChange, CaseTransition
from casework.cases.stages import add_deadline_source, definition_of, refresh_deadline
from casework.dbtypes import utcnow
from casework.errors import Conflict, NotFound, PermissionDenied, Problems
from casework.extensions import db
from casework.i18n import local_tz
from casework.support.models import (
    ASSESSMENT_KINDS,
    RATINGS,
    REFERRAL_STATUSES,
    REVIEW_OUTCOMES,
    SERVICE_OUTCOMES,
    VISIT_OUTCOMES,
    Assessment,
    ClosureRequest,
    EmergencyMeasure,
    MonitoringVisit,
    PlannedService,
    ServiceRecord,
    SupportPlan,
)
from casework.workflow import Facts, TransitionOption, TransitionRefused, available_transitions, check_transition

MAX_SERVICES = 30

# --- acting on a case -------------------------------------------------------------------------------------------


def may_act(user: User, case: Case) -> bool:
    """Say whether ``user`` may record work on ``case``: a social worker or supervisor of its commune."""
    return user.role in {"social_worker", SUPERVISOR} and scope.can_access_commune(user, case.commune_code)


def _require_act(user: User, case: Case) -> None:
    if not scope.can_access_commune(user, case.commune_code):
        raise NotFound(_l("No such case."))
    if not may_act(user, case):
        raise PermissionDenied(_l("Your role cannot record work on a case."))


def _require_open(case: Case) -> None:
    if not case.is_open:
        raise Conflict(_l("This case is closed."), code="case_closed")


def _check_version(case: Case, version: Any) -> None:
    if isinstance(version, bool) or not isinstance(version, int):
        problems = Problems()
        problems.add("version", "required", _l("Send the version of the case you saw."))
        problems.raise_if_any()
    if case.version != version:
        raise Conflict(
            _l("Someone changed this case since you opened it. Reload it and make your change again."),
            code="stale_version",
        )


def _records_of(model, case: Case, *order) -> list:
    """The rows of ``model`` that belong to ``case``, in ``order``."""
    return list(db.session.scalars(select(model).where(model.case_id == case.id).order_by(*order)))


# --- workflow ---------------------------------------------------------------------------------------------------


def current_plan(case: Case) -> SupportPlan | None:
    """The plan of the case's latest cycle, if one was started."""
    return db.session.scalar(
        select(SupportPlan).where(SupportPlan.case_id == case.id).order_by(SupportPlan.cycle.desc()).limit(1)
    )


def approved_closure(case: Case) -> ClosureRequest | None:
    return db.session.scalar(
        select(ClosureRequest)
        .where(ClosureRequest.case_id == case.id, ClosureRequest.status == "approved")
        .order_by(ClosureRequest.decided_at.desc())
        .limit(1)
    )


def _emergency_recorded(case: Case) -> bool:
    since = _last_reopened(case)
    stmt = select(EmergencyMeasure.id).where(EmergencyMeasure.case_id == case.id)
    if since is not None:
        stmt = stmt.where(EmergencyMeasure.recorded_at >= since)
    return db.session.scalar(stmt.limit(1)) is not None


def _last_reopened(case: Case) -> datetime | None:
    finals = [s.id for s in definition_of(case).stages.values() if s.final]
    return db.session.scalar(
        select(func.max(CaseTransition.at)).where(
            CaseTransition.case_id == case.id, CaseTransition.from_stage.in_(finals)
        )
    )


def facts_for(case: Case, user: User, *, closure_reason: str | None = None) -> Facts:
    """What the workflow's conditions need to know about ``case``, for ``user``.

    :param closure_reason: the reason a supervisor gives when closing directly; otherwise the reason of the
        approved closure request, if any.
    """
    plan = current_plan(case)
    approved = approved_closure(case)
    return Facts(
        has_planned_service=plan is not None and plan.status != "ended" and bool(plan.services),
        plan_approved=plan is not None and plan.status == "approved",
        emergency_measure_recorded=_emergency_recorded(case),
        closure_reason=closure_reason or (approved.reason if approved else None),
        supervisor_approved_closure=approved is not None,
        # The role is the engine's check ("Your role cannot take this step."); this is the area alone, so a
        # provincial officer who may read the case is not told it is outside their area.
        in_scope=scope.can_access_commune(user, case.commune_code),
    )


def transitions_for(case: Case, user: User) -> list[TransitionOption]:
    """Every transition out of the case's stage, open or closed with the reason, for ``user``.

    A supervisor closes a case directly, giving the reason as they take the step: for them closing is shown open
    (taking it without a reason is still refused, with that reason).
    """
    given = "other" if user.role == SUPERVISOR else None
    return available_transitions(definition_of(case), case, user, facts_for(case, user, closure_reason=given))


def apply_transition(
    case: Case,
    actor: User,
    to: str,
    *,
    version: Any,
    note: str | None = None,
    closure_reason: str | None = None,
) -> CaseTransition:
    """Move ``case`` to stage ``to`` if the workflow lets ``actor`` do it now.

    :param version: the case's version the actor saw; an older one is refused (409 ``stale_version``).
    :raises NotFound: the case is outside the actor's area.
    :raises Conflict: a stale version, or :class:`TransitionRefused` with the workflow's reason.
    """
    if not scope.can_access_commune(actor, case.commune_code):
        raise NotFound(_l("No such case."))
    _check_version(case, version)
    problems = Problems()
    note = checks.text(note, problems, "note")
    if closure_reason not in (None, ""):
        closure_reason = checks.code(closure_reason, "closure_reasons", problems, "closure_reason")
    else:
        closure_reason = None
    problems.raise_if_any()
    definition = definition_of(case)
    if not case.is_open and all(t.to != to for t in definition.transitions_from(case.stage)):
        # Say what stands in the way (closed), not that the closed stage has no such step.
        raise TransitionRefused(_l("The case is closed; reopen it first."))
    # A supervisor closing directly gives the reason; anyone else closes for the reason a supervisor approved. A
    # worker's own reason counts only while none is approved, so that the refusal names the missing approval.
    given = closure_reason if actor.role == SUPERVISOR or approved_closure(case) is None else None
    facts = facts_for(case, actor, closure_reason=given)
    transition = check_transition(definition, case, actor, facts, to)
    now = utcnow()
    source, target = definition.stage(case.stage), definition.stage(to)
    step = CaseTransition(
        case_id=case.id,
        transition=transition.id,
        from_stage=case.stage,
        to_stage=to,
        closure_reason=facts.closure_reason if target.final else None,
        actor_id=actor.id,
        at=now,
    )
    db.session.add(step)
    step.note = note
    for effect in transition.effects:
        _EFFECTS[effect](case, actor, note, now)
    if target.final:
        case.closed_at = now
        case.closure_reason = facts.closure_reason
        approved = approved_closure(case)
        if approved is not None:
            approved.status = "used"
    elif source.final:
        case.closed_at = None
        case.closure_reason = None
    case.stage = to
    case.stage_entered_at = now
    db.session.flush()  # the step is visible to the deadline's anchors
    refresh_deadline(case)
    db.session.flush()
    audit.record(
        "case.transition",
        object_type="case",
        object_id=case.id,
        actor=actor,
        details={"transition": transition.id, "from": step.from_stage, "to": to, "closure_reason": step.closure_reason},
    )
    return step


def _plan_in(case: Case, statuses: tuple[str, ...]) -> SupportPlan:
    plan = current_plan(case)
    if plan is None or plan.status not in statuses:
        raise Conflict(_l("The case has no support plan in a state for this step."), code="no_plan")
    return plan


def _submit_plan(case: Case, actor: User, note: str | None, now: datetime) -> None:
    plan = _plan_in(case, ("draft", "returned"))
    plan.status = "submitted"
    plan.submitted_at = now


def _approve_plan(case: Case, actor: User, note: str | None, now: datetime) -> None:
    plan = _plan_in(case, ("submitted",))
    plan.status = "approved"
    plan.decided_by_id = actor.id
    plan.decided_at = now
    plan.decision_note = note


def _return_plan(case: Case, actor: User, note: str | None, now: datetime) -> None:
    plan = _plan_in(case, ("submitted",))
    plan.status = "returned"
    plan.decided_by_id = actor.id
    plan.decided_at = now
    plan.decision_note = note


def _new_plan_cycle(case: Case, actor: User, note: str | None, now: datetime) -> None:
    plan = current_plan(case)
    if plan is not None:
        plan.status = "ended"
    db.session.add(
        SupportPlan(case_id=case.id, cycle=(plan.cycle + 1) if plan else 1, created_by_id=actor.id, status="draft")
    )


_EFFECTS = {
    "submit_plan": _submit_plan,
    "approve_plan": _approve_plan,
    "return_plan": _return_plan,
    "new_plan_cycle": _new_plan_cycle,
}


def transition_history(case: Case) -> list[CaseTransition]:
    return _records_of(CaseTransition, case, CaseTransition.at)


# --- assessment -------------------------------------------------------------------------------------------------

_SCORE = {"low": 0, "medium": 1, "high": 2}


def suggest_risk_level(harm: str, access: str, obstacles: str, capacity: str) -> str:
    """The risk level the ratings suggest (Decree 56/2017, Mẫu 06 scale).

    Serious harm with an abuser who can still reach the child is high whatever else holds. Otherwise the three
    harm factors score low 0, medium 1, high 2; a child with little capacity to protect themself adds 1, a child
    with much takes 1 off; 4 or more is high, 2 or 3 medium, less low. The worker confirms or overrides it.
    """
    if harm == "high" and access != "low":
        return "high"
    score = _SCORE[harm] + _SCORE[access] + _SCORE[obstacles] + {"low": 1, "medium": 0, "high": -1}[capacity]
    return "high" if score >= 4 else "medium" if score >= 2 else "low"


def record_assessment(case: Case, actor: User, data: Mapping[str, Any]) -> Assessment:
    """Record an assessment (``kind`` initial, detailed or review) and set the case's risk level to the confirmed one.

    A level other than the suggested one needs ``override_reason``; a review needs its outcome (end, new_plan,
    continue).
    """
    _require_act(actor, case)
    _require_open(case)
    problems = Problems()
    kind = checks.choice(data.get("kind"), ASSESSMENT_KINDS, problems, "kind")
    ratings = {
        name: checks.choice(data.get(name), RATINGS, problems, name)
        for name in ("harm_severity", "abuser_access", "care_obstacles", "child_capacity")
    }
    texts = {
        name: checks.text(data.get(name), problems, name)
        for name in (
            "harm_note",
            "access_note",
            "obstacles_note",
            "capacity_note",
            "override_reason",
            "needs",
            "attendees",
            "findings",
        )
    }
    level = checks.choice(data.get("risk_level"), RATINGS, problems, "risk_level", required=False)
    outcome = checks.choice(data.get("review_outcome"), REVIEW_OUTCOMES, problems, "review_outcome", required=False)
    problems.raise_if_any()
    suggested = suggest_risk_level(*ratings.values())
    level = level or suggested
    if level != suggested and not texts["override_reason"]:
        problems.add(
            "override_reason",
            "override_needs_reason",
            _l("Say why the risk level differs from the suggested one."),
        )
    if kind == "review" and outcome is None:
        problems.add("review_outcome", "required", _l("Say how the review ends: end the plan, a new plan, or go on."))
    if kind != "review" and outcome is not None:
        problems.add("review_outcome", "only_for_review", _l("Only a review has an outcome."))
    problems.raise_if_any()
    assessment = Assessment(
        case_id=case.id,
        kind=kind,
        suggested_level=suggested,
        risk_level=level,
        review_outcome=outcome,
        assessed_by_id=actor.id,
        **ratings,
    )
    db.session.add(assessment)
    for name, value in texts.items():
        setattr(assessment, name, value)
    if case.risk_level != level:
        change = CaseChange(case_id=case.id, actor_id=actor.id, field="risk_level")
        change.old_value = case.risk_level
        change.new_value = level
        db.session.add(change)
        case.risk_level = level
    case.updated_at = utcnow()
    db.session.flush()
    audit.record(
        "case.assessment",
        object_type="case",
        object_id=case.id,
        actor=actor,
        details={"kind": kind, "suggested": suggested, "level": level, "overridden": level != suggested},
    )
    return assessment


def assessments_of(case: Case) -> list[Assessment]:
    """The case's assessments, oldest first: the risk of the child over time."""
    return _records_of(Assessment, case, Assessment.assessed_at)


# --- emergency measures ---------------------------------------------------------------------------------------


def record_emergency_measure(case: Case, actor: User, data: Mapping[str, Any]) -> EmergencyMeasure:
    """Record an emergency measure or temporary separation (Arts. 31–32)."""
    _require_act(actor, case)
    _require_open(case)
    problems = Problems()
    measure = checks.code(data.get("measure"), "emergency_measures", problems, "measure", required=True)
    taken_at = checks.moment(data.get("taken_at") or utcnow(), problems, "taken_at")
    place = checks.text(data.get("place"), problems, "place")
    note = checks.text(data.get("note"), problems, "note")
    if taken_at is not None and taken_at > utcnow() + timedelta(minutes=5):
        problems.add("taken_at", "in_future", _l("This moment is in the future."))
    problems.raise_if_any()
    record = EmergencyMeasure(case_id=case.id, measure=measure, taken_at=taken_at, recorded_by_id=actor.id)
    db.session.add(record)
    record.place = place
    record.note = note
    db.session.flush()
    audit.record(
        "case.emergency_measure", object_type="case", object_id=case.id, actor=actor, details={"measure": measure}
    )
    return record


def emergency_measures_of(case: Case) -> list[EmergencyMeasure]:
    return _records_of(EmergencyMeasure, case, EmergencyMeasure.taken_at)


# --- the support plan ---------------------------------------------------------------------------------------------


def _services(value: Any, problems: Problems) -> list[dict[str, Any]]:
    if value in (None, ""):
        return []
    if not isinstance(value, list | tuple):
        problems.add("services", "not_a_list", _l("Send the planned services as a list."))
        return []
    if len(value) > MAX_SERVICES:
        problems.add("services", "too_many", _l("At most %(n)d services.", n=MAX_SERVICES))
        return []
    result = []
    for n, item in enumerate(value):
        if not isinstance(item, Mapping):
            problems.add(f"services.{n}", "not_an_object", _l("Each service is an object."))
            continue
        result.append(
            {
                "service_type": checks.code(
                    item.get("service_type"), "service_types", problems, f"services.{n}.service_type", required=True
                ),
                "responsible": checks.text(item.get("responsible"), problems, f"services.{n}.responsible"),
                "details": checks.text(item.get("details"), problems, f"services.{n}.details"),
                "due_on": checks.day(item.get("due_on"), problems, f"services.{n}.due_on"),
            }
        )
    return result


def save_plan(case: Case, actor: User, data: Mapping[str, Any]) -> SupportPlan:
    """Write the goals, review date and planned services of the case's draft plan (Mẫu 04), starting the first
    plan when there is none. A submitted or approved plan cannot be edited: it is sent back, or a new cycle starts.
    """
    _require_act(actor, case)
    _require_open(case)
    problems = Problems()
    goals = checks.text(data.get("goals"), problems, "goals", required=True)
    review_on = checks.day(data.get("review_on"), problems, "review_on")
    services = _services(data.get("services"), problems)
    problems.raise_if_any()
    plan = current_plan(case)
    if plan is None:
        plan = SupportPlan(case_id=case.id, cycle=1, created_by_id=actor.id, status="draft")
        db.session.add(plan)
    elif plan.status not in ("draft", "returned"):
        raise Conflict(
            _l("This plan has been submitted or approved and cannot be changed; send it back or start a new cycle."),
            code="plan_locked",
        )
    plan.goals = goals
    plan.review_on = review_on
    plan.services.clear()
    db.session.flush()
    for position, item in enumerate(services):
        service = PlannedService(position=position, service_type=item["service_type"], due_on=item["due_on"])
        plan.services.append(service)
        service.responsible = item["responsible"]
        service.details = item["details"]
    case.updated_at = utcnow()
    db.session.flush()
    audit.record(
        "case.plan_saved",
        object_type="case",
        object_id=case.id,
        actor=actor,
        details={"cycle": plan.cycle, "services": [s["service_type"] for s in services]},
    )
    return plan


def plans_of(case: Case) -> list[SupportPlan]:
    return _records_of(SupportPlan, case, SupportPlan.cycle)


# --- services, monitoring -------------------------------------------------------------------------------------


def record_service(case: Case, actor: User, data: Mapping[str, Any]) -> ServiceRecord:
    """Record a service given to the child (or a referral to an outside service, with its status)."""
    _require_act(actor, case)
    _require_open(case)
    problems = Problems()
    service_type = checks.code(data.get("service_type"), "service_types", problems, "service_type", required=True)
    delivered_on = checks.past_day(data.get("delivered_on"), problems, "delivered_on")
    duration = checks.whole(data.get("duration_minutes"), problems, "duration_minutes", low=1, high=10080)
    outcome = checks.choice(data.get("outcome") or "completed", SERVICE_OUTCOMES, problems, "outcome")
    referral_status = checks.choice(
        data.get("referral_status"), REFERRAL_STATUSES, problems, "referral_status", required=False
    )
    texts = {
        name: checks.text(data.get(name), problems, name, limit=checks.MAX_NAME if name.endswith("_ref") else 4000)
        for name in ("provider", "notes", "police_report_ref", "prosecution_ref", "court_ref", "proceedings_outcome")
    }
    hearing_on = checks.day(data.get("hearing_on"), problems, "hearing_on")
    legal_aid_centre = data.get("legal_aid_centre", False)
    if not isinstance(legal_aid_centre, bool):
        legal_aid_centre = str(legal_aid_centre).lower() in {"1", "true", "on", "y", "yes"}
    legal = any(texts[n] for n in ("police_report_ref", "prosecution_ref", "court_ref", "proceedings_outcome"))
    if (legal or hearing_on or legal_aid_centre) and service_type not in ("legal_aid", "legal_counselling"):
        problems.add("service_type", "not_legal", _l("Proceedings are recorded on legal counselling or legal aid."))
    problems.raise_if_any()
    plan = current_plan(case)
    record = ServiceRecord(
        case_id=case.id,
        plan_id=plan.id if plan is not None else None,
        service_type=service_type,
        delivered_on=delivered_on,
        duration_minutes=duration,
        outcome=outcome,
        referral_status=referral_status,
        referral_updated_at=utcnow() if referral_status else None,
        legal_aid_centre=legal_aid_centre,
        hearing_on=hearing_on,
        recorded_by_id=actor.id,
    )
    db.session.add(record)
    for name, value in texts.items():
        setattr(record, name, value)
    db.session.flush()
    audit.record(
        "case.service",
        object_type="case",
        object_id=case.id,
        actor=actor,
        details={"service": service_type, "referral": referral_status, "record": str(record.id)},
    )
    return record


def update_referral(service: ServiceRecord, actor: User, status: Any) -> ServiceRecord:
    """Move a referral to an outside service on (sent → accepted → done, or declined)."""
    case = db.session.get(Case, service.case_id)
    _require_act(actor, case)
    _require_open(case)
    problems = Problems()
    status = checks.choice(status, REFERRAL_STATUSES, problems, "referral_status")
    problems.raise_if_any()
    if service.referral_status is None:
        raise Conflict(_l("This service was not a referral."), code="not_a_referral")
    if service.referral_status in ("done", "declined"):
        raise Conflict(_l("This referral is finished."), code="referral_finished")
    service.referral_status = status
    service.referral_updated_at = utcnow()
    db.session.flush()
    audit.record(
        "case.referral_status",
        object_type="case",
        object_id=case.id,
        actor=actor,
        details={"record": str(service.id), "status": status},
    )
    return service


def services_of(case: Case) -> list[ServiceRecord]:
    return _records_of(ServiceRecord, case, ServiceRecord.delivered_on, ServiceRecord.recorded_at)


def load_service(case: Case, service_id: uuid.UUID | str) -> ServiceRecord:
    try:
        uid = uuid.UUID(str(service_id))
    except ValueError:
        raise NotFound(_l("No such service record.")) from None
    service = db.session.get(ServiceRecord, uid)
    if service is None or service.case_id != case.id:
        raise NotFound(_l("No such service record."))
    return service


def record_visit(case: Case, actor: User, data: Mapping[str, Any]) -> MonitoringVisit:
    """Record a monitoring visit and what was found."""
    _require_act(actor, case)
    _require_open(case)
    problems = Problems()
    visited_on = checks.past_day(data.get("visited_on"), problems, "visited_on")
    outcome = checks.choice(data.get("outcome"), VISIT_OUTCOMES, problems, "outcome")
    notes = checks.text(data.get("notes"), problems, "notes")
    problems.raise_if_any()
    visit = MonitoringVisit(case_id=case.id, visited_on=visited_on, outcome=outcome, recorded_by_id=actor.id)
    db.session.add(visit)
    visit.notes = notes
    db.session.flush()
    audit.record("case.visit", object_type="case", object_id=case.id, actor=actor, details={"outcome": outcome})
    return visit


def visits_of(case: Case) -> list[MonitoringVisit]:
    return _records_of(MonitoringVisit, case, MonitoringVisit.visited_on)


# --- closure ----------------------------------------------------------------------------------------------------


def request_closure(case: Case, actor: User, data: Mapping[str, Any]) -> ClosureRequest:
    """Ask a supervisor to approve closing the case, for a reason of ``closure_reasons``."""
    _require_act(actor, case)
    _require_open(case)
    problems = Problems()
    reason = checks.code(data.get("reason"), "closure_reasons", problems, "reason", required=True)
    note = checks.text(data.get("note"), problems, "note")
    if reason == "other" and not note:
        problems.add("note", "required", _l("Say what the other reason is."))
    problems.raise_if_any()
    pending = db.session.scalar(
        select(ClosureRequest.id).where(
            ClosureRequest.case_id == case.id, ClosureRequest.status.in_(("pending", "approved"))
        )
    )
    if pending is not None:
        raise Conflict(_l("A request to close this case is already waiting or approved."), code="closure_pending")
    request = ClosureRequest(case_id=case.id, reason=reason, requested_by_id=actor.id)
    db.session.add(request)
    request.note = note
    db.session.flush()
    audit.record(
        "case.closure_requested", object_type="case", object_id=case.id, actor=actor, details={"reason": reason}
    )
    return request


def pending_closure(case: Case) -> ClosureRequest | None:
    return db.session.scalar(
        select(ClosureRequest).where(ClosureRequest.case_id == case.id, ClosureRequest.status == "pending").limit(1)
    )


def load_closure_request(case: Case, request_id: uuid.UUID | str) -> ClosureRequest:
    """The closure request ``request_id`` of ``case``; NotFound for another case's or an unknown id."""
    try:
        uid = uuid.UUID(str(request_id))
    except ValueError:
        raise NotFound(_l("No such request.")) from None
    request = db.session.get(ClosureRequest, uid)
    if request is None or request.case_id != case.id:
        raise NotFound(_l("No such request."))
    return request


def decide_closure(request: ClosureRequest, actor: User, *, approve: bool, note: str | None = None) -> ClosureRequest:
    """A supervisor of the case's commune approves or rejects a request to close it (not their own request)."""
    case = db.session.get(Case, request.case_id)
    if not scope.can_access_commune(actor, case.commune_code):
        raise NotFound(_l("No such case."))
    if not scope.can_supervise(actor, case.commune_code):
        raise PermissionDenied(_l("Only a supervisor of the commune can approve closing a case."))
    if request.requested_by_id == actor.id:
        raise PermissionDenied(_l("You cannot approve your own request."), code="own_request")
    problems = Problems()
    note = checks.text(note, problems, "note")
    if not approve and not note:
        problems.add("note", "required", _l("Say why the request is rejected."))
    problems.raise_if_any()
    db.session.refresh(request, with_for_update=True)
    if request.status != "pending":
        raise Conflict(_l("This request has already been decided."), code="already_decided")
    request.status = "approved" if approve else "rejected"
    request.decided_by_id = actor.id
    request.decided_at = utcnow()
    request.decision_note = note
    db.session.flush()
    audit.record(
        "case.closure_decided",
        object_type="case",
        object_id=case.id,
        actor=actor,
        details={"approved": approve, "reason": request.reason},
    )
    return request


def closure_requests_of(case: Case) -> list[ClosureRequest]:
    return _records_of(ClosureRequest, case, ClosureRequest.requested_at)


def _plan_review_deadline(case: Case) -> datetime | None:
    """While an approved plan is carried out, the case is due for review at the end of the plan's review date."""
    plan = current_plan(case) if case.id is not None else None
    if plan is None or plan.status != "approved" or plan.review_on is None:
        return None
    return datetime.combine(plan.review_on, time(23, 59), tzinfo=local_tz())


add_deadline_source(_plan_review_deadline)
