"""The rules of support payments: programmes, requests, the approval policy, decisions and disbursement.

Exactly once, and never over budget:

- a decision locks its request's row (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite lets one writer at a time)
  and is stored under a unique (request, submission round, step), so two approvers at the same moment give one
  decision and one "already decided";
- the final approval commits the amount with one conditional ``UPDATE programmes SET committed_vnd = committed_vnd
  + :amount WHERE committed_vnd + paid_vnd + :amount <= budget_vnd``; when no row matches, the budget would be
  overdrawn and the approval is refused. A check constraint on the table is the last line.

Operations take the acting user and ``flush()``; the door that called them commits. Decisions need a second-factor
check from the last ``CASEWORK_REAUTH_MINUTES``: the door says whether it saw one (``fresh_second_factor``).
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from casework import audit, checks, codes, scope
from casework.auth.models import User
from casework.auth.roles import ADMIN, FINANCE_OFFICER, PROVINCIAL_OFFICER, SOCIAL_WORKER, SUPERVISOR
from casework.cases.models import Case
from casework.dbtypes import utcnow
from casework.errors import Conflict, NotFound, PermissionDenied, Problems
from casework.extensions import db
from casework.i18n import local_tz
from casework.locations.models import Commune
from casework.payments.models import (
    DECISIONS,
    PAYEE_METHODS,
    ApprovalBand,
    Disbursement,
    PaymentDecision,
    PaymentRequest,
    Programme,
)
from casework.support import operations as support

MAX_BUDGET_VND = 10**15
#: The default approval policy, in force after ``casework init`` (migration 0008 writes it): up to and including
#: 5,000,000 ₫ a supervisor of the case's commune; above that a provincial officer; from 20,000,000 ₫ a
#: supervisor and then a provincial officer.
DEFAULT_BANDS = (
    (1, 5_000_001, [SUPERVISOR]),
    (5_000_001, 20_000_000, [PROVINCIAL_OFFICER]),
    (20_000_000, None, [SUPERVISOR, PROVINCIAL_OFFICER]),
)
EDITABLE = ("draft", "returned")
STATUS_LABELS = {
    "draft": _l("Draft"),
    "submitted": _l("Awaiting a decision"),
    "returned": _l("Sent back for changes"),
    "approved": _l("Approved, to be paid"),
    "rejected": _l("Rejected"),
    "paid": _l("Paid"),
}
METHOD_LABELS = {"bank": _l("Bank transfer"), "cash": _l("Cash")}


# --- who may see and do what ------------------------------------------------------------------------------------


def _province_of(commune_code: str) -> str | None:
    return db.session.scalar(select(Commune.province_code).where(Commune.code == commune_code))


def can_access(user: User, payment: PaymentRequest) -> bool:
    """The case's commune workers and supervisors, the province's officers and finance officers."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.active:
        return False
    if user.role in (SOCIAL_WORKER, SUPERVISOR):
        return payment.commune_code in user.commune_codes
    if user.role in (PROVINCIAL_OFFICER, FINANCE_OFFICER):
        return payment.province_code == user.province_code
    return False


def payments_condition(user: User):
    """The SQL condition keeping the payment requests ``user`` may see."""
    if user.role in (SOCIAL_WORKER, SUPERVISOR):
        return PaymentRequest.commune_code.in_(user.commune_codes or ["-"])
    if user.role in (PROVINCIAL_OFFICER, FINANCE_OFFICER):
        return PaymentRequest.province_code == user.province_code
    return PaymentRequest.id.is_(None)  # nothing


def load_payment(payment_id: uuid.UUID | str, actor: User) -> PaymentRequest:
    """The request, if ``actor`` may see it; otherwise NotFound, which says nothing of its existence."""
    try:
        uid = uuid.UUID(str(payment_id))
    except ValueError:
        raise NotFound(_l("No such payment request.")) from None
    payment = db.session.get(PaymentRequest, uid)
    if payment is None or not can_access(actor, payment):
        raise NotFound(_l("No such payment request."))
    return payment


def may_manage_programmes(user: User, province_code: str | None = None) -> bool:
    return user.role in (PROVINCIAL_OFFICER, ADMIN) and (province_code is None or province_code == user.province_code)


def may_disburse(user: User, payment: PaymentRequest) -> bool:
    """A finance officer of the province or a supervisor of the commune, never the one who requested it."""
    if payment.requested_by_id == user.id:
        return False
    if user.role == FINANCE_OFFICER:
        return payment.province_code == user.province_code
    return user.role == SUPERVISOR and payment.commune_code in user.commune_codes


