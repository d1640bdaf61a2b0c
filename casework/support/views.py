"""The procedure page of a case (where it stands in its workflow, what may be done next and why not, and the
records of the support: assessments, emergency measures, the plan, services, visits, closing) and its timeline.

Views load the case (404 outside the user's area), check the form's CSRF token, call one operation, commit and
redirect; a refused input shows the page again with the errors next to the fields and changes nothing.
"""

from __future__ import annotations

import uuid

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from casework import codes, scope
from casework.auth.models import User
from casework.cases import operations as case_operations
from casework.cases.models import Case
from casework.cases.stages import definition_of
from casework.errors import Conflict, DomainError, PermissionDenied, ValidationFailed
from casework.extensions import db
from casework.support import operations, timeline
from casework.support.forms import (
    ASSESSMENT_LABELS,
    CAPACITY_LABELS,
    CLOSURE_STATUS_LABELS,
    FACTORS,
    PLAN_ROWS,
    PLAN_STATUS_LABELS,
    RATING_LABELS,
    REFERRAL_LABELS,
    REVIEW_OUTCOME_LABELS,
    SERVICE_OUTCOME_LABELS,
    VISIT_OUTCOME_LABELS,
    AssessmentForm,
    ClosureDecisionForm,
    ClosureRequestForm,
    EmergencyForm,
    PlanForm,
    ReferralStatusForm,
    ServiceForm,
    TransitionForm,
    VisitForm,
)
from casework.workflow import TransitionRefused

bp = Blueprint("support", __name__, url_prefix="/cases")

#: The forms of the page, and the prefix that keeps their fields' ids apart ("note" is in several).
FORMS = {
    "transition_form": (TransitionForm, ""),
    "assessment_form": (AssessmentForm, ""),
    "emergency_form": (EmergencyForm, "emergency"),
    "plan_form": (PlanForm, ""),
    "service_form": (ServiceForm, ""),
    "visit_form": (VisitForm, "visit"),
    "closure_form": (ClosureRequestForm, "closure"),
}


def _actor() -> User:
    return current_user._get_current_object()


def _load(case_id: uuid.UUID) -> Case:
    if not scope.can_view_records(current_user):
        abort(403)
    return case_operations.load_case(case_id, _actor())


def _locale() -> str:
    return str(get_locale() or "vi")


def _plan_form(plan) -> PlanForm:
    """The plan form filled from the current draft (or empty), with blank rows to add services."""
    form = PlanForm(formdata=None)
    if plan is not None and plan.status in ("draft", "returned"):
        form.goals.data = plan.goals
        form.review_on.data = plan.review_on.strftime("%d/%m/%Y") if plan.review_on else ""
        rows = [
            {
                "service_type": s.service_type,
                "responsible": s.responsible or "",
                "due_on": s.due_on.strftime("%d/%m/%Y") if s.due_on else "",
                "details": s.details or "",
            }
            for s in plan.services
        ]
        rows += [{}] * max(PLAN_ROWS - len(rows), 2)
        form = PlanForm(
            formdata=None, data={"goals": form.goals.data, "review_on": form.review_on.data, "services": rows}
        )
    return form


def _page(case: Case, status: int = 200, **forms):
    """Record the view of the case, commit it, and render the procedure page with ``forms`` as submitted."""
    actor = _actor()
    case_operations.record_view(case, actor)
    db.session.commit()
    definition = definition_of(case)
    locale = _locale()
    plan = operations.current_plan(case)
    stage = definition.stages.get(case.stage)
    context = {
        "case": case,
        "child": case.child,
        "definition": definition,
        "stage": stage,
        "locale": locale,
        "options": operations.transitions_for(case, actor),
        "may_act": operations.may_act(actor, case),
        "supervises": scope.can_supervise(actor, case.commune_code),
        "assessments": operations.assessments_of(case),
        "measures": operations.emergency_measures_of(case),
        "plan": plan,
        "plans": operations.plans_of(case),
        "services": operations.services_of(case),
        "visits": operations.visits_of(case),
        "closures": operations.closure_requests_of(case),
        "pending_closure": operations.pending_closure(case),
        "approved_closure": operations.approved_closure(case),
        "history": operations.transition_history(case),
        "labels": {
            "assessment": ASSESSMENT_LABELS,
            "rating": RATING_LABELS,
            "capacity": CAPACITY_LABELS,
            "review": REVIEW_OUTCOME_LABELS,
            "plan": PLAN_STATUS_LABELS,
            "referral": REFERRAL_LABELS,
            "outcome": SERVICE_OUTCOME_LABELS,
            "visit": VISIT_OUTCOME_LABELS,
            "closure": CLOSURE_STATUS_LABELS,
        },
        "factors": FACTORS,
        "referral_form": forms.get("referral_form") or ReferralStatusForm(formdata=None),
        "decision_form": forms.get("decision_form") or ClosureDecisionForm(formdata=None, prefix="decision"),
        "stage_label": lambda stage_id: (
            definition.stages[stage_id].label.for_locale(locale) if stage_id in definition.stages else stage_id
        ),
        "code_label": lambda list_name, code: codes.label(list_name, code) if code else "",
    }
    for name, (form_class, prefix) in FORMS.items():
        context[name] = forms.get(name) or (
            _plan_form(plan) if name == "plan_form" else form_class(formdata=None, prefix=prefix)
        )
    context["failed"] = next(iter(forms), None)
    return render_template("support/procedure.html", **context), status


