"""Pages of support payments: a case's requests and the request form, the request page with its receipts,
decision and payment, the supervisor's inbox, the lists, the programmes with their ledgers, and the month's XLSX.

Every request is loaded through :func:`operations.load_payment`, which answers 404 outside the user's area without
saying whether it exists. Views check the form's CSRF token, call one operation, commit and redirect; a refusal shows
the page again with the message (403, 409) or the errors next to the fields (422), and changes nothing. The rules
are the operations': these pages only decide which buttons to show.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_login import current_user
from sqlalchemy import select

from casework import codes, scope
from casework.auth.models import User
from casework.auth.roles import FINANCE_OFFICER, PROVINCIAL_OFFICER, SOCIAL_WORKER, SUPERVISOR
from casework.auth.second_factor import requires_fresh_second_factor
from casework.cases import operations as case_operations
from casework.cases.models import Case
from casework.dbtypes import utcnow
from casework.errors import Conflict, DomainError, PermissionDenied, ValidationFailed
from casework.extensions import db
from casework.i18n import local_tz
from casework.payments import operations
from casework.payments.forms import (
    DECISION_LABELS,
    METHOD_LABELS,
    STATUS_LABELS,
    DecideForm,
    DisburseForm,
    ExportForm,
    ListFilterForm,
    PaymentRequestForm,
    ProgrammeForm,
    ReceiptForm,
    SubmitForm,
)
from casework.payments.models import PaymentRequest, Programme
from casework.security import downloads
from casework.security.files import StoredFile, UploadRefused

bp = Blueprint("payments", __name__)

#: Roles that see payment requests (within their area): the record roles and the province's finance officers.
PAYMENT_ROLES = frozenset({SOCIAL_WORKER, SUPERVISOR, PROVINCIAL_OFFICER, FINANCE_OFFICER})
#: Roles that request payments for a case of their commune.
REQUESTER_ROLES = frozenset({SOCIAL_WORKER, SUPERVISOR})
#: Roles that decide requests, each at its step of the approval policy.
DECIDER_ROLES = frozenset({SUPERVISOR, PROVINCIAL_OFFICER})
#: Roles that record payments made.
DISBURSER_ROLES = frozenset({SUPERVISOR, FINANCE_OFFICER})
#: Roles that read the province's programmes (admins too: they manage them, and see no request).
PROGRAMME_ROLES = PAYMENT_ROLES | {"admin"}

#: The forms of the request page (their fields' names do not overlap).
FORMS = {
    "receipt_form": ReceiptForm,
    "submit_form": SubmitForm,
    "decide_form": DecideForm,
    "disburse_form": DisburseForm,
}

SUCCESS = {
    "approve": _l("Payment approved."),
    "reject": _l("Payment request rejected."),
    "return": _l("Payment request sent back for changes."),
}


# --- helpers --------------------------------------------------------------------------------------------------------


def _actor() -> User:
    return current_user._get_current_object()


def _require(roles: frozenset[str]) -> None:
    if current_user.role not in roles:
        abort(403)


def _load(payment_id: uuid.UUID) -> PaymentRequest:
    """The request, if the user may see it; otherwise 404 (NotFound), which says nothing of its existence."""
    _require(PAYMENT_ROLES)
    return operations.load_payment(payment_id, _actor())


def _load_case(case_id: uuid.UUID) -> Case:
    if not scope.can_view_records(current_user):
        abort(403)
    return case_operations.load_case(case_id, _actor())


def age_text(waited: timedelta) -> str:
    """How long a request has waited, in days and hours ("2 days 5 hours")."""
    hours = int(waited.total_seconds() // 3600)
    if hours < 1:
        return str(_l("less than an hour"))
    days, hours = divmod(hours, 24)
    parts = []
    if days:
        parts.append(ngettext("%(num)d day", "%(num)d days", days))
    if hours:
        parts.append(ngettext("%(num)d hour", "%(num)d hours", hours))
    return " ".join(parts)


def _case_numbers(payments: list[PaymentRequest]) -> dict[uuid.UUID, str]:
    """The case numbers of requests the user may already see (a finance officer sees the number, not the case)."""
    ids = {p.case_id for p in payments}
    if not ids:
        return {}
    return dict(db.session.execute(select(Case.id, Case.case_number).where(Case.id.in_(ids))).all())


def _programmes(payments: list[PaymentRequest]) -> dict[uuid.UUID, Programme]:
    ids = {p.programme_id for p in payments}
    if not ids:
        return {}
    return {p.id: p for p in db.session.scalars(select(Programme).where(Programme.id.in_(ids)))}


def _list_context(payments: list[PaymentRequest]) -> dict:
    """What a table of requests shows beside each row."""
    return {
        "case_numbers": _case_numbers(payments),
        "programmes": _programmes(payments),
        "status_labels": STATUS_LABELS,
        "age_of": lambda payment: age_text(operations.age(payment)),
    }


def _as_uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _edit_refusal(user: User, payment: PaymentRequest):
    """Why ``user`` may not change ``payment`` now, as (message, status); None if they may.

    It decides which buttons and pages to show; update_request, attach and submit enforce the same rule.
    """
    if payment.requested_by_id != user.id:
        return _l("Only the person who requested it may change it."), 403
    if payment.status not in operations.EDITABLE:
        return _l("A submitted request cannot be changed unless it is sent back."), 409
    return None


def _may_edit(user: User, payment: PaymentRequest) -> bool:
    return _edit_refusal(user, payment) is None


def _refused_edit(payment: PaymentRequest, message, status: int):
    """Someone else's request (403: a short page) or one no longer editable (409: the request with the message)."""
    if status == 403:
        return _refusal(message, status, payment=payment)
    return _page(payment, status, refusal=message)


