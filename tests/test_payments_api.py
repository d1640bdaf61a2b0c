"""/api/v1/programmes and /api/v1/payments: support payments requested, receipted, decided by the approvers the policy
names, and paid, with every refusal a requester, an approver or an outsider would meet: the requester approving their
own request, someone outside the case's scope, an amount that is not a whole positive number of đồng under the
ceiling, a missing receipt or plan, a closed case, a stale second factor, a second payment.

On PostgreSQL, 20 threads approving the same request give one approval, and 30 small requests approved at once never
overdraw their programme's budget. After a full run the audit trail holds every step and verifies.
"""

from __future__ import annotations

import io
import threading
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from casework import audit
from casework.audit import AuditEvent
from casework.auth.models import ApiToken
from casework.cases import operations as case_operations
from casework.cases.models import Case
from casework.dbtypes import utcnow
from casework.extensions import db
from casework.i18n import local_tz
from casework.payments import operations
from casework.payments.models import ApprovalBand, Disbursement, PaymentDecision, PaymentRequest, Programme
from casework.security.files import StoredFile
from casework.support.models import SupportPlan
from tests.conftest import casework_cli
from tests.test_api import assert_error, bearer
from tests.test_cases_api import intake, reload
from tests.test_support_api import Api

API = "/api/v1"
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
PAYEE = {"name": "Lò Văn Páo", "relation": "Bố", "method": "bank", "account": "Agribank 8000 2055 1234"}
DESCRIPTION = "Viện phí điều trị gãy tay tại Bệnh viện Đa khoa tỉnh."

#: The issue's approval policy, which migration 0008 writes and the tests' table cleaning removes: up to and
#: including 5,000,000 ₫ a supervisor of the commune; above that a provincial officer; from 20,000,000 ₫ a supervisor
#: and then a provincial officer.
POLICY = (
    (1, 5_000_001, ["supervisor"]),
    (5_000_001, 20_000_000, ["provincial_officer"]),
    (20_000_000, None, ["supervisor", "provincial_officer"]),
)

#: Who works where: Ba Chẽ (06970) and Kỳ Thượng (06979) are communes of Quảng Ninh (22); 01 is Hà Nội.
PEOPLE = {
    "hoa": ("social_worker", {"communes": ("06970",)}),
    "tuan": ("social_worker", {"communes": ("06970",)}),
    "lan": ("supervisor", {"communes": ("06970",)}),
    "minh": ("supervisor", {"communes": ("06970",)}),
    "hai": ("supervisor", {"communes": ("06970",)}),
    "binh": ("supervisor", {"communes": ("06970",)}),
    "thu": ("supervisor", {"communes": ("06970",)}),
    "kythuong": ("supervisor", {"communes": ("06979",)}),
    "officer": ("provincial_officer", {}),
    "hanoi": ("provincial_officer", {"province": "01"}),
    "finance": ("finance_officer", {}),
    "hanoifinance": ("finance_officer", {"province": "01"}),
    "committee": ("committee_member", {}),
    "auditor": ("auditor", {}),
    "admin": ("admin", {}),
}


def payment_body(programme_id: str, amount_vnd=1_500_000, **changes) -> dict:
    return {
        "programme": programme_id,
        "purpose": "medical_treatment",
        "amount_vnd": amount_vnd,
        "payee": dict(PAYEE),
        "description": DESCRIPTION,
        **changes,
    }


def today():
    return utcnow().astimezone(local_tz()).date()


def count(model, *where) -> int:
    reload()
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def payment_row(payment_id: str) -> PaymentRequest:
    reload()
    return db.session.get(PaymentRequest, uuid.UUID(payment_id))


def programme_row(programme_id: str) -> Programme:
    reload()
    return db.session.get(Programme, uuid.UUID(programme_id))


@pytest.fixture(autouse=True)
def policy(app):
    """The default approval bands (the table is emptied between tests like every other)."""
    if not db.session.scalar(select(func.count()).select_from(ApprovalBand)):
        for low, high, roles in POLICY:
            db.session.add(ApprovalBand(min_vnd=low, max_vnd=high, approver_roles=roles))
        db.session.commit()