# --- money --------------------------------------------------------------------------------------------------------


def amount(value: Any, problems: Problems, name: str = "amount_vnd", *, ceiling: int | None = None) -> int | None:
    """A whole, positive number of VND under the ceiling. JSON sends an integer; a form may write "1.250.000"."""
    ceiling = ceiling or current_app.config["CASEWORK_PAYMENT_CEILING_VND"]
    if isinstance(value, str) and value.strip():
        text = value.strip().replace(".", "").replace(" ", "").replace("₫", "")
        if not text.isdigit():
            problems.add(name, "not_whole_vnd", _l("Write the amount in whole đồng, for example 1.250.000."))
            return None
        value = int(text)
    if value is None or value == "":
        problems.add(name, "required", _l("This field is required."))
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        problems.add(name, "not_whole_vnd", _l("Write the amount in whole đồng, for example 1.250.000."))
        return None
    if value <= 0:
        problems.add(name, "not_positive", _l("The amount must be more than 0 đồng."))
        return None
    if value > ceiling:
        problems.add(
            name, "over_ceiling", _l("At most %(ceiling)s đồng per request.", ceiling=f"{ceiling:,}".replace(",", "."))
        )
        return None
    return value


# --- programmes ---------------------------------------------------------------------------------------------------


#: The code lists a programme's target groups come from.
GROUP_LISTS = ("special_circumstances", "at_risk")


def create_programme(actor: User, data: Mapping[str, Any]) -> Programme:
    """A funding programme's budget for a province and year (provincial officers and admins of the province)."""
    problems = Problems()
    name = checks.text(data.get("name"), problems, "name", required=True, limit=200)
    province = data.get("province") or actor.province_code
    if not isinstance(province, str) or not may_manage_programmes(actor, province):
        if actor.role in (PROVINCIAL_OFFICER, ADMIN):
            problems.add("province", "out_of_scope", _l("You manage the programmes of your own province only."))
        else:
            raise PermissionDenied(_l("Only a provincial officer or an administrator creates programmes."))
    year = checks.whole(data.get("year"), problems, "year", low=2000, high=2100, required=True)
    budget = checks.whole(data.get("budget_vnd"), problems, "budget_vnd", low=1, high=MAX_BUDGET_VND, required=True)
    purposes = checks.codes(data.get("purposes"), "payment_purposes", problems, "purposes")
    groups_raw = data.get("groups")
    if groups_raw in (None, ""):  # as checks.codes reads the purposes: nothing chosen (false is not a list)
        groups_raw = []
    groups = []
    if not isinstance(groups_raw, list | tuple):
        problems.add("groups", "not_a_list", _l("Choose from the list."))
    else:
        for value in groups_raw:
            # A list or an object in JSON is not a code (and cannot be looked up: it is unhashable).
            known = isinstance(value, str) and any(codes.is_code(n, value) for n in GROUP_LISTS)
            if not known:
                problems.add("groups", "invalid_code", _l("Unknown value: %(value)s.", value=str(value)[:40]))
            elif value not in groups:
                groups.append(value)
    problems.raise_if_any()
    existing = db.session.scalar(
        select(Programme.id).where(Programme.province_code == province, Programme.year == year, Programme.name == name)
    )
    if existing is not None:
        raise Conflict(_l("This province already has a programme of that name for that year."), code="duplicate")
    programme = Programme(
        name=name,
        province_code=province,
        year=year,
        budget_vnd=budget,
        committed_vnd=0,
        paid_vnd=0,
        purposes=purposes,
        groups=groups,
        created_by_id=actor.id,
    )
    db.session.add(programme)
    db.session.flush()
    audit.record(
        "payments.programme_created",
        object_type="programme",
        object_id=programme.id,
        actor=actor,
        details={"province": province, "year": year, "budget_vnd": budget},
    )
    return programme


def programmes_for(user: User, *, year: int | None = None) -> list[Programme]:
    """The programmes of the user's province (none for roles without one), newest year first."""
    if not user.province_code or user.role in ("committee_member", "auditor"):
        return []
    stmt = select(Programme).where(Programme.province_code == user.province_code)
    if year is not None:
        stmt = stmt.where(Programme.year == year)
    return list(db.session.scalars(stmt.order_by(Programme.year.desc(), Programme.name)))


