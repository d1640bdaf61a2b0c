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
from sqlalchemy.orm import joinedload

from casework import audit
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


def _audit_user(action: str, user: User | None, username: str, **details) -> None:
    """Record a sign-in event about ``user`` (None: no such account), in the current transaction."""
    facts = {"username": username, **{k: v for k, v in details.items() if v is not None}}
    audit.record(action, object_type="user", object_id=user.id if user else None, actor=user, details=facts)


def register_failure(user: User, *, now: datetime, action: str, **details) -> bool:
    """Count a failed sign-in step (password or code) and lock the account after too many; say whether it locked.

    Passwords and second-factor codes count towards the same limit, so knowing the password does not buy an
    unlimited number of guesses at the code.
    """
    cfg = current_app.config
    user.failed_logins += 1
    _audit_user(action, user, user.username, **details)
    locked = user.failed_logins >= cfg["CASEWORK_LOGIN_MAX_FAILURES"]
    if locked:
        user.locked_until = now + timedelta(minutes=cfg["CASEWORK_LOGIN_LOCK_MINUTES"])
        user.failed_logins = 0
        _audit_user("auth.locked", user, user.username, until=user.locked_until.isoformat())
    db.session.flush()
    return locked


def locked_error(user: User) -> AccountLocked:
    return AccountLocked(
        _l("This account is locked after repeated failed sign-ins. Try again later or ask an administrator."),
        until=user.locked_until,
    )


def is_locked(user: User, now: datetime) -> bool:
    return user.locked_until is not None and user.locked_until > now


def authenticate(username: str, password: str, *, now: datetime | None = None) -> User:
    """Check a username and password, counting failures and locking the account after too many.

    A right password is only the first step: the caller finishes with :func:`complete_sign_in`, after the second
    factor where the account needs one. Until then the failure count stands.

    :raises InvalidCredentials: unknown user, wrong password or deactivated account (one message for all).
    :raises AccountLocked: too many recent failures; the lock lifts by itself.
    """
    now = now or utcnow()
    name = (username or "").strip().lower()
    user = db.session.scalar(select(User).where(User.username == name))
    if user is None:
        passwords.burn_time(password or "")
        _audit_user("auth.sign_in_failed", None, name[:64], reason="unknown_user")
        db.session.flush()
        raise InvalidCredentials(_l("Wrong username or password."))
    if is_locked(user, now):
        _audit_user("auth.sign_in_failed", user, user.username, reason="locked")
        db.session.flush()
        raise locked_error(user)
    if not passwords.verify_password(user.password_hash, password or ""):
        register_failure(user, now=now, action="auth.sign_in_failed", reason="wrong_password")
        raise InvalidCredentials(_l("Wrong username or password."))
    if not user.active:
        register_failure(user, now=now, action="auth.sign_in_failed", reason="inactive")
        raise InvalidCredentials(_l("Wrong username or password."))
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
    db.session.flush()
    return user


def complete_sign_in(
    user: User, *, channel: str, second_factor: str | None = None, now: datetime | None = None
) -> None:
    """Finish a sign-in whose every step succeeded: forget earlier failures and record it.

    :param channel: ``web`` or ``api``.
    :param second_factor: ``totp`` or ``recovery_code`` when one was checked.
    """
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now or utcnow()
    _audit_user("auth.sign_in", user, user.username, channel=channel, second_factor=second_factor)
    db.session.flush()


def sign_out(user: User, *, token: ApiToken | None = None) -> None:
    """Sign out and record it: revoke ``token`` (the API), or end every browser session of the user (the web)."""
    if token is None:
        end_sessions(user)
    else:
        revoke_token(token)
    _audit_user("auth.sign_out", user, user.username, channel="web" if token is None else "api")
    db.session.flush()


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
    # Its communes in the same query: nearly every page asks the user's scope.
    user = db.session.get(User, uid, options=[joinedload(User.communes)])
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


def issue_token(user: User, *, second_factor: bool = False, now: datetime | None = None) -> IssuedToken:
    """Create a bearer token for ``user``; the plain token is returned once and never stored.

    :param second_factor: the token was obtained with a second factor checked just now.
    """
    now = now or utcnow()
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    record = ApiToken(
        user_id=user.id,
        token_hash=_digest(token),
        created_at=now,
        expires_at=now + timedelta(hours=current_app.config["CASEWORK_API_TOKEN_HOURS"]),
        second_factor_at=now if second_factor else None,
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
