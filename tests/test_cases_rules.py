"""The rules of the case registry (``casework/cases/operations.py``), each exercised directly, with its refusal."""

from __future__ import annotations

import copy
import dataclasses
import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from casework.audit import AuditEvent
from casework.auth.models import User
from casework.cases import operations
from casework.cases.models import Assignment, Case, CaseChange, CaseNumberSequence, Consent, SiblingLink
from casework.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from casework.extensions import db

NOW = datetime(2025, 6, 1, 3, 0, tzinfo=UTC)  # 10:00 in Vietnam

INTAKE = {
    "child": {
        "full_name": "Lò Thị Mỷ Duyên",
        "date_of_birth": "2015-04-12",
        "sex": "female",
        "commune_code": "06970",
        "national_id": "022315000123",
        "guardian_phone": "0912 345 678",
    },
    "categories": ["violence_harm"],
    "risk_level": "high",
    "source": "hotline_111",
    "received_at": "2025-03-01T09:30:00+07:00",
    "summary": "Cô giáo báo trẻ có vết bầm trên tay.",
}


def intake(**changes) -> dict:
    """A valid intake; ``child__name=value`` changes a field of the child (None removes it)."""
    payload = copy.deepcopy(INTAKE)
    for key, value in changes.items():
        target, name = (payload["child"], key.removeprefix("child__")) if key.startswith("child__") else (payload, key)
        if value is None:
            target.pop(name, None)
        else:
            target[name] = value
    return payload


def refused(payload: dict, actor, *, now: datetime = NOW) -> dict[str, list[str]]:
    """The field codes with which ``validate_intake`` refuses ``payload``."""
    with pytest.raises(ValidationFailed) as caught:
        operations.validate_intake(payload, actor, now=now)
    return caught.value.field_codes


@pytest.fixture
def worker(make_user):
    return make_user("social_worker", communes=("06970",), username="hoa")


@pytest.fixture
def supervisor(make_user):
    return make_user("supervisor", communes=("06970",), username="lan")


@pytest.fixture
def open_case(worker):
    """Factory: ``open_case(actor=worker, **intake changes)`` registers a case (committed)."""

    def factory(actor=None, **changes) -> Case:
        actor = actor or worker
        case = operations.open_case(operations.validate_intake(intake(**changes), actor, now=NOW), actor)
        db.session.commit()
        return case

    return factory


# --- intake: what is required and what is valid -----------------------------------------------------------------------


def test_a_valid_intake_is_accepted_and_normalised(worker):
    data = operations.validate_intake(
        intake(child__national_id="0223 1500 0123", child__full_name="  Lò  Thị Mỷ   Duyên "), worker, now=NOW
    )
    assert data.child["national_id"] == "022315000123"
    assert data.child["full_name"] == "Lò Thị Mỷ Duyên"
    assert data.child["guardian_phone"] == "0912345678"
    assert data.child["date_of_birth"] == date(2015, 4, 12) and data.child["birth_year"] == 2015
    assert data.received_at == datetime(2025, 3, 1, 2, 30, tzinfo=UTC)
    assert data.codes == {"special_circumstances": ["violence_harm"], "at_risk": [], "abuse_types": []}


def test_required_fields_are_named(worker):
    assert refused({}, worker) == {
        "child": ["required"],
        "child.full_name": ["required"],
        "child.sex": ["required"],
        "child.date_of_birth": ["required"],
        "child.commune_code": ["required"],
        "categories": ["required"],
        "risk_level": ["required"],
        "source": ["required"],
        "received_at": ["required"],
        "summary": ["required"],
    }
    assert refused(intake(summary="   "), worker) == {"summary": ["required"]}
    assert refused(intake(child__full_name=""), worker) == {"child.full_name": ["required"]}


def test_the_body_must_be_an_object(worker):
    assert refused([], worker) == {"body": ["not_an_object"]}


def test_dates_cannot_be_in_the_future(worker):
    assert refused(intake(received_at="2025-06-01T10:01:00+07:00"), worker) == {"received_at": ["in_future"]}
    assert refused(intake(child__date_of_birth="2025-06-02"), worker) == {"child.date_of_birth": ["in_future"]}
    codes = refused(intake(child__date_of_birth=None, child__birth_year=2026), worker)
    assert codes == {"child.birth_year": ["in_future"]}
    # A time without a zone is Vietnam's: 09:59 there is before NOW, 10:01 after.
    operations.validate_intake(intake(received_at="01/06/2025 09:59"), worker, now=NOW)
    assert refused(intake(received_at="01/06/2025 10:01"), worker) == {"received_at": ["in_future"]}


def test_dates_must_be_readable(worker):
    codes = refused(intake(child__date_of_birth="12 April 2015", received_at="yesterday"), worker)
    assert codes == {"child.date_of_birth": ["invalid_date"], "received_at": ["invalid_datetime"]}
    assert refused(intake(child__date_of_birth=None, child__birth_year="abc"), worker)["child.birth_year"] == [
        "not_a_number"
    ]


def test_the_date_of_birth_and_the_birth_year_must_agree(worker):
    assert refused(intake(child__birth_year=2014), worker) == {"child.birth_year": ["inconsistent"]}
    data = operations.validate_intake(intake(child__birth_year=2015), worker, now=NOW)
    assert data.child["birth_year"] == 2015
    data = operations.validate_intake(intake(child__date_of_birth="12/04/2015"), worker, now=NOW)
    assert data.child["date_of_birth"] == date(2015, 4, 12)


