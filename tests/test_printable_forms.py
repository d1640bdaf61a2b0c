"""The legal forms of the procedure (Decree 56/2017, Mẫu 01 to Mẫu 06), printed from a case driven through intake,
assessments, the plan, its approval and the review: the printable page and the PDF show the case's data in
Vietnamese, every print is audited, a form with nothing to print is refused with the reason, and nobody outside
the case's area gets anything.
"""

from __future__ import annotations

import io
import json
import uuid

import pytest
from flask_babel import force_locale, gettext
from markupsafe import escape
from pypdf import PdfReader
from sqlalchemy import select

from casework.audit import AuditEvent
from casework.cases import operations as case_operations
from casework.dbtypes import utcnow
from casework.extensions import db
from casework.i18n import local_tz
from casework.support import operations, printing
from tests.conftest import AuthActions

CHILD = "Lò Thị Mỷ Duyên"
GUARDIAN = "Lò Văn Páo"
REPORTER = "Trần Văn Báo"
SUMMARY = "Cô giáo báo trẻ có vết bầm trên tay, trẻ sợ về nhà."
OVERRIDE = "Trẻ sợ về nhà, bố thường say rượu."
NEEDS = "Trị liệu tâm lý cho trẻ; tư vấn cho mẹ về cách chăm sóc."
ATTENDEES = "Công chức văn hóa - xã hội, công an xã, cô giáo chủ nhiệm."
GOALS = "Trẻ được an toàn tại nhà và đi học đều."
PROVIDER = "Trung tâm Công tác xã hội tỉnh"
DECISION = "Đồng ý, giao công an xã phối hợp theo dõi."
FINDINGS = "Trẻ ổn định, đi học đều, không còn dấu hiệu bị đánh."
NATION = "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM"
MOTTO = "Độc lập - Tự do - Hạnh phúc"


def vi(msgid: str, **values) -> str:
    """The message as a Vietnamese page shows it (the msgid itself until the catalogue translates it)."""
    with force_locale("vi"):
        return str(escape(gettext(msgid, **values)))


def en(msgid: str, **values) -> str:
    with force_locale("en"):
        return str(escape(gettext(msgid, **values)))


def intake(commune: str = "06970") -> dict:
    return {
        "child": {
            "full_name": CHILD,
            "date_of_birth": "2015-04-12",
            "sex": "female",
            "commune_code": commune,
            "address": "Thôn Khe Tum",
            "guardian_name": GUARDIAN,
            "guardian_phone": "0912 345 678",
        },
        "categories": ["violence_harm"],
        "abuse_types": ["violence"],
        "risk_level": "high",
        "source": "school",
        "channel": "phone",
        "received_at": "2025-03-01T09:30:00+07:00",
        "summary": SUMMARY,
        "reporter": {"name": REPORTER, "phone": "0987 654 321", "address": "Trường Tiểu học Ba Chẽ"},
    }


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


def advance(case, actor, to: str, note: str | None = None) -> None:
    operations.apply_transition(case, actor, to, version=case.version, note=note)
    db.session.commit()


def assess(case, actor, **data):
    assessment = operations.record_assessment(case, actor, data)
    db.session.commit()
    return assessment


def today() -> str:
    return utcnow().astimezone(local_tz()).date().isoformat()


def drafted(case, worker):
    """Intake → initial assessment → detailed assessment → a plan with two services, submitted for approval."""
    advance(case, worker, "initial_assessment")
    assess(
        case,
        worker,
        kind="initial",
        harm_severity="medium",
        abuser_access="medium",
        care_obstacles="low",
        child_capacity="medium",
        harm_note="Vết bầm ở cánh tay trái.",
        risk_level="high",
        override_reason=OVERRIDE,
    )
    advance(case, worker, "detailed_assessment")
    assess(
        case,
        worker,
        kind="detailed",
        harm_severity="high",
        abuser_access="high",
        care_obstacles="medium",
        child_capacity="low",
        needs=NEEDS,
        attendees=ATTENDEES,
    )
    advance(case, worker, "plan_drafting")
    operations.save_plan(
        case,
        worker,
        {
            "goals": GOALS,
            "review_on": "2025-06-30",
            "services": [
                {
                    "service_type": "psychological_support",
                    "responsible": PROVIDER,
                    "details": "Sáu buổi trị liệu",
                    "due_on": "2025-04-15",
                },
                {"service_type": "legal_aid", "responsible": "Trung tâm Trợ giúp pháp lý", "due_on": "2025-05-01"},
            ],
        },
    )
    db.session.commit()
    advance(case, worker, "plan_approval")
    return case


