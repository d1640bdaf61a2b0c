"""Load and faults (issue #8): fifty people working at once, and PostgreSQL restarted under their feet.

casework runs as in production (gunicorn through ``casework serve`` and the rq worker, ``tests/stack.py``) on a
PostgreSQL and a Redis of this module's own, seeded with the demo data. Simulated people sign in through the real
form or get an API token and work as they would: the caseload page, a name search, a case, intake, notes, visits,
payment requests and a supervisor's decisions, the statistics dashboard. Every write the server acknowledged is
looked up in the database afterwards, and the audit trail must verify.

- 50 users for a bounded time: no 5xx at all, nothing acknowledged missing. ``CASEWORK_SOAK_SECONDS`` sets the
  length (``make soak``: ``CASEWORK_SOAK_SECONDS=600 pytest -m soak tests/test_load_faults.py``); 20 s otherwise.
- PostgreSQL stopped for about 5 s under 10 users (a "fast" shutdown, as an operator's restart) and started again:
  each answer meanwhile is a success or a clear 503 (a Vietnamese page, or the API's JSON error
  ``database_unavailable``, with ``Retry-After``), never a 500 and never a hang; the same gunicorn serves again
  once the database is back; nothing acknowledged is lost and nothing refused is half-saved.

The 503 itself is also checked in-process on both backends, with a query made to fail.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pyotp
import pytest
import requests
from flask_babel import force_locale, gettext
from markupsafe import escape
from sqlalchemy import exc as sa_exc
from sqlalchemy import func, select

from casework.extensions import db
from tests.conftest import AuthActions, build_app, csrf_from, unavailable
from tests.services import PostgresServer, RedisServer, ServiceUnavailable
from tests.stack import Stack, casework_env

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
SOAK_SECONDS = float(os.environ.get("CASEWORK_SOAK_SECONDS") or 0)
SHORT_SECONDS = 20
PASSWORD = "correct horse battery"
COMMUNES = ("06970", "06979")  # Ba Chẽ and Kỳ Thượng (Quảng Ninh), where the demo data puts full caseloads
DEMO_CASES = 300
#: A request that takes longer than this counts as a hang.
REQUEST_TIMEOUT = 60
ADVICE = (  # the 503 page's advice
    "Wait a moment and try again. If you were saving something, check whether it was saved before you enter it again."
)
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
SEARCH_WORDS = ("Nguyễn", "Thị", "Văn", "Minh", "Lò", "Hoàng", "Ngọc", "Triệu", "Bàn", "Đặng")
FAMILY = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Vũ", "Đặng", "Bùi", "Đỗ", "Ngô", "Dương", "Lý", "Triệu", "Bàn")
MIDDLE = ("Văn", "Thị", "Minh", "Ngọc", "Đức", "Thu", "Hữu", "Quang", "Kim", "Xuân")
_GIVEN = (
    "An Anh Bảo Bích Chi Công Cúc Dũng Duyên Giang Hà Hải Hạnh Hiền Hiếu Hoa Hòa Hùng Hương Khánh Khoa Lan Linh Loan "
    "Long Mai Nam Nga Ngân Nhung Phong Phúc Quân Quế Sơn Tâm Thảo Thắng Trang Trí Tú Tùng Uyên Vân Việt Yến"
)
GIVEN = _GIVEN.split()


# --- the stack ----------------------------------------------------------------------------------------------------


@dataclass
class LoadStack:
    """casework in processes over a PostgreSQL and a Redis of its own, an in-process app on the same database for
    setting up and checking, and the demo data's ids the simulated users work on."""

    pg: PostgresServer
    stack: Stack
    app: object
    open_cases: dict[str, list[str]] = field(default_factory=dict)  # commune → open cases
    plan_cases: dict[str, list[str]] = field(default_factory=dict)  # commune → open cases with an approved plan
    programme_id: str = ""
    accounts: dict[str, list[dict]] = field(default_factory=dict)  # role → accounts not yet given to a user

    def take(self, role: str) -> dict:
        return self.accounts[role].pop()


def _create_accounts(app) -> dict[str, list[dict]]:
    """55 social workers, 8 supervisors (with a second factor) and 8 committee members in the demo province."""
    from casework.auth import operations, second_factor

    accounts: dict[str, list[dict]] = {"social_worker": [], "supervisor": [], "committee_member": []}
    with app.app_context():
        for role, count, prefix in (
            ("social_worker", 55, "tai"),
            ("supervisor", 8, "giamsat"),
            ("committee_member", 8, "uyban"),
        ):
            for n in range(count):
                communes = (COMMUNES[n % 2],) if role != "committee_member" else ()
                user = operations.create_user(
                    username=f"{prefix}{n:02d}",
                    password=PASSWORD,
                    role=role,
                    province_code="22",
                    commune_codes=communes,
                    full_name=f"Người dùng tải {n}",
                )
                secret = second_factor.enrol(user, pyotp.random_base32()) if role == "supervisor" else None
                accounts[role].append(
                    {"username": user.username, "commune": communes[0] if communes else None, "secret": secret}
                )
        db.session.commit()
        db.session.remove()
    return accounts


