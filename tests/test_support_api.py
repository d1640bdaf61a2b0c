"""/api/v1/cases/<id>/...: a case driven through the whole default procedure (workflows/default.toml) by its social
worker and supervisor, and every guard of the workflow refusing with its code and its reason: the role, the area,
a missing condition, a stale version, a closed case, a step the workflow does not have."""

from __future__ import annotations

import uuid
from datetime import datetime, time, timedelta

import pytest
from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from casework import audit
from casework.audit import AuditEvent
from casework.cases.models import Case, CaseTransition
from casework.dbtypes import utcnow
from casework.extensions import db
from casework.i18n import local_tz
from casework.support.models import Assessment, ClosureRequest, EmergencyMeasure, ServiceRecord, SupportPlan
from casework.workflow.deadlines import VIETNAM, add_working_days
from tests.conftest import casework_cli
from tests.test_api import assert_error, bearer, parse_iso
from tests.test_cases_api import intake, reload

API = "/api/v1"

INITIAL = {
    "kind": "initial",
    "harm_severity": "medium",
    "abuser_access": "medium",
    "care_obstacles": "low",
    "child_capacity": "medium",  # 1 + 1 + 0 + 0 = 2: medium suggested
    "harm_note": "Vết bầm ở cánh tay, trẻ nói bị bố đánh.",
    "access_note": "Bố sống cùng nhà.",
}
PLAN = {
    "goals": "Trẻ an toàn ở nhà; bố tham gia tư vấn cách nuôi dạy con.",
    "services": [
        {"service_type": "counselling", "responsible": "Trần Thị Hoa", "details": "Mỗi tuần một buổi"},
        {"service_type": "legal_aid", "responsible": "Trung tâm trợ giúp pháp lý tỉnh", "details": "Theo vụ việc"},
    ],
}


def said(msgid: str, locale: str = "vi", **values) -> str:
    """The message ``msgid`` as a caller reads it in ``locale`` (the API answers in Vietnamese by default)."""
    with force_locale(locale):
        return str(_l(msgid, **values))


def today():
    return utcnow().astimezone(local_tz()).date()


def count(model, *where) -> int:
    reload()
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def case_row(case_id: str) -> Case:
    reload()
    return db.session.get(Case, uuid.UUID(case_id))


@pytest.fixture
def worker(make_user):
    return make_user("social_worker", communes=("06970",), username="hoa", full_name="Trần Thị Hoa")


@pytest.fixture
def supervisor(make_user):
    return make_user("supervisor", communes=("06970",), username="lan", full_name="Nguyễn Thị Lan")


@pytest.fixture
def w(worker, api_token) -> dict[str, str]:
    """The social worker's bearer header."""
    return bearer(api_token(worker))


@pytest.fixture
def s(supervisor, api_token) -> dict[str, str]:
    """The supervisor's bearer header (the token was obtained with the second factor)."""
    return bearer(api_token(supervisor))


class Api:
    """The calls a client of the procedure makes, each checked for the status it should get."""

    def __init__(self, client) -> None:
        self.client = client

    def open_case(self, headers, **changes) -> str:
        payload = intake(**{"immediate_danger": False, **changes})
        response = self.client.post(f"{API}/cases", json=payload, headers=headers)
        assert response.status_code == 201, response.get_json()
        return response.get_json()["id"]

    def options(self, headers, case_id: str, language: str | None = None) -> dict:
        extra = {"Accept-Language": language} if language else {}
        response = self.client.get(f"{API}/cases/{case_id}/transitions", headers={**headers, **extra})
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    def move(self, headers, case_id: str, to: str, version: int | None = None, **extra):
        """Ask for a transition, with the version just read unless one is given."""
        if version is None:
            version = self.options(headers, case_id)["version"]
        return self.client.post(
            f"{API}/cases/{case_id}/transitions", json={"to": to, "version": version, **extra}, headers=headers
        )

    def moved(self, headers, case_id: str, to: str, **extra) -> dict:
        response = self.move(headers, case_id, to, **extra)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert body["stage"] == to
        return body

    def post(self, headers, case_id: str, what: str, body: dict, status: int = 201) -> dict:
        response = self.client.post(f"{API}/cases/{case_id}/{what}", json=body, headers=headers)
        assert response.status_code == status, response.get_json()
        return response.get_json()

    def get(self, headers, case_id: str, what: str) -> dict:
        response = self.client.get(f"{API}/cases/{case_id}/{what}", headers=headers)
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    def save_plan(self, headers, case_id: str, plan: dict = PLAN) -> dict:
        response = self.client.put(f"{API}/cases/{case_id}/plan", json=plan, headers=headers)
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    def to_plan_drafting(self, headers, case_id: str) -> dict:
        for stage in ("initial_assessment", "detailed_assessment"):
            self.moved(headers, case_id, stage)
        return self.moved(headers, case_id, "plan_drafting")

    def to_support(self, w, s, case_id: str) -> None:
        self.to_plan_drafting(w, case_id)
        self.save_plan(w, case_id)
        self.moved(w, case_id, "plan_approval")
        self.moved(s, case_id, "support", note="Đồng ý")


