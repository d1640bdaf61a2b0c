"""Pages of the case registry: intake with the duplicate check, search, the case page and what is done on it.

Every case is loaded through :func:`operations.load_case`, which answers 404 for a case outside the user's area
without saying whether it exists. Opening the case page (or its edit page) records a ``case.view`` event and commits
it before anything is shown: every view of a child's identifying details is in the audit trail.
"""

from __future__ import annotations

import hashlib
import uuid

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_login import current_user
from sqlalchemy import or_, select
from sqlalchemy.orm.exc import StaleDataError

from casework import audit, codes, scope
from casework.auth.forms import EmptyForm
from casework.auth.models import User, UserCommune
from casework.auth.roles import SOCIAL_WORKER, SUPERVISOR
from casework.cases import operations, search
from casework.cases.forms import (
    CONSENT_SUBJECTS,
    LEGAL_BASIS_LABELS,
    REFERRAL_STATUS_LABELS,
    AssignForm,
    ConsentForm,
    DecisionForm,
    EditCaseForm,
    FileForm,
    IntakeForm,
    NoteForm,
    ReferForm,
    SearchForm,
    SiblingForm,
    stage_label,
)
from casework.cases.models import CASE_CODE_LISTS, Case, Consent, Referral, SiblingLink
from casework.dbtypes import utcnow
from casework.errors import Conflict, PermissionDenied, ValidationFailed
from casework.extensions import db
from casework.i18n import format_date, local_tz, parse_day
from casework.locations import operations as locations
from casework.locations.models import Commune
from casework.security import downloads
from casework.security.files import StorageError, StoredFile, UploadRefused

bp = Blueprint("cases", __name__, url_prefix="/cases")

#: What the access log calls each audited action (others are shown by their code).
ACTION_LABELS = {
    "case.view": _l("Viewed the child's details"),
    "case.intake": _l("Opened the case"),
    "case.assign": _l("Assigned the case"),
    "case.refer": _l("Referred the case"),
    "case.referral_accepted": _l("Accepted the referral"),
    "case.referral_declined": _l("Declined the referral"),
    "consent.withdraw": _l("Recorded a withdrawal of consent"),
    "cases.create": _l("Created the case record"),
    "cases.update": _l("Changed the case"),
    "children.create": _l("Created the child's record"),
    "children.update": _l("Changed the child's details"),
    "file.download": _l("Downloaded an attachment"),
}

#: The names of the fields in the change history.
FIELD_LABELS = {
    "full_name": _l("Full name of the child"),
    "other_names": _l("Other names"),
    "date_of_birth": _l("Date of birth"),
    "birth_year": _l("Year of birth"),
    "national_id": _l("Personal ID number"),
    "address": _l("Address"),
    "guardian_name": _l("Parent or guardian"),
    "guardian_phone": _l("Phone of the parent or guardian"),
    "sex": _l("Sex"),
    "ethnicity": _l("Ethnicity"),
    "has_disability": _l("The child has a disability"),
    "disability_kind": _l("Kind of disability"),
    "risk_level": _l("Risk level"),
    "immediate_danger": _l("Immediate danger"),
    "source": _l("Who reported"),
    "channel": _l("How it was reported"),
    "summary": _l("What was reported"),
}
#: Fields whose values are codes of a list in ``codes.toml``.
CODED_FIELDS = {
    "sex": "sex",
    "ethnicity": "ethnicity",
    "risk_level": "risk_levels",
    "source": "report_sources",
    "channel": "report_channels",
}
CODE_LIST_LABELS = {
    "special_circumstances": _l("Groups (Art. 10)"),
    "at_risk": _l("At risk of"),
    "abuse_types": _l("Forms of abuse"),
}
ACCESS_LOG_LIMIT = 200


# --- what every template may use ------------------------------------------------------------------------------------


@bp.app_template_filter("stage")
def stage_filter(code: str | None, workflow: str | None = None) -> str:
    return stage_label(code, workflow)


@bp.app_template_global()
def code_label(list_name: str, code: str | None) -> str:
    return codes.label(list_name, code) if code else ""


def _names(kind: str) -> dict:
    """This request's names of ``kind`` ("person", "commune") already worked out, by key."""
    return g.setdefault(f"casework_{kind}_names", {})