def load_programme(programme_id: uuid.UUID | str, actor: User) -> Programme:
    try:
        uid = uuid.UUID(str(programme_id))
    except ValueError:
        raise NotFound(_l("No such programme.")) from None
    programme = db.session.get(Programme, uid)
    if (
        programme is None
        or programme.province_code != actor.province_code
        or actor.role
        not in (
            SOCIAL_WORKER,
            SUPERVISOR,
            PROVINCIAL_OFFICER,
            FINANCE_OFFICER,
            ADMIN,
        )
    ):
        raise NotFound(_l("No such programme."))
    return programme


# --- the approval policy -----------------------------------------------------------------------------------------


def bands_for(province_code: str, programme_id: uuid.UUID | None) -> list[ApprovalBand]:
    """The bands that apply: the programme's own, else the province's, else the default ones."""
    for province, programme in ((province_code, programme_id), (None, programme_id), (province_code, None)):
        if programme is None and province is None:
            continue
        stmt = select(ApprovalBand).where(
            ApprovalBand.province_code.is_(None) if province is None else ApprovalBand.province_code == province,
            ApprovalBand.programme_id.is_(None) if programme is None else ApprovalBand.programme_id == programme,
        )
        found = list(db.session.scalars(stmt.order_by(ApprovalBand.min_vnd)))
        if found:
            return found
    return list(
        db.session.scalars(
            select(ApprovalBand)
            .where(ApprovalBand.province_code.is_(None), ApprovalBand.programme_id.is_(None))
            .order_by(ApprovalBand.min_vnd)
        )
    )


def approver_roles(province_code: str, programme_id: uuid.UUID | None, amount_vnd: int) -> list[str]:
    """The roles that must approve ``amount_vnd``, in order.

    :raises Conflict: no band of the policy covers the amount (the policy needs fixing).
    """
    for band in bands_for(province_code, programme_id):
        if band.min_vnd <= amount_vnd and (band.max_vnd is None or amount_vnd < band.max_vnd):
            return list(band.approver_roles)
    raise Conflict(_l("No approval rule covers this amount; ask an administrator."), code="no_approval_rule")


# --- requests -----------------------------------------------------------------------------------------------------


def _payee(data: Mapping[str, Any], problems: Problems) -> dict[str, Any]:
    payee = data.get("payee")
    if payee is None and any(k in data for k in ("payee_name", "payee_method")):
        payee = {
            "name": data.get("payee_name"),
            "relation": data.get("payee_relation"),
            "method": data.get("payee_method"),
            "account": data.get("payee_account"),
        }
    if not isinstance(payee, Mapping):
        problems.add("payee", "required", _l("Say who is paid: name, relation to the child, bank account or cash."))
        return {}
    result = {
        "name": checks.text(payee.get("name"), problems, "payee.name", required=True, limit=checks.MAX_NAME),
        "relation": checks.text(payee.get("relation"), problems, "payee.relation", required=True, limit=100),
        "method": checks.choice(payee.get("method"), PAYEE_METHODS, problems, "payee.method"),
        "account": checks.text(payee.get("account"), problems, "payee.account", limit=100),
    }
    if result["method"] == "bank" and not result["account"]:
        problems.add("payee.account", "required", _l("Give the bank and the account number."))
    return result


def _programme_for(case: Case, programme_id: Any, purpose: str | None, problems: Problems) -> Programme | None:
    try:
        programme = db.session.get(Programme, uuid.UUID(str(programme_id))) if programme_id else None
    except ValueError:
        programme = None
    if programme is None or programme.province_code != case.province_code:
        problems.add("programme", "unknown_programme", _l("Choose a programme of the case's province."))
        return None
    if not programme.active:
        problems.add("programme", "inactive", _l("This programme is closed."))
    if purpose and programme.purposes and purpose not in programme.purposes:
        problems.add("purpose", "not_in_programme", _l("This programme does not pay for this purpose."))
    if programme.groups:
        case_codes = {c.code for c in case.codes}
        if not case_codes & set(programme.groups):
            problems.add("programme", "not_for_this_child", _l("This programme is for other groups of children."))
    return programme


def _check_request(case: Case, data: Mapping[str, Any]) -> tuple[dict[str, Any], Programme | None]:
    problems = Problems()
    purpose = checks.code(data.get("purpose"), "payment_purposes", problems, "purpose", required=True)
    value = amount(data.get("amount_vnd"), problems)
    description = checks.text(data.get("description"), problems, "description", required=True)
    payee = _payee(data, problems)
    programme = _programme_for(case, data.get("programme"), purpose, problems)
    problems.raise_if_any()
    return {"purpose": purpose, "amount_vnd": value, "description": description, "payee": payee}, programme