def _may_decide(user: User, payment: PaymentRequest, decisions) -> bool:
    # Shows the decision form; decide() checks the scope, the step's role, the requester and a second approver.
    return (
        payment.status == "submitted"
        and user.role == payment.next_role
        and user.role in DECIDER_ROLES
        and payment.requested_by_id != user.id
        and not any(d.decided_by_id == user.id and d.round == payment.round for d in decisions)
    )


def _active_programmes(case: Case) -> list[Programme]:
    return [p for p in operations.programmes_for(_actor()) if p.active and p.province_code == case.province_code]


# --- a case's requests ----------------------------------------------------------------------------------------------


@bp.get("/cases/<uuid:case_id>/payments")
def case_payments(case_id: uuid.UUID):
    """List a case's payment requests with the totals requested, approved and paid."""
    case = _load_case(case_id)
    actor = _actor()
    payments = operations.for_case(case)
    return render_template(
        "payments/case.html",
        case=case,
        payments=payments,
        totals=operations.case_totals(case),
        may_request=actor.role in REQUESTER_ROLES and case.is_open,
        **_list_context(payments),
    )


def _request_form_page(case: Case, form: PaymentRequestForm, status: int = 200, *, payment=None):
    return render_template("payments/form.html", case=case, form=form, payment=payment), status


@bp.route("/cases/<uuid:case_id>/payments/new", methods=["GET", "POST"])
def new_request(case_id: uuid.UUID):
    """Draft a payment request for a case: what for, how much, from which programme, and who is paid."""
    case = _load_case(case_id)
    actor = _actor()
    _require(REQUESTER_ROLES)
    if not case.is_open:
        return _refusal(_l("This case is closed: it takes no new payment request."), 409, case=case)
    programmes = _active_programmes(case)
    form = PaymentRequestForm(programmes=programmes)
    if request.method == "GET":
        if len(programmes) == 1:  # nothing to choose
            form.programme.data = str(programmes[0].id)
        return _request_form_page(case, form)
    if not form.validate_on_submit():
        abort(400)  # only the CSRF token is checked here; the rules judge the fields
    try:
        payment = operations.create_request(case, actor, form.to_payload())
    except ValidationFailed as exc:
        db.session.rollback()
        form.show_errors(exc.errors)
        return _request_form_page(case, form, exc.status)
    except (Conflict, PermissionDenied) as exc:
        db.session.rollback()
        form.form_errors.append(str(exc.message))
        return _request_form_page(case, form, exc.status)
    db.session.commit()
    flash(_l("Payment request drafted. Attach a receipt or quotation, then submit it."), "success")
    return redirect(url_for("payments.show_request", payment_id=payment.id))


