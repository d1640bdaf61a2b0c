"""What every template sees: formatting filters and the navigation of the user's role."""

from __future__ import annotations

from functools import partial

from flask import Flask, request, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from casework import i18n, scope
from casework.auth.forms import ROLE_LABELS, EmptyForm


def navigation() -> list[tuple[str, str]]:
    """Return (label, url) pairs for the signed-in user's role: nobody is shown a door they cannot open."""
    if not current_user.is_authenticated:
        return []
    items = [(_l("Home"), url_for("main.home"))]
    if scope.can_view_records(current_user):
        items.append((_l("Cases"), url_for("cases.search_cases")))
        items.append((_l("New case"), url_for("cases.new_case")))
        items.append((_l("Import from Excel"), url_for("imports.upload_register")))
    if scope.can_manage_users(current_user):
        items.append((_l("Users"), url_for("auth.list_users")))
    if scope.can_view_audit(current_user):
        items.append((_l("Audit"), url_for("audit.list_events")))
    if scope.can_view_workflows(current_user):
        items.append((_l("Workflows"), url_for("workflows.list_workflows")))
    if current_user.role in {"social_worker", "supervisor", "provincial_officer", "finance_officer"}:
        items.append((_l("Payments"), url_for("payments.list_requests")))
    if current_user.role in {"provincial_officer", "admin"}:
        items.append((_l("Programmes"), url_for("payments.list_programmes")))
    if scope.can_view_statistics(current_user):
        items.append((_l("Statistics"), url_for("stats.dashboard")))
    items.append((_l("Jobs"), url_for("jobs.list_jobs")))
    return items


def init_app(app: Flask) -> None:
    app.jinja_env.filters.update(
        date=i18n.format_date, datetime=i18n.format_datetime, vnd=i18n.format_vnd, number=i18n.format_number
    )

    @app.context_processor
    def inject():
        return {
            "navigation": navigation,
            "languages": i18n.LANGUAGES,
            "current_locale": i18n.select_locale(),
            "role_labels": ROLE_LABELS,
            # formdata=None: the sign-out button never reads the request it is shown on; an error page for a body
            # over the size limit must not read that body again (werkzeug would raise the 413 a second time).
            "logout_form": partial(EmptyForm, formdata=None) if current_user.is_authenticated else None,
            "here": request.full_path.rstrip("?"),
        }
