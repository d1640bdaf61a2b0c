"""The second factor: TOTP codes (RFC 6238, pyotp) and single-use recovery codes.

Supervisors, provincial officers, auditors and administrators (``SECOND_FACTOR_ROLES``) sign in in two steps: the
password, then a 6-digit code from an authenticator app or a recovery code. Between the two the browser holds only a
*pending* marker in its (signed) session cookie: the user id, the session epoch and an expiry five minutes away; the
user is not signed in and reaches no page. The code step counts towards the same lockout as passwords.

Approving a payment and exporting identifying data need a *fresh* check: on the web, a code entered within
``CASEWORK_REAUTH_MINUTES`` (:func:`requires_fresh_second_factor` sends the user to ``/reauth`` otherwise); over the
API, a token obtained with ``otp`` within that time (:func:`require_fresh_second_factor_api`).

The module has three parts: the rules (operations, no request), the pending sign-in (the session), and the two
freshness guards (the doors).
"""

from __future__ import annotations

import functools
import re
import secrets
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pyotp
import segno
from flask import abort, current_app, flash, g, redirect, request, session, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm.attributes import set_committed_value

from casework import audit
from casework.auth import operations, passwords
from casework.auth.models import RecoveryCode, User
from casework.auth.roles import SECOND_FACTOR_ROLES
from casework.dbtypes import utcnow
from casework.errors import DomainError
from casework.extensions import db

ISSUER = "casework"
#: A code is accepted in the 30-second step before and after the current one too (clocks drift).
VALID_WINDOW = 1
RECOVERY_CODE_COUNT = 10
#: No 0/o, 1/i/l: a recovery code is read off paper. 16 characters of 31 carry 79 bits.
RECOVERY_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
RECOVERY_LENGTH = 16
TOTP_RE = re.compile(r"^[0-9]{6}$")
RECOVERY_RE = re.compile(f"^[{RECOVERY_ALPHABET}]{{{RECOVERY_LENGTH}}}$")

PENDING_KEY = "pending_sign_in"
PENDING_SECONDS = 5 * 60
#: Session key: when (epoch seconds) the signed-in user last proved their second factor.
CHECKED_AT_KEY = "second_factor_at"


class InvalidCode(DomainError):
    """A TOTP or recovery code was wrong, reused or malformed."""

    code = "otp_invalid"
    status = 401


# --- the rules ----------------------------------------------------------------------------------------------------


def is_required(user: User) -> bool:
    """Say whether ``user`` signs in with a second factor: their role needs one, or they enrolled one."""
    return user.role in SECOND_FACTOR_ROLES or is_enrolled(user)


def is_enrolled(user: User) -> bool:
    """Say whether ``user`` has confirmed a TOTP secret with a code."""
    return user.totp_enrolled_at is not None and user.totp_secret_ct is not None


def issue_secret(user: User, secret: str | None = None) -> str:
    """Give ``user`` a new TOTP secret, not yet confirmed (the enrolment or an administrator confirms it).

    The previous secret, its last accepted code and the recovery codes are forgotten.
    """
    secret = secret or pyotp.random_base32()
    user.totp_secret = secret
    user.totp_enrolled_at = None
    user.totp_last_counter = None
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    db.session.flush()
    return secret


def enrol(user: User, secret: str | None = None, *, now: datetime | None = None) -> str:
    """Enrol ``user`` with ``secret`` (or a new one) without asking for a code: demo data and tests only."""
    secret = issue_secret(user, secret)
    user.totp_enrolled_at = now or utcnow()
    db.session.flush()
    return secret


def provisioning_uri(user: User) -> str:
    """The ``otpauth://`` URI of the user's secret, for an authenticator app."""
    return pyotp.TOTP(user.totp_secret).provisioning_uri(name=user.username, issuer_name=ISSUER)


def secret_groups(secret: str) -> list[str]:
    """The secret in groups of four characters, easier to type by hand."""
    return [secret[i : i + 4] for i in range(0, len(secret), 4)]


def qr_svg(uri: str) -> Markup:
    """The URI as an inline SVG QR code, drawn on the server (no script, nothing fetched)."""
    svg = segno.make(uri, error="m").svg_inline(scale=4, dark="#000", light="#fff", svgclass="qr", title=ISSUER)
    return Markup(svg)  # noqa: S704 - segno's own markup of an URI we built


def normalise(code: str | None) -> str:
    """Lower-case the code and drop spaces and hyphens, as people type them."""
    return re.sub(r"[\s-]", "", code or "").lower()


def _matching_counter(secret: str, code: str, last_counter: int | None, now: datetime) -> int | None:
    """The time step whose code is ``code``, within the window and after ``last_counter``; None if there is none."""
    if not TOTP_RE.fullmatch(code):
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    found = None
    for counter in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if last_counter is not None and counter <= last_counter:
            continue  # already used, or older than a used code: never accepted twice
        if secrets.compare_digest(totp.generate_otp(counter), code):
            found = counter
    return found


