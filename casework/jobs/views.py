"""Job progress pages."""

from __future__ import annotations

import uuid

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select

from casework import jobs, scope
from casework.auth.forms import EmptyForm
from casework.extensions import db
from casework.jobs.models import Job

bp = Blueprint("jobs", __name__, url_prefix="/jobs")


def load_job(job_id: uuid.UUID, for_user) -> Job:
    """Load a job its starter may see (404 for anyone else)."""
    job = db.session.get(Job, job_id)
    if job is None or job.created_by_id != for_user.id:
        abort(404)
    return job


@bp.get("/")
def list_jobs():
    """List the jobs the user started, newest first."""
    rows = db.session.scalars(
        select(Job).where(Job.created_by_id == current_user.id).order_by(Job.created_at.desc()).limit(50)
    ).all()
    return render_template(
        "jobs/list.html", jobs=rows, form=EmptyForm(), can_reload=scope.can_manage_users(current_user)
    )


@bp.get("/<uuid:job_id>")
def show_job(job_id: uuid.UUID):
    """Show a job's progress; the page refreshes itself until the job is done."""
    job = load_job(job_id, current_user)
    return render_template("jobs/show.html", job=job)


@bp.post("/reload-units")
def reload_units():
    """Reload the administrative units in the background (administrators)."""
    if not scope.can_manage_users(current_user):
        abort(403)
    if not EmptyForm().validate_on_submit():
        abort(400)
    job = jobs.launch("locations.reload_units", actor=current_user)
    if job.waiting_for_queue:
        flash(job.message, "warning")  # Redis is down: the job is kept and starts by itself when it is back
    else:
        flash(_l("The job has started."), "info")
    return redirect(url_for("jobs.show_job", job_id=job.id))