class Desk:
    """The people of the tests, their tokens (obtained once each, with the second factor for the roles that have
    one), and the calls they make, each checked for the status it should get."""

    def __init__(self, client, make_user, api_token) -> None:
        self.client = client
        self._make_user = make_user
        self._api_token = api_token
        self.users: dict = {}
        self.tokens: dict[str, str] = {}
        self._programmes = 0

    def user(self, name: str):
        if name not in self.users:
            role, extra = PEOPLE[name]
            self.users[name] = self._make_user(role, username=name, **extra)
        return self.users[name]

    def h(self, name: str) -> dict[str, str]:
        if name not in self.tokens:
            self.tokens[name] = self._api_token(self.user(name))
        return bearer(self.tokens[name])

    def case(self, *, plan: bool = True) -> str:
        """A case of Ba Chẽ registered by Hoa; with ``plan``, its support plan approved by Lan."""
        worker = self.user("hoa")
        case = case_operations.open_case(
            case_operations.validate_intake(intake(child__national_id=None), worker), worker
        )
        if plan:
            supervisor = self.user("lan")
            db.session.add(
                SupportPlan(
                    case_id=case.id,
                    cycle=1,
                    status="approved",
                    created_by_id=worker.id,
                    decided_by_id=supervisor.id,
                    decided_at=utcnow(),
                )
            )
        db.session.commit()
        return str(case.id)

    def programme(self, budget_vnd: int = 100_000_000, **extra) -> str:
        self._programmes += 1
        data = {"name": f"Quỹ Bảo trợ trẻ em {self._programmes}", "year": 2026, "budget_vnd": budget_vnd, **extra}
        programme = operations.create_programme(self.user("officer"), data)
        db.session.commit()
        return str(programme.id)

    def call(self, who: str, method: str, path: str, status: int, **kwargs) -> dict:
        response = self.client.open(f"{API}{path}", method=method, headers=self.h(who), **kwargs)
        assert response.status_code == status, (response.status_code, response.get_json())
        return response.get_json()

    def draft(self, case_id: str, programme_id: str, amount_vnd=1_500_000, *, who: str = "hoa", **changes) -> dict:
        body = payment_body(programme_id, amount_vnd, **changes)
        return self.call(who, "POST", f"/cases/{case_id}/payments", 201, json=body)

    def attach(self, payment_id: str, *, who: str = "hoa", name: str = "hoa-don-vien-phi.pdf"):
        return self.client.post(
            f"{API}/payments/{payment_id}/attachments",
            data={"file": (io.BytesIO(PDF), name)},
            headers=self.h(who),
            content_type="multipart/form-data",
        )

    def submit(self, payment_id: str, *, who: str = "hoa"):
        return self.client.post(f"{API}/payments/{payment_id}/submit", headers=self.h(who))

    def submitted(self, case_id: str, programme_id: str, amount_vnd=1_500_000, *, who: str = "hoa", **changes) -> dict:
        payment = self.draft(case_id, programme_id, amount_vnd, who=who, **changes)
        assert self.attach(payment["id"], who=who).status_code == 201
        response = self.submit(payment["id"], who=who)
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    def decide(self, who: str, payment_id: str, decision: str = "approve", reason: str | None = None):
        body = {"decision": decision} if reason is None else {"decision": decision, "reason": reason}
        return self.client.post(f"{API}/payments/{payment_id}/decision", json=body, headers=self.h(who))

    def decided(self, who: str, payment_id: str, decision: str = "approve", reason: str | None = None) -> dict:
        response = self.decide(who, payment_id, decision, reason)
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    def pay(self, who: str, payment_id: str, **changes):
        body = {"paid_on": today().isoformat(), "method": "bank", "reference": "UNC-2026-0042", **changes}
        return self.client.post(f"{API}/payments/{payment_id}/disbursement", json=body, headers=self.h(who))


@pytest.fixture
def desk(client, make_user, api_token) -> Desk:
    return Desk(client, make_user, api_token)


