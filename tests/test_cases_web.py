"""The pages of the case registry, driven through the test client with real forms, CSRF tokens and sign-ins.

Messages are compared with their Vietnamese translation (``vi()``): until the catalogue translates a message it is
shown, and compared, as its English msgid.
"""

from __future__ import annotations

import io
import re
import uuid
from datetime import timedelta

import pytest
from flask_babel import force_locale, gettext
from markupsafe import escape
from sqlalchemy import func, select

from casework.audit import AuditEvent
from casework.cases import operations
from casework.cases.models import Assignment, Case, CaseChange, CaseNote, Child, Consent, Referral
from casework.dbtypes import utcnow
from casework.extensions import db
from casework.security.files import StoredFile
from tests.conftest import AuthActions, csrf_from

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"

FORM = {
    "full_name": "Nguyễn Thị Hồng Nhung",
    "sex": "female",
    "birth_year": "2014",
    "commune_code": "06970",
    "national_id": "022314000777",
    "categories": ["abandoned"],
    "risk_level": "high",
    "source": "hotline_111",
    "received_at": "01/03/2025 09:30",
    "summary": "Hàng xóm báo trẻ thường bị bỏ một mình ở nhà.",
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


def count(model) -> int:
    db.session.rollback()  # a new transaction: see what the requests committed
    return db.session.scalar(select(func.count()).select_from(model))


def events(action: str, object_id) -> list[AuditEvent]:
    db.session.rollback()
    return list(
        db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == action, AuditEvent.object_id == str(object_id))
        )
    )


def fresh(model, object_id):
    db.session.rollback()
    return db.session.get(model, object_id)


def intake_payload(**child) -> dict:
    return {
        "child": {"full_name": "Trần Văn Minh", "sex": "male", "birth_year": 2013, "commune_code": "06970"} | child,
        "categories": ["violence_harm"],
        "risk_level": "medium",
        "source": "school",
        "received_at": "2025-02-01T08:00:00+07:00",
        "summary": "Cô giáo báo trẻ có vết bầm.",
    }


@pytest.fixture
def worker(make_user):
    return make_user("social_worker", communes=("06970",), username="hathi", full_name="Nguyễn Thị Hà")


@pytest.fixture
def supervisor(make_user):
    return make_user("supervisor", communes=("06970",), username="lan", full_name="Phạm Thị Lan")


@pytest.fixture
def make_case():
    """Factory: ``make_case(actor, **child fields)`` registers a case through the rules and commits it."""

    def factory(actor, **child) -> Case:
        case = operations.open_case(operations.validate_intake(intake_payload(**child), actor), actor)
        db.session.commit()
        return case

    return factory


def signed_in(client, user) -> AuthActions:
    auth = AuthActions(client)
    response = auth.login(user.username)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    return auth


def token(client, path: str = "/cases/new") -> str:
    return csrf_from(client.get(path).get_data(as_text=True))


def post_intake(client, **changes):
    data = FORM | {"csrf_token": token(client)} | changes
    return client.post("/cases/new", data={k: v for k, v in data.items() if v is not None})


# --- intake -----------------------------------------------------------------------------------------------------------


def test_intake_through_the_form_opens_the_case_and_lands_on_its_page(client, worker):
    signed_in(client, worker)
    response = post_intake(client)
    assert response.status_code == 302
    case = db.session.scalar(select(Case))
    assert response.headers["Location"] == f"/cases/{case.id}"
    assert case.child.full_name == "Nguyễn Thị Hồng Nhung"
    assert case.child.national_id == "022314000777"
    assert case.codes_of("special_circumstances") == ["abandoned"]
    assert case.assigned_to_id == worker.id

    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Nguyễn Thị Hồng Nhung" in page
    assert case.case_number in page
    assert "Trẻ em bị bỏ rơi" in page  # the group's label from codes.toml
    assert vi("Case %(number)s opened.", number=case.case_number) in page


