"""The legal forms of a case (Mẫu 01 to Mẫu 06) as printable pages and as PDF.

Both doors draw the same :class:`casework.support.printing.PrintedForm`, so the page and the PDF never disagree.
A form holds the child's identifying details: only the roles that open records may print it, within their area
(404 elsewhere); every page or PDF produced is recorded (``case.form_printed``) and committed before it is sent,
and neither may sit in a cache.
"""

from __future__ import annotations

import uuid

from flask import Blueprint, Response, abort, render_template, request, url_for
from flask_login import current_user

from casework import scope
from casework.auth.models import User
from casework.cases import operations
from casework.cases.models import Case
from casework.errors import Conflict
from casework.extensions import db
from casework.support import printing

bp = Blueprint("printing", __name__, url_prefix="/cases")

FORM = "any(" + ", ".join(printing.FORM_CODES) + "):form"


def _actor() -> User:
    return current_user._get_current_object()


def _load(case_id: uuid.UUID) -> Case:
    """The case, if the user may see it: 403 for a role that never sees records, 404 outside the user's area."""
    if not scope.can_view_records(current_user):
        abort(403)
    return operations.load_case(case_id, _actor())


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


def _build(case: Case, form: str) -> printing.PrintedForm | Response:
    """The form, or the page that says what it still lacks (409)."""
    try:
        return printing.build_form(case, form, request.args.get("id") or None)
    except Conflict as exc:
        db.session.rollback()
        page = render_template("printing/refused.html", case=case, form=form, message=exc.message)
        return _no_store(Response(page, status=409, mimetype="text/html"))


@bp.get(f"/<uuid:case_id>/forms/<{FORM}>")
def show_form(case_id: uuid.UUID, form: str):
    """Show a legal form of the case as a printable A4 page (the printing is recorded)."""
    case = _load(case_id)
    printed = _build(case, form)
    if isinstance(printed, Response):
        return printed
    printing.record_printed(case, _actor(), printed, "html")
    db.session.commit()
    page = render_template(
        "printing/form.html",
        case=case,
        printed=printed,
        choices=printing.choices(case, form),
        pdf_url=url_for("printing.download_form", case_id=case.id, form=form, id=printed.record_id),
    )
    return _no_store(Response(page, mimetype="text/html"))


@bp.get(f"/<uuid:case_id>/forms/<{FORM}>.pdf")
def download_form(case_id: uuid.UUID, form: str):
    """Send a legal form of the case as a PDF (the printing is recorded before the file leaves)."""
    case = _load(case_id)
    printed = _build(case, form)
    if isinstance(printed, Response):
        return printed
    document = printing.render_pdf(printed)
    printing.record_printed(case, _actor(), printed, "pdf")
    db.session.commit()
    response = Response(document, mimetype="application/pdf")
    response.headers.set("Content-Disposition", "attachment", filename=printed.filename)
    return _no_store(response)
