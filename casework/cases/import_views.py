"""Pages of the register import: the template, the upload, the dry run's result and the import.

Social workers, supervisors and provincial officers import into the communes of their area (a row outside it is
an error of that row). A batch is seen only by the worker who uploaded it.
"""

from __future__ import annotations

import uuid

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired

from casework import jobs, scope
from casework.auth.forms import EmptyForm
from casework.cases import importer
from casework.errors import Conflict, ValidationFailed
from casework.extensions import db
from casework.security.files import UploadRefused
from casework.security.sniff import XLSX

bp = Blueprint("imports", __name__, url_prefix="/imports")

TEMPLATE_NAME = "mau-so-theo-doi-tre-em.xlsx"


class RegisterUploadForm(FlaskForm):
    file = FileField(_l("Register (Excel .xlsx)"), validators=[FileRequired(_l("Choose the register file."))])


def _actor():
    """The signed-in user, who must keep records (403 for the other roles)."""
    if not scope.can_view_records(current_user):
        abort(403)
    return current_user._get_current_object()


def _language() -> str:
    return str(get_locale() or "vi")


def _batch_page(batch, *, status: int = 200, choice_errors=None, chosen=None):
    check = importer.latest_job(batch, importer.CHECK_TASK)
    run = importer.latest_job(batch, importer.RUN_TASK)
    result = check.result if check is not None and check.status == "finished" and check.result else None
    ran = run.result if run is not None and run.status == "finished" and run.result else None
    return (
        render_template(
            "imports/batch.html",
            batch=batch,
            check=check,
            run=run,
            result=result,
            ran=ran,
            splits=importer.describe_splits(result, current_user) if result else [],
            names=importer.unit_names(ran or result or {}),
            columns=importer.COLUMNS,
            form=EmptyForm(),
            choice_errors=choice_errors or {},
            chosen=chosen or {},
        ),
        status,
    )


@bp.get("/template.xlsx")
def download_template():
    """Download the register template, with drop-down lists of the codes and of the user's communes."""
    actor = _actor()
    return Response(
        importer.build_template(actor),
        mimetype=XLSX.content_type,
        headers={"Content-Disposition": f'attachment; filename="{TEMPLATE_NAME}"', "Cache-Control": "no-store"},
    )


@bp.route("/", methods=["GET", "POST"])
def upload_register():
    """Upload a register and start its dry run."""
    actor = _actor()
    form = RegisterUploadForm()
    status = 200
    if form.validate_on_submit():
        upload = form.file.data
        try:
            batch = importer.create_batch(upload.stream, upload.filename, actor)
        except UploadRefused as exc:
            db.session.rollback()
            form.file.errors = [*form.file.errors, str(exc.message)]
            status = exc.status
        else:
            # launch() commits the batch and its file before the job can look for them.
            jobs.launch(
                importer.CHECK_TASK, actor=actor, batch_id=str(batch.id), user_id=str(actor.id), locale=_language()
            )
            return redirect(url_for("imports.show_batch", batch_id=batch.id))
    elif form.is_submitted():
        status = 422
    return render_template("imports/index.html", form=form, batches=importer.batches_of(actor)), status


@bp.get("/<uuid:batch_id>")
def show_batch(batch_id: uuid.UUID):
    """Show a register's dry run (or its progress), the choices for split old communes, and the import."""
    batch = importer.load_batch(batch_id, current_user)
    return _batch_page(batch)


@bp.post("/<uuid:batch_id>/run")
def run_import(batch_id: uuid.UUID):
    """Import a checked register, with the worker's choice of new commune for each split old commune."""
    batch = importer.load_batch(batch_id, current_user)
    if not EmptyForm().validate_on_submit():
        abort(400)
    raw = {
        key[len("choices[") : -1]: value
        for key, value in request.form.items()
        if key.startswith("choices[") and key.endswith("]")
    }
    try:
        importer.ensure_can_run(batch)
        choices = importer.clean_choices(raw, current_user)
    except Conflict as exc:
        flash(exc.message, "error")
        return redirect(url_for("imports.show_batch", batch_id=batch.id))
    except ValidationFailed as exc:
        return _batch_page(batch, status=422, choice_errors=exc.errors, chosen=raw)
    jobs.launch(
        importer.RUN_TASK,
        actor=current_user,
        batch_id=str(batch.id),
        user_id=str(current_user.id),
        choices=choices,
        locale=_language(),
    )
    flash(_l("The import has started."), "info")
    return redirect(url_for("imports.show_batch", batch_id=batch.id))
