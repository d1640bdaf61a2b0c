"""Deny by default: every page of the app, walked from the URL map, for anonymous users and for every role.

A new route fails ``test_every_page_route_is_declared`` until it is given its allowed roles here, so access
control is decided the day the route is added.
"""

from __future__ import annotations

import io

import pytest

from casework.auth.roles import ROLES, SECOND_FACTOR_ROLES
from casework.cases import importer
from casework.cases import operations as case_operations
from casework.extensions import db
from casework.jobs.models import Job
from casework.notifications.models import Notification
from casework.payments import operations as payment_operations
from casework.scope import RECORD_ROLES
from casework.support import operations as support_operations
from tests.conftest import AuthActions, csrf_from

EVERYONE = frozenset(ROLES)
PUBLIC = "public"

#: endpoint -> the roles that may use it (PUBLIC: no sign-in needed).
ACCESS: dict[str, frozenset[str] | str] = {
    "static": PUBLIC,
    "auth.login": PUBLIC,
    "auth.login_code": PUBLIC,  # answers only to a pending sign-in (tested in test_second_factor.py)
    "auth.login_enrol": PUBLIC,  # likewise
    "main.healthz": PUBLIC,
    "main.set_language": PUBLIC,
    "main.home": EVERYONE,
    "auth.logout": EVERYONE,
    "auth.reauth": SECOND_FACTOR_ROLES,
    "jobs.list_jobs": EVERYONE,
    "jobs.show_job": frozenset(),  # only the job's starter: tested with someone else's job
    "jobs.reload_units": frozenset({"admin"}),
    "auth.list_users": frozenset({"admin"}),
    "auth.create_user": frozenset({"admin"}),
    "auth.show_user": frozenset({"admin"}),
    "auth.toggle_active": frozenset({"admin"}),
    "auth.unlock_user": frozenset({"admin"}),
    "auth.reset_password": frozenset({"admin"}),
    "audit.list_events": frozenset({"auditor"}),
    "audit.export_events": frozenset({"auditor"}),
    "imports.download_template": RECORD_ROLES,
    "imports.upload_register": RECORD_ROLES,
    "imports.show_batch": frozenset(),  # only the batch's uploader: tested with someone else's batch
    "imports.run_import": frozenset(),  # likewise
    "cases.search_cases": RECORD_ROLES,
    "cases.new_case": RECORD_ROLES,
    "cases.show_case": RECORD_ROLES,  # within the user's area; 404 elsewhere (tested in test_cases_web.py)
    "cases.edit_case": RECORD_ROLES,
    "cases.add_note": RECORD_ROLES,
    "cases.upload_file": RECORD_ROLES,
    "cases.download_file": RECORD_ROLES,
    "cases.record_consent": RECORD_ROLES,
    "cases.withdraw_consent": RECORD_ROLES,
    "cases.refer_case": RECORD_ROLES,
    "cases.link_sibling": RECORD_ROLES,
    "cases.assign_case": frozenset({"supervisor"}),  # of the case's commune
    "cases.list_referrals": frozenset({"supervisor"}),
    "cases.decide_referral": frozenset({"supervisor"}),  # of the receiving commune
    "notifications.list_notifications": EVERYONE,  # the user's own inbox
    "notifications.mark_read": EVERYONE,  # only the user's own: someone else's is 404 (test_notifications.py)
    "notifications.mark_all_read": EVERYONE,  # the user's own
    "printing.show_form": RECORD_ROLES,  # within the user's area; 404 elsewhere (test_printable_forms.py)
    "printing.download_form": RECORD_ROLES,
    "workflows.list_workflows": frozenset({"admin", "supervisor"}),  # read-only, no case data
    "workflows.show_workflow": frozenset({"admin", "supervisor"}),
    # The procedure page and its forms: within the user's area (404 elsewhere, test_support_web.py); recording work
    # takes a social worker or supervisor of the commune (a provincial officer reads).
    "support.procedure": RECORD_ROLES,
    "support.show_timeline": RECORD_ROLES,
    "support.take_transition": RECORD_ROLES,
    "support.record_assessment": RECORD_ROLES,
    "support.record_emergency_measure": RECORD_ROLES,
    "support.save_plan": RECORD_ROLES,
    "support.record_service": RECORD_ROLES,
    "support.update_referral": RECORD_ROLES,
    "support.record_visit": RECORD_ROLES,
    "support.request_closure": RECORD_ROLES,
    "support.decide_closure": RECORD_ROLES,  # a supervisor of the commune, not the requester (test_support_web.py)
    # Payments (test_payments_web.py): requests within the user's area (404 elsewhere); finance officers see the
    # province's requests and payees, never a case; requesting, changing and submitting are the requester's.
    "payments.case_payments": RECORD_ROLES,
    "payments.new_request": frozenset({"social_worker", "supervisor"}),
    "payments.show_request": RECORD_ROLES | {"finance_officer"},
    # The requester only: the draft of ``ids`` is a social worker's, so everyone else is refused.
    "payments.edit_request": frozenset({"social_worker"}),
    "payments.upload_receipt": frozenset({"social_worker"}),
    "payments.download_receipt": RECORD_ROLES | {"finance_officer"},  # a receipt of the request only
    "payments.submit_request": frozenset({"social_worker"}),
    "payments.decide": frozenset({"supervisor", "provincial_officer"}),  # at their step, never their own
    "payments.record_payment": frozenset({"supervisor", "finance_officer"}),  # once approved
    "payments.list_requests": RECORD_ROLES | {"finance_officer"},
    "payments.inbox": frozenset({"supervisor", "provincial_officer"}),
    "payments.to_pay": frozenset({"supervisor", "finance_officer"}),
    "payments.export": frozenset({"supervisor", "provincial_officer", "finance_officer"}),
    "payments.list_programmes": RECORD_ROLES | {"finance_officer", "admin"},
    "payments.new_programme": frozenset({"provincial_officer", "admin"}),
    "payments.show_programme": RECORD_ROLES | {"finance_officer", "admin"},
    # Statistics (test_stats_web.py): committee members and provincial officers, of their own province only (403
    # for another); a background export's page and file are its starter's only (404 for anyone else's job).
    "stats.dashboard": frozenset({"committee_member", "provincial_officer"}),
    "stats.export_csv": frozenset({"committee_member", "provincial_officer"}),
    "stats.export_xlsx": frozenset({"committee_member", "provincial_officer"}),
    "stats.show_export": frozenset(),
    "stats.download_export": frozenset(),
}


