"""One way to run background work, which survives a killed worker and a stopped Redis.

With ``CASEWORK_REDIS_URL`` set, :func:`launch` records the job, then hands it over to rq, and ``casework worker``
runs it; without it, the job runs inline, in the request that launched it. Either way a
:class:`~casework.jobs.models.Job` row records who started it, its progress and its result.

A task is a function registered with :func:`task`. It receives a :class:`JobContext` and the job's parameters (ids
and plain values, never ORM objects), owns its transaction, and must be safe to run twice::

    @task("locations.reload_units")
    def reload_units(ctx: JobContext) -> dict: ...

**Hand-overs.** Each hand-over to rq has an rq job id of its own, kept in the row's ``queue_id``: the job's id the
first time, then ``<job id>-2``, ``<job id>-3``... Only the hand-over the row names may run the job, and it first
claims it (queued to running, in one conditional UPDATE), so a superseded hand-over, or one that rq delivers twice,
does nothing.

**Leases.** The attempt holding a job is trusted until ``lease_expires_at``: the launcher while it hands the job
over, then the worker running it, whose heartbeat (a thread, and each progress report) renews the lease every
third of ``CASEWORK_JOB_LEASE_SECONDS``. An attempt writes its progress and its result only while the row still
names it; one that finds the job handed over to another stops (:class:`JobSuperseded`) and its uncommitted work is
dropped.

**The sweep.** rq leaves a job whose worker was killed (SIGKILL, out of memory, a machine lost) in its started
registry until the job timeout and never runs it again. :func:`sweep` runs when ``casework worker`` starts and
every half-lease while it waits for work, and hands a job over again when its lease expired and

- it was running: its worker stopped without a word; the next attempt resumes it (tasks commit in batches and skip
  what is done); after :data:`MAX_ATTEMPTS` attempts it is failed, not tried forever;
- it is queued and Redis holds no rq job of it that will run: Redis was down when it was launched, or lost its
  data.

**Redis down.** :func:`launch` does not fail when Redis cannot be reached: the job is kept, queued, its message
says that the queue cannot be reached and that the job will start by itself (the job pages show it;
:attr:`Job.waiting_for_queue <casework.jobs.models.Job.waiting_for_queue>` says it to code), and the sweep hands
it over once Redis answers. It is not run inline instead: the work sent to jobs (a province's statistics over
years, a re-encryption, a register import) is too long for a request, and with Redis configured a worker may be
running other jobs over the same data. Pages and API reads need no Redis (sign-in's rate limit falls back to
memory, see :func:`casework.create_app`).
"""

from __future__ import annotations

import logging
import threading
import traceback
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import func, select, update

from casework.dbtypes import utcnow
from casework.extensions import db
from casework.jobs.models import Job

logger = logging.getLogger(__name__)

TASKS: dict[str, Callable[..., Any]] = {}
QUEUE_NAME = "casework"
#: rq stops a job running longer than this.
JOB_TIMEOUT = 6 * 3600
#: A job whose worker stopped (killed, not failed) this many times is failed rather than run again.
MAX_ATTEMPTS = 5
#: A job handed over this many times without ever finishing is failed (rq dropped it again and again).
MAX_HANDOVERS = 10


class JobSuperseded(Exception):
    """The job was handed over to another attempt: this one stops, and its uncommitted work is dropped."""