def _fill(payment: PaymentRequest, checked: dict[str, Any], programme: Programme) -> None:
    payment.programme_id = programme.id
    payment.purpose = checked["purpose"]
    payment.amount_vnd = checked["amount_vnd"]
    payment.payee_method = checked["payee"]["method"]
    payment.payee_name = checked["payee"]["name"]
    payment.payee_relation = checked["payee"]["relation"]
    payment.payee_account = checked["payee"]["account"]
    payment.description = checked["description"]


def create_request(case: Case, actor: User, data: Mapping[str, Any]) -> PaymentRequest:
    """A draft request for ``case`` by a social worker or supervisor of its commune; a closed case takes none."""
    if not scope.can_access_commune(actor, case.commune_code):
        raise NotFound(_l("No such case."))
    if actor.role not in (SOCIAL_WORKER, SUPERVISOR):
        raise PermissionDenied(_l("Payments are requested by the case's social worker or supervisor."))
    if not case.is_open:
        raise Conflict(_l("This case is closed: it takes no new payment request."), code="case_closed")
    checked, programme = _check_request(case, data)
    payment = PaymentRequest(
        case_id=case.id,
        commune_code=case.commune_code,
        province_code=case.province_code,
        requested_by_id=actor.id,
        status="draft",
        approver_roles=[],
        approvals=0,
        round=0,
    )
    db.session.add(payment)
    with db.session.no_autoflush:
        _fill(payment, checked, programme)
    db.session.flush()
    audit.record(
        "payments.requested",
        object_type="payment",
        object_id=payment.id,
        actor=actor,
        details={"case": str(case.id), "purpose": payment.purpose, "amount_vnd": payment.amount_vnd},
    )
    return payment


def _require_requester_edit(payment: PaymentRequest, actor: User) -> None:
    if payment.requested_by_id != actor.id:
        raise PermissionDenied(_l("Only the person who requested it may change it."), code="not_requester")
    if payment.status not in EDITABLE:
        raise Conflict(_l("A submitted request cannot be changed unless it is sent back."), code="not_editable")


def update_request(payment: PaymentRequest, actor: User, data: Mapping[str, Any]) -> PaymentRequest:
    """Change a draft (or a request sent back for changes)."""
    _require_requester_edit(payment, actor)
    case = db.session.get(Case, payment.case_id)
    checked, programme = _check_request(case, data)
    with db.session.no_autoflush:
        _fill(payment, checked, programme)
    db.session.flush()
    audit.record("payments.changed", object_type="payment", object_id=payment.id, actor=actor)
    return payment


def attach(payment: PaymentRequest, actor: User, stream, filename: str):
    """Store a receipt or quotation of the request (encrypted), while it can still be changed."""
    from casework.security import files

    _require_requester_edit(payment, actor)
    return files.save_upload(stream, filename, actor=actor, owner_type="payment", owner_id=str(payment.id))


def attachments_of(payment: PaymentRequest):
    from casework.security.files import StoredFile

    return list(
        db.session.scalars(
            select(StoredFile)
            .where(
                StoredFile.owner_type == "payment",
                StoredFile.owner_id == str(payment.id),
                StoredFile.deleted_at.is_(None),
            )
            .order_by(StoredFile.created_at)
        )
    )


def _plan_approved(case: Case) -> bool:
    plan = support.current_plan(case)
    if plan is not None and plan.status == "approved":
        return True
    # A plan approved earlier still stands while a new cycle is drafted.
    return any(p.status in ("approved", "ended") and p.decided_at for p in support.plans_of(case))


def _check_case_allows(case: Case, purpose: str) -> None:
    if not case.is_open:
        raise Conflict(_l("This case is closed: it takes no new payment request."), code="case_closed")
    if purpose != "emergency" and not _plan_approved(case):
        raise Conflict(
            _l("A payment needs an approved support plan, except emergency support."), code="plan_not_approved"
        )