def race(app, calls: list[tuple[dict[str, str], str, dict]]) -> list[tuple[int, str | None]]:
    """Send every ``(headers, path, body)`` POST at the same moment, each from its own thread, client, app context
    and database session; return ``(status, error code)`` of each answer."""
    reload()  # the test's own session holds nothing while the threads run
    barrier = threading.Barrier(len(calls))
    answers: list[tuple[int, str | None]] = []
    errors: list[BaseException] = []

    def send(headers: dict[str, str], path: str, body: dict) -> None:
        client = app.test_client()
        try:
            barrier.wait(timeout=60)
            response = client.post(f"{API}{path}", json=body, headers=headers)
            payload = response.get_json() or {}
            answers.append((response.status_code, payload.get("error", {}).get("code")))
        except BaseException as exc:  # noqa: BLE001 - reported below, with the others
            errors.append(exc)

    threads = [threading.Thread(target=send, args=call) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert errors == []
    assert len(answers) == len(calls), "a thread did not answer"
    return answers


# --- concurrency (PostgreSQL) ----------------------------------------------------------------------------------------


def test_twenty_approvers_at_the_same_moment_give_one_approval(app, backend, desk):
    if backend != "postgresql":
        pytest.skip("SQLite serialises writers; the row lock that queues approvers is PostgreSQL's")
    programme_id = desk.programme(budget_vnd=10_000_000)
    payment = desk.submitted(desk.case(), programme_id, 1_000_000)
    approvers = ["lan", "minh", "hai", "binh", "thu"]  # five supervisors of the commune, four threads each
    for name in approvers:  # obtain each token and use it once, so the race is about the decision alone
        desk.call(name, "GET", f"/payments/{payment['id']}", 200)
    path = f"/payments/{payment['id']}/decision"
    answers = race(app, [(desk.h(approvers[n % 5]), path, {"decision": "approve"}) for n in range(20)])

    assert sorted(answers) == [(200, None)] + [(409, "already_decided")] * 19
    decisions = db.session.scalars(
        select(PaymentDecision).where(PaymentDecision.payment_id == uuid.UUID(payment["id"]))
    )
    assert [d.decision for d in decisions] == ["approve"]
    row = payment_row(payment["id"])
    assert (row.status, row.approvals, row.next_role) == ("approved", 1, None)
    programme = programme_row(programme_id)
    assert (programme.committed_vnd, programme.paid_vnd) == (1_000_000, 0)
    assert count(AuditEvent, AuditEvent.action == "payments.approve") == 1
    assert audit.verify().ok


def test_thirty_small_approvals_at_once_never_overdraw_the_budget(app, backend, desk):
    if backend != "postgresql":
        pytest.skip("SQLite serialises writers; the concurrent conditional UPDATE is PostgreSQL's")
    programme_id = desk.programme(budget_vnd=5_000_000)
    case_id = desk.case()
    worker = desk.user("hoa")
    case = db.session.get(Case, uuid.UUID(case_id))
    ids = []
    for _ in range(30):  # 30 x 400,000 = 12,000,000 asked of 5,000,000: room for 12
        payment = operations.create_request(case, worker, payment_body(programme_id, 400_000))
        operations.attach(payment, worker, io.BytesIO(PDF), "hoa-don.pdf")
        operations.submit(payment, worker)
        ids.append(str(payment.id))
    db.session.commit()
    approvers = ["lan", "minh", "hai"]  # three supervisors of the commune share the 30 requests
    for name in approvers:  # obtain each token and use it once, so the race is about the decisions alone
        desk.call(name, "GET", f"/payments/{ids[0]}", 200)
    calls = [
        (desk.h(approvers[n % 3]), f"/payments/{pid}/decision", {"decision": "approve"}) for n, pid in enumerate(ids)
    ]
    answers = race(app, calls)

    assert sorted(answers) == [(200, None)] * 12 + [(409, "budget_exceeded")] * 18
    programme = programme_row(programme_id)
    assert (programme.committed_vnd, programme.paid_vnd) == (4_800_000, 0)
    assert programme.available_vnd == 200_000
    assert count(PaymentRequest, PaymentRequest.status == "approved") == 12
    assert count(PaymentRequest, PaymentRequest.status == "submitted") == 18
    assert count(PaymentDecision) == 12  # the refused approvals left nothing behind
    # The database refuses an overdraft on its own, whoever writes it.
    with pytest.raises(IntegrityError, match="within_budget"):
        db.session.execute(
            update(Programme)
            .where(Programme.id == uuid.UUID(programme_id))
            .values(committed_vnd=Programme.committed_vnd + 400_000)
        )
    db.session.rollback()
    assert programme_row(programme_id).committed_vnd == 4_800_000
    assert count(AuditEvent, AuditEvent.action == "payments.approve") == 12
    assert audit.verify().ok


def test_an_approval_that_would_overdraw_the_budget_is_refused_and_leaves_the_request_waiting(desk):
    programme_id = desk.programme(budget_vnd=3_000_000)
    case_id = desk.case()
    first = desk.submitted(case_id, programme_id, 2_000_000)
    second = desk.submitted(case_id, programme_id, 1_500_000)
    desk.decided("lan", first["id"])
    assert_error(desk.decide("lan", second["id"]), 409, "budget_exceeded")
    assert payment_row(second["id"]).status == "submitted"
    assert count(PaymentDecision, PaymentDecision.payment_id == uuid.UUID(second["id"])) == 0
    assert programme_row(programme_id).committed_vnd == 2_000_000
    # Rejecting takes no money: it is not refused.
    assert desk.decided("lan", second["id"], "reject", "Vượt ngân sách năm")["status"] == "rejected"


# --- who may decide --------------------------------------------------------------------------------------------------


def test_requester_cannot_approve_own_payment(desk):
    programme_id = desk.programme()
    payment = desk.submitted(desk.case(), programme_id, 2_000_000, who="lan")  # a supervisor may request
    assert payment["requested_by"]["username"] == "lan"
    error = assert_error(desk.decide("lan", payment["id"]), 403, "own_request")
    assert error["message"]
    assert_error(desk.decide("lan", payment["id"], "reject", "Tôi rút lại"), 403, "own_request")
    row = payment_row(payment["id"])
    assert (row.status, row.approvals) == ("submitted", 0)
    assert count(PaymentDecision) == 0
    assert desk.decided("minh", payment["id"])["status"] == "approved"  # another supervisor of the commune may


def test_an_approver_outside_the_scope_is_refused_and_nothing_changes(desk):
    programme_id = desk.programme()
    case_id = desk.case()
    small = desk.submitted(case_id, programme_id, 1_000_000)
    large = desk.submitted(case_id, programme_id, 8_000_000)
    # The API does not say the request exists.
    assert_error(desk.decide("kythuong", small["id"]), 404, "not_found")  # another commune's supervisor
    assert_error(desk.decide("hanoi", large["id"]), 404, "not_found")  # another province's officer
    assert_error(desk.client.get(f"{API}/payments/{small['id']}", headers=desk.h("kythuong")), 404, "not_found")
    # The rule refuses them too, whatever the door.
    for name, payment in (("kythuong", small), ("hanoi", large)):
        with pytest.raises(operations.PermissionDenied) as refused:
            operations.decide(payment_row(payment["id"]), desk.user(name), "approve", fresh_second_factor=True)
        assert refused.value.code == "not_an_approver"
    db.session.rollback()
    assert [payment_row(p["id"]).status for p in (small, large)] == ["submitted", "submitted"]
    assert count(PaymentDecision) == 0
    assert programme_row(programme_id).committed_vnd == 0


def test_a_social_worker_cannot_decide(desk):
    payment = desk.submitted(desk.case(), desk.programme(), 1_000_000)
    assert_error(desk.decide("tuan", payment["id"]), 403, "second_factor_required")
    with pytest.raises(operations.PermissionDenied):
        operations.decide(payment_row(payment["id"]), desk.user("tuan"), "approve", fresh_second_factor=True)
    db.session.rollback()
    assert payment_row(payment["id"]).status == "submitted"


def test_a_token_without_a_fresh_second_factor_is_refused_a_decision(desk):
    payment = desk.submitted(desk.case(), desk.programme(), 1_000_000)
    headers = desk.h("lan")
    reload()
    db.session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == desk.user("lan").id)
        .values(second_factor_at=utcnow() - timedelta(minutes=16))  # CASEWORK_REAUTH_MINUTES is 15
    )
    db.session.commit()
    response = desk.client.post(
        f"{API}/payments/{payment['id']}/decision", json={"decision": "approve"}, headers=headers
    )
    assert_error(response, 401, "reauth_required")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert payment_row(payment["id"]).status == "submitted"
    # The same token still reads the request: only deciding needs the fresh check.
    assert desk.client.get(f"{API}/payments/{payment['id']}", headers=headers).status_code == 200
    # The rule itself refuses a decision without the check, whatever the door.
    with pytest.raises(operations.PermissionDenied) as refused:
        operations.decide(payment_row(payment["id"]), desk.user("lan"), "approve", fresh_second_factor=False)
    assert refused.value.code == "reauth_required"
    db.session.rollback()
    assert count(PaymentDecision) == 0