def _remembered(kind: str, key, compute) -> str:
    """``compute(key)``, once per request: a list page names the same commune or colleague on every row, and the
    session forgets a row nothing refers to any more (a page of 25 results read its one commune 25 times)."""
    names = _names(kind)
    if key not in names:
        names[key] = compute(key)
    return names[key]


def _person(user_id: uuid.UUID) -> str:
    user = db.session.get(User, user_id)
    if user is None:
        return ""
    return f"{user.full_name} ({user.username})" if user.full_name else user.username


def _commune(code: str) -> str:
    name = locations.commune_name(code)
    return _commune_label(code, name) if name is not None else code


def _commune_label(code: str, name: str) -> str:
    return f"{name} ({code})"


@bp.app_template_global()
def person(user_id: uuid.UUID | None) -> str:
    """A user's name as colleagues know it: "Full Name (username)"."""
    return _remembered("person", user_id, _person) if user_id else ""


@bp.app_template_global()
def commune_name(code: str | None) -> str:
    return _remembered("commune", code, _commune) if code else ""


@bp.app_template_global()
def is_overdue(case: Case) -> bool:
    return case.closed_at is None and case.next_deadline_at is not None and case.next_deadline_at < utcnow()


# --- helpers --------------------------------------------------------------------------------------------------------


def _actor() -> User:
    return current_user._get_current_object()


def _require_records() -> None:
    if not scope.can_view_records(current_user):
        abort(403)


def _load(case_id: uuid.UUID) -> Case:
    """The case, if the user may see it; otherwise 404 (NotFound), which says nothing of its existence."""
    _require_records()
    return operations.load_case(case_id, _actor())


def _communes_in_scope(user: User) -> list[tuple[str, str]]:
    stmt = scope.filter_to_scope(select(Commune.code, Commune.name), Commune.code, user)
    rows = db.session.execute(stmt.where(Commune.merged_into_code.is_(None)).order_by(Commune.name)).all()
    labels = [(code, _commune_label(code, name)) for code, name in rows]
    # The page's rows name these communes too: an officer's results read each of a page's communes one by one.
    _names("commune").update(labels)
    return labels


def _workers_in_scope(user: User) -> list[tuple[str, str]]:
    communes = scope.filter_to_scope(select(UserCommune.user_id), UserCommune.commune_code, user)
    workers = db.session.scalars(
        select(User).where(User.role == SOCIAL_WORKER, User.id.in_(communes)).order_by(User.full_name, User.username)
    )
    return [(str(w.id), person(w.id)) for w in workers]


def _workers_of_commune(commune_code: str) -> list[tuple[str, str]]:
    workers = db.session.scalars(
        select(User)
        .join(UserCommune, UserCommune.user_id == User.id)
        .where(UserCommune.commune_code == commune_code, User.role == SOCIAL_WORKER, User.active.is_(True))
        .order_by(User.full_name, User.username)
    )
    return [(str(w.id), person(w.id)) for w in workers]


def _as_uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _show(case: Case, anchor: str | None = None):
    return redirect(url_for("cases.show_case", case_id=case.id, _anchor=anchor))


# --- search -------------------------------------------------------------------------------------------------------


@bp.get("/")
def search_cases():
    """Find cases by case number, personal ID, phone or name words, with filters, sorted by next deadline."""
    _require_records()
    actor = _actor()
    form = SearchForm(formdata=request.args, communes=_communes_in_scope(actor), workers=_workers_in_scope(actor))
    if request.args and not form.validate():
        return render_template("cases/search.html", form=form, result=None, filter_args={}), 422
    worker = form.worker.data or ""
    filters = search.Filters(
        q=form.q.data or "",
        stage=form.stage.data or None,
        category=form.category.data or None,
        risk=form.risk.data or None,
        commune=form.commune.data or None,
        assigned_to=_as_uuid(worker) if worker not in ("", "none") else None,
        unassigned=worker == "none",
        overdue=bool(form.overdue.data),
        due_within_days=int(form.due.data) if form.due.data in ("1", "7") else None,
        open_only=not form.closed.data,
        page=max(request.args.get("page", 1, type=int) or 1, 1),
    )
    result = search.search(actor, filters)
    filter_args = {k: v for k, v in request.args.items() if k != "page" and v}
    return render_template("cases/search.html", form=form, result=result, filter_args=filter_args)


# --- intake -------------------------------------------------------------------------------------------------------


