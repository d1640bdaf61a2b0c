"""``/api/v1/cases/<id>/...``: the support procedure through the API: the workflow's transitions, assessments,
emergency measures, the support plan, services and referrals, monitoring visits, closure, and the timeline.

The rules are those of :mod:`casework.support.operations`, the same the procedure page uses; this module only turns
JSON into calls and answers. As for the case itself, a case outside the caller's area answers 404 and roles that
never open a child's record get 403; every answer that shows decrypted text of the case records a view.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import jsonify, request
from flask_babel import force_locale
from flask_login import current_user

from casework import i18n
from casework.api import bp
from casework.api.cases import _iso, _require_record_role, _user_ref
from casework.api.views import json_body
from casework.cases import operations as case_operations
from casework.cases.models import Case
from casework.errors import Problems
from casework.extensions import db
from casework.support import operations
from casework.support.models import (
    Assessment,
    ClosureRequest,
    EmergencyMeasure,
    MonitoringVisit,
    ServiceRecord,
    SupportPlan,
)
from casework.support.timeline import timeline


def _locale() -> str:
    """The language of labels and titles: the request's Accept-Language when it names Vietnamese or English, else
    the locale the app selects (Vietnamese by default)."""
    return request.accept_languages.best_match(i18n.LANGUAGES) or i18n.select_locale()


def _day(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _load(case_id: str) -> Case:
    """The case, for a caller whose role opens records: 403 for the other roles, 404 outside the area."""
    _require_record_role()
    return case_operations.load_case(case_id, current_user)


# --- JSON of the records ---------------------------------------------------------------------------------------------


def _assessment_json(a: Assessment) -> dict[str, Any]:
    return {
        "id": str(a.id),
        "kind": a.kind,
        "harm_severity": a.harm_severity,
        "abuser_access": a.abuser_access,
        "care_obstacles": a.care_obstacles,
        "child_capacity": a.child_capacity,
        "harm_note": a.harm_note,
        "access_note": a.access_note,
        "obstacles_note": a.obstacles_note,
        "capacity_note": a.capacity_note,
        "suggested_level": a.suggested_level,
        "risk_level": a.risk_level,
        "override_reason": a.override_reason,
        "needs": a.needs,
        "attendees": a.attendees,
        "findings": a.findings,
        "review_outcome": a.review_outcome,
        "assessed_by": _user_ref(a.assessed_by_id),
        "assessed_at": _iso(a.assessed_at),
    }


def _measure_json(m: EmergencyMeasure) -> dict[str, Any]:
    return {
        "id": str(m.id),
        "measure": m.measure,
        "taken_at": _iso(m.taken_at),
        "place": m.place,
        "note": m.note,
        "recorded_by": _user_ref(m.recorded_by_id),
        "recorded_at": _iso(m.recorded_at),
    }


def _plan_json(plan: SupportPlan) -> dict[str, Any]:
    return {
        "id": str(plan.id),
        "cycle": plan.cycle,
        "status": plan.status,
        "goals": plan.goals,
        "review_on": _day(plan.review_on),
        "services": [
            {
                "id": str(s.id),
                "service_type": s.service_type,
                "responsible": s.responsible,
                "details": s.details,
                "due_on": _day(s.due_on),
            }
            for s in plan.services
        ],
        "created_by": _user_ref(plan.created_by_id),
        "created_at": _iso(plan.created_at),
        "submitted_at": _iso(plan.submitted_at),
        "decided_by": _user_ref(plan.decided_by_id),
        "decided_at": _iso(plan.decided_at),
        "decision_note": plan.decision_note,
    }


def _service_json(s: ServiceRecord) -> dict[str, Any]:
    return {
        "id": str(s.id),
        "plan_id": str(s.plan_id) if s.plan_id else None,
        "service_type": s.service_type,
        "delivered_on": _day(s.delivered_on),
        "duration_minutes": s.duration_minutes,
        "outcome": s.outcome,
        "provider": s.provider,
        "notes": s.notes,
        "referral_status": s.referral_status,
        "referral_updated_at": _iso(s.referral_updated_at),
        "legal_aid_centre": s.legal_aid_centre,
        "police_report_ref": s.police_report_ref,
        "prosecution_ref": s.prosecution_ref,
        "court_ref": s.court_ref,
        "hearing_on": _day(s.hearing_on),
        "proceedings_outcome": s.proceedings_outcome,
        "recorded_by": _user_ref(s.recorded_by_id),
        "recorded_at": _iso(s.recorded_at),
    }


def _visit_json(v: MonitoringVisit) -> dict[str, Any]:
    return {
        "id": str(v.id),
        "visited_on": _day(v.visited_on),
        "outcome": v.outcome,
        "notes": v.notes,
        "recorded_by": _user_ref(v.recorded_by_id),
        "recorded_at": _iso(v.recorded_at),
    }


def _closure_json(r: ClosureRequest) -> dict[str, Any]:
    return {
        "id": str(r.id),
        "reason": r.reason,
        "note": r.note,
        "status": r.status,
        "requested_by": _user_ref(r.requested_by_id),
        "requested_at": _iso(r.requested_at),
        "decided_by": _user_ref(r.decided_by_id),
        "decided_at": _iso(r.decided_at),
        "decision_note": r.decision_note,
    }


# --- the workflow ----------------------------------------------------------------------------------------------------


@bp.get("/cases/<case_id>/transitions")
def list_transitions(case_id: str):
    """List every transition out of the case's stage, open or closed with the reasons, for the caller."""
    case = _load(case_id)
    locale = _locale()
    with force_locale(locale):  # the reasons and titles in the labels' language
        items = [
            {
                "id": option.id,
                "to": option.to,
                "label": option.label.for_locale(locale),
                "open": option.open,
                "reason": str(option.reason) if option.reason is not None else None,
                "reasons": [str(reason) for reason in option.reasons],
            }
            for option in operations.transitions_for(case, current_user)
        ]
    return jsonify(stage=case.stage, version=case.version, items=items)


