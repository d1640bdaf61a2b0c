"""Sign-in (password, then a second factor where needed), re-authentication, sign-out and user administration."""

from __future__ import annotations

import time
import uuid
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_user, logout_user
from sqlalchemy import select
from wtforms.fields.choices import SelectChoice

from casework import scope
from casework.auth import operations
from casework.auth import second_factor as second_factor_rules
from casework.auth.forms import (
    ROLE_LABELS,
    CodeForm,
    EmptyForm,
    LoginForm,
    PasswordResetForm,
    ReauthForm,
    UserCreateForm,
)
from casework.auth.models import User
from casework.errors import DomainError, ValidationFailed
from casework.extensions import db, limiter
from casework.locations.models import Commune

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str | None:
    """Accept only a path on this site as the place to go after signing in."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target


def _fresh_session() -> None:
    """Empty the session (no fixation across sign-in steps), keeping only the language choice."""
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang


def _start_session(user: User, *, second_factor: bool) -> None:
    """Sign ``user`` in on a brand-new session."""
    _fresh_session()
    login_user(user)
    session["seen"] = int(time.time())
    if second_factor:
        second_factor_rules.mark_checked()


def _login_rate_limit() -> str:
    return current_app.config["CASEWORK_LOGIN_RATE_LIMIT"]


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_rate_limit, methods=["POST"])
def login():
    """Sign a user in with username and password (the first step where the role needs a second factor)."""
    if current_user.is_authenticated:
        return redirect(url_for("main.home"))
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        try:
            user = operations.authenticate(form.username.data, form.password.data)
        except DomainError as exc:
            db.session.commit()  # keep the failure count and its audit event
            flash(exc.message, "error")
            status = 401 if isinstance(exc, operations.InvalidCredentials) else 403
        else:
            next_url = _safe_next(request.args.get("next"))
            if second_factor_rules.is_required(user):
                db.session.commit()
                _fresh_session()  # not signed in yet: only the pending marker
                second_factor_rules.begin_pending(user, next_url)
                enrolled = second_factor_rules.is_enrolled(user)
                return redirect(url_for("auth.login_code" if enrolled else "auth.login_enrol"))
            operations.complete_sign_in(user, channel="web")
            db.session.commit()
            _start_session(user, second_factor=False)
            return redirect(next_url or url_for("main.home"))
    elif request.method == "POST":
        status = 422
    return render_template("auth/login.html", form=form), status


def _pending_or_restart():
    """The user between password and code, or a redirect to the sign-in page when that step has expired."""
    user, next_url = second_factor_rules.pending_sign_in()
    if user is None:
        flash(_l("Your sign-in was not finished in time. Please enter your password again."), "warning")
        return None, None, redirect(url_for("auth.login"))
    return user, next_url, None


def _locked_out(exc: operations.AccountLocked):
    second_factor_rules.clear_pending()
    flash(exc.message, "error")
    return redirect(url_for("auth.login"))


@bp.route("/login/code", methods=["GET", "POST"])
@limiter.limit(_login_rate_limit, methods=["POST"])
def login_code():
    """Finish signing in with a code from the authenticator app or a recovery code."""
    if current_user.is_authenticated:
        return redirect(url_for("main.home"))
    user, next_url, restart = _pending_or_restart()
    if restart is not None:
        return restart
    if not second_factor_rules.is_enrolled(user):
        return redirect(url_for("auth.login_enrol"))
    form = CodeForm()
    status = 200
    if form.validate_on_submit():
        try:
            method = second_factor_rules.verify(user, form.code.data, step="sign_in")
        except operations.AccountLocked as exc:
            db.session.commit()
            return _locked_out(exc)
        except second_factor_rules.InvalidCode as exc:
            db.session.commit()  # keep the failure count and its audit event
            form.code.errors = [*form.code.errors, exc.message]
            status = 401
        else:
            operations.complete_sign_in(user, channel="web", second_factor=method)
            db.session.commit()
            _start_session(user, second_factor=True)
            if method == "recovery_code":
                flash(_l("You signed in with a recovery code, which is now used up."), "warning")
            return redirect(next_url or url_for("main.home"))
    elif request.method == "POST":
        status = 422
    return render_template("auth/login_code.html", form=form), status


@bp.route("/login/enrol", methods=["GET", "POST"])
@limiter.limit(_login_rate_limit, methods=["POST"])
def login_enrol():
    """Set up the authenticator app at the first sign-in, then show the recovery codes once."""
    if current_user.is_authenticated:
        return redirect(url_for("main.home"))
    user, next_url, restart = _pending_or_restart()
    if restart is not None:
        return restart
    if second_factor_rules.is_enrolled(user):
        return redirect(url_for("auth.login_code"))
    if user.totp_secret is None:
        second_factor_rules.issue_secret(user)
        db.session.commit()
    form = CodeForm()
    status = 200
    if form.validate_on_submit():
        try:
            codes = second_factor_rules.confirm_enrolment(user, form.code.data)
        except operations.AccountLocked as exc:
            db.session.commit()
            return _locked_out(exc)
        except second_factor_rules.InvalidCode as exc:
            db.session.commit()
            form.code.errors = [*form.code.errors, exc.message]
            status = 401
        else:
            operations.complete_sign_in(user, channel="web", second_factor="totp")
            db.session.commit()
            _start_session(user, second_factor=True)
            # Shown in this answer only: the codes are stored hashed and never shown again.
            return render_template("auth/recovery_codes.html", codes=codes, next_url=next_url or url_for("main.home"))
    elif request.method == "POST":
        status = 422
    uri = second_factor_rules.provisioning_uri(user)
    return render_template(
        "auth/enrol.html",
        form=form,
        uri=uri,
        secret_groups=second_factor_rules.secret_groups(user.totp_secret),
        qr=second_factor_rules.qr_svg(uri),
    ), status


@bp.route("/reauth", methods=["GET", "POST"])
@limiter.limit(_login_rate_limit, methods=["POST"])
def reauth():
    """Confirm the signed-in user's password and code before a sensitive action, then go back to it."""
    user = current_user._get_current_object()
    if not second_factor_rules.is_enrolled(user):
        abort(403)
    form = ReauthForm()
    next_url = _safe_next(request.args.get("next"))
    status = 200
    if form.validate_on_submit():
        try:
            second_factor_rules.reauthenticate(user, form.password.data, form.code.data)
        except operations.AccountLocked as exc:
            # Someone at a signed-in browser is guessing: the lock ends the user's sessions too.
            operations.end_sessions(user)
            db.session.commit()
            logout_user()
            _fresh_session()
            flash(exc.message, "error")
            return redirect(url_for("auth.login"))
        except DomainError as exc:
            db.session.commit()  # keep the failure count and its audit event
            flash(exc.message, "error")
            status = 401
        else:
            db.session.commit()
            second_factor_rules.mark_checked()
            return redirect(next_url or url_for("main.home"))
    elif request.method == "POST":
        status = 422
    return render_template("auth/reauth.html", form=form), status


