"""The payment pages, driven through the test client with real forms, CSRF tokens and sign-ins: the request form and
its refusals, receipts, submission, the decision with its second-factor check, the payment, the ledgers, the month's
XLSX, and who may use them.

Messages are compared with their Vietnamese translation (``vi()``): until the catalogue translates a message it is
shown, and compared, as its English msgid.
"""

from __future__ import annotations

import io
import re
import time
from datetime import UTC, datetime, timedelta

import openpyxl
import pytest
from flask_babel import force_locale, gettext
from markupsafe import escape
from sqlalchemy import func, select

from casework.audit import AuditEvent
from casework.cases import operations as case_operations
from casework.cases.models import Case
from casework.dbtypes import utcnow
from casework.extensions import db
from casework.i18n import local_tz
from casework.payments import operations
from casework.payments.models import ApprovalBand, Disbursement, PaymentDecision, PaymentRequest, Programme
from casework.payments.views import age_text
from casework.security.files import StoredFile
from casework.support import operations as support
from tests.conftest import AuthActions, csrf_from

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
PAYEE = "Lò Thị Hoa"
ACCOUNT = "Agribank 8888 1234 5678"
FORM = {
    "purpose": "medical_treatment",
    "amount_vnd": "1.250.000",
    "payee_name": PAYEE,
    "payee_relation": "Mẹ",
    "payee_method": "bank",
    "payee_account": ACCOUNT,
    "description": "Viện phí khám và điều trị gãy tay tại Bệnh viện đa khoa tỉnh.",
}


def vi(msgid: str, **values) -> str:
    """The message as a Vietnamese page shows it (HTML-escaped)."""
    with force_locale("vi"):
        return str(escape(gettext(msgid, **values)))


def errors_of(html: str, field_id: str) -> str:
    """The text of the error list rendered next to the field ``field_id``."""
    match = re.search(rf'id="{re.escape(field_id)}-errors">(.*?)</ul>', html, re.S)
    assert match, f"no errors shown next to {field_id}"
    return match.group(1)


def fresh(model, object_id):
    db.session.rollback()  # a new transaction: see what the requests committed
    return db.session.get(model, object_id)


def count(model, *where) -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def events(action: str) -> list[AuditEvent]:
    db.session.rollback()
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def today() -> str:
    return utcnow().astimezone(local_tz()).strftime("%d/%m/%Y")


# --- set-up through the operations (fast) ---------------------------------------------------------------------------


def advance(case, actor, to: str) -> None:
    support.apply_transition(case, actor, to, version=case.version)
    db.session.commit()


def case_with_approved_plan(worker, supervisor, *, name: str = "Lò Văn Páo") -> Case:
    """A case of 06970 taken to the support stage: assessed, its plan drafted by the worker, approved by the
    supervisor (a payment other than emergency support needs an approved plan)."""
    payload = {
        "child": {"full_name": name, "sex": "male", "birth_year": 2014, "commune_code": "06970"},
        "categories": ["violence_harm"],
        "risk_level": "medium",
        "source": "school",
        "received_at": "2025-03-01T08:00:00+07:00",
        "summary": "Cô giáo báo trẻ bị gãy tay, gia đình không có tiền chữa.",
    }
    case = case_operations.open_case(case_operations.validate_intake(payload, worker), worker)
    db.session.commit()
    for stage in ("initial_assessment", "detailed_assessment", "plan_drafting"):
        advance(case, worker, stage)
    review_on = (utcnow().astimezone(local_tz()).date() + timedelta(days=90)).isoformat()
    support.save_plan(
        case,
        worker,
        {
            "goals": "Trẻ được chữa trị và đi học lại.",
            "review_on": review_on,
            "services": [{"service_type": "medical_care"}],
        },
    )
    db.session.commit()
    advance(case, worker, "plan_approval")
    advance(case, supervisor, "support")
    return case


def programme_of(officer, *, name: str = "Quỹ Bảo trợ trẻ em tỉnh", budget: int = 500_000_000) -> Programme:
    programme = operations.create_programme(
        officer, {"name": name, "year": utcnow().astimezone(local_tz()).year, "budget_vnd": budget}
    )
    db.session.commit()
    return programme