def submit(payment: PaymentRequest, actor: User) -> PaymentRequest:
    """Send the request for decision: it needs a receipt or quotation; the policy fixes who decides."""
    _require_requester_edit(payment, actor)
    case = db.session.get(Case, payment.case_id)
    _check_case_allows(case, payment.purpose)
    if not attachments_of(payment):
        problems = Problems()
        problems.add("attachments", "receipt_required", _l("Attach at least one receipt or quotation."))
        problems.raise_if_any()
    roles = approver_roles(payment.province_code, payment.programme_id, payment.amount_vnd)
    payment.approver_roles = roles
    payment.approvals = 0
    payment.next_role = roles[0]
    payment.round = (payment.round or 0) + 1
    payment.status = "submitted"
    payment.submitted_at = utcnow()
    db.session.flush()
    audit.record(
        "payments.submitted",
        object_type="payment",
        object_id=payment.id,
        actor=actor,
        details={"round": payment.round, "approvers": roles, "amount_vnd": payment.amount_vnd},
    )
    return payment


def _in_approver_scope(user: User, payment: PaymentRequest) -> bool:
    if user.role == SUPERVISOR:
        return payment.commune_code in user.commune_codes
    if user.role == PROVINCIAL_OFFICER:
        return payment.province_code == user.province_code
    return False


def decide(
    payment: PaymentRequest,
    actor: User,
    decision: Any,
    *,
    reason: str | None = None,
    fresh_second_factor: bool,
) -> PaymentRequest:
    """Approve, reject (with a reason) or send back (with a reason) the step of ``payment`` awaiting ``actor``.

    :raises PermissionDenied: the requester, someone outside the scope or of another role, someone who already
        approved this submission, or no fresh second factor.
    :raises Conflict: ``already_decided`` (the step was decided, possibly a moment ago by someone else),
        ``budget_exceeded``, ``plan_not_approved``, ``case_closed``.
    """
    problems = Problems()
    decision = checks.choice(decision, DECISIONS, problems, "decision")
    reason = checks.text(reason, problems, "reason")
    if decision in ("reject", "return") and not reason:
        problems.add("reason", "required", _l("Say why."))
    problems.raise_if_any()
    if not fresh_second_factor:
        raise PermissionDenied(_l("Confirm it is you with your second factor first."), code="reauth_required")
    if payment.requested_by_id == actor.id:
        raise PermissionDenied(_l("You cannot decide on your own request."), code="own_request")
    if not _in_approver_scope(actor, payment):
        raise PermissionDenied(_l("This request is not yours to decide."), code="not_an_approver")
    # One decision at a time on this request: wait for any other, then look again.
    db.session.refresh(payment, with_for_update=True)
    if payment.status != "submitted":
        raise Conflict(_l("This request has already been decided."), code="already_decided")
    if actor.role != payment.next_role:
        raise PermissionDenied(
            _l("This step awaits a %(role)s.", role=_role_label(payment.next_role)), code="not_an_approver"
        )
    earlier = db.session.scalar(
        select(PaymentDecision.id).where(
            PaymentDecision.payment_id == payment.id,
            PaymentDecision.round == payment.round,
            PaymentDecision.decided_by_id == actor.id,
        )
    )
    if earlier is not None:
        raise PermissionDenied(_l("A second approver must be someone else."), code="same_approver")
    case = db.session.get(Case, payment.case_id)
    now = utcnow()
    step = payment.approvals
    record = PaymentDecision(
        payment_id=payment.id,
        round=payment.round,
        step=step,
        role=actor.role,
        decision=decision,
        decided_by_id=actor.id,
        decided_at=now,
    )
    db.session.add(record)
    record.reason = reason
    try:
        db.session.flush()
    except IntegrityError:
        # Another approver's decision of this step got in first (the caller rolls back this transaction).
        raise Conflict(_l("This request has already been decided."), code="already_decided") from None
    if decision == "approve":
        if step + 1 >= len(payment.approver_roles):
            _check_case_allows(case, payment.purpose)
            _commit_budget(payment)
            payment.status = "approved"
            payment.next_role = None
            payment.decided_at = now
        else:
            payment.next_role = payment.approver_roles[step + 1]
        payment.approvals = step + 1
    elif decision == "reject":
        payment.status = "rejected"
        payment.next_role = None
        payment.decided_at = now
    else:
        payment.status = "returned"
        payment.next_role = None
    db.session.flush()
    audit.record(
        f"payments.{decision}",
        object_type="payment",
        object_id=payment.id,
        actor=actor,
        details={"round": payment.round, "step": step, "status": payment.status, "amount_vnd": payment.amount_vnd},
    )
    return payment


def _commit_budget(payment: PaymentRequest) -> None:
    table = Programme.__table__
    result = db.session.execute(
        update(table)
        .where(
            table.c.id == payment.programme_id,
            table.c.committed_vnd + table.c.paid_vnd + payment.amount_vnd <= table.c.budget_vnd,
        )
        .values(committed_vnd=table.c.committed_vnd + payment.amount_vnd)
    )
    if result.rowcount != 1:
        raise Conflict(
            _l("The programme's budget cannot cover this amount: it would be overdrawn."), code="budget_exceeded"
        )
    _expire_programme(payment.programme_id)


