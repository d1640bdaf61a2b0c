"""Browser sessions: Flask-Login, deny-by-default and idle expiry."""

from __future__ import annotations

import time

from flask import Flask, flash, redirect, request, session, url_for
from flask_babel import lazy_gettext as _l
from flask_login import LoginManager, current_user, logout_user

from casework.auth import operations

#: Endpoints that answer without a signed-in user. Everything else needs one (the API checks its own tokens).
#: The second-factor steps are public too: they answer only to a pending sign-in (a right password, 5 minutes).
PUBLIC_ENDPOINTS = frozenset(
    {"auth.login", "auth.login_code", "auth.login_enrol", "static", "main.healthz", "main.set_language"}
)


def init_app(app: Flask, login_manager: LoginManager) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = _l("Please sign in to continue.")
    login_manager.login_message_category = "info"
    login_manager.session_protection = "strong"
    login_manager.user_loader(operations.load_session_user)

    @app.before_request
    def require_sign_in():
        endpoint = request.endpoint
        if endpoint is None or endpoint in PUBLIC_ENDPOINTS or endpoint.startswith("api."):
            return None
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        idle_limit = app.config["CASEWORK_SESSION_IDLE_MINUTES"] * 60
        now = int(time.time())
        seen = session.get("seen", 0)
        if now - seen > idle_limit:
            lang = session.get("lang")
            logout_user()
            session.clear()
            if lang:
                session["lang"] = lang
            flash(_l("Your session expired after a period of inactivity. Please sign in again."), "warning")
            return redirect(url_for("auth.login", next=request.full_path if request.method == "GET" else None))
        session["seen"] = now
        return None
