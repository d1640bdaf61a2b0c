"""The rq side of background jobs: ``casework worker`` and the function rq calls."""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)

_app = None


def _get_app():
    global _app  # noqa: PLW0603 - one app per worker process
    if _app is None:
        from casework import create_app

        _app = create_app()
    return _app


def execute(job_id: str) -> None:
    """Run the casework job ``job_id`` in an application context (called by rq)."""
    from casework import jobs
    from casework.extensions import db

    app = _get_app()
    with app.app_context():
        # rq forks a child per job: never reuse the parent's database connections.
        db.engine.dispose(close=False)
        try:
            jobs.run(job_id)
        finally:
            db.session.remove()


def work(app, *, burst: bool = False) -> None:
    """Run an rq worker on the casework queue until stopped (or, with ``burst``, until the queue is empty)."""
    from rq import Queue, Worker

    from casework.jobs import QUEUE_NAME, redis_connection

    global _app  # noqa: PLW0603
    _app = app
    with app.app_context():
        connection = redis_connection()
    if connection is None:
        raise SystemExit("casework worker needs CASEWORK_REDIS_URL: without Redis, jobs run inline.")
    worker = Worker([Queue(QUEUE_NAME, connection=connection)], connection=connection)
    worker.work(burst=burst, with_scheduler=True)