def _duplicates_key(duplicates: list[operations.Duplicate]) -> str:
    """A short fingerprint of the candidates shown, so that "create a new child" confirms exactly those."""
    parts = sorted(f"{d.kind}:{d.commune_code}:{d.child_id or ''}" for d in duplicates)
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


@bp.route("/new", methods=["GET", "POST"])
def new_case():
    """Register a report about a child: check it, look for earlier records of the child, then open the case."""
    _require_records()
    actor = _actor()
    form = IntakeForm(communes=_communes_in_scope(actor))
    if request.method == "GET":
        form.received_at.data = utcnow().astimezone(local_tz()).strftime("%d/%m/%Y %H:%M")
        return render_template("cases/new.html", form=form)
    if not form.validate_on_submit():
        abort(400)  # only the CSRF token is checked here; the rules below judge the fields
    try:
        data = operations.validate_intake(form.to_payload(), actor)
    except ValidationFailed as exc:
        db.session.rollback()
        form.show_errors(exc.errors)
        return render_template("cases/new.html", form=form), 422
    if data.existing_child_id is None:
        duplicates = operations.duplicates_for(data, actor)
        key = _duplicates_key(duplicates)
        confirmed = form.duplicate_choice.data == "new" and form.duplicates_shown.data == key
        if duplicates and not confirmed:
            # A match outside the worker's area is audited when it is reported: keep that even if they stop here.
            db.session.commit()
            if form.duplicates_shown.data:
                form.duplicate_choice.errors = [_l("Choose an earlier record of this child, or a new record.")]
            form.duplicates_shown.data = key
            form.duplicate_choice.data = ""
            return render_template("cases/new.html", form=form, duplicates=duplicates), (
                422 if form.duplicate_choice.errors else 200
            )
    case = operations.open_case(data, actor)
    db.session.commit()
    flash(_l("Case %(number)s opened.", number=case.case_number), "success")
    return _show(case)


# --- the case page ------------------------------------------------------------------------------------------------


def _consents_of(case: Case) -> list[Consent]:
    return list(
        db.session.scalars(select(Consent).where(Consent.case_id == case.id).order_by(Consent.recorded_at.desc()))
    )


def _referrals_of(case: Case) -> list[Referral]:
    return list(
        db.session.scalars(select(Referral).where(Referral.case_id == case.id).order_by(Referral.requested_at.desc()))
    )


def _siblings_of(case: Case, actor: User) -> list[list[Case]]:
    """The child's siblings, each as the cases of theirs the user may see."""
    child_id = case.child_id
    links = db.session.scalars(
        select(SiblingLink).where(or_(SiblingLink.child_a_id == child_id, SiblingLink.child_b_id == child_id))
    )
    others = [link.child_b_id if link.child_a_id == child_id else link.child_a_id for link in links]
    result = []
    for other in others:
        visible = list(
            db.session.scalars(
                search.scoped_cases(actor).where(Case.child_id == other).order_by(Case.received_at.desc())
            )
        )
        if visible:
            result.append(visible)
    return result


def _access_log(case: Case, stored_files: list[StoredFile]) -> list[audit.AuditEvent]:
    """Who viewed or changed the case, its child or its attachments, newest first."""
    events = audit.events_for_object("case", case.id, limit=ACCESS_LOG_LIMIT)
    events += audit.events_for_object("cases", case.id, limit=ACCESS_LOG_LIMIT)
    events += audit.events_for_object("children", case.child_id, limit=ACCESS_LOG_LIMIT)
    for stored in stored_files:
        events += audit.events_for_object("file", stored.id, limit=ACCESS_LOG_LIMIT)
    unique = {event.seq: event for event in events}
    return sorted(unique.values(), key=lambda e: e.seq, reverse=True)[:ACCESS_LOG_LIMIT]


def _shown_value(field: str, value: str | None) -> str:
    """A value of the change history as the case page shows it: labels for codes, dd/mm/yyyy for dates."""
    if value is None or value == "":
        return "—"
    if field in CODED_FIELDS:
        return codes.label(CODED_FIELDS[field], value)
    if value in ("yes", "no") and field in ("has_disability", "immediate_danger"):
        return str(_l("Yes") if value == "yes" else _l("No"))
    if field == "date_of_birth":
        try:
            return format_date(parse_day(value))
        except ValueError:
            return value
    return value


