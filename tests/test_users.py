"""Creating accounts: every rule refuses bad input and writes nothing; the CLI and the admin pages share them."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from casework.auth import operations
from casework.auth.models import User
from casework.errors import ValidationFailed
from casework.extensions import db
from tests.conftest import TEST_PASSWORD, AuthActions, casework_cli, csrf_from


def user_count() -> int:
    return db.session.scalar(select(func.count(User.id)))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"username": "X"}, "username"),
        ({"username": "has space"}, "username"),
        ({"role": "superuser"}, "role"),
        ({"password": "short"}, "password"),
        ({"password": " padded password "}, "password"),
        ({"province_code": "99"}, "province"),
        ({"commune_codes": ()}, "communes"),
        ({"commune_codes": ("99999",)}, "communes"),
        ({"commune_codes": ("00004",)}, "communes"),  # Phường Ba Đình, Hà Nội (01): outside Quảng Ninh
        ({"role": "provincial_officer", "commune_codes": ("06970",)}, "communes"),
    ],
)
def test_each_rule_refuses_and_saves_nothing(app, kwargs, field):
    values = {
        "username": "newuser",
        "password": TEST_PASSWORD,
        "role": "social_worker",
        "province_code": "22",
        "commune_codes": ("06970",),
    }
    values.update(kwargs)
    with pytest.raises(ValidationFailed) as refused:
        operations.create_user(**values)
    assert field in refused.value.errors
    db.session.rollback()
    assert user_count() == 0


def test_a_commune_outside_the_users_province_is_refused_with_its_code(app):
    with pytest.raises(ValidationFailed) as refused:
        operations.create_user(
            username="outside",
            password=TEST_PASSWORD,
            role="supervisor",
            province_code="22",
            commune_codes=("06970", "00004"),
        )
    messages = [str(m) for m in refused.value.errors["communes"]]
    assert any("00004" in m and "22" in m for m in messages)


def test_a_username_is_unique_whatever_its_case(make_user):
    make_user(username="duplicate")
    with pytest.raises(ValidationFailed) as refused:
        operations.create_user(username="Duplicate", password=TEST_PASSWORD, role="auditor", province_code="22")
    assert "username" in refused.value.errors


def test_a_valid_user_keeps_its_communes(make_user):
    user = make_user("supervisor", communes=("06970", "06979"))
    assert user.commune_codes == ["06970", "06979"]
    assert user.province_code == "22"


def test_cli_creates_a_user_reading_the_password_from_stdin(app, app_env):
    result = casework_cli(
        app_env,
        "users",
        "create",
        "--username",
        "clihoa",
        "--role",
        "social_worker",
        "--province",
        "22",
        "--commune",
        "06970",
        "--password-stdin",
        stdin=TEST_PASSWORD + "\n",
    )
    assert result.returncode == 0, result.stderr
    assert "clihoa" in result.stdout
    db.session.expire_all()
    user = db.session.scalar(select(User).where(User.username == "clihoa"))
    assert user.commune_codes == ["06970"]
    assert TEST_PASSWORD not in result.stdout + result.stderr


def test_cli_refuses_a_commune_outside_the_province_with_a_clear_message(app, app_env):
    result = casework_cli(
        app_env,
        "users",
        "create",
        "--username",
        "clibad",
        "--role",
        "social_worker",
        "--province",
        "22",
        "--commune",
        "00004",
        "--password-stdin",
        stdin=TEST_PASSWORD + "\n",
    )
    assert result.returncode != 0
    assert "00004" in result.stderr
    db.session.expire_all()
    assert user_count() == 0


def test_cli_refuses_an_unknown_role_and_missing_options(app, app_env):
    bad_role = casework_cli(
        app_env,
        "users",
        "create",
        "--username",
        "x1x",
        "--role",
        "king",
        "--province",
        "22",
        "--password-stdin",
        stdin=TEST_PASSWORD,
    )
    assert bad_role.returncode == 2
    assert "king" in bad_role.stderr
    missing = casework_cli(app_env, "users", "create", "--username", "x2x", "--password-stdin", stdin=TEST_PASSWORD)
    assert missing.returncode == 2
    assert "--role" in missing.stderr


def test_every_command_has_help(app_env):
    for command in (
        ["--help"],
        ["init", "--help"],
        ["users", "create", "--help"],
        ["serve", "--help"],
        ["worker", "--help"],
        ["demo", "--help"],
        ["units", "merge", "--help"],
    ):
        result = casework_cli(app_env, *command, timeout=60)
        assert result.returncode == 0, (command, result.stderr)
        assert "Usage:" in result.stdout


def _sign_in(client, username):
    response = AuthActions(client).login(username)  # password, and the code for roles with a second factor
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_admin_creates_a_user_in_their_province_through_the_form(make_user, client):
    make_user("admin", username="boss")
    _sign_in(client, "boss")
    page = client.get("/admin/users/new").get_data(as_text=True)
    assert "Xã Ba Chẽ (06970)" in page
    response = client.post(
        "/admin/users/new",
        data={
            "csrf_token": csrf_from(page),
            "username": "formuser",
            "full_name": "Đỗ Thị Mai",
            "role": "social_worker",
            "communes": ["06970"],
            "password": TEST_PASSWORD,
            "confirm": TEST_PASSWORD,
        },
    )
    assert response.status_code == 302
    db.session.expire_all()
    created = db.session.scalar(select(User).where(User.username == "formuser"))
    assert created.province_code == "22" and created.commune_codes == ["06970"]


def test_admin_form_errors_show_next_to_the_field_and_save_nothing(make_user, client):
    make_user("admin", username="boss2")
    _sign_in(client, "boss2")
    page = client.get("/admin/users/new").get_data(as_text=True)
    response = client.post(
        "/admin/users/new",
        data={
            "csrf_token": csrf_from(page),
            "username": "nocommune",
            "role": "social_worker",
            "password": TEST_PASSWORD,
            "confirm": TEST_PASSWORD,
        },
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'id="communes-errors"' in html
    assert "Vai trò này phải gắn với ít nhất một xã, phường." in html
    db.session.expire_all()
    assert db.session.scalar(select(User).where(User.username == "nocommune")) is None


def test_admin_cannot_open_an_account_of_another_province(make_user, client):
    make_user("admin", username="qnadmin")
    hanoi = make_user("social_worker", username="hanoiworker", province="01", communes=("00004",))
    _sign_in(client, "qnadmin")
    assert client.get(f"/admin/users/{hanoi.id}").status_code == 404
    assert "hanoiworker" not in client.get("/admin/users").get_data(as_text=True)


@pytest.mark.parametrize("role", ["social_worker", "supervisor", "provincial_officer", "committee_member", "auditor"])
def test_only_admins_reach_user_administration(make_user, client, role):
    make_user(role, username="someone")
    _sign_in(client, "someone")
    assert client.get("/admin/users").status_code == 403
    assert client.get("/admin/users/new").status_code == 403


def test_admin_unlocks_and_deactivates_an_account(make_user, client):
    admin = make_user("admin", username="unlocker")
    target = make_user(username="lockedout")
    target.locked_until = admin.created_at.replace(year=admin.created_at.year + 1)
    db.session.commit()
    _sign_in(client, "unlocker")
    page = client.get(f"/admin/users/{target.id}").get_data(as_text=True)
    assert client.post(f"/admin/users/{target.id}/unlock", data={"csrf_token": csrf_from(page)}).status_code == 302
    assert client.post(f"/admin/users/{target.id}/active", data={"csrf_token": csrf_from(page)}).status_code == 302
    db.session.expire_all()
    refreshed = db.session.get(User, target.id)
    assert refreshed.locked_until is None
    assert refreshed.active is False