def test_a_birth_year_or_an_estimated_age_can_stand_for_the_date_of_birth(worker):
    data = operations.validate_intake(intake(child__date_of_birth=None, child__birth_year=2016), worker, now=NOW)
    assert (data.child["date_of_birth"], data.child["birth_year"]) == (None, 2016)
    data = operations.validate_intake(intake(child__date_of_birth=None, child__estimated_age=9), worker, now=NOW)
    assert (data.child["birth_year"], data.child["estimated_age"]) == (None, 9)
    for age in (-1, 19, "nine", [9]):
        assert refused(intake(child__date_of_birth=None, child__estimated_age=age), worker) == {
            "child.estimated_age": ["invalid_age"],
            "child.date_of_birth": ["required"],  # the invalid age does not count as given
        }, age


def test_a_person_over_18_is_not_registered_as_a_child(worker):
    assert refused(intake(child__date_of_birth="2005-01-01"), worker) == {"child.date_of_birth": ["not_a_child"]}
    assert refused(intake(child__date_of_birth=None, child__birth_year=2000), worker) == {
        "child.birth_year": ["not_a_child"]
    }


def test_the_commune_must_exist_and_be_within_the_actors_area(worker, make_user):
    assert refused(intake(child__commune_code="06979"), worker) == {"child.commune_code": ["out_of_scope"]}
    assert refused(intake(child__commune_code="99999"), worker) == {"child.commune_code": ["unknown_commune"]}
    assert refused(intake(child__commune_code=6970), worker) == {"child.commune_code": ["unknown_commune"]}
    officer = make_user("provincial_officer", province="22")
    operations.validate_intake(intake(child__commune_code="06979"), officer, now=NOW)
    assert refused(intake(child__commune_code="00004"), officer) == {"child.commune_code": ["out_of_scope"]}
    committee = make_user("committee_member", province="22")
    assert refused(intake(), committee) == {"child.commune_code": ["out_of_scope"]}


@pytest.mark.parametrize("national_id", ["02231500012", "0223150001234", "02231500012a", "+84223150001"])
def test_a_personal_id_has_12_digits(worker, national_id):
    assert refused(intake(child__national_id=national_id), worker) == {"child.national_id": ["invalid_national_id"]}


def test_phone_numbers_have_9_to_12_digits(worker):
    for phone, stored in (
        ("+84 912 345 678", "+84912345678"),
        ("0912.345.678", "0912345678"),
        ("024 3825 1234", "02438251234"),
    ):
        data = operations.validate_intake(
            intake(child__guardian_phone=phone, reporter={"phone": phone}), worker, now=NOW
        )
        assert data.child["guardian_phone"] == stored and data.reporter["phone"] == stored
    for phone in ("12345", "0912345678901", "09+12345678", "không có"):
        codes = refused(intake(child__guardian_phone=phone, reporter={"phone": phone}), worker)
        assert codes == {"child.guardian_phone": ["invalid_phone"], "reporter.phone": ["invalid_phone"]}, phone


def test_unknown_codes_are_refused(worker):
    payload = intake(
        categories=["violence_harm", "nope"],
        at_risk=["risk_of_nothing"],
        abuse_types="violence",
        risk_level="extreme",
        source="rumour",
        channel="pigeon",
        child__sex="f",
        child__ethnicity="99",
    )
    assert refused(payload, worker) == {
        "categories": ["invalid_code"],
        "at_risk": ["invalid_code"],
        "abuse_types": ["not_a_list"],
        "risk_level": ["invalid_code"],
        "source": ["invalid_code"],
        "channel": ["invalid_code"],
        "child.sex": ["invalid_code"],
        "child.ethnicity": ["invalid_code"],
    }


def test_at_least_one_reason_code_is_required(worker):
    assert refused(intake(categories=[]), worker) == {"categories": ["required"]}
    for lists in ({"at_risk": ["risk_violence"]}, {"abuse_types": ["neglect"]}):
        data = operations.validate_intake(intake(categories=[], **lists), worker, now=NOW)
        assert any(data.codes.values())
    data = operations.validate_intake(intake(categories=["abandoned", "abandoned"]), worker, now=NOW)
    assert data.codes["special_circumstances"] == ["abandoned"]  # a code given twice counts once


def test_flags_must_be_booleans(worker):
    codes = refused(intake(immediate_danger="yes", child__has_disability=1), worker)
    assert codes == {"immediate_danger": ["not_a_boolean"], "child.has_disability": ["not_a_boolean"]}


# --- case numbers -----------------------------------------------------------------------------------------------------


def test_case_numbers_are_sequential_per_province_and_year(open_case, make_user):
    assert [open_case().case_number for _ in range(3)] == ["22-2025-000001", "22-2025-000002", "22-2025-000003"]
    assert open_case(received_at="2024-11-30T08:00:00+07:00").case_number == "22-2024-000001"
    # The year is Vietnam's: 18:00 UTC on 31 December is already New Year's Day there.
    assert open_case(received_at="2024-12-31T18:00:00Z").case_number == "22-2025-000004"
    hanoi = make_user("social_worker", communes=("00004",), province="01")
    assert open_case(actor=hanoi, child__commune_code="00004").case_number == "01-2025-000001"
    assert open_case().case_number == "22-2025-000005"


