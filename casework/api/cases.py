"""``/api/v1/cases``: intake with its duplicate check, the case, its changes and notes, and the scoped list.

The rules are those of :mod:`casework.cases.operations`, the same the web form and the import use; this module
only turns JSON into calls and answers. A case outside the caller's area answers 404 exactly like a case that does
not exist (its existence is sensitive); roles that never open a child's record get 403 on every endpoint.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from flask import jsonify, request
from flask_login import current_user

from casework import codes, scope
from casework.api import ApiError, bp
from casework.api.views import json_body
from casework.auth.models import User
from casework.cases import operations, search
from casework.cases.models import CASE_CODE_LISTS, Case, CaseNote
from casework.dbtypes import utcnow
from casework.errors import Problems
from casework.extensions import db

MAX_QUERY = 200
MAX_STAGE = 64
MAX_PAGE = 100_000
TRUE_WORDS = frozenset({"1", "true", "yes"})
FALSE_WORDS = frozenset({"", "0", "false", "no"})


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def _require_record_role() -> None:
    """Refuse, before anything is looked up, the roles that never open a child's record."""
    if not scope.can_view_records(current_user):
        raise ApiError(403, "forbidden", "Your role does not give access to children's records.")


def _user_ref(user_id: uuid.UUID | None) -> dict[str, Any] | None:
    if user_id is None:
        return None
    user = db.session.get(User, user_id)
    if user is None:
        return {"id": str(user_id), "username": None, "full_name": None}
    return {"id": str(user.id), "username": user.username, "full_name": user.full_name}


def _child_json(case: Case) -> dict[str, Any]:
    child = case.child
    return {
        "id": str(child.id),
        "full_name": child.full_name,
        "other_names": child.other_names,
        "date_of_birth": child.date_of_birth.isoformat() if child.date_of_birth else None,
        "birth_year": child.birth_year,
        "estimated_age": child.estimated_age,
        "sex": child.sex,
        "ethnicity": child.ethnicity,
        "has_disability": child.has_disability,
        "disability_kind": child.disability_kind,
        "national_id": child.national_id,
        "address": child.address,
        "guardian_name": child.guardian_name,
        "guardian_phone": child.guardian_phone,
        "commune_code": child.commune_code,
        "province_code": child.province_code,
    }


def _case_json(case: Case) -> dict[str, Any]:
    """The whole case, decrypted: the caller of this has recorded the view."""
    return {
        "id": str(case.id),
        "case_number": case.case_number,
        "version": case.version,
        "stage": case.stage,
        "workflow": case.workflow,
        "commune_code": case.commune_code,
        "province_code": case.province_code,
        "received_at": _iso(case.received_at),
        "source": case.source,
        "channel": case.channel,
        "risk_level": case.risk_level,
        "immediate_danger": case.immediate_danger,
        "summary": case.summary,
        "reporter": {"name": case.reporter_name, "phone": case.reporter_phone, "address": case.reporter_address},
        "categories": case.codes_of("special_circumstances"),
        "at_risk": case.codes_of("at_risk"),
        "abuse_types": case.codes_of("abuse_types"),
        "assigned_to": _user_ref(case.assigned_to_id),
        "next_deadline_at": _iso(case.next_deadline_at),
        "closed_at": _iso(case.closed_at),
        "closure_reason": case.closure_reason,
        "created_at": _iso(case.created_at),
        "updated_at": _iso(case.updated_at),
        "child": _child_json(case),
    }


def _case_summary(case: Case, now: datetime) -> dict[str, Any]:
    child = case.child
    return {
        "id": str(case.id),
        "case_number": case.case_number,
        "stage": case.stage,
        "commune_code": case.commune_code,
        "risk_level": case.risk_level,
        "immediate_danger": case.immediate_danger,
        "received_at": _iso(case.received_at),
        "next_deadline_at": _iso(case.next_deadline_at),
        "overdue": case.is_open and case.next_deadline_at is not None and case.next_deadline_at < now,
        "assigned_to_id": str(case.assigned_to_id) if case.assigned_to_id else None,
        "child": {
            "id": str(child.id),
            "full_name": child.full_name,
            "sex": child.sex,
            "birth_year": child.birth_year,
            "estimated_age": child.estimated_age,
        },
    }


def _note_json(note: CaseNote) -> dict[str, Any]:
    return {
        "id": str(note.id),
        "body": note.body,
        "author": _user_ref(note.author_id),
        "created_at": _iso(note.created_at),
    }


def _flag(problems: Problems, name: str) -> bool:
    raw = request.args.get(name, "").strip().lower()
    if raw in TRUE_WORDS:
        return True
    if raw not in FALSE_WORDS:
        problems.add(name, "not_a_boolean", "Write true or false.")
    return False