def submitted_request(case, requester, programme, **changes) -> PaymentRequest:
    """A request made, with a receipt, and submitted, through the operations."""
    data = {
        "programme": str(programme.id),
        "purpose": "medical_treatment",
        "amount_vnd": 1_250_000,
        "description": FORM["description"],
        "payee": {"name": PAYEE, "relation": "Mẹ", "method": "bank", "account": ACCOUNT},
    } | changes
    payment = operations.create_request(case, requester, data)
    operations.attach(payment, requester, io.BytesIO(PDF), "hoa-don-vien-phi.pdf")
    operations.submit(payment, requester)
    db.session.commit()
    return payment


def approved_request(case, requester, approver, programme) -> PaymentRequest:
    payment = submitted_request(case, requester, programme)
    operations.decide(payment, approver, "approve", fresh_second_factor=True)
    db.session.commit()
    return payment


def default_policy() -> None:
    """The default approval bands, as ``casework init`` leaves them (the table is emptied between tests)."""
    if not db.session.scalar(select(func.count()).select_from(ApprovalBand)):
        for low, high, roles in operations.DEFAULT_BANDS:
            db.session.add(ApprovalBand(min_vnd=low, max_vnd=high, approver_roles=roles))
        db.session.commit()


# --- fixtures -------------------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def policy(app):
    default_policy()


@pytest.fixture
def worker(make_user):
    return make_user("social_worker", communes=("06970",), username="hathi", full_name="Nguyễn Thị Hà")


@pytest.fixture
def supervisor(make_user):
    return make_user("supervisor", communes=("06970",), username="lan", full_name="Phạm Thị Lan")


@pytest.fixture
def officer(make_user):
    return make_user("provincial_officer", username="tinh", full_name="Vũ Văn Tỉnh")


@pytest.fixture
def finance(make_user):
    return make_user("finance_officer", username="ketoan", full_name="Đỗ Thị Kế")


@pytest.fixture
def programme(officer):
    return programme_of(officer)


@pytest.fixture
def case(worker, supervisor):
    return case_with_approved_plan(worker, supervisor)


def signed_in(app, user):
    """A new browser (test client) signed in as ``user`` (with a code when the role needs one)."""
    client = app.test_client()
    response = AuthActions(client).login(user.username)
    assert response.status_code == 302 and response.headers["Location"] == "/", response.status_code
    return client


def token(client, path: str = "/") -> str:
    return csrf_from(client.get(path).get_data(as_text=True))


def post_request(client, case, chosen, **changes):
    data = FORM | {"programme": str(chosen.id), "csrf_token": token(client)} | changes
    return client.post(f"/cases/{case.id}/payments/new", data={k: v for k, v in data.items() if v is not None})


def post_on(client, payment, path: str, data: dict | None = None, **kwargs):
    page = client.get(f"/payments/{payment.id}")
    assert page.status_code == 200
    csrf = csrf_from(page.get_data(as_text=True))
    return client.post(f"/payments/{payment.id}/{path}", data={"csrf_token": csrf, **(data or {})}, **kwargs)


def stale_second_factor(client, app) -> None:
    """Make the session's last second-factor check older than CASEWORK_REAUTH_MINUTES."""
    with client.session_transaction() as session:
        session["second_factor_at"] = int(time.time()) - app.config["CASEWORK_REAUTH_MINUTES"] * 60 - 5


# --- the request form -------------------------------------------------------------------------------------------------


def test_a_worker_requests_a_payment_through_the_form_and_gets_a_draft(app, worker, case, programme):
    client = signed_in(app, worker)
    form = client.get(f"/cases/{case.id}/payments/new")
    assert form.status_code == 200
    html = form.get_data(as_text=True)
    assert programme.name in html
    assert "Khám bệnh, chữa bệnh" in html  # the purposes' labels from codes.toml

    response = post_request(client, case, programme)
    assert response.status_code == 302
    payment = db.session.scalar(select(PaymentRequest))
    assert response.headers["Location"] == f"/payments/{payment.id}"
    assert payment.status == "draft"
    assert payment.amount_vnd == 1_250_000  # "1.250.000" is read as whole đồng
    assert payment.requested_by_id == worker.id
    assert payment.payee_name == PAYEE and payment.payee_account == ACCOUNT
    # The payee and the description are encrypted in the row.
    raw = db.session.execute(select(PaymentRequest.__table__)).mappings().one()
    assert PAYEE.encode() not in repr(dict(raw)).encode()

    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "1.250.000 ₫" in page
    assert PAYEE in page and ACCOUNT in page
    assert case.case_number in page
    assert vi("Draft") in page


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("0", "The amount must be more than 0 đồng."),
        ("1,5", "Write the amount in whole đồng, for example 1.250.000."),
        ("abc", "Write the amount in whole đồng, for example 1.250.000."),
        ("100.000.001", None),  # over the ceiling
        ("", "This field is required."),
    ],
)
def test_a_bad_amount_is_refused_next_to_its_field_and_nothing_is_stored(app, worker, case, programme, amount, message):
    client = signed_in(app, worker)
    response = post_request(client, case, programme, amount_vnd=amount)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    if message is None:
        ceiling = f"{app.config['CASEWORK_PAYMENT_CEILING_VND']:,}".replace(",", ".")
        message_html = vi("At most %(ceiling)s đồng per request.", ceiling=ceiling)
    else:
        message_html = vi(message)
    assert message_html in errors_of(html, "amount_vnd")
    assert f'value="{escape(amount)}"' in html  # what was typed is shown again
    assert count(PaymentRequest) == 0


def test_a_missing_payee_is_refused_next_to_each_field(app, worker, case, programme):
    client = signed_in(app, worker)
    response = post_request(client, case, programme, payee_name="", payee_relation="", payee_account="")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert vi("This field is required.") in errors_of(html, "payee_name")
    assert vi("This field is required.") in errors_of(html, "payee_relation")
    # Paid by bank transfer: the account is needed.
    assert vi("Give the bank and the account number.") in errors_of(html, "payee_account")
    assert count(PaymentRequest) == 0


def test_no_programme_or_purpose_chosen_is_refused_next_to_the_fields(app, worker, case, programme):
    client = signed_in(app, worker)
    response = post_request(client, case, programme, programme="", purpose="")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert vi("Choose a programme of the case's province.") in errors_of(html, "programme")
    assert vi("This field is required.") in errors_of(html, "purpose")
    assert count(PaymentRequest) == 0


def test_a_closed_case_takes_no_request_409_with_the_message(app, worker, supervisor, case, programme):
    support.apply_transition(case, supervisor, "closed", version=case.version, closure_reason="moved_away")
    db.session.commit()
    client = signed_in(app, worker)
    message = vi("This case is closed: it takes no new payment request.")
    page = client.get(f"/cases/{case.id}/payments/new")
    assert page.status_code == 409
    assert message in page.get_data(as_text=True)
    response = client.post(
        f"/cases/{case.id}/payments/new", data=FORM | {"programme": str(programme.id), "csrf_token": token(client)}
    )
    assert response.status_code == 409
    assert message in response.get_data(as_text=True)
    assert count(PaymentRequest) == 0
    # The case's payments page offers no new request.
    assert f"/cases/{case.id}/payments/new" not in client.get(f"/cases/{case.id}/payments").get_data(as_text=True)


def test_a_post_without_a_csrf_token_is_refused_and_changes_nothing(app, worker, case, programme):
    client = signed_in(app, worker)
    response = client.post(f"/cases/{case.id}/payments/new", data=FORM | {"programme": str(programme.id)})
    assert response.status_code == 400
    assert count(PaymentRequest) == 0


# --- receipts, submission, changes ----------------------------------------------------------------------------------