# --- amounts ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount_vnd", "code"),
    [
        (0, "not_positive"),
        (-5, "not_positive"),
        (1.5, "not_whole_vnd"),
        (1_000_000.0, "not_whole_vnd"),
        ("1000000", "not_whole_vnd"),
        ("1.000.000", "not_whole_vnd"),
        (True, "not_whole_vnd"),
        (None, "required"),
        (100_000_001, "over_ceiling"),
    ],
)
def test_an_amount_that_is_not_whole_positive_vnd_under_the_ceiling_is_refused(desk, amount_vnd, code):
    case_id, programme_id = desk.case(), desk.programme()
    response = desk.client.post(
        f"{API}/cases/{case_id}/payments", json=payment_body(programme_id, amount_vnd), headers=desk.h("hoa")
    )
    error = assert_error(response, 422, "validation_failed")
    assert error["field_codes"]["amount_vnd"] == [code]
    assert error["fields"]["amount_vnd"][0]  # a message a person can read
    assert count(PaymentRequest) == 0


def test_the_ceiling_itself_and_one_dong_are_accepted(desk):
    case_id, programme_id = desk.case(), desk.programme(budget_vnd=200_000_000)
    assert desk.draft(case_id, programme_id, 100_000_000)["amount_vnd"] == 100_000_000
    assert desk.draft(case_id, programme_id, 1)["amount_vnd"] == 1


def test_a_changed_amount_is_checked_as_strictly(desk):
    case_id, programme_id = desk.case(), desk.programme()
    payment = desk.draft(case_id, programme_id, 1_000_000)
    response = desk.client.put(
        f"{API}/payments/{payment['id']}", json=payment_body(programme_id, "2000000"), headers=desk.h("hoa")
    )
    assert assert_error(response, 422, "validation_failed")["field_codes"] == {"amount_vnd": ["not_whole_vnd"]}
    assert payment_row(payment["id"]).amount_vnd == 1_000_000


def test_the_other_fields_of_a_request_are_named_when_wrong(desk):
    case_id = desk.case()
    desk.programme()  # the province has one, but not this one
    body = payment_body(str(uuid.uuid4()), purpose="holiday", payee={"name": "", "method": "bank"}, description="")
    error = assert_error(
        desk.client.post(f"{API}/cases/{case_id}/payments", json=body, headers=desk.h("hoa")), 422, "validation_failed"
    )
    codes = error["field_codes"]
    assert codes["programme"] == ["unknown_programme"]
    assert codes["purpose"] == ["invalid_code"]
    assert codes["payee.name"] == ["required"] and codes["payee.relation"] == ["required"]
    assert codes["payee.account"] == ["required"]  # a bank payment names the account
    assert codes["description"] == ["required"]
    assert_error(
        desk.client.post(f"{API}/cases/{case_id}/payments", data="[]", headers=desk.h("hoa")), 400, "bad_request"
    )
    assert count(PaymentRequest) == 0


# --- the approval policy ---------------------------------------------------------------------------------------------


def test_up_to_five_million_a_supervisor_of_the_commune_decides(desk):
    programme_id = desk.programme()
    case_id = desk.case()
    for amount_vnd in (1, 5_000_000):
        payment = desk.submitted(case_id, programme_id, amount_vnd)
        assert (payment["approver_roles"], payment["next_role"]) == (["supervisor"], "supervisor")
        assert_error(desk.decide("officer", payment["id"]), 403, "not_an_approver")
        approved = desk.decided("lan", payment["id"])
        assert (approved["status"], approved["approvals"], approved["next_role"]) == ("approved", 1, None)
        assert approved["decisions"][0]["role"] == "supervisor"
        assert approved["decisions"][0]["decided_by"]["username"] == "lan"
    assert programme_row(programme_id).committed_vnd == 5_000_001


def test_above_five_million_a_provincial_officer_decides(desk):
    programme_id = desk.programme()
    case_id = desk.case()
    for amount_vnd in (5_000_001, 19_999_999):
        payment = desk.submitted(case_id, programme_id, amount_vnd)
        assert (payment["approver_roles"], payment["next_role"]) == (["provincial_officer"], "provincial_officer")
        error = assert_error(desk.decide("lan", payment["id"]), 403, "not_an_approver")
        assert error["message"]
        assert payment_row(payment["id"]).status == "submitted"
        assert desk.decided("officer", payment["id"])["status"] == "approved"
    assert programme_row(programme_id).committed_vnd == 25_000_000


def test_from_twenty_million_a_supervisor_then_a_provincial_officer_approve(desk):
    programme_id = desk.programme()
    payment = desk.submitted(desk.case(), programme_id, 20_000_000)
    assert payment["approver_roles"] == ["supervisor", "provincial_officer"]
    assert_error(desk.decide("officer", payment["id"]), 403, "not_an_approver")  # the supervisor's step comes first

    first = desk.decided("lan", payment["id"])
    assert (first["status"], first["approvals"], first["next_role"]) == ("submitted", 1, "provincial_officer")
    assert first["decided_at"] is None
    assert programme_row(programme_id).committed_vnd == 0  # nothing is committed before the last approval
    # The supervisor cannot take the second step too; nor can another supervisor.
    assert_error(desk.decide("lan", payment["id"]), 403, "not_an_approver")
    assert_error(desk.decide("minh", payment["id"]), 403, "not_an_approver")
    assert payment_row(payment["id"]).approvals == 1

    final = desk.decided("officer", payment["id"])
    assert (final["status"], final["approvals"], final["next_role"]) == ("approved", 2, None)
    assert [(d["step"], d["role"], d["decided_by"]["username"]) for d in final["decisions"]] == [
        (0, "supervisor", "lan"),
        (1, "provincial_officer", "officer"),
    ]
    assert programme_row(programme_id).committed_vnd == 20_000_000


def test_two_approvers_of_the_same_role_must_be_two_people(desk):
    programme_id = desk.programme()
    # A programme whose own policy asks two supervisors for every amount.
    db.session.add(
        ApprovalBand(programme_id=uuid.UUID(programme_id), min_vnd=1, approver_roles=["supervisor", "supervisor"])
    )
    db.session.commit()
    payment = desk.submitted(desk.case(), programme_id, 1_000_000)
    assert payment["approver_roles"] == ["supervisor", "supervisor"]
    desk.decided("lan", payment["id"])
    assert_error(desk.decide("lan", payment["id"]), 403, "same_approver")
    row = payment_row(payment["id"])
    assert (row.status, row.approvals) == ("submitted", 1)
    assert desk.decided("minh", payment["id"])["status"] == "approved"