# --- the request page ------------------------------------------------------------------------------------------------


def _page(payment: PaymentRequest, status: int = 200, *, refusal=None, **forms):
    """Render the request page with ``forms`` as submitted and ``refusal`` (a rule's message) shown at the top."""
    actor = _actor()
    case = db.session.get(Case, payment.case_id)
    decisions = operations.decisions_of(payment)
    today = utcnow().astimezone(local_tz()).strftime("%d/%m/%Y")
    context = {
        "payment": payment,
        "case": case,
        "case_link": scope.can_access_commune(actor, case.commune_code),
        "programme": db.session.get(Programme, payment.programme_id),
        "attachments": operations.attachments_of(payment),
        "decisions": decisions,
        "disbursement": operations.disbursement_of(payment),
        "may_edit": _may_edit(actor, payment),
        "may_decide": _may_decide(actor, payment, decisions),
        "may_disburse": payment.status == "approved" and operations.may_disburse(actor, payment),
        "age": age_text(operations.age(payment)) if payment.status == "submitted" else None,
        "status_labels": STATUS_LABELS,
        "decision_labels": DECISION_LABELS,
        "method_labels": METHOD_LABELS,
        "refusal": refusal,
        "failed": next(iter(forms), None),
    }
    for name, form_class in FORMS.items():
        context[name] = forms.get(name) or form_class(formdata=None)
    if "disburse_form" not in forms:
        context["disburse_form"].paid_on.data = today
        context["disburse_form"].method.data = payment.payee_method
    return render_template("payments/show.html", **context), status


def _run(payment: PaymentRequest, form, name: str, action, success, anchor: str | None = None):
    """Run ``action`` (one operation) and commit; on a refusal, show the page again and change nothing (422 with the
    errors next to the fields, 403 or 409 with the rule's message)."""
    if not form.validate_on_submit():
        if form.csrf_token.errors:
            abort(400)
        return _page(payment, 422, **{name: form})
    try:
        action()
    except ValidationFailed as exc:
        db.session.rollback()
        form.show_errors(exc.errors)
        return _page(payment, exc.status, **{name: form})
    except UploadRefused as exc:
        db.session.rollback()
        form.file.errors = [*form.file.errors, str(exc.message)]
        return _page(payment, exc.status, **{name: form})
    except PermissionDenied as exc:
        db.session.rollback()
        return _refusal(exc.message, exc.status, payment=payment)
    except Conflict as exc:
        db.session.rollback()
        return _page(payment, exc.status, refusal=exc.message, **{name: form})
    db.session.commit()
    flash(success, "success")
    return redirect(url_for("payments.show_request", payment_id=payment.id, _anchor=anchor))


@bp.get("/payments/<uuid:payment_id>")
def show_request(payment_id: uuid.UUID):
    """Show a payment request: the case, the amount, the payee, the receipts, the decisions and the payment."""
    return _page(_load(payment_id))


@bp.route("/payments/<uuid:payment_id>/edit", methods=["GET", "POST"])
def edit_request(payment_id: uuid.UUID):
    """Change a draft, or a request sent back for changes (its requester only)."""
    payment = _load(payment_id)
    actor = _actor()
    case = db.session.get(Case, payment.case_id)
    programmes = [p for p in operations.programmes_for(actor) if p.province_code == case.province_code]
    if request.method == "GET":
        refused = _edit_refusal(actor, payment)
        if refused is not None:
            return _refused_edit(payment, *refused)
        return _request_form_page(case, PaymentRequestForm.of(payment, programmes), payment=payment)
    form = PaymentRequestForm(programmes=programmes)
    if not form.validate_on_submit():
        abort(400)
    try:
        operations.update_request(payment, actor, form.to_payload())
    except ValidationFailed as exc:
        db.session.rollback()
        form.show_errors(exc.errors)
        return _request_form_page(case, form, exc.status, payment=payment)
    except (Conflict, PermissionDenied) as exc:
        db.session.rollback()
        return _refused_edit(payment, exc.message, exc.status)
    db.session.commit()
    flash(_l("Changes saved."), "success")
    return redirect(url_for("payments.show_request", payment_id=payment.id))


