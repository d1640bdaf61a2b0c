"""``/api/v1/programmes`` and ``/api/v1/payments``: funding programmes, payment requests for a case, their receipts,
the approvers' decisions and the disbursement.

The rules are those of :mod:`casework.payments.operations`, the same the payment pages use; this module only turns
JSON into calls and answers. A request outside the caller's scope answers 404 like one that does not exist; the roles
that have no part in payments (committee members, auditors, and administrators but for programmes) get 403 on every
endpoint before anything is looked up. A decision needs a token obtained with the second factor within
``CASEWORK_REAUTH_MINUTES``.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from flask import jsonify, request
from flask_login import current_user

from casework.api import ApiError, bp
from casework.api.cases import _iso, _require_record_role, _user_ref
from casework.api.views import json_body
from casework.auth.roles import ADMIN, FINANCE_OFFICER, PROVINCIAL_OFFICER, SOCIAL_WORKER, SUPERVISOR
from casework.auth.second_factor import require_fresh_second_factor_api
from casework.cases import operations as case_operations
from casework.errors import Problems
from casework.extensions import db
from casework.payments import operations
from casework.payments.models import STATUSES, PaymentRequest, Programme

#: The roles that request, decide, pay or follow payment requests.
PAYMENT_ROLES = frozenset({SOCIAL_WORKER, SUPERVISOR, PROVINCIAL_OFFICER, FINANCE_OFFICER})
#: The roles that see programmes (an administrator creates them too).
PROGRAMME_ROLES = PAYMENT_ROLES | {ADMIN}
#: Money fields, which JSON sends as integers: the "1.250.000" a form may write is not accepted here.
MONEY_FIELDS = ("amount_vnd", "budget_vnd")


def _require_role(roles: frozenset[str]) -> None:
    """Refuse, before anything is looked up, the roles that have no part in payments."""
    if current_user.role not in roles:
        raise ApiError(403, "forbidden", "Your role has no part in support payments.")


def _load(payment_id: str) -> PaymentRequest:
    """The request, for a caller whose role deals with payments: 403 for the other roles, 404 outside the scope."""
    _require_role(PAYMENT_ROLES)
    return operations.load_payment(payment_id, current_user)


def _require_integers(data: dict[str, Any]) -> None:
    """Refuse money sent as text or as a fraction: the API takes a JSON integer of whole đồng."""
    problems = Problems()
    for name in MONEY_FIELDS:
        value = data.get(name)
        if isinstance(value, str):
            problems.add(name, "not_whole_vnd", "Send a JSON integer of whole đồng (e.g. 1250000), not text.")
    problems.raise_if_any()


def _day(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


# --- JSON of the records ---------------------------------------------------------------------------------------------


def _programme_json(programme: Programme) -> dict[str, Any]:
    return {
        "id": str(programme.id),
        "name": programme.name,
        "province": programme.province_code,
        "year": programme.year,
        "budget_vnd": programme.budget_vnd,
        "committed_vnd": programme.committed_vnd,
        "paid_vnd": programme.paid_vnd,
        "available_vnd": programme.available_vnd,
        "purposes": list(programme.purposes or []),
        "groups": list(programme.groups or []),
        "active": programme.active,
        "created_at": _iso(programme.created_at),
    }


def _payment_json(payment: PaymentRequest) -> dict[str, Any]:
    """The request with its decisions, disbursement and receipts; the payee for those who may load it."""
    programme = db.session.get(Programme, payment.programme_id)
    paid = operations.disbursement_of(payment)
    body = {
        "id": str(payment.id),
        "case_id": str(payment.case_id),
        "commune_code": payment.commune_code,
        "programme": {"id": str(programme.id), "name": programme.name} if programme is not None else None,
        "purpose": payment.purpose,
        "amount_vnd": payment.amount_vnd,
        "status": payment.status,
        "round": payment.round,
        "approver_roles": list(payment.approver_roles or []),
        "approvals": payment.approvals,
        "next_role": payment.next_role,
        "requested_by": _user_ref(payment.requested_by_id),
        "created_at": _iso(payment.created_at),
        "submitted_at": _iso(payment.submitted_at),
        "decided_at": _iso(payment.decided_at),
        "paid_at": _iso(payment.paid_at),
        "decisions": [
            {
                "round": d.round,
                "step": d.step,
                "role": d.role,
                "decision": d.decision,
                "reason": d.reason,
                "decided_by": _user_ref(d.decided_by_id),
                "decided_at": _iso(d.decided_at),
            }
            for d in operations.decisions_of(payment)
        ],
        "disbursement": (
            {"paid_on": _day(paid.paid_on), "method": paid.method, "reference": paid.reference}
            if paid is not None
            else None
        ),
        "attachments": [{"id": str(f.id), "name": f.original_name} for f in operations.attachments_of(payment)],
    }
    if operations.can_access(current_user, payment):  # load_payment already refused everyone else
        body["payee"] = {
            "name": payment.payee_name,
            "relation": payment.payee_relation,
            "method": payment.payee_method,
            "account": payment.payee_account,
        }
        body["description"] = payment.description
    return body


# --- programmes ------------------------------------------------------------------------------------------------------


@bp.get("/programmes")
def list_programmes():
    """List the programmes of the caller's province with their budget, committed, paid and available amounts."""
    _require_role(PROGRAMME_ROLES)
    year = request.args.get("year", "").strip()
    if year and not (year.isdigit() and 2000 <= int(year) <= 2100):
        problems = Problems()
        problems.add("year", "invalid_year", "Give a year from 2000 to 2100.")
        problems.raise_if_any()
    found = operations.programmes_for(current_user, year=int(year) if year else None)
    return jsonify(items=[_programme_json(p) for p in found])


