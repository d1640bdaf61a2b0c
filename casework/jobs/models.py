"""A row per background job, so a page can show its progress and a crash leaves a trace.

Three columns let a job outlive a worker killed half-way or a Redis that was down (see :mod:`casework.jobs`):
``queue_id`` names the rq job of the latest hand-over to the queue (only that one may run the job),
``enqueued_at`` says when Redis took it (None while it could not), and ``lease_expires_at`` is how long the
attempt holding the job (the launcher handing it over, then the worker running it) is trusted without news.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from casework.dbtypes import UTCDateTime, utcnow, uuid_pk
from casework.extensions import db

JOB_STATUSES = ("queued", "running", "finished", "failed")


class Job(db.Model):
    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint("status IN ('queued', 'running', 'finished', 'failed')", name="known_status"),
        CheckConstraint("progress >= 0 AND progress <= 100", name="progress_is_percent"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    task: Mapped[str] = mapped_column(String(120))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str] = mapped_column(String(500), default="")
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    queue_id: Mapped[str | None] = mapped_column(String(80))
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def done(self) -> bool:
        return self.status in {"finished", "failed"}

    @property
    def waiting_for_queue(self) -> bool:
        """The job is recorded but Redis could not take it yet: it starts once the queue is back."""
        return self.status == "queued" and self.queue_id is not None and self.enqueued_at is None