def test_the_requester_uploads_a_receipt_and_submits_and_the_request_can_no_longer_be_changed(
    app, worker, case, programme
):
    client = signed_in(app, worker)
    post_request(client, case, programme)
    payment = db.session.scalar(select(PaymentRequest))

    # Without a receipt the request is not submitted.
    refused = post_on(client, payment, "submit")
    assert refused.status_code == 422
    assert vi("Attach at least one receipt or quotation.") in refused.get_data(as_text=True)
    assert fresh(PaymentRequest, payment.id).status == "draft"

    uploaded = post_on(
        client,
        payment,
        "receipts",
        {"file": (io.BytesIO(PDF), "hóa đơn viện phí.pdf")},
        content_type="multipart/form-data",
    )
    assert uploaded.status_code == 302
    stored = db.session.scalar(select(StoredFile).where(StoredFile.owner_type == "payment"))
    assert stored.owner_id == str(payment.id)
    page = client.get(f"/payments/{payment.id}").get_data(as_text=True)
    assert "hóa đơn viện phí.pdf" in page

    download = client.get(f"/payments/{payment.id}/receipts/{stored.id}")
    assert download.status_code == 200
    assert download.data == PDF
    assert download.headers["Cache-Control"] == "no-store"
    assert download.headers["Content-Disposition"].startswith("attachment")
    assert [e.object_id for e in events("file.download")] == [str(stored.id)]

    submitted = post_on(client, payment, "submit")
    assert submitted.status_code == 302
    payment = fresh(PaymentRequest, payment.id)
    assert payment.status == "submitted"
    assert payment.next_role == "supervisor"  # 1.250.000 ₫: a supervisor of the commune decides

    # Submitted: no edit, no more receipts.
    assert client.get(f"/payments/{payment.id}/edit").status_code == 409
    late = client.post(
        f"/payments/{payment.id}/receipts",
        data={"csrf_token": token(client), "file": (io.BytesIO(PDF), "them.pdf")},
        content_type="multipart/form-data",
    )
    assert late.status_code == 409
    assert vi("A submitted request cannot be changed unless it is sent back.") in late.get_data(as_text=True)
    assert count(StoredFile, StoredFile.owner_type == "payment") == 1


def test_an_upload_that_is_not_a_receipt_is_refused_next_to_the_field(app, worker, case, programme):
    client = signed_in(app, worker)
    post_request(client, case, programme)
    payment = db.session.scalar(select(PaymentRequest))
    response = post_on(
        client,
        payment,
        "receipts",
        {"file": (io.BytesIO(b"MZ\x90\x00 not a receipt"), "hoa-don.pdf")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 422
    assert errors_of(response.get_data(as_text=True), "file")
    assert count(StoredFile, StoredFile.owner_type == "payment") == 0


def test_the_requester_changes_a_draft_and_nobody_else_may(app, make_user, worker, case, programme):
    client = signed_in(app, worker)
    post_request(client, case, programme)
    payment = db.session.scalar(select(PaymentRequest))
    form = client.get(f"/payments/{payment.id}/edit")
    assert form.status_code == 200
    assert 'value="1.250.000"' in form.get_data(as_text=True)
    changed = client.post(
        f"/payments/{payment.id}/edit",
        data=FORM | {"programme": str(programme.id), "amount_vnd": "980.000", "csrf_token": token(client)},
    )
    assert changed.status_code == 302
    assert fresh(PaymentRequest, payment.id).amount_vnd == 980_000

    colleague = make_user("social_worker", communes=("06970",), username="colleague")
    other = signed_in(app, colleague)
    assert other.get(f"/payments/{payment.id}").status_code == 200  # same commune: sees it
    refused = other.get(f"/payments/{payment.id}/edit")
    assert refused.status_code == 403
    assert vi("Only the person who requested it may change it.") in refused.get_data(as_text=True)
    attempt = other.post(
        f"/payments/{payment.id}/edit",
        data=FORM | {"programme": str(programme.id), "amount_vnd": "5.000", "csrf_token": token(other)},
    )
    assert attempt.status_code == 403
    assert fresh(PaymentRequest, payment.id).amount_vnd == 980_000


# --- decisions --------------------------------------------------------------------------------------------------------


def test_a_decision_without_a_fresh_second_factor_goes_to_reauth_and_changes_nothing(
    app, worker, supervisor, case, programme
):
    payment = submitted_request(case, worker, programme)
    client = signed_in(app, supervisor)
    csrf = token(client, f"/payments/{payment.id}")
    stale_second_factor(client, app)
    response = client.post(
        f"/payments/{payment.id}/decision",
        data={"csrf_token": csrf, "decision": "approve"},
        headers={"Referer": f"http://localhost/payments/{payment.id}"},
    )
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/reauth")
    assert f"/payments/{payment.id}" in response.headers["Location"]  # and back to the request afterwards
    assert fresh(PaymentRequest, payment.id).status == "submitted"
    assert count(PaymentDecision) == 0


def test_the_supervisor_approves_from_the_inbox_and_the_inbox_empties(app, worker, supervisor, case, programme):
    payment = submitted_request(case, worker, programme)
    client = signed_in(app, supervisor)
    inbox = client.get("/payments/inbox")
    assert inbox.status_code == 200
    html = inbox.get_data(as_text=True)
    assert f"/payments/{payment.id}" in html
    assert "1.250.000 ₫" in html
    assert case.case_number in html
    assert re.search(r'class="age">[^<]*\S', html)  # how long it has waited

    page = client.get(f"/payments/{payment.id}").get_data(as_text=True)
    assert f'action="/payments/{payment.id}/decision"' in page
    response = post_on(client, payment, "decision", {"decision": "approve"})
    assert response.status_code == 302
    payment = fresh(PaymentRequest, payment.id)
    assert payment.status == "approved"
    assert fresh(Programme, programme.id).committed_vnd == 1_250_000
    assert [e.object_id for e in events("payments.approve")] == [str(payment.id)]

    assert vi("Nothing awaits your decision.") in client.get("/payments/inbox").get_data(as_text=True)
    shown = client.get(f"/payments/{payment.id}").get_data(as_text=True)
    assert vi("Approved, to be paid") in shown
    assert f'action="/payments/{payment.id}/decision"' not in shown  # decided: no more buttons


def test_the_inbox_lists_the_oldest_request_first_with_how_long_each_has_waited(
    app, worker, supervisor, case, programme
):
    newer = submitted_request(case, worker, programme, amount_vnd=200_000)
    older = submitted_request(case, worker, programme, amount_vnd=300_000)
    older.submitted_at = utcnow() - timedelta(days=3, hours=2)
    db.session.commit()
    html = signed_in(app, supervisor).get("/payments/inbox").get_data(as_text=True)
    assert html.index(f"/payments/{older.id}") < html.index(f"/payments/{newer.id}")
    with force_locale("vi"):
        waited = age_text(timedelta(days=3, hours=2))
    assert f'class="age">{waited}<' in html


def test_the_age_of_a_request_is_told_in_days_and_hours(app):
    with force_locale("en"):
        assert age_text(timedelta(minutes=20)) == "less than an hour"
        assert age_text(timedelta(hours=5, minutes=59)) == "5 hours"
        assert age_text(timedelta(days=1, minutes=3)) == "1 day"
        assert age_text(timedelta(days=2, hours=1)) == "2 days 1 hour"


def test_a_rejection_without_a_reason_is_422_next_to_the_field_and_with_one_it_is_recorded(
    app, worker, supervisor, case, programme
):
    payment = submitted_request(case, worker, programme)
    client = signed_in(app, supervisor)
    refused = post_on(client, payment, "decision", {"decision": "reject", "reason": "  "})
    assert refused.status_code == 422
    assert vi("Say why.") in errors_of(refused.get_data(as_text=True), "reason")
    assert fresh(PaymentRequest, payment.id).status == "submitted"

    reason = "Hóa đơn không có dấu của bệnh viện."
    rejected = post_on(client, payment, "decision", {"decision": "reject", "reason": reason})
    assert rejected.status_code == 302
    assert fresh(PaymentRequest, payment.id).status == "rejected"
    page = client.get(f"/payments/{payment.id}").get_data(as_text=True)
    assert reason in page  # the decisions' history, with the reason
    # Decided: a second decision is refused with the rule's message.
    again = post_on(client, payment, "decision", {"decision": "approve"})
    assert again.status_code == 409
    assert vi("This request has already been decided.") in again.get_data(as_text=True)
    assert count(PaymentDecision) == 1


def test_a_request_sent_back_can_be_changed_and_submitted_again(app, worker, supervisor, case, programme):
    payment = submitted_request(case, worker, programme)
    approver = signed_in(app, supervisor)
    sent_back = post_on(approver, payment, "decision", {"decision": "return", "reason": "Thiếu hóa đơn thuốc."})
    assert sent_back.status_code == 302
    assert fresh(PaymentRequest, payment.id).status == "returned"

    requester = signed_in(app, worker)
    assert requester.get(f"/payments/{payment.id}/edit").status_code == 200
    assert post_on(requester, payment, "submit").status_code == 302
    again = fresh(PaymentRequest, payment.id)
    assert again.status == "submitted" and again.round == 2


def test_another_communes_supervisor_gets_404_on_the_request_and_cannot_decide(app, make_user, worker, case, programme):
    payment = submitted_request(case, worker, programme)
    elsewhere = make_user("supervisor", communes=("06979",), username="kythuong")
    client = signed_in(app, elsewhere)
    assert client.get(f"/payments/{payment.id}").status_code == 404
    response = client.post(
        f"/payments/{payment.id}/decision", data={"csrf_token": token(client), "decision": "approve"}
    )
    assert response.status_code == 404
    body = response.get_data(as_text=True)
    assert PAYEE not in body and case.case_number not in body
    assert f"/payments/{payment.id}" not in client.get("/payments/inbox").get_data(as_text=True)
    assert fresh(PaymentRequest, payment.id).status == "submitted"


def test_a_supervisor_who_requested_cannot_approve_their_own_request(app, make_user, supervisor, case, programme):
    payment = submitted_request(case, supervisor, programme)
    client = signed_in(app, supervisor)
    assert f"/payments/{payment.id}" not in client.get("/payments/inbox").get_data(as_text=True)
    response = post_on(client, payment, "decision", {"decision": "approve"})
    assert response.status_code == 403
    assert vi("You cannot decide on your own request.") in response.get_data(as_text=True)
    assert fresh(PaymentRequest, payment.id).status == "submitted"
    assert count(PaymentDecision) == 0
    # Another supervisor of the commune may.
    colleague = make_user("supervisor", communes=("06970",), username="colleague")
    assert post_on(signed_in(app, colleague), payment, "decision", {"decision": "approve"}).status_code == 302
    assert fresh(PaymentRequest, payment.id).status == "approved"


# --- the payment and the ledgers --------------------------------------------------------------------------------------


def test_a_finance_officer_records_the_payment_once_and_a_second_time_is_409(
    app, worker, supervisor, finance, case, programme
):
    payment = approved_request(case, worker, supervisor, programme)
    client = signed_in(app, finance)
    assert f"/payments/{payment.id}" in client.get("/").get_data(as_text=True)  # on the finance home page
    assert f"/payments/{payment.id}" in client.get("/payments/to-pay").get_data(as_text=True)
    page = client.get(f"/payments/{payment.id}").get_data(as_text=True)
    assert PAYEE in page and ACCOUNT in page
    assert f"/cases/{case.id}" not in page  # a finance officer never opens the child's record

    missing = post_on(client, payment, "disbursement", {"paid_on": today(), "method": "bank", "reference": ""})
    assert missing.status_code == 422
    assert vi("Give the bank transfer's reference.") in errors_of(missing.get_data(as_text=True), "reference")

    data = {"paid_on": today(), "method": "bank", "reference": "UNC-2025-0042"}
    paid = post_on(client, payment, "disbursement", data)
    assert paid.status_code == 302
    assert fresh(PaymentRequest, payment.id).status == "paid"
    again = client.post(f"/payments/{payment.id}/disbursement", data=data | {"csrf_token": token(client)})
    assert again.status_code == 409
    assert vi("This request has already been paid.") in again.get_data(as_text=True)
    assert count(Disbursement) == 1
    programme = fresh(Programme, programme.id)
    assert (programme.committed_vnd, programme.paid_vnd) == (0, 1_250_000)
    assert "UNC-2025-0042" in client.get(f"/payments/{payment.id}").get_data(as_text=True)


def test_a_payment_not_yet_approved_cannot_be_recorded(app, worker, supervisor, case, programme):
    payment = submitted_request(case, worker, programme)
    client = signed_in(app, supervisor)
    response = post_on(client, payment, "disbursement", {"paid_on": today(), "method": "cash"})
    assert response.status_code == 409
    assert vi("Only an approved request can be paid.") in response.get_data(as_text=True)
    assert count(Disbursement) == 0


def test_the_case_and_programme_ledgers_show_the_totals(app, worker, supervisor, finance, case, programme):
    payment = approved_request(case, worker, supervisor, programme)
    operations.disburse(payment, finance, {"paid_on": today(), "method": "cash"})
    db.session.commit()
    waiting = submitted_request(case, worker, programme, amount_vnd=300_000)
    client = signed_in(app, worker)
    ledger = client.get(f"/cases/{case.id}/payments")
    assert ledger.status_code == 200
    html = ledger.get_data(as_text=True)
    assert re.search(r'id="total-paid">1\.250\.000 ₫<', html)
    assert re.search(r'id="total-submitted">300\.000 ₫<', html)
    assert f"/payments/{waiting.id}" in html
    assert f"/cases/{case.id}/payments/new" in html  # an open case: a new request may be made
    assert f"/cases/{case.id}/payments" in client.get(f"/cases/{case.id}").get_data(as_text=True)

    page = client.get(f"/programmes/{programme.id}").get_data(as_text=True)
    assert re.search(r'id="paid">1\.250\.000 ₫<', page)
    assert re.search(r'id="available">498\.750\.000 ₫<', page)
    listing = client.get("/programmes").get_data(as_text=True)
    assert "500.000.000 ₫" in listing and "498.750.000 ₫" in listing


def test_a_worker_elsewhere_sees_the_provinces_programme_but_not_the_requests_on_it(
    app, make_user, worker, case, programme
):
    payment = submitted_request(case, worker, programme)
    elsewhere = make_user("social_worker", communes=("06979",), username="kythuong")
    client = signed_in(app, elsewhere)
    page = client.get(f"/programmes/{programme.id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert f"/payments/{payment.id}" not in html and case.case_number not in html
    assert client.get(f"/cases/{case.id}/payments").status_code == 404


def test_a_worker_sees_the_state_of_their_own_requests(app, make_user, worker, supervisor, case, programme):
    mine = submitted_request(case, worker, programme)
    colleague = make_user("social_worker", communes=("06970",), username="colleague")
    theirs = submitted_request(case, colleague, programme, amount_vnd=200_000)
    client = signed_in(app, worker)
    html = client.get("/payments/").get_data(as_text=True)
    assert f"/payments/{mine.id}" in html and f"/payments/{theirs.id}" not in html
    assert vi("Awaiting a decision") in html
    filtered = client.get("/payments/", query_string={"status": "paid"}).get_data(as_text=True)
    assert f"/payments/{mine.id}" not in filtered


# --- programmes -------------------------------------------------------------------------------------------------------


def test_a_provincial_officer_creates_a_programme_and_a_duplicate_is_409(app, officer, worker):
    client = signed_in(app, officer)
    data = {
        "name": "Hỗ trợ y tế trẻ em 2025",
        "year": "2025",
        "budget_vnd": "200.000.000",
        "purposes": ["medical_treatment", "transport"],
        "groups": ["violence_harm"],
    }
    created = client.post("/programmes/new", data=data | {"csrf_token": token(client, "/programmes/new")})
    assert created.status_code == 302
    programme = db.session.scalar(select(Programme))
    assert (programme.budget_vnd, programme.purposes, programme.province_code) == (
        200_000_000,
        ["medical_treatment", "transport"],
        "22",
    )
    duplicate = client.post("/programmes/new", data=data | {"csrf_token": token(client, "/programmes/new")})
    assert duplicate.status_code == 409
    assert vi("This province already has a programme of that name for that year.") in duplicate.get_data(as_text=True)
    bad = client.post(
        "/programmes/new",
        data=data | {"name": "Khác", "budget_vnd": "1,5", "csrf_token": token(client, "/programmes/new")},
    )
    assert bad.status_code == 422
    assert vi("Write a whole number.") in errors_of(bad.get_data(as_text=True), "budget_vnd")
    assert count(Programme) == 1

    assert signed_in(app, worker).get("/programmes/new").status_code == 403


# --- the month's XLSX -------------------------------------------------------------------------------------------------


def sheet_of(response) -> list[list]:
    book = openpyxl.load_workbook(io.BytesIO(response.data))
    return [list(row) for row in book.active.iter_rows(values_only=True)]


def test_the_monthly_export_has_payee_columns_for_finance_only_and_is_audited(
    app, worker, supervisor, finance, case, programme
):
    approved_request(case, worker, supervisor, programme)
    month = utcnow().astimezone(local_tz()).strftime("%Y-%m")

    accountant = signed_in(app, finance)
    assert accountant.get("/payments/export").status_code == 200  # the month picker
    response = accountant.get("/payments/export", query_string={"month": month})
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == f"attachment; filename=chi-tra-{month}.xlsx"
    assert response.headers["Cache-Control"] == "no-store"
    rows = sheet_of(response)
    with force_locale("vi"):
        payee_header = gettext("Payee")
    assert payee_header in rows[0]
    assert [case.case_number, PAYEE, ACCOUNT] == [rows[1][0], rows[1][rows[0].index(payee_header)], rows[1][11]]
    assert rows[1][4] == 1_250_000

    boss = signed_in(app, supervisor)
    theirs = boss.get("/payments/export", query_string={"month": month})
    assert theirs.status_code == 200
    rows = sheet_of(theirs)
    assert payee_header not in rows[0]
    assert rows[1][0] == case.case_number
    assert not any(PAYEE in str(cell) or ACCOUNT in str(cell) for row in rows for cell in row)

    audited = events("payments.export")
    assert sorted((e.details["payee_details"], e.details["rows"]) for e in audited) == [(False, 1), (True, 1)]


def test_the_finance_officers_export_with_payees_needs_a_fresh_second_factor(app, finance):
    client = signed_in(app, finance)
    stale_second_factor(client, app)
    response = client.get("/payments/export", query_string={"month": "2025-03"})
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/reauth")
    assert events("payments.export") == []


def test_a_bad_month_is_refused_and_nothing_is_exported(app, supervisor):
    client = signed_in(app, supervisor)
    for month in ("2025-13", "tháng 3", "1999-01"):
        response = client.get("/payments/export", query_string={"month": month})
        assert response.status_code == 422, month
        assert vi("Choose a month.") in errors_of(response.get_data(as_text=True), "month")
    assert events("payments.export") == []


# --- who may use the pages --------------------------------------------------------------------------------------------


def test_a_committee_member_is_refused_every_payment_page(app, make_user, worker, case, programme):
    payment = submitted_request(case, worker, programme)
    member = make_user("committee_member", username="uyban")
    client = signed_in(app, member)
    csrf = token(client)
    pages = [
        f"/cases/{case.id}/payments",
        f"/cases/{case.id}/payments/new",
        f"/payments/{payment.id}",
        f"/payments/{payment.id}/edit",
        "/payments/",
        "/payments/inbox",
        "/payments/to-pay",
        "/payments/export",
        f"/payments/export?month={utcnow():%Y-%m}",
        "/programmes",
        "/programmes/new",
        f"/programmes/{programme.id}",
    ]
    for url in pages:
        response = client.get(url)
        assert response.status_code in {403, 404}, (url, response.status_code)
        assert PAYEE not in response.get_data(as_text=True)
    for path in ("submit", "decision", "disbursement", "receipts", "edit"):
        response = client.post(f"/payments/{payment.id}/{path}", data={"csrf_token": csrf, "decision": "approve"})
        assert response.status_code in {403, 404}, (path, response.status_code)
    assert fresh(PaymentRequest, payment.id).status == "submitted"
    assert "/payments/" not in client.get("/").get_data(as_text=True)  # no door in the navigation
    assert events("payments.export") == []


def test_the_supervisors_home_shows_the_ten_oldest_requests_awaiting_them_and_the_inbox_all(
    app, worker, supervisor, case, programme
):
    from casework.main.views import HOME_LIST

    payments = [submitted_request(case, worker, programme, amount_vnd=100_000 + n) for n in range(HOME_LIST + 2)]
    db.session.rollback()  # once: fresh() in the loop would roll back the times set before it
    for n, payment in enumerate(payments):  # submitted a minute apart, the first one first
        db.session.get(PaymentRequest, payment.id).submitted_at = datetime(2025, 3, 1, 2, n, tzinfo=UTC)
    db.session.commit()
    client = signed_in(app, supervisor)
    home = client.get("/").get_data(as_text=True)
    shown = [n for n, p in enumerate(payments) if f"/payments/{p.id}" in home]
    assert shown == list(range(HOME_LIST)), shown
    inbox = client.get("/payments/inbox").get_data(as_text=True)
    assert all(f"/payments/{p.id}" in inbox for p in payments)