def approved(case, worker, supervisor):
    drafted(case, worker)
    advance(case, supervisor, "support", note=DECISION)
    return case


def reviewed(case, worker, supervisor):
    approved(case, worker, supervisor)
    operations.record_service(
        case, worker, {"service_type": "psychological_support", "delivered_on": today(), "provider": PROVIDER}
    )
    operations.record_visit(case, worker, {"visited_on": today(), "outcome": "improving", "notes": "Trẻ vui hơn."})
    db.session.commit()
    advance(case, worker, "review")
    assess(
        case,
        worker,
        kind="review",
        harm_severity="low",
        abuser_access="low",
        care_obstacles="low",
        child_capacity="high",
        findings=FINDINGS,
        review_outcome="end",
    )
    return case


def signed_in(client, user):
    response = AuthActions(client).login(user.username)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    return client


def printed_events(case) -> list[AuditEvent]:
    db.session.rollback()  # see what the requests committed
    return list(
        db.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "case.form_printed", AuditEvent.object_id == str(case.id))
            .order_by(AuditEvent.seq)
        )
    )


def page(client, case, form: str, **query) -> str:
    response = client.get(f"/cases/{case.id}/forms/{form}", query_string=query)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.headers["Cache-Control"] == "no-store"
    return response.get_data(as_text=True)


def pdf_text(client, case, form: str, **query) -> str:
    response = client.get(f"/cases/{case.id}/forms/{form}.pdf", query_string=query)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/pdf"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Content-Disposition"] == f"attachment; filename={form}-{case.case_number}.pdf"
    data = response.get_data()
    assert data.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(data))
    assert reader.pages[0].mediabox.width == pytest.approx(595.28, abs=0.5)  # A4
    # Words only: a table cell wraps its text over several lines.
    return " ".join(" ".join(p.extract_text().split()) for p in reader.pages)


# --- what the forms show ------------------------------------------------------------------------------------------


def test_the_intake_record_shows_the_report_the_child_and_the_consenting_reporter_in_vietnamese(client, worker, case):
    signed_in(client, worker)
    html = page(client, case, "mau01")
    for expected in (
        "Mẫu số 01",
        NATION,
        MOTTO,
        "ỦY BAN NHÂN DÂN",
        "XÃ BA CHẼ",
        "Ba Chẽ, ngày 01 tháng 3 năm 2025",
        "BIÊN BẢN TIẾP NHẬN THÔNG TIN, THÔNG BÁO, TỐ GIÁC",
        case.case_number,
        "09 giờ 30 phút, ngày 01/03/2025",
        "Điện thoại",  # the channel
        "Nhà trường",  # the source
        CHILD,
        "12/04/2015",
        "Nữ",
        "Thôn Khe Tum",
        GUARDIAN,
        SUMMARY,
        "Bạo lực",  # the form of abuse
        REPORTER,  # the reporter gave consent to be recorded
        "Chưa có biện pháp bảo vệ khẩn cấp nào được ghi nhận.",
        "NGƯỜI TIẾP NHẬN",
        "Nguyễn Thị Hà",
    ):
        assert expected in html, expected
    assert 'lang="vi"' in html and 'id="print-form"' in html
    assert f"/cases/{case.id}/forms/mau01.pdf" in html


def test_a_reporter_who_gave_no_details_is_not_named(client, worker):
    payload = intake()
    del payload["reporter"]
    anonymous = case_operations.open_case(case_operations.validate_intake(payload, worker), worker)
    db.session.commit()
    signed_in(client, worker)
    html = page(client, anonymous, "mau01")
    assert REPORTER not in html
    assert "Người báo tin không cung cấp hoặc không đồng ý ghi nhận thông tin cá nhân." in html