def test_a_rejection_at_the_first_of_two_steps_ends_the_request(desk):
    programme_id = desk.programme()
    payment = desk.submitted(desk.case(), programme_id, 25_000_000)
    rejected = desk.decided("lan", payment["id"], "reject", "Chưa có báo giá của bệnh viện")
    assert (rejected["status"], rejected["next_role"]) == ("rejected", None)
    assert_error(desk.decide("officer", payment["id"]), 409, "already_decided")
    assert programme_row(programme_id).committed_vnd == 0


# --- receipts, plan, closed case -------------------------------------------------------------------------------------


def test_a_request_is_not_submitted_without_a_receipt(desk):
    payment = desk.draft(desk.case(), desk.programme())
    error = assert_error(desk.submit(payment["id"]), 422, "validation_failed")
    assert error["field_codes"] == {"attachments": ["receipt_required"]}
    row = payment_row(payment["id"])
    assert (row.status, row.round, row.submitted_at) == ("draft", 0, None)


def test_a_receipt_is_stored_and_listed_with_the_request(desk):
    payment = desk.draft(desk.case(), desk.programme())
    response = desk.attach(payment["id"], name="Hóa đơn viện phí.pdf")
    assert response.status_code == 201, response.get_json()
    stored = response.get_json()
    assert (stored["name"], stored["size"]) == ("Hóa đơn viện phí.pdf", len(PDF))
    shown = desk.call("hoa", "GET", f"/payments/{payment['id']}", 200)
    assert shown["attachments"] == [{"id": stored["id"], "name": "Hóa đơn viện phí.pdf"}]
    row = db.session.get(StoredFile, uuid.UUID(stored["id"]))
    assert (row.owner_type, row.owner_id) == ("payment", payment["id"])


def test_a_refused_upload_stores_nothing(desk, app, monkeypatch):
    payment = desk.draft(desk.case(), desk.programme())
    url = f"{API}/payments/{payment['id']}/attachments"
    headers = desk.h("hoa")
    missing = desk.client.post(url, data={}, headers=headers, content_type="multipart/form-data")
    assert assert_error(missing, 422, "validation_failed")["field_codes"] == {"file": ["required"]}
    not_allowed = desk.client.post(
        url,
        data={"file": (io.BytesIO(b"MZ\x90\x00"), "setup.exe")},
        headers=headers,
        content_type="multipart/form-data",
    )
    assert_error(not_allowed, 422, "file_type_not_allowed")
    mismatch = desk.client.post(
        url,
        data={"file": (io.BytesIO(b"just text"), "hoa-don.pdf")},
        headers=headers,
        content_type="multipart/form-data",
    )
    assert_error(mismatch, 422, "file_type_mismatch")
    monkeypatch.setitem(app.config, "CASEWORK_MAX_UPLOAD_MB", 1)
    large = PDF[:-6] + b"0" * (1024 * 1024) + b"%%EOF\n"
    too_large = desk.client.post(
        url, data={"file": (io.BytesIO(large), "hoa-don.pdf")}, headers=headers, content_type="multipart/form-data"
    )
    assert_error(too_large, 413, "file_too_large")
    assert count(StoredFile) == 0


def test_only_the_requester_attaches_and_only_while_the_request_can_change(desk):
    case_id, programme_id = desk.case(), desk.programme()
    payment = desk.draft(case_id, programme_id)
    assert_error(desk.attach(payment["id"], who="tuan"), 403, "not_requester")
    submitted = desk.submitted(case_id, programme_id)
    assert_error(desk.attach(submitted["id"]), 409, "not_editable")
    assert count(StoredFile, StoredFile.owner_id == submitted["id"]) == 1


def test_a_payment_needs_an_approved_plan_except_emergency_support(desk):
    programme_id = desk.programme()
    case_id = desk.case(plan=False)
    ordinary = desk.draft(case_id, programme_id, 1_000_000)
    assert desk.attach(ordinary["id"]).status_code == 201
    assert_error(desk.submit(ordinary["id"]), 409, "plan_not_approved")
    assert payment_row(ordinary["id"]).status == "draft"

    emergency = desk.submitted(case_id, programme_id, 1_000_000, purpose="emergency")
    assert emergency["status"] == "submitted"
    assert desk.decided("lan", emergency["id"])["status"] == "approved"


def test_a_plan_still_awaiting_approval_does_not_count(desk):
    programme_id = desk.programme()
    case_id = desk.case(plan=False)
    db.session.add(SupportPlan(case_id=uuid.UUID(case_id), cycle=1, status="submitted"))
    db.session.commit()
    payment = desk.draft(case_id, programme_id)
    desk.attach(payment["id"])
    assert_error(desk.submit(payment["id"]), 409, "plan_not_approved")


def close(case_id: str) -> None:
    reload()
    case = db.session.get(Case, uuid.UUID(case_id))
    case.stage, case.closed_at, case.closure_reason = "closed", utcnow(), "goals_met"
    db.session.commit()


def test_a_closed_case_takes_no_new_request_and_none_is_sent_or_approved(desk):
    programme_id = desk.programme()
    case_id = desk.case()
    draft = desk.draft(case_id, programme_id)
    desk.attach(draft["id"])
    waiting = desk.submitted(case_id, programme_id)
    close(case_id)

    refused = desk.client.post(
        f"{API}/cases/{case_id}/payments", json=payment_body(programme_id), headers=desk.h("hoa")
    )
    assert_error(refused, 409, "case_closed")
    assert_error(desk.submit(draft["id"]), 409, "case_closed")
    assert_error(desk.decide("lan", waiting["id"]), 409, "case_closed")
    assert count(PaymentRequest) == 2
    assert payment_row(waiting["id"]).status == "submitted"
    assert count(PaymentDecision) == 0
    assert programme_row(programme_id).committed_vnd == 0