def _demo_ids(target: LoadStack) -> None:
    from casework.cases.models import Case
    from casework.payments.models import Programme
    from casework.support.models import SupportPlan

    with target.app.app_context():
        for commune in COMMUNES:
            rows = db.session.scalars(
                select(Case).where(Case.commune_code == commune, Case.closed_at.is_(None)).order_by(Case.received_at)
            ).all()
            target.open_cases[commune] = [str(c.id) for c in rows]
            planned = db.session.scalars(
                select(SupportPlan.case_id).where(
                    SupportPlan.status == "approved", SupportPlan.case_id.in_([c.id for c in rows])
                )
            ).all()
            target.plan_cases[commune] = sorted({str(case_id) for case_id in planned})
        programmes = db.session.scalars(
            select(Programme).where(Programme.province_code == "22").order_by(Programme.year.desc())
        ).all()
        target.programme_id = next(str(p.id) for p in programmes if not p.purposes)  # pays for any purpose
        db.session.remove()


@pytest.fixture(scope="module")
def load_stack(tmp_path_factory) -> Iterator[LoadStack]:
    pg, redis = PostgresServer(), RedisServer()
    stack = None
    try:
        try:
            pg.start()
            redis.start()
        except (ServiceUnavailable, OSError) as exc:
            unavailable(f"PostgreSQL or Redis for the load tests: {exc}")
        instance = tmp_path_factory.mktemp("load-instance")
        stack = Stack(casework_env(pg.create_database("casework"), instance, redis.url)).prepare()
        seeded = stack.cli("demo", "--cases", str(DEMO_CASES), "--seed", "8")
        assert seeded.returncode == 0, seeded.stderr[-2000:]
        app = build_app(stack.env)
        target = LoadStack(pg=pg, stack=stack, app=app)
        target.accounts = _create_accounts(app)
        _demo_ids(target)
        assert all(target.plan_cases[c] for c in COMMUNES), "the demo data has no case with an approved plan"
        stack.start_web(workers=2, threads=4)
        stack.start_worker()
        yield target
        with app.app_context():
            db.engine.dispose()
    finally:
        if stack is not None:
            stack.stop()
        redis.stop()
        with contextlib.suppress(ServiceUnavailable):
            pg.pause()  # a fast shutdown: stop() alone waits for the last client to leave
        pg.stop()


# --- the load -------------------------------------------------------------------------------------------------------


@dataclass
class Answer:
    """One request and what came back (``status`` None: no answer within the timeout, or the connection failed)."""

    user: str
    action: str
    method: str
    path: str
    status: int | None
    started: float
    ended: float
    error: str = ""
    retry_after: str | None = None
    body: str = ""


@dataclass
class Ack:
    """A write the server acknowledged: what it was, its id, and what was sent."""

    kind: str
    id: str
    detail: dict = field(default_factory=dict)


class Load:
    """What every simulated user was answered, and the writes acknowledged."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.since = datetime.now(UTC)
        self.answers: list[Answer] = []
        self.acks: list[Ack] = []
        self.intakes: list[tuple[str, int | None]] = []  # (child's name, status) of every intake sent
        self.crashes: list[str] = []  # a simulated user's own code failed: a bug of the test, reported
        self._lock = threading.Lock()

    def call(self, user: User, action: str, method: str, path: str, *, label: str | None = None, **kwargs):
        """Send one request; record the answer; return the response, or None when none came."""
        started = time.monotonic()
        try:
            response = user.http.request(
                method, self.url + path, timeout=REQUEST_TIMEOUT, allow_redirects=False, **kwargs
            )
        except requests.RequestException as exc:
            self._record(Answer(user.name, action, method, label or path, None, started, time.monotonic(), repr(exc)))
            return None
        answer = Answer(
            user.name,
            action,
            method,
            label or path,
            response.status_code,
            started,
            time.monotonic(),
            retry_after=response.headers.get("Retry-After"),
        )
        if response.status_code >= 400:
            answer.body = response.text[:2000]
            if response.headers.get("Content-Type", "").startswith("application/json"):
                answer.error = (response.json().get("error") or {}).get("code", "")
        self._record(answer)
        return response

    def _record(self, answer: Answer) -> None:
        with self._lock:
            self.answers.append(answer)

    def ack(self, kind: str, object_id: str, **detail) -> None:
        with self._lock:
            self.acks.append(Ack(kind, object_id, detail))

    def sent_intake(self, name: str, status: int | None) -> None:
        with self._lock:
            self.intakes.append((name, status))

    def crashed(self, user: User, exc: BaseException) -> None:
        with self._lock:
            self.crashes.append(f"{user.name}: {exc!r}")


class Run:
    """Simulated users working, each in a thread of its own, until :meth:`stop`."""

    def __init__(self, users: list[User]) -> None:
        self.users = users
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=u.run, args=(self._stop,), name=u.name, daemon=True) for u in users]
        for thread in self._threads:
            thread.start()

    def until(self, condition, timeout: float = 120) -> bool:
        """Let them work until ``condition()`` holds (True) or ``timeout`` seconds have passed (False)."""
        deadline = time.monotonic() + timeout
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.2)
        return condition()

    def stop(self) -> list[str]:
        """Stop everyone after their current request; return who never came back."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=REQUEST_TIMEOUT + 30)
        for user in self.users:
            user.http.close()  # no keep-alive connection left open to hold up gunicorn's shutdown
        return [t.name for t in self._threads if t.is_alive()]