def _case_page(case: Case, status: int = 200, **forms):
    """Record that the user sees the child's details, render the case page, and commit the record before the
    page leaves: a page whose view could not be recorded is never sent. (Committing first expired every loaded row
    and read them again for the page.)

    ``forms`` are the forms to show as submitted (with their errors); the others are shown empty.
    """
    actor = _actor()
    operations.record_view(case, actor)
    supervises = scope.can_supervise(actor, case.commune_code)
    stored_files = operations.files_of(case)
    consents = _consents_of(case)
    changes = [
        {
            "at": change.changed_at,
            "actor_id": change.actor_id,
            "field": str(FIELD_LABELS.get(change.field, change.field)),
            "old": _shown_value(change.field, change.old_value),
            "new": _shown_value(change.field, change.new_value),
        }
        for change in operations.change_history(case)
    ]
    context = {
        "case": case,
        "child": case.child,
        "case_codes": {name: case.codes_of(name) for name in CASE_CODE_LISTS},
        "code_list_labels": CODE_LIST_LABELS,
        "consents": consents,
        "consent_subjects": CONSENT_SUBJECTS,
        "legal_bases": LEGAL_BASIS_LABELS,
        "notes": operations.notes_of(case),
        "files": stored_files,
        "changes": changes,
        "assignments": operations.assignment_history(case),
        "referrals": _referrals_of(case),
        "referral_statuses": REFERRAL_STATUS_LABELS,
        "siblings": _siblings_of(case, actor),
        "other_cases": list(
            db.session.scalars(
                search.scoped_cases(actor)
                .where(Case.child_id == case.child_id, Case.id != case.id)
                .order_by(Case.received_at.desc())
            )
        ),
        "supervises": supervises,
        "has_sharing_consent": any(c.scope == "sharing" and c.in_force for c in consents),
        "access_log": _access_log(case, stored_files) if supervises else [],
        "action_labels": ACTION_LABELS,
        "note_form": forms.get("note_form") or NoteForm(formdata=None),
        "file_form": forms.get("file_form") or FileForm(formdata=None),
        "consent_form": forms.get("consent_form") or ConsentForm(formdata=None),
        "refer_form": forms.get("refer_form") or ReferForm(formdata=None),
        "sibling_form": forms.get("sibling_form") or SiblingForm(formdata=None),
        "assign_form": forms.get("assign_form")
        or (AssignForm(formdata=None, workers=_workers_of_commune(case.commune_code)) if supervises else None),
        "button_form": EmptyForm(formdata=None),
    }
    page = render_template("cases/show.html", **context)
    db.session.commit()
    return page, status


def _refused(case: Case, form, name: str):
    """Show the case page again with a form that failed its own checks (422); a bad CSRF token is a 400."""
    if form.csrf_token.errors:
        abort(400)
    return _case_page(case, 422, **{name: form})


@bp.get("/<uuid:case_id>")
def show_case(case_id: uuid.UUID):
    """Show a case with the child's details (the view is recorded) and what can be done on it."""
    case = _load(case_id)
    return _case_page(case)


@bp.route("/<uuid:case_id>/edit", methods=["GET", "POST"])
def edit_case(case_id: uuid.UUID):
    """Correct the details of a case and its child; a form based on an older version is refused (409)."""
    case = _load(case_id)
    actor = _actor()
    if not case.is_open:
        flash(_l("This case is closed."), "error")
        return _show(case)
    if request.method == "GET":
        form = EditCaseForm.of(case)
        operations.record_view(case, actor)
        db.session.commit()
        return render_template("cases/edit.html", case=case, form=form)
    form = EditCaseForm()
    if not form.validate_on_submit():
        if form.csrf_token.errors:
            abort(400)
        return render_template("cases/edit.html", case=case, form=form), 422
    try:
        changed = operations.update_case(case, actor, version=form.version_number(), changes=form.changes())
        db.session.commit()
    except (Conflict, StaleDataError) as exc:
        db.session.rollback()
        message = (
            exc.message
            if isinstance(exc, Conflict)
            else _l("Someone changed this case since you opened it. Reload it and make your change again.")
        )
        return render_template("cases/edit.html", case=case, form=form, conflict=message), 409
    except ValidationFailed as exc:
        db.session.rollback()
        form.show_errors(exc.errors)
        return render_template("cases/edit.html", case=case, form=form), 422
    if changed:
        flash(_l("Changes saved."), "success")
    else:
        flash(_l("Nothing was changed."), "info")
    return _show(case, "history")