def task(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a function as the background task ``name``."""

    def register(func: Callable[..., Any]) -> Callable[..., Any]:
        TASKS[name] = func
        return func

    return register


def lease_seconds() -> int:
    """How long a job's holder is trusted without news (``CASEWORK_JOB_LEASE_SECONDS``)."""
    return int(current_app.config.get("CASEWORK_JOB_LEASE_SECONDS", 120))


def _lease_end(now: datetime | None = None) -> datetime:
    return (now or utcnow()) + timedelta(seconds=lease_seconds())


def _held_by(job_id: uuid.UUID, queue_id: str | None) -> list:
    """The condition that the job is running under this attempt (any attempt when run inline)."""
    conditions = [Job.id == job_id, Job.status == "running"]
    if queue_id is not None:
        conditions.append(Job.queue_id == queue_id)
    return conditions


class JobContext:
    """What a running task sees: its job row and a way to report progress."""

    def __init__(self, job: Job, queue_id: str | None = None) -> None:
        self.job = job
        self.queue_id = queue_id

    def progress(self, percent: int, message: str = "") -> None:
        """Record progress, renew the lease and commit the task's work so far (tasks work in committed batches).

        :raises JobSuperseded: the job was handed over to another attempt meanwhile; this one must stop.
        """
        written = db.session.execute(
            update(Job)
            .where(*_held_by(self.job.id, self.queue_id))
            .values(progress=max(0, min(100, int(percent))), message=message[:500], lease_expires_at=_lease_end())
            .execution_options(synchronize_session=False)
        )
        if written.rowcount != 1:
            db.session.rollback()
            raise JobSuperseded(f"job {self.job.id} was handed over to another attempt than {self.queue_id}")
        db.session.commit()


class _LeaseKeeper:
    """Renews a running job's lease every third of the lease, from a thread, while the task works.

    Progress reports renew it too, but a task may go longer than a lease between two of them (a large query, writing
    a spreadsheet): as long as the process lives, the job is not taken from it.
    """

    def __init__(self, job_id: uuid.UUID, queue_id: str | None, seconds: int) -> None:
        self.engine = db.engine  # the thread has no app context; the engine is safe to share
        self.job_id = job_id
        self.queue_id = queue_id
        self.seconds = seconds
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"lease-{job_id}", daemon=True)

    def start(self) -> _LeaseKeeper:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=10)

    def _beat(self) -> None:
        table = Job.__table__
        conditions = [table.c.id == self.job_id, table.c.status == "running"]
        if self.queue_id is not None:
            conditions.append(table.c.queue_id == self.queue_id)
        while not self.stopped.wait(max(0.5, self.seconds / 3)):
            try:
                with self.engine.begin() as connection:
                    renewed = connection.execute(
                        update(table)
                        .where(*conditions)
                        .values(lease_expires_at=utcnow() + timedelta(seconds=self.seconds))
                    ).rowcount
            except Exception:  # noqa: BLE001 - a missed beat is retried; the lease covers three of them
                logger.warning("job %s: could not renew its lease", self.job_id, exc_info=True)
                continue
            if not renewed:
                return  # finished, or handed over to another attempt: its next progress report stops it


def redis_connection():
    """Return a Redis connection when ``CASEWORK_REDIS_URL`` is set, else None."""
    url = current_app.config.get("CASEWORK_REDIS_URL")
    if not url:
        return None
    from redis import Redis

    return Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)


def launch(task_name: str, *, actor=None, **params: Any) -> Job:
    """Start ``task_name``: record the job, commit, then hand it over to the queue or run it inline.

    The launching request's transaction is committed first, so the worker sees the job row and whatever the
    request wrote before it. When Redis cannot be reached the job is kept, queued, and says so in its message;
    the sweep hands it over when Redis is back (see the module's documentation).
    """
    if task_name not in TASKS:
        raise KeyError(f"unknown task {task_name!r}")
    connection = redis_connection()
    job = Job(id=uuid.uuid4(), task=task_name, params=params, created_by_id=getattr(actor, "id", None))
    if connection is not None:
        job.queue_id = str(job.id)
        job.lease_expires_at = _lease_end()  # the launcher holds it while it hands it over
    db.session.add(job)
    db.session.commit()
    if connection is None:
        run(job.id)
    else:
        _hand_over(connection, job.id, job.queue_id)
    db.session.refresh(job)
    return job


def _enqueue(connection, job_id: uuid.UUID, queue_id: str) -> None:
    from rq import Queue

    Queue(QUEUE_NAME, connection=connection).enqueue(
        "casework.jobs.worker.execute",
        str(job_id),
        queue_id,
        job_id=queue_id,
        job_timeout=JOB_TIMEOUT,
        result_ttl=86400,
        failure_ttl=7 * 86400,
    )