def an_hour_ago() -> datetime:
    """A moment of the past in Vietnam's time (reports and visits may not be dated in the future)."""
    return datetime.now(VIETNAM) - timedelta(hours=1)


def child_name(rng: random.Random) -> str:
    return f"{rng.choice(FAMILY)} {rng.choice(MIDDLE)} {rng.choice(GIVEN)} {rng.choice(GIVEN)}"


class User:
    """A simulated person: signs in once, then does weighted actions with a short pause between them."""

    weights: dict[str, int] = {}

    def __init__(self, load: Load, target: LoadStack, account: dict, seed: int) -> None:
        self.load = load
        self.target = target
        self.account = account
        self.name = account["username"]
        self.commune = account["commune"]
        self.rng = random.Random(seed)
        self.http = requests.Session()
        self.signed_in = False
        self.own_cases: list[str] = []

    def call(self, action: str, method: str, path: str, **kwargs):
        return self.load.call(self, action, method, path, **kwargs)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                if not self.signed_in:
                    self.signed_in = self.sign_in()
                else:
                    action = self.rng.choices(list(self.weights), weights=list(self.weights.values()))[0]
                    getattr(self, action)()
            except Exception as exc:  # noqa: BLE001 - reported by the test, which then fails
                self.load.crashed(self, exc)
                return
            stop.wait(self.rng.uniform(0.05, 0.4))

    def a_case(self) -> str:
        cases = self.target.open_cases[self.commune]
        if self.own_cases and self.rng.random() < 0.3:
            return self.rng.choice(self.own_cases)
        return self.rng.choice(cases)


class WebUser(User):
    """Someone in a browser: signs in through the form; pages and forms with their CSRF token."""

    def sign_in(self) -> bool:
        page = self.call("sign_in", "GET", "/login")
        if page is None or page.status_code != 200:
            return False
        answer = self.call(
            "sign_in",
            "POST",
            "/login",
            data={"csrf_token": csrf_from(page.text), "username": self.name, "password": PASSWORD},
        )
        return answer is not None and answer.status_code == 302 and answer.headers["Location"] == "/"


