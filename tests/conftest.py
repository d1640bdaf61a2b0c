"""The test harness: the suite runs against SQLite and a real PostgreSQL 15, with a real Redis.

Every test that uses ``app`` runs once per backend (``[sqlite]``, ``[postgresql]``). The SQLite app runs jobs inline
(no Redis, as ``make serve`` does); the PostgreSQL app is configured like production, with Redis, rq and a real
worker process. Servers come from Debian's packages (``scripts/ensure-test-services.sh`` installs them); when ``CI``
is set, a server that cannot start fails the run instead of skipping.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

import config as casework_config
from casework.auth.roles import SECOND_FACTOR_ROLES
from casework.dbtypes import utcnow
from tests.harness import FreshContextClient, environment  # noqa: F401 - re-exported for the tests
from tests.services import PostgresServer, RedisServer, ServiceUnavailable
from tests.stack import casework_env

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = [b for b in os.environ.get("CASEWORK_TEST_BACKENDS", "sqlite,postgresql").split(",") if b]
TEST_PASSWORD = "correct horse battery"
_db_counter = itertools.count(1)

# Tables that keep their rows between tests: the reference data loaded once per session.
REFERENCE_TABLES = {
    "data_keys",
    "provinces",
    "communes",
    "legacy_provinces",
    "legacy_districts",
    "legacy_wards",
    "legacy_mappings",
    "alembic_version",
    "audit_chain_head",  # its one row is reset to the genesis link instead
}


def unavailable(message: str):
    """Skip on a developer's machine; fail under CI, where every server must start."""
    if os.environ.get("CI"):
        pytest.fail(f"test service unavailable under CI: {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        server.start()
    except (ServiceUnavailable, OSError) as exc:
        server.stop()
        unavailable(f"PostgreSQL: {exc}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    try:
        server.start()
    except (ServiceUnavailable, OSError) as exc:
        unavailable(f"Redis: {exc}")
    yield server
    server.stop()


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def app_env(backend, tmp_path_factory, request) -> dict[str, str]:
    """The CASEWORK_* environment of the backend's app (also given to worker and CLI subprocesses)."""
    instance = tmp_path_factory.mktemp(f"instance-{backend}")
    if backend == "sqlite":
        return casework_env(f"sqlite:///{instance / 'casework.sqlite3'}", instance)
    pg = request.getfixturevalue("pg_server")
    redis = request.getfixturevalue("redis_server")
    return casework_env(pg.create_database(f"casework_{next(_db_counter)}"), instance, redis.url)


def build_app(env: dict[str, str], **overrides):
    """Create an app from a CASEWORK_* environment (and Flask setting overrides)."""
    from casework import create_app

    with environment(env):
        settings = casework_config.load("testing")
        app = create_app(settings)
    app.config.update(overrides)
    app.test_client_class = FreshContextClient
    return app


@pytest.fixture(scope="session")
def app(app_env):
    """The backend's app, its schema created by the migrations and the administrative units loaded."""
    from flask_migrate import upgrade

    from casework.cli import ensure_instance
    from casework.extensions import db
    from casework.locations.operations import load_units

    with environment(app_env):
        ensure_instance(casework_config.load("testing"))
    app = build_app(app_env)
    with app.app_context():
        from casework.security.keys import ensure_data_key, keyring

        upgrade()
        ensure_data_key(keyring())
        load_units()
        db.session.commit()
        db.session.remove()
    yield app
    with app.app_context():
        db.engine.dispose()


def _clean_tables(app) -> None:
    from casework.audit.chain import GENESIS
    from casework.extensions import db

    with app.app_context():
        db.session.remove()
        tables = [t for t in reversed(db.metadata.sorted_tables) if t.name not in REFERENCE_TABLES]
        from sqlalchemy.exc import OperationalError

        # The PostgreSQL app's rq worker may be running a scheduled job (the deadline check, the statistics) that
        # reads these tables: TRUNCATE can then deadlock with it, and PostgreSQL gives up on one side. Try again.
        for attempt in range(5):
            try:
                with db.engine.begin() as conn:
                    if conn.dialect.name == "postgresql":
                        # The audit trail's append-only triggers refuse TRUNCATE; the test server runs as a superuser.
                        conn.execute(text("SET LOCAL session_replication_role = replica"))
                        conn.execute(text("TRUNCATE " + ", ".join(t.name for t in tables) + " CASCADE"))
                    else:
                        for table in tables:
                            conn.execute(table.delete())
                    conn.execute(
                        text(
                            "UPDATE communes SET merged_into_code = NULL, merged_on = NULL "
                            "WHERE merged_into_code IS NOT NULL"
                        )
                    )
                    conn.execute(
                        text("UPDATE audit_chain_head SET last_seq = 0, last_mac = :genesis"), {"genesis": GENESIS}
                    )
                    # The default approval policy is configuration written by migration 0008: put it back.
                    from casework.payments.models import ApprovalBand
                    from casework.payments.operations import DEFAULT_BANDS

                    conn.execute(
                        ApprovalBand.__table__.insert(),
                        [
                            {
                                "id": uuid.uuid4(),
                                "province_code": None,
                                "programme_id": None,
                                "min_vnd": low,
                                "max_vnd": high,
                                "approver_roles": list(roles),
                            }
                            for low, high, roles in DEFAULT_BANDS
                        ],
                    )
                break
            except OperationalError:
                if attempt == 4:
                    raise
                time.sleep(0.5)
        Path(app.config["CASEWORK_AUDIT_CHECKPOINT_FILE"]).unlink(missing_ok=True)


@pytest.fixture(autouse=True)
def _isolate(request):
    """Give each test that uses the app an app context and empty tables (reference data kept)."""
    if "app" not in request.fixturenames:
        yield
        return
    app = request.getfixturevalue("app")
    from casework.extensions import limiter

    with app.app_context():
        yield
        from casework.extensions import db

        db.session.rollback()
        db.session.remove()
    limiter.reset()
    _clean_tables(app)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def make_user(app):
    """Factory: ``make_user(role="supervisor", communes=("06970",))`` creates and commits a user.

    Users of the roles that need a second factor are enrolled with a random TOTP secret (see :func:`current_code`).
    """
    from casework.auth import operations, second_factor
    from casework.extensions import db

    counter = itertools.count(1)

    def factory(
        role: str = "social_worker",
        *,
        username: str | None = None,
        province: str = "22",
        communes: tuple[str, ...] | None = None,
        password: str = TEST_PASSWORD,
        full_name: str = "",
        enrolled: bool | None = None,
    ):
        """:param enrolled: give the user a confirmed TOTP secret (default: when the role needs a second factor)."""
        if communes is None:
            communes = ("06970",) if role in {"social_worker", "supervisor"} else ()
        user = operations.create_user(
            username=username or f"{role.replace('_', '')}{next(counter)}",
            password=password,
            role=role,
            province_code=province,
            commune_codes=communes,
            full_name=full_name,
        )
        if enrolled is None:
            enrolled = user.role in SECOND_FACTOR_ROLES
        if enrolled:
            second_factor.enrol(user)
        db.session.commit()
        return user

    return factory


def current_code(user) -> str:
    """The code ``user``'s authenticator app shows now, or the next one when now's was already accepted.

    The server accepts a code of the next 30-second step too, so a test may sign the same user in twice in a row.
    """
    import pyotp

    from casework.auth.models import User
    from casework.extensions import db

    fresh = db.session.get(User, user.id)
    db.session.refresh(fresh)
    assert fresh.totp_secret, f"{fresh.username} has no TOTP secret"
    totp = pyotp.TOTP(fresh.totp_secret)
    now = totp.timecode(utcnow())
    counter = now if fresh.totp_last_counter is None else max(now, fresh.totp_last_counter + 1)
    assert counter <= now + 1, (
        f"{fresh.username} has used the codes of this step and the next: wait, or use a fresh user"
    )
    return totp.generate_otp(counter)


def user_named(username: str):
    from sqlalchemy import select

    from casework.auth.models import User
    from casework.extensions import db

    return db.session.scalar(select(User).where(User.username == username.strip().lower()))


CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)


class AuthActions:
    """Sign in and out through the real forms (flaskr's AuthActions)."""

    def __init__(self, client) -> None:
        self.client = client

    def csrf(self, path: str = "/login") -> str:
        return csrf_from(self.client.get(path).get_data(as_text=True))

    def login(self, username: str, password: str = TEST_PASSWORD, *, otp: str | None = None, follow: bool = False):
        """Sign in; when the password step asks for a code, enter ``otp`` (default: the user's current code)."""
        response = self.password_step(username, password)
        location = response.headers.get("Location", "") if response.status_code == 302 else ""
        if location.startswith("/login/code"):
            return self.code_step(otp if otp is not None else current_code(user_named(username)), follow=follow)
        if follow and location:
            return self.client.get(location, follow_redirects=True)
        return response

    def password_step(self, username: str, password: str = TEST_PASSWORD):
        token = self.csrf("/login")
        return self.client.post("/login", data={"csrf_token": token, "username": username, "password": password})

    def code_step(self, code: str, *, follow: bool = False):
        token = self.csrf("/login")  # the session's token; /login/code itself may already redirect
        return self.client.post("/login/code", data={"csrf_token": token, "code": code}, follow_redirects=follow)

    def logout(self):
        token = csrf_from(self.client.get("/").get_data(as_text=True))
        return self.client.post("/logout", data={"csrf_token": token})


@pytest.fixture
def auth(client) -> AuthActions:
    return AuthActions(client)


@pytest.fixture
def api_token(client):
    """Factory: ``api_token(user)`` returns a bearer token obtained through POST /api/v1/tokens (with ``otp`` for
    the roles that need a second factor)."""

    def factory(user, password: str = TEST_PASSWORD, otp: str | None = None) -> str:
        body = {"username": user.username, "password": password}
        if otp is not None or user.role in SECOND_FACTOR_ROLES:
            body["otp"] = otp if otp is not None else current_code(user)
        response = client.post("/api/v1/tokens", json=body)
        assert response.status_code == 201, response.get_json()
        return response.get_json()["token"]

    return factory


def wait_for_job(job_id, timeout: float = 60):
    """Wait until a background job is done (inline, or through Redis and the rq worker); return its row."""
    import time

    from casework.extensions import db
    from casework.jobs.models import Job

    deadline = time.monotonic() + timeout
    while True:
        db.session.expire_all()
        job = db.session.get(Job, job_id)
        if job.done or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


# --- processes: CLI, worker, live server -------------------------------------------------------------------------


def casework_cli(env: dict[str, str], *args: str, stdin: str | None = None, timeout: float = 120):
    """Run the installed ``casework`` command with a CASEWORK_* environment."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CASEWORK_")}
    full_env.update(env)
    exe = Path(sys.executable).with_name("casework")
    return subprocess.run(
        [str(exe), *args], input=stdin, env=full_env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="session")
def rq_worker(app, app_env):
    """A real ``casework worker`` process on the backend's Redis (PostgreSQL backend only)."""
    if "CASEWORK_REDIS_URL" not in app_env:
        yield None
        return
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CASEWORK_")}
    full_env.update(app_env)
    exe = Path(sys.executable).with_name("casework")
    proc = subprocess.Popen(
        [str(exe), "worker"], env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def live_server(app):
    """The backend's app served over HTTP on a free port, in a thread."""
    from werkzeug.serving import make_server

    from tests.services import free_port

    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()


CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright (``playwright install`` is not used)."""
    if not Path(CHROMIUM).exists():
        unavailable(f"Chromium is not installed at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        try:
            browser = p.chromium.launch(
                executable_path=CHROMIUM,
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                ],
            )
        except Exception as exc:  # noqa: BLE001 - any launch failure means no browser
            unavailable(f"Chromium did not start: {exc}")
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server, locale="vi-VN", timezone_id="Asia/Ho_Chi_Minh")
    page = context.new_page()
    page.set_default_timeout(15000)
    yield page
    context.close()
