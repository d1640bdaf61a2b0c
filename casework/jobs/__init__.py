"""One way to run background work.

With ``CASEWORK_REDIS_URL`` set, :func:`launch` enqueues the job to rq and ``casework worker`` runs it; without it,
the job runs inline, in the request that launched it. Either way a :class:`~casework.jobs.models.Job` row records
who started it, its progress and its result.

A task is a function registered with :func:`task`. It receives a :class:`JobContext` and the job's parameters (ids
and plain values, never ORM objects), owns its transaction, and must be safe to run twice::

    @task("locations.reload_units")
    def reload_units(ctx: JobContext) -> dict: ...
"""

from __future__ import annotations

import logging
import traceback
import uuid
from collections.abc import Callable
from typing import Any

from flask import current_app

from casework.dbtypes import utcnow
from casework.extensions import db
from casework.jobs.models import Job

logger = logging.getLogger(__name__)

TASKS: dict[str, Callable[..., Any]] = {}
QUEUE_NAME = "casework"


def task(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a function as the background task ``name``."""

    def register(func: Callable[..., Any]) -> Callable[..., Any]:
        TASKS[name] = func
        return func

    return register


class JobContext:
    """What a running task sees: its job row and a way to report progress."""

    def __init__(self, job: Job) -> None:
        self.job = job

    def progress(self, percent: int, message: str = "") -> None:
        """Record progress and commit the task's work so far (tasks work in committed batches)."""
        self.job.progress = max(0, min(100, int(percent)))
        self.job.message = message[:500]
        db.session.commit()


def redis_connection():
    """Return a Redis connection when ``CASEWORK_REDIS_URL`` is set, else None."""
    url = current_app.config.get("CASEWORK_REDIS_URL")
    if not url:
        return None
    from redis import Redis

    return Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)


def launch(task_name: str, *, actor=None, **params: Any) -> Job:
    """Start ``task_name``: record the job, commit, then enqueue it or run it inline.

    The launching request's transaction is committed first, so the worker sees the job row and whatever the
    request wrote before it.
    """
    if task_name not in TASKS:
        raise KeyError(f"unknown task {task_name!r}")
    job = Job(task=task_name, params=params, created_by_id=getattr(actor, "id", None))
    db.session.add(job)
    db.session.commit()
    connection = redis_connection()
    if connection is None:
        run(job.id)
    else:
        from rq import Queue

        Queue(QUEUE_NAME, connection=connection).enqueue(
            "casework.jobs.worker.execute",
            str(job.id),
            job_id=str(job.id),
            job_timeout=6 * 3600,
            result_ttl=86400,
            failure_ttl=7 * 86400,
        )
    db.session.refresh(job)
    return job


def run(job_id: uuid.UUID | str) -> None:
    """Run a recorded job in the current app context (inline or inside the worker)."""
    job = db.session.get(Job, uuid.UUID(str(job_id)))
    if job is None:
        logger.warning("job %s not found", job_id)
        return
    if job.status == "finished":
        return  # already done: running twice changes nothing
    func = TASKS[job.task]
    job.status = "running"
    job.attempts += 1
    job.started_at = job.started_at or utcnow()
    job.error = None
    db.session.commit()
    try:
        result = func(JobContext(job), **job.params)
    except Exception:
        db.session.rollback()
        job = db.session.get(Job, job.id)
        job.status = "failed"
        job.error = traceback.format_exc(limit=5)[-4000:]
        job.finished_at = utcnow()
        db.session.commit()
        logger.exception("job %s (%s) failed", job.id, job.task)
        return
    job.status = "finished"
    job.progress = 100
    job.result = result if isinstance(result, dict) else {"value": result}
    job.finished_at = utcnow()
    db.session.commit()