class WebWorker(WebUser):
    weights = {"caseload": 3, "search": 3, "view": 3, "note": 2, "intake": 1}

    def caseload(self) -> None:
        self.call("caseload", "GET", "/")

    def search(self) -> None:
        self.call("search", "GET", "/cases/", params={"q": self.rng.choice(SEARCH_WORDS)}, label="/cases/?q=")

    def view(self) -> None:
        self.call("view", "GET", f"/cases/{self.a_case()}", label="/cases/<id>")

    def note(self) -> None:
        case_id = self.a_case()
        page = self.call("view", "GET", f"/cases/{case_id}", label="/cases/<id>")
        if page is None or page.status_code != 200:
            return
        body = f"Ghi chú thăm hỏi {uuid.uuid4().hex[:12]}"
        answer = self.call(
            "note",
            "POST",
            f"/cases/{case_id}/notes",
            data={"csrf_token": csrf_from(page.text), "body": body},
            label="/cases/<id>/notes",
        )
        if (
            answer is not None
            and answer.status_code == 302
            and answer.headers["Location"].startswith(f"/cases/{case_id}")
        ):
            self.load.ack("web_note", case_id, body=body)

    def intake(self) -> None:
        page = self.call("intake", "GET", "/cases/new")
        if page is None or page.status_code != 200:
            return
        name = child_name(self.rng)
        form = {
            "csrf_token": csrf_from(page.text),
            "full_name": name,
            "sex": self.rng.choice(("male", "female")),
            "birth_year": str(self.rng.randint(2008, 2022)),
            "commune_code": self.commune,
            "categories": ["violence_harm"],
            "risk_level": "medium",
            "source": "school",
            "received_at": an_hour_ago().strftime("%d/%m/%Y %H:%M"),
            "summary": "Cô giáo báo trẻ nghỉ học nhiều ngày.",
        }
        answer = self.call("intake", "POST", "/cases/new", data=form)
        shown = re.search(r'name="duplicates_shown"[^>]*value="([^"]*)"', answer.text) if answer is not None else None
        if answer is not None and answer.status_code == 200 and shown and shown.group(1):
            # The name looks like an earlier record's: this is a new child (the form asks to say so).
            form |= {
                "csrf_token": csrf_from(answer.text),
                "duplicate_choice": "new",
                "duplicates_shown": shown.group(1),
            }
            answer = self.call("intake", "POST", "/cases/new", data=form)
        self.load.sent_intake(name, answer.status_code if answer is not None else None)
        location = answer.headers.get("Location", "") if answer is not None and answer.status_code == 302 else ""
        match = re.fullmatch(r"/cases/([0-9a-f-]{36})", location)
        if match:
            self.load.ack("case", match.group(1), name=name)
            self.own_cases.append(match.group(1))


class WebCommittee(WebUser):
    weights = {"caseload": 1, "dashboard": 2}

    def caseload(self) -> None:
        self.call("caseload", "GET", "/")

    def dashboard(self) -> None:
        # A commune's figures: the whole province's first view computes its disclosure control for minutes on a
        # province of a few hundred cases (casework/stats/suppression.py), longer than any request may take here.
        commune = self.rng.choice(COMMUNES)
        self.call("dashboard", "GET", "/stats/", params={"commune": commune, "breakdown": ""}, label="/stats/?commune=")


class ApiUser(User):
    """A program on the API: one bearer token, JSON in and out."""

    def sign_in(self) -> bool:
        body = {"username": self.name, "password": PASSWORD}
        if self.account["secret"]:
            body["otp"] = pyotp.TOTP(self.account["secret"]).now()
        answer = self.call("sign_in", "POST", "/api/v1/tokens", json=body)
        if answer is None or answer.status_code != 201:
            return False
        self.http.headers["Authorization"] = "Bearer " + answer.json()["token"]
        return True

    def list_cases(self) -> None:
        self.call(
            "api_list", "GET", "/api/v1/cases", params={"q": self.rng.choice(SEARCH_WORDS)}, label="/api/v1/cases?q="
        )

    def view(self) -> None:
        self.call("api_view", "GET", f"/api/v1/cases/{self.a_case()}", label="/api/v1/cases/<id>")


class ApiWorker(ApiUser):
    weights = {"list_cases": 3, "view": 3, "intake": 1, "note": 2, "visit": 1, "payment": 1}

    def intake(self) -> None:
        name = child_name(self.rng)
        payload = {
            "child": {
                "full_name": name,
                "sex": self.rng.choice(("male", "female")),
                "birth_year": self.rng.randint(2008, 2022),
                "commune_code": self.commune,
            },
            "categories": ["violence_harm"],
            "risk_level": "high",
            "source": "hotline_111",
            "received_at": an_hour_ago().isoformat(),
            "summary": "Hàng xóm báo trẻ bị đánh.",
            "confirm_new_child": True,
        }
        answer = self.call("api_intake", "POST", "/api/v1/cases", json=payload)
        self.load.sent_intake(name, answer.status_code if answer is not None else None)
        if answer is not None and answer.status_code == 201:
            case_id = answer.json()["id"]
            self.load.ack("case", case_id, name=name)
            self.own_cases.append(case_id)

    def note(self) -> None:
        case_id = self.a_case()
        body = f"Đã gọi điện cho gia đình {uuid.uuid4().hex[:12]}"
        answer = self.call(
            "api_note", "POST", f"/api/v1/cases/{case_id}/notes", json={"body": body}, label="/api/v1/cases/<id>/notes"
        )
        if answer is not None and answer.status_code == 201:
            self.load.ack("note", answer.json()["id"], case_id=case_id, body=body)

    def visit(self) -> None:
        if not self.own_cases:
            self.intake()  # visits go to a child of their own: register one first
            return
        case_id = self.rng.choice(self.own_cases)
        body = {"visited_on": an_hour_ago().date().isoformat(), "outcome": "stable", "notes": "Trẻ đi học đều."}
        answer = self.call(
            "api_visit", "POST", f"/api/v1/cases/{case_id}/visits", json=body, label="/api/v1/cases/<id>/visits"
        )
        if answer is not None and answer.status_code == 201:
            self.load.ack("visit", answer.json()["id"], case_id=case_id)

    def payment(self) -> None:
        case_id = self.rng.choice(self.target.plan_cases[self.commune])
        body = {
            "programme": self.target.programme_id,
            "purpose": "medical_treatment",
            "amount_vnd": 100_000,
            "payee": {"name": "Lò Văn Páo", "relation": "Bố", "method": "cash"},
            "description": "Tiền thuốc điều trị cho trẻ.",
        }
        draft = self.call(
            "api_payment", "POST", f"/api/v1/cases/{case_id}/payments", json=body, label="/api/v1/cases/<id>/payments"
        )
        if draft is None or draft.status_code != 201:
            return
        payment_id = draft.json()["id"]
        self.load.ack("payment", payment_id, case_id=case_id)
        receipt = self.call(
            "api_payment",
            "POST",
            f"/api/v1/payments/{payment_id}/attachments",
            files={"file": ("hoa-don.pdf", io.BytesIO(PDF), "application/pdf")},
            label="/api/v1/payments/<id>/attachments",
        )
        if receipt is None or receipt.status_code != 201:
            return
        submitted = self.call(
            "api_payment", "POST", f"/api/v1/payments/{payment_id}/submit", label="/api/v1/payments/<id>/submit"
        )
        if submitted is not None and submitted.status_code == 200:
            self.load.ack("submitted", payment_id)


