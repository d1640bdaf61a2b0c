"""Who may see and do what: the one place that turns a user into permissions and query filters.

Scope knows users and administrative units, not areas. Each protected model says which commune it belongs to;
``filter_to_scope`` turns a user into a condition on that column, so every query of protected rows reads::

    stmt = scope.filter_to_scope(select(Case), Case.commune_code, current_user)

Deny by default: a role not named here sees nothing.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Select, false, select

from casework.auth.roles import ADMIN, AUDITOR, COMMITTEE_MEMBER, PROVINCIAL_OFFICER, SOCIAL_WORKER, SUPERVISOR
from casework.extensions import db
from casework.locations.models import Commune

#: Roles that may open a child's record (within their area).
RECORD_ROLES = frozenset({SOCIAL_WORKER, SUPERVISOR, PROVINCIAL_OFFICER})


def _authenticated(user) -> bool:
    return user is not None and getattr(user, "is_authenticated", False) and getattr(user, "active", False)


def commune_condition(column, user) -> ColumnElement[bool]:
    """Return the SQL condition that keeps rows whose commune code (``column``) ``user`` may see records in."""
    if not _authenticated(user) or user.role not in RECORD_ROLES:
        return false()
    if user.role == PROVINCIAL_OFFICER:
        return column.in_(select(Commune.code).where(Commune.province_code == user.province_code))
    codes = user.commune_codes
    return column.in_(codes) if codes else false()


def communes_of(user) -> list[str]:
    """The communes ``user`` may see records in (none for a role that never opens one): a search need not look
    further (``casework.security.fields.candidate_ids``)."""
    if not _authenticated(user) or user.role not in RECORD_ROLES:
        return []
    if user.role == PROVINCIAL_OFFICER:
        return list(db.session.scalars(select(Commune.code).where(Commune.province_code == user.province_code)))
    return sorted(user.commune_codes)


def filter_to_scope(stmt: Select, column, user) -> Select:
    """Restrict ``stmt`` to the rows whose commune code ``user`` may see."""
    return stmt.where(commune_condition(column, user))


def can_view_records(user) -> bool:
    """Say whether ``user``'s role ever opens a child's record (committee members, auditors, admins never)."""
    return _authenticated(user) and user.role in RECORD_ROLES


def can_access_commune(user, commune_code: str | None) -> bool:
    """Say whether ``user`` may see and change records of ``commune_code``."""
    if not commune_code or not can_view_records(user):
        return False
    if user.role == PROVINCIAL_OFFICER:
        province = db.session.scalar(select(Commune.province_code).where(Commune.code == commune_code))
        return province == user.province_code
    return commune_code in user.commune_codes


def can_supervise(user, commune_code: str | None) -> bool:
    """Say whether ``user`` supervises work in ``commune_code`` (reassigns, approves)."""
    return _authenticated(user) and user.role == SUPERVISOR and commune_code in user.commune_codes


def can_view_statistics(user, province_code: str | None = None) -> bool:
    """Committee members and provincial officers see aggregate statistics of their own province."""
    if not _authenticated(user) or user.role not in {COMMITTEE_MEMBER, PROVINCIAL_OFFICER}:
        return False
    return province_code is None or province_code == user.province_code


def can_view_audit(user) -> bool:
    return _authenticated(user) and user.role == AUDITOR


def can_manage_users(user, province_code: str | None = None) -> bool:
    """Administrators manage the accounts of their own province, and nothing about children."""
    if not _authenticated(user) or user.role != ADMIN:
        return False
    return province_code is None or province_code == user.province_code


def can_view_workflows(user) -> bool:
    """Administrators and supervisors read the case workflows (stages, transitions, deadlines): no case data."""
    return _authenticated(user) and user.role in {ADMIN, SUPERVISOR}
