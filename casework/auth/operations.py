"""The rules of accounts: creating users, signing in, locking, and API tokens."""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from casework.auth import passwords
from casework.auth.models import ApiToken, User, UserCommune
from casework.auth.roles import COMMUNE_ROLES, ROLES
from casework.dbtypes import utcnow
from casework.errors import DomainError, ValidationFailed
from casework.extensions import db
from casework.locations.models import Commune, Province

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
MIN_PASSWORD_LENGTH = 10


class InvalidCredentials(DomainError):
    code = "invalid_credentials"
    status = 401


class AccountLocked(DomainError):
    code = "account_locked"
    status = 403

    def __init__(self, message: str, until: datetime) -> None:
        super().__init__(message)
        self.until = until


def _new_epoch() -> str:
    return secrets.token_hex(16)


def validate_password(password: str) -> list[str]:
    """Return what is wrong with a new password (empty when it is acceptable)."""
    problems = []
    if len(password) < MIN_PASSWORD_LENGTH:
        problems.append(_l("The password needs at least %(n)d characters.", n=MIN_PASSWORD_LENGTH))
    if password.strip() != password:
        problems.append(_l("The password must not start or end with a space."))
    return problems


def create_user(
    *,
    username: str,
    password: str,
    role: str,
    province_code: str,
    commune_codes: Iterable[str] = (),
    full_name: str = "",
) -> User:
    """Create a user after checking every rule; nothing is written if one fails.

    :raises ValidationFailed: naming each field that broke a rule.
    """
    username = (username or "").strip().lower()
    communes = sorted({c.strip() for c in commune_codes if c and c.strip()})
    errors: dict[str, list[str]] = {}

    if not USERNAME_RE.match(username):
        errors.setdefault("username", []).append(
            _l("A username has 3 to 64 characters: lower-case letters, digits, '.', '_' or '-'.")
        )
    elif db.session.scalar(select(User.id).where(User.username == username)) is not None:
        errors.setdefault("username", []).append(_l("This username is already taken."))
    if role not in ROLES:
        errors.setdefault("role", []).append(_l("Unknown role."))
    pw_problems = validate_password(password or "")
    if pw_problems:
        errors["password"] = pw_problems
    province = db.session.get(Province, province_code or "")
    if province is None:
        errors.setdefault("province", []).append(_l("Unknown province code."))
    if role in COMMUNE_ROLES and not communes:
        errors.setdefault("communes", []).append(_l("This role works in at least one commune."))
    if role in ROLES and role not in COMMUNE_ROLES and communes:
        errors.setdefault("communes", []).append(_l("This role covers the whole province; name no commune."))
    if communes and province is not None:
        found = dict(
            db.session.execute(select(Commune.code, Commune.province_code).where(Commune.code.in_(communes))).all()
        )
        for code in communes:
            if code not in found:
                errors.setdefault("communes", []).append(_l("Unknown commune code %(code)s.", code=code))
            elif found[code] != province.code:
                errors.setdefault("communes", []).append(
                    _l("Commune %(code)s is outside province %(province)s.", code=code, province=province.code)
                )
    if errors:
        raise ValidationFailed(errors)

    user = User(
        username=username,
        full_name=(full_name or "").strip(),
        password_hash=passwords.hash_password(password),
        role=role,
        province_code=province.code,
        session_epoch=_new_epoch(),
        communes=[UserCommune(commune_code=code) for code in communes],
    )
    db.session.add(user)
    db.session.flush()
    return user


def authenticate(username: str, password: str, *, now: datetime | None = None) -> User:
    """Check a username and password, counting failures and locking the account after too many.

    :raises InvalidCredentials: unknown user, wrong password or deactivated account (one message for all).
    :raises AccountLocked: too many recent failures; the lock lifts by itself.
    """
    now = now or utcnow()
    cfg = current_app.config
    user = db.session.scalar(select(User).where(User.username == (username or "").strip().lower()))
    if user is None:
        passwords.burn_time(password or "")
        raise InvalidCredentials(_l("Wrong username or password."))
    if user.locked_until is not None and user.locked_until > now:
        raise AccountLocked(
            _l("This account is locked after repeated failed sign-ins. Try again later or ask an administrator."),
            until=user.locked_until,
        )
    if not passwords.verify_password(user.password_hash, password or "") or not user.active:
        user.failed_logins += 1
        if user.failed_logins >= cfg["CASEWORK_LOGIN_MAX_FAILURES"]:
            user.locked_until = now + timedelta(minutes=cfg["CASEWORK_LOGIN_LOCK_MINUTES"])
            user.failed_logins = 0
        db.session.flush()
        raise InvalidCredentials(_l("Wrong username or password."))
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
    db.session.flush()
    return user


def end_sessions(user: User) -> None:
    """End every browser session of ``user`` (sign-out, password change, deactivation)."""
    user.session_epoch = _new_epoch()
    db.session.flush()


def set_password(user: User, password: str) -> None:
    """Replace a user's password and end their sessions and tokens."""
    problems = validate_password(password or "")
    if problems:
        raise ValidationFailed({"password": problems})
    user.password_hash = passwords.hash_password(password)
    revoke_all_tokens(user)
    end_sessions(user)


def set_active(user: User, active: bool) -> None:
    """Activate or deactivate an account; deactivation ends its sessions and tokens."""
    user.active = active
    if not active:
        revoke_all_tokens(user)
        end_sessions(user)
    db.session.flush()


def unlock(user: User) -> None:
    user.locked_until = None
    user.failed_logins = 0
    db.session.flush()


def load_session_user(session_id: str) -> User | None:
    """Find the user of a browser session id (``<uuid>.<epoch>``); None once the epoch has changed."""
    user_id, _, epoch = (session_id or "").partition(".")
    try:
        uid = uuid.UUID(user_id)
    except ValueError:
        return None
    user = db.session.get(User, uid)
    if user is None or not user.active or not epoch or not secrets.compare_digest(user.session_epoch, epoch):
        return None
    return user


# --- API tokens -----------------------------------------------------------------------------------------------

TOKEN_PREFIX = "cw_"  # noqa: S105 - a prefix, not a secret


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    token: str
    record: ApiToken


def issue_token(user: User, *, now: datetime | None = None) -> IssuedToken:
    """Create a bearer token for ``user``; the plain token is returned once and never stored."""
    now = now or utcnow()
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    record = ApiToken(
        user_id=user.id,
        token_hash=_digest(token),
        created_at=now,
        expires_at=now + timedelta(hours=current_app.config["CASEWORK_API_TOKEN_HOURS"]),
    )
    db.session.add(record)
    db.session.flush()
    return IssuedToken(token=token, record=record)


def resolve_token(token: str, *, now: datetime | None = None) -> ApiToken | None:
    """Return the valid token record for a bearer token, or None (unknown, expired, revoked, inactive user)."""
    if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    record = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == _digest(token)))
    if record is None or not record.is_valid(now) or not record.user.active:
        return None
    return record


def revoke_token(record: ApiToken, *, now: datetime | None = None) -> None:
    if record.revoked_at is None:
        record.revoked_at = now or utcnow()
        db.session.flush()


def revoke_all_tokens(user: User) -> None:
    now = utcnow()
    for record in db.session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
    ):
        record.revoked_at = now
    db.session.flush()