def test_each_form_shows_the_case_data_with_vietnamese_labels(client, worker, supervisor, case):
    reviewed(case, worker, supervisor)
    signed_in(client, worker)

    initial = page(client, case, "mau02")
    assert "ĐÁNH GIÁ NGUY CƠ BAN ĐẦU" in initial and CHILD in initial
    assert "Mức độ nghiêm trọng của tổn hại đối với trẻ em" in initial
    assert '<td class="text">Trung bình</td>' in initial and '<td class="text">Thấp</td>' in initial
    assert "Vết bầm ở cánh tay trái." in initial
    assert OVERRIDE in initial  # the worker confirmed Cao over the suggested Trung bình, with the reason

    detailed = page(client, case, "mau03")
    assert "BIÊN BẢN ĐÁNH GIÁ CHI TIẾT VÀ HỌP TRƯỜNG HỢP" in detailed
    assert NEEDS in detailed and ATTENDEES in detailed and '<td class="text">Cao</td>' in detailed

    plan = page(client, case, "mau04")
    assert "KẾ HOẠCH HỖ TRỢ, CAN THIỆP" in plan and GOALS in plan
    assert "Hỗ trợ, trị liệu tâm lý" in plan and "Trợ giúp pháp lý" in plan  # the planned services' labels
    assert PROVIDER in plan and "15/04/2025" in plan and "30/06/2025" in plan
    assert "(dự thảo)" not in plan  # approved
    assert "NGƯỜI PHÊ DUYỆT" in plan and "Phạm Thị Lan" in plan

    decision = page(client, case, "mau05")
    assert "QUYẾT ĐỊNH" in decision and "Về việc phê duyệt kế hoạch hỗ trợ, can thiệp đối với trẻ em" in decision
    assert "CHỦ TỊCH ỦY BAN NHÂN DÂN XÃ BA CHẼ" in decision and "Số: ........../QĐ-UBND" in decision
    assert "Nghị định số 56/2017/NĐ-CP" in decision
    assert CHILD in decision and "Hỗ trợ, trị liệu tâm lý" in decision and DECISION in decision
    assert "Phạm Thị Lan" in decision and "Nơi nhận:" in decision

    intake_record = page(client, case, "mau01")
    assert 'Mức độ nguy cơ ban đầu:</dt> <dd class="text">Cao</dd>' in intake_record  # not the level reviewed since

    review = page(client, case, "mau06")
    assert "BIÊN BẢN RÀ SOÁT, ĐÁNH GIÁ" in review and FINDINGS in review
    assert "Kết thúc kế hoạch hỗ trợ, can thiệp (trẻ em hết nguy cơ, ổn định)" in review
    assert "Chu kỳ 1, phê duyệt ngày" in review and PROVIDER in review and "Có tiến triển" in review
    assert "Khả năng tự bảo vệ và phục hồi của trẻ em" in review


def test_every_form_is_a_real_a4_pdf_with_the_child_and_the_national_motto(client, worker, supervisor, case):
    reviewed(case, worker, supervisor)
    signed_in(client, worker)
    for form in printing.FORM_CODES:
        text = pdf_text(client, case, form)
        assert CHILD in text, form
        assert NATION in text and MOTTO in text, form
        assert f"Mẫu số 0{form[-1]}" in text, form
        assert "Trang 1/" in text, form  # page numbers
    assert "Hỗ trợ, trị liệu tâm lý" in pdf_text(client, case, "mau04")
    decision = pdf_text(client, case, "mau05")
    assert "QUYẾT ĐỊNH" in decision and "Phạm Thị Lan" in decision


def test_the_page_and_the_pdf_draw_the_same_form(app, worker, supervisor, case):
    approved(case, worker, supervisor)
    built = printing.build_form(case, "mau05")
    reader = PdfReader(io.BytesIO(printing.render_pdf(built)))
    text = " ".join(" ".join(p.extract_text().split()) for p in reader.pages)
    for section in built.sections:
        if section.heading:
            assert " ".join(section.heading.split()) in text
        for row in section.rows:
            assert row.label in text
    for signature in built.signatures:
        assert signature.title in text and signature.name in text


def test_a_long_note_that_no_table_row_could_hold_still_prints_whole(client, worker, case):
    advance(case, worker, "initial_assessment")
    note = "Trẻ kể lại sự việc. " * 180 + "HẾT GHI CHÚ"
    assess(
        case,
        worker,
        kind="initial",
        harm_severity="high",
        abuser_access="high",
        care_obstacles="high",
        child_capacity="low",
        harm_note=note,
    )
    signed_in(client, worker)
    text = pdf_text(client, case, "mau02")
    assert "HẾT GHI CHÚ" in text and "Mức độ nghiêm trọng của tổn hại" in text


def test_the_form_stays_vietnamese_when_the_interface_is_english(client, worker, case):
    signed_in(client, worker)
    client.get("/lang/en")
    html = page(client, case, "mau01")
    assert NATION in html and "Giới tính" in html and "Nữ" in html
    assert en("Download PDF") in html and en("Print") in html


# --- choosing which assessment or plan ------------------------------------------------------------------------------