@bp.post("/cases/<case_id>/transitions")
def take_transition(case_id: str):
    """Move the case to another stage of its workflow, based on the version the caller last saw."""
    case = _load(case_id)
    data = json_body()
    to = data.get("to")
    if not isinstance(to, str) or not to.strip():
        problems = Problems()
        problems.add("to", "required", "Send 'to', the stage to move the case to.")
        problems.raise_if_any()
    operations.apply_transition(
        case,
        current_user,
        to.strip(),
        version=data.get("version"),
        note=data.get("note"),
        closure_reason=data.get("closure_reason"),
    )
    body = {
        "id": str(case.id),
        "stage": case.stage,
        "version": case.version,
        "next_deadline_at": _iso(case.next_deadline_at),
        "closed_at": _iso(case.closed_at),
        "closure_reason": case.closure_reason,
    }
    db.session.commit()
    return jsonify(body)


# --- assessments, emergency measures ---------------------------------------------------------------------------------


@bp.post("/cases/<case_id>/assessments")
def add_assessment(case_id: str):
    """Record a risk assessment (initial, detailed or review); the case takes the confirmed risk level."""
    case = _load(case_id)
    assessment = operations.record_assessment(case, current_user, json_body())
    body = _assessment_json(assessment)
    db.session.commit()
    return jsonify(body), 201


@bp.get("/cases/<case_id>/assessments")
def list_assessments(case_id: str):
    """List the case's assessments, oldest first, with the suggested and the confirmed level, recording the view."""
    case = _load(case_id)
    case_operations.record_view(case, current_user)
    items = [_assessment_json(a) for a in operations.assessments_of(case)]
    db.session.commit()
    return jsonify(items=items)


@bp.post("/cases/<case_id>/emergency-measures")
def add_emergency_measure(case_id: str):
    """Record an emergency measure or temporary separation (Decree 56/2017, Arts. 31-32)."""
    case = _load(case_id)
    measure = operations.record_emergency_measure(case, current_user, json_body())
    body = _measure_json(measure)
    db.session.commit()
    return jsonify(body), 201


# --- the support plan ------------------------------------------------------------------------------------------------


def _plans_json(case: Case) -> dict[str, Any]:
    plans = operations.plans_of(case)
    current = plans[-1] if plans else None
    return {
        "current": _plan_json(current) if current is not None else None,
        "earlier": [{"id": str(p.id), "cycle": p.cycle, "status": p.status} for p in plans[:-1]],
    }