@bp.post("/programmes")
def create_programme():
    """Create a funding programme's budget for a province and year (a provincial officer or an administrator)."""
    _require_role(PROGRAMME_ROLES)
    data = json_body()
    _require_integers(data)
    programme = operations.create_programme(current_user, data)
    body = _programme_json(programme)
    db.session.commit()
    return jsonify(body), 201


# --- requests --------------------------------------------------------------------------------------------------------


@bp.post("/cases/<case_id>/payments")
def create_payment(case_id: str):
    """Draft a payment request for a case (its social worker or supervisor); it is sent with /submit."""
    _require_record_role()
    case = case_operations.load_case(case_id, current_user)
    data = json_body()
    _require_integers(data)
    payment = operations.create_request(case, current_user, data)
    body = _payment_json(payment)
    db.session.commit()
    return jsonify(body), 201


@bp.get("/payments")
def list_payments():
    """List the payment requests the caller may see, newest first, by status and programme."""
    _require_role(PAYMENT_ROLES)
    problems = Problems()
    status = request.args.get("status", "").strip() or None
    if status is not None and status not in STATUSES:
        problems.add("status", "invalid_status", f"Give one of: {', '.join(STATUSES)}.")
    programme_id = None
    raw = request.args.get("programme", "").strip()
    if raw:
        try:
            programme_id = uuid.UUID(raw)
        except ValueError:
            problems.add("programme", "invalid_id", "Give a programme's id.")
    problems.raise_if_any()
    found = operations.requests_of(current_user, status=status, programme_id=programme_id)
    return jsonify(items=[_payment_json(p) for p in found])


@bp.get("/payments/<payment_id>")
def show_payment(payment_id: str):
    """Show a payment request with its decisions, disbursement and receipts."""
    payment = _load(payment_id)
    return jsonify(_payment_json(payment))


@bp.put("/payments/<payment_id>")
def update_payment(payment_id: str):
    """Rewrite a draft, or a request sent back for changes (its requester)."""
    payment = _load(payment_id)
    data = json_body()
    _require_integers(data)
    operations.update_request(payment, current_user, data)
    body = _payment_json(payment)
    db.session.commit()
    return jsonify(body)


@bp.post("/payments/<payment_id>/attachments")
def add_attachment(payment_id: str):
    """Attach a receipt or quotation (multipart, the file in the field ``file``); it is stored encrypted."""
    payment = _load(payment_id)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        problems = Problems()
        problems.add("file", "required", "Send the file as multipart/form-data in the field 'file'.")
        problems.raise_if_any()
    # A refused upload (UploadRefused: 413, 422) stores nothing; the error handler rolls back and answers.
    stored = operations.attach(payment, current_user, upload.stream, upload.filename)
    body = {"id": str(stored.id), "name": stored.original_name, "size": stored.size}
    db.session.commit()
    return jsonify(body), 201


@bp.post("/payments/<payment_id>/submit")
def submit_payment(payment_id: str):
    """Send the request for decision; the approval policy fixes who decides."""
    payment = _load(payment_id)
    operations.submit(payment, current_user)
    body = _payment_json(payment)
    db.session.commit()
    return jsonify(body)


@bp.post("/payments/<payment_id>/decision")
def decide_payment(payment_id: str):
    """Approve, reject or send back the step of the request awaiting the caller (a fresh second factor)."""
    _require_role(PAYMENT_ROLES)
    require_fresh_second_factor_api()
    payment = operations.load_payment(payment_id, current_user)
    data = json_body()
    operations.decide(payment, current_user, data.get("decision"), reason=data.get("reason"), fresh_second_factor=True)
    body = _payment_json(payment)
    db.session.commit()
    return jsonify(body)


@bp.post("/payments/<payment_id>/disbursement")
def record_disbursement(payment_id: str):
    """Record that an approved request was paid: date, method and reference (once)."""
    payment = _load(payment_id)
    operations.disburse(payment, current_user, json_body())
    body = _payment_json(payment)
    db.session.commit()
    return jsonify(body), 201
