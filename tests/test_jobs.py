"""Background jobs: inline without Redis (SQLite app), through a real Redis and rq worker (PostgreSQL app)."""

from __future__ import annotations

import uuid

import pytest

from casework import jobs
from casework.extensions import db
from casework.jobs.models import Job
from tests.conftest import AuthActions, casework_cli, csrf_from, wait_for_job


@pytest.fixture
def runner(app, request):
    """Make sure a real rq worker runs when the app has Redis."""
    if app.config["CASEWORK_REDIS_URL"]:
        worker = request.getfixturevalue("rq_worker")
        assert worker.poll() is None, "the rq worker died"
    return app.config["CASEWORK_REDIS_URL"] is not None


def test_a_job_runs_to_the_end_and_records_its_progress_and_result(app, runner, make_user):
    user = make_user("admin")
    job = jobs.launch("jobs.selfcheck", actor=user, steps=4)
    if runner:
        assert job.status in {"queued", "running", "finished"}  # handed to the worker, not run here
    job = wait_for_job(job.id)
    assert job.status == "finished", job.error
    assert job.progress == 100
    assert job.message == "step 4 of 4"
    assert job.result == {"steps": 4}
    assert job.attempts == 1
    assert job.created_by_id == user.id


def test_a_failing_job_is_recorded_as_failed_with_its_error(app, runner):
    job = wait_for_job(jobs.launch("jobs.selfcheck", steps=2, fail=True).id)
    assert job.status == "failed"
    assert "selfcheck asked to fail" in job.error
    assert job.progress == 100  # the work done before the failure was committed


def test_running_a_finished_job_again_changes_nothing(app, runner):
    job = wait_for_job(jobs.launch("jobs.selfcheck", steps=1).id)
    finished_at = job.finished_at
    jobs.run(job.id)
    db.session.expire_all()
    again = db.session.get(Job, job.id)
    assert again.attempts == 1 and again.finished_at == finished_at


def test_unknown_tasks_are_refused_before_anything_is_recorded(app):
    with pytest.raises(KeyError):
        jobs.launch("no.such.task")
    assert db.session.query(Job).count() == 0


def test_admin_reloads_units_as_a_job_and_follows_its_progress_page(app, runner, make_user, client):
    make_user("admin", username="jobadmin")
    AuthActions(client).login("jobadmin")
    page = client.get("/jobs/").get_data(as_text=True)
    response = client.post("/jobs/reload-units", data={"csrf_token": csrf_from(page)})
    assert response.status_code == 302
    job_id = uuid.UUID(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    job = wait_for_job(job_id)
    assert job.status == "finished", job.error
    assert job.result["communes"] == {"added": 0, "updated": 0}
    html = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert "Đã xong." in html and "100%" in html
    assert 'http-equiv="refresh"' not in html  # a finished job's page stops refreshing


def test_a_running_jobs_page_shows_its_progress_and_refreshes_itself(app, make_user, client):
    user = make_user("social_worker", username="watcher")
    job = Job(
        task="jobs.selfcheck", params={}, status="running", progress=40, message="step 2 of 5", created_by_id=user.id
    )
    db.session.add(job)
    db.session.commit()
    token = csrf_from(client.get("/login").get_data(as_text=True))
    client.post("/login", data={"csrf_token": token, "username": "watcher", "password": "correct horse battery"})
    html = client.get(f"/jobs/{job.id}").get_data(as_text=True)
    assert 'value="40"' in html and "step 2 of 5" in html
    assert 'http-equiv="refresh"' in html


def test_nobody_else_sees_a_users_job(app, make_user, client):
    owner = make_user("admin", username="owner")
    make_user("admin", username="other")
    job = Job(task="jobs.selfcheck", params={}, created_by_id=owner.id)
    db.session.add(job)
    db.session.commit()
    AuthActions(client).login("other")
    assert client.get(f"/jobs/{job.id}").status_code == 404


def test_only_admins_may_reload_units(app, make_user, client):
    make_user("social_worker", username="notadmin")
    token = csrf_from(client.get("/login").get_data(as_text=True))
    client.post("/login", data={"csrf_token": token, "username": "notadmin", "password": "correct horse battery"})
    page = client.get("/jobs/").get_data(as_text=True)
    assert client.post("/jobs/reload-units", data={"csrf_token": csrf_from(page)}).status_code == 403
    assert db.session.query(Job).count() == 0


def test_jobs_check_command_proves_the_worker_runs(app, app_env, runner):
    result = casework_cli(app_env, "jobs", "check", "--timeout", "60")
    assert result.returncode == 0, result.stderr
    assert ("rq worker" if runner else "inline") in result.stdout