def _expire_programme(programme_id: uuid.UUID) -> None:
    programme = db.session.identity_map.get(db.session.identity_key(Programme, programme_id))
    if programme is not None:
        db.session.expire(programme, ["committed_vnd", "paid_vnd"])


def disburse(payment: PaymentRequest, actor: User, data: Mapping[str, Any]) -> Disbursement:
    """Record that an approved request was paid (a finance officer of the province or a supervisor of the
    commune); a paid request is never paid again."""
    if not may_disburse(actor, payment):
        raise PermissionDenied(_l("Payments are recorded by a finance officer or a supervisor."))
    problems = Problems()
    paid_on = checks.past_day(data.get("paid_on"), problems, "paid_on")
    method = checks.choice(data.get("method"), PAYEE_METHODS, problems, "method")
    reference = checks.text(data.get("reference"), problems, "reference", limit=200)
    if method == "bank" and not reference:
        problems.add("reference", "required", _l("Give the bank transfer's reference."))
    problems.raise_if_any()
    db.session.refresh(payment, with_for_update=True)
    if payment.status == "paid":
        raise Conflict(_l("This request has already been paid."), code="already_paid")
    if payment.status != "approved":
        raise Conflict(_l("Only an approved request can be paid."), code="not_approved")
    record = Disbursement(payment_id=payment.id, paid_on=paid_on, method=method, recorded_by_id=actor.id)
    db.session.add(record)
    record.reference = reference
    try:
        db.session.flush()
    except IntegrityError:
        raise Conflict(_l("This request has already been paid."), code="already_paid") from None
    table = Programme.__table__
    db.session.execute(
        update(table)
        .where(table.c.id == payment.programme_id)
        .values(
            committed_vnd=table.c.committed_vnd - payment.amount_vnd, paid_vnd=table.c.paid_vnd + payment.amount_vnd
        )
    )
    _expire_programme(payment.programme_id)
    payment.status = "paid"
    payment.paid_at = utcnow()
    db.session.flush()
    audit.record(
        "payments.paid",
        object_type="payment",
        object_id=payment.id,
        actor=actor,
        details={"method": method, "amount_vnd": payment.amount_vnd},
    )
    return record


def _role_label(role: str | None) -> str:
    from casework.auth.forms import ROLE_LABELS

    return str(ROLE_LABELS.get(role or "", role or ""))


# --- lists, ledgers -----------------------------------------------------------------------------------------------


def awaiting_decision(user: User, *, limit: int | None = None) -> list[PaymentRequest]:
    """The requests whose current step awaits ``user`` (their role, their scope, not their own), oldest first
    (the first ``limit`` of them, for the home page)."""
    if user.role not in (SUPERVISOR, PROVINCIAL_OFFICER):
        return []
    already = select(PaymentDecision.payment_id).where(
        PaymentDecision.decided_by_id == user.id, PaymentDecision.round == PaymentRequest.round
    )
    stmt = (
        select(PaymentRequest)
        .where(
            PaymentRequest.status == "submitted",
            PaymentRequest.next_role == user.role,
            PaymentRequest.requested_by_id != user.id,
            payments_condition(user),
            ~PaymentRequest.id.in_(already.where(PaymentDecision.payment_id == PaymentRequest.id)),
        )
        .order_by(PaymentRequest.submitted_at)
        .limit(limit)
    )
    return list(db.session.scalars(stmt))


def requests_of(
    user: User, *, status: str | None = None, programme_id: uuid.UUID | None = None, limit: int = 500
) -> list[PaymentRequest]:
    """The requests ``user`` may see (a social worker: the ones they made), newest first, filtered."""
    stmt = select(PaymentRequest).where(payments_condition(user))
    if user.role == SOCIAL_WORKER:
        stmt = stmt.where(PaymentRequest.requested_by_id == user.id)
    if status:
        stmt = stmt.where(PaymentRequest.status == status)
    if programme_id:
        stmt = stmt.where(PaymentRequest.programme_id == programme_id)
    return list(db.session.scalars(stmt.order_by(PaymentRequest.created_at.desc()).limit(limit)))