def _filters() -> search.Filters:
    """Read the list's query string into search filters; 422 naming each bad parameter."""
    args = request.args
    problems = Problems()
    filters = search.Filters()
    # Lengths are counted as sent, as the document's maxLength says, before the value is trimmed.
    if len(args.get("q", "")) > MAX_QUERY:
        problems.add("q", "too_long", f"At most {MAX_QUERY} characters.")
    filters.q = args.get("q", "").strip()
    if len(args.get("stage", "")) > MAX_STAGE:
        problems.add("stage", "too_long", f"At most {MAX_STAGE} characters.")
    filters.stage = args.get("stage", "").strip() or None
    filters.category = args.get("category", "").strip() or None
    if filters.category and not any(codes.is_code(name, filters.category) for name in CASE_CODE_LISTS):
        problems.add("category", "invalid_code", "Unknown group, risk or form of abuse.")
    filters.risk = args.get("risk", "").strip() or None
    if filters.risk and not codes.is_code("risk_levels", filters.risk):
        problems.add("risk", "invalid_code", "Unknown risk level.")
    filters.commune = args.get("commune", "").strip() or None
    assigned_to = args.get("assigned_to", "").strip()
    if assigned_to == "me":
        filters.assigned_to = current_user.id
    elif assigned_to == "none":
        filters.unassigned = True
    elif assigned_to:
        try:
            filters.assigned_to = uuid.UUID(assigned_to)
        except ValueError:
            problems.add("assigned_to", "invalid_id", "Give a user id, 'me' or 'none'.")
    filters.overdue = _flag(problems, "overdue")
    due = args.get("due_within_days", "").strip()
    if due:
        if due.isdigit() and 1 <= int(due) <= 366:
            filters.due_within_days = int(due)
        else:
            problems.add("due_within_days", "invalid_days", "Give a number of days from 1 to 366.")
    page = args.get("page", "1").strip() or "1"
    if page.isdigit() and 1 <= int(page) <= MAX_PAGE:
        filters.page = int(page)
    else:
        problems.add("page", "invalid_page", f"Give a page number from 1 to {MAX_PAGE}.")
    problems.raise_if_any()
    return filters


@bp.post("/cases")
def create_case():
    """Register a case after checking for earlier records of the same child."""
    _require_record_role()
    data = json_body()
    confirm = data.get("confirm_new_child", False)
    if not isinstance(confirm, bool):
        problems = Problems()
        problems.add("confirm_new_child", "not_a_boolean", "Answer true or false.")
        problems.raise_if_any()
    intake = operations.validate_intake(data, current_user)
    duplicates = operations.duplicates_for(intake, current_user)
    if duplicates and not confirm and intake.existing_child_id is None:
        # Nothing of the intake is saved, but a match outside the caller's area is audited all the same: start
        # from a clean transaction, record the match events again and commit them alone.
        db.session.rollback()
        duplicates = operations.duplicates_for(intake, current_user)
        db.session.commit()
        raise ApiError(
            409,
            "possible_duplicates",
            "This child may already be registered. Send 'existing_child_id' to add the report to that child, or "
            "'confirm_new_child': true to register a new child.",
            possible_duplicates=[d.as_dict() for d in duplicates],
        )
    case = operations.open_case(intake, current_user)
    db.session.commit()
    return jsonify(
        id=str(case.id),
        case_number=case.case_number,
        stage=case.stage,
        possible_duplicates=[d.as_dict() for d in duplicates],
    ), 201


@bp.get("/cases")
def list_cases():
    """List the cases within the caller's area, filtered and paged."""
    _require_record_role()
    filters = _filters()
    found = search.search(current_user, filters)
    now = utcnow()
    return jsonify(
        items=[_case_summary(case, now) for case in found.items],
        total=found.total,
        page=found.page,
        per_page=found.per_page,
        pages=found.pages,
    )


@bp.get("/cases/<case_id>")
def show_case(case_id: str):
    """Show a case with its child's details, recording the view."""
    _require_record_role()
    case = operations.load_case(case_id, current_user)
    operations.record_view(case, current_user)
    body = _case_json(case)
    db.session.commit()
    return jsonify(body)


@bp.patch("/cases/<case_id>")
def update_case(case_id: str):
    """Change fields of a case or its child, based on the version the caller last saw."""
    _require_record_role()
    case = operations.load_case(case_id, current_user)
    data = json_body()
    problems = Problems()
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        problems.add("version", "required", "Send the 'version' of the case you changed.")
    changes = data.get("changes")
    if not isinstance(changes, dict) or not changes:
        problems.add("changes", "not_an_object", "Send 'changes', an object of field names and new values.")
    problems.raise_if_any()
    changed = operations.update_case(case, current_user, version=version, changes=changes)
    db.session.commit()
    return jsonify(id=str(case.id), case_number=case.case_number, version=case.version, changed=changed)


@bp.post("/cases/<case_id>/notes")
def add_note(case_id: str):
    """Add a note to a case."""
    _require_record_role()
    case = operations.load_case(case_id, current_user)
    data = json_body()
    note = operations.add_note(case, current_user, data.get("body"))
    db.session.commit()
    return jsonify(_note_json(note)), 201


@bp.get("/cases/<case_id>/notes")
def list_notes(case_id: str):
    """List the notes of a case, newest first, recording the view."""
    _require_record_role()
    case = operations.load_case(case_id, current_user)
    operations.record_view(case, current_user)
    items = [_note_json(note) for note in operations.notes_of(case)]
    db.session.commit()
    return jsonify(items=items)