def test_case_numbers_stay_unique_and_sequential_under_10_concurrent_intakes(app, backend, worker):
    if backend != "postgresql":
        pytest.skip("SQLite serialises writers; the row lock is PostgreSQL's")
    worker_id = worker.id

    def run_round(size: int) -> list[str]:
        barrier = threading.Barrier(size)
        numbers: list[str] = []
        errors: list[BaseException] = []

        def intake_one(i: int) -> None:
            with app.app_context():
                try:
                    actor = db.session.get(User, worker_id)
                    data = operations.validate_intake(intake(child__national_id=f"0223150{i:05d}"), actor, now=NOW)
                    barrier.wait(timeout=30)
                    case = operations.open_case(data, actor)
                    db.session.commit()
                    numbers.append(case.case_number)
                except BaseException as exc:  # noqa: BLE001 - reported below, with the others
                    errors.append(exc)
                    db.session.rollback()

        threads = [threading.Thread(target=intake_one, args=(i,)) for i in range(size)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert errors == []
        return numbers

    first = run_round(10)  # no sequence row yet: ten requests race to create it
    assert sorted(first) == [f"22-2025-{n:06d}" for n in range(1, 11)]
    second = run_round(10)  # the row exists: ten requests queue on its lock
    assert sorted(second) == [f"22-2025-{n:06d}" for n in range(11, 21)]
    db.session.rollback()
    assert db.session.get(CaseNumberSequence, ("22", 2025)).last == 20
    assert len(set(db.session.scalars(select(Case.case_number)))) == 20


# --- consent ----------------------------------------------------------------------------------------------------------


def test_consent_not_given_needs_a_legal_basis(open_case, worker):
    case = open_case()
    with pytest.raises(ValidationFailed) as caught:
        operations.record_consent(case, worker, subject="representative", scope_code="sharing", given=False)
    assert caught.value.field_codes == {"basis": ["basis_required"]}
    with pytest.raises(ValidationFailed) as caught:
        operations.record_consent(
            case, worker, subject="representative", scope_code="sharing", given=False, basis="because"
        )
    assert caught.value.field_codes == {"basis": ["basis_required"]}
    consent = operations.record_consent(
        case, worker, subject="child", scope_code="sharing", given=False, basis="protect_life_health"
    )
    assert (consent.given, consent.basis) == (False, "protect_life_health")
    given = operations.record_consent(case, worker, subject="child", scope_code="sharing", given=True, basis="x")
    assert given.basis is None  # a consent given relies on nothing else


def test_consent_subject_and_scope_must_be_known(open_case, worker):
    case = open_case()
    with pytest.raises(ValidationFailed) as caught:
        operations.record_consent(case, worker, subject="neighbour", scope_code="everything", given=True)
    assert caught.value.field_codes == {"subject": ["invalid_code"], "scope": ["invalid_code"]}


def test_the_database_also_refuses_a_refusal_without_basis(open_case, worker):
    case = open_case()
    db.session.add(Consent(case_id=case.id, subject="child", scope="sharing", given=False, basis=None))
    with pytest.raises(IntegrityError):
        db.session.flush()
    db.session.rollback()


def test_withdrawing_consent_cancels_the_pending_referrals_that_relied_on_it(open_case, worker):
    case = open_case()
    consent = operations.record_consent(case, worker, subject="representative", scope_code="sharing", given=True)
    referral = operations.refer_case(case, "06652", worker, reason="Gia đình chuyển đến Hà Tu")
    assert referral.consent_id == consent.id and referral.override_by_id is None
    db.session.commit()
    cancelled = operations.withdraw_consent(consent, worker)
    db.session.commit()
    assert cancelled == [referral]
    assert referral.status == "cancelled" and consent.withdrawn_at is not None
    assert consent.withdrawn_by_id == worker.id
    assert operations.active_consent(case, "sharing") is None
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "consent.withdraw"))
    assert event.details == {"scope": "sharing", "cancelled_referrals": 1}
    with pytest.raises(Conflict) as caught:
        operations.withdraw_consent(consent, worker)
    assert caught.value.code == "already_withdrawn"


def test_withdrawal_leaves_answered_referrals_alone(open_case, worker, make_user):
    case = open_case()
    consent = operations.record_consent(case, worker, subject="representative", scope_code="sharing", given=True)
    referral = operations.refer_case(case, "06652", worker, reason="Chuyển nơi ở")
    receiving = make_user("supervisor", communes=("06652",))
    operations.decide_referral(referral, receiving, accept=False, note="Không thuộc địa bàn")
    assert operations.withdraw_consent(consent, worker) == []
    assert referral.status == "declined"


# --- referral ---------------------------------------------------------------------------------------------------------


def test_a_referral_needs_consent_or_a_supervisors_override(open_case, worker, supervisor):
    case = open_case()
    with pytest.raises(ValidationFailed) as caught:
        operations.refer_case(case, "06652", worker, reason="Chuyển nơi ở")
    assert caught.value.field_codes == {"override_reason": ["consent_required"]}
    with pytest.raises(PermissionDenied):
        operations.refer_case(case, "06652", worker, reason="Chuyển nơi ở", override_reason="Khẩn cấp")
    # A consent refused, or for another purpose, is no consent to sharing.
    operations.record_consent(case, worker, subject="child", scope_code="sharing", given=False, basis="court_order")
    operations.record_consent(case, worker, subject="child", scope_code="recording", given=True)
    with pytest.raises(ValidationFailed):
        operations.refer_case(case, "06652", worker, reason="Chuyển nơi ở")
    referral = operations.refer_case(case, "06652", supervisor, reason="Chuyển nơi ở", override_reason="Khẩn cấp")
    assert (referral.consent_id, referral.override_by_id) == (None, supervisor.id)
    assert referral.override_reason == "Khẩn cấp"
    db.session.commit()
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "case.refer"))
    assert event.details == {"to": "06652", "consent": False, "override": True}


