"""Demo data: users of every role in Quảng Ninh (province 22), for ``make serve`` and trying casework out."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from casework.auth import operations as auth_operations
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


def seed_users() -> list[User]:
    """Create the demo users that do not exist yet (idempotent)."""
    created = []
    for demo in DEMO_USERS:
        if db.session.scalar(select(User.id).where(User.username == demo.username)) is not None:
            continue
        created.append(
            auth_operations.create_user(
                username=demo.username,
                password=DEMO_PASSWORD,
                role=demo.role,
                province_code=DEMO_PROVINCE,
                commune_codes=demo.communes,
                full_name=demo.full_name,
            )
        )
    return created
