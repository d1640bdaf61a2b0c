"""Background jobs survive a killed worker and a stopped Redis (issue #8, "Load and faults").

casework runs as in production, in processes (gunicorn through ``casework serve``, ``casework worker``), over a
PostgreSQL database of this module's own on the session's server and a Redis of its own, which the tests stop and
start again. The lease is 3 seconds (``CASEWORK_JOB_LEASE_SECONDS``), so that a job whose worker was killed is
handed over again within seconds of a new worker starting, instead of two minutes.

- The worker is killed with SIGKILL half-way through a key rotation, and half-way through a statistics export: rq
  alone would leave each in its started registry until the job timeout (6 hours), and the job's row "running"
  forever. After a restart each finishes, on its second attempt, with nothing lost or done twice: every value is
  under the new key once and decrypts to what it was; one export file, one row, one audit event.
- Redis is stopped while the web server runs: sign-in, the caseload, a case and an API list still answer 200; an
  export that needs a job is kept and says so; once Redis is back the job runs without anyone's help.
"""

from __future__ import annotations

import html
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests
from sqlalchemy import func, select, text

from casework.dbtypes import utcnow
from tests.conftest import BACKENDS, build_app, csrf_from, unavailable
from tests.services import RedisServer, ServiceUnavailable
from tests.stack import Stack, casework_env

pytestmark = pytest.mark.postgres_only

LEASE_SECONDS = 3
DEMO_PASSWORD = "casework-demo"
#: Two years, without a breakdown: too long a period to export while the request waits, so the export is a job.
LONG_PERIOD = {"kind": "custom", "from": "01/01/2024", "to": "31/12/2025", "breakdown": ""}
JOB_ID = re.compile(r"re-encryption job ([0-9a-f-]{36})")


@pytest.fixture(scope="module")
def redis():
    if "postgresql" not in BACKENDS:
        pytest.skip("the fault tests run casework over PostgreSQL and Redis")
    server = RedisServer()
    try:
        server.start()
    except (ServiceUnavailable, OSError) as exc:
        unavailable(f"Redis: {exc}")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stack(pg_server, redis, tmp_path_factory):
    """casework's web server and worker over a database with 200 demo cases (and their plans and payments)."""
    env = casework_env(
        pg_server.create_database(f"casework_faults_{uuid.uuid4().hex[:8]}"),
        tmp_path_factory.mktemp("faults"),
        redis.url,
        CASEWORK_JOB_LEASE_SECONDS=str(LEASE_SECONDS),
    )
    stack = Stack(env)
    try:
        try:
            stack.prepare()
            seeded = stack.cli("demo", "--cases", "200", "--seed", "8")
            assert seeded.returncode == 0, seeded.stderr[-2000:]
            stack.start_web()
            stack.start_worker()
        except ServiceUnavailable as exc:
            unavailable(str(exc))
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def inspector(stack):
    """An app on the stack's database, for the tests to read what the processes wrote."""
    from casework.extensions import db

    app = build_app(stack.env)
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def browser(stack) -> Iterator[Callable[[str], requests.Session]]:
    """Factory: ``browser("worker")`` signs a demo user in through the form; the sessions are closed at the end (an
    open keep-alive connection makes gunicorn wait before it stops)."""
    sessions: list[requests.Session] = []

    def sign_in(username: str) -> requests.Session:
        session = requests.Session()
        sessions.append(session)
        token = csrf_from(session.get(stack.url + "/login", timeout=30).text)
        response = session.post(
            stack.url + "/login",
            data={"csrf_token": token, "username": username, "password": DEMO_PASSWORD},
            allow_redirects=False,
            timeout=30,
        )
        assert response.status_code == 302, response.text[-1000:]
        assert "/login" not in response.headers["Location"], "signed in without a second step"
        return session

    yield sign_in
    for session in sessions:
        session.close()