@bp.get("/cases/<case_id>/plan")
def show_plan(case_id: str):
    """Show the current support plan with its services, and the earlier cycles, recording the view."""
    case = _load(case_id)
    case_operations.record_view(case, current_user)
    body = _plans_json(case)
    db.session.commit()
    return jsonify(body)


@bp.put("/cases/<case_id>/plan")
def save_plan(case_id: str):
    """Write the draft plan's goals, review date and planned services (Mẫu 04)."""
    case = _load(case_id)
    plan = operations.save_plan(case, current_user, json_body())
    case_operations.record_view(case, current_user)  # the answer holds the supervisor's note on an earlier draft
    body = _plan_json(plan)
    db.session.commit()
    return jsonify(body)


# --- services, visits ------------------------------------------------------------------------------------------------


@bp.post("/cases/<case_id>/services")
def add_service(case_id: str):
    """Record a service given to the child, or a referral to an outside service with its status."""
    case = _load(case_id)
    service = operations.record_service(case, current_user, json_body())
    body = _service_json(service)
    db.session.commit()
    return jsonify(body), 201


@bp.get("/cases/<case_id>/services")
def list_services(case_id: str):
    """List the services given to the child, recording the view."""
    case = _load(case_id)
    case_operations.record_view(case, current_user)
    items = [_service_json(s) for s in operations.services_of(case)]
    db.session.commit()
    return jsonify(items=items)


@bp.patch("/cases/<case_id>/services/<service_id>")
def update_referral(case_id: str, service_id: str):
    """Move a referral on: sent, accepted, done or declined."""
    case = _load(case_id)
    service = operations.load_service(case, service_id)
    data = json_body()
    operations.update_referral(service, current_user, data.get("referral_status"))
    body = {
        "id": str(service.id),
        "referral_status": service.referral_status,
        "referral_updated_at": _iso(service.referral_updated_at),
    }
    db.session.commit()
    return jsonify(body)


@bp.post("/cases/<case_id>/visits")
def add_visit(case_id: str):
    """Record a monitoring visit and what was found."""
    case = _load(case_id)
    visit = operations.record_visit(case, current_user, json_body())
    body = _visit_json(visit)
    db.session.commit()
    return jsonify(body), 201


# --- closure ---------------------------------------------------------------------------------------------------------


@bp.get("/cases/<case_id>/closure-requests")
def list_closure_requests(case_id: str):
    """List the requests to close the case and the decisions on them, recording the view."""
    case = _load(case_id)
    case_operations.record_view(case, current_user)
    items = [_closure_json(r) for r in operations.closure_requests_of(case)]
    db.session.commit()
    return jsonify(items=items)


@bp.post("/cases/<case_id>/closure-requests")
def request_closure(case_id: str):
    """Ask a supervisor to approve closing the case, for a reason."""
    case = _load(case_id)
    closure = operations.request_closure(case, current_user, json_body())
    body = _closure_json(closure)
    db.session.commit()
    return jsonify(body), 201


@bp.post("/cases/<case_id>/closure-requests/<request_id>/decision")
def decide_closure(case_id: str, request_id: str):
    """Approve or reject a request to close the case (a supervisor of its commune, not the one who asked)."""
    case = _load(case_id)
    closure = operations.load_closure_request(case, request_id)
    data = json_body()
    approve = data.get("approve")
    if not isinstance(approve, bool):
        problems = Problems()
        problems.add("approve", "not_a_boolean", "Answer true or false.")
        problems.raise_if_any()
    operations.decide_closure(closure, current_user, approve=approve, note=data.get("note"))
    case_operations.record_view(case, current_user)  # the answer holds the requester's note
    body = _closure_json(closure)
    db.session.commit()
    return jsonify(body)


# --- the timeline ----------------------------------------------------------------------------------------------------


@bp.get("/cases/<case_id>/timeline")
def show_timeline(case_id: str):
    """List everything that happened on the case, oldest first, recording the view."""
    case = _load(case_id)
    case_operations.record_view(case, current_user)
    locale = _locale()
    with force_locale(locale):  # the reasons and titles in the labels' language
        items = [entry.as_dict() for entry in timeline(case, locale)]
    db.session.commit()
    return jsonify(items=items)