def page_rules(app):
    return [r for r in app.url_map.iter_rules() if not r.endpoint.startswith("api.")]


def test_every_page_route_is_declared(app):
    undeclared = sorted({r.endpoint for r in page_rules(app)} - set(ACCESS))
    assert undeclared == [], f"declare who may use these routes in tests/test_access.py: {undeclared}"


def _url(rule, ids) -> str:
    values = {name: ids[name] for name in rule.arguments}
    return rule.build(values, append_unknown=False)[1]


@pytest.fixture
def ids(make_user):
    """Real objects for the URL parameters: a user of the same province, a job and an import of someone else, and
    a case of commune 06970 with a file, a consent and a referral awaiting an answer from commune 06979."""
    target = make_user("social_worker", username="target")
    stranger = make_user("auditor", username="stranger")
    job = Job(task="jobs.selfcheck", params={}, created_by_id=stranger.id)
    db.session.add(job)
    batch = importer.create_batch(io.BytesIO(importer.build_template(target)), "register.xlsx", target)
    case = case_operations.open_case(
        case_operations.validate_intake(
            {
                "child": {"full_name": "Hà Văn Thử", "sex": "male", "birth_year": 2014, "commune_code": "06970"},
                "categories": ["abandoned"],
                "risk_level": "low",
                "source": "school",
                "received_at": "2025-02-01T08:00:00+07:00",
                "summary": "Báo cáo thử.",
            },
            target,
        ),
        target,
    )
    stored = case_operations.attach_file(case, target, io.BytesIO(b"%PDF-1.4\n%%EOF\n"), "bien-ban.pdf")
    consent = case_operations.record_consent(case, target, subject="representative", scope_code="sharing", given=True)
    referral = case_operations.refer_case(case, "06979", target, reason="Gia đình chuyển đến xã khác.")
    service = support_operations.record_service(
        case, target, {"service_type": "legal_aid", "delivered_on": "2025-02-03", "referral_status": "sent"}
    )
    closure = support_operations.request_closure(case, target, {"reason": "moved_away"})
    programme = payment_operations.create_programme(
        make_user("provincial_officer", username="budgetholder"),
        {"name": "Quỹ Bảo trợ trẻ em", "year": 2025, "budget_vnd": 100_000_000},
    )
    payment = payment_operations.create_request(
        case,
        target,
        {
            "programme": str(programme.id),
            "purpose": "transport",
            "amount_vnd": 300_000,
            "description": "Tiền xe đi khám.",
            "payee": {"name": "Hà Thị Mẹ", "relation": "Mẹ", "method": "cash"},
        },
    )
    notification = Notification(user_id=target.id, kind="deadline_soon", key="access", case_id=case.id)
    db.session.add(notification)
    db.session.commit()
    return {
        "user_id": target.id,
        "job_id": job.id,
        "batch_id": batch.id,
        "case_id": case.id,
        "file_id": stored.id,
        "consent_id": consent.id,
        "referral_id": referral.id,
        "notification_id": notification.id,
        "service_id": service.id,
        "request_id": closure.id,
        "programme_id": programme.id,
        "payment_id": payment.id,
        "code": "en",
        "filename": "casework.css",
        "form": "mau01",
        "workflow_name": "default",
    }