def wait_for(condition: Callable[[], object], what: str, stack: Stack, timeout: float = 60, every: float = 0.05):
    """Poll ``condition`` until it holds and return its value; on time-out, fail with the worker's last lines."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{stack.log('worker')[-3000:]}")
        time.sleep(every)


def job_row(app, job_id):
    from casework.extensions import db
    from casework.jobs.models import Job

    with app.app_context():
        job = db.session.get(Job, uuid.UUID(str(job_id)))
        db.session.expunge_all()
        db.session.remove()
        return job


def assert_stuck(app, job_id, redis_url: str) -> None:
    """The killed attempt's job: its row still says running and moves no more; rq would never run it again."""
    from redis import Redis
    from rq.registry import StartedJobRegistry

    from casework.jobs import QUEUE_NAME

    frozen = job_row(app, job_id)
    assert frozen.status == "running" and frozen.attempts == 1
    time.sleep(LEASE_SECONDS + 0.5)
    later = job_row(app, job_id)
    assert (later.status, later.progress, later.attempts) == ("running", frozen.progress, 1)
    assert later.lease_expires_at < utcnow(), "nobody renews the lease of a killed worker's job"
    with Redis.from_url(redis_url) as connection:
        started = StartedJobRegistry(QUEUE_NAME, connection=connection).get_job_ids()
    assert str(job_id) in started, "rq keeps the killed job as started, and would not run it again"


@contextmanager
def table_locked(app, table: str, mode: str) -> Iterator[Callable[[], bool]]:
    """Hold a lock on ``table`` so that a job stops, half-way, at its first statement the lock blocks; yield a check
    that some statement waits for it."""
    from casework.extensions import db

    with app.app_context():
        engine = db.engine
    with engine.connect() as holder:
        holder.execute(text(f"LOCK TABLE {table} IN {mode} MODE"))

        def blocked() -> bool:
            with engine.connect() as observer:
                waiting = observer.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND datname = current_database()"
                    )
                ).scalar()
            return waiting > 0

        try:
            yield blocked
        finally:
            holder.rollback()


# --- a worker killed half-way ----------------------------------------------------------------------------------


def encrypted_values() -> dict[tuple[str, str, str], str]:
    """Every encrypted value in the database, decrypted, by table, column and row."""
    from casework.extensions import db
    from casework.security import fields

    values = {}
    for owner, field in fields.REGISTRY:
        if not hasattr(owner, "__table__"):
            continue
        column = getattr(owner, field.column)
        for row_id, stored in db.session.execute(select(owner.id, column).where(column.is_not(None))):
            plain = fields.decrypt_value(stored, table=field.table, column=field.column, row_id=row_id)
            values[(field.table, field.column, str(row_id))] = plain
    return values


def keys_in_use() -> dict[str, tuple[int, int]]:
    """Values and blind-index entries under each data key."""
    from casework.security import rotation
    from casework.security.keys import keyring

    ring = keyring()
    ring.forget()  # another process made a key
    return {row["id"]: (row["values"], row["index_entries"]) for row in rotation.key_status(ring)}