def test_the_latest_assessment_is_printed_unless_an_earlier_one_is_chosen(client, worker, case):
    advance(case, worker, "initial_assessment")
    first = assess(
        case,
        worker,
        kind="initial",
        harm_severity="low",
        abuser_access="low",
        care_obstacles="low",
        child_capacity="medium",
        harm_note="Lần đánh giá thứ nhất.",
    )
    assess(
        case,
        worker,
        kind="initial",
        harm_severity="medium",
        abuser_access="low",
        care_obstacles="low",
        child_capacity="medium",
        harm_note="Lần đánh giá thứ hai.",
    )
    signed_in(client, worker)
    latest = page(client, case, "mau02")
    assert "Lần đánh giá thứ hai." in latest and "Lần đánh giá thứ nhất." not in latest
    assert f'value="{first.id}"' in latest  # the earlier one is offered
    earlier = page(client, case, "mau02", id=str(first.id))
    assert "Lần đánh giá thứ nhất." in earlier and "Lần đánh giá thứ hai." not in earlier
    assert f"/forms/mau02.pdf?id={first.id}" in earlier
    assert "Lần đánh giá thứ nhất." in pdf_text(client, case, "mau02", id=str(first.id))
    assert [e.details["record"] for e in printed_events(case)][-2:] == [str(first.id), str(first.id)]


def test_an_id_of_another_case_or_of_another_kind_is_not_found(client, worker, case):
    advance(case, worker, "initial_assessment")
    own = assess(
        case,
        worker,
        kind="initial",
        harm_severity="low",
        abuser_access="low",
        care_obstacles="low",
        child_capacity="medium",
    )
    other = case_operations.open_case(case_operations.validate_intake(intake(), worker), worker)
    db.session.commit()
    advance(other, worker, "initial_assessment")
    foreign = assess(
        other,
        worker,
        kind="initial",
        harm_severity="high",
        abuser_access="high",
        care_obstacles="high",
        child_capacity="low",
        harm_note="Ghi chú của hồ sơ khác.",
    )
    signed_in(client, worker)
    for form, record in (
        ("mau02", foreign.id),  # another case's assessment
        ("mau03", own.id),  # an initial assessment is not a detailed one
        ("mau06", own.id),
        ("mau04", own.id),  # an assessment is not a plan
        ("mau02", uuid.uuid4()),
        ("mau02", "not-an-id"),
    ):
        for suffix in ("", ".pdf"):
            response = client.get(f"/cases/{case.id}/forms/{form}{suffix}", query_string={"id": str(record)})
            assert response.status_code == 404, (form, record, suffix)
            assert "Ghi chú của hồ sơ khác." not in response.get_data(as_text=True)
    assert printed_events(case) == []


def test_an_unknown_form_is_not_found(client, worker, case):
    signed_in(client, worker)
    assert client.get(f"/cases/{case.id}/forms/mau07").status_code == 404
    assert client.get(f"/cases/{case.id}/forms/mau07.pdf").status_code == 404


# --- refusals -----------------------------------------------------------------------------------------------------


def test_the_decision_before_the_plan_is_approved_is_refused_with_the_reason(client, worker, case):
    drafted(case, worker)
    signed_in(client, worker)
    for suffix in ("", ".pdf"):
        response = client.get(f"/cases/{case.id}/forms/mau05{suffix}")
        assert response.status_code == 409
        assert response.headers["Cache-Control"] == "no-store"
        assert vi("The support plan has not been approved yet: Mẫu 05 is the decision approving it.") in (
            response.get_data(as_text=True)
        )
    # The submitted plan itself prints as a draft.
    assert "(dự thảo)" in page(client, case, "mau04")
    plan = operations.current_plan(case)
    response = client.get(f"/cases/{case.id}/forms/mau05", query_string={"id": str(plan.id)})
    assert response.status_code == 409
    message = "The support plan of cycle %(cycle)d has not been approved: Mẫu 05 is the decision approving it."
    assert vi(message, cycle=1) in response.get_data(as_text=True)
    assert [e.details["form"] for e in printed_events(case)] == ["mau04"]


def test_forms_with_no_record_yet_name_what_is_missing(client, worker, case):
    signed_in(client, worker)
    missing = {
        "mau02": "No initial risk assessment (Mẫu 02) has been recorded for this case yet.",
        "mau03": "No detailed assessment (Mẫu 03) has been recorded for this case yet.",
        "mau04": "No support plan (Mẫu 04) has been drafted for this case yet.",
        "mau06": "No review (Mẫu 06) has been recorded for this case yet.",
    }
    for form, message in missing.items():
        response = client.get(f"/cases/{case.id}/forms/{form}.pdf")
        assert response.status_code == 409, form
        assert vi(message) in response.get_data(as_text=True), form
    assert printed_events(case) == []


