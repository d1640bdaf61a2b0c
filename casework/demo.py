"""Demo data: users of every role in Quảng Ninh (province 22), for ``make serve`` and trying casework out."""

from __future__ import annotations

from dataclasses import dataclass

import pyotp
from sqlalchemy import select

from casework.auth import operations as auth_operations
from casework.auth import second_factor
from casework.auth.models import User
from casework.extensions import db

DEMO_PASSWORD = "casework-demo"  # noqa: S105 - printed for the demo; `casework demo` refuses to run in production
DEMO_PROVINCE = "22"  # Quảng Ninh


@dataclass(frozen=True)
class DemoUser:
    username: str
    role: str
    full_name: str
    communes: tuple[str, ...] = ()


DEMO_USERS = (
    DemoUser("worker", "social_worker", "Nguyễn Thị Hà", ("06970",)),
    DemoUser("worker2", "social_worker", "Trần Văn Minh", ("06979",)),
    DemoUser("supervisor", "supervisor", "Lê Thị Thu", ("06970", "06979")),
    DemoUser("officer", "provincial_officer", "Phạm Quốc Bảo"),
    DemoUser("committee", "committee_member", "Hoàng Minh Đức"),
    DemoUser("auditor", "auditor", "Vũ Thị Lan"),
    DemoUser("admin", "admin", "Đặng Văn Nam"),
    DemoUser("finance", "finance_officer", "Bùi Thị Ngọc"),
)


#: Fixed TOTP secrets of the demo accounts whose role needs a second factor, printed by ``casework demo`` so that
#: anyone trying casework can add them to an authenticator app (or use ``casework demo code USERNAME``).
DEMO_TOTP_SECRETS = {
    "supervisor": "CASEWORKDEMOSUPERVISORQUANGNINHA",
    "officer": "CASEWORKDEMOOFFICERQUANGNINHBBBB",
    "auditor": "CASEWORKDEMOAUDITORQUANGNINHCCCC",
    "admin": "CASEWORKDEMOADMINQUANGNINHDDDDDD",
    "finance": "CASEWORKDEMOFINANCEQUANGNINHEEEE",
}


def seed_users() -> list[User]:
    """Create the demo users that do not exist yet (idempotent)."""
    created = []
    for demo in DEMO_USERS:
        if db.session.scalar(select(User.id).where(User.username == demo.username)) is not None:
            continue
        user = auth_operations.create_user(
            username=demo.username,
            password=DEMO_PASSWORD,
            role=demo.role,
            province_code=DEMO_PROVINCE,
            commune_codes=demo.communes,
            full_name=demo.full_name,
        )
        if demo.username in DEMO_TOTP_SECRETS:
            second_factor.enrol(user, DEMO_TOTP_SECRETS[demo.username])
        created.append(user)
    return created


def current_code(username: str) -> str:
    """The current sign-in code of a demo account that still has its demo secret.

    :raises LookupError: not a demo account with a second factor, or its secret was changed (a real secret is
        never read out).
    """
    secret = DEMO_TOTP_SECRETS.get(username)
    user = db.session.scalar(select(User).where(User.username == username)) if secret else None
    if user is None or user.totp_secret != secret:
        raise LookupError(f"{username!r} is not a demo account with its demo code key")
    return pyotp.TOTP(secret).now()


# --- what was done for the demo cases, and the money to do it ------------------------------------------------------

#: The demo case's plan by its stage: drafted, submitted, approved (and services given), ended at closing.
_PLAN_STATUS = {"plan_drafting": "draft", "plan_approval": "submitted", "support": "approved", "review": "approved"}
_SERVICES = (
    ("counselling", 0.7),
    ("psychological_support", 0.35),
    ("legal_counselling", 0.25),
    ("medical_care", 0.3),
    ("education_support", 0.3),
)
_GOALS = (
    "Trẻ được an toàn tại gia đình, đi học đều.",
    "Trẻ được chăm sóc y tế và hỗ trợ tâm lý đến khi ổn định.",
    "Gia đình được tư vấn kỹ năng chăm sóc, trẻ không còn bị bạo lực.",
)


def seed_programmes(year: int) -> int:
    """The demo province's programmes for ``year`` (idempotent)."""
    from casework.payments.models import Programme

    programmes = (
        ("Quỹ Bảo trợ trẻ em tỉnh Quảng Ninh", 2_000_000_000, []),
        ("Dự án hỗ trợ trẻ em bị xâm hại", 300_000_000, ["medical_treatment", "psychological_services", "legal_costs"]),
    )
    created = 0
    for name, budget, purposes in programmes:
        exists = db.session.scalar(
            select(Programme.id).where(
                Programme.province_code == DEMO_PROVINCE, Programme.year == year, Programme.name == name
            )
        )
        if exists is None:
            db.session.add(
                Programme(
                    name=name, province_code=DEMO_PROVINCE, year=year, budget_vnd=budget, purposes=purposes, groups=[]
                )
            )
            created += 1
    db.session.flush()
    return created