@pytest.fixture
def api(client) -> Api:
    return Api(client)


def refused(response, code: str, reason: str, status: int = 409) -> None:
    """The answer is ``status`` with ``code`` and, as its message, the rule's reason."""
    assert assert_error(response, status, code)["message"] == said(reason)


# --- the whole procedure ---------------------------------------------------------------------------------------------


def test_a_case_goes_through_the_whole_default_procedure_and_is_reopened(
    app_env, client, api, worker, supervisor, w, s
):
    case_id = api.open_case(w, received_at="2025-03-01T09:30:00+07:00")
    api.moved(w, case_id, "initial_assessment", note="Đã gặp trẻ tại trường")
    first = api.post(w, case_id, "assessments", INITIAL)
    assert (first["suggested_level"], first["risk_level"]) == ("medium", "medium")
    assert first["harm_note"] == INITIAL["harm_note"] and first["assessed_by"]["username"] == "hoa"

    api.moved(w, case_id, "detailed_assessment")
    detailed = {
        **INITIAL,
        "kind": "detailed",
        "harm_severity": "high",
        "abuser_access": "medium",  # serious harm and an abuser who can reach the child: high
        "needs": "Tư vấn tâm lý; trợ giúp pháp lý",
        "attendees": "Trẻ, mẹ, cô giáo chủ nhiệm, công an xã",
    }
    assert api.post(w, case_id, "assessments", detailed)["risk_level"] == "high"

    api.moved(w, case_id, "plan_drafting")
    review_on = (today() + timedelta(days=60)).isoformat()
    saved = api.save_plan(w, case_id, {**PLAN, "review_on": review_on})
    assert (saved["cycle"], saved["status"], saved["review_on"]) == (1, "draft", review_on)
    assert [x["service_type"] for x in saved["services"]] == ["counselling", "legal_aid"]
    api.moved(w, case_id, "plan_approval")
    assert api.get(w, case_id, "plan")["current"]["status"] == "submitted"
    locked = client.put(f"{API}/cases/{case_id}/plan", json=PLAN, headers=w)
    assert_error(locked, 409, "plan_locked")  # a submitted plan is not changed under the supervisor's eyes

    api.moved(s, case_id, "support", note="Đồng ý kế hoạch, ưu tiên trợ giúp pháp lý")
    plan = api.get(s, case_id, "plan")
    assert plan["earlier"] == []
    assert plan["current"]["status"] == "approved"
    assert plan["current"]["decided_by"]["username"] == "lan"
    assert plan["current"]["decision_note"] == "Đồng ý kế hoạch, ưu tiên trợ giúp pháp lý"

    counselling = api.post(
        w,
        case_id,
        "services",
        {"service_type": "counselling", "delivered_on": today().isoformat(), "duration_minutes": 60, "notes": "Buổi 1"},
    )
    assert counselling["plan_id"] == plan["current"]["id"] and counselling["notes"] == "Buổi 1"
    legal = api.post(
        w,
        case_id,
        "services",
        {
            "service_type": "legal_aid",
            "delivered_on": today().strftime("%d/%m/%Y"),  # as the pages write dates
            "provider": "Trung tâm trợ giúp pháp lý nhà nước tỉnh Quảng Ninh",
            "legal_aid_centre": True,
            "police_report_ref": "CV-112/CAX",
            "prosecution_ref": "QĐ-45/VKS",
            "court_ref": "TA-2025-077",
            "hearing_on": (today() + timedelta(days=30)).isoformat(),
            "referral_status": "sent",
        },
    )
    assert (legal["referral_status"], legal["legal_aid_centre"], legal["court_ref"]) == ("sent", True, "TA-2025-077")
    for status in ("accepted", "done"):
        response = client.patch(
            f"{API}/cases/{case_id}/services/{legal['id']}", json={"referral_status": status}, headers=w
        )
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["referral_status"] == status
    finished = client.patch(
        f"{API}/cases/{case_id}/services/{legal['id']}", json={"referral_status": "sent"}, headers=w
    )
    assert_error(finished, 409, "referral_finished")
    services = api.get(w, case_id, "services")["items"]
    assert [(x["service_type"], x["referral_status"]) for x in services] == [
        ("counselling", None),
        ("legal_aid", "done"),
    ]

    api.post(w, case_id, "visits", {"visited_on": today().isoformat(), "outcome": "improving", "notes": "Trẻ vui hơn"})
    api.moved(w, case_id, "review")
    review = {**INITIAL, "kind": "review", "harm_severity": "low", "abuser_access": "low", "review_outcome": "end"}
    assert api.post(w, case_id, "assessments", review)["review_outcome"] == "end"

    closure = api.post(w, case_id, "closure-requests", {"reason": "goals_met", "note": "Đạt mục tiêu"})
    assert closure["status"] == "pending"
    decided = api.post(
        s, case_id, f"closure-requests/{closure['id']}/decision", {"approve": True, "note": "Đồng ý"}, status=200
    )
    assert (decided["status"], decided["decided_by"]["username"]) == ("approved", "lan")
    closed = api.moved(w, case_id, "closed", note="Kết thúc hỗ trợ")
    assert closed["closure_reason"] == "goals_met" and closed["closed_at"] and closed["next_deadline_at"] is None
    shown = client.get(f"{API}/cases/{case_id}", headers=w).get_json()
    assert (shown["stage"], shown["closure_reason"]) == ("closed", "goals_met")
    assert api.get(w, case_id, "closure-requests")["items"][0]["status"] == "used"

    reopened = api.moved(s, case_id, "initial_assessment", note="Trẻ lại bị đánh")
    assert reopened["closed_at"] is None and reopened["closure_reason"] is None
    reload()
    steps = db.session.scalars(
        select(CaseTransition).where(CaseTransition.case_id == uuid.UUID(case_id)).order_by(CaseTransition.at)
    ).all()
    stages = [
        "initial_assessment",
        "detailed_assessment",
        "plan_drafting",
        "plan_approval",
        "support",
        "review",
        "closed",
        "initial_assessment",
    ]
    assert [step.to_stage for step in steps] == stages  # the history is kept across the reopening
    assert steps[6].closure_reason == "goals_met" and steps[7].transition == "reopen"
    assert [a["kind"] for a in api.get(w, case_id, "assessments")["items"]] == ["initial", "detailed", "review"]
    assert api.get(w, case_id, "plan")["current"]["status"] == "approved"

    entries = api.get(w, case_id, "timeline")["items"]
    moments = [parse_iso(e["at"]) for e in entries]
    assert moments == sorted(moments)
    assert entries[0]["kind"] == "report"
    # Services and visits carry a day, not a time: the rest is in the order it happened.
    timed = [
        (
            e["kind"],
            e.get("facts", {}).get("to") or e.get("facts", {}).get("assessment") or e.get("facts", {}).get("status"),
        )
        for e in entries
        if e["kind"] in {"transition", "assessment", "closure_request"}
    ]
    assert timed == [
        ("transition", "initial_assessment"),
        ("assessment", "initial"),
        ("transition", "detailed_assessment"),
        ("assessment", "detailed"),
        ("transition", "plan_drafting"),
        ("transition", "plan_approval"),
        ("transition", "support"),
        ("transition", "review"),
        ("assessment", "review"),
        ("closure_request", None),
        ("closure_request", "used"),  # the decision, on the request the closing used
        ("transition", "closed"),
        ("transition", "initial_assessment"),
    ]
    kinds = [e["kind"] for e in entries]
    assert kinds.count("plan") == 3  # started, submitted, approved
    assert kinds.count("service") == 2 and kinds.count("visit") == 1
    titles = " | ".join(e["title"] for e in entries)
    assert "Tư vấn" in titles and "Trợ giúp pháp lý" in titles  # service labels in Vietnamese by default

    assert audit.verify().ok
    cli = casework_cli(app_env, "audit", "verify")
    assert cli.returncode == 0, cli.stdout + cli.stderr


