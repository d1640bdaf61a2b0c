"""The JSON door at /api/v1: bearer tokens, the JSON error shape, reference data, OpenAPI, jobs; and /healthz."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import UTC, datetime, timedelta

from flask import Flask
from sqlalchemy import select

from tests.conftest import TEST_PASSWORD

API = "/api/v1"
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
CONVERTER_RE = re.compile(r"<(?:[^<>:]+:)?([^<>:]+)>")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(response, status: int, code: str) -> dict:
    """Check the status and the JSON error shape ``{"error": {"code", "message"}}``; return the error."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:500])
    assert response.is_json, response.content_type
    body = response.get_json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"], error
    return error


def post_token(client, username: str, password=TEST_PASSWORD, **kwargs):
    return client.post(f"{API}/tokens", json={"username": username, "password": password}, **kwargs)


def parse_iso(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None, f"{value!r} names no time zone"
    return parsed


# --- POST /api/v1/tokens --------------------------------------------------------------------------------------------


def test_correct_credentials_get_a_token_that_expires_after_the_configured_hours(app, client, make_user):
    user = make_user()
    before = datetime.now(UTC)
    response = post_token(client, user.username)
    assert response.status_code == 201
    body = response.get_json()
    assert isinstance(body["token"], str) and len(body["token"]) >= 32
    expires_at = parse_iso(body["expires_at"])
    assert expires_at > datetime.now(UTC)
    expected = before + timedelta(hours=app.config["CASEWORK_API_TOKEN_HOURS"])
    assert abs(expires_at - expected) < timedelta(minutes=2)


def test_each_sign_in_gets_a_different_token(client, make_user):
    user = make_user()
    first = post_token(client, user.username).get_json()["token"]
    second = post_token(client, user.username).get_json()["token"]
    assert first != second


def test_the_database_keeps_only_a_sha256_digest_of_the_token(client, make_user):
    from casework.auth.models import ApiToken
    from casework.extensions import db

    user = make_user()
    token = post_token(client, user.username).get_json()["token"]
    rows = db.session.execute(select(ApiToken.__table__)).mappings().all()
    assert len(rows) == 1
    assert rows[0]["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    for row in rows:
        for column, value in row.items():
            assert token not in str(value), f"the plain token is stored in api_tokens.{column}"


def test_wrong_password_is_refused_with_invalid_credentials(client, make_user):
    user = make_user()
    response = post_token(client, user.username, "wrong password!")
    error = assert_error(response, 401, "invalid_credentials")
    assert "token" not in response.get_json()
    assert set(error) == {"code", "message"}


def test_unknown_user_gets_the_same_answer_as_a_wrong_password(client, make_user):
    user = make_user()
    wrong_password = post_token(client, user.username, "wrong password!")
    unknown_user = post_token(client, "nobody-here", "wrong password!")
    assert_error(unknown_user, 401, "invalid_credentials")
    assert unknown_user.get_json() == wrong_password.get_json()


def test_a_body_that_is_not_json_is_a_bad_request(client, make_user):
    user = make_user()
    not_json = client.post(f"{API}/tokens", data="username=x&password=y", content_type="application/json")
    assert_error(not_json, 400, "bad_request")
    form = client.post(f"{API}/tokens", data={"username": user.username, "password": TEST_PASSWORD})
    assert_error(form, 400, "bad_request")
    empty = client.post(f"{API}/tokens")
    assert_error(empty, 400, "bad_request")


def test_a_json_array_or_scalar_is_a_bad_request(client, make_user):
    user = make_user()
    assert_error(client.post(f"{API}/tokens", json=[user.username, TEST_PASSWORD]), 400, "bad_request")
    assert_error(client.post(f"{API}/tokens", json="hello"), 400, "bad_request")


def test_a_missing_field_is_a_validation_failure_naming_the_field(client, make_user):
    user = make_user()
    no_password = client.post(f"{API}/tokens", json={"username": user.username})
    error = assert_error(no_password, 422, "validation_failed")
    assert "password" in error["fields"]
    no_username = client.post(f"{API}/tokens", json={"password": TEST_PASSWORD})
    error = assert_error(no_username, 422, "validation_failed")
    assert "username" in error["fields"]
    assert_error(client.post(f"{API}/tokens", json={}), 422, "validation_failed")


def test_a_password_that_is_not_a_string_is_a_validation_failure(client, make_user):
    user = make_user()
    for value in (12345, ["x"], {"x": 1}, True):
        response = post_token(client, user.username, value)
        error = assert_error(response, 422, "validation_failed")
        assert "password" in error["fields"]
    # A non-string username is refused the same way.
    assert_error(post_token(client, 42), 422, "validation_failed")


def test_repeated_failures_lock_the_account_even_against_the_right_password(app, client, make_user):
    user = make_user()
    max_failures = app.config["CASEWORK_LOGIN_MAX_FAILURES"]
    assert max_failures == 5  # the documented default
    for _ in range(max_failures):
        assert_error(post_token(client, user.username, "wrong password!"), 401, "invalid_credentials")
    locked = post_token(client, user.username)
    assert_error(locked, 403, "account_locked")
    assert "token" not in locked.get_json()


def test_fewer_failures_than_the_limit_do_not_lock_and_success_resets_the_count(app, client, make_user):
    user = make_user()
    max_failures = app.config["CASEWORK_LOGIN_MAX_FAILURES"]
    for _ in range(max_failures - 1):
        assert_error(post_token(client, user.username, "wrong password!"), 401, "invalid_credentials")
    assert post_token(client, user.username).status_code == 201
    # The count starts again: as many failures as before still do not lock.
    for _ in range(max_failures - 1):
        assert_error(post_token(client, user.username, "wrong password!"), 401, "invalid_credentials")
    assert post_token(client, user.username).status_code == 201


def test_the_token_endpoint_is_rate_limited_per_address(app, client, make_user, monkeypatch):
    user = make_user()
    monkeypatch.setitem(app.config, "CASEWORK_LOGIN_RATE_LIMIT", "3 per minute")
    for _ in range(3):
        assert_error(post_token(client, "nobody-here", "wrong password!"), 401, "invalid_credentials")
    limited = post_token(client, user.username)  # even the right password
    assert_error(limited, 429, "rate_limited")
    assert "token" not in limited.get_json()
    assert int(limited.headers["Retry-After"]) > 0
    # Another address is not held back by this one's attempts.
    elsewhere = post_token(client, user.username, environ_base={"REMOTE_ADDR": "192.0.2.77"})
    assert elsewhere.status_code == 201, elsewhere.get_json()


# --- bearer authentication --------------------------------------------------------------------------------------


def test_me_without_a_token_is_refused_as_token_missing(client):
    assert_error(client.get(f"{API}/me"), 401, "token_missing")
    assert_error(client.get(f"{API}/me", headers={"Authorization": "Bearer "}), 401, "token_missing")
    assert_error(client.get(f"{API}/me", headers={"Authorization": "Basic dXNlcjpwYXNz"}), 401, "token_missing")


def test_a_garbage_or_tampered_token_is_refused_as_token_invalid(client, make_user, api_token):
    token = api_token(make_user())
    for garbage in ("garbage", "cw_" + "A" * 43, token[:-1] + ("A" if token[-1] != "A" else "B"), "cw_" + "x" * 500):
        assert_error(client.get(f"{API}/me", headers=bearer(garbage)), 401, "token_invalid")


def test_me_with_a_valid_token_describes_the_caller(client, make_user, api_token):
    user = make_user("supervisor", communes=("06970", "06652"), full_name="Nguyễn Thị Lan")
    token = api_token(user)
    response = client.get(f"{API}/me", headers=bearer(token))
    assert response.status_code == 200
    body = response.get_json()
    assert body["id"] == str(user.id)
    assert body["username"] == user.username
    assert body["full_name"] == "Nguyễn Thị Lan"
    assert body["role"] == "supervisor"
    assert body["province"] == "22"
    assert sorted(body["communes"]) == ["06652", "06970"]
    assert parse_iso(body["token_expires_at"]) > datetime.now(UTC)
    assert token not in response.get_data(as_text=True)


def test_the_bearer_scheme_name_is_case_insensitive(client, make_user, api_token):
    token = api_token(make_user())
    assert client.get(f"{API}/me", headers={"Authorization": f"bearer {token}"}).status_code == 200


def test_a_web_session_cookie_alone_does_not_authenticate_the_api(client, make_user, auth):
    user = make_user()
    signed_in = auth.login(user.username)
    assert signed_in.status_code == 302, signed_in.get_data(as_text=True)[:500]
    assert client.get("/").status_code == 200  # the cookie does sign the browser in
    assert_error(client.get(f"{API}/me"), 401, "token_missing")
    assert_error(client.get(f"{API}/provinces"), 401, "token_missing")
    assert_error(client.delete(f"{API}/tokens/current"), 401, "token_missing")


def test_a_revoked_token_stops_working_and_other_tokens_do_not(client, make_user, api_token):
    user = make_user()
    token, other = api_token(user), api_token(user)
    assert client.get(f"{API}/me", headers=bearer(token)).status_code == 200
    revoked = client.delete(f"{API}/tokens/current", headers=bearer(token))
    assert revoked.status_code == 204
    assert revoked.get_data() == b""
    assert_error(client.get(f"{API}/me", headers=bearer(token)), 401, "token_invalid")
    assert_error(client.delete(f"{API}/tokens/current", headers=bearer(token)), 401, "token_invalid")
    assert client.get(f"{API}/me", headers=bearer(other)).status_code == 200


def test_an_expired_token_is_refused(client, make_user, api_token):
    from casework.auth.models import ApiToken
    from casework.extensions import db

    user = make_user()
    token = api_token(user)
    assert client.get(f"{API}/me", headers=bearer(token)).status_code == 200
    record = db.session.scalar(select(ApiToken).where(ApiToken.user_id == user.id))
    record.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    db.session.commit()
    assert_error(client.get(f"{API}/me", headers=bearer(token)), 401, "token_invalid")


def test_a_deactivated_users_token_is_refused(client, make_user, api_token):
    from casework.auth import operations
    from casework.extensions import db

    user = make_user()
    token = api_token(user)
    assert client.get(f"{API}/me", headers=bearer(token)).status_code == 200
    operations.set_active(user, False)
    db.session.commit()
    assert_error(client.get(f"{API}/me", headers=bearer(token)), 401, "token_invalid")
    # Nor can the deactivated account get a new token.
    assert_error(post_token(client, user.username), 401, "invalid_credentials")


def test_an_inactive_users_unrevoked_token_is_still_refused(client, make_user, api_token):
    """Defence in depth: even a token that deactivation somehow failed to revoke does not work."""
    from casework.extensions import db

    user = make_user()
    token = api_token(user)
    user.active = False  # flipped directly: the token is not revoked
    db.session.commit()
    assert_error(client.get(f"{API}/me", headers=bearer(token)), 401, "token_invalid")


def test_every_route_but_the_public_ones_needs_a_token(app, client):
    """An anonymous caller gets 401 token_missing everywhere the OpenAPI document asks for a bearer token."""
    doc = client.get(f"{API}/openapi.json").get_json()
    for path, method in sorted(routed_operations(app)):
        operation = doc["paths"][path][method]
        url = API + re.sub(r"\{[^}]+\}", "x", path)
        response = client.open(url, method=method.upper())
        if operation.get("security") == []:
            assert response.status_code != 401, (method, path)
        else:
            assert_error(response, 401, "token_missing")


# --- errors -------------------------------------------------------------------------------------------------------


def test_an_unknown_api_path_is_a_json_404(client, make_user, api_token):
    assert_error(client.get(f"{API}/no-such-thing"), 404, "not_found")
    token = api_token(make_user())
    assert_error(client.get(f"{API}/no-such-thing", headers=bearer(token)), 404, "not_found")
    assert_error(client.get(f"{API}/provinces/22/communes/extra", headers=bearer(token)), 404, "not_found")


def test_a_wrong_method_is_a_json_405(client, make_user, api_token):
    token = api_token(make_user())
    assert_error(client.put(f"{API}/me", headers=bearer(token)), 405, "method_not_allowed")
    assert_error(client.put(f"{API}/me"), 405, "method_not_allowed")
    assert_error(client.get(f"{API}/tokens"), 405, "method_not_allowed")


def test_the_communes_of_an_unknown_province_are_a_404(client, make_user, api_token):
    token = api_token(make_user())
    assert_error(client.get(f"{API}/provinces/99/communes", headers=bearer(token)), 404, "not_found")


# --- reference data -----------------------------------------------------------------------------------------------


def test_the_34_provinces_are_listed(client, make_user, api_token):
    token = api_token(make_user())
    response = client.get(f"{API}/provinces", headers=bearer(token))
    assert response.status_code == 200
    items = response.get_json()["items"]
    assert len(items) == 34
    assert len({p["code"] for p in items}) == 34
    quang_ninh = [p for p in items if p["code"] == "22"]
    assert len(quang_ninh) == 1
    assert quang_ninh[0]["name"] == "Tỉnh Quảng Ninh"
    assert {"code": "22", "name": "Tỉnh Quảng Ninh"}.items() <= quang_ninh[0].items()


def test_the_communes_of_a_province_are_listed(client, make_user, api_token):
    token = api_token(make_user())
    response = client.get(f"{API}/provinces/22/communes", headers=bearer(token))
    assert response.status_code == 200
    items = response.get_json()["items"]
    assert all(c["province"] == "22" for c in items)
    ba_che = [c for c in items if c["code"] == "06970"]
    assert len(ba_che) == 1
    assert ba_che[0]["name"] == "Xã Ba Chẽ"
    assert ba_che[0]["type"] == "xa"


# --- OpenAPI --------------------------------------------------------------------------------------------------------


def routed_operations(flask_app: Flask) -> set[tuple[str, str]]:
    """``(path, method)`` of every route under /api/v1, the path as OpenAPI writes it (``{name}``, no prefix)."""
    operations = set()
    for rule in flask_app.url_map.iter_rules():
        if rule.rule != API and not rule.rule.startswith(API + "/"):
            continue
        path = CONVERTER_RE.sub(r"{\1}", rule.rule[len(API) :]) or "/"
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            operations.add((path, method.lower()))
    return operations


def documented_operations(doc: dict) -> set[tuple[str, str]]:
    return {(path, method) for path, item in doc["paths"].items() for method in item if method in HTTP_METHODS}


def test_the_openapi_document_is_public_and_openapi_3_1(client):
    response = client.get(f"{API}/openapi.json")
    assert response.status_code == 200
    assert response.is_json
    doc = response.get_json()
    assert doc["openapi"] == "3.1.0"
    assert doc["servers"] == [{"url": API}]  # the paths below are relative to the prefix the test strips
    assert doc["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}


def test_the_openapi_document_describes_exactly_the_routes_of_the_api(app, client):
    doc = client.get(f"{API}/openapi.json").get_json()
    routed = routed_operations(app)
    documented = documented_operations(doc)
    assert routed, "no route under /api/v1 was found"
    assert routed - documented == set(), "routes missing from the OpenAPI document"
    assert documented - routed == set(), "the OpenAPI document describes routes that do not exist"
    for path, method in sorted(documented):
        responses = doc["paths"][path][method].get("responses")
        assert isinstance(responses, dict) and responses, f"{method.upper()} {path} lists no responses"
        for status, response in responses.items():
            assert re.fullmatch(r"[1-5][0-9]{2}|default", status), (path, method, status)
            assert response.get("description"), (path, method, status)


def test_the_route_check_notices_an_undocumented_route(app, client):
    """The check above would fail if someone added a route without describing it."""
    doc = client.get(f"{API}/openapi.json").get_json()
    probe = Flask("probe")
    for rule in app.url_map.iter_rules():
        probe.url_map.add(rule.empty())
    probe.add_url_rule(f"{API}/cases/<uuid:case_id>/probe", "api.probe", lambda case_id: "", methods=["POST"])
    assert routed_operations(probe) - documented_operations(doc) == {("/cases/{case_id}/probe", "post")}
    doc["paths"]["/ghost"] = {"get": {"responses": {"200": {"description": "OK"}}}}
    assert documented_operations(doc) - routed_operations(app) == {("/ghost", "get")}


# --- /healthz -------------------------------------------------------------------------------------------------------


def test_healthz_reports_the_database_and_redis_without_sign_in(client, backend):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.is_json
    expected_redis = "not_configured" if backend == "sqlite" else "ok"
    assert response.get_json() == {"status": "ok", "database": "ok", "redis": expected_redis}


# --- jobs -----------------------------------------------------------------------------------------------------------


def test_an_unknown_job_is_a_404(client, make_user, api_token):
    token = api_token(make_user())
    assert_error(client.get(f"{API}/jobs/{uuid.uuid4()}", headers=bearer(token)), 404, "not_found")
    assert_error(client.get(f"{API}/jobs/not-a-uuid", headers=bearer(token)), 404, "not_found")


def test_a_job_is_shown_to_its_starter_and_hidden_from_everyone_else(client, make_user, api_token):
    from casework.extensions import db
    from casework.jobs.models import Job

    owner, other = make_user(), make_user()
    job = Job(task="locations.reload_units", created_by_id=owner.id, status="running", progress=40)
    db.session.add(job)
    db.session.commit()
    job_id = str(job.id)

    mine = client.get(f"{API}/jobs/{job_id}", headers=bearer(api_token(owner)))
    assert mine.status_code == 200
    body = mine.get_json()
    assert (body["id"], body["status"], body["progress"]) == (job_id, "running", 40)

    theirs = client.get(f"{API}/jobs/{job_id}", headers=bearer(api_token(other)))
    unknown = client.get(f"{API}/jobs/{uuid.uuid4()}", headers=bearer(api_token(other)))
    assert_error(theirs, 404, "not_found")
    assert theirs.get_json() == unknown.get_json()  # not even confirmed to exist
