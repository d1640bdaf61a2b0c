"""Walk every route of the app and of the API with the ids of real records of Xã Ba Chẽ (06970), as a social worker
of Xã Kỳ Thượng (06979) and as a committee member: every answer is 403 or 404 (a list answers with nothing of
them), no answer carries any of the child's data, and nothing is changed.

The routes come from the URL map, so a page or endpoint added tomorrow is walked the day it is added. A route is
left out only when it takes no record's id and is not about cases or children (``/me``, ``/provinces``, ``/audit``);
a route whose argument the walk cannot fill fails the walk until ``record_ids`` learns what that argument is.
"""

from __future__ import annotations

import io
import itertools
import json
import re
import uuid
import zipfile

import pytest
from sqlalchemy import func, select

from casework.cases import operations
from casework.cases.models import (
    Assignment,
    Case,
    CaseChange,
    CaseNote,
    Child,
    Consent,
    ImportBatch,
    Referral,
    SiblingLink,
)
from casework.extensions import db
from casework.jobs.models import Job
from casework.notifications.models import Notification
from casework.payments import operations as payment_operations
from casework.payments.models import PaymentRequest
from casework.security import files
from casework.security.text import fold
from casework.support import operations as support_operations
from casework.support.models import ClosureRequest, ServiceRecord
from tests.conftest import AuthActions, csrf_from

API = "/api/v1"
NAME = "Lò Thị Mỷ Duyên"
NATIONAL_ID = "022315000123"
NOTE = "Bé kể rằng bố đánh bằng roi mây mỗi tối."
GUARDIAN = "Lò Văn Páo"
SUMMARY = "Cô giáo báo trẻ có vết bầm trên tay, trẻ sợ về nhà."
FILE_NAME = "bien-ban-lam-viec-Duyen.pdf"
FILE_MARKER = "WALK-MARKER-06970-ATTACHMENT"

#: Path words that make a route one about cases or children: such routes are walked even without an id.
CASE_WORDS = frozenset({"cases", "case", "children", "child", "imports", "referrals", "consents", "notes", "files"})
#: Arguments that name no record: filled with a harmless value.
# form: a legal form's code; workflow_name: a workflow definition (a file), not a record
HARMLESS = {"filename": "casework.css", "code": "22", "form": "mau01", "workflow_name": "default"}
#: How each way in reaches the app: pages with a signed-in browser, the API with a bearer token.
DOORS = ("web", "api")
PERSONAS = ("worker_elsewhere", "committee_member")


def _pdf(marker: str) -> bytes:
    return b"%PDF-1.7\n" + (marker.encode() + b"\n") * 50 + b"%%EOF\n"