def test_every_answer_with_decrypted_text_records_a_view_of_the_case(client, api, w):
    case_id = api.open_case(w)
    views = lambda: count(AuditEvent, AuditEvent.action == "case.view", AuditEvent.object_id == case_id)  # noqa: E731
    for what in ("assessments", "plan", "services", "closure-requests", "timeline"):
        before = views()
        api.get(w, case_id, what)
        assert views() == before + 1, what
    before = views()
    api.options(w, case_id)  # labels and reasons only: nothing of the child
    assert views() == before


def test_a_plan_sent_back_is_changed_and_resubmitted_and_a_new_cycle_keeps_the_earlier_plan(client, api, w, s):
    case_id = api.open_case(w)
    api.to_plan_drafting(w, case_id)
    api.save_plan(w, case_id)
    api.moved(w, case_id, "plan_approval")
    api.moved(s, case_id, "plan_drafting", note="Thêm hỗ trợ giáo dục")
    returned = api.get(w, case_id, "plan")["current"]
    assert (returned["status"], returned["decision_note"]) == ("returned", "Thêm hỗ trợ giáo dục")
    services = [*PLAN["services"], {"service_type": "education_support", "due_on": "30/06/2026"}]
    changed = api.save_plan(w, case_id, {**PLAN, "services": services})
    assert changed["services"][2] == {
        **changed["services"][2],
        "service_type": "education_support",
        "due_on": "2026-06-30",
    }
    api.moved(w, case_id, "plan_approval")
    api.moved(s, case_id, "support")
    api.moved(w, case_id, "review")
    api.moved(w, case_id, "plan_drafting", note="Rà soát: cần kế hoạch mới")
    plans = api.get(w, case_id, "plan")
    assert (plans["current"]["cycle"], plans["current"]["status"], plans["current"]["services"]) == (2, "draft", [])
    assert plans["earlier"] == [{"id": changed["id"], "cycle": 1, "status": "ended"}]


