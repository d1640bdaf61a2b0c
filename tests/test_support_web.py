"""The procedure page and the timeline, driven through the test client with real forms, CSRF tokens and sign-ins:
transitions with their refusals, the assessment, plan, service, visit and closing forms, and who may use them."""

from __future__ import annotations

import re

import pytest
from flask_babel import force_locale, gettext
from markupsafe import escape
from sqlalchemy import func, select

from casework.audit import AuditEvent
from casework.cases import operations as case_operations
from casework.cases.models import Case, CaseTransition
from casework.extensions import db
from casework.support import operations
from casework.support.models import Assessment, ClosureRequest, ServiceRecord, SupportPlan
from tests.conftest import AuthActions, csrf_from


def vi(msgid: str, **values) -> str:
    with force_locale("vi"):
        return str(escape(gettext(msgid, **values)))


def intake(**changes) -> dict:
    return {
        "child": {"full_name": "Lò Thị Mai", "sex": "female", "birth_year": 2014, "commune_code": "06970"},
        "categories": ["violence_harm"],
        "risk_level": "medium",
        "source": "school",
        "received_at": "2026-11-02T08:00:00+07:00",
        "summary": "Cô giáo báo trẻ có vết bầm ở tay.",
    } | changes


@pytest.fixture
def worker(make_user):
    return make_user("social_worker", communes=("06970",), username="hathi", full_name="Nguyễn Thị Hà")


@pytest.fixture
def supervisor(make_user):
    return make_user("supervisor", communes=("06970",), username="lan", full_name="Phạm Thị Lan")


@pytest.fixture
def case(worker):
    opened = case_operations.open_case(case_operations.validate_intake(intake(), worker), worker)
    db.session.commit()
    return opened


def signed_in(client, user) -> None:
    response = AuthActions(client).login(user.username)
    assert response.status_code == 302


def fresh(model, object_id):
    db.session.rollback()
    return db.session.get(model, object_id)


def page_of(client, case) -> str:
    response = client.get(f"/cases/{case.id}/procedure")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def post(client, case, path: str, data: dict):
    token = csrf_from(page_of(client, case))
    return client.post(f"/cases/{case.id}/{path}", data={"csrf_token": token, **data})


def step(client, case, to: str, **extra):
    current = fresh(Case, case.id)
    return post(client, case, "transitions", {"to": to, "version": str(current.version), **extra})


def test_the_procedure_page_shows_the_stage_its_deadline_and_the_next_steps_and_records_the_view(client, worker, case):
    signed_in(client, worker)
    html = page_of(client, case)
    assert "Tiếp nhận thông báo" in html  # the stage's label from workflows/default.toml
    assert "Bắt đầu đánh giá nguy cơ ban đầu" in html  # an open step
    # The tab's title is the page's name and the case number, and the forms to print are listed once, in the page.
    title = re.search(r"<title>(.*?)</title>", html, re.S).group(1)
    assert "<" not in title and case.case_number in title
    assert html.count('id="forms-title"') == 1
    # Closing is shown closed, with its reason.
    assert vi("Closing needs a reason.") in html
    assert db.session.scalar(
        select(func.count())
        .select_from(AuditEvent)
        .where(AuditEvent.action == "case.view", AuditEvent.object_id == str(case.id))
    )


def test_a_step_through_the_form_moves_the_case_and_keeps_the_note(client, worker, case):
    signed_in(client, worker)
    before = case.version
    response = step(client, case, "initial_assessment", note="Đã gọi điện cho nhà trường.")
    assert response.status_code == 302
    moved = fresh(Case, case.id)
    assert moved.stage == "initial_assessment"
    assert moved.version == before + 1
    transition = db.session.scalar(select(CaseTransition).where(CaseTransition.case_id == case.id))
    assert transition.note == "Đã gọi điện cho nhà trường."
    assert transition.actor_id == worker.id
    assert "Đã gọi điện cho nhà trường." in client.get(f"/cases/{case.id}/timeline").get_data(as_text=True)


def test_a_stale_form_is_refused_with_409_and_changes_nothing(client, worker, case):
    signed_in(client, worker)
    token = csrf_from(page_of(client, case))
    old_version = str(case.version)
    assert step(client, case, "initial_assessment").status_code == 302
    response = client.post(
        f"/cases/{case.id}/transitions",
        data={"csrf_token": token, "to": "emergency_intervention", "version": old_version},
    )
    assert response.status_code == 409
    assert vi("Someone changed this case since you opened it. Reload it and make your change again.") in (
        response.get_data(as_text=True)
    )
    assert fresh(Case, case.id).stage == "initial_assessment"


def test_a_step_the_workflow_does_not_allow_is_refused_with_its_reason(client, worker, case):
    signed_in(client, worker)
    response = step(client, case, "closed")
    assert response.status_code == 409
    assert vi("Closing needs a reason.") in response.get_data(as_text=True)
    assert fresh(Case, case.id).stage == "report_received"
    response = step(client, case, "support")
    assert response.status_code == 409
    assert fresh(Case, case.id).stage == "report_received"


def test_a_request_without_csrf_token_is_refused(client, worker, case):
    signed_in(client, worker)
    page_of(client, case)
    response = client.post(f"/cases/{case.id}/transitions", data={"to": "initial_assessment", "version": "1"})
    assert response.status_code == 400
    assert fresh(Case, case.id).stage == "report_received"


