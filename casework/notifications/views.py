"""The notification inbox: deadline reminders and alerts, newest first, and the unread count in the navigation.

Every signed-in user has an inbox and sees only their own notifications; someone else's answers 404, as an unknown
one does.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from flask import Blueprint, abort, flash, g, redirect, render_template, url_for
from flask_babel import get_locale, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy.exc import SQLAlchemyError

from casework.auth.forms import EmptyForm
from casework.dbtypes import utcnow
from casework.extensions import db
from casework.notifications import operations
from casework.notifications.models import Notification
from casework.workflow import registry

logger = logging.getLogger(__name__)

bp = Blueprint("notifications", __name__)


def stage_label(workflow: str | None, stage: str | None) -> str:
    """The stage's label in the user's language, from the case's workflow (the code itself if it has gone)."""
    definition = registry.definition(workflow)
    if not stage or stage not in definition.stages:
        return stage or ""
    return definition.stage(stage).label.for_locale(str(get_locale() or "vi"))


def message(notification: Notification, workflow: str | None, now: datetime) -> str:
    """What the notification says, e.g. "Deadline in 5 hours: Initial risk assessment, case 22-2026-000123"."""
    values = {"stage": stage_label(workflow, notification.stage), "number": notification.case_number or ""}
    due = notification.due_at
    if due is None or due <= now:
        return _("Deadline passed: %(stage)s, case %(number)s", **values)
    left = due - now
    hours = round(left.total_seconds() / 3600)
    if hours < 1:
        return _("Deadline in less than an hour: %(stage)s, case %(number)s", **values)
    if hours < 48:
        return ngettext(
            "Deadline in %(num)d hour: %(stage)s, case %(number)s",
            "Deadline in %(num)d hours: %(stage)s, case %(number)s",
            hours,
            **values,
        )
    days = round(left.total_seconds() / 86400)
    return ngettext(
        "Deadline in %(num)d day: %(stage)s, case %(number)s",
        "Deadline in %(num)d days: %(stage)s, case %(number)s",
        days,
        **values,
    )


@bp.app_context_processor
def unread_badge():
    """Give every template ``unread_notifications()``: the signed-in user's unread count, counted once a request."""

    def unread_notifications() -> int:
        if not current_user.is_authenticated:
            return 0
        if "unread_notifications" not in g:
            try:
                g.unread_notifications = operations.unread_count(current_user)
            except SQLAlchemyError:  # an error page after a failed transaction still renders, without the count
                logger.warning("unread notifications not counted", exc_info=True)
                g.unread_notifications = 0
        return g.unread_notifications

    return {"unread_notifications": unread_notifications}


@bp.get("/notifications")
def list_notifications():
    """Show the user's notifications, newest first, the unread ones marked."""
    now = utcnow()
    items = [
        {"notification": n, "message": message(n, workflow, now), "overdue": n.due_at is not None and n.due_at <= now}
        for n, workflow in operations.inbox(current_user)
    ]
    return render_template(
        "notifications/list.html",
        items=items,
        form=EmptyForm(),
        limit=operations.INBOX_LIMIT,
    )


@bp.post("/notifications/<uuid:notification_id>/read")
def mark_read(notification_id: uuid.UUID):
    """Mark one of the user's notifications read."""
    notification = operations.load_notification(notification_id, current_user)
    if not EmptyForm().validate_on_submit():
        abort(400)
    operations.mark_read(current_user, notification.id)
    db.session.commit()
    return redirect(url_for("notifications.list_notifications"))


@bp.post("/notifications/read-all")
def mark_all_read():
    """Mark all the user's notifications read."""
    if not EmptyForm().validate_on_submit():
        abort(400)
    count = operations.mark_all_read(current_user)
    db.session.commit()
    if count:
        flash(_l("All notifications marked as read."), "success")
    return redirect(url_for("notifications.list_notifications"))