def test_a_key_rotation_killed_half_way_finishes_after_a_restart_with_every_value_once(stack, inspector, redis):
    from casework.extensions import db
    from casework.security import fields

    with inspector.app_context():
        before = encrypted_values()
        (old_key, (values, index_entries)), *others = keys_in_use().items()
        assert not others and values == len(before) > 500
        db.session.remove()

    # The re-encryption walks the tables in turn; held up at the cases, it has done the users and the children.
    with table_locked(inspector, "cases", "EXCLUSIVE") as blocked:
        rotated = stack.cli("keys", "rotate")  # the operator's command: a new key, and the re-encryption job
        assert rotated.returncode == 0, rotated.stderr[-2000:]
        job_id = JOB_ID.search(rotated.stdout).group(1)
        wait_for(
            lambda: (job := job_row(inspector, job_id)).status == "running" and 1 <= job.progress <= 99 and blocked(),
            "the re-encryption to be under way",
            stack,
        )
        stack.kill_worker()
    assert_stuck(inspector, job_id, redis.url)
    with inspector.app_context():
        (_, (old_left, _)), (new_key, (new_done, _)) = keys_in_use().items()
        db.session.remove()
    assert old_left and new_done, "the killed attempt had re-encrypted part of the values, not all"

    stack.start_worker()
    job = wait_for(lambda: (j := job_row(inspector, job_id)).done and j, "the re-encryption to finish", stack)
    assert job.status == "finished", job.error
    assert job.attempts == 2 and job.queue_id == f"{job_id}-2"

    with inspector.app_context():
        keys = keys_in_use()
        assert keys[old_key] == (0, 0), "a value or an index entry stayed under the old key"
        assert keys[new_key] == (values, index_entries), "a value or an index entry was lost, or made twice"
        assert encrypted_values() == before, "a value does not decrypt to what it was"
        for owner, field in fields.REGISTRY:  # every value under the new key, none under another
            if hasattr(owner, "__table__"):
                column = getattr(owner, field.column)
                elsewhere = select(func.count()).select_from(owner).where(column.is_not(None))
                elsewhere = elsewhere.where(~column.startswith(f"{fields.VERSION}:{new_key}:"))
                assert db.session.scalar(elsewhere) == 0, f"{field.table}.{field.column}"
        db.session.remove()
    verified = stack.cli("audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_an_export_killed_half_way_finishes_after_a_restart_with_one_file(stack, inspector, redis, browser):
    from casework.audit import AuditEvent
    from casework.extensions import db
    from casework.security import files
    from casework.stats.tasks import FILE_OWNER

    committee = browser("committee")
    # The export computes its indicators in turn; held up at the services given, it has computed four of them.
    with table_locked(inspector, "service_records", "ACCESS EXCLUSIVE") as blocked:
        response = committee.get(
            stack.url + "/stats/export.xlsx", params=LONG_PERIOD, allow_redirects=False, timeout=60
        )
        assert response.status_code == 302, response.text[-1000:]
        job_url = urljoin(stack.url, response.headers["Location"])
        job_id = job_url.rstrip("/").rsplit("/", 1)[1]
        wait_for(
            lambda: (job := job_row(inspector, job_id)).status == "running" and 1 <= job.progress <= 89 and blocked(),
            "the export to be under way",
            stack,
        )
        stack.kill_worker()
    assert_stuck(inspector, job_id, redis.url)
    assert committee.get(job_url, timeout=30).status_code == 200  # its page still answers, showing the progress

    stack.start_worker()
    job = wait_for(lambda: (j := job_row(inspector, job_id)).done and j, "the export to finish", stack)
    assert job.status == "finished", job.error
    assert job.attempts == 2 and job.queue_id == f"{job_id}-2"

    with inspector.app_context():
        stored = db.session.scalars(
            select(files.StoredFile).where(
                files.StoredFile.owner_type == FILE_OWNER, files.StoredFile.owner_id == job_id
            )
        ).all()
        assert len(stored) == 1 and job.result["file_id"] == str(stored[0].id)
        generated = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "file.generate", AuditEvent.object_id == str(stored[0].id))
        ).all()
        exports = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "stats.export", AuditEvent.actor_username == "committee")
        ).all()
        assert len(generated) == 1 and len(exports) == 1, "the export was recorded twice"
        # On disk too, one file for each row: the killed attempt left none behind.
        rows = db.session.scalar(select(func.count()).select_from(files.StoredFile))
        assert len(list((Path(stack.env["CASEWORK_INSTANCE"]) / "files").rglob("*.cwf"))) == rows
        db.session.remove()
    download = committee.get(job_url + "/download", timeout=60)
    assert download.status_code == 200 and download.content[:2] == b"PK"  # an XLSX is a ZIP


# --- Redis stopped -------------------------------------------------------------------------------------------------


