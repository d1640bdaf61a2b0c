"""The second factor: TOTP and recovery codes at sign-in, enrolment, lockout, re-authentication, the API's ``otp``,
the CLI and demo commands, encryption of the secret, and the audit events of signing in and out."""

from __future__ import annotations

import re
import time
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pyotp
import pytest
from flask import jsonify
from sqlalchemy import select, text

import config as casework_config
from casework.auth import operations, second_factor
from casework.auth.models import ApiToken, RecoveryCode, User
from casework.dbtypes import utcnow
from casework.extensions import db
from tests.conftest import TEST_PASSWORD, AuthActions, build_app, casework_cli, csrf_from, current_code, environment

API = "/api/v1"


def reload(user: User) -> User:
    db.session.expire_all()
    return db.session.get(User, user.id)


def wrong_code(user: User) -> str:
    """A well-formed code that is valid in no step near now."""
    totp = pyotp.TOTP(reload(user).totp_secret)
    now = totp.timecode(utcnow())
    near = {totp.generate_otp(c) for c in range(now - 2, now + 3)}
    return next(f"{n:06d}" for n in range(1000000) if f"{n:06d}" not in near)


def session_of(client) -> dict:
    with client.session_transaction() as session:
        return dict(session)


def fake_ids(user: User, names=()) -> dict:
    ids = {"user_id": user.id, "code": "en", "filename": "casework.css", "form": "mau01", "workflow_name": "default"}
    # Every other id in a URL: made up, since the point is that nothing answers before the second step.
    return ids | {name: uuid.uuid4() for name in names if name.endswith("_id") and name not in ids}


# --- the two steps of signing in ------------------------------------------------------------------------------


def test_a_supervisor_reaches_no_page_with_the_password_alone(app, make_user, auth, client):
    user = make_user("supervisor", username="thu")
    response = auth.password_step("thu")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login/code"
    assert "_user_id" not in session_of(client)
    token = csrf_from(client.get("/login/code").get_data(as_text=True))
    public = {"static", "auth.login", "auth.login_code", "auth.login_enrol", "main.healthz", "main.set_language"}
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("api.") or rule.endpoint in public:
            continue
        values = fake_ids(user, rule.arguments)
        url = rule.build({k: v for k, v in values.items() if k in rule.arguments}, append_unknown=False)[1]
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            answer = client.open(url, method=method, data={"csrf_token": token} if method == "POST" else None)
            assert answer.status_code == 302, (method, url, answer.status_code)
            assert answer.headers["Location"].startswith("/login"), (method, url)
    assert client.get("/login/code").status_code == 200  # still waiting for the code


def test_with_the_right_code_a_supervisor_lands_on_their_home_in_a_new_session(make_user, auth, client):
    user = make_user("supervisor", username="thu")
    auth.password_step("thu")
    pending = session_of(client)
    assert pending["pending_sign_in"]["user"] == str(user.id)
    response = auth.code_step(current_code(user))
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert "Tổng quan nhóm" in client.get("/").get_data(as_text=True)
    signed_in = session_of(client)
    assert "pending_sign_in" not in signed_in
    assert signed_in["_user_id"] == f"{user.id}.{reload(user).session_epoch}"
    assert abs(signed_in["second_factor_at"] - time.time()) < 60
    assert reload(user).last_login_at is not None


def test_the_code_step_keeps_the_page_asked_for_before_sign_in(make_user, auth, client):
    user = make_user("admin", username="nam")
    token = auth.csrf("/login")
    client.post("/login?next=/admin/users", data={"csrf_token": token, "username": "nam", "password": TEST_PASSWORD})
    response = auth.code_step(current_code(user))
    assert response.headers["Location"] == "/admin/users"


def test_a_social_worker_signs_in_with_the_password_alone(make_user, auth, client):
    make_user("social_worker", username="hana")
    response = auth.password_step("hana")
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert "second_factor_at" not in session_of(client)