def test_a_referral_is_refused_when_it_goes_nowhere_new_or_one_is_pending(open_case, worker, supervisor, make_user):
    case = open_case()
    cases = [
        ("06970", "Lý do", {"to_commune": ["same_commune"]}),
        ("99999", "Lý do", {"to_commune": ["unknown_commune"]}),
        ("06652", "  ", {"reason": ["required"]}),
    ]
    for to, reason, codes in cases:
        with pytest.raises(ValidationFailed) as caught:
            operations.refer_case(case, to, supervisor, reason=reason, override_reason="Khẩn cấp")
        assert caught.value.field_codes == codes
    operations.refer_case(case, "06652", supervisor, reason="Lý do", override_reason="Khẩn cấp")
    with pytest.raises(Conflict) as caught:
        operations.refer_case(case, "00004", supervisor, reason="Lý do", override_reason="Khẩn cấp")
    assert caught.value.code == "referral_pending"
    stranger = make_user("supervisor", communes=("06979",))
    with pytest.raises(NotFound):
        operations.refer_case(case, "06652", stranger, reason="Lý do", override_reason="Khẩn cấp")


def test_only_a_supervisor_of_the_receiving_commune_decides_a_referral_and_only_once(
    open_case, worker, supervisor, make_user
):
    case = open_case()
    operations.assign_case(case, make_user("social_worker", communes=("06970",)), supervisor)
    referral = operations.refer_case(case, "06652", supervisor, reason="Chuyển nơi ở", override_reason="Khẩn cấp")
    db.session.commit()
    for outsider in (
        supervisor,  # of the sending commune
        make_user("social_worker", communes=("06652",)),
        make_user("provincial_officer", province="22"),
        make_user("supervisor", communes=("06979",)),
    ):
        with pytest.raises(NotFound):
            operations.decide_referral(referral, outsider, accept=True)
    assert referral.status == "pending" and case.commune_code == "06970"
    receiving = make_user("supervisor", communes=("06652",))
    operations.decide_referral(referral, receiving, accept=True, note="Đã nhận")
    db.session.commit()
    assert (referral.status, referral.decided_by_id, referral.decision_note) == ("accepted", receiving.id, "Đã nhận")
    assert (case.commune_code, case.province_code, case.assigned_to_id) == ("06652", "22", None)
    assert all(a.ended_at is not None for a in operations.assignment_history(case))
    for accept in (True, False):
        with pytest.raises(Conflict) as caught:
            operations.decide_referral(referral, receiving, accept=accept)
        assert caught.value.code == "already_decided"
    # The sending commune no longer sees the case; the receiving one does.
    with pytest.raises(NotFound):
        operations.load_case(case.id, worker)
    assert operations.load_case(case.id, receiving) is case


def test_a_declined_referral_leaves_the_case_where_it_was(open_case, supervisor, make_user):
    case = open_case()
    referral = operations.refer_case(case, "06652", supervisor, reason="Chuyển nơi ở", override_reason="Khẩn cấp")
    operations.decide_referral(referral, make_user("supervisor", communes=("06652",)), accept=False)
    assert referral.status == "declined" and case.commune_code == "06970"
    operations.refer_case(case, "06652", supervisor, reason="Lần nữa", override_reason="Khẩn cấp")  # no longer pending


def test_a_child_referred_to_another_province_is_found_by_name_there_and_no_longer_at_home(
    open_case, worker, supervisor, make_user
):
    from casework.cases import search
    from casework.security.fields import BlindIndexEntry

    case = open_case(child__full_name="Lò Thị Mỷ", reporter={"phone": "0912 345 678"})
    hanoi_supervisor = make_user("supervisor", communes=("00004",), province="01")
    hanoi_worker = make_user("social_worker", communes=("00004",), province="01")
    home_officer = make_user("provincial_officer", province="22")

    def found(user) -> bool:
        return case.id in {c.id for c in search.search(user, search.Filters(q="lo thi my")).items}

    assert found(worker) and found(home_officer) and not found(hanoi_worker)
    referral = operations.refer_case(case, "00004", supervisor, reason="Chuyển nơi ở", override_reason="Khẩn cấp")
    operations.decide_referral(referral, hanoi_supervisor, accept=True)
    db.session.commit()
    assert (case.child.commune_code, case.child.province_code) == ("00004", "01")
    # Every index entry of the child and of the case moved with them, the name's and the phone's alike.
    communes = db.session.scalars(
        select(BlindIndexEntry.commune_code).where(BlindIndexEntry.row_id.in_((case.id, case.child_id)))
    ).all()
    assert communes and set(communes) == {"00004"}
    assert found(hanoi_worker) and not found(worker) and not found(home_officer)
    # The receiving commune finds the same child again at its next intake.
    duplicates = operations.find_duplicates(
        hanoi_worker, full_name="Lò Thị Mỷ", birth_year=case.child.birth_year, national_id=None, province_code="01"
    )
    assert [d.child_id for d in duplicates] == [case.child_id]


def test_a_name_is_looked_up_in_the_searching_users_communes_only(open_case, worker, make_user):
    from casework.cases.models import Child
    from casework.security import fields

    case = open_case(child__full_name="Hờ A Dính")
    assert set(db.session.scalars(fields.candidate_ids(Child.full_name, "ho a dinh", ["06970"]))) == {case.child_id}
    both = ["06652", "06970"]
    assert set(db.session.scalars(fields.candidate_ids(Child.full_name, "ho a dinh", both))) == {case.child_id}
    assert not set(db.session.scalars(fields.candidate_ids(Child.full_name, "ho a dinh", ["06652"])))
    assert not set(db.session.scalars(fields.candidate_ids(Child.full_name, "ho a dinh", [])))
    # Without communes (a personal ID is looked for across the country) every row is a candidate.
    assert set(db.session.scalars(fields.candidate_ids(Child.full_name, "ho a dinh"))) == {case.child_id}