def seed_support(seed: int) -> int:
    """Support plans for the demo cases that reached the plan (drafted, submitted, approved or ended, by stage), and
    the services given under the approved ones (bulk inserts).

    :returns: the number of plans written.
    """
    import random
    import uuid
    from datetime import timedelta

    from sqlalchemy import insert

    from casework.cases.demo_data import seal_row
    from casework.cases.models import Case
    from casework.dbtypes import utcnow
    from casework.i18n import local_tz
    from casework.security.fields import BlindIndexEntry
    from casework.security.keys import keyring
    from casework.support.models import PlannedService, ServiceRecord, SupportPlan

    rng = random.Random(seed)  # noqa: S311 - demo data, reproducible from its seed
    key_id = keyring().current_key_id()
    now = utcnow()
    planned = select(SupportPlan.case_id)
    rows = db.session.execute(
        select(Case.id, Case.received_at, Case.stage_entered_at, Case.assigned_to_id, Case.closed_at, Case.stage)
        .where(
            (Case.stage.in_(tuple(_PLAN_STATUS)))
            | ((Case.stage == "closed") & Case.closure_reason.in_(("goals_met",))),
            Case.id.not_in(planned),
        )
        .order_by(Case.case_number)
    ).all()
    plans, services, records, entries = [], [], [], []
    for case_id, received, entered, worker, closed, stage in rows:
        status = "ended" if closed else _PLAN_STATUS[stage]
        approved_at = min(received + timedelta(days=rng.uniform(8, 20)), entered or now, now)
        if status in ("draft", "submitted"):
            approved_at = entered or now  # not approved: the plan was started when the stage was entered
        plan_id = uuid.uuid4()
        plan = {
            "id": plan_id,
            "case_id": case_id,
            "cycle": 1,
            "review_on": (approved_at + timedelta(days=90)).astimezone(local_tz()).date(),
            "status": status,
            "created_by_id": worker,
            "created_at": approved_at - timedelta(days=4),
            "submitted_at": approved_at - timedelta(days=2) if status != "draft" else None,
            "decided_by_id": None,
            "decided_at": approved_at if status in ("approved", "ended") else None,
            "decision_note_ct": None,
        }
        seal_row(SupportPlan, plan, {"goals": rng.choice(_GOALS)}, key_id, entries)
        plans.append(plan)
        end = closed or now
        picked = [(n, service) for n, (service, share) in enumerate(_SERVICES) if rng.random() < share]
        for position, service in picked or [(0, "counselling")]:  # a plan has at least one planned service
            services.append(
                {
                    "id": uuid.uuid4(),
                    "plan_id": plan_id,
                    "position": position,
                    "service_type": service,
                    "responsible_ct": None,
                    "details_ct": None,
                    "due_on": None,
                }
            )
            for _ in range(rng.randint(1, 3) if status in ("approved", "ended") else 0):
                day = approved_at + (end - approved_at) * rng.random()
                records.append(
                    {
                        "id": uuid.uuid4(),
                        "case_id": case_id,
                        "plan_id": plan_id,
                        "service_type": service,
                        "delivered_on": day.astimezone(local_tz()).date(),  # the worker's calendar day
                        "duration_minutes": rng.choice((30, 45, 60, 90)),
                        "outcome": "completed",
                        "legal_aid_centre": False,
                        "recorded_by_id": worker,
                        "recorded_at": day,
                    }
                )
    for table, batch in (
        (SupportPlan.__table__, plans),
        (BlindIndexEntry.__table__, entries),
        (PlannedService.__table__, services),
        (ServiceRecord.__table__, records),
    ):
        for start in range(0, len(batch), 5000):
            if batch[start : start + 5000]:
                db.session.execute(insert(table), batch[start : start + 5000])
    db.session.flush()
    return len(plans)