def test_a_wrong_code_is_refused_and_counts_towards_the_lockout(app, make_user, auth, client):
    user = make_user("supervisor", username="thu")
    limit = app.config["CASEWORK_LOGIN_MAX_FAILURES"]
    auth.password_step("thu")
    for attempt in range(1, limit):
        response = auth.code_step(wrong_code(user))
        assert response.status_code == 401
        assert client.get("/").status_code == 302
        assert reload(user).failed_logins == attempt
    locked = auth.code_step(wrong_code(user))
    assert locked.status_code == 302 and locked.headers["Location"] == "/login"
    assert "pending_sign_in" not in session_of(client)
    assert reload(user).locked_until > utcnow()
    # Locked: neither the password nor the right code opens it now.
    assert auth.password_step("thu").status_code == 403
    assert client.get("/").status_code == 302


def test_a_right_password_does_not_reset_the_count_of_wrong_codes(app, make_user, auth):
    user = make_user("auditor", username="lan")
    limit = app.config["CASEWORK_LOGIN_MAX_FAILURES"]
    for _ in range(limit - 1):
        assert auth.password_step("lan").headers["Location"] == "/login/code"
        assert auth.code_step(wrong_code(user)).status_code == 401
    assert auth.password_step("lan").headers["Location"] == "/login/code"
    auth.code_step(wrong_code(user))
    assert reload(user).locked_until is not None


def test_wrong_passwords_and_wrong_codes_share_one_limit(app, make_user, auth):
    user = make_user("admin", username="nam")
    limit = app.config["CASEWORK_LOGIN_MAX_FAILURES"]
    for _ in range(limit - 1):
        assert auth.password_step("nam", "wrong password!").status_code == 401
    auth.password_step("nam")
    auth.code_step(wrong_code(user))
    assert reload(user).locked_until is not None


def test_a_code_cannot_be_used_twice(make_user, auth, client):
    user = make_user("supervisor", username="thu")
    code = current_code(user)
    assert auth.login("thu", otp=code).headers["Location"] == "/"
    auth.logout()
    auth.password_step("thu")
    again = auth.code_step(code)
    assert again.status_code == 401
    assert client.get("/").status_code == 302
    assert auth.code_step(current_code(user)).headers["Location"] == "/"  # the next step's code still works


def test_a_code_older_than_the_last_one_used_is_refused(make_user, auth):
    user = make_user("supervisor", username="thu")
    totp = pyotp.TOTP(user.totp_secret)
    now = totp.timecode(utcnow())
    assert auth.login("thu", otp=totp.generate_otp(now + 1)).headers["Location"] == "/"
    auth.logout()
    auth.password_step("thu")
    assert auth.code_step(totp.generate_otp(now)).status_code == 401


def test_a_recovery_code_works_once(make_user, auth, client):
    user = make_user("provincial_officer", username="bao")
    codes = second_factor.replace_recovery_codes(user)
    db.session.commit()
    assert len(codes) == 10 and len(set(codes)) == 10
    assert auth.login("bao", otp=codes[0]).headers["Location"] == "/"
    assert "Tổng quan cấp tỉnh" in client.get("/").get_data(as_text=True)
    auth.logout()
    auth.password_step("bao")
    assert auth.code_step(codes[0]).status_code == 401
    # Another code works, typed in capitals with spaces instead of hyphens.
    assert auth.code_step(codes[1].upper().replace("-", " ")).headers["Location"] == "/"
    db.session.expire_all()
    used = db.session.scalars(select(RecoveryCode).where(RecoveryCode.user_id == user.id)).all()
    assert sum(1 for r in used if r.used_at is not None) == 2


def test_recovery_codes_are_stored_as_argon2id_hashes(make_user):
    user = make_user("admin")
    codes = second_factor.replace_recovery_codes(user)
    db.session.commit()
    hashes = db.session.execute(text("SELECT code_hash FROM recovery_codes")).scalars().all()
    assert len(hashes) == 10
    assert all(h.startswith("$argon2id$") for h in hashes)
    plain = {c.replace("-", "") for c in codes}
    assert not any(p in h for h in hashes for p in plain)


# --- enrolment ----------------------------------------------------------------------------------------------------


