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
)


#: Fixed TOTP secrets of the demo accounts whose role needs a second factor, printed by ``casework demo`` so that
#: anyone trying casework can add them to an authenticator app (or use ``casework demo code USERNAME``).
DEMO_TOTP_SECRETS = {
    "supervisor": "CASEWORKDEMOSUPERVISORQUANGNINHA",
    "officer": "CASEWORKDEMOOFFICERQUANGNINHBBBB",
    "auditor": "CASEWORKDEMOAUDITORQUANGNINHCCCC",
    "admin": "CASEWORKDEMOADMINQUANGNINHDDDDDD",
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
