"""The rq side of background jobs: ``casework worker`` and the function rq calls.

The worker is rq's, with one addition: it sweeps casework's jobs (:func:`casework.jobs.sweep`) when it starts and
every half-lease while it waits for work, so that a job whose worker was killed, or that Redis could not take, is
handed over again without anyone's help. It sweeps between jobs, in its own process, never while a job runs. Each
sweep also makes sure the next deadline check is scheduled, which repairs the chain of scheduled checks after Redis
lost its data (see :mod:`casework.notifications.schedule`) without waiting for the worker to restart.
"""

from __future__ import annotations

import logging
import time

from rq import Worker

logger = logging.getLogger(__name__)

_app = None


def _get_app():
    global _app  # noqa: PLW0603 - one app per worker process
    if _app is None:
        from casework import create_app

        _app = create_app()
    return _app


def execute(job_id: str, queue_id: str | None = None) -> None:
    """Run the casework job ``job_id`` for its hand-over ``queue_id`` in an application context (called by rq)."""
    from casework import jobs
    from casework.extensions import db

    app = _get_app()
    with app.app_context():
        # rq forks a child per job: never reuse the parent's database connections.
        db.engine.dispose(close=False)
        try:
            jobs.run(job_id, queue_id)
        finally:
            db.session.remove()


def sweep_jobs(connection, *, repair_schedule: bool = True) -> dict[str, int] | None:
    """Run the sweep in the worker's app context; a failure is logged, never allowed to stop the worker."""
    from rq import Queue

    from casework import jobs
    from casework.extensions import db
    from casework.notifications.schedule import ensure_scheduled

    app = _get_app()
    with app.app_context():
        try:
            report = jobs.sweep(connection)
            if repair_schedule:
                ensure_scheduled(Queue(jobs.QUEUE_NAME, connection=connection))
        except Exception:  # noqa: BLE001 - the database or Redis may be down; the next sweep tries again
            logger.exception("sweeping the jobs failed")
            db.session.rollback()
            return None
        finally:
            db.session.remove()
    if any(report.values()):
        logger.warning("jobs sweep: %s", report)
    return report


class CaseworkWorker(Worker):
    """rq's worker, which also sweeps casework's jobs at start and every ``sweep_every`` seconds while idle."""

    sweep_every: float = 60.0
    repair_schedule: bool = True
    _swept_at: float | None = None

    def _sweep_due(self) -> bool:
        return self._swept_at is None or time.monotonic() - self._swept_at >= self.sweep_every

    @property
    def dequeue_timeout(self) -> int:
        # Wake up from waiting for work in time for the next sweep (rq waits about 7 minutes otherwise).
        return max(1, min(super().dequeue_timeout, int(self.sweep_every)))

    @property
    def should_run_maintenance_tasks(self) -> bool:
        return self._sweep_due() or super().should_run_maintenance_tasks

    def run_maintenance_tasks(self) -> None:
        if self._sweep_due():
            self._swept_at = time.monotonic()
            sweep_jobs(self.connection, repair_schedule=self.repair_schedule)
        if super().should_run_maintenance_tasks:
            super().run_maintenance_tasks()


def work(app, *, burst: bool = False) -> None:
    """Run an rq worker on the casework queue until stopped (or, with ``burst``, until the queue is empty)."""
    from rq import Queue

    from casework.jobs import QUEUE_NAME, lease_seconds, redis_connection

    global _app  # noqa: PLW0603
    _app = app
    with app.app_context():
        connection = redis_connection()
        lease = lease_seconds()
    if connection is None:
        raise SystemExit("casework worker needs CASEWORK_REDIS_URL: without Redis, jobs run inline.")
    worker = CaseworkWorker([Queue(QUEUE_NAME, connection=connection)], connection=connection)
    worker.sweep_every = max(1.0, lease / 2)
    worker.repair_schedule = not burst  # a burst worker stops when the queue is empty: no chain to keep
    worker.work(burst=burst, with_scheduler=True)