@pytest.fixture
def records(make_user):
    """Real records of commune 06970, committed: a case with its child, a sibling, a note, a file, a consent, a
    referral, a change, an assignment, an import batch and a job of its worker."""
    owner = make_user("social_worker", communes=("06970",), username="owner", full_name="Trần Thị Hoa")
    make_user("supervisor", communes=("06970",), username="ownersupervisor")
    payload = {
        "child": {
            "full_name": NAME,
            "date_of_birth": "2015-04-12",
            "sex": "female",
            "commune_code": "06970",
            "national_id": NATIONAL_ID,
            "address": "Thôn Khe Tum",
            "guardian_name": GUARDIAN,
            "guardian_phone": "0912 345 678",
        },
        "categories": ["violence_harm"],
        "abuse_types": ["violence"],
        "risk_level": "high",
        "source": "school",
        "received_at": "2025-03-01T09:30:00+07:00",
        "summary": SUMMARY,
    }
    case = operations.open_case(operations.validate_intake(payload, owner), owner)
    sibling_payload = {**payload, "child": {**payload["child"], "full_name": "Lò Văn Tú", "national_id": None}}
    sibling = operations.open_case(operations.validate_intake(sibling_payload, owner), owner)
    link = operations.link_siblings(case.child, sibling.child, owner)
    note = operations.add_note(case, owner, NOTE)
    stored = operations.attach_file(case, owner, io.BytesIO(_pdf(FILE_MARKER)), FILE_NAME)
    consent = operations.record_consent(case, owner, subject="representative", scope_code="sharing", given=True)
    # Referred to a third commune (Phường Hà Tu): nobody walking may decide it.
    referral = operations.refer_case(case, "06652", owner, reason="Gia đình chuyển đến Hà Tu")
    operations.update_case(case, owner, version=case.version, changes={"address": "Thôn Nà Làng"})
    register = files.save_upload(io.BytesIO(_pdf("REGISTER")), "so-theo-doi.pdf", actor=owner)
    batch = ImportBatch(file_id=register.id, commune_code="06970", status="checked", created_by_id=owner.id)
    db.session.add(batch)
    db.session.flush()
    job = Job(task="imports.check_register", params={"batch_id": str(batch.id)}, created_by_id=owner.id)
    db.session.add(job)
    # The owner's reminder about the case: nobody else may mark it read.
    notification = Notification(
        user_id=owner.id, kind="deadline_soon", key="walk", case_id=case.id, case_number=case.case_number
    )
    db.session.add(notification)
    service = support_operations.record_service(
        case, owner, {"service_type": "legal_aid", "delivered_on": "2025-03-03", "referral_status": "sent"}
    )
    closure = support_operations.request_closure(case, owner, {"reason": "moved_away"})
    # A payment request of the case (its payee is the guardian), on a programme of the province. The programme
    # walked is another province's: a province's programmes (budgets, no child) are open to all its workers.
    province_programme = payment_operations.create_programme(
        make_user("provincial_officer", username="ownerofficer"),
        {"name": "Quỹ Bảo trợ trẻ em", "year": 2025, "budget_vnd": 100_000_000},
    )
    payment = payment_operations.create_request(
        case,
        owner,
        {
            "programme": str(province_programme.id),
            "purpose": "medical_treatment",
            "amount_vnd": 1_250_000,
            "description": SUMMARY,
            "payee": {"name": GUARDIAN, "relation": "Bố", "method": "cash"},
        },
    )
    payment_operations.attach(payment, owner, io.BytesIO(_pdf(FILE_MARKER)), FILE_NAME)
    elsewhere_programme = payment_operations.create_programme(
        make_user("provincial_officer", province="01", username="hanoiofficer"),
        {"name": "Quỹ Bảo trợ trẻ em Hà Nội", "year": 2025, "budget_vnd": 100_000_000},
    )
    db.session.commit()
    change = db.session.scalar(select(CaseChange).where(CaseChange.case_id == case.id))
    assignment = db.session.scalar(select(Assignment).where(Assignment.case_id == case.id))
    ids = {
        "case_id": case.id,
        "child_id": case.child_id,
        "sibling_id": sibling.child_id,
        "other_child_id": sibling.child_id,
        "link_id": link.id,
        "sibling_link_id": link.id,
        "note_id": note.id,
        "file_id": stored.id,
        "consent_id": consent.id,
        "referral_id": referral.id,
        "change_id": change.id,
        "assignment_id": assignment.id,
        "batch_id": batch.id,
        "import_id": batch.id,
        "job_id": job.id,
        "user_id": owner.id,
        "worker_id": owner.id,
        "notification_id": notification.id,
        "service_id": service.id,
        "request_id": closure.id,
        "payment_id": payment.id,
        "programme_id": elsewhere_programme.id,
    }
    return {"ids": ids, "case": case, "case_number": case.case_number, "state": snapshot()}


def snapshot() -> dict:
    """What a refused request must leave as it was."""
    db.session.rollback()  # read what is committed now
    rows = {
        model.__name__: db.session.scalar(select(func.count()).select_from(model))
        for model in (Case, Child, CaseNote, CaseChange, Consent, Referral, Assignment, ImportBatch, SiblingLink)
    }
    rows["case_versions"] = sorted(db.session.scalars(select(Case.version)))
    rows["communes"] = sorted(db.session.scalars(select(Case.commune_code)))
    rows["referrals"] = sorted(db.session.scalars(select(Referral.status)))
    rows["support"] = [
        sorted(db.session.scalars(select(ServiceRecord.referral_status))),
        sorted(db.session.scalars(select(ClosureRequest.status))),
    ]
    rows["payments"] = sorted(db.session.scalars(select(PaymentRequest.status)))
    rows["unread_notifications"] = db.session.scalar(select(func.count()).where(Notification.read_at.is_(None)))
    rows["withdrawn"] = db.session.scalar(select(func.count()).where(Consent.withdrawn_at.is_not(None)))
    rows["files"] = db.session.scalar(
        select(func.count()).select_from(files.StoredFile).where(files.StoredFile.deleted_at.is_(None))
    )
    return rows