def test_a_lookup_of_every_word_with_long_terms_is_exact_and_anything_less_is_confirmed(app, open_case, monkeypatch):
    from casework.cases.models import Child
    from casework.security import fields

    open_case(child__full_name="Hờ A Dính")
    assert fields.lookup(Child.full_name, "ho dinh", ["06970"]).exact
    monkeypatch.setattr(fields, "COMMON_TERM_ROWS", 0)  # every word "common": none can be left out ...
    assert fields.lookup(Child.full_name, "ho dinh", ["06970"]).exact  # ... so all are read, and it stays exact
    monkeypatch.undo()
    monkeypatch.setitem(app.config, "CASEWORK_BLIND_INDEX_BITS", 16)  # short terms collide: all are confirmed
    assert not fields.lookup(Child.full_name, "ho dinh", ["06970"]).exact


def test_a_child_an_exact_lookup_brings_by_mistake_is_never_shown(open_case, worker, monkeypatch):
    """A collision of 32-bit terms is one in a million: the cases shown are still confirmed by their names."""
    from sqlalchemy import literal, union

    from casework.cases import search
    from casework.cases.models import Child
    from casework.security import fields

    wanted = open_case(child__full_name="Hờ A Dính")
    intruder = open_case(child__full_name="Lầu Thị Mai")
    real_lookup = fields.lookup

    def colliding(field, query, communes=None):
        found = real_lookup(field, query, communes)
        if found is None or field is not Child.full_name:
            return found
        return fields.Lookup(select(union(found.rows, select(literal(intruder.child_id))).subquery().c[0]), True)

    monkeypatch.setattr(fields, "lookup", colliding)
    page = search.search(worker, search.Filters(q="ho a dinh"))
    assert [case.id for case in page.items] == [wanted.id]


def test_a_name_searched_with_a_filter_counts_only_the_cases_the_filter_keeps(open_case, worker):
    from casework.cases import search

    high = open_case(child__full_name="Sùng Thị Pà")
    low = open_case(child__full_name="Sùng Thị Pà", risk_level="low")
    open_case(child__full_name="Giàng A Tủa")
    everything = search.search(worker, search.Filters(q="sung pa"))
    assert everything.total == 2 and {c.id for c in everything.items} == {high.id, low.id}
    only_low = search.search(worker, search.Filters(q="sung pa", risk="low"))
    assert only_low.total == 1 and [c.id for c in only_low.items] == [low.id]
    assert search.search(worker, search.Filters(q="sung pa", stage="closed")).total == 0


@pytest.mark.parametrize("bits", [32, 16], ids=["exact lookup", "confirmed lookup"])
def test_a_names_matches_are_paged_in_deadline_order_as_any_other_search(app, open_case, worker, monkeypatch, bits):
    """A name's matches come back sorted and a page is a slice of them; the same search with a filter that keeps
    them all is sorted by the database: both must show the same cases in the same order, page after page."""
    from casework.cases import search

    monkeypatch.setitem(app.config, "CASEWORK_BLIND_INDEX_BITS", bits)
    cases = [open_case(child__full_name="Sùng Thị Pà") for _ in range(7)]
    open_case(child__full_name="Giàng A Tủa")
    now = datetime(2025, 3, 1, 2, 30, tzinfo=UTC)
    deadlines = [now + timedelta(days=3), None, now - timedelta(days=1), now + timedelta(days=3), None, now, now]
    for n, (case, deadline) in enumerate(zip(cases, deadlines, strict=True)):
        stored = db.session.get(Case, case.id)
        stored.next_deadline_at = deadline
        stored.received_at = now - timedelta(hours=n)  # equal deadlines: the newest report first
    db.session.commit()
    overdue_first = [cases[2], cases[5], cases[6], cases[0], cases[3], cases[1], cases[4]]

    def pages(**filters):
        return [search.search(worker, search.Filters(q="sung pa", page=n, **filters), per_page=3) for n in (1, 2, 3, 4)]

    sliced, sorted_by_sql = pages(), pages(commune="06970")
    for shown in (sliced, sorted_by_sql):
        assert [page.total for page in shown] == [7, 7, 7, 7]
        assert [[case.id for case in page.items] for page in shown] == [
            [case.id for case in overdue_first[:3]],
            [case.id for case in overdue_first[3:6]],
            [overdue_first[6].id],
            [],  # past the last page: nothing, and the total still says how many there are
        ]


@pytest.mark.parametrize("bits", [32, 16], ids=["exact lookup", "confirmed lookup"])
def test_a_name_found_as_one_childs_name_and_anothers_other_name_lists_both_in_deadline_order(
    app, open_case, worker, monkeypatch, bits
):
    from casework.cases import search

    monkeypatch.setitem(app.config, "CASEWORK_BLIND_INDEX_BITS", bits)
    named = open_case(child__full_name="Sùng Thị Pà")
    nicknamed = open_case(child__full_name="Lò Thị Dung", child__other_names="Pà Sùng")
    open_case(child__full_name="Giàng A Tủa", child__other_names="Tủa")
    now = datetime(2025, 3, 1, 2, 30, tzinfo=UTC)
    db.session.get(Case, named.id).next_deadline_at = now + timedelta(days=2)
    db.session.get(Case, nicknamed.id).next_deadline_at = now + timedelta(days=1)
    db.session.commit()
    pages = [search.search(worker, search.Filters(q="sung pa", page=n), per_page=1) for n in (1, 2, 3)]
    assert [page.total for page in pages] == [2, 2, 2]
    assert [[case.id for case in page.items] for page in pages] == [[nicknamed.id], [named.id], []]
    assert search.search(worker, search.Filters(q="tua")).total == 1