def test_an_unenrolled_admin_enrols_then_sees_recovery_codes_once(app, make_user, auth, client):
    user = make_user("admin", username="nam", enrolled=False)
    response = auth.password_step("nam")
    assert response.headers["Location"] == "/login/enrol"
    assert client.get("/login/code").headers["Location"] == "/login/enrol"
    page = client.get("/login/enrol").get_data(as_text=True)
    secret = reload(user).totp_secret
    assert secret and reload(user).totp_enrolled_at is None
    uri = re.search(r"otpauth://totp/[^<\"\s]+", page).group(0).replace("&amp;", "&")
    assert parse_qs(urlsplit(uri).query)["secret"] == [secret]
    assert unquote(urlsplit(uri).path) == "/casework:nam"
    assert " ".join(secret[i : i + 4] for i in range(0, len(secret), 4)) in page
    assert "<svg" in page and "<script" not in page
    # The secret stays the same while the enrolment is unfinished (an app may have scanned it already).
    assert secret in client.get("/login/enrol").get_data(as_text=True)
    assert client.get("/").status_code == 302

    token = csrf_from(page)
    refused = client.post("/login/enrol", data={"csrf_token": token, "code": wrong_code(user)})
    assert refused.status_code == 401
    assert reload(user).totp_enrolled_at is None and reload(user).failed_logins == 1

    done = client.post("/login/enrol", data={"csrf_token": token, "code": pyotp.TOTP(secret).now()})
    assert done.status_code == 200
    shown = re.findall(r"<code>([2-9a-z]{4}(?:-[2-9a-z]{4}){3})</code>", done.get_data(as_text=True))
    assert len(shown) == 10
    assert "<h1>Quản trị</h1>" in client.get("/").get_data(as_text=True)
    assert reload(user).totp_enrolled_at is not None and reload(user).failed_logins == 0

    # Next time: the code step, where a shown recovery code works.
    auth.logout()
    assert auth.password_step("nam").headers["Location"] == "/login/code"
    assert client.get("/login/enrol").headers["Location"] == "/login/code"
    assert auth.code_step(shown[3]).headers["Location"] == "/"


def test_enrolment_needs_the_password_step_first(make_user, client):
    make_user("admin", username="nam", enrolled=False)
    response = client.get("/login/enrol")
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert reload(db.session.scalar(select(User).where(User.username == "nam"))).totp_secret is None


def test_an_account_created_in_the_web_form_enrols_at_first_sign_in(make_user, auth):
    user = make_user("supervisor", username="new", enrolled=False)
    assert user.totp_secret is None
    assert auth.password_step("new").headers["Location"] == "/login/enrol"


# --- the pending marker ---------------------------------------------------------------------------------------


def test_the_pending_marker_expires_after_five_minutes(make_user, auth, client):
    user = make_user("supervisor", username="thu")
    auth.password_step("thu")
    marker = session_of(client)["pending_sign_in"]
    assert 0 < marker["expires"] - time.time() <= 5 * 60
    token = auth.csrf("/login/code")
    with client.session_transaction() as session:
        session["pending_sign_in"] = {**marker, "expires": int(time.time()) - 1}
    response = client.post("/login/code", data={"csrf_token": token, "code": current_code(user)})
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert "pending_sign_in" not in session_of(client)
    assert 'class="flash flash-warning"' in client.get("/login").get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_the_pending_marker_dies_when_the_users_sessions_end(make_user, auth, client):
    user = make_user("supervisor", username="thu")
    auth.password_step("thu")
    operations.end_sessions(user)  # e.g. a password reset by an administrator
    db.session.commit()
    response = auth.code_step(current_code(user))
    assert response.headers["Location"] == "/login"
    assert client.get("/").status_code == 302


def test_a_forged_pending_marker_is_refused(make_user, auth, client):
    user = make_user("supervisor", username="thu")
    client.get("/login")
    with client.session_transaction() as session:
        session["pending_sign_in"] = {"user": str(user.id), "epoch": "guess", "expires": int(time.time()) + 60}
    assert client.get("/login/code").headers["Location"] == "/login"


# --- the API ----------------------------------------------------------------------------------------------------


def post_token(client, user, **extra):
    return client.post(f"{API}/tokens", json={"username": user.username, "password": TEST_PASSWORD, **extra})