def secrets_of(records) -> list[str]:
    """Text that must never reach someone outside the area, as written and folded (no diacritics, lower case)."""
    plain = [NAME, records["case_number"], NATIONAL_ID, NOTE, GUARDIAN, SUMMARY, FILE_NAME, FILE_MARKER]
    return plain + [fold(s) for s in plain] + ["Lo Thi My Duyen", "0912345678"]


def readable(response) -> str:
    """The body as text a reader could see: JSON decoded (it escapes non-ASCII), archives (xlsx, docx) opened."""
    data = response.get_data()
    parts = [data.decode("utf-8", "replace")]
    if response.is_json:
        parts.append(json.dumps(response.get_json(), ensure_ascii=False))
    if data[:2] == b"PK":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            parts += [archive.read(name).decode("utf-8", "replace") for name in archive.namelist()]
    text = "\n".join(parts)
    return text + "\n" + fold(text)


def _strings(value) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return [str(value)] if value is not None else []


def assert_nothing_leaks(response, records, where: str, sent=()) -> None:
    """Check that ``response`` holds none of the secrets, but those the walker sent itself (a search box or a form
    shows its own input again): the rest of the record is still looked for, so a search by name that found the
    case would still be caught by its case number, and a search by case number by the name."""
    seen = readable(response)
    echoed = {fold(v) for v in _strings(sent)}
    for secret in secrets_of(records):
        if fold(secret) in echoed:
            continue
        assert secret not in seen, f"{where} shows {secret!r}"


# --- the routes -------------------------------------------------------------------------------------------------------


def is_case_route(rule) -> bool:
    words = {w for w in re.split(r"[/._-]", re.sub(r"<[^>]+>", "", rule.rule)) if w}
    return bool(words & CASE_WORDS)


def walked_rules(app, door: str):
    """``(rule, [argument values, ...])`` of every route of the door that the walk must try."""
    walked = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if (door == "api") != rule.rule.startswith(API + "/"):
            continue
        arguments = sorted(rule.arguments)
        protected = [a for a in arguments if a not in HARMLESS]
        if not protected and not is_case_route(rule):
            continue
        walked.append((rule, arguments))
    return walked


def fillings(arguments: list[str], ids: dict, rule) -> list[dict]:
    """Every way to fill the rule's arguments with real ids (``id`` alone is tried with each of them)."""
    choices = []
    for name in arguments:
        if name in HARMLESS:
            choices.append([HARMLESS[name]])
        elif name in ids:
            choices.append([ids[name]])
        elif name == "id":
            choices.append(sorted(set(ids.values()), key=str))
        else:
            pytest.fail(f"{rule.rule}: the walk does not know which real record <{name}> names; add it to records()")
    return [dict(zip(arguments, values, strict=True)) for values in itertools.product(*choices)]


def intake_for(records) -> dict:
    """An intake of the real child, in the walker's own commune, linked to the real child's id."""
    return {
        "child": {
            "full_name": NAME,
            "birth_year": 2015,
            "sex": "female",
            "commune_code": "06979",
            "national_id": NATIONAL_ID,
        },
        "categories": ["violence_harm"],
        "risk_level": "high",
        "source": "school",
        "received_at": "2025-03-02T09:30:00+07:00",
        "summary": "Báo cáo lại",
        "existing_child_id": str(records["ids"]["child_id"]),
    }


def json_bodies(records, *, collection: bool) -> list[dict]:
    """JSON bodies that would pass validation, so that the refusal comes from the scope check."""
    if collection:
        without_link = intake_for(records)
        del without_link["existing_child_id"]
        return [intake_for(records), without_link]
    return [
        {
            "body": "Ghi chú của người ngoài",
            "version": records["state"]["case_versions"][-1],
            "changes": {"risk_level": "low"},
            "accept": True,
            "decision": "accept",
            "worker_id": str(records["ids"]["user_id"]),
        }
    ]


def form_data(records, token: str) -> dict:
    return {
        "csrf_token": token,
        "body": "Ghi chú của người ngoài",
        "full_name": NAME,
        "national_id": NATIONAL_ID,
        "commune_code": "06979",
        "existing_child_id": str(records["ids"]["child_id"]),
        "decision": "accept",
        "worker": str(records["ids"]["user_id"]),
        "to_commune": "06979",
        "reason": "Thử",
        "override_reason": "Thử",
        "subject": "representative",
        "scope": "sharing",
        "given": "y",
        "version": str(records["state"]["case_versions"][-1]),
    }