class ApiSupervisor(ApiUser):
    weights = {"decide": 2, "list_cases": 1, "view": 1}

    def decide(self) -> None:
        inbox = self.call(
            "api_inbox", "GET", "/api/v1/payments", params={"status": "submitted"}, label="/api/v1/payments?status="
        )
        if inbox is None or inbox.status_code != 200:
            return
        waiting = [p["id"] for p in inbox.json()["items"] if p["next_role"] == "supervisor"]
        if not waiting:
            return
        payment_id = self.rng.choice(waiting)
        answer = self.call(
            "api_decision",
            "POST",
            f"/api/v1/payments/{payment_id}/decision",
            json={"decision": "approve"},
            label="/api/v1/payments/<id>/decision",
        )
        if answer is not None and answer.status_code == 200:
            self.load.ack("approval", payment_id, username=self.name)
        elif answer is not None and answer.status_code == 401:
            self.signed_in = False  # the second-factor check is stale (CASEWORK_REAUTH_MINUTES): a new token


def people(
    load: Load, target: LoadStack, *, web_workers: int, api_workers: int, supervisors: int, committee: int
) -> list[User]:
    users: list[User] = []
    seed = len(target.accounts["social_worker"]) * 1000
    for kind, count, role in (
        (WebWorker, web_workers, "social_worker"),
        (ApiWorker, api_workers, "social_worker"),
        (ApiSupervisor, supervisors, "supervisor"),
        (WebCommittee, committee, "committee_member"),
    ):
        for _ in range(count):
            seed += 1
            users.append(kind(load, target, target.take(role), seed))
    return users


# --- what must hold afterwards ---------------------------------------------------------------------------------------


#: The kinds of write acknowledged (``Ack.kind``).
WRITES = {"case", "note", "web_note", "visit", "payment", "submitted", "approval"}
#: Refusals a correct server gives under this load: two supervisors approving the same request at once; a decision
#: in a soak longer than CASEWORK_REAUTH_MINUTES, whose second-factor check has gone stale.
EXPECTED_REFUSALS = {("api_decision", 409, "already_decided"), ("api_decision", 401, "reauth_required")}


def unexpected_refusals(answers: list[Answer]) -> list[Answer]:
    return [
        a
        for a in answers
        if a.status is not None and 400 <= a.status < 500 and (a.action, a.status, a.error) not in EXPECTED_REFUSALS
    ]