# --- the guards ------------------------------------------------------------------------------------------------------


def test_a_social_worker_cannot_approve_a_plan(client, api, w):
    case_id = api.open_case(w)
    api.to_plan_drafting(w, case_id)
    api.save_plan(w, case_id)
    api.moved(w, case_id, "plan_approval")
    refused(api.move(w, case_id, "support", note="Tự duyệt"), "transition_refused", "Your role cannot take this step.")
    assert case_row(case_id).stage == "plan_approval"
    assert db.session.scalar(select(SupportPlan.status)) == "submitted"


def test_a_worker_of_another_commune_gets_404_and_changes_nothing(client, api, w, make_user, api_token):
    case_id = api.open_case(w)
    version = case_row(case_id).version
    outsider = bearer(api_token(make_user("social_worker", communes=("06979",), username="kythuong")))
    assert_error(client.get(f"{API}/cases/{case_id}/transitions", headers=outsider), 404, "not_found")
    response = client.post(
        f"{API}/cases/{case_id}/transitions", json={"to": "initial_assessment", "version": version}, headers=outsider
    )
    assert_error(response, 404, "not_found")
    body = {"service_type": "counselling", "delivered_on": today().isoformat()}
    assert_error(client.post(f"{API}/cases/{case_id}/services", json=body, headers=outsider), 404, "not_found")
    case = case_row(case_id)
    assert (case.stage, case.version) == ("report_received", version)
    assert count(CaseTransition) == 0 and count(ServiceRecord) == 0


