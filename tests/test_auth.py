"""Signing in and out through the web: lockout, idle expiry, CSRF, session handling."""

from __future__ import annotations

import re
import time
from datetime import timedelta

from casework.auth import operations
from casework.auth.models import User
from casework.dbtypes import utcnow
from casework.extensions import db
from tests.conftest import TEST_PASSWORD, AuthActions, csrf_from


def test_the_right_password_signs_in_and_lands_on_the_role_home(make_user, auth, client):
    make_user("supervisor", username="thu")
    response = auth.login("thu")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert "Tổng quan nhóm" in client.get("/").get_data(as_text=True)


def test_wrong_passwords_lock_the_account_even_for_the_right_password(app, make_user, auth, client):
    user = make_user(username="lan")
    for _ in range(app.config["CASEWORK_LOGIN_MAX_FAILURES"]):
        response = auth.login("lan", "wrong password!")
        assert response.status_code == 401
        assert "Sai tên đăng nhập hoặc mật khẩu." in response.get_data(as_text=True)
    response = auth.login("lan", TEST_PASSWORD)
    assert response.status_code == 403
    assert "Tài khoản tạm khóa" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302  # still signed out
    db.session.expire_all()
    locked = db.session.get(User, user.id)
    assert locked.locked_until > utcnow() + timedelta(minutes=app.config["CASEWORK_LOGIN_LOCK_MINUTES"] - 1)


def test_the_lock_lifts_by_itself_after_the_lock_period(app, make_user, auth):
    user = make_user(username="minh")
    user.locked_until = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert auth.login("minh").status_code == 302


def test_failures_below_the_limit_are_forgotten_after_a_success(app, make_user, auth):
    user = make_user(username="bao")
    for _ in range(app.config["CASEWORK_LOGIN_MAX_FAILURES"] - 1):
        auth.login("bao", "wrong password!")
    assert auth.login("bao").status_code == 302
    db.session.expire_all()
    assert db.session.get(User, user.id).failed_logins == 0


def test_unknown_user_gets_the_same_answer_as_a_wrong_password(make_user, auth):
    make_user(username="known")
    unknown = auth.login("nobody-here", "whatever pass")
    wrong = auth.login("known", "whatever pass")
    assert unknown.status_code == wrong.status_code == 401
    assert "Sai tên đăng nhập hoặc mật khẩu." in unknown.get_data(as_text=True)


def test_a_deactivated_account_cannot_sign_in(make_user, auth):
    user = make_user(username="gone")
    operations.set_active(user, False)
    db.session.commit()
    assert auth.login("gone").status_code == 401


def test_an_idle_session_is_signed_out(app, make_user, auth, client):
    make_user(username="idle")
    auth.login("idle")
    assert client.get("/").status_code == 200
    idle = app.config["CASEWORK_SESSION_IDLE_MINUTES"] * 60
    with client.session_transaction() as session:
        session["seen"] = int(time.time()) - idle - 5
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Phiên làm việc đã hết hạn" in page
    assert client.get("/").status_code == 302  # the old session is gone, not revived


def test_activity_keeps_a_session_alive(app, make_user, auth, client):
    make_user(username="busy")
    auth.login("busy")
    idle = app.config["CASEWORK_SESSION_IDLE_MINUTES"] * 60
    with client.session_transaction() as session:
        session["seen"] = int(time.time()) - idle + 60
    assert client.get("/").status_code == 200


def test_a_form_without_csrf_token_is_refused(make_user, client):
    make_user(username="csrf")
    response = client.post("/login", data={"username": "csrf", "password": TEST_PASSWORD})
    assert response.status_code == 400
    assert client.get("/").status_code == 302  # not signed in


def test_a_form_with_a_forged_csrf_token_is_refused(make_user, client, auth):
    make_user(username="forged")
    auth.csrf("/login")
    response = client.post("/login", data={"csrf_token": "forged", "username": "forged", "password": TEST_PASSWORD})
    assert response.status_code == 400


def test_sign_out_without_csrf_token_is_refused(make_user, auth, client):
    make_user(username="stay")
    auth.login("stay")
    assert client.post("/logout").status_code == 400
    assert client.get("/").status_code == 200


def test_the_session_changes_at_sign_in(make_user, auth, client):
    make_user(username="fixation")
    client.get("/login")
    with client.session_transaction() as session:
        session["planted"] = "by an attacker"
    auth.login("fixation")
    with client.session_transaction() as session:
        assert "planted" not in session
        assert "_user_id" in session


def test_sign_out_ends_the_users_other_sessions(app, make_user, auth, client):
    make_user(username="twice")
    other = AuthActions(app.test_client())
    auth.login("twice")
    other.login("twice")
    assert other.client.get("/").status_code == 200
    auth.logout()
    assert client.get("/").status_code == 302
    assert other.client.get("/").status_code == 302


def test_a_password_reset_ends_existing_sessions(app, make_user, auth, client):
    user = make_user(username="reset")
    auth.login("reset")
    operations.set_password(user, "a brand new password")
    db.session.commit()
    assert client.get("/").status_code == 302


def test_sign_in_does_not_redirect_to_another_site(make_user, client):
    make_user(username="redirect")
    token = csrf_from(client.get("/login").get_data(as_text=True))
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        response = client.post(
            f"/login?next={target}", data={"csrf_token": token, "username": "redirect", "password": TEST_PASSWORD}
        )
        assert response.headers["Location"] == "/", target
        client.post("/logout", data={"csrf_token": csrf_from(client.get("/").get_data(as_text=True))})
        token = csrf_from(client.get("/login").get_data(as_text=True))


def test_pages_need_a_signed_in_user(client):
    for path in ("/", "/admin/users", "/jobs/"):
        response = client.get(path)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login")


def test_session_cookie_flags(make_user, auth):
    make_user(username="cookie")
    response = auth.login("cookie")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


def test_security_headers_on_every_page(client):
    response = client.get("/login")
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_the_pages_icon_is_a_static_file_that_leaves_the_session_alone(make_user, auth, client):
    """A page without an icon of its own makes the browser ask for /favicon.ico beside the sign-in. That 404 page
    answered with the cookie of the session as it was before the sign-in, and when it arrived after the sign-in's
    answer the user was signed out again. The icon is a static file, which sets no cookie."""
    page = client.get("/login").get_data(as_text=True)
    href = re.search(r'<link rel="icon" href="([^"]+)"', page).group(1)
    assert href == "/static/favicon.svg"
    make_user(username="icon")
    assert auth.login("icon").status_code == 302
    icon = client.get(href)
    assert (icon.status_code, icon.mimetype) == (200, "image/svg+xml")
    assert "Set-Cookie" not in icon.headers
    assert 'href="/static/favicon.svg"' in client.get("/").get_data(as_text=True)  # every page, signed in too


def test_passwords_are_stored_as_argon2id(make_user):
    user = make_user(username="hashed")
    assert user.password_hash.startswith("$argon2id$")
    assert TEST_PASSWORD not in user.password_hash