@bp.post("/payments/<uuid:payment_id>/receipts")
def upload_receipt(payment_id: uuid.UUID):
    """Attach a receipt or quotation to the request (encrypted), while it can still be changed."""
    payment = _load(payment_id)
    refused = _edit_refusal(_actor(), payment)
    if refused is not None:  # before the file is read: nobody else's upload is looked at
        return _refused_edit(payment, *refused)
    form = ReceiptForm()

    def action():
        upload = form.file.data
        operations.attach(payment, _actor(), upload.stream, upload.filename)

    return _run(payment, form, "receipt_form", action, _l("Receipt attached."), "receipts")


@bp.get("/payments/<uuid:payment_id>/receipts/<uuid:file_id>")
def download_receipt(payment_id: uuid.UUID, file_id: uuid.UUID):
    """Send a receipt of the request as a download; the download is recorded before the first byte leaves."""
    payment = _load(payment_id)
    stored = db.session.get(StoredFile, file_id)
    if stored is None or stored.owner_type != "payment" or stored.owner_id != str(payment.id) or stored.deleted_at:
        abort(404)
    return downloads.send_stored(stored, _actor())


@bp.post("/payments/<uuid:payment_id>/submit")
def submit_request(payment_id: uuid.UUID):
    """Send the request for decision (it needs a receipt; the approval policy says who decides)."""
    payment = _load(payment_id)
    form = SubmitForm()
    return _run(
        payment,
        form,
        "submit_form",
        lambda: operations.submit(payment, _actor()),
        _l("Payment request submitted for a decision."),
    )


@bp.post("/payments/<uuid:payment_id>/decision")
@requires_fresh_second_factor
def decide(payment_id: uuid.UUID):
    """Record the approver's decision on a payment request: approve, reject or send back (with a reason)."""
    _require(DECIDER_ROLES)
    payment = _load(payment_id)
    form = DecideForm()
    decision = form.decision.data or ""
    return _run(
        payment,
        form,
        "decide_form",
        lambda: operations.decide(
            payment, _actor(), decision, reason=form.reason.data or None, fresh_second_factor=True
        ),
        SUCCESS.get(decision, _l("Decision recorded.")),
        "decisions",
    )


@bp.post("/payments/<uuid:payment_id>/disbursement")
def record_payment(payment_id: uuid.UUID):
    """Record that an approved request was paid: the date, the method and the reference."""
    payment = _load(payment_id)
    form = DisburseForm()
    return _run(
        payment,
        form,
        "disburse_form",
        lambda: operations.disburse(payment, _actor(), form.data),
        _l("Payment recorded."),
        "disbursement",
    )


# --- lists ---------------------------------------------------------------------------------------------------------


@bp.get("/payments/")
def list_requests():
    """List the requests the user may see (a social worker: their own), newest first, with their status."""
    _require(PAYMENT_ROLES)
    actor = _actor()
    programmes = operations.programmes_for(actor)
    form = ListFilterForm(formdata=request.args, programmes=programmes)
    status = form.status.data if form.status.data in STATUS_LABELS else None
    programme_id = _as_uuid(form.programme.data) if form.programme.data else None
    payments = operations.requests_of(actor, status=status, programme_id=programme_id)
    return render_template("payments/list.html", form=form, payments=payments, **_list_context(payments))


@bp.get("/payments/inbox")
def inbox():
    """List the requests awaiting the user's decision, oldest first, with how long each has waited."""
    _require(DECIDER_ROLES)
    payments = operations.awaiting_decision(_actor())
    return render_template("payments/inbox.html", payments=payments, **_list_context(payments))


@bp.get("/payments/to-pay")
def to_pay():
    """List the approved requests waiting to be paid, oldest approval first."""
    _require(DISBURSER_ROLES)
    payments = operations.to_disburse(_actor())
    return render_template("payments/to_pay.html", payments=payments, **_list_context(payments))


# --- the month's XLSX ------------------------------------------------------------------------------------------------


