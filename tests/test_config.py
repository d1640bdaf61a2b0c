"""The production configuration refuses to start without its secrets, naming what is missing."""

from __future__ import annotations

import os

import pytest

import config as casework_config
from casework import create_app
from casework.security.keys import write_master_key_file
from tests.conftest import casework_cli, environment

PRODUCTION_SECRET = "p" * 48


@pytest.fixture
def clean_env():
    """Run with no CASEWORK_* variable set."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("CASEWORK_")}
    for key in saved:
        del os.environ[key]
    yield
    os.environ.update(saved)


def test_production_refuses_default_secret_and_names_every_missing_setting(clean_env, tmp_path):
    env = {"CASEWORK_CONFIG": "production", "CASEWORK_INSTANCE": str(tmp_path)}
    with environment(env), pytest.raises(casework_config.ConfigError) as refused:
        create_app()
    message = str(refused.value)
    assert "CASEWORK_SECRET_KEY" in message
    assert "CASEWORK_DATABASE_URL" in message
    assert "CASEWORK_MASTER_KEY_FILE" in message


def test_production_refuses_sqlite_unless_allowed(clean_env, tmp_path):
    key = tmp_path / "master.key"
    write_master_key_file(key)
    env = {
        "CASEWORK_CONFIG": "production",
        "CASEWORK_SECRET_KEY": PRODUCTION_SECRET,
        "CASEWORK_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "CASEWORK_MASTER_KEY_FILE": str(key),
    }
    with environment(env), pytest.raises(casework_config.ConfigError, match="CASEWORK_ALLOW_SQLITE"):
        create_app()
    with environment({**env, "CASEWORK_ALLOW_SQLITE": "1"}):
        app = create_app()
    assert app.config["SESSION_COOKIE_SECURE"] is True


def test_production_refuses_a_key_file_that_does_not_exist(clean_env, tmp_path):
    env = {
        "CASEWORK_CONFIG": "production",
        "CASEWORK_SECRET_KEY": PRODUCTION_SECRET,
        "CASEWORK_DATABASE_URL": "postgresql+psycopg://casework@db/casework",
        "CASEWORK_MASTER_KEY_FILE": str(tmp_path / "absent.key"),
    }
    with environment(env), pytest.raises(casework_config.ConfigError) as refused:
        create_app()
    assert "CASEWORK_MASTER_KEY_FILE" in str(refused.value)
    assert "CASEWORK_SECRET_KEY" not in str(refused.value)


def test_production_refuses_a_short_secret(clean_env, tmp_path):
    key = tmp_path / "master.key"
    write_master_key_file(key)
    env = {
        "CASEWORK_CONFIG": "production",
        "CASEWORK_SECRET_KEY": "short",
        "CASEWORK_DATABASE_URL": "postgresql+psycopg://casework@db/casework",
        "CASEWORK_MASTER_KEY_FILE": str(key),
    }
    with environment(env), pytest.raises(casework_config.ConfigError, match="CASEWORK_SECRET_KEY"):
        create_app()


def test_serve_in_production_without_secrets_exits_non_zero_naming_the_setting(tmp_path):
    result = casework_cli({"CASEWORK_CONFIG": "production", "CASEWORK_INSTANCE": str(tmp_path)}, "serve", timeout=60)
    assert result.returncode != 0
    assert "CASEWORK_SECRET_KEY" in result.stderr


def test_unknown_configuration_name_is_refused(clean_env):
    with environment({"CASEWORK_CONFIG": "staging"}), pytest.raises(casework_config.ConfigError, match="staging"):
        casework_config.load()


def test_a_malformed_number_names_its_setting(clean_env):
    env = {"CASEWORK_SESSION_IDLE_MINUTES": "half an hour"}
    with environment(env), pytest.raises(casework_config.ConfigError, match="CASEWORK_SESSION_IDLE_MINUTES"):
        casework_config.load()


def test_embedded_defaults_need_no_setting(clean_env, tmp_path):
    with environment({"CASEWORK_INSTANCE": str(tmp_path)}):
        settings = casework_config.load()
    assert settings.name == "embedded"
    assert settings.sqlalchemy_url == f"sqlite:///{tmp_path / 'casework.sqlite3'}"
    assert settings.key_file == tmp_path / "master.key"
    assert settings.redis_url is None
    assert settings.session_idle_minutes == 30
