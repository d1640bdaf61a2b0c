"""sqlmap against the live server: the name search of the case list, the sign-in form and the API's case list find no
SQL injection.

sqlmap runs as a subprocess (the ``sqlmap`` script of the virtual environment), with ``--batch`` and a temporary
output folder, against the backend's app served over HTTP: the search signed in with a real session cookie, the
sign-in form with a fresh CSRF token taken from the form before each attempt, the API with a bearer token. It tries
boolean-based blind, error-based, UNION and stacked queries (``--technique=BEUS``), and time-based blind too (``T``,
one-second delays) when ``CASEWORK_SQLMAP_TECHNIQUE`` says so; ``make soak`` sets ``CASEWORK_SQLMAP_TECHNIQUE=BEUST``,
``CASEWORK_SQLMAP_LEVEL=3`` and ``CASEWORK_SQLMAP_RISK=2``. Every query of the app goes through SQLAlchemy with bound
parameters, so nothing is expected: what a test proves is that sqlmap *tested* each parameter on the real page (not a
redirect to the sign-in, not a refused CSRF token) and reported each one not injectable.

A test that cannot fail proves nothing: the first test points the same harness at a tiny Flask endpoint that builds
its SQL by string formatting, and expects sqlmap to report it injectable.

PostgreSQL only: it is the production database, and a run on SQLite would double the time for no new path (the
queries are the same SQLAlchemy statements).
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask, request

from tests.test_api import bearer
from tests.test_cases_api import intake
from tests.test_upload_attacks import USER_AGENT, signed_in

TECHNIQUE = os.environ.get("CASEWORK_SQLMAP_TECHNIQUE", "BEUS")
LEVEL = os.environ.get("CASEWORK_SQLMAP_LEVEL", "1")
RISK = os.environ.get("CASEWORK_SQLMAP_RISK", "1")
#: Each run stops by itself; this is only a guard against a hung subprocess.
RUN_TIMEOUT = float(os.environ.get("CASEWORK_SQLMAP_TIMEOUT", "600"))

#: The ``sqlmap`` script the package installs beside the interpreter (``python -m sqlmap`` does not run it).
SQLMAP = Path(sys.executable).with_name("sqlmap")
NOT_INJECTABLE = "all tested parameters do not appear to be injectable"
FOUND = "sqlmap identified the following injection point"


def sqlmap(tmp_path: Path, url: str, *options: str, dbms: str, technique: str = TECHNIQUE) -> str:
    """Run sqlmap on ``url`` and return what it printed (its log of the run)."""
    out = tmp_path / "sqlmap"
    command = [
        str(SQLMAP),
        "-u",
        url,
        *options,
        "--batch",
        f"--dbms={dbms}",
        f"--technique={technique}",
        f"--level={LEVEL}",
        f"--risk={RISK}",
        "--time-sec=1",
        "--timeout=10",
        "--retries=1",
        f"--output-dir={out}",
        "--disable-coloring",
        "--skip-waf",
        "--answers=follow=N,keep testing=N",
        # Flask-Login's strong session protection ties a session to the browser's User-Agent: keep the one the
        # session was signed in with.
        f"--user-agent={USER_AGENT}",
    ]
    env = {**os.environ, "HOME": str(tmp_path)}  # sqlmap keeps a history and a cache under HOME
    run = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT, env=env, check=False)
    log = run.stdout + run.stderr
    (tmp_path / "sqlmap.log").write_text(log)  # kept with pytest's temporary folders, to read after a failure
    assert "[*] starting @" in log and "[*] ending @" in log, log[-3000:]  # it ran, to the end
    assert "connection refused" not in log.lower(), log[-3000:]
    return log


def cleared_parameters(log: str) -> set[str]:
    """The parameters sqlmap reports it tested and found not injectable."""
    return set(re.findall(r"parameter '([^']+)' does not seem to be injectable", log))


def assert_no_injection(log: str, parameters: set[str]) -> None:
    """sqlmap tested each of ``parameters`` on the page itself (not a redirect to the sign-in) and found nothing."""
    assert "redirect to" not in log, log[-5000:]
    assert "400 (Bad Request)" not in log, log[-5000:]  # the CSRF token was taken from the form each time
    assert FOUND not in log and "is vulnerable" not in log, log[-5000:]
    assert NOT_INJECTABLE in log, log[-5000:]
    tested = cleared_parameters(log)
    assert parameters <= tested, (sorted(tested), log[-5000:])


# --- the harness finds an injection where there is one --------------------------------------------------------------


@pytest.fixture
def vulnerable_server(tmp_path) -> Iterator[str]:
    """A tiny Flask app with a search that pastes the query into its SQL, served on a free port."""
    from werkzeug.serving import make_server

    database = tmp_path / "vulnerable.sqlite3"
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TABLE children (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO children (name) VALUES (?)", [("Ha",), ("Luc",), ("Duyen",)])
    vulnerable = Flask("vulnerable")

    @vulnerable.get("/search")
    def search():
        with sqlite3.connect(database) as conn:
            sql = f"SELECT name FROM children WHERE name = '{request.args.get('q', '')}'"  # noqa: S608 - the point
            rows = conn.execute(sql).fetchall()
        return "<ul>" + "".join(f"<li>{name}</li>" for (name,) in rows) + "</ul>"

    server = make_server("127.0.0.1", 0, vulnerable, threaded=True)  # a free port, chosen by the system
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_the_harness_reports_an_injectable_parameter_when_there_is_one(vulnerable_server, tmp_path):
    log = sqlmap(tmp_path, f"{vulnerable_server}/search?q=Ha", "-p", "q", dbms="SQLite", technique="B")
    assert FOUND in log, log[-5000:]
    assert NOT_INJECTABLE not in log


# --- casework --------------------------------------------------------------------------------------------------------


@pytest.fixture
def postgres_only(backend):
    if backend != "postgresql":
        pytest.skip("sqlmap runs against the PostgreSQL backend (the production database)")


@pytest.fixture
def worker(postgres_only, client, make_user, api_token):
    """Hoa, a social worker of Ba Chẽ, with two cases, so that a search has something to find."""
    user = make_user("social_worker", communes=("06970",), username="hoa", full_name="Trần Thị Hoa")
    token = api_token(user)
    for payload in (intake(), intake(child__national_id=None, child__full_name="Hà Văn Lực")):
        response = client.post("/api/v1/cases", json=payload, headers=bearer(token))
        assert response.status_code == 201, response.get_json()
    user.api_token = token
    return user


def session_cookie(live_server: str, username: str) -> str:
    """Sign in through the real form, check that the session finds Hoa's case, and return its cookie."""
    browser = signed_in(live_server, username)
    found = browser.get(f"{live_server}/cases/?q=Duyên", timeout=30)
    assert found.status_code == 200 and "Duyên" in found.text, "the signed-in search finds Hoa's case"
    return browser.cookies["casework_session"]