def search_queries(records) -> list[dict]:
    ids = records["ids"]
    found_by = [NAME, fold(NAME), NATIONAL_ID, records["case_number"], "0912345678"]
    return [{"q": q} for q in found_by] + [
        {"q": NAME, "commune": "06970"},
        {"commune": "06970"},
        {"assigned_to": str(ids["user_id"])},
        {"worker": str(ids["user_id"])},
    ]


# --- the walkers ------------------------------------------------------------------------------------------------------


@pytest.fixture
def walker(app, make_user, api_token):
    """Factory: ``walker(persona, door)`` returns ``(client, headers, csrf token)`` signed in that way."""

    def factory(persona: str, door: str):
        if persona == "worker_elsewhere":
            user = make_user("social_worker", communes=("06979",), username="kythuong")
        else:
            user = make_user("committee_member", province="22", username="committee")
        client = app.test_client()
        if door == "api":
            return client, {"Authorization": f"Bearer {api_token(user)}"}, None
        signed_in = AuthActions(client).login(user.username)
        assert signed_in.status_code == 302 and signed_in.headers["Location"] == "/", signed_in.status_code
        token = csrf_from(client.get("/").get_data(as_text=True))
        return client, {"X-CSRFToken": token}, token

    return factory


def test_every_case_page_and_endpoint_is_walked(app):
    """The walk is not vacuous: every route of the case pages, the imports and /api/v1/cases is in it."""
    walked = {rule.endpoint for door in DOORS for rule, _ in walked_rules(app, door)}
    assert {"api.create_case", "api.list_cases", "api.show_case", "api.update_case", "api.add_note"} <= walked
    case_routes = {
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if rule.endpoint.partition(".")[0] in {"cases", "imports"} or rule.rule.startswith(f"{API}/cases")
    }
    assert case_routes - walked == set()


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize("persona", PERSONAS)
def test_someone_outside_the_area_gets_403_or_404_everywhere_and_never_the_data(app, records, walker, persona, door):
    client, headers, token = walker(persona, door)
    tried = 0
    for rule, arguments in walked_rules(app, door):
        for values in fillings(arguments, records["ids"], rule):
            url = rule.build(values, append_unknown=False)[1]
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                collection = not [a for a in arguments if a not in HARMLESS]
                for response, where, sent in _requests(client, method, url, headers, token, records, collection):
                    tried += 1
                    status = response.status_code
                    if not collection or persona == "committee_member":
                        assert status in {403, 404}, (where, status, response.get_data(as_text=True)[:300])
                    elif method == "GET":
                        # A list or a search answers within the walker's own area: nothing of 06970.
                        assert status in {200, 403, 404, 422}, (where, status)
                    else:
                        # Registering into another area, or onto its child, is refused as invalid or unseen.
                        assert status in {200, 400, 403, 404, 409, 422}, (where, status)
                    assert_nothing_leaks(response, records, where, sent)
    assert tried > 0
    home = client.get("/", headers=headers)
    assert_nothing_leaks(home, records, f"{door} home page")
    assert snapshot() == records["state"], "a refused request changed something"


def _requests(client, method: str, url: str, headers: dict, token: str | None, records, collection: bool):
    """Send the request (with each plausible body or search), yielding ``(response, description, what was sent)``."""
    is_api = url.startswith(API + "/")
    if method == "GET":
        queries = search_queries(records) if collection else [{}]
        for query in queries:
            yield client.get(url, query_string=query, headers=headers), f"GET {url} {query}", query
        return
    if is_api:
        for body in json_bodies(records, collection=collection):
            response = client.open(url, method=method, json=body, headers=headers)
            yield response, f"{method} {url} {sorted(body)}", body
        return
    data = form_data(records, token)
    yield client.open(url, method=method, data=data, headers=headers), f"{method} {url}", data


def test_the_walk_fails_on_a_route_whose_record_it_cannot_name(app):
    """A new route with an id the walk does not know is a failure to fix, not a route silently skipped."""
    from flask import Flask

    probe = Flask("probe")
    probe.add_url_rule("/cases/<uuid:case_id>/plans/<uuid:plan_id>", "cases.show_plan", lambda **_: "")
    (rule, arguments), *_ = walked_rules(probe, "web")
    with pytest.raises(pytest.fail.Exception, match="plan_id"):
        fillings(arguments, {"case_id": uuid.uuid4()}, rule)