# --- reject, return, resubmit ----------------------------------------------------------------------------------------


def test_rejecting_or_returning_needs_a_reason(desk):
    payment = desk.submitted(desk.case(), desk.programme())
    for decision in ("reject", "return"):
        for reason in (None, "", "   "):
            error = assert_error(desk.decide("lan", payment["id"], decision, reason), 422, "validation_failed")
            assert error["field_codes"] == {"reason": ["required"]}
    error = assert_error(desk.decide("lan", payment["id"], "postpone"), 422, "validation_failed")
    assert "decision" in error["field_codes"]
    assert_error(
        desk.client.post(f"{API}/payments/{payment['id']}/decision", data="x", headers=desk.h("lan")),
        400,
        "bad_request",
    )
    assert payment_row(payment["id"]).status == "submitted"
    assert count(PaymentDecision) == 0


def test_a_rejected_request_is_final(desk):
    payment = desk.submitted(desk.case(), desk.programme())
    rejected = desk.decided("lan", payment["id"], "reject", "Khoản chi không thuộc kế hoạch hỗ trợ")
    assert rejected["status"] == "rejected" and rejected["decided_at"]
    assert rejected["decisions"][0]["reason"] == "Khoản chi không thuộc kế hoạch hỗ trợ"
    assert_error(desk.decide("minh", payment["id"]), 409, "already_decided")
    body = payment_body(rejected["programme"]["id"], 900_000)
    assert_error(
        desk.client.put(f"{API}/payments/{payment['id']}", json=body, headers=desk.h("hoa")), 409, "not_editable"
    )
    assert_error(desk.submit(payment["id"]), 409, "not_editable")


def test_a_returned_request_is_changed_and_submitted_again_as_round_two(desk):
    programme_id = desk.programme()
    payment = desk.submitted(desk.case(), programme_id, 1_500_000)
    assert payment["round"] == 1
    url = f"{API}/payments/{payment['id']}"
    # Nobody changes a submitted request under the approver's eyes.
    assert_error(
        desk.client.put(url, json=payment_body(programme_id, 1_200_000), headers=desk.h("hoa")), 409, "not_editable"
    )

    returned = desk.decided("lan", payment["id"], "return", "Thiếu hóa đơn thuốc, bổ sung giúp")
    assert (returned["status"], returned["next_role"]) == ("returned", None)
    # Only the requester changes it.
    assert_error(
        desk.client.put(url, json=payment_body(programme_id, 1_200_000), headers=desk.h("tuan")), 403, "not_requester"
    )
    changed = desk.call("hoa", "PUT", f"/payments/{payment['id']}", 200, json=payment_body(programme_id, 1_200_000))
    assert (changed["amount_vnd"], changed["status"]) == (1_200_000, "returned")
    assert desk.attach(payment["id"], name="hoa-don-thuoc.pdf").status_code == 201
    again = desk.submit(payment["id"])
    assert again.status_code == 200, again.get_json()
    again = again.get_json()
    assert (again["status"], again["round"], again["approvals"], again["next_role"]) == (
        "submitted",
        2,
        0,
        "supervisor",
    )
    assert len(again["attachments"]) == 2

    approved = desk.decided("lan", payment["id"])
    assert approved["status"] == "approved"
    assert [(d["round"], d["step"], d["decision"], d["reason"]) for d in approved["decisions"]] == [
        (1, 0, "return", "Thiếu hóa đơn thuốc, bổ sung giúp"),
        (2, 0, "approve", None),
    ]
    assert programme_row(programme_id).committed_vnd == 1_200_000


# --- disbursement ----------------------------------------------------------------------------------------------------


def test_a_finance_officer_pays_an_approved_request_once(desk):
    programme_id = desk.programme(budget_vnd=10_000_000)
    payment = desk.submitted(desk.case(), programme_id, 3_000_000)
    assert_error(desk.pay("finance", payment["id"]), 409, "not_approved")
    desk.decided("lan", payment["id"])
    assert programme_row(programme_id).committed_vnd == 3_000_000

    assert_error(desk.pay("hoa", payment["id"]), 403, "forbidden")  # a social worker does not pay
    assert_error(desk.pay("hanoifinance", payment["id"]), 404, "not_found")  # another province's finance
    future = (today() + timedelta(days=1)).isoformat()
    error = assert_error(desk.pay("finance", payment["id"], paid_on=future), 422, "validation_failed")
    assert error["field_codes"] == {"paid_on": ["in_future"]}
    error = assert_error(desk.pay("finance", payment["id"], reference=""), 422, "validation_failed")
    assert error["field_codes"] == {"reference": ["required"]}  # a bank transfer has a reference
    error = assert_error(desk.pay("finance", payment["id"], method="cheque", paid_on=None), 422, "validation_failed")
    assert set(error["field_codes"]) == {"method", "paid_on"}
    assert payment_row(payment["id"]).status == "approved"

    response = desk.pay("finance", payment["id"])
    assert response.status_code == 201, response.get_json()
    paid = response.get_json()
    assert paid["status"] == "paid" and paid["paid_at"]
    assert paid["disbursement"] == {"paid_on": today().isoformat(), "method": "bank", "reference": "UNC-2026-0042"}
    programme = programme_row(programme_id)
    assert (programme.committed_vnd, programme.paid_vnd, programme.available_vnd) == (0, 3_000_000, 7_000_000)

    assert_error(desk.pay("finance", payment["id"]), 409, "already_paid")
    assert_error(desk.pay("lan", payment["id"], method="cash", reference=None), 409, "already_paid")
    assert count(Disbursement) == 1
    assert programme_row(programme_id).paid_vnd == 3_000_000