def to_disburse(user: User) -> list[PaymentRequest]:
    """Approved requests waiting to be paid, that ``user`` may record the payment of, oldest approval first."""
    if user.role not in (FINANCE_OFFICER, SUPERVISOR):
        return []
    return list(
        db.session.scalars(
            select(PaymentRequest)
            .where(PaymentRequest.status == "approved", payments_condition(user))
            .order_by(PaymentRequest.decided_at)
        )
    )


def for_case(case: Case) -> list[PaymentRequest]:
    return list(
        db.session.scalars(
            select(PaymentRequest).where(PaymentRequest.case_id == case.id).order_by(PaymentRequest.created_at)
        )
    )


def decisions_of(payment: PaymentRequest) -> list[PaymentDecision]:
    return list(
        db.session.scalars(
            select(PaymentDecision)
            .where(PaymentDecision.payment_id == payment.id)
            .order_by(PaymentDecision.round, PaymentDecision.step)
        )
    )


def disbursement_of(payment: PaymentRequest) -> Disbursement | None:
    return db.session.scalar(select(Disbursement).where(Disbursement.payment_id == payment.id))


@dataclass(frozen=True)
class Ledger:
    budget_vnd: int
    committed_vnd: int
    paid_vnd: int
    requested_vnd: int  # submitted, awaiting a decision
    rows: list[PaymentRequest]

    @property
    def available_vnd(self) -> int:
        return self.budget_vnd - self.committed_vnd - self.paid_vnd


def programme_ledger(programme: Programme, actor: User) -> Ledger:
    """The programme's budget, committed and paid totals, and the requests on it that ``actor`` may see."""
    db.session.refresh(programme)
    requested = db.session.scalar(
        select(func.coalesce(func.sum(PaymentRequest.amount_vnd), 0)).where(
            PaymentRequest.programme_id == programme.id, PaymentRequest.status == "submitted"
        )
    )
    rows = requests_of(actor, programme_id=programme.id) if actor.role != ADMIN else []
    return Ledger(programme.budget_vnd, programme.committed_vnd, programme.paid_vnd, int(requested), rows)


def case_totals(case: Case) -> dict[str, int]:
    """Amounts of a case's requests by status (approved, paid, awaiting)."""
    totals = {"submitted": 0, "approved": 0, "paid": 0}
    for status, total in db.session.execute(
        select(PaymentRequest.status, func.sum(PaymentRequest.amount_vnd))
        .where(PaymentRequest.case_id == case.id, PaymentRequest.status.in_(tuple(totals)))
        .group_by(PaymentRequest.status)
    ):
        totals[status] = int(total or 0)
    return totals


# --- the monthly export ---------------------------------------------------------------------------------------------

EXPORT_ROLES = (FINANCE_OFFICER, PROVINCIAL_OFFICER, SUPERVISOR)


def month_bounds(year: int, month: int) -> tuple[datetime, datetime]:
    tz = local_tz()
    start = datetime.combine(date(year, month, 1), time(0, 0), tzinfo=tz)
    following = date(year + (month == 12), month % 12 + 1, 1)
    return start.astimezone(UTC), datetime.combine(following, time(0, 0), tzinfo=tz).astimezone(UTC)


def monthly_rows(actor: User, year: int, month: int) -> list[PaymentRequest]:
    """The requests in ``actor``'s scope approved or paid in the month (Vietnam's calendar)."""
    start, end = month_bounds(year, month)
    paid_ids = select(Disbursement.payment_id).where(
        Disbursement.paid_on >= start.astimezone(local_tz()).date(),
        Disbursement.paid_on < end.astimezone(local_tz()).date(),
    )
    stmt = (
        select(PaymentRequest)
        .where(
            payments_condition(actor),
            or_(
                and_(
                    PaymentRequest.decided_at >= start,
                    PaymentRequest.decided_at < end,
                    PaymentRequest.status.in_(("approved", "paid")),
                ),
                PaymentRequest.id.in_(paid_ids),
            ),
        )
        .order_by(PaymentRequest.decided_at)
    )
    return list(db.session.scalars(stmt))