def test_an_override_without_a_reason_is_shown_next_to_its_field_and_nothing_is_saved(client, worker, case):
    signed_in(client, worker)
    ratings = {
        "kind": "initial",
        "harm_severity": "high",
        "abuser_access": "high",
        "care_obstacles": "medium",
        "child_capacity": "low",
    }
    response = post(client, case, "assessments", ratings | {"risk_level": "low"})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert re.search(
        r'id="override_reason-errors">.*?' + re.escape(vi("Say why the risk level differs from the suggested one.")),
        html,
        re.S,
    )
    assert db.session.scalar(select(func.count()).select_from(Assessment)) == 0

    response = post(client, case, "assessments", ratings)
    assert response.status_code == 302
    assert fresh(Case, case.id).risk_level == "high"  # the suggested level, confirmed


def test_the_plan_form_shows_a_bad_row_where_it_was_typed(client, worker, case):
    signed_in(client, worker)
    data = {
        "goals": "Trẻ an toàn ở trường và ở nhà.",
        "review_on": "15/01/2027",
        "services-0-service_type": "counselling",
        "services-0-responsible": "Cán bộ LĐTBXH xã",
        "services-2-service_type": "tarot",
    }
    response = post(client, case, "plan", data)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert re.search(r'name="services-2-service_type".*?' + re.escape(vi("Unknown value.")), html, re.S)
    assert db.session.scalar(select(func.count()).select_from(SupportPlan)) == 0

    data["services-2-service_type"] = "legal_aid"
    assert post(client, case, "plan", data).status_code == 302
    plan = operations.current_plan(fresh(Case, case.id))
    assert [s.service_type for s in plan.services] == ["counselling", "legal_aid"]
    assert plan.services[0].responsible == "Cán bộ LĐTBXH xã"


def test_a_service_with_bad_input_changes_nothing(client, worker, case):
    signed_in(client, worker)
    response = post(
        client, case, "services", {"service_type": "counselling", "delivered_on": "31/02/2026", "duration_minutes": "0"}
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'id="delivered_on-errors"' in html and 'id="duration_minutes-errors"' in html
    assert db.session.scalar(select(func.count()).select_from(ServiceRecord)) == 0


def test_closing_by_request_and_approval_through_the_forms(client, app, worker, supervisor, case):
    signed_in(client, worker)
    assert (
        post(
            client,
            case,
            "closure-requests",
            {"closure-reason": "moved_away", "closure-note": "Gia đình chuyển vào Bình Dương."},
        ).status_code
        == 302
    )
    request = db.session.scalar(select(ClosureRequest))
    # The worker cannot decide their own request (not a supervisor).
    response = post(client, case, f"closure-requests/{request.id}/decision", {"decision-decision": "approve"})
    assert response.status_code == 403
    assert fresh(ClosureRequest, request.id).status == "pending"

    supervisor_client = app.test_client()
    signed_in(supervisor_client, supervisor)
    response = post(supervisor_client, case, f"closure-requests/{request.id}/decision", {"decision-decision": "reject"})
    assert response.status_code == 422  # a rejection needs a reason
    assert (
        post(
            supervisor_client, case, f"closure-requests/{request.id}/decision", {"decision-decision": "approve"}
        ).status_code
        == 302
    )
    assert fresh(ClosureRequest, request.id).status == "approved"

    assert step(client, case, "closed", note="Đóng theo phê duyệt.").status_code == 302
    closed = fresh(Case, case.id)
    assert closed.closed_at is not None and closed.closure_reason == "moved_away"
    assert fresh(ClosureRequest, request.id).status == "used"
    # A closed case takes no more records.
    response = post(client, case, "visits", {"visit-visited_on": "01/11/2026", "visit-outcome": "stable"})
    assert response.status_code == 409


@pytest.mark.parametrize("path", ["procedure", "timeline"])
def test_another_communes_worker_gets_404_and_a_committee_member_403(client, make_user, case, path):
    outsider = make_user("social_worker", communes=("06979",), username="ngoai")
    signed_in(client, outsider)
    assert client.get(f"/cases/{case.id}/{path}").status_code == 404
    token = csrf_from(client.get("/cases/new").get_data(as_text=True))
    response = client.post(
        f"/cases/{case.id}/transitions", data={"csrf_token": token, "to": "initial_assessment", "version": "1"}
    )
    assert response.status_code == 404
    assert fresh(Case, case.id).stage == "report_received"
    client.post("/logout", data={"csrf_token": token})

    member = make_user("committee_member", province="22", username="uyvien")
    committee = client.application.test_client()
    AuthActions(committee).login(member.username)
    assert committee.get(f"/cases/{case.id}/{path}").status_code == 403


def test_the_timeline_lists_what_happened_in_order(client, worker, case):
    signed_in(client, worker)
    step(client, case, "initial_assessment", note="Bước một")
    post(
        client,
        case,
        "visits",
        {"visit-visited_on": "05/11/2026", "visit-outcome": "concern", "visit-notes": "Trẻ sợ về nhà."},
    )
    html = client.get(f"/cases/{case.id}/timeline?order=oldest").get_data(as_text=True)
    report = html.index("Cô giáo báo trẻ có vết bầm ở tay.")
    first_step = html.index("Bước một")
    assert report < first_step
    assert "Trẻ sợ về nhà." in html