@bp.post("/logout")
def logout():
    """Sign out and end every session of this user."""
    form = EmptyForm()
    if not form.validate_on_submit():
        abort(400)
    operations.sign_out(current_user._get_current_object())
    db.session.commit()
    logout_user()
    _fresh_session()
    flash(_l("You have signed out."), "info")
    return redirect(url_for("auth.login"))


# --- user administration ----------------------------------------------------------------------------------------


def _require_admin() -> None:
    if not scope.can_manage_users(current_user):
        abort(403)


def _load_user(user_id: uuid.UUID) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        abort(404)
    if not scope.can_manage_users(current_user, user.province_code):
        abort(404)  # another province's accounts are not even confirmed to exist
    return user


def _commune_choices() -> list[SelectChoice]:
    rows = db.session.execute(
        select(Commune.code, Commune.name)
        .where(Commune.province_code == current_user.province_code, Commune.merged_into_code.is_(None))
        .order_by(Commune.name)
    ).all()
    return [SelectChoice(code, f"{name} ({code})") for code, name in rows]


@bp.get("/admin/users")
def list_users():
    """List the accounts of the administrator's province."""
    _require_admin()
    users = db.session.scalars(
        select(User).where(User.province_code == current_user.province_code).order_by(User.username)
    ).all()
    return render_template("auth/users.html", users=users, role_labels=ROLE_LABELS)