def _back(case: Case, anchor: str):
    return redirect(url_for("support.procedure", case_id=case.id, _anchor=anchor))


def _run(case: Case, form, name: str, action, success, anchor: str):
    """Check the form's token, run ``action`` (one operation) and commit; on a refusal, show the page again with the
    errors next to the fields (422 for bad input, 409 for a stale form or a rule of the workflow, 403)."""
    if not form.validate_on_submit():
        if form.csrf_token.errors:
            abort(400)
        return _page(case, 422, **{name: form})
    try:
        action()
    except ValidationFailed as exc:
        db.session.rollback()
        form.show_errors(exc.errors)
        return _page(case, exc.status, **{name: form})
    except (Conflict, PermissionDenied) as exc:
        db.session.rollback()
        form.form_errors.append(str(exc.message))
        return _page(case, exc.status, **{name: form})
    db.session.commit()
    flash(success, "success")
    return _back(case, anchor)


@bp.get("/<uuid:case_id>/procedure")
def procedure(case_id: uuid.UUID):
    """Where the case stands in its workflow, what may be done next, and the records of the support."""
    return _page(_load(case_id))


@bp.post("/<uuid:case_id>/transitions")
def take_transition(case_id: uuid.UUID):
    """Move the case to the next stage of its workflow, with a note (refused with the rule's reason)."""
    case = _load(case_id)
    form = TransitionForm()
    version = int(form.version.data) if (form.version.data or "").isdigit() else None

    def action():
        operations.apply_transition(
            case,
            _actor(),
            form.to.data or "",
            version=version,
            note=form.note.data,
            closure_reason=form.closure_reason.data or None,
        )

    if not form.validate_on_submit() and form.csrf_token.errors:
        abort(400)
    try:
        action()
    except ValidationFailed as exc:
        db.session.rollback()
        form.show_errors(exc.errors)
        return _page(case, exc.status, transition_form=form)
    except (TransitionRefused, Conflict, PermissionDenied) as exc:
        db.session.rollback()
        db.session.refresh(case)
        form.form_errors.append(str(exc.message))
        return _page(case, exc.status, transition_form=form)
    db.session.commit()
    flash(
        _l("The case is now at: %(stage)s.", stage=definition_of(case).stage(case.stage).label.for_locale(_locale())),
        "success",
    )
    return _back(case, "stage")


@bp.post("/<uuid:case_id>/assessments")
def record_assessment(case_id: uuid.UUID):
    """Record a risk assessment (Mẫu 02, 03 or 06)."""
    case = _load(case_id)
    form = AssessmentForm()
    return _run(
        case,
        form,
        "assessment_form",
        lambda: operations.record_assessment(case, _actor(), form.data),
        _l("Assessment recorded."),
        "assessments",
    )


@bp.post("/<uuid:case_id>/emergency-measures")
def record_emergency_measure(case_id: uuid.UUID):
    """Record an emergency measure or temporary separation."""
    case = _load(case_id)
    form = EmergencyForm(prefix="emergency")
    return _run(
        case,
        form,
        "emergency_form",
        lambda: operations.record_emergency_measure(case, _actor(), form.data),
        _l("Emergency measure recorded."),
        "emergency",
    )