def test_each_intake_error_shows_next_to_its_field_and_nothing_is_saved(client, worker):
    signed_in(client, worker)
    response = post_intake(
        client,
        full_name="  ",
        national_id="12345",
        birth_year=None,
        date_of_birth="31/02/2015",
        categories=None,
        risk_level="",
        guardian_phone="12",
        received_at="hôm qua",
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert vi("This field is required.") in errors_of(page, "full_name")
    assert vi("A personal ID number has 12 digits.") in errors_of(page, "national_id")
    assert vi("Write the date as dd/mm/yyyy.") in errors_of(page, "date_of_birth")
    assert vi("Choose at least one group, risk or form of abuse that brings the child here.") in errors_of(
        page, "categories"
    )
    assert vi("This field is required.") in errors_of(page, "risk_level")
    assert vi("A phone number has 9 to 12 digits.") in errors_of(page, "guardian_phone")
    assert vi("Write the date and time as dd/mm/yyyy hh:mm.") in errors_of(page, "received_at")
    assert 'value="12345"' in page  # what the worker typed stays in the form
    assert count(Case) == 0
    assert count(Child) == 0


def test_a_commune_outside_the_workers_area_is_refused(client, worker):
    signed_in(client, worker)
    response = post_intake(client, commune_code="06979")
    assert response.status_code == 422
    assert vi("This commune is outside your area.") in errors_of(response.get_data(as_text=True), "commune_code")
    assert count(Case) == 0


def test_a_request_without_csrf_token_is_refused(client, worker):
    signed_in(client, worker)
    assert client.post("/cases/new", data=FORM).status_code == 400
    assert count(Case) == 0


# --- duplicates -------------------------------------------------------------------------------------------------------


def test_same_id_in_the_workers_area_offers_the_child_and_linking_opens_a_second_case(client, worker, make_case):
    first = make_case(worker, full_name="Nguyễn Thị Nhung", national_id="022314000777")
    signed_in(client, worker)

    shown = post_intake(client)
    assert shown.status_code == 200
    page = shown.get_data(as_text=True)
    assert first.case_number in page
    assert f'name="duplicate_choice" value="{first.child_id}"' in page
    assert count(Case) == 1  # nothing saved before the worker chooses

    linked = post_intake(client, duplicate_choice=str(first.child_id))
    assert linked.status_code == 302
    assert count(Case) == 2
    assert count(Child) == 1
    cases = db.session.scalars(select(Case).order_by(Case.case_number)).all()
    assert {c.child_id for c in cases} == {first.child_id}


def test_confirming_a_new_child_needs_the_candidates_to_have_been_shown(client, worker, make_case):
    make_case(worker, national_id="022314000777")
    signed_in(client, worker)

    blind = post_intake(client, duplicate_choice="new")
    assert blind.status_code == 200  # the candidates are shown first, however the form was sent
    key = re.search(r'name="duplicates_shown" type="hidden" value="([0-9a-f]+)"', blind.get_data(as_text=True))
    assert key and count(Case) == 1

    unanswered = post_intake(client, duplicates_shown=key.group(1))
    assert unanswered.status_code == 422
    assert vi("Choose an earlier record of this child, or a new record.") in errors_of(
        unanswered.get_data(as_text=True), "duplicate_choice"
    )

    confirmed = post_intake(client, duplicate_choice="new", duplicates_shown=key.group(1))
    assert confirmed.status_code == 302
    assert count(Case) == 2
    assert count(Child) == 2


def test_same_id_outside_the_area_shows_only_where_and_whom_to_contact(client, worker, make_user, make_case):
    elsewhere = make_user("social_worker", communes=("06979",), username="tuan")
    make_user("supervisor", communes=("06979",), username="giam", full_name="Lê Văn Giám")
    other = make_case(elsewhere, full_name="Hoàng Thị Bí Mật", national_id="022314000777", commune_code="06979")
    signed_in(client, worker)

    response = post_intake(client)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Xã Kỳ Thượng" in page and "06979" in page
    assert "Lê Văn Giám (giam)" in page
    assert "Bí Mật" not in page
    assert other.case_number not in page
    assert str(other.child_id) not in page
    assert count(Case) == 1  # the worker stops here: nothing saved, but the match is on record
    recorded = events("child.duplicate_match", other.child_id)
    assert len(recorded) == 1
    assert recorded[0].actor_username == worker.username
    assert recorded[0].details == {"kind": "same_id", "commune": "06979"}


# --- search -----------------------------------------------------------------------------------------------------------


def found(client, query: str) -> set[str]:
    """The ids of the cases the search page links to for ``query``."""
    response = client.get("/cases/", query_string={"q": query})
    assert response.status_code == 200
    return set(re.findall(r'href="/cases/([0-9a-f-]{36})"', response.get_data(as_text=True)))


def test_search_finds_a_case_by_name_without_diacritics_by_id_and_by_case_number(client, worker, make_case):
    wanted = make_case(worker, full_name="Nguyễn Thị Hồng Nhung", national_id="022314000888")
    unwanted = make_case(worker, full_name="Trần Văn Đức", national_id="022314000999")
    signed_in(client, worker)

    for query in ("nhung nguyen", "NGUYEN HONG", "Nguyễn Thị Hồng Nhung", "022314000888", wanted.case_number):
        assert found(client, query) == {str(wanted.id)}, query
    assert found(client, "duc tran") == {str(unwanted.id)}
    assert found(client, "") == {str(wanted.id), str(unwanted.id)}
    assert found(client, "không ai") == set()
    assert vi("No case matches.") in client.get("/cases/?q=kh%C3%B4ng+ai").get_data(as_text=True)


def test_search_filters_and_sorts_by_next_deadline(client, worker, make_case):
    soon = make_case(worker, full_name="Lê Văn Sớm")
    late = make_case(worker, full_name="Lê Văn Muộn")
    overdue = make_case(worker, full_name="Lê Văn Trễ")
    now = utcnow()
    db.session.rollback()  # once: fresh() in the loop rolled back the deadlines set before it
    for case, deadline in (
        (soon, now + timedelta(days=2)),
        (late, now + timedelta(days=9)),
        (overdue, now - timedelta(days=1)),
    ):
        db.session.get(Case, case.id).next_deadline_at = deadline
    db.session.commit()
    signed_in(client, worker)

    page = client.get("/cases/").get_data(as_text=True)
    order = re.findall(r'href="/cases/([0-9a-f-]{36})"', page)
    assert order == [str(overdue.id), str(soon.id), str(late.id)]
    assert vi("Overdue") in page
    only_overdue = client.get("/cases/", query_string={"overdue": "y"}).get_data(as_text=True)
    assert set(re.findall(r'href="/cases/([0-9a-f-]{36})"', only_overdue)) == {str(overdue.id)}


def test_search_stays_in_the_users_area(client, worker, make_user, make_case):
    elsewhere = make_user("social_worker", communes=("06979",), username="tuan")
    hidden = make_case(elsewhere, full_name="Nguyễn Thị Hồng Nhung", commune_code="06979")
    signed_in(client, worker)
    assert found(client, "nguyen thi hong nhung") == set()
    assert found(client, hidden.case_number) == set()


def test_home_page_of_a_worker_lists_their_open_cases(client, worker, make_case):
    case = make_case(worker, full_name="Vũ Minh Khang")
    signed_in(client, worker)
    page = client.get("/").get_data(as_text=True)
    assert case.case_number in page and "Vũ Minh Khang" in page


def test_a_long_caseload_lists_the_most_urgent_counts_them_all_and_links_to_the_rest(client, worker, make_case):
    from datetime import timedelta

    from casework.dbtypes import utcnow
    from casework.main.views import HOME_CASELOAD

    cases = [make_case(worker, full_name=f"Trẻ Số {n}") for n in range(HOME_CASELOAD + 3)]
    now = utcnow()
    for n, case in enumerate(cases):
        case.assigned_to_id = worker.id
        case.next_deadline_at = now + timedelta(days=n - 2, hours=1)  # two of them past their deadline
    db.session.commit()
    signed_in(client, worker)
    page = client.get("/").get_data(as_text=True)
    assert f"{HOME_CASELOAD + 3} hồ sơ đang mở" in page and "2 quá hạn" in page
    listed = [c for c in cases if c.case_number in page]
    assert listed == cases[:HOME_CASELOAD]  # the most urgent first; the three with the latest deadlines wait
    link = re.search(r'<a href="(/cases/\?worker=[^"]+)">[^<]*' + str(HOME_CASELOAD + 3), page)
    assert link, "no link to the whole caseload"
    pages = [client.get(link.group(1) + f"&page={n}").get_data(as_text=True) for n in (1, 2, 3)]
    assert all(any(c.case_number in p for p in pages) for c in cases)  # the search lists all of them, paged


def test_home_page_of_a_supervisor_shows_the_team_and_unassigned_cases(client, worker, supervisor, make_case):
    make_case(worker)
    unassigned = make_case(supervisor, full_name="Đỗ Thị Mai")  # a supervisor's intake is not assigned
    signed_in(client, supervisor)
    page = client.get("/").get_data(as_text=True)
    assert "Nguyễn Thị Hà (hathi)" in page
    assert unassigned.case_number in page


# --- the case page and who may use it ---------------------------------------------------------------------------------


def test_viewing_the_case_page_records_a_case_view_event(client, worker, make_case):
    case = make_case(worker)
    signed_in(client, worker)
    assert client.get(f"/cases/{case.id}").status_code == 200
    viewed = events("case.view", case.id)
    assert [e.actor_username for e in viewed] == [worker.username]


def test_the_case_page_is_never_sent_when_its_view_could_not_be_recorded(client, worker, make_case, monkeypatch):
    from casework.audit import chain

    case = make_case(worker, full_name="Vàng Thị Sùng")
    signed_in(client, worker)

    def fail(_session) -> None:
        raise RuntimeError("the audit trail cannot be written")

    monkeypatch.setattr(chain, "seal", fail)
    monkeypatch.setitem(client.application.config, "PROPAGATE_EXCEPTIONS", False)
    response = client.get(f"/cases/{case.id}")
    assert response.status_code == 500
    assert "Vàng Thị Sùng" not in response.get_data(as_text=True)
    monkeypatch.undo()
    assert events("case.view", case.id) == []


def test_a_worker_of_another_commune_gets_404_on_the_page_the_file_and_the_note(client, worker, make_user, make_case):
    case = make_case(worker)
    stored = operations.attach_file(case, worker, io.BytesIO(PDF), "bien-ban.pdf")
    db.session.commit()
    stranger = make_user("social_worker", communes=("06979",), username="tuan")
    signed_in(client, stranger)
    csrf = token(client, "/")

    assert client.get(f"/cases/{case.id}").status_code == 404
    assert client.get(f"/cases/{case.id}/edit").status_code == 404
    assert client.get(f"/cases/{case.id}/files/{stored.id}").status_code == 404
    response = client.post(f"/cases/{case.id}/notes", data={"csrf_token": csrf, "body": "Ghi chú lạ"})
    assert response.status_code == 404
    assert client.get(f"/cases/{uuid.uuid4()}").status_code == 404  # the same answer as for a missing case
    assert count(CaseNote) == 0
    assert events("case.view", case.id) == []
    assert events("file.download", stored.id) == []


def test_notes_and_files_are_added_listed_and_downloaded(client, worker, make_case):
    case = make_case(worker)
    signed_in(client, worker)
    csrf = token(client, f"/cases/{case.id}")

    added = client.post(f"/cases/{case.id}/notes", data={"csrf_token": csrf, "body": "Đã gặp bà nội của trẻ."})
    assert added.status_code == 302
    uploaded = client.post(
        f"/cases/{case.id}/files",
        data={"csrf_token": csrf, "file": (io.BytesIO(PDF), "Biên bản làm việc.pdf")},
        content_type="multipart/form-data",
    )
    assert uploaded.status_code == 302
    page = client.get(f"/cases/{case.id}").get_data(as_text=True)
    assert "Đã gặp bà nội của trẻ." in page
    assert "Biên bản làm việc.pdf" in page
    assert "Nguyễn Thị Hà (hathi)" in page  # the note's author

    stored = db.session.scalar(select(StoredFile))
    download = client.get(f"/cases/{case.id}/files/{stored.id}")
    assert download.status_code == 200
    assert download.data == PDF
    assert download.headers["Content-Type"] == "application/pdf"
    assert download.headers["Content-Disposition"].startswith("attachment;")
    assert "filename*=UTF-8''Bi%C3%AAn%20b%E1%BA%A3n" in download.headers["Content-Disposition"]
    assert download.headers["Cache-Control"] == "no-store"
    assert len(events("file.download", stored.id)) == 1


def test_an_upload_of_a_refused_type_is_shown_next_to_the_file_field(client, worker, make_case):
    case = make_case(worker)
    signed_in(client, worker)
    response = client.post(
        f"/cases/{case.id}/files",
        data={"csrf_token": token(client, f"/cases/{case.id}"), "file": (io.BytesIO(b"MZ\x90\x00"), "virus.exe")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 422
    assert errors_of(response.get_data(as_text=True), "file")
    assert count(StoredFile) == 0


def test_an_empty_note_is_refused_next_to_its_field(client, worker, make_case):
    case = make_case(worker)
    signed_in(client, worker)
    response = client.post(f"/cases/{case.id}/notes", data={"csrf_token": token(client, "/"), "body": " "})
    assert response.status_code == 422
    assert vi("This field is required.") in errors_of(response.get_data(as_text=True), "body")
    assert count(CaseNote) == 0


# --- editing ----------------------------------------------------------------------------------------------------------


def edit_form(page: str) -> dict:
    version = re.search(r'id="version" name="version" type="hidden" value="(\d+)"', page)
    assert version, "no version in the edit form"
    return {
        "csrf_token": csrf_from(page),
        "version": version.group(1),
        "full_name": "Trần Văn Minh",
        "sex": "male",
        "risk_level": "medium",
        "source": "school",
        "summary": "Cô giáo báo trẻ có vết bầm.",
    }


def test_a_change_is_kept_in_the_history_with_old_and_new_values(client, worker, make_case):
    case = make_case(worker)
    signed_in(client, worker)
    form = edit_form(client.get(f"/cases/{case.id}/edit").get_data(as_text=True))
    response = client.post(f"/cases/{case.id}/edit", data=form | {"risk_level": "high", "full_name": "Trần Văn Mình"})
    assert response.status_code == 302
    changes = {c.field: (c.old_value, c.new_value) for c in db.session.scalars(select(CaseChange))}
    assert changes == {"risk_level": ("medium", "high"), "full_name": ("Trần Văn Minh", "Trần Văn Mình")}
    page = client.get(f"/cases/{case.id}").get_data(as_text=True)
    history = page[page.index('id="history"') :]
    assert "Trung bình" in history and "Cao" in history  # codes shown by their labels
    assert "Trần Văn Mình" in history


def test_a_stale_edit_is_refused_with_409_and_changes_nothing(client, worker, make_case):
    case = make_case(worker)
    signed_in(client, worker)
    stale = edit_form(client.get(f"/cases/{case.id}/edit").get_data(as_text=True))
    assert client.post(f"/cases/{case.id}/edit", data=stale | {"risk_level": "high"}).status_code == 302

    response = client.post(f"/cases/{case.id}/edit", data=stale | {"risk_level": "low"})
    assert response.status_code == 409
    expected = vi("Someone changed this case since you opened it. Reload it and make your change again.")
    assert expected in response.get_data(as_text=True)
    assert fresh(Case, case.id).risk_level == "high"


def test_an_invalid_edit_is_refused_next_to_its_field(client, worker, make_case):
    case = make_case(worker)
    signed_in(client, worker)
    form = edit_form(client.get(f"/cases/{case.id}/edit").get_data(as_text=True))
    response = client.post(f"/cases/{case.id}/edit", data=form | {"national_id": "123", "date_of_birth": "1/1/3000"})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert vi("A personal ID number has 12 digits.") in errors_of(page, "national_id")
    assert vi("The date cannot be in the future.") in errors_of(page, "date_of_birth")
    assert count(CaseChange) == 0


# --- assignment and referral ------------------------------------------------------------------------------------------


def test_a_supervisor_transfers_a_case_and_the_history_of_who_held_it_stays(
    client, worker, supervisor, make_user, make_case
):
    case = make_case(worker)
    second = make_user("social_worker", communes=("06970",), username="binh", full_name="Lê Văn Bình")
    signed_in(client, supervisor)
    response = client.post(
        f"/cases/{case.id}/assign",
        data={"csrf_token": token(client, "/"), "assign-worker": str(second.id), "assign-reason": "Chia lại việc"},
    )
    assert response.status_code == 302
    assert fresh(Case, case.id).assigned_to_id == second.id
    held = db.session.scalars(select(Assignment).order_by(Assignment.started_at)).all()
    assert [(a.worker_id, a.ended_at is None) for a in held] == [(worker.id, False), (second.id, True)]
    page = client.get(f"/cases/{case.id}").get_data(as_text=True)
    assignments = page[page.index('id="assignments"') :]
    assert "Nguyễn Thị Hà (hathi)" in assignments and "Lê Văn Bình (binh)" in assignments
    assert 'id="access-log"' in page  # the supervisor sees who viewed and changed the case


def test_a_worker_cannot_assign_nor_see_the_access_log(client, worker, make_user, make_case):
    case = make_case(worker)
    second = make_user("social_worker", communes=("06970",), username="binh")
    signed_in(client, worker)
    response = client.post(
        f"/cases/{case.id}/assign", data={"csrf_token": token(client, "/"), "assign-worker": str(second.id)}
    )
    assert response.status_code == 403
    assert fresh(Case, case.id).assigned_to_id == worker.id
    assert 'id="access-log"' not in client.get(f"/cases/{case.id}").get_data(as_text=True)


def test_a_referral_without_consent_needs_the_supervisors_reason(client, worker, supervisor, make_case):
    case = make_case(worker)
    signed_in(client, supervisor)
    data = {"csrf_token": token(client, "/"), "refer-to_commune": "06979", "refer-reason": "Gia đình chuyển nhà"}

    refused = client.post(f"/cases/{case.id}/refer", data=data)
    assert refused.status_code == 422
    assert vi("No consent to sharing is recorded: a supervisor must give a reason.") in errors_of(
        refused.get_data(as_text=True), "refer-override_reason"
    )
    assert count(Referral) == 0

    sent = client.post(f"/cases/{case.id}/refer", data=data | {"refer-override_reason": "Trẻ đang gặp nguy hiểm"})
    assert sent.status_code == 302
    referral = db.session.scalar(select(Referral))
    assert referral.override_by_id == supervisor.id and referral.consent_id is None
    assert referral.override_reason == "Trẻ đang gặp nguy hiểm"
    assert len(events("case.refer", case.id)) == 1


def test_a_worker_refers_with_recorded_consent_but_cannot_override(client, worker, make_case):
    case = make_case(worker)
    signed_in(client, worker)
    csrf = token(client, "/")
    data = {"csrf_token": csrf, "refer-to_commune": "06979", "refer-reason": "Gia đình chuyển nhà"}

    overriding = client.post(f"/cases/{case.id}/refer", data=data | {"refer-override_reason": "Gấp"})
    assert overriding.status_code == 403
    assert count(Referral) == 0

    consent = {
        "csrf_token": csrf,
        "consent-subject": "representative",
        "consent-scope": "sharing",
        "consent-given": "yes",
    }
    assert client.post(f"/cases/{case.id}/consents", data=consent).status_code == 302
    assert client.post(f"/cases/{case.id}/refer", data=data).status_code == 302
    referral = db.session.scalar(select(Referral))
    assert referral.consent_id is not None and referral.override_by_id is None

    # Withdrawing the consent cancels the referral that relied on it.
    recorded = db.session.scalar(select(Consent))
    assert (
        client.post(f"/cases/{case.id}/consents/{recorded.id}/withdraw", data={"csrf_token": csrf}).status_code == 302
    )
    assert fresh(Referral, referral.id).status == "cancelled"


def test_a_consent_without_a_basis_is_refused_next_to_the_basis(client, worker, make_case):
    case = make_case(worker)
    signed_in(client, worker)
    response = client.post(
        f"/cases/{case.id}/consents",
        data={
            "csrf_token": token(client, "/"),
            "consent-subject": "child",
            "consent-scope": "sharing",
            "consent-given": "no",
        },
    )
    assert response.status_code == 422
    assert vi("Without consent, name the legal basis relied on.") in errors_of(
        response.get_data(as_text=True), "consent-basis"
    )
    assert count(Consent) == 0


def test_the_receiving_supervisor_accepts_and_the_case_moves(client, worker, supervisor, make_user, make_case):
    case = make_case(worker)
    operations.refer_case(case, "06979", supervisor, reason="Gia đình chuyển nhà", override_reason="Khẩn cấp")
    db.session.commit()
    receiving = make_user("supervisor", communes=("06979",), username="giam")
    signed_in(client, receiving)

    listed = client.get("/cases/referrals").get_data(as_text=True)
    assert case.case_number in listed and "Gia đình chuyển nhà" in listed
    assert "Trần Văn Minh" not in listed  # the child's identity comes with the case, once accepted
    assert client.get(f"/cases/{case.id}").status_code == 404  # not yet theirs

    referral = db.session.scalar(select(Referral))
    response = client.post(
        f"/cases/referrals/{referral.id}/decision", data={"csrf_token": csrf_from(listed), "decision": "accept"}
    )
    assert response.status_code == 302
    assert response.headers["Location"] == f"/cases/{case.id}"
    moved = fresh(Case, case.id)
    assert moved.commune_code == "06979" and moved.assigned_to_id is None
    assert fresh(Referral, referral.id).status == "accepted"
    page = client.get(f"/cases/{case.id}").get_data(as_text=True)
    assert "Trần Văn Minh" in page
    assert "Nguyễn Thị Hà (hathi)" in page[page.index('id="assignments"') :]  # who held it before stays visible

    AuthActions(client).logout()
    signed_in(client, worker)
    assert client.get(f"/cases/{case.id}").status_code == 404  # it left the worker's commune


def test_only_the_receiving_supervisor_may_answer_a_referral(client, worker, supervisor, make_case):
    case = make_case(worker)
    referral = operations.refer_case(case, "06979", supervisor, reason="Chuyển", override_reason="Khẩn cấp")
    db.session.commit()
    signed_in(client, supervisor)  # the sending supervisor
    response = client.post(
        f"/cases/referrals/{referral.id}/decision", data={"csrf_token": token(client, "/"), "decision": "accept"}
    )
    assert response.status_code == 404
    assert fresh(Referral, referral.id).status == "pending"


def test_siblings_are_linked_by_case_number(client, worker, make_case):
    first = make_case(worker, full_name="Lý Văn Anh")
    second = make_case(worker, full_name="Lý Thị Em")
    signed_in(client, worker)
    response = client.post(
        f"/cases/{first.id}/siblings",
        data={"csrf_token": token(client, "/"), "sibling-case_number": second.case_number},
    )
    assert response.status_code == 302
    page = client.get(f"/cases/{first.id}").get_data(as_text=True)
    assert second.case_number in page[page.index('id="siblings"') :]
