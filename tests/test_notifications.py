"""Deadline reminders and alerts: once each, never twice, to the right people; the inbox; the rq schedule.

Time is controlled by setting ``next_deadline_at`` and passing ``now`` to :func:`operations.tick`: most tests work in
2031, so that the deadline check the PostgreSQL session's rq worker runs every few minutes (on the real clock)
never sends what a test is counting.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from casework.audit import AuditEvent
from casework.auth.models import User
from casework.cases import operations as case_operations
from casework.cases.models import Case
from casework.dbtypes import utcnow
from casework.extensions import db
from casework.notifications import operations, schedule
from casework.notifications.models import Notification
from casework.security.text import fold
from tests.conftest import AuthActions, csrf_from

CHILD_NAME = "Hoàng Thị Mai Phương"
#: "Now" in most tests: far from the real clock (see the module's docstring).
NOW = datetime(2031, 3, 3, 2, 0, tzinfo=UTC)


# --- helpers ----------------------------------------------------------------------------------------------------------


@pytest.fixture
def worker(make_user):
    return make_user("social_worker", communes=("06970",), username="worker", full_name="Trần Thị Hoa")


@pytest.fixture
def supervisor(make_user):
    return make_user("supervisor", communes=("06970",), username="supervisor")


@pytest.fixture
def make_case(worker):
    """Factory: ``make_case(due=..., actor=...)`` opens a case through the rules (assigned to its opener) and sets
    its deadline (``due=None`` keeps the workflow's)."""

    def factory(*, due: datetime | None = None, actor=None, commune: str = "06970", danger: bool = False) -> Case:
        actor = actor or worker
        payload = {
            "child": {"full_name": CHILD_NAME, "sex": "female", "birth_year": 2014, "commune_code": commune},
            "categories": ["violence_harm"],
            "risk_level": "high",
            "immediate_danger": danger,
            "source": "school",
            "received_at": "2025-03-01T08:00:00+07:00",
            "summary": "Cô giáo báo trẻ có vết bầm trên tay.",
        }
        case = case_operations.open_case(case_operations.validate_intake(payload, actor), actor)
        if due is not None:
            case.next_deadline_at = due
        db.session.commit()
        return case

    return factory


def notifications(**where) -> list[Notification]:
    """The committed notifications (of one user, kind or case), oldest first."""
    db.session.rollback()
    stmt = select(Notification).order_by(Notification.created_at, Notification.id)
    for name, value in where.items():
        stmt = stmt.where(getattr(Notification, name) == value)
    return list(db.session.scalars(stmt))


def tick(now: datetime = NOW) -> operations.TickResult:
    result = operations.tick(now=now)
    db.session.commit()
    return result


def signed_in(client, user, *, language: str | None = None) -> AuthActions:
    auth = AuthActions(client)
    response = auth.login(user.username)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    if language:
        client.get(f"/lang/{language}")
    return auth


def token_of(client) -> str:
    return csrf_from(client.get("/notifications").get_data(as_text=True))


def cli_process(app_env: dict[str, str], *args: str) -> subprocess.Popen:
    """Start the installed ``casework`` command with the backend's environment (as ``casework_cli`` runs it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASEWORK_")} | app_env
    exe = Path(sys.executable).with_name("casework")
    return subprocess.Popen([str(exe), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# --- who is told what, once -------------------------------------------------------------------------------------------


def test_a_case_due_in_three_hours_reminds_its_worker_once(worker, make_case):
    case = make_case(due=NOW + timedelta(hours=3))

    assert tick() == operations.TickResult(reminders=1, alerts=0)
    for _ in range(5):
        assert tick() == operations.TickResult(reminders=0, alerts=0)

    (reminder,) = notifications()
    assert (reminder.user_id, reminder.kind, reminder.case_id) == (worker.id, "deadline_soon", case.id)
    assert (reminder.case_number, reminder.stage, reminder.due_at) == (
        case.case_number,
        case.stage,
        case.next_deadline_at,
    )
    assert reminder.read_at is None
    # One audit event for the run that sent it, by the system, with counts and nothing about the child.
    (event,) = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "notifications.tick")).all()
    assert event.actor_id is None
    assert (event.details["reminders"], event.details["alerts"]) == (1, 0)
    assert CHILD_NAME not in str(event.details) and case.case_number not in str(event.details)


def test_a_reminder_waits_for_the_reminder_window(app, worker, make_case):
    hours = app.config["CASEWORK_REMINDER_HOURS"]
    case = make_case(due=NOW + timedelta(hours=hours, minutes=30))

    assert tick() == operations.TickResult()
    assert notifications() == []
    assert tick(NOW + timedelta(minutes=31)).reminders == 1
    assert [n.case_id for n in notifications()] == [case.id]


def test_nobody_is_reminded_of_an_unassigned_case_or_through_an_inactive_account(worker, make_case):
    unassigned = make_case(due=NOW + timedelta(hours=3))
    unassigned.assigned_to_id = None
    make_case(due=NOW + timedelta(hours=3))
    db.session.get(User, worker.id).active = False
    db.session.commit()

    assert tick() == operations.TickResult()
    assert notifications() == []


def test_a_passed_deadline_alerts_the_communes_supervisors_and_the_worker(worker, supervisor, make_user, make_case):
    elsewhere = make_user("supervisor", communes=("06979",), username="elsewhere")
    former = make_user("supervisor", communes=("06970",), username="former")
    former.active = False
    officer = make_user("provincial_officer", username="officer")
    db.session.commit()
    case = make_case(due=NOW - timedelta(hours=2))

    assert tick() == operations.TickResult(reminders=0, alerts=2)
    assert tick() == operations.TickResult()

    alerts = notifications(kind="deadline_passed")
    assert sorted(str(n.user_id) for n in alerts) == sorted([str(supervisor.id), str(worker.id)])
    assert {n.case_id for n in alerts} == {case.id}
    for user in (elsewhere, former, officer):
        assert notifications(user_id=user.id) == []
    assert notifications(kind="deadline_soon") == []  # too late to remind


def test_closed_cases_get_no_reminder_and_no_alert(supervisor, make_case):
    for due in (NOW + timedelta(hours=3), NOW - timedelta(hours=3)):
        case = make_case(due=due)
        case.closed_at, case.closure_reason = NOW - timedelta(days=1), "goals_met"
    db.session.commit()

    assert tick() == operations.TickResult()
    assert notifications() == []


def test_a_new_stage_brings_a_new_reminder(worker, make_case):
    from casework.support.operations import apply_transition

    case = make_case(danger=True)  # Decree 56/2017, Art. 31: 12 hours from the report, in both first stages
    due = case.next_deadline_at
    assert due == datetime(2025, 3, 1, 13, 0, tzinfo=UTC)
    before = due - timedelta(hours=3)

    assert tick(before).reminders == 1
    apply_transition(db.session.get(Case, case.id), worker, "initial_assessment", version=case.version)
    db.session.commit()
    assert tick(before + timedelta(minutes=5)).reminders == 1
    assert tick(before + timedelta(minutes=10)).reminders == 0

    reminders = notifications(kind="deadline_soon", user_id=worker.id)
    assert [(n.stage, n.due_at) for n in reminders] == [("report_received", due), ("initial_assessment", due)]


def test_a_moved_deadline_brings_a_new_reminder(worker, make_case):
    case = make_case(due=NOW + timedelta(hours=3))
    assert tick().reminders == 1
    case = db.session.get(Case, case.id)
    case.next_deadline_at = NOW + timedelta(hours=20)
    db.session.commit()

    assert tick().reminders == 1
    assert [n.due_at for n in notifications()] == [NOW + timedelta(hours=3), NOW + timedelta(hours=20)]


def test_the_deadline_check_works_through_many_cases_in_pages(app, worker, make_case, monkeypatch):
    monkeypatch.setattr(operations, "PAGE_SIZE", 2)
    cases = [make_case(due=NOW + timedelta(hours=1 + n)) for n in range(5)]

    assert tick().reminders == 5
    assert sorted(str(n.case_id) for n in notifications()) == sorted(str(c.id) for c in cases)
    assert tick().reminders == 0


def test_a_concurrent_run_waits_and_adds_nothing(app, worker, supervisor, make_case):
    """Two runs in two transactions at once: the second blocks on the first's rows, then inserts nothing."""
    make_case(due=NOW + timedelta(hours=3))
    make_case(due=NOW - timedelta(hours=3))
    db.session.commit()
    results: dict[str, operations.TickResult] = {}
    first_flushed, first_may_commit, second_done = threading.Event(), threading.Event(), threading.Event()

    def run(name: str, hold: bool) -> None:
        with app.app_context():
            try:
                results[name] = operations.tick(now=NOW)
                if hold:
                    first_flushed.set()
                    first_may_commit.wait(30)
                db.session.commit()
            finally:
                db.session.remove()
                if not hold:
                    second_done.set()

    first = threading.Thread(target=run, args=("first", True))
    first.start()
    assert first_flushed.wait(30)
    second = threading.Thread(target=run, args=("second", False))
    second.start()
    time.sleep(1.0)
    assert not second_done.is_set(), "the second run did not wait for the first"
    first_may_commit.set()
    first.join(30)
    second.join(30)

    assert results["first"] == operations.TickResult(reminders=1, alerts=2)
    assert results["second"] == operations.TickResult()
    assert len(notifications()) == 3


def test_two_casework_tick_processes_at_once_send_each_notification_once(app_env, worker, supervisor, make_case):
    now = utcnow()
    soon = make_case(due=now + timedelta(hours=3))
    late = make_case(due=now - timedelta(hours=3))

    processes = [cli_process(app_env, "tick") for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in processes]

    for process, (out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err
        assert re.match(r"deadline check: \d+ reminders, \d+ alerts sent\n", out), out
    assert [(n.user_id, n.kind) for n in notifications(case_id=soon.id)] == [(worker.id, "deadline_soon")]
    alerts = notifications(case_id=late.id)
    assert sorted((str(n.user_id), n.kind) for n in alerts) == sorted(
        [(str(worker.id), "deadline_passed"), (str(supervisor.id), "deadline_passed")]
    )


# --- the inbox --------------------------------------------------------------------------------------------------------


def test_the_inbox_shows_the_unread_count_and_the_message_without_the_childs_name(client, worker, make_case):
    case = make_case(due=utcnow() + timedelta(hours=5))
    tick(utcnow())
    signed_in(client, worker, language="en")

    page = client.get("/notifications").get_data(as_text=True)
    assert f"Deadline in 5 hours: Report received, case {case.case_number}" in page
    assert f'href="/cases/{case.id}"' in page
    assert "1 unread notification." in page
    assert re.search(r'id="nav-notifications">Notifications <span class="badge[^"]*"[^>]*>1</span>', page)
    for secret in (CHILD_NAME, fold(CHILD_NAME)):
        assert secret not in page and secret not in fold(page)

    client.get("/lang/vi")
    page = client.get("/notifications").get_data(as_text=True)
    assert "Tiếp nhận thông báo" in page  # the stage's label from the workflow, in the user's language


def test_an_alert_says_the_deadline_has_passed(client, worker, make_case):
    case = make_case(due=utcnow() - timedelta(hours=1))
    tick(utcnow())
    signed_in(client, worker, language="en")

    page = client.get("/notifications").get_data(as_text=True)
    assert f"Deadline passed: Report received, case {case.case_number}" in page


def test_marking_a_notification_read_lowers_the_count(client, worker, make_case):
    make_case(due=NOW + timedelta(hours=3))
    make_case(due=NOW - timedelta(hours=3))
    tick()
    first, second = notifications(user_id=worker.id)
    signed_in(client, worker, language="en")

    refused = client.post(f"/notifications/{first.id}/read")  # no CSRF token
    assert refused.status_code == 400
    assert operations.unread_count(worker) == 2

    response = client.post(f"/notifications/{first.id}/read", data={"csrf_token": token_of(client)})
    assert response.status_code == 302 and response.headers["Location"] == "/notifications"
    db.session.rollback()
    assert operations.unread_count(worker) == 1
    assert db.session.get(Notification, first.id).read_at is not None
    page = client.get("/notifications").get_data(as_text=True)
    assert "1 unread notification." in page

    client.post("/notifications/read-all", data={"csrf_token": token_of(client)})
    db.session.rollback()
    assert operations.unread_count(worker) == 0
    page = client.get("/notifications").get_data(as_text=True)
    assert "0 unread notifications." in page
    assert not re.search(r'id="nav-notifications">Notifications <span', page)


def test_someone_elses_notification_cannot_be_marked_or_seen(client, worker, make_user, make_case):
    case = make_case(due=NOW + timedelta(hours=3))
    tick()
    (mine,) = notifications(user_id=worker.id)
    colleague = make_user("social_worker", communes=("06970",), username="colleague")
    signed_in(client, colleague, language="en")
    token = token_of(client)

    assert client.post(f"/notifications/{mine.id}/read", data={"csrf_token": token}).status_code == 404
    assert client.post(f"/notifications/{uuid.uuid4()}/read", data={"csrf_token": token}).status_code == 404
    client.post("/notifications/read-all", data={"csrf_token": token})
    db.session.rollback()
    assert db.session.get(Notification, mine.id).read_at is None
    page = client.get("/notifications").get_data(as_text=True)
    assert case.case_number not in page and "You have no notifications." in page


@pytest.mark.parametrize("role", ["committee_member", "auditor", "admin"])
def test_every_role_has_an_inbox(client, make_user, role):
    user = make_user(role, username="someone")
    signed_in(client, user)
    response = client.get("/notifications")
    assert response.status_code == 200
    assert 'id="nav-notifications"' in response.get_data(as_text=True)


# --- the rq schedule ------------------------------------------------------------------------------------------------


def test_slots_are_multiples_of_the_period():
    assert schedule.slot_after(datetime(2031, 3, 3, 2, 3, 10, tzinfo=UTC), 5) == datetime(2031, 3, 3, 2, 5, tzinfo=UTC)
    assert schedule.slot_after(datetime(2031, 3, 3, 2, 5, tzinfo=UTC), 5) == datetime(2031, 3, 3, 2, 10, tzinfo=UTC)
    assert schedule.job_id(datetime(2031, 3, 3, 2, 5, tzinfo=UTC)) == "casework-tick-20310303T0205Z"


@pytest.fixture
def redis(app):
    from casework.jobs import redis_connection

    connection = redis_connection()
    if connection is None:
        pytest.skip("the rq scheduler needs Redis (the PostgreSQL backend's app has it)")
    return connection


@pytest.fixture
def private_queue(redis):
    """A queue no worker serves: what is scheduled on it stays in its ScheduledJobRegistry."""
    from rq import Queue
    from rq.registry import ScheduledJobRegistry

    queue = Queue(f"casework-test-{uuid.uuid4().hex}", connection=redis)
    yield queue
    registry = ScheduledJobRegistry(queue=queue)
    for job_id in registry.get_job_ids():
        registry.remove(job_id, delete_job=True)
    queue.delete(delete_jobs=True)


def test_scheduling_twice_schedules_the_tick_once(app, private_queue):
    from rq.registry import ScheduledJobRegistry

    first = schedule.ensure_scheduled(private_queue, now=NOW)
    second = schedule.ensure_scheduled(private_queue, now=NOW + timedelta(seconds=30))

    assert first == second == NOW + timedelta(minutes=app.config["CASEWORK_TICK_MINUTES"])
    registry = ScheduledJobRegistry(queue=private_queue)
    assert registry.get_job_ids() == [schedule.job_id(first)]
    assert registry.get_scheduled_time(schedule.job_id(first)) == first
    job = private_queue.fetch_job(schedule.job_id(first))
    assert job.func_name == schedule.FUNCTION and job.args == (first.isoformat(),)


def test_the_worker_runs_the_tick_and_schedules_the_next_one(app, redis, rq_worker, worker, make_case):
    from rq import Queue
    from rq.registry import ScheduledJobRegistry

    from casework.jobs import QUEUE_NAME

    queue = Queue(QUEUE_NAME, connection=redis)
    registry = ScheduledJobRegistry(queue=queue)
    minutes = app.config["CASEWORK_TICK_MINUTES"]

    def scheduled_ticks() -> list[str]:
        return [i for i in registry.get_job_ids() if i.startswith(schedule.JOB_PREFIX)]

    # `casework worker` scheduled the chain when it started: one run ahead, never two.
    deadline = time.monotonic() + 10
    while not scheduled_ticks() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(scheduled_ticks()) == 1

    case = make_case(due=utcnow() + timedelta(hours=3))
    job = queue.enqueue(schedule.FUNCTION, utcnow().isoformat(), job_id=f"{schedule.JOB_PREFIX}test-{uuid.uuid4().hex}")
    deadline = time.monotonic() + 60
    while not notifications(case_id=case.id) and time.monotonic() < deadline:
        time.sleep(0.3)

    assert [(n.user_id, n.kind) for n in notifications(case_id=case.id)] == [(worker.id, "deadline_soon")]
    deadline = time.monotonic() + 10
    while job.get_status(refresh=True) != "finished" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert job.get_status() == "finished"
    ahead = scheduled_ticks()
    assert len(ahead) == 1  # the run scheduled the next slot, which the chain already had: still one
    assert registry.get_scheduled_time(ahead[0]) <= utcnow() + timedelta(minutes=minutes)
    job.delete()


def test_casework_tick_prints_what_it_sent(app_env, worker, make_case):
    from tests.conftest import casework_cli

    make_case(due=utcnow() + timedelta(hours=3))
    result = casework_cli(app_env, "tick")
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(
        r"deadline check: [01] reminders, 0 alerts sent\nstatistics: \d+ dashboard views computed ahead of their "
        r"viewers\n",
        result.stdout,
    )
    assert db.session.scalar(select(func.count()).select_from(Notification)) == 1
