"""Running the deadline check every ``CASEWORK_TICK_MINUTES`` through rq's scheduler (``casework worker``).

The check is a chain of scheduled rq jobs, one per time slot: slots are the multiples of the period since the epoch
(12:00, 12:05, 12:10, ... for 5 minutes), and a slot's job id names it (``casework-tick-20260301T1205Z``). Each run
first schedules the next slot, then ticks, so a failing check does not break the chain, and ``casework worker``
schedules the next slot at start, which starts the chain or repairs one lost with Redis's data.

Scheduling is idempotent: rq schedules a job id only if no job of that id exists (atomically, in Redis), so two
workers starting together, or a worker starting while a run schedules the same slot, leave one job per slot. A run
never schedules its own slot again, and a run that comes late (no worker for an hour) schedules the next slot after
now, not the hour of slots it missed. The notifications are once only in any case (:mod:`.operations`).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import current_app

from casework.dbtypes import utcnow

logger = logging.getLogger(__name__)

JOB_PREFIX = "casework-tick-"
FUNCTION = "casework.notifications.schedule.run_tick"
#: A run that takes longer than this is stopped by rq; the next slot is already scheduled.
JOB_TIMEOUT = 15 * 60


def slot_after(moment: datetime, minutes: int) -> datetime:
    """The first slot (a multiple of ``minutes`` since the epoch, UTC) strictly after ``moment``."""
    period = minutes * 60
    seconds = int(moment.timestamp())
    return datetime.fromtimestamp((seconds // period + 1) * period, UTC)


def job_id(slot: datetime) -> str:
    return JOB_PREFIX + slot.astimezone(UTC).strftime("%Y%m%dT%H%MZ")


def schedule_slot(queue, slot: datetime) -> bool:
    """Schedule the run of ``slot`` on ``queue`` unless a job of its id exists; say whether this call scheduled it."""
    from rq.exceptions import DuplicateJobError

    minutes = current_app.config["CASEWORK_TICK_MINUTES"]
    job = queue.create_job(
        FUNCTION,
        args=(slot.isoformat(),),
        job_id=job_id(slot),
        timeout=JOB_TIMEOUT,
        result_ttl=max(3600, 2 * minutes * 60),
        failure_ttl=7 * 86400,
        description="casework: deadline reminders and alerts",
    )
    try:
        queue.schedule_job(job, slot, unique=True)
    except DuplicateJobError:
        return False
    return True


def ensure_scheduled(queue=None, now: datetime | None = None) -> datetime | None:
    """Make sure the next slot's run is scheduled (on the casework queue by default); return the slot.

    Without Redis there is no scheduler: returns None, and ``casework tick`` from cron does the work.
    """
    if queue is None:
        from rq import Queue

        from casework.jobs import QUEUE_NAME, redis_connection

        connection = redis_connection()
        if connection is None:
            return None
        queue = Queue(QUEUE_NAME, connection=connection)
    slot = slot_after(now or utcnow(), current_app.config["CASEWORK_TICK_MINUTES"])
    if schedule_slot(queue, slot):
        logger.info("deadline check scheduled at %s", slot.isoformat())
    return slot


def run_tick(slot: str) -> dict:
    """Schedule the next slot, then send the deadline reminders and alerts due now (called by rq in the worker)."""
    from rq import Queue, get_current_job

    from casework.extensions import db
    from casework.jobs.worker import _get_app
    from casework.notifications import operations

    app = _get_app()
    with app.app_context():
        # rq forks a child per job: never reuse the parent's database connections.
        db.engine.dispose(close=False)
        job = get_current_job()
        if job is not None:
            own = datetime.fromisoformat(slot)
            # After our own slot even if this machine's clock is behind the scheduler's.
            ensure_scheduled(Queue(job.origin, connection=job.connection), now=max(utcnow(), own))
        try:
            result = operations.tick()
            db.session.commit()
            refreshed = _refresh_statistics()
        finally:
            db.session.remove()
    logger.info("deadline check: %d reminders, %d alerts", result.reminders, result.alerts)
    return {"reminders": result.reminders, "alerts": result.alerts, "statistics_refreshed": refreshed}


def _refresh_statistics() -> int:
    """The dashboards' default views of provinces whose data changed, computed ahead of their viewers."""
    from casework.extensions import db
    from casework.stats import operations as stats

    try:
        count = stats.refresh_stale()
        db.session.commit()
        return count
    except Exception:  # the reminders are sent whatever happens to the statistics
        db.session.rollback()
        logger.exception("refreshing the statistics failed")
        return 0