@bp.route("/admin/users/new", methods=["GET", "POST"])
def create_user():
    """Create an account in the administrator's province."""
    _require_admin()
    form = UserCreateForm()
    form.communes.choices = _commune_choices()
    status = 200
    if form.validate_on_submit():
        try:
            user = operations.create_user(
                username=form.username.data,
                password=form.password.data,
                role=form.role.data,
                province_code=current_user.province_code,
                commune_codes=form.communes.data or [],
                full_name=form.full_name.data or "",
            )
        except ValidationFailed as exc:
            db.session.rollback()
            for field, messages in exc.errors.items():
                target = getattr(form, field, None)
                if target is not None:
                    target.errors = list(target.errors) + [str(m) for m in messages]
                else:
                    form.form_errors.extend(str(m) for m in messages)
            status = 422
        else:
            db.session.commit()
            flash(_l("Account %(username)s created.", username=user.username), "success")
            return redirect(url_for("auth.show_user", user_id=user.id))
    elif request.method == "POST":
        status = 422
    return render_template("auth/user_new.html", form=form), status


@bp.get("/admin/users/<uuid:user_id>")
def show_user(user_id: uuid.UUID):
    """Show one account and what an administrator can do with it."""
    _require_admin()
    user = _load_user(user_id)
    communes = db.session.scalars(select(Commune).where(Commune.code.in_(user.commune_codes))).all()
    return render_template(
        "auth/user_show.html",
        user=user,
        communes=communes,
        role_labels=ROLE_LABELS,
        form=EmptyForm(),
        password_form=PasswordResetForm(),
    )


@bp.post("/admin/users/<uuid:user_id>/active")
def toggle_active(user_id: uuid.UUID):
    """Deactivate or reactivate an account."""
    _require_admin()
    user = _load_user(user_id)
    if not EmptyForm().validate_on_submit():
        abort(400)
    if user.id == current_user.id:
        flash(_l("You cannot deactivate your own account."), "error")
        return redirect(url_for("auth.show_user", user_id=user.id))
    operations.set_active(user, not user.active)
    db.session.commit()
    flash(_l("Account updated."), "success")
    return redirect(url_for("auth.show_user", user_id=user.id))


@bp.post("/admin/users/<uuid:user_id>/unlock")
def unlock_user(user_id: uuid.UUID):
    """Lift a sign-in lock before it expires."""
    _require_admin()
    user = _load_user(user_id)
    if not EmptyForm().validate_on_submit():
        abort(400)
    operations.unlock(user)
    db.session.commit()
    flash(_l("Account unlocked."), "success")
    return redirect(url_for("auth.show_user", user_id=user.id))


@bp.post("/admin/users/<uuid:user_id>/password")
def reset_password(user_id: uuid.UUID):
    """Set a new password for an account, ending its sessions and tokens."""
    _require_admin()
    user = _load_user(user_id)
    form = PasswordResetForm()
    if form.validate_on_submit():
        try:
            operations.set_password(user, form.password.data)
        except ValidationFailed as exc:
            db.session.rollback()
            for message in exc.errors.get("password", []):
                flash(message, "error")
        else:
            db.session.commit()
            flash(_l("Password changed; the account's sessions have ended."), "success")
    else:
        for errors in form.errors.values():
            for message in errors:
                flash(message, "error")
    return redirect(url_for("auth.show_user", user_id=user.id))