def test_a_supervisor_of_the_commune_may_record_a_cash_payment(desk):
    payment = desk.submitted(desk.case(), desk.programme(), 800_000)
    desk.decided("minh", payment["id"])
    response = desk.pay("lan", payment["id"], method="cash", reference=None)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["disbursement"]["method"] == "cash"
    assert_error(desk.pay("kythuong", payment["id"]), 404, "not_found")


# --- programmes ------------------------------------------------------------------------------------------------------


def test_a_provincial_officer_creates_programmes_for_their_province_only(desk):
    body = {"name": "Quỹ Bảo trợ trẻ em tỉnh", "province": "22", "year": 2026, "budget_vnd": 500_000_000}
    created = desk.call("officer", "POST", "/programmes", 201, json=body)
    assert {k: created[k] for k in ("name", "province", "year", "budget_vnd")} == body
    assert (created["committed_vnd"], created["paid_vnd"], created["available_vnd"]) == (0, 0, 500_000_000)

    duplicate = desk.client.post(f"{API}/programmes", json=body, headers=desk.h("officer"))
    assert_error(duplicate, 409, "duplicate")
    elsewhere = desk.client.post(f"{API}/programmes", json={**body, "province": "01"}, headers=desk.h("officer"))
    assert assert_error(elsewhere, 422, "validation_failed")["field_codes"] == {"province": ["out_of_scope"]}
    for name in ("hoa", "lan", "finance", "committee"):
        response = desk.client.post(f"{API}/programmes", json={**body, "name": name}, headers=desk.h(name))
        assert_error(response, 403, "forbidden")
    for budget, code in (("500000000", "not_whole_vnd"), (0, "out_of_range"), (-1, "out_of_range")):
        response = desk.client.post(
            f"{API}/programmes", json={**body, "name": "Khác", "budget_vnd": budget}, headers=desk.h("officer")
        )
        assert assert_error(response, 422, "validation_failed")["field_codes"]["budget_vnd"] == [code]
    unknown = desk.client.post(
        f"{API}/programmes", json={**body, "name": "Khác", "purposes": ["holiday"]}, headers=desk.h("officer")
    )
    assert "purposes" in assert_error(unknown, 422, "validation_failed")["field_codes"]
    assert count(Programme) == 1


def test_the_programmes_of_the_province_are_listed_with_their_totals(desk):
    programme_id = desk.programme(budget_vnd=10_000_000)
    desk.programme(budget_vnd=2_000_000, year=2025)
    case_id = desk.case()
    paid = desk.submitted(case_id, programme_id, 1_000_000)
    desk.decided("lan", paid["id"])
    assert desk.pay("finance", paid["id"]).status_code == 201
    desk.decided("lan", desk.submitted(case_id, programme_id, 2_500_000)["id"])
    desk.submitted(case_id, programme_id, 4_000_000)  # waiting: nothing committed

    for name in ("hoa", "lan", "officer", "finance", "admin"):
        items = desk.call(name, "GET", "/programmes", 200)["items"]
        assert [p["year"] for p in items] == [2026, 2025]
        first = items[0]
        assert first["id"] == programme_id
        assert (first["budget_vnd"], first["committed_vnd"], first["paid_vnd"], first["available_vnd"]) == (
            10_000_000,
            2_500_000,
            1_000_000,
            6_500_000,
        )
    assert [p["year"] for p in desk.call("officer", "GET", "/programmes?year=2025", 200)["items"]] == [2025]
    assert_error(desk.client.get(f"{API}/programmes?year=two", headers=desk.h("officer")), 422, "validation_failed")
    assert desk.call("hanoi", "GET", "/programmes", 200)["items"] == []  # another province's
    for name in ("committee", "auditor"):
        assert_error(desk.client.get(f"{API}/programmes", headers=desk.h(name)), 403, "forbidden")


def test_a_request_draws_on_a_programme_of_the_case_s_province_that_pays_for_its_purpose(desk):
    case_id = desk.case()
    medical_only = desk.programme(purposes=["medical_treatment"])
    refused = desk.client.post(
        f"{API}/cases/{case_id}/payments",
        json=payment_body(medical_only, purpose="education"),
        headers=desk.h("hoa"),
    )
    assert assert_error(refused, 422, "validation_failed")["field_codes"] == {"purpose": ["not_in_programme"]}
    hanoi = operations.create_programme(
        desk.user("hanoi"), {"name": "Quỹ Hà Nội", "year": 2026, "budget_vnd": 1_000_000_000}
    )
    db.session.commit()
    elsewhere = desk.client.post(
        f"{API}/cases/{case_id}/payments", json=payment_body(str(hanoi.id)), headers=desk.h("hoa")
    )
    assert assert_error(elsewhere, 422, "validation_failed")["field_codes"] == {"programme": ["unknown_programme"]}
    assert count(PaymentRequest) == 0


# --- the list --------------------------------------------------------------------------------------------------------


def test_each_role_lists_the_requests_it_may_see_filtered_by_status_and_programme(desk):
    first, second = desk.programme(), desk.programme()
    case_id = desk.case()
    hoa_draft = desk.draft(case_id, first, 700_000)
    hoa_waiting = desk.submitted(case_id, second, 900_000)
    tuan_waiting = desk.submitted(case_id, first, 1_100_000, who="tuan")

    def listed(name: str, query: str = "") -> list[str]:
        return [p["id"] for p in desk.call(name, "GET", f"/payments{query}", 200)["items"]]

    assert set(listed("hoa")) == {hoa_draft["id"], hoa_waiting["id"]}  # a social worker: their own
    assert set(listed("lan")) == {hoa_draft["id"], hoa_waiting["id"], tuan_waiting["id"]}
    assert set(listed("officer")) == set(listed("finance")) == set(listed("lan"))
    assert listed("kythuong") == listed("hanoi") == listed("hanoifinance") == []
    assert set(listed("lan", "?status=submitted")) == {hoa_waiting["id"], tuan_waiting["id"]}
    assert listed("lan", f"?programme={second}") == [hoa_waiting["id"]]
    assert listed("lan", f"?status=draft&programme={second}") == []
    error = assert_error(
        desk.client.get(f"{API}/payments?status=lost&programme=42", headers=desk.h("lan")), 422, "validation_failed"
    )
    assert error["field_codes"] == {"status": ["invalid_status"], "programme": ["invalid_id"]}

    shown = desk.call("finance", "GET", f"/payments/{hoa_waiting['id']}", 200)
    assert shown["payee"] == PAYEE and shown["description"] == DESCRIPTION
    assert shown["programme"] == {"id": second, "name": shown["programme"]["name"]}
    assert (shown["case_id"], shown["purpose"], shown["amount_vnd"]) == (case_id, "medical_treatment", 900_000)
    assert_error(desk.client.get(f"{API}/payments/not-an-id", headers=desk.h("lan")), 404, "not_found")
    assert_error(desk.client.get(f"{API}/payments/{uuid.uuid4()}", headers=desk.h("lan")), 404, "not_found")