def test_an_api_token_for_a_second_factor_role_needs_otp(client, make_user):
    user = make_user("auditor")
    missing = post_token(client, user)
    assert missing.status_code == 401 and missing.get_json()["error"]["code"] == "otp_required"
    assert "token" not in missing.get_json()
    wrong = post_token(client, user, otp=wrong_code(user))
    assert wrong.status_code == 401 and wrong.get_json()["error"]["code"] == "otp_invalid"
    assert reload(user).failed_logins == 1
    right = post_token(client, user, otp=current_code(user))
    assert right.status_code == 201, right.get_json()
    record = db.session.scalar(select(ApiToken).where(ApiToken.user_id == user.id))
    assert record.second_factor_at is not None
    assert reload(user).failed_logins == 0


def test_an_api_otp_is_accepted_once(client, make_user):
    user = make_user("supervisor")
    code = current_code(user)
    assert post_token(client, user, otp=code).status_code == 201
    again = post_token(client, user, otp=code)
    assert again.status_code == 401 and again.get_json()["error"]["code"] == "otp_invalid"


def test_wrong_api_otps_lock_the_account(app, client, make_user):
    user = make_user("admin")
    for _ in range(app.config["CASEWORK_LOGIN_MAX_FAILURES"] - 1):
        assert post_token(client, user, otp=wrong_code(user)).get_json()["error"]["code"] == "otp_invalid"
    assert post_token(client, user, otp=wrong_code(user)).get_json()["error"]["code"] == "account_locked"
    locked = post_token(client, user, otp=current_code(user))
    assert locked.status_code == 403 and locked.get_json()["error"]["code"] == "account_locked"


def test_the_api_refuses_recovery_codes_and_unenrolled_accounts(client, make_user):
    enrolled = make_user("admin")
    codes = second_factor.replace_recovery_codes(enrolled)
    db.session.commit()
    assert post_token(client, enrolled, otp=codes[0].replace("-", "")).get_json()["error"]["code"] == "otp_invalid"
    unenrolled = make_user("admin", enrolled=False)
    refused = post_token(client, unenrolled, otp="123456")
    assert refused.status_code == 403
    assert refused.get_json()["error"]["code"] == "second_factor_not_enrolled"


def test_a_social_workers_token_needs_no_otp_and_is_not_a_second_factor_check(client, make_user):
    user = make_user("social_worker")
    assert post_token(client, user).status_code == 201
    assert db.session.scalar(select(ApiToken.second_factor_at).where(ApiToken.user_id == user.id)) is None


def test_the_openapi_document_names_the_otp_codes(client):
    doc = client.get(f"{API}/openapi.json").get_json()
    responses = doc["paths"]["/tokens"]["post"]["responses"]
    for code in ("otp_required", "otp_invalid"):
        assert code in responses["401"]["description"]
    assert "reauth_required" in doc["info"]["description"]


# --- fresh second factor: a probe app with two guarded routes ---------------------------------------------------


@pytest.fixture
def probe(app, app_env):
    """An app on the same database with a page and an API route guarded by the freshness checks."""
    from casework.api import authenticate_bearer

    probe_app = build_app(app_env)

    @probe_app.route("/_probe/sensitive", methods=["GET", "POST"])
    @second_factor.requires_fresh_second_factor
    def probe_sensitive():
        return "sensitive action done"

    def probe_api():
        refused = authenticate_bearer()
        if refused is not None:
            return refused
        second_factor.require_fresh_second_factor_api()
        return jsonify(done=True)

    probe_app.add_url_rule(f"{API}/_probe/sensitive", endpoint="api.probe_sensitive", view_func=probe_api)
    yield probe_app
    with probe_app.app_context():
        db.engine.dispose()