def test_without_redis_pages_and_api_reads_answer_and_an_export_waits_for_it(stack, inspector, redis, browser):
    redis.stop()
    try:
        health = requests.get(stack.url + "/healthz", timeout=30)
        assert health.status_code == 200 and health.json()["redis"] == "unreachable"

        worker = browser("worker")  # sign-in's rate limit falls back to memory
        caseload = worker.get(stack.url + "/cases/", timeout=30)
        assert caseload.status_code == 200
        case_id = re.search(r'href="/cases/([0-9a-f-]{36})"', caseload.text).group(1)
        assert worker.get(f"{stack.url}/cases/{case_id}", timeout=30).status_code == 200

        token = requests.post(
            stack.url + "/api/v1/tokens", json={"username": "worker", "password": DEMO_PASSWORD}, timeout=30
        )
        assert token.status_code == 201, token.text
        listed = requests.get(
            stack.url + "/api/v1/cases", headers={"Authorization": f"Bearer {token.json()['token']}"}, timeout=30
        )
        assert listed.status_code == 200 and listed.json()["items"]

        committee = browser("committee")
        response = committee.get(stack.url + "/stats/export.xlsx", params=LONG_PERIOD, timeout=60)
        assert response.status_code == 200, response.text[-1000:]  # the job's page
        job_id = response.url.rstrip("/").rsplit("/", 1)[1]
        job = job_row(inspector, job_id)
        assert job.status == "queued" and job.waiting_for_queue and job.attempts == 0
        note = job.message
        assert note and html.escape(note) in response.text, "the page says why the export waits"
        time.sleep(1)
        assert job_row(inspector, job_id).status == "queued"  # kept: neither lost nor failed
    finally:
        redis.start()  # on the same port: the web server and the worker find it again by themselves

    job = wait_for(
        lambda: (j := job_row(inspector, job_id)).done and j, "the export to run once Redis is back", stack, timeout=90
    )
    assert job.status == "finished", job.error
    assert job.attempts == 1 and job.enqueued_at > job.created_at + timedelta(seconds=1)
    assert job.message != note  # the note went with the wait
    download = committee.get(f"{stack.url}/stats/exports/{job_id}/download", timeout=60)
    assert download.status_code == 200 and download.content[:2] == b"PK"
    assert requests.get(stack.url + "/healthz", timeout=30).json()["redis"] == "ok"


# --- the rules of the sweep, on the same stack ------------------------------------------------------------------


def test_a_job_whose_worker_kept_dying_is_failed_instead_of_run_forever(stack, inspector):
    from casework import jobs
    from casework.extensions import db
    from casework.jobs.models import Job

    with inspector.app_context():
        job = Job(
            task="jobs.selfcheck",
            params={},
            status="running",
            progress=40,
            attempts=jobs.MAX_ATTEMPTS,
            queue_id="lost",
            lease_expires_at=utcnow() - timedelta(seconds=1),
        )
        db.session.add(job)
        db.session.commit()
        job_id = job.id
        db.session.remove()
    # The running worker's own sweep, every half-lease, finds it.
    job = wait_for(lambda: (j := job_row(inspector, job_id)).done and j, "the sweep to give the job up", stack)
    assert job.status == "failed" and job.attempts == jobs.MAX_ATTEMPTS and job.progress == 40
    assert f"the worker stopped {jobs.MAX_ATTEMPTS} times" in job.error


def test_an_attempt_whose_job_was_handed_over_stops_and_writes_nothing(stack, inspector):
    from casework import jobs
    from casework.extensions import db
    from casework.jobs.models import Job

    with inspector.app_context():
        job = Job(
            task="jobs.selfcheck",
            params={},
            status="running",
            progress=40,
            attempts=2,
            queue_id="handed-over-2",
            lease_expires_at=utcnow() + timedelta(minutes=5),
        )
        db.session.add(job)
        db.session.commit()
        job_id = job.id
        old_attempt = jobs.JobContext(job, queue_id="handed-over")
        with pytest.raises(jobs.JobSuperseded):
            old_attempt.progress(90, "too late")
        current = jobs.JobContext(job, queue_id="handed-over-2")
        current.progress(60, "step 3 of 5")
        db.session.remove()
    job = job_row(inspector, job_id)
    assert (job.progress, job.message, job.status) == (60, "step 3 of 5", "running")
