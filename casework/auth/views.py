"""Sign-in, sign-out and user administration."""

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
from casework.auth.forms import ROLE_LABELS, EmptyForm, LoginForm, PasswordResetForm, UserCreateForm
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


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["CASEWORK_LOGIN_RATE_LIMIT"], methods=["POST"])
def login():
    """Sign a user in with username and password."""
    if current_user.is_authenticated:
        return redirect(url_for("main.home"))
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        try:
            user = operations.authenticate(form.username.data, form.password.data)
        except DomainError as exc:
            db.session.commit()  # keep the failure count
            flash(exc.message, "error")
            status = 401 if isinstance(exc, operations.InvalidCredentials) else 403
        else:
            db.session.commit()
            lang = session.get("lang")
            session.clear()  # a new session at sign-in: no fixation
            if lang:
                session["lang"] = lang
            login_user(user)
            session["seen"] = int(time.time())
            return redirect(_safe_next(request.args.get("next")) or url_for("main.home"))
    elif request.method == "POST":
        status = 422
    return render_template("auth/login.html", form=form), status


@bp.post("/logout")
def logout():
    """Sign out and end every session of this user."""
    form = EmptyForm()
    if not form.validate_on_submit():
        abort(400)
    operations.end_sessions(current_user)
    db.session.commit()
    lang = session.get("lang")
    logout_user()
    session.clear()
    if lang:
        session["lang"] = lang
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