def _send_export(year: int, month: int):
    content = operations.monthly_export(_actor(), year, month)
    db.session.commit()  # the export's audit event, before the file leaves
    response = Response(content, mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    response.headers.set("Content-Disposition", "attachment", filename=f"chi-tra-{year:04d}-{month:02d}.xlsx")
    response.headers["Cache-Control"] = "no-store"
    return response


#: The finance officer's file names payees and their bank accounts: identifying data, exported only after a
#: second-factor check from the last CASEWORK_REAUTH_MINUTES (README, "Configuration").
_send_export_with_payees = requires_fresh_second_factor(_send_export)


@bp.get("/payments/export")
def export():
    """Download the month's approved and paid requests as XLSX (audited); without a month, pick one."""
    _require(frozenset(operations.EXPORT_ROLES))
    actor = _actor()
    form = ExportForm(formdata=request.args)
    if "month" not in request.args:
        form.month.data = utcnow().astimezone(local_tz()).strftime("%Y-%m")
        return render_template("payments/export.html", form=form)
    chosen = form.year_month()
    if chosen is None:
        form.month.errors = [_l("Choose a month.")]
        return render_template("payments/export.html", form=form), 422
    try:
        if actor.role == FINANCE_OFFICER:
            return _send_export_with_payees(*chosen)
        return _send_export(*chosen)
    except ValidationFailed as exc:
        db.session.rollback()
        form.month.errors = [str(m) for messages in exc.errors.values() for m in messages]
        return render_template("payments/export.html", form=form), exc.status


# --- programmes ----------------------------------------------------------------------------------------------------


@bp.get("/programmes")
def list_programmes():
    """List the province's programmes with their budget, what is committed and paid, and what is left."""
    _require(PROGRAMME_ROLES)
    actor = _actor()
    return render_template(
        "payments/programmes.html",
        programmes=operations.programmes_for(actor),
        may_manage=operations.may_manage_programmes(actor),
    )


@bp.route("/programmes/new", methods=["GET", "POST"])
def new_programme():
    """Create a funding programme of the province: its name, year, budget, and what and whom it pays for."""
    actor = _actor()
    if not operations.may_manage_programmes(actor):
        abort(403)
    form = ProgrammeForm()
    if request.method == "GET":
        form.year.data = str(utcnow().astimezone(local_tz()).year)
        return render_template("payments/programme_form.html", form=form)
    if not form.validate_on_submit():
        abort(400)
    try:
        programme = operations.create_programme(actor, form.to_payload())
    except ValidationFailed as exc:
        db.session.rollback()
        form.show_errors(exc.errors)
        return render_template("payments/programme_form.html", form=form), exc.status
    except (Conflict, PermissionDenied) as exc:
        db.session.rollback()
        form.form_errors.append(str(exc.message))
        return render_template("payments/programme_form.html", form=form), exc.status
    db.session.commit()
    flash(_l("Programme created."), "success")
    return redirect(url_for("payments.show_programme", programme_id=programme.id))


@bp.get("/programmes/<uuid:programme_id>")
def show_programme(programme_id: uuid.UUID):
    """Show a programme's ledger: its budget, committed, paid and available totals, and its requests."""
    _require(PROGRAMME_ROLES)
    programme = operations.load_programme(programme_id, _actor())
    ledger = operations.programme_ledger(programme, _actor())
    return render_template(
        "payments/programme.html",
        programme=programme,
        ledger=ledger,
        group_label=_group_label,
        **_list_context(ledger.rows),
    )


def _group_label(code: str) -> str:
    """A programme's group: a group of Art. 10 or a risk (the two lists of ``codes.toml`` it draws from)."""
    if codes.is_code("special_circumstances", code):
        return codes.label("special_circumstances", code)
    return codes.label("at_risk", code)


# --- refusals -------------------------------------------------------------------------------------------------------


def _refusal(message, status: int, *, case: Case | None = None, payment: PaymentRequest | None = None):
    """A short page with the rule's message and the way back; it shows nothing of the request or the case."""
    context = {"status": status, "message": message, "case": case, "payment": payment}
    return render_template("payments/refused.html", **context), status


@bp.errorhandler(DomainError)
def _domain_error(exc: DomainError):
    """A rule's refusal outside a form (404 for what the user may not see), with its message."""
    db.session.rollback()
    return _refusal(exc.message, exc.status)