# --- roles without a part in payments --------------------------------------------------------------------------------


def snapshot() -> dict:
    reload()
    return {
        "rows": [count(m) for m in (Programme, PaymentRequest, PaymentDecision, Disbursement, StoredFile)],
        "statuses": sorted(db.session.scalars(select(PaymentRequest.status))),
        "money": sorted(db.session.execute(select(Programme.committed_vnd, Programme.paid_vnd)).all()),
    }


def test_committee_members_and_auditors_get_403_or_404_on_every_payments_endpoint(app, desk):
    programme_id = desk.programme()
    case_id = desk.case()
    waiting = desk.submitted(case_id, programme_id, 1_000_000)
    approved = desk.submitted(case_id, programme_id, 2_000_000)
    desk.decided("lan", approved["id"])
    draft = desk.draft(case_id, programme_id)
    before = snapshot()
    rules = [
        r for r in app.url_map.iter_rules() if app.view_functions[r.endpoint].__module__ == "casework.api.payments"
    ]
    assert len(rules) == 10  # every endpoint of the module is walked
    bodies = {
        "decision": {"decision": "approve"},
        "disbursement": {"paid_on": today().isoformat(), "method": "cash"},
    }
    for name in ("committee", "auditor"):
        for rule in rules:
            for payment in (waiting, approved, draft):
                url = rule.build({"case_id": case_id, "payment_id": payment["id"]}, append_unknown=False)[1]
                for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                    last = url.rsplit("/", 1)[-1]
                    if last == "attachments":
                        kwargs = {"data": {"file": (io.BytesIO(PDF), "x.pdf")}, "content_type": "multipart/form-data"}
                    elif method == "GET":
                        kwargs = {}
                    else:
                        kwargs = {"json": bodies.get(last, payment_body(programme_id))}
                    response = desk.client.open(url, method=method, headers=desk.h(name), **kwargs)
                    assert response.status_code in {403, 404}, (name, method, url, response.get_json())
                    assert response.get_json()["error"]["code"] in {"forbidden", "not_found", "second_factor_required"}
                    assert PAYEE["name"] not in response.get_data(as_text=True)
    assert snapshot() == before


# --- the audit trail -------------------------------------------------------------------------------------------------


def test_a_full_run_is_in_the_audit_trail_which_verifies(app_env, client, desk):
    """From the plan approved through the procedure to the payment made, every step is audited."""
    api = Api(client)
    case_id = api.open_case(desk.h("hoa"))
    api.to_support(desk.h("hoa"), desk.h("lan"), case_id)
    programme = desk.call(
        "officer",
        "POST",
        "/programmes",
        201,
        json={"name": "Quỹ Bảo trợ trẻ em", "year": 2026, "budget_vnd": 50_000_000},
    )
    small = desk.submitted(case_id, programme["id"], 4_000_000)
    desk.decided("minh", small["id"], "return", "Bổ sung giấy ra viện")
    desk.call("hoa", "PUT", f"/payments/{small['id']}", 200, json=payment_body(programme["id"], 3_500_000))
    assert desk.submit(small["id"]).status_code == 200
    desk.decided("minh", small["id"])
    assert desk.pay("finance", small["id"]).status_code == 201
    large = desk.submitted(case_id, programme["id"], 22_000_000)
    desk.decided("minh", large["id"])
    desk.decided("officer", large["id"])
    refused = desk.submitted(case_id, programme["id"], 600_000)
    desk.decided("minh", refused["id"], "reject", "Trùng khoản đã chi")

    reload()
    actions = [
        (e.action, e.object_id)
        for e in db.session.scalars(
            select(AuditEvent).where(AuditEvent.action.like("payments.%")).order_by(AuditEvent.seq)
        )
    ]
    assert actions.count(("payments.programme_created", programme["id"])) == 1
    assert [a for a, o in actions if o == small["id"]] == [
        "payments.requested",
        "payments.submitted",
        "payments.return",
        "payments.changed",
        "payments.submitted",
        "payments.approve",
        "payments.paid",
    ]
    assert [a for a, o in actions if o == large["id"]] == [
        "payments.requested",
        "payments.submitted",
        "payments.approve",
        "payments.approve",
    ]
    assert [a for a, o in actions if o == refused["id"]] == [
        "payments.requested",
        "payments.submitted",
        "payments.reject",
    ]
    assert count(AuditEvent, AuditEvent.action == "file.upload") == 3  # a receipt for each request
    approvals = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "payments.approve", AuditEvent.object_id == large["id"])
    ).all()
    assert [e.actor_id for e in approvals] == [desk.user("minh").id, desk.user("officer").id]
    # No payee, account or description in the trail.
    trail = " ".join(str(e.details) for e in db.session.scalars(select(AuditEvent)))
    for secret in (PAYEE["name"], PAYEE["account"], DESCRIPTION):
        assert secret not in trail

    assert audit.verify().ok
    cli = casework_cli(app_env, "audit", "verify")
    assert cli.returncode == 0, cli.stdout + cli.stderr