def _claim_counter(user: User, counter: int) -> bool:
    """Record ``counter`` as used, atomically: of two requests with the same code, only one wins."""
    result = db.session.execute(
        update(User)
        .where(User.id == user.id, or_(User.totp_last_counter.is_(None), User.totp_last_counter < counter))
        .values(totp_last_counter=counter)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return False
    set_committed_value(user, "totp_last_counter", counter)
    return True


def _use_recovery_code(user: User, code: str, now: datetime) -> bool:
    for record in db.session.scalars(
        select(RecoveryCode).where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
    ):
        if passwords.verify_password(record.code_hash, code):
            claimed = db.session.execute(
                update(RecoveryCode)
                .where(RecoveryCode.id == record.id, RecoveryCode.used_at.is_(None))
                .values(used_at=now)
                .execution_options(synchronize_session=False)
            )
            if claimed.rowcount == 1:
                set_committed_value(record, "used_at", now)
                return True
            return False
    return False


def _refuse(user: User, *, now: datetime, step: str) -> InvalidCode | operations.AccountLocked:
    """Count a wrong code towards the lockout; return the error to raise."""
    if operations.register_failure(user, now=now, action="auth.second_factor_failed", step=step):
        return operations.locked_error(user)
    return InvalidCode(_l("This code is not valid. Enter the current code from your app, or a recovery code."))


def verify(user: User, code: str | None, *, step: str, allow_recovery: bool = True, now: datetime | None = None) -> str:
    """Check a second-factor code of an enrolled user; say which kind it was (``totp`` or ``recovery_code``).

    A TOTP code is accepted once (its time step is remembered); a recovery code is used up.

    :param step: what the code is for (``sign_in``, ``api_token``, ``reauth``), recorded with a failure.
    :raises InvalidCode: wrong, reused or malformed; the failure counts towards the lockout.
    :raises AccountLocked: the account is locked, or this failure locked it.
    """
    now = now or utcnow()
    if operations.is_locked(user, now):
        raise operations.locked_error(user)
    value = normalise(code)
    if is_enrolled(user):
        counter = _matching_counter(user.totp_secret, value, user.totp_last_counter, now)
        if counter is not None and _claim_counter(user, counter):
            return "totp"
        if allow_recovery and RECOVERY_RE.fullmatch(value) and _use_recovery_code(user, value, now):
            return "recovery_code"
    raise _refuse(user, now=now, step=step)


def _new_recovery_code() -> str:
    return "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_LENGTH))


def format_recovery_code(code: str) -> str:
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


def replace_recovery_codes(user: User, *, now: datetime | None = None) -> list[str]:
    """Replace the user's recovery codes with new ones; return them (the only time they are seen in clear).

    Each is stored as an argon2id hash, like a password.
    """
    now = now or utcnow()
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
    for code in codes:
        db.session.add(RecoveryCode(user_id=user.id, code_hash=passwords.hash_password(code), created_at=now))
    db.session.flush()
    return [format_recovery_code(code) for code in codes]


def confirm_enrolment(user: User, code: str | None, *, now: datetime | None = None) -> list[str]:
    """Confirm the user's new secret with a code from their app; return their new recovery codes.

    :raises InvalidCode: the code does not match the secret (counts towards the lockout).
    :raises AccountLocked: the account is locked, or this failure locked it.
    """
    now = now or utcnow()
    if operations.is_locked(user, now):
        raise operations.locked_error(user)
    if user.totp_secret is None:
        raise _refuse(user, now=now, step="enrol")
    counter = _matching_counter(user.totp_secret, normalise(code), user.totp_last_counter, now)
    if counter is None or not _claim_counter(user, counter):
        raise _refuse(user, now=now, step="enrol")
    user.totp_enrolled_at = now
    codes = replace_recovery_codes(user, now=now)
    audit.record(
        "auth.second_factor_enrolled",
        object_type="user",
        object_id=user.id,
        actor=user,
        details={"username": user.username},
    )
    db.session.flush()
    return codes


def reauthenticate(user: User, password: str, code: str, *, now: datetime | None = None) -> str:
    """Check the signed-in user's password and code again before a sensitive action; say which code kind it was.

    :raises InvalidCredentials: the password is wrong (counts towards the lockout).
    :raises InvalidCode: the code is wrong (counts towards the lockout).
    :raises AccountLocked: the account is locked, or this failure locked it.
    """
    now = now or utcnow()
    if operations.is_locked(user, now):
        raise operations.locked_error(user)
    if not passwords.verify_password(user.password_hash, password or ""):
        if operations.register_failure(
            user, now=now, action="auth.sign_in_failed", reason="wrong_password", step="reauth"
        ):
            raise operations.locked_error(user)
        raise operations.InvalidCredentials(_l("Wrong password."))
    method = verify(user, code, step="reauth", now=now)
    user.failed_logins = 0
    audit.record(
        "auth.reauth",
        object_type="user",
        object_id=user.id,
        actor=user,
        details={"username": user.username, "second_factor": method},
    )
    db.session.flush()
    return method


def reset(user: User) -> str | None:
    """Forget the user's second factor (a lost phone): secret, recovery codes, sessions and tokens.

    A user whose role needs a second factor gets a new, unconfirmed secret at once; its URI is returned so that an
    administrator can hand it over. Anyone else is left without one.
    """
    user.totp_secret = None
    user.totp_enrolled_at = None
    user.totp_last_counter = None
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    operations.revoke_all_tokens(user)
    operations.end_sessions(user)
    audit.record(
        "auth.second_factor_reset",
        object_type="user",
        object_id=user.id,
        details={"username": user.username},
    )
    uri = None
    if user.role in SECOND_FACTOR_ROLES:
        issue_secret(user)
        uri = provisioning_uri(user)
    db.session.flush()
    return uri


def is_fresh(checked_at: datetime | None, *, now: datetime | None = None) -> bool:
    """Say whether a second-factor check made at ``checked_at`` is recent enough for a sensitive action."""
    if checked_at is None:
        return False
    window = timedelta(minutes=current_app.config["CASEWORK_REAUTH_MINUTES"])
    return (now or utcnow()) - checked_at <= window


# --- the pending sign-in (between password and code) --------------------------------------------------------------


def begin_pending(user: User, next_url: str | None) -> None:
    """Remember, for five minutes, that ``user`` gave the right password; they are not signed in."""
    session[PENDING_KEY] = {
        "user": str(user.id),
        "epoch": user.session_epoch,
        "expires": int(time.time()) + PENDING_SECONDS,
        "next": next_url,
    }


def pending_sign_in() -> tuple[User | None, str | None]:
    """The user waiting for their second step and where they were going; (None, None) if absent or expired.

    A marker outlives neither its five minutes nor a change of the user's session epoch (sign-out elsewhere,
    password change, deactivation).
    """
    marker = session.get(PENDING_KEY)
    if not isinstance(marker, dict):
        return None, None
    expires = marker.get("expires")
    if not isinstance(expires, int) or expires < time.time():
        clear_pending()
        return None, None
    user = operations.load_session_user(f"{marker.get('user')}.{marker.get('epoch')}")
    if user is None:
        clear_pending()
        return None, None
    return user, marker.get("next")


def clear_pending() -> None:
    session.pop(PENDING_KEY, None)


def mark_checked(now: float | None = None) -> None:
    """Record in the session that the signed-in user has just proved their second factor."""
    session[CHECKED_AT_KEY] = int(now if now is not None else time.time())


# --- the freshness guards -----------------------------------------------------------------------------------------


def _session_checked_at() -> datetime | None:
    value = session.get(CHECKED_AT_KEY)
    if not isinstance(value, int):
        return None
    return datetime.fromtimestamp(value, tz=UTC)


def _way_back() -> str | None:
    """Where to return after re-authenticating: this page, or for a form the page it was sent from."""
    if request.method == "GET":
        return request.full_path.rstrip("?")
    referrer = urlsplit(request.referrer or "")
    if referrer.netloc != request.host or not referrer.path.startswith("/"):
        return None
    return referrer.path + (f"?{referrer.query}" if referrer.query else "")


def requires_fresh_second_factor(view):
    """Let the view run only if the user proved their second factor within ``CASEWORK_REAUTH_MINUTES``.

    Otherwise send them to ``/reauth`` (password and code) and back. A user without a second factor is refused (403).
    """

    @functools.wraps(view)
    def guarded(*args, **kwargs):
        if not current_user.is_authenticated:
            return current_app.login_manager.unauthorized()
        if not is_enrolled(current_user):
            abort(403)
        if not is_fresh(_session_checked_at()):
            flash(_l("Please confirm it is you: enter your password and a code."), "info")
            return redirect(url_for("auth.reauth", next=_way_back()))
        return view(*args, **kwargs)

    return guarded


def require_fresh_second_factor_api() -> None:
    """Refuse an API request whose token was not obtained with a second factor within ``CASEWORK_REAUTH_MINUTES``.

    :raises ApiError: 401 ``reauth_required`` (get a new token with ``otp``), or 403 ``second_factor_required``
        for a user who has no second factor.
    """
    from casework.api import ApiError  # the API imports auth: importing it here keeps the modules acyclic

    token = g.get("api_token")
    if token is None:
        raise ApiError(401, "token_missing", "Send 'Authorization: Bearer <token>'; get one at POST /api/v1/tokens.")
    if not is_enrolled(token.user):
        raise ApiError(403, "second_factor_required", "This action needs an account with a second factor.")
    if not is_fresh(token.second_factor_at):
        minutes = current_app.config["CASEWORK_REAUTH_MINUTES"]
        raise ApiError(
            401,
            "reauth_required",
            f"This action needs a second-factor check from the last {minutes} minutes: "
            "get a new token at POST /api/v1/tokens with 'otp'.",
        )