def test_the_name_search_of_the_case_list_is_not_injectable(worker, live_server, tmp_path):
    cookie = session_cookie(live_server, worker.username)
    log = sqlmap(
        tmp_path,
        f"{live_server}/cases/?q=Duyen&commune=06970",
        "-p",
        "q,commune",
        f"--cookie=casework_session={cookie}",
        dbms="PostgreSQL",
    )
    assert_no_injection(log, {"q", "commune"})


def test_the_sign_in_form_is_not_injectable(worker, live_server, tmp_path):
    log = sqlmap(
        tmp_path,
        f"{live_server}/login",
        # Nobody of that name: a real account would be locked by the failures half-way, changing the answer.
        "--data=csrf_token=x&username=nobody&password=wrong-password",
        "-p",
        "username,password",
        "--ignore-code=401",  # a refused sign-in is the answer to every attempt
        "--csrf-token=csrf_token",
        f"--csrf-url={live_server}/login",
        dbms="PostgreSQL",
    )
    assert_no_injection(log, {"username", "password"})


def test_the_api_case_list_is_not_injectable(worker, live_server, tmp_path):
    log = sqlmap(
        tmp_path,
        f"{live_server}/api/v1/cases?q=Duyen&stage=report_received&commune=06970&category=violence_harm",
        "-p",
        "q,stage,commune,category",
        f"--headers=Authorization: Bearer {worker.api_token}",
        dbms="PostgreSQL",
    )
    assert_no_injection(log, {"q", "stage", "commune", "category"})
