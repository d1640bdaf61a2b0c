"""The auditor's pages: the trail with filters, and its export to CSV (itself an audited event)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import datetime, time, timedelta

from flask import Blueprint, Response, abort, render_template, request, stream_with_context
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import Length, Optional, ValidationError

from casework import audit, i18n, scope
from casework.dbtypes import utcnow
from casework.extensions import db
from casework.i18n import parse_day

bp = Blueprint("audit", __name__, url_prefix="/audit")

PER_PAGE = 50
CSV_COLUMNS = (
    "seq",
    "occurred_at_utc",
    "actor_username",
    "actor_role",
    "actor_id",
    "action",
    "object_type",
    "object_id",
    "fields",
    "details",
    "ip",
    "request_id",
    "mac",
)


def _valid_day(_form, field) -> None:
    if field.data:
        try:
            parse_day(field.data)
        except ValueError:
            raise ValidationError(_l("Write the date as dd/mm/yyyy.")) from None


class EventFilterForm(FlaskForm):
    """The auditor's filters; a GET form, so without a CSRF token."""

    class Meta:
        csrf = False

    user = StringField(_l("User"), validators=[Optional(), Length(max=64)])
    object_id = StringField(_l("Case or object id"), validators=[Optional(), Length(max=64)])
    action = StringField(_l("Action"), validators=[Optional(), Length(max=64)])
    since = StringField(_l("From (dd/mm/yyyy)"), validators=[Optional(), _valid_day])
    until = StringField(_l("To (dd/mm/yyyy)"), validators=[Optional(), _valid_day])

    def to_filter(self) -> audit.EventFilter:
        """The filter in UTC: whole local days, ``to`` included."""
        tz = i18n.local_tz()

        def start_of(text: str) -> datetime:
            return datetime.combine(parse_day(text), time.min, tzinfo=tz)

        return audit.EventFilter(
            username=self.user.data or None,
            object_id=self.object_id.data or None,
            action=self.action.data or None,
            since=start_of(self.since.data) if self.since.data else None,
            until=start_of(self.until.data) + timedelta(days=1) if self.until.data else None,
        )


def _require_auditor() -> None:
    if not scope.can_view_audit(current_user):
        abort(403)


def _filter_form() -> EventFilterForm:
    return EventFilterForm(formdata=request.args)


def _page(form: EventFilterForm, events: list, *, page: int = 1, has_next: bool = False) -> str:
    names = [f.name for f in form]
    filter_args = {name: request.args[name] for name in names if request.args.get(name)}
    return render_template(
        "audit/events.html", form=form, events=events, page=page, has_next=has_next, filter_args=filter_args
    )


@bp.get("/")
def list_events():
    """List audit events, newest first, filtered by user, case, action and period."""
    _require_auditor()
    form = _filter_form()
    if request.args and not form.validate():
        return _page(form, []), 422
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    events, has_next = audit.search_events(form.to_filter(), page=page, per_page=PER_PAGE)
    return _page(form, events, page=page, has_next=has_next)


def _cell(value) -> str:
    """A CSV cell that a spreadsheet shows as text, never runs as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv_rows(wanted: audit.EventFilter) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(CSV_COLUMNS)
    yield "\ufeff" + flush()  # the byte-order mark makes spreadsheets read the UTF-8 (Vietnamese names) correctly
    for count, event in enumerate(audit.iter_events(wanted), start=1):
        writer.writerow(
            _cell(value)
            for value in (
                event.seq,
                event.occurred_at.isoformat(),
                event.actor_username,
                event.actor_role,
                event.actor_id,
                event.action,
                event.object_type,
                event.object_id,
                ";".join(event.fields or []),
                json.dumps(event.details, ensure_ascii=False, sort_keys=True) if event.details is not None else "",
                event.ip,
                event.request_id,
                event.mac,
            )
        )
        if count % 200 == 0:
            yield flush()
    yield flush()


@bp.get("/export.csv")
def export_events():
    """Export the filtered audit events to CSV, recording the export in the trail first."""
    _require_auditor()
    form = _filter_form()
    if request.args and not form.validate():
        return _page(form, []), 422
    wanted = audit.record_export(form.to_filter(), actor=current_user)
    db.session.commit()
    filename = f"audit-{utcnow().astimezone(i18n.local_tz()):%Y%m%d-%H%M}.csv"
    return Response(
        stream_with_context(_csv_rows(wanted)),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )
