"""Locust users of the load benchmark: one class per scenario, run one at a time by :mod:`bench.load_bench`.

    locust -f bench/locustfile.py --headless -u 4 -r 4 -t 75s --host http://127.0.0.1:PORT CaseView

This file never imports casework: locust patches the standard library with gevent, which must not reach the
application. What the users need (accounts, second-factor keys, queries, case and payment ids, intake forms) comes
from the plan that the benchmark wrote beforehand (``BENCH_PLAN``, JSON). Every request is recorded with its start
time, duration and outcome, and written to ``BENCH_SAMPLES`` (JSON) when locust stops; the benchmark computes the
figures from them over its measuring window.

Users sign in once, through the real form (password, then the current code of their authenticator key where the
role needs one), then repeat their one request without waiting; or, with ``BENCH_PACE`` (requests per second per
user), at random times of that average rate (see :meth:`BenchUser.wait_time`).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import resource
import time
from collections import deque
from http.cookiejar import DefaultCookiePolicy
from pathlib import Path
from urllib.parse import urlencode

import pyotp
from locust import FastHttpUser, events, task
from locust.exception import StopUser

PLAN = json.loads(Path(os.environ["BENCH_PLAN"]).read_text(encoding="utf-8")) if os.environ.get("BENCH_PLAN") else {}
SAMPLES_PATH = os.environ.get("BENCH_SAMPLES")
PACE = float(os.environ.get("BENCH_PACE") or 0)  # requests per second per user; 0: none, a closed loop
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
DUPLICATES_SHOWN = re.compile(r'name="duplicates_shown"[^>]*value="([^"]*)"')

recorded: list[tuple[float, float, bool, str]] = []  # (start, milliseconds, ok, name)
state = {"started": None, "signed_in": 0, "exhausted": None, "errors": []}
# The paced runs sign in with accounts of their own: a code is accepted once per account, and theirs come seconds
# after the closed-loop run's, within the same 30 seconds.
_accounts = {
    role: itertools.cycle(found) for role, found in PLAN.get("paced_accounts" if PACE else "accounts", {}).items()
}
_payments = deque(PLAN.get("payments", []))
_intakes = itertools.count()


@events.request.add_listener
def _record(request_type, name, response_time, response_length, exception=None, start_time=None, **_):
    recorded.append((start_time or time.time() - response_time / 1000, response_time, exception is None, name))
    if exception is not None and len(state["errors"]) < 20:
        state["errors"].append(f"{name}: {exception}"[:300])


@events.test_start.add_listener
def _started(**_):
    state["started"] = time.time()


@events.quitting.add_listener
def _write_samples(**_):
    if not SAMPLES_PATH:
        return
    usage = resource.getrusage(resource.RUSAGE_SELF)
    Path(SAMPLES_PATH).write_text(
        json.dumps({**state, "cpu_seconds": usage.ru_utime + usage.ru_stime, "samples": recorded}), encoding="utf-8"
    )


def _token(html: str) -> str:
    found = CSRF.search(html)
    if found is None:
        raise StopUser("no CSRF token on the page")
    return found.group(1)


class BenchUser(FastHttpUser):
    """A user who does one thing again and again, as fast as the server answers (a closed loop), or paced."""

    abstract = True
    # Each request on a connection of its own, as gunicorn receives them behind nginx (docs/OPERATIONS.md:
    # proxy_pass opens a connection per request). Kept open, the four users' connections stayed with whichever of
    # the two gunicorn workers accepted them, and a run measured one core or two depending on that draw.
    default_headers = {"Connection": "close"}  # noqa: RUF012 - locust's own attribute
    role: str | None = None  # the kind of account to sign in with (the plan's "accounts"); None: no sign-in

    def on_start(self) -> None:
        self.rng = random.Random()  # noqa: S311 - choosing inputs, not secrets
        self.next_at: float | None = None  # when the next paced request is due
        # Production marks the session cookie Secure. TLS ends at nginx in front of gunicorn, which is not part of
        # the benchmark, so the client sends the cookie over the plain connection, as the browser does through nginx.
        self.client.cookiejar.set_policy(DefaultCookiePolicy(secure_protocols=("https", "http")))
        if self.role is not None:
            self.sign_in(next(_accounts[self.role]))
        state["signed_in"] += 1

    def wait_time(self) -> float:
        """No wait (a closed loop); with BENCH_PACE, until the next of a Poisson process of that rate.

        The users' requests then arrive as many people's clicks do, at independent random times: regular intervals
        would keep users started together in step, sending their requests in bursts. A request that ends after its
        successor's time is followed at once, so the rate asked holds on average while the server keeps up.
        """
        if not PACE:
            return 0.0
        if self.next_at is None:  # counted from the user's first request, after signing in
            self.next_at = time.time()
        self.next_at += self.rng.expovariate(PACE)
        return max(0.0, self.next_at - time.time())

    def sign_in(self, account: dict) -> None:
        """The sign-in form, and the code form when the role needs a second factor."""
        form = self.client.get("/login", name="sign-in")
        data = {"csrf_token": _token(form.text), "username": account["username"], "password": account["password"]}
        answer = self.client.post("/login", data=urlencode(data), headers=FORM, allow_redirects=False, name="sign-in")
        location = answer.headers.get("Location", "")
        if answer.status_code == 302 and location.endswith("/login/code"):
            page = self.client.get("/login/code", name="sign-in")
            code = pyotp.TOTP(account["totp"]).now()
            data = {"csrf_token": _token(page.text), "code": code}
            answer = self.client.post(
                "/login/code", data=urlencode(data), headers=FORM, allow_redirects=False, name="sign-in"
            )
            location = answer.headers.get("Location", "")
        if answer.status_code != 302 or "/login" in location:
            state["errors"].append(f"sign-in as {account['username']} refused ({answer.status_code}, {location})")
            raise StopUser()

    def expect(self, path: str, name: str, status: int = 200, **kwargs):
        """GET ``path``; anything but ``status`` counts as a failure (a page that lost the session is a redirect)."""
        with self.client.get(path, name=name, allow_redirects=False, catch_response=True, **kwargs) as answer:
            if answer.status_code != status:
                answer.failure(f"status {answer.status_code}")
            return answer

    def post_form(self, path: str, data: dict, name: str):
        return self.client.post(
            path, data=urlencode(data, doseq=True), headers=FORM, allow_redirects=False, name=name, catch_response=True
        )


# --- the baselines ------------------------------------------------------------------------------------------------


class Hello(BenchUser):
    @task
    def hello(self) -> None:
        self.expect("/hello", "hello")


class SqlSearchWorker(BenchUser):
    scope = "worker"

    @task
    def search(self) -> None:
        query = self.rng.choice(PLAN["queries"][self.scope])
        self.expect("/sql/search?" + urlencode({"q": query, "scope": self.scope}), "sql search")


class SqlSearchOfficer(SqlSearchWorker):
    scope = "officer"


class SqlStats(BenchUser):
    @task
    def stats(self) -> None:
        self.expect("/sql/stats", "sql stats")


# --- casework -----------------------------------------------------------------------------------------------------


class Caseload(BenchUser):
    """The social worker's home page: their open cases by next deadline."""

    role = "worker"

    @task
    def home(self) -> None:
        self.expect("/", "caseload")


class SearchWorker(BenchUser):
    """A name search by a social worker, in their commune."""

    role = "worker"

    @task
    def search(self) -> None:
        query = self.rng.choice(PLAN["queries"][self.role])
        self.expect("/cases/?" + urlencode({"q": query}), "search")


class SearchOfficer(SearchWorker):
    """A name search by a provincial officer, in the whole province."""

    role = "officer"


class CaseView(BenchUser):
    """A case's page, opened by the social worker of its commune."""

    role = "worker"

    @task
    def view(self) -> None:
        self.expect(f"/cases/{self.rng.choice(PLAN['cases'])}", "case view")


class Inbox(BenchUser):
    """The social worker's notifications: the lightest signed-in page."""

    role = "worker"

    @task
    def inbox(self) -> None:
        self.expect("/notifications", "inbox")


class Dashboard(BenchUser):
    """The province's statistics (this year, by commune) as a member of the provincial committee sees them."""

    role = "committee"

    @task
    def dashboard(self) -> None:
        self.expect("/stats/", "dashboard")


class Intake(BenchUser):
    """A social worker registers a report: the intake form, posted; when it shows possible earlier records of the
    child, the worker confirms a new child, as they would after looking."""

    role = "worker"

    def on_start(self) -> None:
        super().on_start()
        self.csrf = _token(self.client.get("/cases/new", name="sign-in").text)

    @task
    def intake(self) -> None:
        form = PLAN["intakes"][next(_intakes) % len(PLAN["intakes"])]
        data = {**form, "csrf_token": self.csrf}
        with self.post_form("/cases/new", data, "intake") as answer:
            if answer.status_code == 302:
                return
            shown = DUPLICATES_SHOWN.search(answer.text or "") if answer.status_code == 200 else None
            if shown is None:
                answer.failure(f"status {answer.status_code}")
                return
        data |= {"duplicate_choice": "new", "duplicates_shown": shown.group(1)}
        with self.post_form("/cases/new", data, "intake, new child confirmed") as answer:
            if answer.status_code != 302:
                answer.failure(f"status {answer.status_code}")


class PaymentDecision(BenchUser):
    """A supervisor approves or rejects a submitted payment request; each request is decided once, by one user."""

    role = "supervisor"

    def on_start(self) -> None:
        super().on_start()
        self.csrf = _token(self.client.get("/", name="sign-in").text)
        self.decided = 0

    @task
    def decide(self) -> None:
        try:
            payment_id = _payments.popleft()
        except IndexError:
            state["exhausted"] = state["exhausted"] or time.time()
            raise StopUser() from None
        self.decided += 1
        data = {"csrf_token": self.csrf, "decision": "approve"}
        if self.decided % 2 == 0:
            data = {"csrf_token": self.csrf, "decision": "reject", "reason": "Chưa đủ chứng từ hợp lệ."}
        with self.post_form(f"/payments/{payment_id}/decision", data, "payment decision") as answer:
            location = answer.headers.get("Location", "")
            if answer.status_code != 302 or "/reauth" in location or "/login" in location:
                answer.failure(f"status {answer.status_code} {location}")