# --- the audit trail ----------------------------------------------------------------------------------------------


def test_every_print_is_audited_with_the_form_and_format_and_no_child_data(client, worker, supervisor, case):
    approved(case, worker, supervisor)
    signed_in(client, worker)
    page(client, case, "mau01")
    pdf_text(client, case, "mau01")
    page(client, case, "mau05")
    pdf_text(client, case, "mau05")
    events = printed_events(case)
    plan = operations.current_plan(case)
    assert [(e.details["form"], e.details["format"]) for e in events] == [
        ("mau01", "html"),
        ("mau01", "pdf"),
        ("mau05", "html"),
        ("mau05", "pdf"),
    ]
    assert events[0].details["record"] is None and events[2].details["record"] == str(plan.id)
    assert {e.actor_username for e in events} == {"hathi"} and {e.object_type for e in events} == {"case"}
    stored = json.dumps([e.details for e in events], ensure_ascii=False)
    for secret in (CHILD, GUARDIAN, REPORTER, SUMMARY, GOALS):
        assert secret not in stored


# --- who may print ------------------------------------------------------------------------------------------------


def test_a_worker_of_another_commune_gets_not_found_and_nothing_is_audited(client, make_user, worker, case):
    elsewhere = make_user("social_worker", communes=("06979",), username="kythuong")
    signed_in(client, elsewhere)
    for form in printing.FORM_CODES:
        for suffix in ("", ".pdf"):
            response = client.get(f"/cases/{case.id}/forms/{form}{suffix}")
            assert response.status_code == 404, (form, suffix)
            assert CHILD not in response.get_data(as_text=True)
    assert printed_events(case) == []


@pytest.mark.parametrize("role", ["committee_member", "auditor", "admin"])
def test_roles_that_never_see_records_are_refused(client, make_user, worker, case, role):
    outsider = make_user(role, username="outsider")
    signed_in(client, outsider)
    for suffix in ("", ".pdf"):
        response = client.get(f"/cases/{case.id}/forms/mau01{suffix}")
        assert response.status_code == 403
        assert CHILD not in response.get_data(as_text=True)
    assert printed_events(case) == []


def test_the_supervisor_and_the_provincial_officer_may_print(client, make_user, worker, supervisor, case):
    signed_in(client, supervisor)
    assert CHILD in page(client, case, "mau01")
    officer = make_user("provincial_officer", username="tinh")
    other = client.application.test_client()
    signed_in(other, officer)
    assert CHILD in page(other, case, "mau01")
    assert [e.actor_username for e in printed_events(case)] == ["lan", "tinh"]


def test_anonymous_users_are_sent_to_sign_in(client, case):
    for suffix in ("", ".pdf"):
        response = client.get(f"/cases/{case.id}/forms/mau01{suffix}")
        assert response.status_code == 302 and response.headers["Location"].startswith("/login")


# --- small rules --------------------------------------------------------------------------------------------------


def test_the_date_line_follows_the_administrative_style(app):
    from casework.locations.models import Commune

    ward = db.session.get(Commune, "06970")
    day = utcnow().astimezone(local_tz()).date().replace(year=2026, month=2, day=5)
    assert printing.place_date(ward, day) == "Ba Chẽ, ngày 05 tháng 02 năm 2026"
    assert printing.place_date(ward, day.replace(month=11, day=21)) == "Ba Chẽ, ngày 21 tháng 11 năm 2026"
    assert printing.place_date(ward, None).startswith("Ba Chẽ, ngày .....")


# --- in a real browser ----------------------------------------------------------------------------------------------


@pytest.mark.browser
def test_the_printable_page_offers_print_and_prints_the_form_alone_in_its_own_font(page, worker, case):
    from playwright.sync_api import expect

    from tests.test_browser import HOME_URL, sign_in

    sign_in(page, worker.username)
    expect(page).to_have_url(HOME_URL)
    page.goto(f"/cases/{case.id}/forms/mau01")
    expect(page.locator("#print-form")).to_be_visible()  # its script ran under the Content-Security-Policy
    assert page.evaluate("() => document.fonts.ready.then(() => document.fonts.check('16px \"Casework Serif\"'))")
    page.emulate_media(media="print")
    for chrome in (".topbar", ".print-tools", ".footer"):
        expect(page.locator(chrome)).to_be_hidden()
    expect(page.locator("article.legal-form")).to_contain_text(CHILD)
    expect(page.locator("article.legal-form")).to_contain_text(NATION)
