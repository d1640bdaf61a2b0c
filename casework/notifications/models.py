"""Notifications in a user's inbox: deadline reminders and alerts.

A notification names a case by its id and number only, never the child. ``key`` makes each one once only: the
deadline check inserts with a key built from what it is about (kind, case, stage, due moment), and the unique
constraint turns a second insert, from a later run or a concurrent one, into nothing.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from casework.dbtypes import UTCDateTime, utcnow, uuid_pk
from casework.extensions import db

KINDS = ("deadline_soon", "deadline_passed")


class Notification(db.Model):
    __tablename__ = "notifications"
    __table_args__ = (
        CheckConstraint("kind IN ('deadline_soon', 'deadline_passed')", name="known_kind"),
        UniqueConstraint("user_id", "key", name="once_per_user"),
        Index("ix_notifications_user_unread", "user_id", "read_at"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(160))
    case_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("cases.id"), index=True)
    case_number: Mapped[str | None] = mapped_column(String(20))
    stage: Mapped[str | None] = mapped_column(String(64))
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