def test_anonymous_users_are_sent_to_sign_in_everywhere_but_public_pages(app, client, ids):
    token = csrf_from(client.get("/login").get_data(as_text=True))
    for rule in page_rules(app):
        if ACCESS[rule.endpoint] == PUBLIC:
            continue
        url = _url(rule, ids)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            data = {"csrf_token": token} if method == "POST" else None
            response = client.open(url, method=method, data=data)
            assert response.status_code == 302, (method, url, response.status_code)
            assert response.headers["Location"].startswith("/login"), (method, url)


@pytest.mark.parametrize("role", ROLES)
def test_each_role_is_refused_what_it_may_not_use(app, client, ids, make_user, role):
    make_user(role, username=f"as{role.replace('_', '')}")
    signed_in = AuthActions(client).login(f"as{role.replace('_', '')}")
    assert signed_in.status_code == 302
    assert signed_in.headers["Location"] == "/"
    token = csrf_from(client.get("/").get_data(as_text=True))
    for rule in page_rules(app):
        allowed = ACCESS[rule.endpoint]
        if allowed == PUBLIC or role in allowed:
            continue
        url = _url(rule, ids)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            response = client.open(url, method=method, data={"csrf_token": token} if method == "POST" else None)
            assert response.status_code in {403, 404}, (role, method, url, response.status_code)
            body = response.get_data(as_text=True)
            assert "target" not in body and "stranger" not in body, (role, url)


@pytest.mark.parametrize("role", ROLES)
def test_each_role_reaches_its_own_home_page(app, client, make_user, role):
    make_user(role, username="homeowner")
    AuthActions(client).login("homeowner")
    response = client.get("/")
    assert response.status_code == 200
    headings = {
        "social_worker": "Hồ sơ tôi phụ trách",
        "supervisor": "Tổng quan nhóm",
        "provincial_officer": "Tổng quan cấp tỉnh",
        "committee_member": "Thống kê về trẻ em",
        "auditor": "Nhật ký kiểm toán",
        "admin": "Quản trị",
        "finance_officer": "Chi trả hỗ trợ",
    }
    assert f"<h1>{headings[role]}</h1>" in response.get_data(as_text=True)


def test_navigation_shows_only_what_the_role_may_open(app, client, make_user):
    make_user("committee_member", username="cmember")
    AuthActions(client).login("cmember")
    assert "/admin/users" not in client.get("/").get_data(as_text=True)