@bp.post("/<uuid:case_id>/notes")
def add_note(case_id: uuid.UUID):
    """Add a note (encrypted, with its author and time) to a case."""
    case = _load(case_id)
    form = NoteForm()
    if not form.validate_on_submit():
        return _refused(case, form, "note_form")
    operations.add_note(case, _actor(), form.body.data)
    db.session.commit()
    flash(_l("Note added."), "success")
    return _show(case, "notes")


@bp.post("/<uuid:case_id>/files")
def upload_file(case_id: uuid.UUID):
    """Attach a file to a case through the encrypted file store."""
    case = _load(case_id)
    form = FileForm()
    if not form.validate_on_submit():
        return _refused(case, form, "file_form")
    upload = form.file.data
    try:
        operations.attach_file(case, _actor(), upload.stream, upload.filename)
    except (UploadRefused, StorageError) as exc:  # a refused file, or a disk that failed: said under the field
        db.session.rollback()
        form.file.errors = [*form.file.errors, str(exc.message)]
        return _case_page(case, exc.status, file_form=form)
    db.session.commit()
    flash(_l("File attached."), "success")
    return _show(case, "files")


@bp.get("/<uuid:case_id>/files/<uuid:file_id>")
def download_file(case_id: uuid.UUID, file_id: uuid.UUID):
    """Send an attachment of a case as a download; the download is recorded before the first byte leaves."""
    case = _load(case_id)
    stored = db.session.get(StoredFile, file_id)
    if stored is None or stored.owner_type != "case" or stored.owner_id != str(case.id) or stored.deleted_at:
        abort(404)
    return downloads.send_stored(stored, _actor())


@bp.post("/<uuid:case_id>/consents")
def record_consent(case_id: uuid.UUID):
    """Record a consent, or the legal basis relied on without one."""
    case = _load(case_id)
    form = ConsentForm()
    if not form.validate_on_submit():
        return _refused(case, form, "consent_form")
    try:
        operations.record_consent(
            case,
            _actor(),
            subject=form.subject.data,
            scope_code=form.scope.data,
            given=form.given.data == "yes",
            basis=form.basis.data or None,
            note=form.note.data or None,
        )
    except ValidationFailed as exc:
        db.session.rollback()
        form.show_errors(exc.errors)
        return _case_page(case, 422, consent_form=form)
    db.session.commit()
    flash(_l("Consent recorded."), "success")
    return _show(case, "consents")


@bp.post("/<uuid:case_id>/consents/<uuid:consent_id>/withdraw")
def withdraw_consent(case_id: uuid.UUID, consent_id: uuid.UUID):
    """Record that a consent was withdrawn; referrals that relied on it are cancelled."""
    case = _load(case_id)
    consent = db.session.get(Consent, consent_id)
    if consent is None or consent.case_id != case.id:
        abort(404)
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        cancelled = operations.withdraw_consent(consent, _actor())
    except Conflict as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return _show(case, "consents")
    db.session.commit()
    if cancelled:
        message = ngettext(
            "Consent withdrawn; %(num)d pending referral was cancelled.",
            "Consent withdrawn; %(num)d pending referrals were cancelled.",
            len(cancelled),
        )
        flash(message, "success")
    else:
        flash(_l("Consent withdrawn."), "success")
    return _show(case, "consents")


@bp.post("/<uuid:case_id>/assign")
def assign_case(case_id: uuid.UUID):
    """Give the case to a social worker of its commune, or transfer it to another (supervisors)."""
    case = _load(case_id)
    actor = _actor()
    if not scope.can_supervise(actor, case.commune_code):
        abort(403)
    form = AssignForm(workers=_workers_of_commune(case.commune_code))
    if not form.validate_on_submit():
        return _refused(case, form, "assign_form")
    worker_id = _as_uuid(form.worker.data)
    worker = db.session.get(User, worker_id) if worker_id else None
    if worker is None:
        form.worker.errors = [*form.worker.errors, _l("Choose a social worker of the case's commune.")]
        return _case_page(case, 422, assign_form=form)
    try:
        operations.assign_case(case, worker, actor, reason=form.reason.data or None)
    except ValidationFailed as exc:
        db.session.rollback()
        form.show_errors(exc.errors)
        return _case_page(case, 422, assign_form=form)
    except Conflict as exc:
        db.session.rollback()
        form.worker.errors = [*form.worker.errors, exc.message]
        return _case_page(case, 409, assign_form=form)
    db.session.commit()
    flash(_l("The case is now with %(name)s.", name=person(worker.id)), "success")
    return _show(case, "assignments")