def test_a_plan_without_a_planned_service_cannot_be_submitted(client, api, w):
    case_id = api.open_case(w)
    api.to_plan_drafting(w, case_id)
    reason = "The plan needs at least one planned service."
    refused(api.move(w, case_id, "plan_approval"), "transition_refused", reason)  # no plan at all
    api.save_plan(w, case_id, {"goals": "Trẻ an toàn", "services": []})
    refused(api.move(w, case_id, "plan_approval"), "transition_refused", reason)
    assert case_row(case_id).stage == "plan_drafting"
    api.save_plan(w, case_id)
    api.moved(w, case_id, "plan_approval")


def test_a_child_in_immediate_danger_leaves_assessment_only_after_an_emergency_measure(client, api, w):
    case_id = api.open_case(w, immediate_danger=True)
    api.moved(w, case_id, "initial_assessment")
    options = {o["id"]: o for o in api.options(w, case_id, "en")["items"]}
    reason = "The child is in immediate danger: record an emergency measure before the case leaves assessment."
    assert (options["assess_in_detail"]["open"], options["assess_in_detail"]["reason"]) == (False, reason)
    refused(api.move(w, case_id, "detailed_assessment"), "transition_refused", reason)
    assert case_row(case_id).stage == "initial_assessment"

    measure = api.post(
        w,
        case_id,
        "emergency-measures",
        {"measure": "temporary_separation", "place": "Nhà bà ngoại, thôn Nà Làng", "note": "Công an xã hỗ trợ"},
    )
    assert measure["measure"] == "temporary_separation" and measure["place"] == "Nhà bà ngoại, thôn Nà Làng"
    api.moved(w, case_id, "detailed_assessment")


def test_closing_needs_a_reason_and_a_workers_closing_needs_a_supervisors_approval(client, api, w, s):
    case_id = api.open_case(w)
    refused(api.move(s, case_id, "closed"), "transition_refused", "Closing needs a reason.")
    approval = "Closing needs a supervisor's approval."
    refused(api.move(w, case_id, "closed", closure_reason="moved_away"), "transition_refused", approval)
    api.post(w, case_id, "closure-requests", {"reason": "moved_away"})
    refused(api.move(w, case_id, "closed", closure_reason="moved_away"), "transition_refused", approval)  # pending
    assert case_row(case_id).closed_at is None
    invalid = api.move(s, case_id, "closed", closure_reason="bored")
    assert assert_error(invalid, 422, "validation_failed")["field_codes"] == {"closure_reason": ["invalid_code"]}
    closed = api.moved(s, case_id, "closed", closure_reason="moved_away")  # the supervisor's own decision
    assert closed["closure_reason"] == "moved_away"


def test_the_second_of_two_clients_with_the_same_version_gets_stale_version(client, api, w, s):
    case_id = api.open_case(w)
    seen = api.options(w, case_id)["version"]
    assert api.options(s, case_id)["version"] == seen
    api.moved(w, case_id, "initial_assessment", version=seen)
    second = api.move(s, case_id, "emergency_intervention", version=seen)
    refused(
        second, "stale_version", "Someone changed this case since you opened it. Reload it and make your change again."
    )
    case = case_row(case_id)
    assert case.stage == "initial_assessment" and count(CaseTransition) == 1