def _hand_over(connection, job_id: uuid.UUID, queue_id: str) -> bool:
    """Enqueue the hand-over ``queue_id`` of a recorded job; say whether Redis took it.

    When it did not, the job stays queued with an expired lease, so that the next sweep tries again.
    """
    from redis.exceptions import RedisError

    try:
        _enqueue(connection, job_id, queue_id)
    except RedisError as exc:
        db.session.rollback()
        logger.warning("job %s: the queue cannot be reached (%s); it waits until Redis is back", job_id, exc)
        db.session.execute(
            update(Job)
            .where(Job.id == job_id, Job.queue_id == queue_id, Job.status == "queued")
            .values(
                lease_expires_at=utcnow(),
                message=_(
                    "The job queue cannot be reached: the job is saved and will start by itself when it is back."
                ),
            )
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
        return False
    _mark_enqueued(job_id, queue_id)
    return True


def _mark_enqueued(job_id: uuid.UUID, queue_id: str) -> None:
    db.session.execute(
        update(Job)
        .where(Job.id == job_id, Job.queue_id == queue_id)
        .values(enqueued_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def run(job_id: uuid.UUID | str, queue_id: str | None = None) -> None:
    """Claim and run a recorded job in the current app context (inline, or in the worker for hand-over ``queue_id``).

    Does nothing when the job is not waiting to run (finished, failed, running elsewhere) or, from the queue, when
    ``queue_id`` is no longer its hand-over.
    """
    job_uuid = uuid.UUID(str(job_id))
    now = utcnow()
    claim = update(Job).where(Job.id == job_uuid, Job.status == "queued")
    if queue_id is not None:
        claim = claim.where(Job.queue_id == queue_id)
    claimed = db.session.execute(
        claim.values(
            status="running",
            attempts=Job.attempts + 1,
            started_at=func.coalesce(Job.started_at, now),
            lease_expires_at=_lease_end(now),
            error=None,
        ).execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    if claimed != 1:
        logger.info("job %s not run by %s: not waiting to run, or handed over again", job_id, queue_id or "inline")
        return
    job = db.session.get(Job, job_uuid)
    keeper = None
    if current_app.config.get("CASEWORK_REDIS_URL"):  # a sweep may be watching the lease
        keeper = _LeaseKeeper(job.id, queue_id, lease_seconds()).start()
    try:
        _run_claimed(job, queue_id)
    finally:
        if keeper is not None:
            keeper.stop()


def _run_claimed(job: Job, queue_id: str | None) -> None:
    job_uuid, task_name = job.id, job.task
    try:
        func_ = TASKS[task_name]
        result = func_(JobContext(job, queue_id), **job.params)
    except JobSuperseded:
        db.session.rollback()
        logger.warning("job %s (%s): handed over to another attempt; %s stops", job_uuid, task_name, queue_id)
        return
    except Exception:
        db.session.rollback()
        logger.exception("job %s (%s) failed", job_uuid, task_name)
        _finish(job_uuid, queue_id, status="failed", error=traceback.format_exc(limit=5)[-4000:])
        return
    _finish(
        job_uuid,
        queue_id,
        status="finished",
        progress=100,
        result=result if isinstance(result, dict) else {"value": result},
    )


def _finish(job_id: uuid.UUID, queue_id: str | None, **values: Any) -> None:
    """Record the end of the attempt with the task's last work, unless the job was handed over meanwhile."""
    written = db.session.execute(
        update(Job)
        .where(*_held_by(job_id, queue_id))
        .values(finished_at=utcnow(), lease_expires_at=None, **values)
        .execution_options(synchronize_session=False)
    ).rowcount
    if written != 1:
        db.session.rollback()  # the other attempt does the work and records it
        logger.warning(
            "job %s: handed over to another attempt before %s finished; its end is dropped", job_id, queue_id
        )
        return
    db.session.commit()


# --- the sweep ----------------------------------------------------------------------------------------------------


def _handovers(job: Job) -> int:
    """How many times the job was handed over to rq (its ``queue_id`` is ``<id>`` then ``<id>-2``, ``<id>-3``...)."""
    if job.queue_id is None:
        return 0
    head, _sep, number = job.queue_id.rpartition("-")
    return int(number) if head == str(job.id) and number.isdigit() else 1


def _rq_will_run(connection, job: Job, now: datetime, lease: timedelta) -> bool:
    """Whether Redis holds the job's hand-over in a state that will run it."""
    from redis.exceptions import RedisError
    from rq.exceptions import NoSuchJobError
    from rq.job import Job as RqJob
    from rq.job import JobStatus

    if job.queue_id is None:
        return False
    try:
        queued = RqJob.fetch(job.queue_id, connection=connection)
        status = queued.get_status(refresh=False)
    except NoSuchJobError:
        return False
    except RedisError:
        raise
    except Exception:  # noqa: BLE001 - an rq job rq itself cannot read will not run either
        logger.warning("job %s: its rq job %s cannot be read", job.id, job.queue_id, exc_info=True)
        return False
    if status in {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED, JobStatus.CREATED}:
        return True
    # Started but not yet claimed: a worker is starting it, unless that was longer ago than a lease.
    return status == JobStatus.STARTED and queued.started_at is not None and queued.started_at + lease > now


def sweep(connection=None) -> dict[str, int]:
    """Hand over again the jobs whose worker stopped or that never reached Redis; fail those that kept stopping.

    Safe to run in several workers at once: each hand-over is a conditional UPDATE that one sweep wins. Returns how
    many jobs were handed over, failed, and left waiting because Redis cannot be reached.
    """
    from redis.exceptions import RedisError

    report = {"handed_over": 0, "failed": 0, "waiting": 0}
    connection = connection if connection is not None else redis_connection()
    if connection is None:
        return report  # no queue: jobs run inline
    now = utcnow()
    lease = timedelta(seconds=lease_seconds())
    candidates = db.session.scalars(
        select(Job).where(Job.status.in_(("queued", "running"))).order_by(Job.created_at)
    ).all()
    for job in candidates:
        expires = job.lease_expires_at or (job.started_at or job.created_at) + lease
        if expires > now:
            continue
        try:
            if job.status == "queued" and _rq_will_run(connection, job, now, lease):
                if job.enqueued_at is None:  # Redis took it after all, though its answer was lost
                    _mark_enqueued(job.id, job.queue_id)
                continue
        except RedisError as exc:
            logger.warning("sweep: the queue cannot be reached (%s)", exc)
            report["waiting"] += 1
            break
        if (job.status == "running" and job.attempts >= MAX_ATTEMPTS) or _handovers(job) >= MAX_HANDOVERS:
            report["failed"] += _give_up(job, now)
            continue
        queue_id = _take_over(job, now, lease)
        if queue_id is None:
            continue  # another sweep took it, or its holder spoke meanwhile
        if _hand_over(connection, job.id, queue_id):
            logger.warning("job %s (%s) handed over again as %s", job.id, job.task, queue_id)
            report["handed_over"] += 1
        else:
            report["waiting"] += 1
            break  # Redis is down: the next sweep tries again
    return report


def _still_expired(job: Job, now: datetime) -> list:
    return [
        Job.id == job.id,
        Job.status == job.status,
        Job.queue_id.is_(None) if job.queue_id is None else Job.queue_id == job.queue_id,
        Job.lease_expires_at.is_(None) | (Job.lease_expires_at <= now),
    ]


def _take_over(job: Job, now: datetime, lease: timedelta) -> str | None:
    """Mark the job queued under a new hand-over id, if nobody changed it since it was read; return that id."""
    number = _handovers(job) + 1
    queue_id = str(job.id) if number == 1 else f"{job.id}-{number}"
    values: dict[str, Any] = {
        "status": "queued",
        "queue_id": queue_id,
        "enqueued_at": None,
        "lease_expires_at": now + lease,
    }
    if job.attempts == 0:
        values["message"] = ""  # it never ran: the only message it has says that the queue could not be reached
    taken = db.session.execute(
        update(Job).where(*_still_expired(job, now)).values(**values).execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    return queue_id if taken == 1 else None


def _give_up(job: Job, now: datetime) -> int:
    error = (
        f"the worker stopped {job.attempts} times while running this job"
        if job.status == "running"
        else f"the queue dropped this job {_handovers(job)} times"
    )
    failed = db.session.execute(
        update(Job)
        .where(*_still_expired(job, now))
        .values(status="failed", error=error + "; it was not started again", finished_at=now, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    if failed:
        logger.error("job %s (%s) failed: %s", job.id, job.task, error)
    return failed