def missing_writes(target: LoadStack, load: Load) -> list[str]:
    """Every acknowledged write that is not in the database as it was acknowledged."""
    from casework.audit import AuditEvent
    from casework.cases.models import Case, CaseNote
    from casework.payments.models import PaymentDecision, PaymentRequest
    from casework.security.files import StoredFile
    from casework.support.models import MonitoringVisit

    missing = []
    with target.app.app_context():
        for ack in load.acks:
            oid = uuid.UUID(ack.id)
            if ack.kind == "case":
                case = db.session.get(Case, oid)
                if case is None or case.child.full_name != ack.detail["name"]:
                    missing.append(f"case {ack.id}")
                elif not db.session.scalar(
                    select(AuditEvent.seq).where(AuditEvent.action == "case.intake", AuditEvent.object_id == ack.id)
                ):
                    missing.append(f"the intake event of case {ack.id}")
            elif ack.kind == "note":
                note = db.session.get(CaseNote, oid)
                if note is None or note.body != ack.detail["body"] or str(note.case_id) != ack.detail["case_id"]:
                    missing.append(f"note {ack.id}")
            elif ack.kind == "web_note":
                bodies = [n.body for n in db.session.scalars(select(CaseNote).where(CaseNote.case_id == oid))]
                if ack.detail["body"] not in bodies:
                    missing.append(f"web note on case {ack.id}")
            elif ack.kind == "visit":
                if db.session.get(MonitoringVisit, oid) is None:
                    missing.append(f"visit {ack.id}")
            elif ack.kind == "payment":
                if db.session.get(PaymentRequest, oid) is None:
                    missing.append(f"payment request {ack.id}")
            elif ack.kind == "submitted":
                payment = db.session.get(PaymentRequest, oid)
                receipts = db.session.scalars(
                    select(StoredFile).where(StoredFile.owner_type == "payment", StoredFile.owner_id == ack.id)
                ).all()
                if payment is None or payment.status == "draft" or not receipts:
                    missing.append(f"submission of payment request {ack.id}")
            elif ack.kind == "approval":
                decided = db.session.scalar(
                    select(PaymentDecision.id).where(
                        PaymentDecision.payment_id == oid, PaymentDecision.decision == "approve"
                    )
                )
                if decided is None:
                    missing.append(f"approval of payment request {ack.id}")
            else:
                raise AssertionError(ack.kind)
        db.session.remove()
    return missing


def half_done_intakes(target: LoadStack, load: Load) -> list[str]:
    """Intakes saved without their whole: a child sent once registered twice or with no case, or a case without its
    intake event (an intake that was refused or got no answer may be absent, never partial). Only the children
    registered during this load count: a demo child may bear the same name."""
    from casework.audit import AuditEvent
    from casework.cases.models import Case, Child

    sent = Counter(name for name, _ in load.intakes)
    problems = []
    with target.app.app_context():
        children = db.session.scalars(
            select(Child).where(Child.commune_code.in_(COMMUNES), Child.created_at >= load.since)
        ).all()
        by_name: dict[str, list] = {}
        for child in children:
            if child.full_name in sent:
                by_name.setdefault(child.full_name, []).append(child)
        for name, found in by_name.items():
            if len(found) > sent[name]:
                problems.append(f"{name!r} registered {len(found)} times")
            for child in found:
                cases = db.session.scalars(select(Case).where(Case.child_id == child.id)).all()
                if len(cases) != 1:
                    problems.append(f"{name!r} has {len(cases)} cases")
                for case in cases:
                    event = db.session.scalar(
                        select(AuditEvent.seq).where(
                            AuditEvent.action == "case.intake", AuditEvent.object_id == str(case.id)
                        )
                    )
                    if event is None:
                        problems.append(f"case {case.id} has no intake event")
        db.session.remove()
    return problems


def web_log(target: LoadStack) -> str:
    """The end of gunicorn's log, for a failure's message (the stack's folder is a temporary one)."""
    return "gunicorn's log ends:\n" + target.stack.log("web")[-6000:]


def audit_verifies(target: LoadStack) -> tuple[bool, str]:
    result = target.stack.cli("audit", "verify")
    return result.returncode == 0, (result.stdout + result.stderr)[-2000:]


def summary(answers: list[Answer]) -> str:
    by_action = Counter((a.action, a.status) for a in answers)
    return ", ".join(f"{action} {status}: {n}" for (action, status), n in sorted(by_action.items(), key=str))


# --- 50 users --------------------------------------------------------------------------------------------------------


@pytest.mark.soak
def test_fifty_users_at_once_get_no_server_error_and_every_acknowledged_write_is_kept(load_stack):
    seconds = SOAK_SECONDS or SHORT_SECONDS
    load = Load(load_stack.stack.url)
    users = people(load, load_stack, web_workers=22, api_workers=18, supervisors=5, committee=5)
    run = Run(users)
    time.sleep(seconds)
    # A slow machine goes on a little, until every kind of write has been acknowledged at least once.
    run.until(lambda: {ack.kind for ack in load.acks} >= WRITES)
    assert run.stop() == [], "these simulated users never came back"
    assert load.crashes == []
    failures = [a for a in load.answers if a.status is None or a.status >= 500]
    assert failures == [], f"{len(failures)} server errors or no answer: {failures[:3]}\n{web_log(load_stack)}"
    assert unexpected_refusals(load.answers) == []
    assert all(u.signed_in for u in users), "someone could not sign in"
    # The run did the work it was meant to: every kind of write, everyone busy.
    assert {ack.kind for ack in load.acks} >= WRITES, Counter(ack.kind for ack in load.acks)
    assert {a.user for a in load.answers if a.action not in {"sign_in", "probe"}} == {u.name for u in users}

    assert missing_writes(load_stack, load) == []
    assert half_done_intakes(load_stack, load) == []
    ok, report = audit_verifies(load_stack)
    assert ok, report