def monthly_export(actor: User, year: int, month: int) -> bytes:
    """The month's payments as XLSX for finance; payee details only for finance officers. Audited."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    if actor.role not in EXPORT_ROLES:
        raise PermissionDenied(_l("Your role cannot export payments."))
    if not (2000 <= year <= 2100 and 1 <= month <= 12):
        problems = Problems()
        problems.add("month", "invalid_month", _l("Choose a month."))
        problems.raise_if_any()
    with_payee = actor.role == FINANCE_OFFICER
    rows = monthly_rows(actor, year, month)
    programmes = {
        p.id: p
        for p in db.session.scalars(
            select(Programme).where(Programme.id.in_({r.programme_id for r in rows} or {uuid.uuid4()}))
        )
    }
    communes = dict(
        db.session.execute(
            select(Commune.code, Commune.name).where(Commune.code.in_({r.commune_code for r in rows} or {"-"}))
        ).all()
    )
    cases = dict(
        db.session.execute(
            select(Case.id, Case.case_number).where(Case.id.in_({r.case_id for r in rows} or {uuid.uuid4()}))
        ).all()
    )
    book = Workbook()
    sheet = book.active
    sheet.title = f"{month:02d}-{year}"
    headers = [
        str(_l("Case number")),
        str(_l("Commune")),
        str(_l("Programme")),
        str(_l("Purpose")),
        str(_l("Amount (VND)")),
        str(_l("Status")),
        str(_l("Approved")),
        str(_l("Paid on")),
        str(_l("Method")),
    ]
    if with_payee:
        headers += [
            str(_l("Payee")),
            str(_l("Relation to the child")),
            str(_l("Bank account")),
            str(_l("Payment reference")),
        ]
    sheet.append(headers)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    tz = local_tz()
    total = 0
    for r in rows:
        paid = disbursement_of(r)
        line = [
            cases.get(r.case_id, ""),
            communes.get(r.commune_code, r.commune_code),
            programmes[r.programme_id].name if r.programme_id in programmes else "",
            codes.label("payment_purposes", r.purpose),
            r.amount_vnd,
            str(STATUS_LABELS.get(r.status, r.status)),
            r.decided_at.astimezone(tz).strftime("%d/%m/%Y") if r.decided_at else "",
            paid.paid_on.strftime("%d/%m/%Y") if paid else "",
            str(METHOD_LABELS.get(paid.method, paid.method)) if paid else "",
        ]
        if with_payee:
            line += [
                r.payee_name or "",
                r.payee_relation or "",
                r.payee_account or "",
                (paid.reference or "") if paid else "",
            ]
        sheet.append(line)
        total += r.amount_vnd
    sheet.append([str(_l("Total")), "", "", "", total])
    for row in sheet.iter_rows(min_row=2, min_col=5, max_col=5):
        for cell in row:
            cell.number_format = "#,##0"
    out = io.BytesIO()
    book.save(out)
    audit.record(
        "payments.export",
        object_type="payments",
        actor=actor,
        details={"year": year, "month": month, "rows": len(rows), "payee_details": with_payee},
    )
    return out.getvalue()


# --- the case's timeline ------------------------------------------------------------------------------------------


def _timeline_entries(case: Case, locale: str):
    from casework.i18n import format_vnd
    from casework.support.timeline import Entry

    labels = {
        "draft": _l("Payment request drafted"),
        "submitted": _l("Payment request submitted"),
        "approve": _l("Payment approved"),
        "reject": _l("Payment rejected"),
        "return": _l("Payment request sent back"),
        "paid": _l("Payment made"),
    }
    for payment in for_case(case):
        purpose = codes.label("payment_purposes", payment.purpose, locale)
        money = format_vnd(payment.amount_vnd)
        facts = {"payment": str(payment.id), "amount_vnd": payment.amount_vnd, "purpose": payment.purpose}
        yield Entry(
            payment.created_at,
            "payment",
            f"{labels['draft']}: {purpose}, {money}",
            payment.requested_by_id,
            None,
            facts,
        )
        if payment.submitted_at:
            yield Entry(
                payment.submitted_at, "payment", f"{labels['submitted']}: {money}", payment.requested_by_id, None, facts
            )
        for d in decisions_of(payment):
            yield Entry(
                d.decided_at,
                "payment",
                f"{labels[d.decision]}: {money}",
                d.decided_by_id,
                d.reason,
                facts | {"decision": d.decision},
            )
        paid = disbursement_of(payment)
        if paid:
            yield Entry(
                paid.recorded_at,
                "payment",
                f"{labels['paid']}: {money}",
                paid.recorded_by_id,
                None,
                facts | {"paid_on": paid.paid_on.isoformat()},
            )


def register_timeline() -> None:
    from casework.support.timeline import add_source

    add_source(_timeline_entries)


def age(payment: PaymentRequest, now: datetime | None = None) -> timedelta:
    """How long the request has waited since it was submitted."""
    return (now or utcnow()) - (payment.submitted_at or payment.created_at)