# --- assignment -------------------------------------------------------------------------------------------------------


def test_only_the_communes_supervisor_assigns_a_case_to_a_worker_of_the_commune(
    open_case, worker, supervisor, make_user
):
    case = open_case()
    colleague = make_user("social_worker", communes=("06970",), username="colleague")
    for actor in (
        worker,
        make_user("supervisor", communes=("06979",)),
        make_user("provincial_officer", province="22"),
    ):
        with pytest.raises(PermissionDenied):
            operations.assign_case(case, colleague, actor)
    inactive = make_user("social_worker", communes=("06970",))
    inactive.active = False
    for target in (
        make_user("social_worker", communes=("06979",)),
        make_user("supervisor", communes=("06970",)),
        inactive,
    ):
        with pytest.raises(ValidationFailed) as caught:
            operations.assign_case(case, target, supervisor)
        assert caught.value.field_codes == {"worker": ["not_a_worker_of_commune"]}
    assert case.assigned_to_id == worker.id
    assignment = operations.assign_case(case, colleague, supervisor, reason="Cân bằng khối lượng")
    db.session.commit()
    assert case.assigned_to_id == colleague.id and assignment.reason == "Cân bằng khối lượng"
    history = operations.assignment_history(case)
    assert [(a.worker_id, a.ended_at is None) for a in history] == [(worker.id, False), (colleague.id, True)]
    with pytest.raises(Conflict) as caught:
        operations.assign_case(case, colleague, supervisor)
    assert caught.value.code == "already_assigned"


# --- changes ----------------------------------------------------------------------------------------------------------


def test_a_change_records_who_changed_what_with_old_and_new_values_encrypted(open_case, worker):
    case = open_case()
    changed = operations.update_case(
        case, worker, version=1, changes={"risk_level": "low", "guardian_phone": "0987 654 321", "summary": "Mới"}
    )
    db.session.commit()
    assert sorted(changed) == ["guardian_phone", "risk_level", "summary"]
    assert case.version == 2
    rows = {c.field: c for c in operations.change_history(case)}
    assert (rows["risk_level"].old_value, rows["risk_level"].new_value) == ("high", "low")
    assert (rows["guardian_phone"].old_value, rows["guardian_phone"].new_value) == ("0912345678", "0987654321")
    assert rows["summary"].new_value == "Mới" and all(r.actor_id == worker.id for r in rows.values())
    stored = db.session.execute(select(CaseChange.__table__)).mappings().all()
    for row in stored:
        for secret in ("0912345678", "0987654321", "Cô giáo"):
            assert secret not in str(dict(row)), "a changed value is stored in plaintext"


def test_a_change_based_on_a_stale_version_is_refused(open_case, worker):
    case = open_case()
    operations.update_case(case, worker, version=1, changes={"risk_level": "low"})
    db.session.commit()
    with pytest.raises(Conflict) as caught:
        operations.update_case(case, worker, version=1, changes={"risk_level": "medium"})
    assert caught.value.code == "stale_version"
    assert case.risk_level == "low"


def test_a_change_of_only_the_child_still_bumps_the_case_version(open_case, worker):
    case = open_case()
    operations.update_case(case, worker, version=1, changes={"full_name": "Lò Thị Duyên"})
    db.session.commit()
    assert case.version == 2 and case.child.full_name == "Lò Thị Duyên"
    assert operations.update_case(case, worker, version=2, changes={"full_name": "Lò Thị Duyên"}) == []


def test_a_change_is_checked_by_the_intake_rules_and_refused_as_a_whole(open_case, worker):
    case = open_case()
    changes = {
        "risk_level": "low",
        "national_id": "123",
        "date_of_birth": "2030-01-01",
        "sex": "x",
        "source": None,
        "ethnicity": "99",
        "full_name": None,
        "guardian_phone": "12",
        "has_disability": "no",
        "stage": "closed",
    }
    with pytest.raises(ValidationFailed) as caught:
        operations.update_case(case, worker, version=1, changes=changes)
    assert caught.value.field_codes == {
        "national_id": ["invalid_national_id"],
        "date_of_birth": ["in_future"],
        "sex": ["invalid_code"],
        "source": ["required"],
        "ethnicity": ["invalid_code"],
        "full_name": ["required"],
        "guardian_phone": ["invalid_phone"],
        "has_disability": ["not_a_boolean"],
        "stage": ["not_editable"],
    }
    assert case.risk_level == "high" and case.child.national_id == "022315000123"
    db.session.flush()
    assert db.session.scalars(select(CaseChange)).all() == []


def test_a_changed_date_of_birth_carries_the_birth_year_with_it(open_case, worker):
    case = open_case()
    changed = operations.update_case(case, worker, version=1, changes={"date_of_birth": "03/02/2016"})
    assert sorted(changed) == ["birth_year", "date_of_birth"]
    assert (case.child.date_of_birth, case.child.birth_year) == (date(2016, 2, 3), 2016)


