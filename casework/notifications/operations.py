"""The deadline check and the inbox.

:func:`tick` reminds the assigned worker of a deadline coming within ``CASEWORK_REMINDER_HOURS`` and alerts the
supervisors of the case's commune (and the worker) once it has passed. It is safe to run as often as anyone likes,
from cron, from rq's scheduler, or from both at once: each notification has a key naming what it is about (kind,
case, stage, due moment), and the database's unique constraint on (user, key) turns a second insert of it into
nothing (``INSERT ... ON CONFLICT DO NOTHING``). A case whose deadline moves, to a new stage or a new date, gets a
new key and so new notifications.

A notification names the case by its number and stage only, never the child.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, and_, exists, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from casework import audit
from casework.auth.models import User, UserCommune
from casework.auth.roles import SUPERVISOR
from casework.cases.models import Case
from casework.dbtypes import utcnow
from casework.errors import NotFound
from casework.extensions import db
from casework.notifications.models import Notification

SOON = "deadline_soon"
PASSED = "deadline_passed"
#: Rows read and inserted per statement: a province's overdue backlog is worked through in pages, not at once.
PAGE_SIZE = 500
INBOX_LIMIT = 100


@dataclass(frozen=True)
class TickResult:
    """How many notifications one run of the deadline check added (not how many it found already sent)."""

    reminders: int = 0
    alerts: int = 0


def notification_key(kind: str, case_id: uuid.UUID, stage: str, due_at: datetime) -> str:
    """What a notification is about, as the text that makes it once only per user."""
    return f"{kind}:{case_id}:{stage}:{due_at.isoformat()}"


def tick(now: datetime | None = None) -> TickResult:
    """Send the deadline reminders and alerts due at ``now`` (default: the current time) that were not sent yet.

    Records one ``notifications.tick`` event, by the system, when the run sent anything. Flushes; the caller
    commits.
    """
    now = now or utcnow()
    horizon = now + timedelta(hours=current_app.config["CASEWORK_REMINDER_HOURS"])
    open_case = Case.closed_at.is_(None)
    coming = and_(open_case, Case.next_deadline_at > now, Case.next_deadline_at <= horizon)
    passed = and_(open_case, Case.next_deadline_at <= now)

    # The assigned worker is reminded before the deadline; once it has passed, the supervisors of the commune are
    # alerted, and the worker too, who still has to act.
    pair = (Case.id, Case.case_number, Case.stage, Case.next_deadline_at, User.id)
    to_worker = select(*pair).join(User, User.id == Case.assigned_to_id)
    to_supervisors = (
        select(*pair)
        .join(UserCommune, UserCommune.commune_code == Case.commune_code)
        .join(User, User.id == UserCommune.user_id)
        .where(User.role == SUPERVISOR)
    )
    sent_at = utcnow()  # one moment per run, so that the inbox lists a run's notifications by their deadline
    reminders = _send(SOON, to_worker.where(coming), sent_at)
    alerts = _send(PASSED, to_worker.where(passed), sent_at) + _send(PASSED, to_supervisors.where(passed), sent_at)

    result = TickResult(reminders=reminders, alerts=alerts)
    if reminders or alerts:
        # Only runs that sent something: an empty run every few minutes would bury the trail in noise.
        audit.record(
            "notifications.tick",
            object_type="notification",
            details={"reminders": reminders, "alerts": alerts, "at": now},
            actor=None,
        )
    db.session.flush()
    return result


def _send(kind: str, pairs: Select, sent_at: datetime) -> int:
    """Insert a ``kind`` notification for each (case, user) pair of ``pairs`` not notified yet; return how many.

    :param pairs: a select of (case id, case number, stage, due moment, user id), its cases and users joined.
    """
    added = 0
    for page in _pages(kind, pairs):
        added += _insert_once(
            [
                {
                    "id": uuid.uuid4(),
                    "user_id": user_id,
                    "kind": kind,
                    "key": notification_key(kind, case_id, stage, due_at),
                    "case_id": case_id,
                    "case_number": case_number,
                    "stage": stage,
                    "due_at": due_at,
                    "created_at": sent_at,
                }
                for case_id, case_number, stage, due_at, user_id in page
            ]
        )
    return added


def _pages(kind: str, pairs: Select) -> Iterator[list]:
    """The rows of ``pairs`` whose users are active and not yet notified, a page at a time.

    One statement per page, driven by the index on ``cases.next_deadline_at``; pairs already notified are left out
    in SQL, so a run that finds nothing new reads next to nothing. Each page starts after the last (case id, user
    id), so rows that a concurrent run inserted first, and this one skipped, are not read again and again.
    """
    sent = exists().where(
        Notification.case_id == Case.id,
        Notification.user_id == User.id,
        Notification.kind == kind,
        Notification.stage == Case.stage,
        Notification.due_at == Case.next_deadline_at,
    )
    stmt = pairs.where(User.active.is_(True), ~sent).order_by(Case.id, User.id).limit(PAGE_SIZE)
    after: tuple[uuid.UUID, uuid.UUID] | None = None
    while True:
        page_stmt = stmt
        if after is not None:
            page_stmt = stmt.where(or_(Case.id > after[0], and_(Case.id == after[0], User.id > after[1])))
        page = db.session.execute(page_stmt).all()
        if page:
            yield page
        if len(page) < PAGE_SIZE:
            return
        after = (page[-1][0], page[-1][4])


def _insert_once(rows: list[dict]) -> int:
    """Insert ``rows`` into notifications, skipping any whose (user, key) exists; return how many were inserted.

    The unique constraint decides, not a read before the write: a concurrent run that inserted the same row first
    makes this one a no-op (PostgreSQL waits for that run's commit; SQLite has one writer at a time).
    """
    if not rows:
        return 0
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert(Notification.__table__)
        .on_conflict_do_nothing(index_elements=["user_id", "key"])
        .returning(Notification.__table__.c.id)
    )
    return len(db.session.execute(stmt, rows).all())


# --- the inbox ------------------------------------------------------------------------------------------------------


def unread_count(user) -> int:
    """How many of ``user``'s notifications are unread (one COUNT on the (user, read_at) index)."""
    return db.session.scalar(
        select(func.count()).where(Notification.user_id == user.id, Notification.read_at.is_(None))
    )


def inbox(user, limit: int = INBOX_LIMIT) -> list[tuple[Notification, str | None]]:
    """``user``'s newest notifications, each with the workflow its case follows (for the stage's label)."""
    stmt = (
        select(Notification, Case.workflow)
        .outerjoin(Case, Case.id == Notification.case_id)
        .where(Notification.user_id == user.id)
        .order_by(Notification.created_at.desc(), Notification.due_at, Notification.id)
        .limit(limit)
    )
    return [(notification, workflow) for notification, workflow in db.session.execute(stmt)]


def load_notification(notification_id: uuid.UUID | str, user) -> Notification:
    """``user``'s own notification; anyone else's, like an unknown one, is NotFound."""
    try:
        uid = uuid.UUID(str(notification_id))
    except ValueError:
        raise NotFound(_l("No such notification.")) from None
    notification = db.session.get(Notification, uid)
    if notification is None or notification.user_id != user.id:
        raise NotFound(_l("No such notification."))
    return notification


def mark_read(user, notification_id: uuid.UUID | str) -> Notification:
    """Mark one of ``user``'s notifications read (already read: unchanged).

    :raises NotFound: the notification is not ``user``'s, or does not exist.
    """
    notification = load_notification(notification_id, user)
    if notification.read_at is None:
        notification.read_at = utcnow()
        db.session.flush()
    return notification


def mark_all_read(user) -> int:
    """Mark every unread notification of ``user`` read; return how many were."""
    result = db.session.execute(
        update(Notification)
        .where(Notification.user_id == user.id, Notification.read_at.is_(None))
        .values(read_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    db.session.flush()
    return result.rowcount