@bp.post("/<uuid:case_id>/refer")
def refer_case(case_id: uuid.UUID):
    """Refer the case to another commune or province; without recorded consent a supervisor gives a reason."""
    case = _load(case_id)
    form = ReferForm()
    if not form.validate_on_submit():
        return _refused(case, form, "refer_form")
    try:
        referral = operations.refer_case(
            case,
            form.to_commune.data or "",
            _actor(),
            reason=form.reason.data or "",
            override_reason=form.override_reason.data or None,
        )
    except ValidationFailed as exc:
        db.session.rollback()
        form.show_errors(exc.errors)
        return _case_page(case, 422, refer_form=form)
    except PermissionDenied as exc:
        db.session.rollback()
        form.override_reason.errors = [*form.override_reason.errors, exc.message]
        return _case_page(case, 403, refer_form=form)
    except Conflict as exc:
        db.session.rollback()
        form.form_errors.append(exc.message)
        return _case_page(case, 409, refer_form=form)
    db.session.commit()
    flash(
        _l("Referral to %(commune)s sent; it waits for their answer.", commune=commune_name(referral.to_commune_code)),
        "success",
    )
    return _show(case, "referrals")


@bp.post("/<uuid:case_id>/siblings")
def link_sibling(case_id: uuid.UUID):
    """Record that the child of this case and the child of another case are siblings."""
    case = _load(case_id)
    actor = _actor()
    form = SiblingForm()
    if not form.validate_on_submit():
        return _refused(case, form, "sibling_form")
    other = None
    if search.CASE_NUMBER_RE.match(form.case_number.data):
        found = search.search(actor, search.Filters(q=form.case_number.data, open_only=False), per_page=1)
        other = found.items[0] if found.items else None
    if other is None:
        form.case_number.errors = [*form.case_number.errors, _l("No case with this number in your area.")]
        return _case_page(case, 422, sibling_form=form)
    try:
        operations.link_siblings(case.child, other.child, actor)
    except ValidationFailed as exc:
        db.session.rollback()
        form.show_errors(exc.errors)
        return _case_page(case, 422, sibling_form=form)
    db.session.commit()
    flash(_l("Siblings linked."), "success")
    return _show(case, "siblings")


# --- referrals received ---------------------------------------------------------------------------------------------


@bp.get("/referrals")
def list_referrals():
    """List the referrals sent to the supervisor's communes that await an answer."""
    actor = _actor()
    if actor.role != SUPERVISOR:
        abort(403)
    referrals = operations.incoming_referrals(actor)
    # The receiving side sees what it needs to decide, not the child's identity: that comes with the case.
    referred = {r.case_id: db.session.get(Case, r.case_id) for r in referrals}
    return render_template("cases/referrals.html", referrals=referrals, referred=referred, form=DecisionForm())


@bp.post("/referrals/<uuid:referral_id>/decision")
def decide_referral(referral_id: uuid.UUID):
    """Accept a referral (the case moves to the receiving commune) or decline it."""
    actor = _actor()
    referral = db.session.get(Referral, referral_id)
    if referral is None or not operations.can_decide_referral(actor, referral):
        abort(404)
    form = DecisionForm()
    if not form.validate_on_submit():
        if form.csrf_token.errors:
            abort(400)
        for message in (m for errors in form.errors.values() for m in errors):
            flash(message, "error")
        return redirect(url_for("cases.list_referrals"))
    accept = form.decision.data == "accept"
    try:
        operations.decide_referral(referral, actor, accept=accept, note=form.note.data or None)
    except Conflict as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("cases.list_referrals"))
    db.session.commit()
    if accept:
        flash(_l("Referral accepted: the case is now in your commune."), "success")
        return redirect(url_for("cases.show_case", case_id=referral.case_id))
    flash(_l("Referral declined."), "info")
    return redirect(url_for("cases.list_referrals"))