def test_a_closed_case_takes_no_step_but_reopening_and_no_work(client, api, w, s):
    case_id = api.open_case(w)
    api.moved(s, case_id, "closed", closure_reason="risk_removed")
    options = api.options(w, case_id, "en")["items"]
    assert [(o["id"], o["open"], o["reason"]) for o in options] == [
        ("reopen", False, "Your role cannot take this step.")
    ]
    for to in ("support", "review", "report_received", "closed"):
        refused(api.move(s, case_id, to), "transition_refused", "The case is closed; reopen it first.")
    work = {
        "services": {"service_type": "counselling", "delivered_on": today().isoformat()},
        "assessments": INITIAL,
        "visits": {"visited_on": today().isoformat(), "outcome": "stable"},
        "emergency-measures": {"measure": "safe_shelter"},
        "closure-requests": {"reason": "goals_met"},
    }
    for what, body in work.items():
        response = client.post(f"{API}/cases/{case_id}/{what}", json=body, headers=w)
        assert assert_error(response, 409, "case_closed")["message"] == said("This case is closed."), what
    assert_error(client.put(f"{API}/cases/{case_id}/plan", json=PLAN, headers=w), 409, "case_closed")
    assert count(ServiceRecord) == count(Assessment) == count(EmergencyMeasure) == count(ClosureRequest) == 0
    refused(api.move(w, case_id, "initial_assessment"), "transition_refused", "Your role cannot take this step.")
    api.moved(s, case_id, "initial_assessment")


def test_a_step_the_workflow_does_not_have_is_no_such_transition(client, api, w):
    case_id = api.open_case(w)
    for to in ("support", "nowhere"):
        response = api.move(w, case_id, to)
        reason = said("The workflow has no step from %(stage)s to %(to)s.", stage="report_received", to=to)
        assert assert_error(response, 409, "no_such_transition")["message"] == reason
    assert case_row(case_id).stage == "report_received"


def test_a_transition_needs_its_target_and_the_version_seen(client, api, w):
    case_id = api.open_case(w)
    url = f"{API}/cases/{case_id}/transitions"
    for body, field in (
        ({"version": 1}, "to"),
        ({"to": 3, "version": 1}, "to"),
        ({"to": "initial_assessment"}, "version"),
        ({"to": "initial_assessment", "version": "1"}, "version"),
        ({"to": "initial_assessment", "version": True}, "version"),
    ):
        error = assert_error(client.post(url, json=body, headers=w), 422, "validation_failed")
        assert error["field_codes"] == {field: ["required"]}, body
    assert_error(client.post(url, json=["initial_assessment"], headers=w), 400, "bad_request")
    assert case_row(case_id).stage == "report_received"


# --- what GET transitions says ----------------------------------------------------------------------------------------


def test_the_transitions_list_every_step_out_of_the_stage_with_why_a_closed_one_is_closed(
    client, api, w, s, make_user, api_token
):
    case_id = api.open_case(w)
    listed = api.options(w, case_id, "en")
    assert (listed["stage"], listed["version"]) == ("report_received", case_row(case_id).version)
    assert [(o["id"], o["to"], o["label"], o["open"], o["reasons"]) for o in listed["items"]] == [
        ("start_assessment", "initial_assessment", "Start the initial risk assessment", True, []),
        ("take_emergency_measure", "emergency_intervention", "Take an emergency measure", True, []),
        (
            "close",
            "closed",
            "Close the case",
            False,
            ["Closing needs a reason.", "Closing needs a supervisor's approval."],
        ),
    ]
    assert listed["items"][2]["reason"] == "Closing needs a reason."
    vietnamese = api.options(w, case_id)["items"]  # no Accept-Language: Vietnamese
    assert [o["label"] for o in vietnamese] == [
        "Bắt đầu đánh giá nguy cơ ban đầu",
        "Can thiệp khẩn cấp",
        "Đóng hồ sơ",
    ]
    assert vietnamese[2]["reason"] == said("Closing needs a reason.")
    # A supervisor approves a closure by closing, giving the reason with the step: for them it is open.
    supervisors = api.options(s, case_id, "en-GB,en;q=0.8")["items"]
    assert [(o["id"], o["open"], o["reasons"]) for o in supervisors][2] == ("close", True, [])

    api.to_plan_drafting(w, case_id)
    api.save_plan(w, case_id)
    api.moved(w, case_id, "plan_approval")
    options = api.options(w, case_id, "en")["items"]
    assert [(o["id"], o["open"], o["reason"]) for o in options] == [
        ("approve_plan", False, "Your role cannot take this step."),
        ("return_plan", False, "Your role cannot take this step."),
        ("close", False, "Closing needs a reason."),
    ]
    assert [(o["id"], o["open"]) for o in api.options(s, case_id, "en")["items"]] == [
        ("approve_plan", True),
        ("return_plan", True),
        ("close", True),
    ]
    # A provincial officer may read the case but takes no step in it: their role, not their area, is the reason.
    officer = bearer(api_token(make_user("provincial_officer", province="22")))
    reasons = {o["reason"] for o in api.options(officer, case_id, "en")["items"]}
    assert reasons == {"Your role cannot take this step."}