def test_a_closed_case_cannot_be_changed(open_case, worker):
    case = open_case()
    case.closed_at, case.closure_reason = datetime.now(UTC), "risk_removed"
    db.session.commit()
    with pytest.raises(Conflict) as caught:
        operations.update_case(case, worker, version=case.version, changes={"risk_level": "low"})
    assert caught.value.code == "case_closed"


# --- loading and siblings ---------------------------------------------------------------------------------------------


def test_a_case_outside_the_actors_area_is_not_found(open_case, make_user):
    case = open_case()
    for outsider in (
        make_user("social_worker", communes=("06979",)),
        make_user("committee_member", province="22"),
        make_user("provincial_officer", province="01"),
    ):
        with pytest.raises(NotFound):
            operations.load_case(case.id, outsider)
    with pytest.raises(NotFound):
        operations.load_case("not-a-uuid", make_user())


def test_siblings_are_linked_once_in_either_order(open_case, worker):
    first = open_case().child
    second = open_case(confirm_new_child=True, child__national_id=None, child__full_name="Lò Văn Tú").child
    link = operations.link_siblings(second, first, worker)
    db.session.commit()
    assert (link.child_a_id, link.child_b_id) == tuple(sorted((first.id, second.id)))
    assert operations.link_siblings(first, second, worker) is link
    assert len(db.session.scalars(select(SiblingLink)).all()) == 1


def test_a_child_is_not_its_own_sibling_and_siblings_are_linked_only_within_the_area(open_case, worker, make_user):
    first = open_case().child
    second = open_case(confirm_new_child=True, child__national_id=None, child__full_name="Lò Văn Tú").child
    with pytest.raises(ValidationFailed) as caught:
        operations.link_siblings(first, first, worker)
    assert caught.value.field_codes == {"sibling": ["same_child"]}
    outsider = make_user("social_worker", communes=("06979",))
    elsewhere = open_case(
        actor=outsider, child__commune_code="06979", child__national_id=None, child__full_name="Hà Văn Tú"
    ).child
    with pytest.raises(NotFound):
        operations.link_siblings(first, elsewhere, worker)
    with pytest.raises(NotFound):
        operations.link_siblings(first, second, outsider)
    assert db.session.scalars(select(SiblingLink)).all() == []


def test_a_social_workers_own_intake_is_assigned_to_them(open_case, worker, supervisor):
    mine = open_case()
    assert mine.assigned_to_id == worker.id
    assert [a.worker_id for a in db.session.scalars(select(Assignment).where(Assignment.case_id == mine.id))] == [
        worker.id
    ]
    theirs = open_case(actor=supervisor, child__national_id=None, child__full_name="Hà Văn Tú")
    assert theirs.assigned_to_id is None  # a supervisor's intake waits to be assigned


def test_caseload_counts_are_of_open_cases_in_the_workers_area_and_a_team_counts_each_worker(
    open_case, worker, supervisor, make_user
):
    from casework.cases import search
    from casework.dbtypes import utcnow

    colleague = make_user("social_worker", communes=("06970",), username="minh")
    now = utcnow()
    late, due, undated, closed, theirs, moved = (open_case() for _ in range(6))
    for case, deadline in ((late, -1), (due, 1), (closed, -30), (theirs, -2), (moved, -3)):
        case.next_deadline_at = now + timedelta(days=deadline)
    undated.next_deadline_at = None
    closed.closed_at, closed.closure_reason = now, "goals_met"
    theirs.assigned_to_id = colleague.id
    moved.commune_code = "06979"  # still assigned to the worker, but no longer in their area
    db.session.commit()

    assert search.caseload_counts(worker) == (3, 1)
    assert search.caseload_counts(colleague) == (1, 1)
    team = {
        row.worker.username if row.worker else None: (row.open_cases, row.overdue)
        for row in search.team_caseload(supervisor)
    }
    assert team == {"hoa": (3, 1), "minh": (1, 1)}


def _open_caseloads() -> tuple[dict, dict]:
    """What ``open_caseloads`` holds (zero rows left out), and what counting the cases gives."""
    from casework.cases.models import OpenCaseload

    kept = {
        (row.assigned_to_id, row.commune_code): row.open_cases
        for row in db.session.scalars(select(OpenCaseload))
        if row.open_cases
    }
    return kept, operations.count_open_caseloads()


def test_the_open_cases_kept_per_worker_follow_every_way_a_case_changes(open_case, worker, supervisor, make_user):
    """``open_caseloads`` is kept by triggers in the database: intake, assignment, reassignment, closure, reopening,
    a referral to another commune, and plain SQL that bypasses the app all leave it equal to a count of the cases."""
    from sqlalchemy import delete, update

    from casework.cases import search

    colleague = make_user("social_worker", communes=("06970",))

    def check(expected_worker: int) -> None:
        db.session.flush()
        kept, counted = _open_caseloads()
        assert kept == counted
        assert kept.get((worker.id, "06970"), 0) == expected_worker
        assert search.caseload_counts(worker)[0] == expected_worker

    first, second, third = open_case(), open_case(), open_case()  # a worker's own intake is theirs
    check(3)
    waiting = open_case(actor=supervisor, child__national_id=None, child__full_name="Hà Văn Tú")
    check(3)  # unassigned: nobody's
    operations.assign_case(waiting, worker, supervisor)
    check(4)
    operations.assign_case(first, colleague, supervisor, reason="Cân bằng công việc")
    check(3)
    second.closed_at, second.closure_reason = NOW, "goals_met"
    check(2)
    second.closed_at, second.closure_reason = None, None
    check(3)
    referral = operations.refer_case(third, "06652", supervisor, reason="Chuyển nơi ở", override_reason="Khẩn cấp")
    operations.decide_referral(referral, make_user("supervisor", communes=("06652",)), accept=True)
    check(2)  # the case left the commune and its worker
    db.session.commit()
    check(2)

    # Whoever writes: the importer, the demo loader and an operator's SQL go past the app's operations.
    db.session.execute(update(Case).where(Case.id == waiting.id).values(assigned_to_id=colleague.id))
    check(1)
    db.session.execute(update(Case).where(Case.id == waiting.id).values(commune_code="06979"))
    check(1)
    assert _open_caseloads()[0][(colleague.id, "06979")] == 1
    db.session.execute(
        update(Case).where(Case.assigned_to_id == colleague.id).values(assigned_to_id=worker.id, closed_at=None)
    )
    check(2)
    db.session.execute(delete(Assignment))
    db.session.execute(delete(CaseChange))
    db.session.execute(delete(Case).where(Case.id == second.id))
    check(1)
    db.session.rollback()  # and a transaction given up takes its changes to the counts with it
    check(2)


