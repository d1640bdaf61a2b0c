"""Every indicator of the catalogue computed on a small province built by hand, with the answers worked out here.

The data set (``province`` below) is built directly with the models: three communes of province 22, a child and a
case in province 01 that must never count, nine children chosen for their sex, year of birth, ethnicity and
disability, eleven cases spread over 2025 and 2026 with their steps, plans, services and payments. Each test says
which records count and why, so a wrong answer points at the rule that broke.

The clock is fixed at 15 August 2026, 10:00 in Vietnam (``NOW``): 2026's first half is over, the year 2026 is not.
Dates are Vietnam's (``vn(...)``); a period runs from its first day 00:00 to the day after its last, in Vietnam.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from casework.cases.models import Case, CaseCode, CaseTransition, Child
from casework.extensions import db
from casework.payments.models import Disbursement, PaymentRequest, Programme
from casework.stats import indicators
from casework.stats.indicators import ALL, CATALOGUE, DIMENSIONS, UNKNOWN, Scope, compute
from casework.stats.periods import Period
from casework.support.models import ServiceRecord, SupportPlan

VN = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime(2026, 8, 15, 3, 0, tzinfo=UTC)  # 10:00 in Vietnam
PROVINCE = "22"
A, B, C = "06970", "06979", "06652"  # Xã Ba Chẽ, Xã Kỳ Thượng, Phường Hà Tu (province 22)
ELSEWHERE = "00004"  # Phường Ba Đình, province 01

H1_2026 = Period.half(2026, 1)  # previous: H2 2025
H2_2025 = Period.half(2025, 2)
Y2026 = Period.year(2026)  # previous: 2025
Y2025 = Period.year(2025)
MARCH_APRIL = Period(date(2026, 3, 1), date(2026, 4, 30))  # 61 days; previous: 30/12/2025 - 28/02/2026
BEFORE_MARCH = Period(date(2025, 12, 30), date(2026, 2, 28))
WHOLE = Period(date(2025, 1, 1), date(2026, 12, 31))  # every case of the data set; ages at the end of 2026


def vn(year: int, month: int, day: int, hour: int = 9, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=VN)


def result(code: str, period: Period, dimension: str | None = None, commune: str | None = None):
    return compute(code, Scope(PROVINCE, period, commune), dimension)


def nonzero(grid, row=ALL) -> dict:
    """The cells of ``row`` that are not zero (or not empty), by column."""
    return {c: v for (r, c), v in grid.cells.items() if r == row and v}


def row_totals(grid) -> dict:
    return {r: v for r, v in grid.row_totals.items() if v}


def column_totals(grid) -> dict:
    return {c: v for c, v in grid.column_totals.items() if v not in (0, None)}


# --- the province ---------------------------------------------------------------------------------------------------
#
# child  sex      born  ethnicity        disability  age at end of 2025 / 2026 (band)
# c1     female   2024  01 Kinh          no          1 (0-2)   / 2 (0-2)
# c2     male     2023  02 Tày           yes         2 (0-2)   / 3 (3-5)
# c3     female   2021  not recorded     no          4 (3-5)   / 5 (3-5)
# c4     male     2020  56 "Không rõ"    yes         5 (3-5)   / 6 (6-10)
# c5     female   2016  01               no          9 (6-10)  / 10 (6-10)
# c6     male     2015  08 Mông          no          10 (6-10) / 11 (11-15)
# c7     female   2011  01               no          14 (11-15)/ 15 (11-15)
# c8     male     2010  01               yes         15 (11-15)/ 16 (16+)
# c9     unknown  aged about 7 when first reported in 2025: 7 (6-10) / 8 (6-10)
#
# case child commune received (VN)        source            groups (Art. 10) / risks / abuse   what happens
# K1   c1    A       10/02/2026 09:00     hotline_111       orphan, abandoned / - / neglect     verified +6 h
# K2   c2    A       05/08/2025 10:00     school            disability / risk_violence / -      verified +14 h, plan
#                                                                                               approved 14/10/2025,
#                                                                                               closed 20/11/2025
# K3   c3    B       01/03/2025 09:00     family            violence_harm / - / violence        verified +2 h, closed
#                                                                                               10/05/2025 (moved
#                                                                                               away), reopened
#                                                                                               15/01/2026
# K4   c4    B       10/03/2026 08:00     police            sexually_abused / - / sexual_abuse  immediate danger,
#                                                                                               never verified
# K5   c5    C       01/01/2026 06:00     hotline_111       school_dropout_labour / risk_exploitation / -
#                    (= 31/12/2025 23:00 UTC)                                                   verified +10 h, plan
#                                                                                               approved late
#                                                                                               23/01/2026, review
#                                                                                               due 01/06/2026
# K6   c6    C       01/04/2026 09:00     commune_committee - / risk_abandonment / -            verified +2 h,
#                                                                                               drafting from
#                                                                                               01/06/2026, plan
#                                                                                               approved 22/07/2026
# K7   c7    A       01/10/2025 09:00     health_station    hiv_aids / - / violence             immediate danger,
#                                                                                               verified +12 h,
#                                                                                               closed 15/02/2026
# K8   c8    A       20/05/2026 09:00     child             drug_addiction, in_conflict_with_law / - / exploitation
#                                                                                               verified +24 h
# K9   c9    B       15/07/2025 09:00     community         - / risk_violence / -               imported at detailed
#                                                                                               assessment: no steps
# K10  c1    B       10/04/2026 09:00     family            abandoned / - / -                   verified +2 h, plan
#                                                                                               approved 21/04/2026
# K12  c6    C       01/09/2025 09:00     media             exploited / - / -                   imported closed on
#                                                                                               01/12/2025 (other)
# KX   cx    01      01/02/2026 09:00     hotline_111       orphan / - / violence               another province


@pytest.fixture
def province(app, make_user, monkeypatch):
    monkeypatch.setattr(indicators, "utcnow", lambda: NOW)
    worker = make_user("social_worker", communes=(A, B, C))
    numbers = iter(range(1, 1000))

    def child(sex, born=None, *, ethnicity="01", disability=False, estimated_age=None, commune=A, province=PROVINCE):
        row = Child(
            sex=sex,
            birth_year=born,
            estimated_age=estimated_age,
            ethnicity=ethnicity,
            has_disability=disability,
            commune_code=commune,
            province_code=province,
        )
        db.session.add(row)
        db.session.flush()
        return row

    def case(who, commune, received, source, *, codes=(), stage="initial_assessment", province=PROVINCE, **fields):
        row = Case(
            case_number=f"{province}-{received.year}-{next(numbers):06d}",
            child_id=who.id,
            commune_code=commune,
            province_code=province,
            received_at=received,
            source=source,
            risk_level="medium",
            stage=stage,
            stage_entered_at=received,
            **fields,
        )
        row.codes = [CaseCode(list_name=list_name, code=code) for list_name, code in codes]
        db.session.add(row)
        db.session.flush()
        return row

    def steps(which, *moves):
        for from_stage, to_stage, at, *reason in moves:
            db.session.add(
                CaseTransition(
                    case_id=which.id,
                    transition=f"{from_stage}->{to_stage}",
                    from_stage=from_stage,
                    to_stage=to_stage,
                    closure_reason=reason[0] if reason else None,
                    at=at,
                )
            )

    def plan(which, created, approved, review_on):
        db.session.add(
            SupportPlan(
                case_id=which.id,
                cycle=1,
                status="approved",
                created_at=created,
                submitted_at=created,
                decided_at=approved,
                review_on=review_on,
            )
        )

    def service(which, service_type, delivered_on, outcome="completed"):
        db.session.add(
            ServiceRecord(case_id=which.id, service_type=service_type, delivered_on=delivered_on, outcome=outcome)
        )

    def payment(which, commune, purpose, amount, programme, paid_on=None, *, approved_on, province=PROVINCE):
        request = PaymentRequest(
            case_id=which.id,
            commune_code=commune,
            province_code=province,
            programme_id=programme.id,
            purpose=purpose,
            amount_vnd=amount,
            payee_method="bank",
            status="paid" if paid_on else "approved",
            requested_by_id=worker.id,
            decided_at=datetime.combine(approved_on, datetime.min.time(), tzinfo=VN),
        )
        db.session.add(request)
        db.session.flush()
        if paid_on:
            db.session.add(
                Disbursement(payment_id=request.id, paid_on=paid_on, method="bank", recorded_by_id=worker.id)
            )
        return request

    c1 = child("female", 2024)
    c2 = child("male", 2023, ethnicity="02", disability=True)
    c3 = child("female", 2021, ethnicity=None, commune=B)
    c4 = child("male", 2020, ethnicity="56", disability=True, commune=B)
    c5 = child("female", 2016, commune=C)
    c6 = child("male", 2015, ethnicity="08", commune=C)
    c7 = child("female", 2011)
    c8 = child("male", 2010, disability=True)
    c9 = child("unknown", estimated_age=7, commune=B)
    cx = child("female", 2018, commune=ELSEWHERE, province="01")

    special, risk, abuse = "special_circumstances", "at_risk", "abuse_types"
    k1 = case(
        c1,
        A,
        vn(2026, 2, 10),
        "hotline_111",
        codes=[(special, "orphan_both_parents"), (special, "abandoned"), (abuse, "neglect")],
    )
    steps(k1, ("report_received", "initial_assessment", vn(2026, 2, 10, 15)))

    k2 = case(
        c2,
        A,
        vn(2025, 8, 5, 10),
        "school",
        codes=[(special, "disability"), (risk, "risk_violence")],
        stage="closed",
        closed_at=vn(2025, 11, 20, 10),
        closure_reason="goals_met",
    )
    steps(
        k2,
        ("report_received", "initial_assessment", vn(2025, 8, 6, 0)),
        ("initial_assessment", "detailed_assessment", vn(2025, 9, 15)),
        ("detailed_assessment", "plan_drafting", vn(2025, 10, 6)),  # a Monday
        ("plan_drafting", "plan_approval", vn(2025, 10, 10)),
        ("plan_approval", "support", vn(2025, 10, 14, 10)),
        ("support", "closed", vn(2025, 11, 20, 10), "goals_met"),
    )
    plan(k2, vn(2025, 10, 6), vn(2025, 10, 14, 10), date(2026, 1, 31))

    k3 = case(c3, B, vn(2025, 3, 1), "family", codes=[(special, "violence_harm"), (abuse, "violence")])
    steps(
        k3,
        ("report_received", "initial_assessment", vn(2025, 3, 1, 11)),
        ("initial_assessment", "closed", vn(2025, 5, 10), "moved_away"),
        ("closed", "initial_assessment", vn(2026, 1, 15)),  # reopened: closed_at and the reason cleared
    )

    k4 = case(
        c4,
        B,
        vn(2026, 3, 10, 8),
        "police",
        codes=[(special, "sexually_abused"), (abuse, "sexual_abuse")],
        stage="report_received",
        immediate_danger=True,
        next_deadline_at=vn(2026, 3, 10, 20),  # Art. 31: 12 hours
    )

    k5 = case(
        c5,
        C,
        vn(2026, 1, 1, 6),
        "hotline_111",
        codes=[(special, "school_dropout_labour"), (risk, "risk_exploitation")],
        stage="support",
        next_deadline_at=vn(2026, 6, 1, 23, 59),  # the plan's review date
    )
    steps(
        k5,
        ("report_received", "initial_assessment", vn(2026, 1, 1, 16)),
        ("initial_assessment", "detailed_assessment", vn(2026, 1, 5)),
        ("detailed_assessment", "plan_drafting", vn(2026, 1, 12)),  # a Monday: due by the end of 21/01
        ("plan_drafting", "plan_approval", vn(2026, 1, 20)),
        ("plan_approval", "support", vn(2026, 1, 23, 6)),
    )
    plan(k5, vn(2026, 1, 12), vn(2026, 1, 23, 6), date(2026, 6, 1))

    k6 = case(
        c6,
        C,
        vn(2026, 4, 1),
        "commune_committee",
        codes=[(risk, "risk_abandonment")],
        stage="support",
        next_deadline_at=vn(2026, 12, 1, 23, 59),
    )
    steps(
        k6,
        ("report_received", "initial_assessment", vn(2026, 4, 1, 11)),
        ("initial_assessment", "detailed_assessment", vn(2026, 4, 6)),
        ("detailed_assessment", "plan_drafting", vn(2026, 6, 1)),  # a Monday: 5 working days end on 08/06
        ("plan_drafting", "plan_approval", vn(2026, 7, 20)),
        ("plan_approval", "support", vn(2026, 7, 22)),
    )
    plan(k6, vn(2026, 6, 1), vn(2026, 7, 22), date(2026, 12, 1))

    k7 = case(
        c7,
        A,
        vn(2025, 10, 1),
        "health_station",
        codes=[(special, "hiv_aids"), (abuse, "violence")],
        stage="closed",
        immediate_danger=True,
        closed_at=vn(2026, 2, 15),
        closure_reason="risk_removed",
    )
    steps(
        k7,
        ("report_received", "initial_assessment", vn(2025, 10, 1, 21)),  # exactly 12 hours
        ("initial_assessment", "closed", vn(2026, 2, 15), "risk_removed"),
    )

    k8 = case(
        c8,
        A,
        vn(2026, 5, 20),
        "child",
        codes=[(special, "drug_addiction"), (special, "in_conflict_with_law"), (abuse, "exploitation")],
    )
    steps(k8, ("report_received", "initial_assessment", vn(2026, 5, 21)))

    k9 = case(c9, B, vn(2025, 7, 15), "community", codes=[(risk, "risk_violence")], stage="detailed_assessment")

    k10 = case(
        c1,
        B,
        vn(2026, 4, 10),
        "family",
        codes=[(special, "abandoned")],
        stage="support",
        next_deadline_at=vn(2026, 10, 21, 23, 59),
    )
    steps(
        k10,
        ("report_received", "initial_assessment", vn(2026, 4, 10, 11)),
        ("initial_assessment", "detailed_assessment", vn(2026, 4, 11)),
        ("detailed_assessment", "plan_drafting", vn(2026, 4, 13)),  # a Monday: due by the end of 22/04
        ("plan_drafting", "plan_approval", vn(2026, 4, 16)),
        ("plan_approval", "support", vn(2026, 4, 21)),
    )
    plan(k10, vn(2026, 4, 13), vn(2026, 4, 21), date(2026, 10, 21))

    case(
        c6,
        C,
        vn(2025, 9, 1),
        "media",
        codes=[(special, "exploited")],
        stage="closed",
        closed_at=vn(2025, 12, 1),
        closure_reason="other",
    )

    kx = case(
        cx,
        ELSEWHERE,
        vn(2026, 2, 1),
        "hotline_111",
        codes=[(special, "orphan_both_parents"), (abuse, "violence")],
        province="01",
        stage="support",
        next_deadline_at=vn(2026, 3, 1),
    )
    steps(
        kx,
        ("report_received", "initial_assessment", vn(2026, 2, 1, 10)),
        ("initial_assessment", "detailed_assessment", vn(2026, 2, 2)),
        ("detailed_assessment", "plan_drafting", vn(2026, 2, 2, 10)),
        ("plan_drafting", "plan_approval", vn(2026, 2, 3)),
        ("plan_approval", "support", vn(2026, 2, 3, 10)),
        ("support", "closed", vn(2026, 3, 2), "other"),
        ("closed", "initial_assessment", vn(2026, 3, 3)),
    )
    plan(kx, vn(2026, 2, 2, 10), vn(2026, 2, 3, 10), date(2026, 3, 1))

    # Services: counselling, psychological support and legal support (counselling or aid) for the abused children.
    service(k1, "counselling", date(2026, 2, 12))
    service(k1, "psychological_support", date(2026, 3, 5))
    service(k1, "legal_aid", date(2026, 4, 2))
    service(k3, "counselling", date(2026, 1, 20))
    service(k3, "legal_counselling", date(2026, 7, 10))
    service(k3, "psychological_support", date(2025, 4, 1))
    service(k4, "psychological_support", date(2026, 3, 15), "not_delivered")
    service(k4, "counselling", date(2026, 3, 16), "ongoing")
    service(k8, "legal_counselling", date(2026, 6, 1))
    service(k10, "counselling", date(2026, 4, 12))  # c1 again, on her other case
    service(k7, "counselling", date(2025, 11, 1))
    service(kx, "counselling", date(2026, 2, 5))
    service(kx, "psychological_support", date(2026, 2, 5))
    service(kx, "legal_aid", date(2026, 2, 5))

    # Programmes and payments: the date of payment decides the period.
    p1 = Programme(name="Quỹ bảo trợ trẻ em 2025", province_code=PROVINCE, year=2025, budget_vnd=100_000_000)
    p2 = Programme(name="Hỗ trợ y tế 2026", province_code=PROVINCE, year=2026, budget_vnd=100_000_000)
    px = Programme(name="Quỹ Hà Nội 2026", province_code="01", year=2026, budget_vnd=100_000_000)
    db.session.add_all([p1, p2, px])
    db.session.flush()
    pr1 = payment(k2, A, "medical_treatment", 2_000_000, p1, date(2025, 9, 20), approved_on=date(2025, 9, 10))
    # Approved in June, paid in July: 2026's second half, not its first.
    pr2 = payment(k1, A, "medical_treatment", 3_000_000, p2, date(2026, 7, 3), approved_on=date(2026, 6, 25))
    pr3 = payment(k4, B, "medical_treatment", 1_500_000, p2, date(2026, 3, 25), approved_on=date(2026, 3, 20))
    pr4 = payment(k4, B, "transport", 500_000, p2, date(2026, 3, 26), approved_on=date(2026, 3, 20))
    pr5 = payment(k5, C, "education", 4_000_000, p2, date(2026, 2, 2), approved_on=date(2026, 1, 30))
    pr6 = payment(k10, B, "medical_treatment", 1_000_000, p2, date(2026, 4, 15), approved_on=date(2026, 4, 14))
    # Approved, never paid: never counts.
    payment(k6, C, "medical_treatment", 2_500_000, p2, approved_on=date(2026, 6, 2))
    # Requested while K9's child lived in commune A (the case is in B now): the payment belongs to A.
    pr8 = payment(k9, A, "medical_treatment", 700_000, p2, date(2026, 5, 5), approved_on=date(2026, 5, 1))
    payment(
        kx,
        ELSEWHERE,
        "medical_treatment",
        9_000_000,
        px,
        date(2026, 3, 1),
        approved_on=date(2026, 2, 20),
        province="01",
    )
    db.session.commit()
    return SimpleNamespace(
        children=[c1, c2, c3, c4, c5, c6, c7, c8, c9],
        p1=str(p1.id),  # a programme row is keyed by the text of its id
        p2=str(p2.id),
        payments=(pr1, pr2, pr3, pr4, pr5, pr6, pr8),
    )


# --- every indicator, every kind of period, and the period before --------------------------------------------------

# The total of each indicator for the first half of 2026 and the second half of 2025 (its previous period), the
# years 2026 and 2025, and March-April 2026 and the 61 days before. Worked out from the table above:
#
# children_special: children with a case open at some moment of the period that names a group of Art. 10.
#   H1 2026: c1 (K1, K10), c3 (K3 reopened 15/01), c4, c5 (K5: 1 Jan 06:00 in Vietnam), c7 (K7 open until 15/02), c8
#   = 6. H2 2025: c2 (K2 closed 20/11), c7, c6 (K12) = 3; not c3 (closed 10/05/2025 until 15/01/2026). 2026: as H1.
#   2025: c2, c3 (March-May), c7, c6 = 4. March-April: c1, c3, c4, c5 = 4 (K7 closed in February, K8 reported in
#   May). 30/12-28/02: c1, c3, c5, c7 = 4 (K12 closed on 1 December).
# children_at_risk: H1 2026: c5, c6, c9 = 3; H2 2025: c2, c9 = 2; 2025: c2, c9 = 2; March-April: c5, c6, c9 = 3;
#   before: c5, c9 = 2.
# new_cases: reports received. H1 2026: K1, K4, K5, K6, K8, K10 = 6; H2 2025: K2, K7, K9, K12 = 4 (K5 came on 1
#   January in Vietnam, though still 31 December in UTC); 2025: those and K3 = 5; March-April: K4, K6, K10 = 3;
#   before: K1, K5 = 2.
# abused_children: H1 2026: c1, c3, c4, c7, c8 = 5; H2 2025: c7 = 1; 2025: c3, c7 = 2; March-April: c1, c3, c4 = 3;
#   before: c1, c3, c7 = 3.
# abused_* shares (services delivered in the period, on any case of the child; "not delivered" does not count):
#   H1 2026 counselling c1, c3, c4 (ongoing counts) = 3/5 = 60.0; psychological c1 = 1/5 = 20.0 (c4's was not
#   delivered); legal c1 (aid), c8 = 2/5 = 40.0 (c3's is in July); all three c1 = 20.0.
#   H2 2025: c7 counselling = 1/1 = 100.0, others 0.0.
#   2026: counselling 60.0, psychological 20.0, legal c1, c3, c8 = 60.0, all three 20.0.
#   2025: counselling c7 = 1/2 = 50.0, psychological c3 (April 2025) = 50.0, legal 0.0, all three 0.0.
#   March-April: counselling c1 (12/04 on K10), c4 = 2/3 = 66.7; psychological c1 = 33.3; legal c1 = 33.3; all c1.
#   Before: counselling c1 (12/02), c3 (20/01) = 66.7; psychological 0.0; legal 0.0; all 0.0.
# medical_children / medical_paid_vnd (paid in the period): H1 2026: PR3 c4 1.5M, PR6 c1 1M, PR8 c9 0.7M = 3
#   children, 3,200,000; H2 2025: PR1 c2 = 1, 2,000,000; 2026: + PR2 c1 3M (paid 3 July) = 3 children, 6,200,000;
#   2025: as H2 2025; March-April: PR3, PR6 = 2, 2,500,000; before: none.
# payments_by_programme / payments_by_purpose (every purpose): H1 2026: PR3 + PR4 0.5M + PR5 4M + PR6 + PR8 =
#   7,700,000; H2 2025: 2,000,000; 2026: + PR2 = 10,700,000; 2025: 2,000,000; March-April: PR3 + PR4 + PR6 =
#   3,000,000; before: PR5 = 4,000,000.
# verification_hours (reports received in the period, first step out of "report received"): H1 2026: K1 6, K5 10,
#   K6 2, K8 24, K10 2 -> median 6.0 (K4 has no step yet); H2 2025: K2 14, K7 12 -> 13.0 (K9 and K12 were imported
#   without steps and are left out); 2025: K2, K3 2, K7 -> 12.0; March-April: K6, K10 -> 2.0; before: K1, K5 -> 8.0.
# verification_within_deadline (within 12 hours; a report still waiting after 12 hours is late): H1 2026: K1, K5,
#   K6, K10 of 6 (K4 waiting, K8 late) = 66.7; H2 2025: K7 of 2 = 50.0; 2025: K3, K7 of 3 = 66.7; March-April:
#   K6, K10 of 3 = 66.7; before: 2 of 2 = 100.0.
# plan_days (first plan approved in the period, days from the report): H1 2026: K5 22, K10 11 -> 16.5; H2 2025: K2
#   70 -> 70.0; 2026: K5, K10, K6 112 -> 22.0; 2025: 70.0; March-April: K10 11.0; before: K5 22.0.
# plan_within_deadline (approved within 7 working days of the start of drafting): K2 yes (due 15/10/2025), K5 no
#   (due 21/01/2026), K10 yes (due 22/04/2026), K6 no (due 10/06/2026): H1 2026 50.0; H2 2025 100.0; 2026 33.3;
#   2025 100.0; March-April 100.0; before 0.0.
# overdue_open (past a deadline at the end of the period, rebuilt from the history; for 2026, not over, now): H1
#   2026 (1 July): K4 (12 hours of danger), K5 (review 01/06), K6 (drafting due 08/06) = 3; H2 2025 (1 January):
#   K7 (12 hours of danger, still in initial assessment) = 1; 2026 (now): K4, K5 = 2 (K6 is due on 1 December);
#   2025 as H2 2025; March-April (1 May): K4 = 1; before (1 March): 0.
# closed_by_reason (the closing step decides): H1 2026: K7 = 1; H2 2025: K2, K12 (imported: closed_at) = 2; 2026: 1;
#   2025: K2, K3 (moved away, though reopened since), K12 = 3; March-April: 0; before: K7 = 1.
EXPECTED = {
    #                               H1 2026     H2 2025    2026        2025       Mar-Apr    before
    "children_special": (6, 3, 6, 4, 4, 4),
    "children_at_risk": (3, 2, 3, 2, 3, 2),
    "new_cases": (6, 4, 6, 5, 3, 2),
    "abused_children": (5, 1, 5, 2, 3, 3),
    "abused_counselling": (60.0, 100.0, 60.0, 50.0, 66.7, 66.7),
    "abused_psychological": (20.0, 0.0, 20.0, 50.0, 33.3, 0.0),
    "abused_legal": (40.0, 0.0, 60.0, 0.0, 33.3, 0.0),
    "abused_all_three": (20.0, 0.0, 20.0, 0.0, 33.3, 0.0),
    "medical_children": (3, 1, 3, 1, 2, 0),
    "medical_paid_vnd": (3_200_000, 2_000_000, 6_200_000, 2_000_000, 2_500_000, 0),
    "payments_by_programme": (7_700_000, 2_000_000, 10_700_000, 2_000_000, 3_000_000, 4_000_000),
    "payments_by_purpose": (7_700_000, 2_000_000, 10_700_000, 2_000_000, 3_000_000, 4_000_000),
    "verification_hours": (6.0, 13.0, 6.0, 12.0, 2.0, 8.0),
    "verification_within_deadline": (66.7, 50.0, 66.7, 66.7, 66.7, 100.0),
    "plan_days": (16.5, 70.0, 22.0, 70.0, 11.0, 22.0),
    "plan_within_deadline": (50.0, 100.0, 33.3, 100.0, 100.0, 0.0),
    "overdue_open": (3, 1, 2, 1, 1, 0),
    "closed_by_reason": (1, 2, 1, 3, 0, 1),
}


def test_every_indicator_of_the_catalogue_has_its_answer_worked_out_here():
    assert set(EXPECTED) == {indicator.code for indicator in CATALOGUE}


@pytest.mark.parametrize("code", [indicator.code for indicator in CATALOGUE])
def test_each_indicator_for_a_half_year_a_year_and_custom_dates_with_the_period_before(province, code):
    periods = (H1_2026, H1_2026.previous(), Y2026, Y2026.previous(), MARCH_APRIL, MARCH_APRIL.previous())
    assert (H1_2026.previous(), Y2026.previous(), MARCH_APRIL.previous()) == (H2_2025, Y2025, BEFORE_MARCH)
    assert tuple(result(code, period).grid.total for period in periods) == EXPECTED[code]


@pytest.mark.parametrize("dimension", DIMENSIONS)
def test_a_breakdown_never_changes_an_indicators_total(province, dimension):
    for indicator in CATALOGUE:
        plain, broken_down = result(indicator.code, H1_2026), result(indicator.code, H1_2026, dimension)
        assert broken_down.grid.total == plain.grid.total, indicator.code
        assert broken_down.grid.row_totals == plain.grid.row_totals, indicator.code


# --- children ---------------------------------------------------------------------------------------------------------


def test_a_child_in_two_groups_counts_once_in_the_total_and_once_in_each_group(province):
    grid = result("children_special", H1_2026, "commune").grid
    assert grid.total == 6
    # c1 is an orphan and abandoned (K1, commune A), and abandoned again in K10 (commune B): once in each group,
    # once in each commune, once in the total.
    assert row_totals(grid) == {
        "orphan_both_parents": 1,
        "abandoned": 1,
        "violence_harm": 1,
        "sexually_abused": 1,
        "school_dropout_labour": 1,
        "hiv_aids": 1,
        "drug_addiction": 1,
        "in_conflict_with_law": 1,
    }
    assert nonzero(grid, "abandoned") == {A: 1, B: 1}
    assert nonzero(grid, "orphan_both_parents") == {A: 1}
    assert nonzero(grid, "drug_addiction") == {A: 1}
    assert nonzero(grid, "in_conflict_with_law") == {A: 1}
    assert nonzero(grid, "violence_harm") == {B: 1}
    assert nonzero(grid, "school_dropout_labour") == {C: 1}
    # A: c1, c7, c8; B: c1, c3, c4; C: c5. The columns add up to 7 for 6 children: c1 lives in both.
    assert column_totals(grid) == {A: 3, B: 3, C: 1}
    # Every commune of the province is a column, so a commune with nothing shows 0.
    assert len(grid.columns) > 40 and grid.column_totals["06652"] == 1


def test_a_case_reopened_in_the_period_counts_as_active_and_not_in_the_months_it_stood_closed(province):
    # K3 (c3): closed on 10/05/2025, reopened on 15/01/2026.
    for period, expected in ((H1_2026, 1), (H2_2025, 0), (Y2025, 1), (BEFORE_MARCH, 1)):
        assert result("children_special", period).grid.row_totals["violence_harm"] == expected, period
        assert (
            nonzero(result("abused_children", period, "ethnicity").grid).get(UNKNOWN, 0)
            == (
                # c3's ethnicity was not recorded; c4 ("56") is abused only from March 2026.
                {H1_2026: 2, H2_2025: 0, Y2025: 1, BEFORE_MARCH: 1}[period]
            )
        ), period


def test_age_bands_are_taken_at_the_end_of_the_period(province):
    # Over 2025-2026 every child with a group counts; ages at the end of 2026 put one child on each side of every
    # boundary: c1 2 | c2 3, c3 5 | c4 6, c5 10 | c6 11, c7 15 | c8 16.
    grid = result("children_special", WHOLE, "age_band").grid
    assert grid.total == 8
    assert [c for c, _ in grid.columns] == ["0-2", "3-5", "6-10", "11-15", "16+"]
    assert grid.column_totals == {"0-2": 1, "3-5": 2, "6-10": 2, "11-15": 2, "16+": 1}
    assert nonzero(grid, "disability") == {"3-5": 1}  # c2 is 3 at the end of 2026
    assert nonzero(grid, "exploited") == {"11-15": 1}  # c6 is 11
    assert nonzero(grid, "drug_addiction") == {"16+": 1}  # c8 is 16
    # At the end of 2025 the same children are a year younger: c2 2, c4 5, c6 10, c8 15.
    grid = result("children_special", H2_2025, "age_band").grid
    assert grid.column_totals == {"0-2": 1, "3-5": 0, "6-10": 1, "11-15": 1, "16+": 0}  # c2, c6, c7
    # An estimated age grows from the year of the first report: c9, about 7 in 2025, is 8 at the end of 2026.
    grid = result("new_cases", WHOLE, "age_band").grid
    assert grid.total == 11
    # Cases are counted, not children: K1 and K10 are both c1's (0-2); K6 and K12 are c6's (11-15).
    assert grid.column_totals == {"0-2": 2, "3-5": 2, "6-10": 3, "11-15": 3, "16+": 1}
    assert nonzero(grid, "community") == {"6-10": 1}  # K9, c9
    assert nonzero(grid, "family") == {"0-2": 1, "3-5": 1}  # K10 (c1), K3 (c3)


def test_children_at_risk_by_sex(province):
    grid = result("children_at_risk", H1_2026, "sex").grid
    assert grid.total == 3
    assert [c for c, _ in grid.columns] == ["female", "male", "unknown"]
    assert grid.column_totals == {"female": 1, "male": 1, "unknown": 1}
    assert nonzero(grid, "risk_exploitation") == {"female": 1}  # c5
    assert nonzero(grid, "risk_abandonment") == {"male": 1}  # c6
    assert nonzero(grid, "risk_violence") == {"unknown": 1}  # c9
    previous = result("children_at_risk", H2_2025, "sex").grid
    assert previous.row_totals["risk_violence"] == 2  # c2 (K2 still open in August) and c9
    assert previous.column_totals == {"female": 0, "male": 1, "unknown": 1}


def test_new_cases_by_source_count_the_day_in_vietnam(province):
    grid = result("new_cases", H1_2026).grid
    assert row_totals(grid) == {"hotline_111": 2, "police": 1, "commune_committee": 1, "child": 1, "family": 1}
    # K5 came at 06:00 on 1 January 2026 in Vietnam, 23:00 on 31 December in UTC: it is 2026's.
    assert row_totals(result("new_cases", H2_2025).grid) == {
        "school": 1,
        "health_station": 1,
        "community": 1,
        "media": 1,
    }
    assert result("new_cases", Period(date(2026, 1, 1), date(2026, 1, 1))).grid.total == 1
    assert result("new_cases", Period(date(2025, 12, 31), date(2025, 12, 31))).grid.total == 0


def test_the_unknown_ethnicity_is_one_column_whether_it_was_left_blank_or_coded_56(province):
    grid = result("abused_children", H1_2026, "ethnicity").grid
    # c1, c7, c8 are Kinh (01); c3 has none recorded, c4 is coded 56 ("Không rõ").
    assert [c for c, _ in grid.columns] == ["01", UNKNOWN]
    assert grid.columns[0] == ("01", "Kinh")
    assert grid.column_totals == {"01": 3, UNKNOWN: 2}


def test_abused_children_by_disability_and_the_services_they_received(province):
    grid = result("abused_children", H1_2026, "disability").grid
    assert grid.column_totals == {"yes": 2, "no": 3}  # c4, c8 | c1, c3, c7
    counselling = result("abused_counselling", H1_2026, "disability")
    # yes: c4 counselled (ongoing), c8 not: 1 of 2. no: c1, c3 counselled, c7 not: 2 of 3.
    assert counselling.grid.column_totals == {"yes": 50.0, "no": 66.7}
    assert counselling.numerator.column_totals == {"yes": 1, "no": 2}
    assert counselling.denominator.column_totals == {"yes": 2, "no": 3}
    assert (counselling.numerator.total, counselling.denominator.total) == (3, 5)


def test_the_shares_of_abused_children_by_sex(province):
    # female: c1, c3, c7 (3); male: c4, c8 (2); no abused child of unknown sex: no share.
    expected = {
        "abused_counselling": {"female": 66.7, "male": 50.0},  # c1, c3 | c4
        "abused_psychological": {"female": 33.3, "male": 0.0},  # c1 | -
        "abused_legal": {"female": 33.3, "male": 50.0},  # c1 | c8
        "abused_all_three": {"female": 33.3, "male": 0.0},  # c1 | -
    }
    for code, shares in expected.items():
        grid = result(code, H1_2026, "sex").grid
        assert grid.column_totals == {**shares, "unknown": None}, code
        assert grid.cells[ALL, "female"] == shares["female"], code


# --- payments ---------------------------------------------------------------------------------------------------------


def test_a_payment_approved_in_june_and_paid_in_july_counts_in_july(province):
    june, july = Period(date(2026, 6, 1), date(2026, 6, 30)), Period(date(2026, 7, 1), date(2026, 7, 31))
    assert result("medical_paid_vnd", june).grid.total == 0
    assert result("medical_paid_vnd", july).grid.total == 3_000_000  # PR2
    assert result("medical_paid_vnd", Period.half(2026, 2)).grid.total == 3_000_000
    assert result("medical_children", Period.half(2026, 2)).grid.total == 1


def test_payments_belong_to_the_commune_where_they_were_requested(province):
    medical = result("medical_paid_vnd", H1_2026, "commune")
    # PR8 (K9, whose case is in B now) was requested in A; PR3 (c4) and PR6 (c1) in B.
    assert column_totals(medical.grid) == {A: 700_000, B: 2_500_000}
    # Disclosure control counts children: one in A (c9), two in B (c4, c1).
    assert column_totals(medical.counts) == {A: 1, B: 2}
    children = result("medical_children", H1_2026, "commune").grid
    assert column_totals(children) == {A: 1, B: 2}
    assert result("medical_paid_vnd", H1_2026, commune=A).grid.total == 700_000
    assert result("medical_paid_vnd", H1_2026, commune=B).grid.total == 2_500_000
    # 2026: PR2 (c1, requested in A) joins; c1 now counts in A and in B, once in the total.
    children = result("medical_children", Y2026, "commune").grid
    assert column_totals(children) == {A: 2, B: 2} and children.total == 3


def test_payments_by_purpose_and_by_programme(province):
    by_purpose = result("payments_by_purpose", H1_2026, "commune")
    assert row_totals(by_purpose.grid) == {"medical_treatment": 3_200_000, "transport": 500_000, "education": 4_000_000}
    assert nonzero(by_purpose.grid, "medical_treatment") == {A: 700_000, B: 2_500_000}
    assert nonzero(by_purpose.grid, "transport") == {B: 500_000}
    assert nonzero(by_purpose.grid, "education") == {C: 4_000_000}
    # The counts behind the sums are children: medical c9 | c4, c1; transport c4; education c5; 4 in all.
    assert row_totals(by_purpose.counts) == {"medical_treatment": 3, "transport": 1, "education": 1}
    assert by_purpose.counts.total == 4
    by_programme = result("payments_by_programme", H1_2026, "commune")
    assert row_totals(by_programme.grid) == {province.p2: 7_700_000}
    assert nonzero(by_programme.grid, province.p2) == {A: 700_000, B: 3_000_000, C: 4_000_000}
    assert [name for _, name in by_programme.grid.rows] == ["Quỹ bảo trợ trẻ em 2025", "Hỗ trợ y tế 2026"]
    previous = result("payments_by_programme", H2_2025)
    assert row_totals(previous.grid) == {province.p1: 2_000_000}


# --- timeliness -------------------------------------------------------------------------------------------------------


def test_verification_hours_and_share_within_12_hours_by_sex(province):
    hours = result("verification_hours", H1_2026, "sex")
    # female: K1 6, K5 10, K10 2 -> 6.0; male: K6 2, K8 24 -> 13.0 (K4 still waiting has no duration).
    assert hours.grid.column_totals == {"female": 6.0, "male": 13.0, "unknown": None}
    assert hours.counts.column_totals == {"female": 3, "male": 2, "unknown": 0}
    share = result("verification_within_deadline", H1_2026, "sex")
    # female: 3 of 3; male: K6 of K4 (waiting since March), K6, K8 (24 hours).
    assert share.grid.column_totals == {"female": 100.0, "male": 33.3, "unknown": None}
    assert share.denominator.column_totals == {"female": 3, "male": 3, "unknown": 0}
    # Exactly 12 hours is within: K7 in 2025's second half.
    assert result("verification_within_deadline", Period(date(2025, 10, 1), date(2025, 10, 1))).grid.total == 100.0


def test_a_report_still_inside_its_12_hours_is_not_counted_yet(province, monkeypatch):
    monkeypatch.setattr(indicators, "utcnow", lambda: vn(2026, 3, 10, 19))  # K4 arrived at 08:00
    march = Period(date(2026, 3, 1), date(2026, 3, 31))
    assert result("verification_within_deadline", march).denominator.total == 0
    monkeypatch.setattr(indicators, "utcnow", lambda: vn(2026, 3, 10, 21))
    assert result("verification_within_deadline", march).grid.total == 0.0


def test_plan_days_and_share_within_7_working_days_by_commune(province):
    days = result("plan_days", H1_2026, "commune")
    # K10 (B) 11 days, K5 (C) 22 days.
    assert column_totals(days.grid) == {B: 11.0, C: 22.0}
    assert days.grid.total == 16.5
    share = result("plan_within_deadline", H1_2026, "commune")
    assert {c: share.grid.column_totals[c] for c in (A, B, C)} == {A: None, B: 100.0, C: 0.0}
    assert (share.numerator.total, share.denominator.total) == (1, 2)


def test_open_cases_past_a_deadline_at_the_end_of_a_past_period_are_rebuilt_from_their_history(province):
    grid = result("overdue_open", H1_2026, "commune").grid
    # On 1 July 2026: K4 (B) in "report received" past its 12 hours; K5 (C) in support past its review of 1 June;
    # K6 (C) drafting its plan since 1 June (due 8 June), though it has moved on since.
    assert row_totals(grid) == {"report_received": 1, "support": 1, "plan_drafting": 1}
    assert column_totals(grid) == {B: 1, C: 2}
    assert nonzero(grid, "plan_drafting") == {C: 1}
    # On 1 January 2026: K7 in initial assessment, a child in danger without an emergency measure (closed since).
    assert row_totals(result("overdue_open", H2_2025, "commune").grid) == {"initial_assessment": 1}
    # 2026 is not over: the deadlines as they stand now (K6 is due on 1 December).
    assert row_totals(result("overdue_open", Y2026).grid) == {"report_received": 1, "support": 1}


def test_closed_cases_by_reason_count_the_closing_step(province):
    grid = result("closed_by_reason", Y2025, "age_band").grid
    # K2 goals met (c2, 2 at the end of 2025), K3 moved away (c3, 4; reopened since), K12 other (c6, 10; imported).
    assert row_totals(grid) == {"goals_met": 1, "moved_away": 1, "other": 1}
    assert nonzero(grid, "goals_met") == {"0-2": 1}
    assert nonzero(grid, "moved_away") == {"3-5": 1}
    assert nonzero(grid, "other") == {"6-10": 1}
    assert row_totals(result("closed_by_reason", H1_2026).grid) == {"risk_removed": 1}


# --- scope ------------------------------------------------------------------------------------------------------------

# Commune B (06979) in the first half of 2026: K3 (c3), K4 (c4), K9 (c9), K10 (c1); payments requested in B: PR3,
# PR4, PR6 (PR8 is K9's but was requested in A).
IN_B = {
    "children_special": 3,  # c3, c4, c1
    "children_at_risk": 1,  # c9
    "new_cases": 2,  # K4, K10
    "abused_children": 2,  # c3, c4 (c1's abuse is on K1, in A)
    "abused_counselling": 100.0,  # c3 (January), c4
    "abused_psychological": 0.0,
    "abused_legal": 0.0,
    "abused_all_three": 0.0,
    "medical_children": 2,  # c4, c1
    "medical_paid_vnd": 2_500_000,
    "payments_by_programme": 3_000_000,
    "payments_by_purpose": 3_000_000,
    "verification_hours": 2.0,  # K10 (K4 waiting)
    "verification_within_deadline": 50.0,
    "plan_days": 11.0,  # K10
    "plan_within_deadline": 100.0,
    "overdue_open": 1,  # K4
    "closed_by_reason": 0,
}


def test_a_commune_filter_restricts_every_indicator(province):
    assert set(IN_B) == {indicator.code for indicator in CATALOGUE}
    for code, expected in IN_B.items():
        found = result(code, H1_2026, "commune", commune=B).grid
        assert found.total == expected, code
        assert [c for c, _ in found.columns] == [B], code


def test_a_case_in_another_province_never_counts(province):
    # KX is in province 01 with a group, abuse, services, a plan, closure, reopening and a payment inside 2026's
    # first half: the province's totals above leave it out; here it is, counted where it belongs.
    elsewhere = {i.code: compute(i.code, Scope("01", H1_2026)).grid.total for i in CATALOGUE}
    assert elsewhere["children_special"] == 1
    assert elsewhere["abused_all_three"] == 100.0
    assert elsewhere["medical_paid_vnd"] == 9_000_000
    assert elsewhere["closed_by_reason"] == 1
    assert result("new_cases", H1_2026, commune=ELSEWHERE).grid.total == 0


def test_an_unknown_indicator_or_breakdown_is_refused(province):
    with pytest.raises(KeyError):
        result("children_special", H1_2026, "religion")
    with pytest.raises(KeyError):
        result("happiness", H1_2026)


# --- periods ----------------------------------------------------------------------------------------------------------


def test_periods_and_the_period_before(app):
    assert Period.half(2026, 1).previous() == Period.half(2025, 2)
    assert Period.half(2026, 2).previous() == Period.half(2026, 1)
    assert Period.year(2026).previous() == Period.year(2025)
    assert MARCH_APRIL.previous() == BEFORE_MARCH and BEFORE_MARCH.days == MARCH_APRIL.days == 61
    assert Period.year(2024).days == 366
    start, end = H1_2026.bounds()
    assert start == datetime(2025, 12, 31, 17, 0, tzinfo=UTC)  # 1 January 00:00 in Vietnam
    assert end == datetime(2026, 6, 30, 17, 0, tzinfo=UTC)  # 1 July 00:00 in Vietnam
    with pytest.raises(ValueError):
        Period(date(2026, 2, 1), date(2026, 1, 31))
    with pytest.raises(ValueError):
        Period.half(2026, 3)
