"""Synthetic demo data (``casework demo --cases N``): plausible, reproducible, and stored exactly as the application
stores what it creates, so that search, decryption and scope treat generated cases like any other."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from casework import codes
from casework.audit.models import AuditEvent
from casework.auth.models import User
from casework.cases import demo_data, operations, search
from casework.cases.models import Assignment, Case, CaseCode, CaseNumberSequence, Child, SiblingLink
from casework.extensions import db
from casework.i18n import local_tz
from casework.security import fields
from casework.security.fields import BlindIndexEntry
from casework.security.keys import keyring
from casework.security.text import fold, words
from tests.conftest import casework_cli

N = 200
SEED = 11
PLAN_NOW = datetime(2026, 5, 4, 2, 30, tzinfo=UTC)


@pytest.fixture
def demo_users(app) -> dict[str, User]:
    from casework import demo

    demo.seed_users()
    db.session.commit()
    return {u.username: u for u in db.session.scalars(select(User))}


@pytest.fixture
def generated(demo_users) -> demo_data.Generated:
    result = demo_data.generate(N, seed=SEED)
    db.session.commit()
    return result


def all_cases() -> list[Case]:
    return list(db.session.scalars(select(Case).order_by(Case.case_number)))


def has_diacritics(text: str) -> bool:
    return any(unicodedata.combining(ch) for ch in unicodedata.normalize("NFD", text)) or "đ" in text.lower()


def find(user, q: str) -> set:
    page = search.search(user, search.Filters(q=q, open_only=False), per_page=1000)
    return {case.id for case in page.items}


def intake(worker: User, **child) -> Case:
    payload = {
        "child": {"sex": "female", "commune_code": "06970", "birth_year": 2015, **child},
        "categories": ["disability"],
        "risk_level": "medium",
        "source": "school",
        "received_at": (datetime.now(UTC) - timedelta(days=2)).isoformat(),
        "summary": "Giáo viên báo trẻ nghỉ học nhiều ngày.",
    }
    case = operations.open_case(operations.validate_intake(payload, worker), worker)
    db.session.commit()
    return case


# --- what is written ------------------------------------------------------------------------------------------------


def test_generation_writes_the_cases_asked_for_with_one_audit_event(generated):
    assert generated.cases == N and generated.seed == SEED
    assert db.session.scalar(select(func.count(Case.id))) == N
    assert db.session.scalar(select(func.count(Child.id))) == N
    coded = db.session.scalar(select(func.count(func.distinct(CaseCode.case_id))))
    assert coded == N  # every case names a group, a risk or a form of abuse
    assert db.session.scalar(select(func.count(BlindIndexEntry.id))) > 3 * N

    events = db.session.scalars(select(AuditEvent).order_by(AuditEvent.seq)).all()
    generation = [e for e in events if e.action == "demo.generate"]
    assert len(generation) == 1 and generation[0].details == {"cases": N}
    assert not [e for e in events if e.action in ("cases.create", "children.create", "case_codes.create")]


def test_generated_cases_are_spread_over_stages_places_and_kinds_plausibly(generated):
    now = datetime.now(UTC)
    cases = all_cases()
    stages = Counter(c.stage for c in cases)
    assert set(stages) == set(demo_data.STAGES)
    assert stages["closed"] > N / 2

    provinces = Counter(c.province_code for c in cases)
    assert len(provinces) >= 5 and provinces.most_common(1)[0][0] == "22"
    communes = Counter(c.commune_code for c in cases)
    assert communes["06970"] >= N * 0.05 and communes["06979"] >= N * 0.05

    children = [c.child for c in cases]
    assert sum(has_diacritics(child.full_name) for child in children) > 0.9 * N
    assert all(2 <= len(child.full_name.split()) <= 5 for child in children)
    assert sum(child.full_name.startswith("Nguyễn ") for child in children) > 0.1 * N
    ethnicities = Counter(child.ethnicity for child in children)
    assert ethnicities.most_common(1)[0][0] == "01" and len(ethnicities) >= 3
    assert {child.sex for child in children} >= {"female", "male"}

    risks = Counter(c.risk_level for c in cases)
    assert risks["low"] > risks["medium"] > risks["high"] > 0.08 * N
    assert 0.3 * N < risks["low"] < 0.6 * N
    sources = Counter(c.source for c in cases)
    assert len(sources) >= 6 and "hotline_111" in sources
    assert all(codes.is_code("report_sources", c.source) and codes.is_code("report_channels", c.channel) for c in cases)
    for case in cases:
        assert all(codes.is_code(code.list_name, code.code) for code in case.codes)

    tz = local_tz()
    for case in cases:
        assert now - timedelta(days=3 * 365 + 1) <= case.received_at <= now
        assert case.created_at >= case.received_at
        year = case.child.birth_year or (case.received_at.year - case.child.estimated_age)
        assert 0 <= case.received_at.astimezone(tz).year - year <= 16
        if case.stage == "closed":
            assert case.closed_at is not None and case.received_at <= case.closed_at <= now
            assert codes.is_code("closure_reasons", case.closure_reason)
            assert case.next_deadline_at is None
        else:
            assert case.closed_at is None and case.closure_reason is None and case.next_deadline_at is not None
    overdue = [c for c in cases if c.closed_at is None and c.next_deadline_at < now]
    assert 0 < len(overdue) < len([c for c in cases if c.closed_at is None])
    assert len({c.received_at.astimezone(tz).year for c in cases}) >= 3


def test_case_numbers_follow_reception_and_continue_the_sequences(demo_users):
    worker = demo_users["worker"]
    first = intake(worker, full_name="Lò Thị Ánh")
    demo_data.generate(60, seed=3)
    db.session.commit()
    cases = all_cases()
    assert len({c.case_number for c in cases}) == 61
    tz = local_tz()
    by_key: dict[tuple[str, int], list[Case]] = {}
    for case in cases:
        assert re.fullmatch(rf"{case.province_code}-{case.received_at.astimezone(tz).year}-\d{{6}}", case.case_number)
        by_key.setdefault((case.province_code, case.received_at.astimezone(tz).year), []).append(case)
    for (province, year), group in by_key.items():
        numbers = [int(c.case_number[-6:]) for c in group]
        assert sorted(numbers) == list(range(1, len(group) + 1))
        generated = sorted((c for c in group if c.id != first.id), key=lambda c: c.received_at)
        assert [c.case_number for c in generated] == sorted(c.case_number for c in generated)
        assert db.session.get(CaseNumberSequence, (province, year)).last == len(group)
    # The next case opened through the application continues where the generator stopped.
    after = intake(worker, full_name="Lò Văn Ơn")
    year = after.received_at.astimezone(tz).year
    assert int(after.case_number[-6:]) == db.session.get(CaseNumberSequence, ("22", year)).last
    assert int(after.case_number[-6:]) == len(by_key[("22", year)]) + 1


def test_siblings_share_commune_family_name_and_guardian(generated):
    links = db.session.scalars(select(SiblingLink)).all()
    assert links
    for link in links:
        a, b = db.session.get(Child, link.child_a_id), db.session.get(Child, link.child_b_id)
        assert a.id < b.id
        assert a.commune_code == b.commune_code and a.guardian_name == b.guardian_name
        assert a.ethnicity == b.ethnicity and a.address == b.address
    many = demo_data.plan(2000, seed=SEED, now=PLAN_NOW)
    assert 40 < sum(p.child.sibling_of is not None for p in many) < 200


# --- stored as the application stores it -----------------------------------------------------------------------------


def test_every_generated_value_decrypts(generated):
    for case in all_cases():
        child = case.child
        assert child.full_name and child.address and case.summary
        for name in ("other_names", "guardian_name", "guardian_phone", "national_id", "date_of_birth"):
            getattr(child, name)  # raises DecryptionError if sealed to the wrong table, column or row
        for name in ("reporter_name", "reporter_phone", "reporter_address"):
            getattr(case, name)
        if child.date_of_birth:
            assert child.date_of_birth.year == child.birth_year
        if child.national_id:
            assert operations.NATIONAL_ID_RE.match(child.national_id)
        for phone in (child.guardian_phone, case.reporter_phone):
            assert phone is None or operations.PHONE_RE.match(phone)
    children = db.session.scalars(select(Child)).all()
    assert sum(c.national_id is not None for c in children) > 0.2 * N
    assert sum(c.guardian_name is not None for c in children) > 0.7 * N


def test_index_entries_are_the_ones_the_orm_writes_for_the_same_values(generated, demo_users):
    kid = keyring().current_key_id()

    def stored(row_id, field) -> list[int]:
        return sorted(
            db.session.scalars(
                select(BlindIndexEntry.term).where(
                    BlindIndexEntry.table_name == field.table,
                    BlindIndexEntry.column_name == field.column,
                    BlindIndexEntry.row_id == row_id,
                    BlindIndexEntry.key_id == kid,
                )
            )
        )

    indexed = [f for owner, f in fields.REGISTRY if owner is Child and f.index]
    for child in db.session.scalars(select(Child).limit(40)):
        for field in indexed:
            assert stored(child.id, field) == sorted(field.terms(field.__get__(child), kid)), field.name
        case = child.cases[0]
        assert stored(case.id, Case.reporter_phone) == sorted(Case.reporter_phone.terms(case.reporter_phone, kid))

    # The same values set through the ORM give the same terms (the per-row sealing differs, the index does not).
    original = db.session.scalar(select(Child).where(Child.national_id_ct.is_not(None)).limit(1))
    twin = Child(sex=original.sex, commune_code=original.commune_code, province_code=original.province_code)
    for field in indexed:
        setattr(twin, field.name, field.__get__(original))
    db.session.add(twin)
    db.session.flush()
    for field in indexed:
        assert stored(twin.id, field) == stored(original.id, field), field.name


def test_search_finds_generated_cases_as_it_finds_cases_opened_through_the_application(generated, demo_users):
    supervisor, officer = demo_users["supervisor"], demo_users["officer"]
    opened = intake(demo_users["worker"], full_name="Đặng Thị Mẩy", national_id="022315123456")
    assert find(supervisor, "dang thi may") >= {opened.id}
    assert opened.id in find(supervisor, "022315123456")

    ours = [c for c in all_cases() if c.commune_code in ("06970", "06979") and c.id != opened.id]
    assert ours
    for case in ours:
        name = case.child.full_name
        folded = fold(name)  # the query without diacritics
        assert case.id in find(supervisor, folded), name
        assert case.id in find(officer, folded), name
        parts = words(name)
        assert case.id in find(supervisor, f"{parts[-1]} {parts[0]}"), name  # two words, any order
        if case.child.national_id:
            assert case.id in find(supervisor, case.child.national_id)
        if case.child.guardian_phone:
            assert case.id in find(supervisor, case.child.guardian_phone)
    elsewhere = next(c for c in all_cases() if c.province_code != "22")
    assert elsewhere.id not in find(officer, fold(elsewhere.child.full_name))  # scope still applies


def test_demo_workers_hold_and_see_the_cases_of_their_communes(generated, demo_users):
    for username, commune in (("worker", "06970"), ("worker2", "06979")):
        worker = demo_users[username]
        load = search.caseload(worker)
        assert load, username
        assert {c.commune_code for c in load} == {commune}
        assert all(c.assigned_to_id == worker.id and c.closed_at is None for c in load)
        visible = search.search(worker, search.Filters(open_only=False), per_page=1000)
        assert visible.total == db.session.scalar(select(func.count(Case.id)).where(Case.commune_code == commune))
        held = db.session.scalars(select(Case).where(Case.assigned_to_id == worker.id)).all()
        assert all(operations.assignment_history(c)[0].worker_id == worker.id for c in held)
    others = db.session.scalars(select(Case).where(Case.commune_code.not_in(("06970", "06979")))).all()
    assert others and all(c.assigned_to_id is None for c in others)
    assert db.session.scalar(select(func.count(Assignment.id))) == db.session.scalar(
        select(func.count(Case.id)).where(Case.assigned_to_id.is_not(None))
    )


# --- reproducible -------------------------------------------------------------------------------------------------


def test_a_seed_decides_the_data():
    workers = {"06970": ["worker"], "06979": ["worker2"]}
    first = demo_data.plan(150, seed=5, now=PLAN_NOW, workers=workers)
    assert first == demo_data.plan(150, seed=5, now=PLAN_NOW, workers=workers)
    other = demo_data.plan(150, seed=6, now=PLAN_NOW, workers=workers)
    assert [p.child.full_name for p in first] != [p.child.full_name for p in other]


def test_what_is_stored_is_what_the_seed_planned(demo_users):
    demo_data.generate(50, seed=5, now=PLAN_NOW)
    db.session.commit()
    planned = demo_data.plan(50, seed=5, now=PLAN_NOW, workers={"06970": ["worker"], "06979": ["worker2"]})
    stored = sorted(
        (c.child.full_name, c.commune_code, c.stage, c.received_at, c.risk_level, c.child.national_id)
        for c in all_cases()
    )
    expected = sorted(
        (p.child.full_name, p.child.commune_code, p.stage, p.received_at, p.risk_level, p.child.national_id)
        for p in planned
    )
    assert stored == expected


# --- the command ---------------------------------------------------------------------------------------------------


def test_demo_command_generates_cases_once_on_first_run(app, app_env):
    result = casework_cli(app_env, "demo", "--first-run", "--cases", "30", "--seed", "3")
    assert result.returncode == 0, result.stderr
    assert "30 cases generated" in result.stdout and "(seed 3)" in result.stdout
    assert "worker " in result.stdout  # the logins are still printed
    again = casework_cli(app_env, "demo", "--first-run", "--cases", "30")
    assert again.returncode == 0, again.stderr
    assert "cases already present" in again.stdout
    db.session.expire_all()
    assert db.session.scalar(select(func.count(Case.id))) == 30
    assert db.session.scalar(select(func.count(AuditEvent.seq)).where(AuditEvent.action == "demo.generate")) == 1


def test_demo_plans_follow_the_stage_so_the_procedure_goes_on_from_any_demo_case(generated, demo_users):
    from casework import demo
    from casework.support import operations as support
    from casework.support.models import ServiceRecord, SupportPlan

    written = demo.seed_support(SEED)
    db.session.commit()
    assert written > 0
    assert demo.seed_support(SEED) == 0  # once only
    by_stage: dict[str, set[str]] = {}
    for case in all_cases():
        plan = support.current_plan(case)
        by_stage.setdefault(case.stage, set()).add(plan.status if plan else "none")
    assert by_stage["plan_drafting"] == {"draft"}
    assert by_stage["plan_approval"] == {"submitted"}
    assert by_stage["support"] == {"approved"} and by_stage["review"] == {"approved"}
    assert by_stage["report_received"] == {"none"}
    # Services are recorded only under approved (or ended) plans, never before the plan's approval.
    for record in db.session.scalars(select(ServiceRecord)):
        plan = db.session.get(SupportPlan, record.plan_id)
        assert plan.status in ("approved", "ended")
        assert record.delivered_on >= plan.decided_at.astimezone(local_tz()).date()
    # A supervisor approves a demo plan awaiting approval through the real rules.
    supervisor = demo_users["supervisor"]
    waiting = [c for c in all_cases() if c.stage == "plan_approval" and c.commune_code in supervisor.commune_codes]
    assert waiting, "the demo supervisor has a plan to approve"
    support.apply_transition(waiting[0], supervisor, "support", version=waiting[0].version, note="Đồng ý.")
    db.session.commit()
    assert support.current_plan(waiting[0]).status == "approved"