# --- PostgreSQL restarted ---------------------------------------------------------------------------------------------


def expected_page_title(app) -> str:
    """The 503 page's heading as the Vietnamese interface shows it."""
    with app.test_request_context(), force_locale("vi"):
        return str(escape(gettext("Temporarily unavailable")))


def clear_503(answer: Answer, title: str) -> bool:
    """A 503 a person or a program can act on: it says what happened, and when to try again."""
    if answer.status != 503 or not answer.retry_after or not answer.retry_after.isdigit():
        return False
    if answer.path.startswith("/api/"):
        return answer.error == "database_unavailable"
    return title in answer.body and '<html lang="vi">' in answer.body


def succeeded(answer: Answer) -> bool:
    return answer.status is not None and answer.status < 400


def booted_workers(stack: Stack) -> int:
    return stack.log("web").count("Booting worker")


def wait_for_health(url: str, status: int, timeout: float = 60) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/healthz", timeout=10).status_code == status:
                return time.monotonic()
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise AssertionError(f"/healthz did not answer {status} within {timeout:.0f}s")


def test_postgresql_restarted_under_load_answers_503_then_recovers_without_losing_writes(load_stack):
    stack, pg = load_stack.stack, load_stack.pg
    url = stack.url
    title = expected_page_title(load_stack.app)
    load = Load(url)
    users = people(load, load_stack, web_workers=4, api_workers=4, supervisors=1, committee=1)
    web_probe, api_probe = people(load, load_stack, web_workers=1, api_workers=1, supervisors=0, committee=0)
    assert web_probe.sign_in() and api_probe.sign_in()
    gunicorn_pid, boots = stack.web.pid, booted_workers(stack)
    names = {u.name for u in users}
    run = Run(users)
    try:
        assert run.until(lambda: all(u.signed_in for u in users)), summary(load.answers)
        time.sleep(2)  # everyone at work

        down = time.monotonic()
        pg.pause()
        # While it is down: the health check says so, a page and an API call answer a clear 503 at once.
        assert requests.get(url + "/healthz", timeout=10).status_code == 503
        page = load.call(web_probe, "probe", "GET", "/")
        api = load.call(api_probe, "probe", "GET", "/api/v1/cases")
        time.sleep(5)
        pg.resume()
        healthy = wait_for_health(url, 200)
        # The same load after the restart, until each of them has been served again.
        served = run.until(lambda: names <= {a.user for a in load.answers if a.started > healthy and succeeded(a)})
        time.sleep(1)
    finally:
        gone = run.stop()
        pg.resume()
        web_probe.http.close()
        api_probe.http.close()

    assert page is not None and page.status_code == 503 and title in page.text, page.text[:500] if page else None
    assert page.headers["Retry-After"] == "5"
    assert api is not None and api.status_code == 503
    assert api.json()["error"]["code"] == "database_unavailable" and api.headers["Retry-After"] == "5"

    assert gone == [], "these simulated users never came back"
    assert load.crashes == []
    no_answer = [a for a in load.answers if a.status is None]
    assert no_answer == [], "requests hung or were cut off"
    unclear = [a for a in load.answers if a.status >= 500 and not clear_503(a, title)]
    assert unclear == [], f"server errors other than a clear 503: {unclear[:3]}\n{web_log(load_stack)}"
    assert any(a.status == 503 for a in load.answers if a.action != "probe"), summary(load.answers)
    outside = [a for a in load.answers if a.status == 503 and not (a.ended >= down and a.started <= healthy)]
    assert outside == [], f"503 while the database was up: {outside[:3]}"
    after = [a for a in load.answers if a.started > healthy]
    assert served and all(a.status < 500 for a in after), summary(after)
    assert unexpected_refusals(load.answers) == []

    # Recovered by itself: the same gunicorn and the same workers, no restart; the rq worker is still there.
    assert stack.web.poll() is None and stack.web.pid == gunicorn_pid
    assert booted_workers(stack) == boots, web_log(load_stack)
    assert stack.worker.poll() is None, stack.log("worker")[-3000:]

    assert missing_writes(load_stack, load) == []
    assert half_done_intakes(load_stack, load) == []
    ok, report = audit_verifies(load_stack)
    assert ok, report


