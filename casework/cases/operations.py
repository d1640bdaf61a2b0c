"""The rules of the case registry: intake, duplicates, changes, assignment, referral, consent, notes and files.

Operations take the acting user, check the rules, change state, record audit events and ``flush()``; the request
or job that called them commits. The web form, ``/api/v1/cases`` and the Excel import all go through
:func:`validate_intake` and :func:`open_case`, so one set of rules decides what is accepted.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from casework import audit, codes, scope
from casework.auth.models import User, UserCommune
from casework.auth.roles import SOCIAL_WORKER, SUPERVISOR
from casework.cases import stages
from casework.cases.models import (
    CASE_CODE_LISTS,
    Assignment,
    Case,
    CaseChange,
    CaseCode,
    CaseNote,
    CaseNumberSequence,
    Child,
    Consent,
    OpenCaseload,
    Referral,
    SiblingLink,
)
from casework.checks import MAX_NAME, MAX_TEXT
from casework.checks import code as _code
from casework.checks import codes as _codes
from casework.checks import day as _date
from casework.checks import moment as _moment
from casework.checks import text as _text
from casework.dbtypes import utcnow
from casework.errors import Conflict, NotFound, PermissionDenied, Problems, ValidationFailed
from casework.extensions import db
from casework.i18n import local_tz
from casework.locations.models import Commune
from casework.security import fields as blind
from casework.security.text import fold, words

NATIONAL_ID_RE = re.compile(r"^\d{12}$")
PHONE_RE = re.compile(r"^\+?\d{9,12}$")

#: The encrypted details that identify a child, as intake takes them.
IDENTIFYING_CHILD_FIELDS = (
    "full_name",
    "other_names",
    "date_of_birth",
    "national_id",
    "address",
    "guardian_name",
    "guardian_phone",
)

#: Legal bases relied on without consent (Personal Data Protection Law 2025, Art. 19(1)).
LEGAL_BASES = ("protect_life_health", "legal_obligation", "public_interest", "court_order")

# --- intake ---------------------------------------------------------------------------------------------------


@dataclass
class IntakeData:
    """A validated intake: what :func:`open_case` writes."""

    child: dict[str, Any]
    codes: dict[str, list[str]]
    risk_level: str
    immediate_danger: bool
    source: str
    channel: str | None
    received_at: datetime
    summary: str
    reporter: dict[str, str | None] = field(default_factory=dict)
    existing_child_id: uuid.UUID | None = None


def validate_intake(payload: dict[str, Any], actor: User, *, now: datetime | None = None) -> IntakeData:
    """Check an intake (the API's JSON shape; the web form is converted to it) against every rule.

    :raises ValidationFailed: naming each field (``child.full_name``, ``received_at``, ...) with a stable code.
    """
    now = now or utcnow()
    today = now.astimezone(local_tz()).date()
    problems = Problems()
    if not isinstance(payload, dict):
        raise ValidationFailed(
            {"body": [str(_l("The body must be an object."))]}, field_codes={"body": ["not_an_object"]}
        )
    raw_child = payload.get("child")
    if not isinstance(raw_child, dict):
        problems.add("child", "required", _l("The child's details are required."))
        raw_child = {}

    child: dict[str, Any] = {}
    child["full_name"] = _text(raw_child.get("full_name"), problems, "child.full_name", required=True, limit=MAX_NAME)
    child["other_names"] = _text(raw_child.get("other_names"), problems, "child.other_names", limit=MAX_NAME)
    child["sex"] = _code(raw_child.get("sex"), "sex", problems, "child.sex", required=True)
    child["ethnicity"] = _code(raw_child.get("ethnicity"), "ethnicity", problems, "child.ethnicity")
    child["address"] = _text(raw_child.get("address"), problems, "child.address", limit=500)
    child["guardian_name"] = _text(raw_child.get("guardian_name"), problems, "child.guardian_name", limit=MAX_NAME)
    dob = _date(raw_child.get("date_of_birth"), problems, "child.date_of_birth")
    if dob is not None:
        if dob > today:
            problems.add("child.date_of_birth", "in_future", _l("The date cannot be in the future."))
        elif (today.year - dob.year) > 18:
            problems.add("child.date_of_birth", "not_a_child", _l("The child would be over 18."))
    child["date_of_birth"] = dob
    birth_year = raw_child.get("birth_year")
    if birth_year not in (None, ""):
        try:
            birth_year = int(birth_year)
        except (TypeError, ValueError):
            problems.add("child.birth_year", "not_a_number", _l("Write the year as a number."))
            birth_year = None
        else:
            if birth_year > today.year:
                problems.add("child.birth_year", "in_future", _l("The year cannot be in the future."))
            elif birth_year < today.year - 18:
                problems.add("child.birth_year", "not_a_child", _l("The child would be over 18."))
    else:
        birth_year = None
    if dob is not None and birth_year is not None and dob.year != birth_year:
        problems.add("child.birth_year", "inconsistent", _l("The year does not match the date of birth."))
    estimated_age = raw_child.get("estimated_age")
    if estimated_age not in (None, ""):
        try:
            estimated_age = int(estimated_age)
            if not 0 <= estimated_age <= 18:
                raise ValueError
        except (TypeError, ValueError):
            problems.add("child.estimated_age", "invalid_age", _l("Give an age from 0 to 18."))
            estimated_age = None
    else:
        estimated_age = None
    if dob is None and birth_year is None and estimated_age is None and "child.date_of_birth" not in problems.errors:
        problems.add(
            "child.date_of_birth",
            "required",
            _l("Give the date of birth, the year of birth or an estimated age (Mẫu 01)."),
        )
    child["birth_year"] = dob.year if dob else birth_year
    child["estimated_age"] = estimated_age
    has_disability = raw_child.get("has_disability", False)
    if not isinstance(has_disability, bool):
        problems.add("child.has_disability", "not_a_boolean", _l("Answer yes or no."))
        has_disability = False
    child["has_disability"] = has_disability
    child["disability_kind"] = _text(raw_child.get("disability_kind"), problems, "child.disability_kind", limit=32)

    national_id = raw_child.get("national_id")
    if national_id not in (None, ""):
        national_id = "".join(str(national_id).split())
        if not NATIONAL_ID_RE.match(national_id):
            problems.add("child.national_id", "invalid_national_id", _l("A personal ID number has 12 digits."))
            national_id = None
    else:
        national_id = None
    child["national_id"] = national_id
    child["guardian_phone"] = _phone(raw_child.get("guardian_phone"), problems, "child.guardian_phone")

    commune_code = raw_child.get("commune_code")
    if not commune_code:
        problems.add("child.commune_code", "required", _l("This field is required."))
    elif not isinstance(commune_code, str) or db.session.get(Commune, commune_code) is None:
        problems.add("child.commune_code", "unknown_commune", _l("Unknown commune code."))
    elif not scope.can_access_commune(actor, commune_code):
        problems.add("child.commune_code", "out_of_scope", _l("This commune is outside your area."))
    child["commune_code"] = commune_code

    picked = {
        "special_circumstances": _codes(payload.get("categories"), "special_circumstances", problems, "categories"),
        "at_risk": _codes(payload.get("at_risk"), "at_risk", problems, "at_risk"),
        "abuse_types": _codes(payload.get("abuse_types"), "abuse_types", problems, "abuse_types"),
    }
    if not any(picked.values()) and not any(k in problems.errors for k in ("categories", "at_risk", "abuse_types")):
        problems.add(
            "categories", "required", _l("Choose at least one group, risk or form of abuse that brings the child here.")
        )
    risk_level = _code(payload.get("risk_level"), "risk_levels", problems, "risk_level", required=True)
    immediate_danger = payload.get("immediate_danger", False)
    if not isinstance(immediate_danger, bool):
        problems.add("immediate_danger", "not_a_boolean", _l("Answer yes or no."))
        immediate_danger = False
    source = _code(payload.get("source"), "report_sources", problems, "source", required=True)
    channel = _code(payload.get("channel"), "report_channels", problems, "channel")
    received_at = _moment(payload.get("received_at"), problems, "received_at")
    if received_at is not None and received_at > now:
        problems.add("received_at", "in_future", _l("The date cannot be in the future."))
    summary = _text(payload.get("summary"), problems, "summary", required=True)

    reporter: dict[str, str | None] = {}
    raw_reporter = payload.get("reporter") or {}
    if not isinstance(raw_reporter, dict):
        problems.add("reporter", "not_an_object", _l("Invalid reporter details."))
        raw_reporter = {}
    reporter["name"] = _text(raw_reporter.get("name"), problems, "reporter.name", limit=MAX_NAME)
    reporter["phone"] = _phone(raw_reporter.get("phone"), problems, "reporter.phone")
    reporter["address"] = _text(raw_reporter.get("address"), problems, "reporter.address", limit=500)

    existing = payload.get("existing_child_id")
    existing_id = None
    if existing:
        try:
            existing_id = uuid.UUID(str(existing))
        except ValueError:
            problems.add("existing_child_id", "invalid_id", _l("Unknown child."))
        else:
            linked = db.session.get(Child, existing_id)
            if linked is None or not scope.can_access_commune(actor, linked.commune_code):
                problems.add("existing_child_id", "invalid_id", _l("Unknown child."))

    problems.raise_if_any()
    return IntakeData(
        child=child,
        codes=picked,
        risk_level=risk_level,
        immediate_danger=immediate_danger,
        source=source,
        channel=channel,
        received_at=received_at,
        summary=summary,
        reporter=reporter,
        existing_child_id=existing_id,
    )


def _phone(value: Any, problems: Problems, name: str) -> str | None:
    if value in (None, ""):
        return None
    text = "".join(ch for ch in str(value) if ch.isdigit() or ch == "+")
    if not PHONE_RE.match(text):
        problems.add(name, "invalid_phone", _l("A phone number has 9 to 12 digits."))
        return None
    return text


def next_case_number(province_code: str, year: int) -> str:
    """Give out the next case number of a province and year (``22-2025-000123``), safely under concurrency."""
    key = {"province_code": province_code, "year": year}
    seq = db.session.get(CaseNumberSequence, (province_code, year), with_for_update=True)
    if seq is None:
        try:
            with db.session.begin_nested():
                db.session.add(CaseNumberSequence(**key, last=0))
        except IntegrityError:
            pass  # another request created it first
        seq = db.session.get(CaseNumberSequence, (province_code, year), with_for_update=True, populate_existing=True)
    seq.last += 1
    db.session.flush()
    return f"{province_code}-{year}-{seq.last:06d}"


def open_case(data: IntakeData, actor: User, *, import_fingerprint: str | None = None) -> Case:
    """Register a case (and its child, unless linked to an existing one) from a validated intake."""
    commune = db.session.get(Commune, data.child["commune_code"])
    if data.existing_child_id:
        child = db.session.get(Child, data.existing_child_id)
    else:
        child = Child(
            commune_code=commune.code,
            province_code=commune.province_code,
            created_by_id=actor.id,
            sex=data.child["sex"],
        )
        for name in IDENTIFYING_CHILD_FIELDS:
            setattr(child, name, data.child[name])
        for name in ("birth_year", "estimated_age", "ethnicity", "has_disability", "disability_kind"):
            setattr(child, name, data.child[name])
        db.session.add(child)
    year = data.received_at.astimezone(local_tz()).year
    case = Case(
        case_number=next_case_number(commune.province_code, year),
        child=child,
        commune_code=commune.code,
        province_code=commune.province_code,
        received_at=data.received_at,
        source=data.source,
        channel=data.channel,
        risk_level=data.risk_level,
        immediate_danger=data.immediate_danger,
        created_by_id=actor.id,
        import_fingerprint=import_fingerprint,
        codes=[CaseCode(list_name=ln, code=c) for ln in CASE_CODE_LISTS for c in data.codes[ln]],
    )
    stages.start(case)
    db.session.add(case)
    case.summary = data.summary
    case.reporter_name = data.reporter.get("name")
    case.reporter_phone = data.reporter.get("phone")
    case.reporter_address = data.reporter.get("address")
    if actor.role == SOCIAL_WORKER:
        case.assigned_to_id = actor.id
    db.session.add(case)
    db.session.flush()
    if actor.role == SOCIAL_WORKER:
        db.session.add(Assignment(case_id=case.id, worker_id=actor.id, assigned_by_id=actor.id))
        db.session.flush()
    audit.record(
        "case.intake",
        object_type="case",
        object_id=case.id,
        actor=actor,
        details={"case_number": case.case_number, "linked_child": bool(data.existing_child_id)},
    )
    return case


# --- duplicates -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Duplicate:
    """A possible earlier record of the same child.

    ``visible`` candidates carry their ids; the others say only that one exists, where, and whom to contact.
    """

    kind: str  # "same_id" (exact) or "likely" (same name words and birth year in the province)
    visible: bool
    child_id: uuid.UUID | None
    case_numbers: tuple[str, ...]
    commune_code: str
    commune_name: str
    contacts: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        out = {
            "kind": self.kind,
            "visible": self.visible,
            "commune_code": self.commune_code,
            "commune_name": self.commune_name,
        }
        if self.visible:
            out |= {"child_id": str(self.child_id), "case_numbers": list(self.case_numbers)}
        else:
            out["contacts"] = list(self.contacts)
        return out


def _contacts(commune_code: str) -> tuple[str, ...]:
    rows = db.session.execute(
        select(User.full_name, User.username)
        .join(UserCommune, UserCommune.user_id == User.id)
        .where(UserCommune.commune_code == commune_code, User.role == SUPERVISOR, User.active.is_(True))
        .order_by(User.username)
    ).all()
    return tuple(f"{name or username} ({username})" for name, username in rows)


def find_duplicates(
    actor: User,
    *,
    full_name: str | None,
    birth_year: int | None,
    national_id: str | None,
    province_code: str | None,
    exclude_child: uuid.UUID | None = None,
) -> list[Duplicate]:
    """Look for earlier records of the same child: the same personal ID anywhere (exact), or the same name words
    with the same birth year in the same province (likely). Matches outside the actor's area are audited and
    reported without their content."""
    found: dict[uuid.UUID, str] = {}
    if national_id:
        ids = blind.candidate_ids(Child.national_id, national_id)
        for child in db.session.scalars(select(Child).where(Child.id.in_(ids))) if ids is not None else []:
            if child.national_id == national_id:
                found[child.id] = "same_id"
    if full_name and birth_year and province_code and words(full_name):
        communes = db.session.scalars(select(Commune.code).where(Commune.province_code == province_code)).all()
        ids = blind.candidate_ids(Child.full_name, full_name, communes)
        if ids is not None:
            stmt = select(Child).where(
                Child.id.in_(ids), Child.birth_year == birth_year, Child.province_code == province_code
            )
            wanted = sorted(words(full_name))
            for child in db.session.scalars(stmt.limit(500)):  # candidates may hold rows of rarer words only
                if child.id not in found and sorted(words(child.full_name or "")) == wanted:
                    found[child.id] = "likely"
    found.pop(exclude_child, None)
    result = []
    for child_id, kind in found.items():
        child = db.session.get(Child, child_id)
        commune = db.session.get(Commune, child.commune_code)
        visible = scope.can_access_commune(actor, child.commune_code)
        numbers = tuple(c.case_number for c in child.cases) if visible else ()
        if not visible:
            audit.record(
                "child.duplicate_match",
                object_type="child",
                object_id=child.id,
                actor=actor,
                details={"kind": kind, "commune": child.commune_code},
            )
        result.append(
            Duplicate(
                kind=kind,
                visible=visible,
                child_id=child.id if visible else None,
                case_numbers=numbers,
                commune_code=commune.code,
                commune_name=commune.name,
                contacts=() if visible else _contacts(commune.code),
            )
        )
    result.sort(key=lambda d: (d.kind != "same_id", not d.visible, d.commune_code))
    return result


def duplicates_for(data: IntakeData, actor: User) -> list[Duplicate]:
    commune = db.session.get(Commune, data.child["commune_code"])
    return find_duplicates(
        actor,
        full_name=data.child["full_name"],
        birth_year=data.child["birth_year"],
        national_id=data.child["national_id"],
        province_code=commune.province_code,
        exclude_child=data.existing_child_id,
    )


# --- loading and viewing ------------------------------------------------------------------------------------------


def load_case(case_id: uuid.UUID | str, actor: User) -> Case:
    """Load a case the actor may see; anyone else gets NotFound, which says nothing of its existence."""
    try:
        uid = uuid.UUID(str(case_id))
    except ValueError:
        raise NotFound(_l("No such case.")) from None
    # The child and the case's codes in the same query: every page of a case shows or checks them.
    case = db.session.get(Case, uid, options=[joinedload(Case.child), joinedload(Case.codes)])
    if case is None or not scope.can_access_commune(actor, case.commune_code):
        raise NotFound(_l("No such case."))
    return case


def record_view(case: Case, actor: User) -> None:
    """Record that the actor saw the child's identifying details."""
    audit.record(
        "case.view", object_type="case", object_id=case.id, actor=actor, details={"case_number": case.case_number}
    )


# --- changes ---------------------------------------------------------------------------------------------------

EDITABLE_CASE_FIELDS = ("risk_level", "immediate_danger", "source", "channel", "summary")
EDITABLE_CHILD_FIELDS = (
    *IDENTIFYING_CHILD_FIELDS,
    "sex",
    "ethnicity",
    "has_disability",
    "disability_kind",
)


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


#: The code list each coded field's new value must come from.
CHANGE_CODE_LISTS = {
    "risk_level": "risk_levels",
    "source": "report_sources",
    "channel": "report_channels",
    "sex": "sex",
    "ethnicity": "ethnicity",
}


def _checked_change(name: str, value: Any, problems: Problems, today: date) -> Any:
    """A changed value checked by the intake's rule for its field (problems are added under ``name``)."""
    if name in CHANGE_CODE_LISTS:
        return _code(value, CHANGE_CODE_LISTS[name], problems, name, required=name in ("risk_level", "source", "sex"))
    if name in ("immediate_danger", "has_disability"):
        if not isinstance(value, bool):
            problems.add(name, "not_a_boolean", _l("Answer yes or no."))
        return value
    if name == "national_id":
        if value in (None, ""):
            return None
        value = "".join(str(value).split())
        if not NATIONAL_ID_RE.match(value):
            problems.add(name, "invalid_national_id", _l("A personal ID number has 12 digits."))
        return value
    if name == "guardian_phone":
        return _phone(value, problems, name)
    if name == "date_of_birth":
        dob = _date(value, problems, name)
        if dob is not None and dob > today:
            problems.add(name, "in_future", _l("The date cannot be in the future."))
        elif dob is not None and (today.year - dob.year) > 18:
            problems.add(name, "not_a_child", _l("The child would be over 18."))
        return dob
    limit = {"summary": MAX_TEXT, "address": 500, "disability_kind": 32}.get(name, MAX_NAME)
    return _text(value, problems, name, required=name in ("full_name", "summary"), limit=limit)


def update_case(case: Case, actor: User, *, version: int, changes: dict[str, Any]) -> list[str]:
    """Change fields of a case or its child, keeping who changed what (old and new values, encrypted).

    :raises Conflict: the form was based on an older version of the case.
    :raises ValidationFailed: a value breaks a rule.
    """
    if case.version != version:
        raise Conflict(
            _l("Someone changed this case since you opened it. Reload it and make your change again."),
            code="stale_version",
        )
    if not case.is_open:
        raise Conflict(_l("This case is closed."), code="case_closed")
    problems = Problems()
    changed = []
    today = utcnow().astimezone(local_tz()).date()

    def apply(target, name: str, value: Any) -> None:
        old = getattr(target, name)
        if old == value:
            return
        setattr(target, name, value)
        change = CaseChange(case_id=case.id, actor_id=actor.id, field=name)
        change.old_value = _as_text(old)
        change.new_value = _as_text(value)
        db.session.add(change)
        changed.append(name)

    checked = []
    for name, value in changes.items():
        target = case if name in EDITABLE_CASE_FIELDS else case.child if name in EDITABLE_CHILD_FIELDS else None
        if target is None:
            problems.add(name, "not_editable", _l("This field cannot be changed here."))
            continue
        checked.append((target, name, _checked_change(name, value, problems, today)))
    problems.raise_if_any()  # before anything is set: a refused change leaves the case as it was
    # One flush for the whole change, so the version moves by one (a query while the values are set would flush
    # the case half-changed and bump its version twice).
    with db.session.no_autoflush:
        for target, name, value in checked:
            apply(target, name, value)
            if name == "date_of_birth" and value is not None:
                apply(case.child, "birth_year", value.year)  # the statistics' birth year follows the date of birth
    if changed:
        if "immediate_danger" in changed:
            stages.refresh_deadline(case)  # a child found in danger gets the 12-hour deadline
        case.updated_at = utcnow()  # bumps the version even when only the child changed
        db.session.flush()
    return changed


def change_history(case: Case) -> list[CaseChange]:
    return list(
        db.session.scalars(
            select(CaseChange).where(CaseChange.case_id == case.id).order_by(CaseChange.changed_at.desc())
        )
    )


# --- assignment and referral ------------------------------------------------------------------------------------


def assign_case(case: Case, worker: User, actor: User, reason: str | None = None) -> Assignment:
    """Give a case to a social worker of its commune (supervisors of that commune only)."""
    if not scope.can_supervise(actor, case.commune_code):
        raise PermissionDenied(_l("Only a supervisor of the case's commune can assign it."))
    if worker.role != SOCIAL_WORKER or not worker.active or case.commune_code not in worker.commune_codes:
        raise ValidationFailed(
            {"worker": [str(_l("Choose a social worker of the case's commune."))]},
            field_codes={"worker": ["not_a_worker_of_commune"]},
        )
    if case.assigned_to_id == worker.id:
        raise Conflict(_l("The case is already assigned to this worker."), code="already_assigned")
    now = utcnow()
    for current in db.session.scalars(
        select(Assignment).where(Assignment.case_id == case.id, Assignment.ended_at.is_(None))
    ):
        current.ended_at = now
    assignment = Assignment(case_id=case.id, worker_id=worker.id, assigned_by_id=actor.id, started_at=now)
    assignment.reason = reason
    db.session.add(assignment)
    case.assigned_to_id = worker.id
    db.session.flush()
    audit.record("case.assign", object_type="case", object_id=case.id, actor=actor, details={"worker": worker.username})
    return assignment


def assignment_history(case: Case) -> list[Assignment]:
    return list(
        db.session.scalars(select(Assignment).where(Assignment.case_id == case.id).order_by(Assignment.started_at))
    )


def active_consent(case: Case, scope_code: str) -> Consent | None:
    return db.session.scalar(
        select(Consent)
        .where(Consent.case_id == case.id, Consent.scope == scope_code, Consent.in_force)
        .order_by(Consent.recorded_at.desc())
    )


def refer_case(
    case: Case, to_commune_code: str, actor: User, *, reason: str, override_reason: str | None = None
) -> Referral:
    """Refer a case to another commune or province. Sharing outside the commune needs a recorded consent for
    sharing, or a supervisor's override with a reason (audited)."""
    if not scope.can_access_commune(actor, case.commune_code):
        raise NotFound(_l("No such case."))
    if not case.is_open:
        raise Conflict(_l("This case is closed."), code="case_closed")
    problems = Problems()
    target = db.session.get(Commune, to_commune_code or "")
    if target is None:
        problems.add("to_commune", "unknown_commune", _l("Unknown commune code."))
    elif target.code == case.commune_code:
        problems.add("to_commune", "same_commune", _l("The case is already in this commune."))
    if not (reason or "").strip():
        problems.add("reason", "required", _l("This field is required."))
    problems.raise_if_any()
    if db.session.scalar(select(Referral.id).where(Referral.case_id == case.id, Referral.status == "pending")):
        raise Conflict(_l("This case already has a referral awaiting an answer."), code="referral_pending")
    consent = active_consent(case, "sharing")
    override = (override_reason or "").strip()
    if consent is None:
        if not override:
            raise ValidationFailed(
                {"override_reason": [str(_l("No consent to sharing is recorded: a supervisor must give a reason."))]},
                field_codes={"override_reason": ["consent_required"]},
            )
        if not scope.can_supervise(actor, case.commune_code):
            raise PermissionDenied(_l("Only a supervisor can share a case without recorded consent."))
    referral = Referral(
        case_id=case.id,
        from_commune_code=case.commune_code,
        to_commune_code=target.code,
        consent_id=consent.id if consent else None,
        requested_by_id=actor.id,
        override_by_id=None if consent else actor.id,
    )
    referral.reason = reason.strip()
    referral.override_reason = override or None
    db.session.add(referral)
    db.session.flush()
    audit.record(
        "case.refer",
        object_type="case",
        object_id=case.id,
        actor=actor,
        details={"to": target.code, "consent": bool(consent), "override": consent is None},
    )
    return referral


def can_decide_referral(user: User, referral: Referral) -> bool:
    return scope.can_supervise(user, referral.to_commune_code)


def incoming_referrals(user: User) -> list[Referral]:
    if user.role != SUPERVISOR:
        return []
    return list(
        db.session.scalars(
            select(Referral)
            .where(Referral.status == "pending", Referral.to_commune_code.in_(user.commune_codes))
            .order_by(Referral.requested_at)
        )
    )


def decide_referral(referral: Referral, actor: User, *, accept: bool, note: str | None = None) -> Referral:
    """Accept (the case moves to the receiving commune) or decline a referral; the history stays."""
    if not can_decide_referral(actor, referral):
        raise NotFound(_l("No such referral."))
    # Two supervisors answering at once: the second waits for the first and then sees its answer.
    db.session.refresh(referral, with_for_update=True)
    if referral.status != "pending":
        raise Conflict(_l("This referral has already been answered."), code="already_decided")
    referral.status = "accepted" if accept else "declined"
    referral.decided_by_id = actor.id
    referral.decided_at = utcnow()
    referral.decision_note = note
    if accept:
        case = db.session.get(Case, referral.case_id)
        target = db.session.get(Commune, referral.to_commune_code)
        for current in db.session.scalars(
            select(Assignment).where(Assignment.case_id == case.id, Assignment.ended_at.is_(None))
        ):
            current.ended_at = referral.decided_at
        case.commune_code = target.code
        case.province_code = target.province_code
        case.assigned_to_id = None
        # The child goes where the case goes: the receiving commune finds them by name (the name index is kept by
        # commune) and sees them in duplicate checks; the sending one keeps what it recorded only in the history.
        case.child.commune_code = target.code
        case.child.province_code = target.province_code
    db.session.flush()
    audit.record(
        "case.referral_" + referral.status,
        object_type="case",
        object_id=referral.case_id,
        actor=actor,
        details={"to": referral.to_commune_code},
    )
    return referral


# --- consent --------------------------------------------------------------------------------------------------


def record_consent(
    case: Case,
    actor: User,
    *,
    subject: str,
    scope_code: str,
    given: bool,
    basis: str | None = None,
    note: str | None = None,
) -> Consent:
    """Record a consent (PDPL 2025: the child aged 7 or over, and the legal representative), or the legal basis
    relied on without it."""
    problems = Problems()
    if subject not in ("child", "representative"):
        problems.add("subject", "invalid_code", _l("Unknown value."))
    if not codes.is_code("consent_scopes", scope_code):
        problems.add("scope", "invalid_code", _l("Unknown value."))
    if not given and basis not in LEGAL_BASES:
        problems.add("basis", "basis_required", _l("Without consent, name the legal basis relied on."))
    problems.raise_if_any()
    consent = Consent(
        case_id=case.id,
        subject=subject,
        scope=scope_code,
        given=given,
        basis=None if given else basis,
        recorded_by_id=actor.id,
    )
    consent.note = note
    db.session.add(consent)
    db.session.flush()
    return consent


def withdraw_consent(consent: Consent, actor: User) -> list[Referral]:
    """Record a withdrawal and act on it: pending referrals that relied on it are cancelled."""
    if consent.withdrawn_at is not None:
        raise Conflict(_l("This consent was already withdrawn."), code="already_withdrawn")
    consent.withdrawn_at = utcnow()
    consent.withdrawn_by_id = actor.id
    cancelled = list(
        db.session.scalars(select(Referral).where(Referral.consent_id == consent.id, Referral.status == "pending"))
    )
    for referral in cancelled:
        referral.status = "cancelled"
    db.session.flush()
    audit.record(
        "consent.withdraw",
        object_type="case",
        object_id=consent.case_id,
        actor=actor,
        details={"scope": consent.scope, "cancelled_referrals": len(cancelled)},
    )
    return cancelled


# --- notes, files, siblings -------------------------------------------------------------------------------------


def add_note(case: Case, actor: User, body: str) -> CaseNote:
    problems = Problems()
    text = _text(body, problems, "body", required=True)
    problems.raise_if_any()
    note = CaseNote(case_id=case.id, author_id=actor.id)
    note.body = text
    db.session.add(note)
    db.session.flush()
    return note


def notes_of(case: Case) -> list[CaseNote]:
    return list(
        db.session.scalars(select(CaseNote).where(CaseNote.case_id == case.id).order_by(CaseNote.created_at.desc()))
    )


def attach_file(case: Case, actor: User, stream, filename: str):
    """Store an attachment of the case through the encrypted file store."""
    from casework.security import files

    return files.save_upload(stream, filename, actor=actor, owner_type="case", owner_id=str(case.id))


def files_of(case: Case):
    from casework.security.files import StoredFile

    return list(
        db.session.scalars(
            select(StoredFile)
            .where(
                StoredFile.owner_type == "case", StoredFile.owner_id == str(case.id), StoredFile.deleted_at.is_(None)
            )
            .order_by(StoredFile.created_at.desc())
        )
    )


def link_siblings(first: Child, second: Child, actor: User) -> SiblingLink:
    if first.id == second.id:
        raise ValidationFailed(
            {"sibling": [str(_l("A child cannot be their own sibling."))]}, field_codes={"sibling": ["same_child"]}
        )
    for child in (first, second):
        if not scope.can_access_commune(actor, child.commune_code):
            raise NotFound(_l("Unknown child."))
    a, b = sorted((first.id, second.id))
    existing = db.session.scalar(select(SiblingLink).where(SiblingLink.child_a_id == a, SiblingLink.child_b_id == b))
    if existing:
        return existing
    link = SiblingLink(child_a_id=a, child_b_id=b, created_by_id=actor.id)
    db.session.add(link)
    db.session.flush()
    return link


def normalised_name(name: str) -> str:
    return fold(name)


def count_open_caseloads() -> dict[tuple[uuid.UUID, str], int]:
    """Open cases per (worker id, commune), counted from the cases: what ``open_caseloads`` must hold."""
    return {
        (worker_id, commune): n
        for worker_id, commune, n in db.session.execute(
            select(Case.assigned_to_id, Case.commune_code, func.count())
            .where(Case.closed_at.is_(None), Case.assigned_to_id.is_not(None))
            .group_by(Case.assigned_to_id, Case.commune_code)
        )
    }


def recount_open_caseloads() -> list[tuple[uuid.UUID, str, int, int]]:
    """Count every worker's open cases per commune afresh and put right what ``open_caseloads`` holds.

    The database's triggers keep the table (migration 0014); this is for after work that bypassed them (disabled
    triggers, a partial restore). Returns (worker id, commune, kept, counted) for each count that was wrong; the
    caller commits.
    """
    if db.session.get_bind().dialect.name == "postgresql":
        # No case may change between the count and the rewrite; SQLite's single writer gives the same below.
        db.session.execute(text("LOCK TABLE cases IN SHARE ROW EXCLUSIVE MODE"))
    kept = {(r.assigned_to_id, r.commune_code): r.open_cases for r in db.session.scalars(select(OpenCaseload))}
    counted = count_open_caseloads()
    wrong = sorted(
        (worker_id, commune, kept.get((worker_id, commune), 0), counted.get((worker_id, commune), 0))
        for worker_id, commune in kept.keys() | counted.keys()
        if kept.get((worker_id, commune), 0) != counted.get((worker_id, commune), 0)
    )
    if wrong:
        db.session.execute(delete(OpenCaseload))
        if counted:
            db.session.execute(
                insert(OpenCaseload),
                [{"assigned_to_id": w, "commune_code": c, "open_cases": n} for (w, c), n in counted.items()],
            )
    return wrong