def test_caseloads_recount_puts_right_totals_changed_behind_the_triggers_back(
    app_env, open_case, worker, supervisor, make_user
):
    from sqlalchemy import delete, update

    from casework.cases.models import OpenCaseload
    from tests.conftest import casework_cli

    colleague = make_user("social_worker", communes=("06970",))
    for _ in range(3):
        open_case()
    operations.assign_case(open_case(actor=supervisor, child__national_id=None), colleague, supervisor)
    db.session.commit()
    assert casework_cli(app_env, "caseloads", "recount").stdout.strip() == "open-case totals right"

    # What an operator's work with the triggers off could leave: a wrong total, and one missing.
    db.session.execute(update(OpenCaseload).values(open_cases=7))
    db.session.execute(delete(OpenCaseload).where(OpenCaseload.assigned_to_id == colleague.id))
    db.session.commit()
    kept, counted = _open_caseloads()
    assert kept == {(worker.id, "06970"): 7}

    cli = casework_cli(app_env, "caseloads", "recount")
    assert cli.returncode == 0, cli.stderr
    assert f"worker {worker.id} in 06970: 7 -> 3" in cli.stdout
    assert f"worker {colleague.id} in 06970: 0 -> 1" in cli.stdout
    assert "2 open-case totals put right" in cli.stdout
    db.session.rollback()
    kept, counted = _open_caseloads()
    assert kept == counted == {(worker.id, "06970"): 3, (colleague.id, "06970"): 1}
    assert casework_cli(app_env, "caseloads", "recount").stdout.strip() == "open-case totals right"


def test_the_unassigned_queue_is_the_open_unassigned_cases_of_the_users_area_in_deadline_order_page_by_page(
    open_case, worker, supervisor
):
    from casework.cases import search

    def waiting(name: str, deadline: int | None, received_days_ago: int = 5) -> Case:
        case = open_case(actor=supervisor, child__national_id=None, child__full_name=name)
        case.next_deadline_at = None if deadline is None else NOW + timedelta(days=deadline)
        case.received_at = NOW - timedelta(days=received_days_ago)
        return case

    late, due = waiting("Hà Văn Tú", -2), waiting("Lò Thị Mai", 1)
    undated_old, undated_new = waiting("Đỗ Văn An", None, 9), waiting("Vi Thị Hoa", None, 1)
    closed = waiting("Nông Văn Bình", -5)
    closed.closed_at, closed.closure_reason = NOW, "goals_met"
    elsewhere = waiting("Sầm Thị Lan", -9)
    elsewhere.commune_code = "06979"  # not the supervisor's commune
    held = open_case()  # the worker's own intake is theirs
    held.next_deadline_at = NOW - timedelta(days=20)
    db.session.commit()

    first = search.search(supervisor, search.Filters(unassigned=True), per_page=3)
    second = search.search(supervisor, search.Filters(unassigned=True, page=2), per_page=3)
    assert (first.total, second.total) == (4, 4)
    assert [c.id for c in first.items] == [late.id, due.id, undated_new.id]
    assert [c.id for c in second.items] == [undated_old.id]
    assert first.items[0].child.full_name == "Hà Văn Tú"


def test_a_caseload_lists_overdue_first_then_by_deadline_cases_without_one_last(open_case, worker):
    from datetime import timedelta

    from casework.cases import search

    cases = [open_case() for _ in range(5)]
    soon, later, none_old, none_new, closed = cases
    base = NOW + timedelta(days=1)
    soon.next_deadline_at, later.next_deadline_at = base - timedelta(days=3), base + timedelta(days=3)
    none_old.next_deadline_at = none_new.next_deadline_at = None
    none_old.received_at, none_new.received_at = NOW - timedelta(days=9), NOW - timedelta(days=1)
    closed.next_deadline_at = base - timedelta(days=30)
    closed.closed_at, closed.closure_reason = NOW, "goals_met"
    for case in cases:
        case.assigned_to_id = worker.id
    db.session.commit()
    assert [c.id for c in search.caseload(worker)] == [soon.id, later.id, none_new.id, none_old.id]
    assert [c.id for c in search.caseload(worker, limit=3)] == [soon.id, later.id, none_new.id]
    # Listed as plain rows: each value is the case's own, under its own name, and the child's name is opened.
    listed = search.caseload(worker)[0]
    for field in dataclasses.fields(listed):
        if field.name != "child":
            assert getattr(listed, field.name) == getattr(soon, field.name), field.name
    assert listed.child.full_name == soon.child.full_name and listed.child.full_name