def test_roles_that_never_open_records_get_403(client, api, w, make_user, api_token):
    case_id = api.open_case(w)
    member = bearer(api_token(make_user("committee_member", province="22")))
    for url in (f"{API}/cases/{case_id}/transitions", f"{API}/cases/{case_id}/timeline"):
        assert_error(client.get(url, headers=member), 403, "forbidden")
    response = client.post(f"{API}/cases/{case_id}/transitions", json={"to": "closed", "version": 1}, headers=member)
    assert_error(response, 403, "forbidden")


# --- malformed input -------------------------------------------------------------------------------------------------


def test_a_malformed_service_is_refused_field_by_field_and_nothing_is_saved(client, api, w):
    case_id = api.open_case(w)
    tomorrow = (today() + timedelta(days=1)).isoformat()
    good = {"service_type": "counselling", "delivered_on": today().isoformat(), "duration_minutes": 45}
    for changes, expected in (
        ({"service_type": "massage"}, {"service_type": ["invalid_code"]}),
        ({"service_type": None}, {"service_type": ["required"]}),
        ({"delivered_on": tomorrow}, {"delivered_on": ["in_future"]}),
        ({"delivered_on": "31/02/2025"}, {"delivered_on": ["invalid_date"]}),
        ({"delivered_on": None}, {"delivered_on": ["required"]}),
        ({"duration_minutes": 0}, {"duration_minutes": ["out_of_range"]}),
        ({"duration_minutes": "abc"}, {"duration_minutes": ["not_a_whole_number"]}),
        ({"referral_status": "lost"}, {"referral_status": ["invalid_choice"]}),
        ({"court_ref": "TA-1"}, {"service_type": ["not_legal"]}),
    ):
        response = client.post(f"{API}/cases/{case_id}/services", json={**good, **changes}, headers=w)
        error = assert_error(response, 422, "validation_failed")
        assert error["field_codes"] == expected, changes
        assert set(error["fields"]) == set(expected)
    assert count(ServiceRecord) == 0
    assert count(AuditEvent, AuditEvent.action == "case.service") == 0
    api.post(w, case_id, "services", good)
    assert count(ServiceRecord) == 1


def test_a_referral_status_is_changed_only_on_a_referral_of_this_case(client, api, w):
    case_id = api.open_case(w)
    other_id = api.open_case(w, received_at="2025-03-02T09:30:00+07:00", confirm_new_child=True)
    given = api.post(w, case_id, "services", {"service_type": "counselling", "delivered_on": today().isoformat()})
    url = f"{API}/cases/{case_id}/services/{given['id']}"
    assert_error(client.patch(url, json={"referral_status": "done"}, headers=w), 409, "not_a_referral")
    wrong_case = f"{API}/cases/{other_id}/services/{given['id']}"
    assert_error(client.patch(wrong_case, json={"referral_status": "done"}, headers=w), 404, "not_found")
    assert_error(client.patch(f"{API}/cases/{case_id}/services/xyz", json={}, headers=w), 404, "not_found")
    reload()
    assert db.session.scalar(select(ServiceRecord.referral_status)) is None