def seed_payments(seed: int, share: float = 0.12) -> int:
    """Paid support payments for a share of the demo cases with an approved plan in the demo province (bulk
    inserts), from its programmes, whose budgets grow to cover them. :returns: the number of payments."""
    import random
    import uuid
    from datetime import timedelta

    from sqlalchemy import insert, update

    from casework.auth.models import User
    from casework.cases.demo_data import seal_row
    from casework.cases.models import Case
    from casework.dbtypes import utcnow
    from casework.i18n import local_tz
    from casework.payments.models import Disbursement, PaymentDecision, PaymentRequest, Programme
    from casework.security.fields import BlindIndexEntry
    from casework.security.keys import keyring
    from casework.support.models import SupportPlan

    rng = random.Random(seed + 1)  # noqa: S311 - demo data, reproducible from its seed
    programmes = list(db.session.scalars(select(Programme).where(Programme.province_code == DEMO_PROVINCE)))
    supervisor = db.session.scalar(select(User.id).where(User.username == "supervisor"))
    finance = db.session.scalar(select(User.id).where(User.username == "finance"))
    if not programmes or supervisor is None or finance is None:
        return 0
    general = next((p for p in programmes if not p.purposes), programmes[0])
    key_id = keyring().current_key_id()
    now = utcnow()
    paid = select(PaymentRequest.case_id)
    rows = db.session.execute(
        select(Case.id, Case.commune_code, Case.assigned_to_id, SupportPlan.decided_at, Case.closed_at)
        .join(SupportPlan, SupportPlan.case_id == Case.id)
        .where(
            Case.province_code == DEMO_PROVINCE,
            SupportPlan.status.in_(("approved", "ended")),
            Case.assigned_to_id.is_not(None),
            Case.id.not_in(paid),
        )
        .order_by(Case.case_number)
    ).all()
    purposes = (("medical_treatment", 0.5), ("transport", 0.2), ("education", 0.2), ("psychological_services", 0.1))
    requests, decisions, disbursements, entries = [], [], [], []
    totals: dict[uuid.UUID, int] = {}
    for case_id, commune, worker, approved_at, closed_at in rows:
        if rng.random() >= share:
            continue
        purpose = rng.choices([p for p, _ in purposes], weights=[w for _, w in purposes])[0]
        amount = rng.randrange(300_000, 4_800_000, 50_000)
        end = min(closed_at or now, now)
        submitted = approved_at + (end - approved_at) * rng.random() * 0.8
        decided = submitted + timedelta(days=rng.uniform(0.5, 5))
        paid_at = min(decided + timedelta(days=rng.uniform(1, 10)), now)
        programme = general
        request_id = uuid.uuid4()
        row = {
            "id": request_id,
            "case_id": case_id,
            "commune_code": commune,
            "province_code": DEMO_PROVINCE,
            "programme_id": programme.id,
            "purpose": purpose,
            "amount_vnd": amount,
            "payee_method": "cash",
            "status": "paid",
            "approver_roles": ["supervisor"],
            "approvals": 1,
            "next_role": None,
            "round": 1,
            "requested_by_id": worker,
            "created_at": submitted - timedelta(days=1),
            "submitted_at": submitted,
            "decided_at": decided,
            "paid_at": paid_at,
            "version": 4,
        }
        seal_row(
            PaymentRequest,
            row,
            {
                "payee_name": "Người giám hộ",
                "payee_relation": "Người giám hộ",
                "payee_account": None,
                "description": "Hỗ trợ theo kế hoạch",
            },
            key_id,
            entries,
        )
        requests.append(row)
        decisions.append(
            {
                "id": uuid.uuid4(),
                "payment_id": request_id,
                "round": 1,
                "step": 0,
                "role": "supervisor",
                "decision": "approve",
                "reason_ct": None,
                "decided_by_id": supervisor,
                "decided_at": decided,
            }
        )
        disbursements.append(
            {
                "id": uuid.uuid4(),
                "payment_id": request_id,
                "paid_on": paid_at.astimezone(local_tz()).date(),
                "method": "cash",
                "reference_ct": None,
                "recorded_by_id": finance,
                "recorded_at": paid_at,
            }
        )
        totals[programme.id] = totals.get(programme.id, 0) + amount
    for programme_id, total in totals.items():
        table = Programme.__table__
        db.session.execute(
            update(table)
            .where(table.c.id == programme_id)
            .values(paid_vnd=table.c.paid_vnd + total, budget_vnd=table.c.budget_vnd + total)
        )
    for table, batch in (
        (PaymentRequest.__table__, requests),
        (BlindIndexEntry.__table__, entries),
        (PaymentDecision.__table__, decisions),
        (Disbursement.__table__, disbursements),
    ):
        for start in range(0, len(batch), 5000):
            if batch[start : start + 5000]:
                db.session.execute(insert(table), batch[start : start + 5000])
    db.session.flush()
    return len(requests)