@bp.post("/<uuid:case_id>/plan")
def save_plan(case_id: uuid.UUID):
    """Save the draft support plan: goals, review date and planned services (Mẫu 04)."""
    case = _load(case_id)
    form = PlanForm()
    if not form.validate_on_submit() and form.csrf_token.errors:
        abort(400)
    data = form.as_data(request.form)
    try:
        operations.save_plan(case, _actor(), data)
    except ValidationFailed as exc:
        db.session.rollback()
        # The operation numbers the rows it was given; the form shows each error on the row where it was typed.
        renumbered = {}
        for key, messages in exc.errors.items():
            parts = key.split(".")
            if parts[0] == "services" and len(parts) > 1 and parts[1].isdigit():
                parts[1] = str(form.row_numbers[int(parts[1])])
            renumbered[".".join(parts)] = messages
        shown = form.shown_again(data)
        shown.show_errors(renumbered)
        return _page(case, exc.status, plan_form=shown)
    except (Conflict, PermissionDenied) as exc:
        db.session.rollback()
        form.form_errors.append(str(exc.message))
        return _page(case, exc.status, plan_form=form)
    db.session.commit()
    flash(_l("Support plan saved."), "success")
    return _back(case, "plan")


@bp.post("/<uuid:case_id>/services")
def record_service(case_id: uuid.UUID):
    """Record a service given to the child, or a referral to an outside service."""
    case = _load(case_id)
    form = ServiceForm()
    return _run(
        case,
        form,
        "service_form",
        lambda: operations.record_service(case, _actor(), form.data),
        _l("Service recorded."),
        "services",
    )


@bp.post("/<uuid:case_id>/services/<uuid:service_id>/referral")
def update_referral(case_id: uuid.UUID, service_id: uuid.UUID):
    """Move a referral to an outside service on (accepted, done, declined)."""
    case = _load(case_id)
    service = operations.load_service(case, service_id)
    form = ReferralStatusForm()
    return _run(
        case,
        form,
        "referral_form",
        lambda: operations.update_referral(service, _actor(), form.referral_status.data),
        _l("Referral updated."),
        "services",
    )


@bp.post("/<uuid:case_id>/visits")
def record_visit(case_id: uuid.UUID):
    """Record a monitoring visit."""
    case = _load(case_id)
    form = VisitForm(prefix="visit")
    return _run(
        case,
        form,
        "visit_form",
        lambda: operations.record_visit(case, _actor(), form.data),
        _l("Visit recorded."),
        "visits",
    )


@bp.post("/<uuid:case_id>/closure-requests")
def request_closure(case_id: uuid.UUID):
    """Ask a supervisor to approve closing the case."""
    case = _load(case_id)
    form = ClosureRequestForm(prefix="closure")
    return _run(
        case,
        form,
        "closure_form",
        lambda: operations.request_closure(case, _actor(), form.data),
        _l("Request to close sent to a supervisor."),
        "closing",
    )


@bp.post("/<uuid:case_id>/closure-requests/<uuid:request_id>/decision")
def decide_closure(case_id: uuid.UUID, request_id: uuid.UUID):
    """A supervisor approves or rejects a request to close the case."""
    case = _load(case_id)
    closure = operations.load_closure_request(case, request_id)
    form = ClosureDecisionForm(prefix="decision")
    approve = form.decision.data == "approve"
    return _run(
        case,
        form,
        "decision_form",
        lambda: operations.decide_closure(closure, _actor(), approve=approve, note=form.note.data),
        _l("Closing approved.") if approve else _l("Closing rejected."),
        "closing",
    )


@bp.get("/<uuid:case_id>/timeline")
def show_timeline(case_id: uuid.UUID):
    """Everything that happened on the case, in order (the view is recorded)."""
    case = _load(case_id)
    actor = _actor()
    case_operations.record_view(case, actor)
    entries = timeline.timeline(case, _locale())
    db.session.commit()
    order = request.args.get("order", "newest")
    if order != "oldest":
        entries = list(reversed(entries))
    return render_template("support/timeline.html", case=case, child=case.child, entries=entries, order=order)


@bp.errorhandler(DomainError)
def _domain_error(exc: DomainError):
    db.session.rollback()
    return render_template("error.html", status=exc.status, message=exc.message), exc.status