# --- the 503 in-process, on both backends -----------------------------------------------------------------------------


def _connection_lost(*_args, **_kwargs):
    """What SQLAlchemy raises when the server went away in the middle of a query."""
    raise sa_exc.OperationalError(
        "SELECT 1", {}, ConnectionError("server closed the connection unexpectedly"), connection_invalidated=True
    )


@pytest.fixture
def worker(make_user):
    return make_user("social_worker", communes=("06970",), username="hoa", full_name="Trần Thị Hoa")


def test_a_page_whose_database_is_unreachable_answers_a_503_page_in_vietnamese(client, worker, monkeypatch):
    from casework.cases import search

    AuthActions(client).login(worker.username)
    monkeypatch.setattr(search, "search", _connection_lost)
    response = client.get("/cases/?q=Hoa")
    page = response.get_data(as_text=True)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    with force_locale("vi"):
        assert str(escape(gettext("Temporarily unavailable"))) in page
        assert str(escape(gettext(ADVICE))) in page
    assert "Trần Thị Hoa" not in page  # rendered without reading the user again
    monkeypatch.undo()
    assert client.get("/cases/?q=Hoa").status_code == 200  # the same session works once the database answers


def test_a_connection_lost_once_the_page_was_ready_still_sends_the_page(client, worker, monkeypatch):
    """The database shut down while the page rendered: closing the session fails on the dead connection, at the
    end of the request. That must not turn the page, ready by then, into a 500."""
    from sqlalchemy.orm import Session

    AuthActions(client).login(worker.username)
    real_close = Session.close
    failed = []

    def close_on_a_dead_connection(session):
        real_close(session)
        if not failed:
            failed.append(True)
            _connection_lost()

    monkeypatch.setattr(Session, "close", close_on_a_dead_connection)
    response = client.get("/cases/?q=Hoa")
    assert failed and response.status_code == 200
    assert "Trần Thị Hoa" in response.get_data(as_text=True)


def test_an_api_call_whose_database_is_unreachable_answers_json_database_unavailable(
    client, worker, api_token, monkeypatch
):
    from casework.cases import search

    token = api_token(worker)
    monkeypatch.setattr(search, "search", _connection_lost)
    response = client.get("/api/v1/cases", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.is_json
    error = response.get_json()["error"]
    assert error["code"] == "database_unavailable" and error["message"]


def test_a_write_cut_off_by_the_database_leaves_nothing_behind(client, worker, api_token, monkeypatch):
    """The note is written and flushed, then the connection drops before the commit: nothing of it stays."""
    from casework import audit
    from casework.audit import AuditEvent
    from casework.cases import operations
    from casework.cases.models import CaseNote
    from tests.test_cases_web import intake_payload

    case = operations.open_case(operations.validate_intake(intake_payload(), worker), worker)
    db.session.commit()
    case_id = str(case.id)
    token = api_token(worker)
    events_before = db.session.scalar(select(func.count()).select_from(AuditEvent))
    real_add_note = operations.add_note

    def add_then_lose_the_connection(*args, **kwargs):
        real_add_note(*args, **kwargs)
        audit.record("case.note", object_type="case", object_id=case_id)
        db.session.flush()
        _connection_lost()

    monkeypatch.setattr(operations, "add_note", add_then_lose_the_connection)
    response = client.post(
        f"/api/v1/cases/{case_id}/notes", json={"body": "Ghi chú"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 503
    db.session.rollback()
    assert db.session.scalars(select(CaseNote)).all() == []
    assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == events_before
    assert audit.verify().ok


def test_a_bug_in_a_query_is_still_a_server_error_not_an_outage(client, worker, monkeypatch):
    """sqlite3 calls a mistyped column an OperationalError too: that is a bug, and must not hide behind a 503."""
    import sqlite3

    from casework import unavailable as outage
    from casework.cases import search

    bug = sa_exc.OperationalError("SELECT nope", {}, sqlite3.OperationalError("no such column: nope"))
    assert not outage.is_database_unavailable(bug)
    assert outage.is_database_unavailable(
        sa_exc.OperationalError("SELECT 1", {}, sqlite3.OperationalError("database is locked"))
    )
    assert outage.is_database_unavailable(sa_exc.TimeoutError("QueuePool limit of size 5 overflow 10 reached"))
    assert not outage.is_database_unavailable(sa_exc.IntegrityError("INSERT", {}, Exception("duplicate key")))

    AuthActions(client).login(worker.username)

    def raise_bug(*_args, **_kwargs):
        raise bug

    monkeypatch.setattr(search, "search", raise_bug)
    with pytest.raises(sa_exc.OperationalError):  # TESTING propagates what would be a 500 in production
        client.get("/cases/?q=Hoa")