def test_a_supervisor_cannot_approve_their_own_closure_request(client, api, w, s, make_user, api_token):
    case_id = api.open_case(w)
    asked = api.post(s, case_id, "closure-requests", {"reason": "other", "note": "Gia đình từ chối hỗ trợ"})
    decision = f"closure-requests/{asked['id']}/decision"
    response = client.post(f"{API}/cases/{case_id}/{decision}", json={"approve": True}, headers=s)
    refused(response, "own_request", "You cannot approve your own request.", status=403)
    response = client.post(f"{API}/cases/{case_id}/{decision}", json={"approve": True}, headers=w)
    refused(response, "forbidden", "Only a supervisor of the commune can approve closing a case.", status=403)
    response = client.post(f"{API}/cases/{case_id}/{decision}", json={"approve": "yes"}, headers=s)
    assert assert_error(response, 422, "validation_failed")["field_codes"] == {"approve": ["not_a_boolean"]}
    reload()
    assert db.session.scalar(select(ClosureRequest.status)) == "pending"

    colleague = bearer(api_token(make_user("supervisor", communes=("06970",), username="binh")))
    rejected = api.post(colleague, case_id, decision, {"approve": False}, status=422)
    assert rejected["error"]["field_codes"] == {"note": ["required"]}  # a rejection says why
    decided = api.post(colleague, case_id, decision, {"approve": True}, status=200)
    assert decided["status"] == "approved"
    again = client.post(f"{API}/cases/{case_id}/{decision}", json={"approve": True}, headers=colleague)
    assert_error(again, 409, "already_decided")
    unknown = client.post(f"{API}/cases/{case_id}/closure-requests/{uuid.uuid4()}/decision", json={}, headers=s)
    assert_error(unknown, 404, "not_found")


def test_overriding_the_suggested_risk_level_needs_a_reason(client, api, w):
    case_id = api.open_case(w)
    response = client.post(f"{API}/cases/{case_id}/assessments", json={**INITIAL, "risk_level": "low"}, headers=w)
    error = assert_error(response, 422, "validation_failed")
    assert error["field_codes"] == {"override_reason": ["override_needs_reason"]}
    assert error["fields"]["override_reason"] == [said("Say why the risk level differs from the suggested one.")]
    assert count(Assessment) == 0 and case_row(case_id).risk_level == "high"
    reason = "Bố đã chuyển đi làm ăn xa, trẻ ở với mẹ."
    body = api.post(w, case_id, "assessments", {**INITIAL, "risk_level": "low", "override_reason": reason})
    assert (body["suggested_level"], body["risk_level"], body["override_reason"]) == ("medium", "low", reason)
    assert case_row(case_id).risk_level == "low"
    history = api.get(w, case_id, "assessments")["items"]
    assert [(a["suggested_level"], a["risk_level"]) for a in history] == [("medium", "low")]


# --- deadlines -------------------------------------------------------------------------------------------------------


def test_drafting_the_plan_is_due_at_the_end_of_the_fifth_working_day(client, api, w):
    case_id = api.open_case(w)
    answer = api.to_plan_drafting(w, case_id)
    reload()
    entered = db.session.scalar(
        select(CaseTransition.at).where(
            CaseTransition.to_stage == "plan_drafting", CaseTransition.case_id == uuid.UUID(case_id)
        )
    )
    due = parse_iso(answer["next_deadline_at"])
    # Decree 56/2017, Art. 28.1: five working days, to the end of the last one (Civil Code, Art. 148).
    assert due == add_working_days(entered, 5, VIETNAM)
    local = due.astimezone(VIETNAM)
    assert local.time().replace(microsecond=0) == time(23, 59, 59) and local.weekday() < 5
    assert local.date() - entered.astimezone(VIETNAM).date() >= timedelta(days=5)
    assert parse_iso(client.get(f"{API}/cases/{case_id}", headers=w).get_json()["next_deadline_at"]) == due


def test_a_child_in_immediate_danger_is_due_twelve_hours_after_the_report(client, api, w):
    received = "2025-03-01T09:30:00+07:00"
    case_id = api.open_case(w, immediate_danger=True, received_at=received)
    shown = client.get(f"{API}/cases/{case_id}", headers=w).get_json()
    # Decree 56/2017, Art. 31: an emergency measure within 12 hours of the report, night or weekend alike.
    assert parse_iso(shown["next_deadline_at"]) == datetime.fromisoformat(received) + timedelta(hours=12)
    answer = api.moved(w, case_id, "initial_assessment")  # the clock keeps counting from the report
    assert parse_iso(answer["next_deadline_at"]) == datetime.fromisoformat(received) + timedelta(hours=12)