def test_a_fresh_web_check_lets_the_action_through_and_an_old_one_asks_again(probe, make_user):
    user = make_user("supervisor", username="thu")
    client = probe.test_client()
    auth = AuthActions(client)
    auth.login("thu")
    assert client.get("/_probe/sensitive").get_data(as_text=True) == "sensitive action done"

    minutes = probe.config["CASEWORK_REAUTH_MINUTES"]
    assert minutes == 15
    with client.session_transaction() as session:
        session["second_factor_at"] = int(time.time()) - minutes * 60 - 5
    asked = client.get("/_probe/sensitive?page=2")
    assert asked.status_code == 302
    assert asked.headers["Location"] == "/reauth?next=/_probe/sensitive?page%3D2"

    page = client.get(asked.headers["Location"]).get_data(as_text=True)
    wrong = client.post(
        asked.headers["Location"],
        data={"csrf_token": csrf_from(page), "password": TEST_PASSWORD, "code": wrong_code(user)},
    )
    assert wrong.status_code == 401
    assert reload(user).failed_logins == 1
    confirmed = client.post(
        asked.headers["Location"],
        data={"csrf_token": csrf_from(page), "password": TEST_PASSWORD, "code": current_code(user)},
    )
    assert confirmed.status_code == 302
    assert confirmed.headers["Location"] == "/_probe/sensitive?page=2"
    assert client.get("/_probe/sensitive").get_data(as_text=True) == "sensitive action done"
    assert reload(user).failed_logins == 0


def test_a_form_posted_with_an_old_check_returns_to_its_page_after_reauth(probe, make_user):
    make_user("supervisor", username="thu")
    client = probe.test_client()
    AuthActions(client).login("thu")
    token = csrf_from(client.get("/").get_data(as_text=True))
    with client.session_transaction() as session:
        session["second_factor_at"] = int(time.time()) - 3600
    response = client.post(
        "/_probe/sensitive", data={"csrf_token": token}, headers={"Referer": "http://localhost/jobs/?x=1"}
    )
    assert response.headers["Location"] == "/reauth?next=/jobs/?x%3D1"


def test_reauth_with_a_wrong_password_counts_and_repeated_failures_sign_out(probe, make_user):
    user = make_user("auditor", username="lan")
    client = probe.test_client()
    AuthActions(client).login("lan")
    page = client.get("/reauth").get_data(as_text=True)
    limit = probe.config["CASEWORK_LOGIN_MAX_FAILURES"]
    for _ in range(limit - 1):
        answer = client.post("/reauth", data={"csrf_token": csrf_from(page), "password": "nope", "code": "123456"})
        assert answer.status_code == 401
    last = client.post("/reauth", data={"csrf_token": csrf_from(page), "password": "nope", "code": "123456"})
    assert last.headers["Location"] == "/login"
    assert reload(user).locked_until is not None
    assert client.get("/").status_code == 302  # signed out


def test_a_user_without_a_second_factor_is_refused_the_guarded_action(probe, make_user):
    make_user("social_worker", username="hana")
    client = probe.test_client()
    AuthActions(client).login("hana")
    assert client.get("/_probe/sensitive").status_code == 403
    assert client.get("/reauth").status_code == 403


def test_the_reauth_window_follows_the_setting(probe, make_user, monkeypatch):
    make_user("supervisor", username="thu")
    client = probe.test_client()
    AuthActions(client).login("thu")
    with client.session_transaction() as session:
        session["second_factor_at"] = int(time.time()) - 10 * 60
    assert client.get("/_probe/sensitive").status_code == 200
    monkeypatch.setitem(probe.config, "CASEWORK_REAUTH_MINUTES", 5)
    assert client.get("/_probe/sensitive").status_code == 302


def test_api_answers_reauth_required_after_the_window(probe, make_user):
    user = make_user("supervisor")
    client = probe.test_client()
    token = post_token(client, user, otp=current_code(user)).get_json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get(f"{API}/_probe/sensitive", headers=headers).get_json() == {"done": True}

    record = db.session.scalar(select(ApiToken).where(ApiToken.user_id == user.id))
    record.second_factor_at = utcnow() - timedelta(minutes=probe.config["CASEWORK_REAUTH_MINUTES"], seconds=5)
    db.session.commit()
    stale = client.get(f"{API}/_probe/sensitive", headers=headers)
    assert stale.status_code == 401
    assert stale.get_json()["error"]["code"] == "reauth_required"
    assert client.get(f"{API}/me", headers=headers).status_code == 200  # the token itself still works

    fresh = post_token(client, user, otp=current_code(user)).get_json()["token"]
    answer = client.get(f"{API}/_probe/sensitive", headers={"Authorization": f"Bearer {fresh}"})
    assert answer.get_json() == {"done": True}


def test_api_refuses_the_guarded_action_to_users_without_a_second_factor(probe, make_user):
    user = make_user("social_worker")
    client = probe.test_client()
    token = post_token(client, user).get_json()["token"]
    refused = client.get(f"{API}/_probe/sensitive", headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 403
    assert refused.get_json()["error"]["code"] == "second_factor_required"


# --- storage ------------------------------------------------------------------------------------------------------


def test_the_totp_secret_is_stored_encrypted(make_user):
    user = make_user("auditor", username="lan")
    secret = user.totp_secret
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    row = db.session.execute(text("SELECT * FROM users WHERE username = 'lan'")).mappings().one()
    assert row["totp_secret_ct"].startswith("v1:")
    for column, value in row.items():
        assert secret not in str(value), f"the TOTP secret is readable in users.{column}"
    assert reload(user).totp_secret == secret


# --- the CLI and the demo ---------------------------------------------------------------------------------------


def create_with_cli(app_env, username: str, role: str, *communes: str):
    args = ["users", "create", "--username", username, "--role", role, "--province", "22", "--password-stdin"]
    for commune in communes:
        args += ["--commune", commune]
    return casework_cli(app_env, *args, stdin=TEST_PASSWORD + "\n")


def test_users_create_prints_an_otpauth_uri_for_an_auditor_and_not_for_a_social_worker(app, app_env):
    auditor = create_with_cli(app_env, "cliauditor", "auditor")
    assert auditor.returncode == 0, auditor.stderr
    uri = re.search(r"otpauth://totp/\S+", auditor.stdout).group(0)
    user = db.session.scalar(select(User).where(User.username == "cliauditor"))
    assert parse_qs(urlsplit(uri).query)["secret"] == [user.totp_secret]
    assert user.totp_enrolled_at is None  # confirmed with a code at the first sign-in

    worker = create_with_cli(app_env, "cliworker", "social_worker", "06970")
    assert worker.returncode == 0, worker.stderr
    assert "otpauth://" not in worker.stdout + worker.stderr
    assert db.session.scalar(select(User).where(User.username == "cliworker")).totp_secret is None


def test_reset_2fa_forgets_the_second_factor_and_ends_sessions_and_tokens(app, app_env, make_user, api_token, auth):
    user = make_user("admin", username="lost")
    old_secret = user.totp_secret
    second_factor.replace_recovery_codes(user)
    db.session.commit()
    token = api_token(user)
    auth.login("lost")
    result = casework_cli(app_env, "users", "reset-2fa", "lost")
    assert result.returncode == 0, result.stderr
    assert "otpauth://" in result.stdout
    user = reload(user)
    assert user.totp_secret not in (None, old_secret)
    assert user.totp_enrolled_at is None
    assert db.session.scalars(select(RecoveryCode).where(RecoveryCode.user_id == user.id)).all() == []
    assert auth.client.get("/").status_code == 302
    assert auth.client.get(f"{API}/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert auth.password_step("lost").headers["Location"] == "/login/enrol"
    assert casework_cli(app_env, "users", "reset-2fa", "nobody-here").returncode != 0


def test_demo_prints_the_fixed_code_keys_and_demo_code_prints_the_current_code(app, app_env):
    from casework import demo

    seeded = casework_cli(app_env, "demo")
    assert seeded.returncode == 0, seeded.stderr
    for username, secret in demo.DEMO_TOTP_SECRETS.items():
        assert re.search(rf"^\s+{username}\s.*{secret}$", seeded.stdout, re.MULTILINE), username
    assert "casework demo code" in seeded.stdout
    assert re.search(r"^\s+worker\s+social_worker\s*$", seeded.stdout, re.MULTILINE)  # no code key

    code = casework_cli(app_env, "demo", "code", "supervisor")
    assert code.returncode == 0, code.stderr
    totp = pyotp.TOTP(demo.DEMO_TOTP_SECRETS["supervisor"])
    assert totp.verify(code.stdout.strip(), valid_window=1)
    assert casework_cli(app_env, "demo", "code", "worker").returncode != 0


def test_demo_code_refuses_a_real_secret_and_production(app, app_env, make_user):
    make_user("admin", username="admin")  # a real account that happens to bear a demo name
    refused = casework_cli(app_env, "demo", "code", "admin")
    assert refused.returncode != 0 and "demo" in refused.stderr
    production = {
        **app_env,
        "CASEWORK_CONFIG": "production",
        "CASEWORK_ALLOW_SQLITE": "1",
        "CASEWORK_MASTER_KEY_FILE": str(Path(app_env["CASEWORK_INSTANCE"]) / "master.key"),
    }
    in_production = casework_cli(production, "demo", "code", "supervisor")
    assert in_production.returncode != 0
    assert "production" in in_production.stderr


# --- configuration ------------------------------------------------------------------------------------------------


def test_the_reauth_window_defaults_to_15_minutes_and_is_configurable(tmp_path):
    with environment({"CASEWORK_INSTANCE": str(tmp_path)}):
        assert casework_config.load().flask_config()["CASEWORK_REAUTH_MINUTES"] == 15
    with environment({"CASEWORK_INSTANCE": str(tmp_path), "CASEWORK_REAUTH_MINUTES": "5"}):
        assert casework_config.load().flask_config()["CASEWORK_REAUTH_MINUTES"] == 5
    with environment({"CASEWORK_REAUTH_MINUTES": "0"}), pytest.raises(casework_config.ConfigError, match="REAUTH"):
        casework_config.load().validate()


# --- audit ----------------------------------------------------------------------------------------------------------


@pytest.fixture
def audited(monkeypatch):
    """Capture every ``audit.record`` call (the real trail is tested with the audit area)."""
    import casework.audit

    events: list[dict] = []

    def record(action, *, object_type=None, object_id=None, fields=(), details=None, actor=None):
        if not action.startswith("auth."):
            return  # other areas' events (automatic row events, for instance) are not under test here
        events.append(
            {
                "action": action,
                "object_type": object_type,
                "object_id": object_id,
                "actor": actor.id if actor is not None else None,
                "details": dict(details or {}),
                "in_transaction": db.session().in_transaction(),
            }
        )

    monkeypatch.setattr(casework.audit, "record", record)
    return events


def test_sign_in_failure_lock_and_sign_out_are_audited(app, make_user, auth, audited):
    user = make_user("supervisor", username="thu")
    auth.password_step("nobody-here", "whatever pass")
    auth.password_step("thu", "wrong password!")
    auth.password_step("thu")
    auth.code_step(wrong_code(user))
    auth.code_step(current_code(user))
    auth.logout()
    actions = [e["action"] for e in audited]
    assert actions == [
        "auth.sign_in_failed",
        "auth.sign_in_failed",
        "auth.second_factor_failed",
        "auth.sign_in",
        "auth.sign_out",
    ]
    unknown, wrong, code, signed_in, signed_out = audited
    assert (unknown["object_type"], unknown["object_id"], unknown["actor"]) == ("user", None, None)
    assert unknown["details"]["username"] == "nobody-here"
    for event in (wrong, code, signed_in, signed_out):
        assert (event["object_type"], event["object_id"], event["actor"]) == ("user", user.id, user.id)
        assert event["details"]["username"] == "thu"
    assert signed_in["details"]["second_factor"] == "totp"
    assert all(e["in_transaction"] for e in audited)  # recorded before the commit that keeps the count

    audited.clear()
    for _ in range(app.config["CASEWORK_LOGIN_MAX_FAILURES"]):
        auth.password_step("thu", "wrong password!")
    assert [e["action"] for e in audited][-2:] == ["auth.sign_in_failed", "auth.locked"]


def test_api_token_sign_in_failure_and_revocation_are_audited(client, make_user, audited):
    user = make_user("auditor")
    post_token(client, user, otp=wrong_code(user))
    token = post_token(client, user, otp=current_code(user)).get_json()["token"]
    client.delete(f"{API}/tokens/current", headers={"Authorization": f"Bearer {token}"})
    assert [e["action"] for e in audited] == ["auth.second_factor_failed", "auth.sign_in", "auth.sign_out"]
    assert audited[1]["details"] == {"username": user.username, "channel": "api", "second_factor": "totp"}
    assert all(e["object_id"] == user.id for e in audited)
