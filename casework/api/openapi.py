"""The OpenAPI 3.1 document of /api/v1, written by hand and checked against the URL map by the tests."""

from __future__ import annotations

import copy
from typing import Any

ERROR = {"$ref": "#/components/schemas/Error"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ERROR}}}


def _ok(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


BAD_REQUEST = _error(
    "A request that cannot be read (code bad_request): a body that is not a JSON object, or text anywhere in the "
    "request holding the NUL character"
)
AUTH_ERRORS = {"401": _error("Missing, expired or revoked token")}
SECURED = [{"bearer": []}]


# --- /cases -----------------------------------------------------------------------------------------------------------

CODES_NOTE = "codes from casework/codes.toml"
NULLABLE_TEXT = {"type": ["string", "null"]}
YEAR = {"type": "integer", "minimum": 2000, "maximum": 2100}
CASE_ID = [{"name": "case_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}]
RECORD_ERRORS = {
    "403": _error("The caller's role never opens a child's record (committee member, auditor, admin): code forbidden"),
    **AUTH_ERRORS,
}
NOT_FOUND = {"404": _error("No such case, or a case outside the caller's area: the two answers are the same")}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


CASE_SCHEMAS: dict[str, Any] = {
    "ChildIntake": {
        "type": "object",
        "required": ["full_name", "sex", "commune_code"],
        "description": (
            "Give date_of_birth, birth_year or estimated_age (Mẫu 01); date_of_birth and birth_year must agree."
        ),
        "properties": {
            "full_name": {"type": "string", "maxLength": 200},
            "other_names": {"type": "string", "maxLength": 200},
            "date_of_birth": {"type": "string", "format": "date", "description": "yyyy-mm-dd or dd/mm/yyyy"},
            "birth_year": {"type": "integer"},
            "estimated_age": {"type": "integer", "minimum": 0, "maximum": 18},
            "sex": {"type": "string", "description": f"[sex] {CODES_NOTE}"},
            "ethnicity": {"type": "string", "description": f"[ethnicity] {CODES_NOTE}"},
            "has_disability": {"type": "boolean"},
            "disability_kind": {"type": "string", "maxLength": 32},
            "commune_code": {"type": "string", "pattern": "^[0-9]{5}$", "description": "within the caller's area"},
            "national_id": {"type": "string", "pattern": "^[0-9]{12}$"},
            "address": {"type": "string", "maxLength": 500},
            "guardian_name": {"type": "string", "maxLength": 200},
            "guardian_phone": {"type": "string", "description": "9 to 12 digits, optionally after +"},
        },
    },
    "CaseIntake": {
        "type": "object",
        "required": ["child", "risk_level", "source", "received_at", "summary"],
        "description": "At least one code in categories, at_risk or abuse_types.",
        "properties": {
            "child": _ref("ChildIntake"),
            "categories": {
                "type": "array",
                "items": {"type": "string"},
                "description": f"[special_circumstances] {CODES_NOTE}",
            },
            "at_risk": {"type": "array", "items": {"type": "string"}, "description": f"[at_risk] {CODES_NOTE}"},
            "abuse_types": {
                "type": "array",
                "items": {"type": "string"},
                "description": f"[abuse_types] {CODES_NOTE}",
            },
            "risk_level": {"type": "string", "enum": ["low", "medium", "high"]},
            "immediate_danger": {"type": "boolean", "default": False},
            "source": {"type": "string", "description": f"[report_sources] {CODES_NOTE}"},
            "channel": {"type": "string", "description": f"[report_channels] {CODES_NOTE}"},
            "received_at": {
                "type": "string",
                "format": "date-time",
                "description": "not in the future; a time without zone is Vietnam's local time",
            },
            "summary": {"type": "string", "maxLength": 4000},
            "reporter": {
                "type": "object",
                "description": "kept only with the reporter's consent (Mẫu 01)",
                "properties": {
                    "name": {"type": "string"},
                    "phone": {"type": "string"},
                    "address": {"type": "string"},
                },
            },
            "confirm_new_child": {
                "type": "boolean",
                "default": False,
                "description": "register a new child although possible duplicates were reported",
            },
            "existing_child_id": {
                "type": "string",
                "format": "uuid",
                "description": "add this report to a child already registered (within the caller's area)",
            },
        },
    },
    "PossibleDuplicate": {
        "type": "object",
        "required": ["kind", "visible", "commune_code", "commune_name"],
        "description": (
            "An earlier record that may be the same child. Within the caller's area it names the child and its "
            "cases; outside it, only that one exists, where, and whom to contact (the match is audited)."
        ),
        "properties": {
            "kind": {"type": "string", "enum": ["same_id", "likely"]},
            "visible": {"type": "boolean"},
            "commune_code": {"type": "string"},
            "commune_name": {"type": "string"},
            "child_id": {"type": "string", "format": "uuid", "description": "visible matches only"},
            "case_numbers": {"type": "array", "items": {"type": "string"}, "description": "visible matches only"},
            "contacts": {
                "type": "array",
                "items": {"type": "string"},
                "description": "other areas' matches only: the supervisors of that commune",
            },
        },
    },
    "UserRef": {
        "type": ["object", "null"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "username": NULLABLE_TEXT,
            "full_name": NULLABLE_TEXT,
        },
    },
    "Child": {
        "type": "object",
        "required": ["id", "full_name", "sex", "commune_code"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "full_name": {"type": "string"},
            "other_names": NULLABLE_TEXT,
            "date_of_birth": {"type": ["string", "null"], "format": "date"},
            "birth_year": {"type": ["integer", "null"]},
            "estimated_age": {"type": ["integer", "null"]},
            "sex": {"type": "string"},
            "ethnicity": NULLABLE_TEXT,
            "has_disability": {"type": "boolean"},
            "disability_kind": NULLABLE_TEXT,
            "national_id": NULLABLE_TEXT,
            "address": NULLABLE_TEXT,
            "guardian_name": NULLABLE_TEXT,
            "guardian_phone": NULLABLE_TEXT,
            "commune_code": {"type": "string"},
            "province_code": NULLABLE_TEXT,
        },
    },
    "Case": {
        "type": "object",
        "required": ["id", "case_number", "version", "stage", "commune_code", "received_at", "child"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "case_number": {"type": "string", "pattern": "^[0-9]{2}-[0-9]{4}-[0-9]{6}$"},
            "version": {"type": "integer", "description": "send it back with PATCH"},
            "stage": {"type": "string"},
            "workflow": {"type": "string"},
            "commune_code": {"type": "string"},
            "province_code": {"type": "string"},
            "received_at": {"type": "string", "format": "date-time"},
            "source": {"type": "string"},
            "channel": NULLABLE_TEXT,
            "risk_level": {"type": "string", "enum": ["low", "medium", "high"]},
            "immediate_danger": {"type": "boolean"},
            "summary": {"type": "string"},
            "reporter": {
                "type": "object",
                "properties": {"name": NULLABLE_TEXT, "phone": NULLABLE_TEXT, "address": NULLABLE_TEXT},
            },
            "categories": {"type": "array", "items": {"type": "string"}},
            "at_risk": {"type": "array", "items": {"type": "string"}},
            "abuse_types": {"type": "array", "items": {"type": "string"}},
            "assigned_to": _ref("UserRef"),
            "next_deadline_at": {"type": ["string", "null"], "format": "date-time"},
            "closed_at": {"type": ["string", "null"], "format": "date-time"},
            "closure_reason": NULLABLE_TEXT,
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "child": _ref("Child"),
        },
    },
    "CaseSummary": {
        "type": "object",
        "required": ["id", "case_number", "stage", "commune_code", "child"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "case_number": {"type": "string"},
            "stage": {"type": "string"},
            "commune_code": {"type": "string"},
            "risk_level": {"type": "string"},
            "immediate_danger": {"type": "boolean"},
            "received_at": {"type": "string", "format": "date-time"},
            "next_deadline_at": {"type": ["string", "null"], "format": "date-time"},
            "overdue": {"type": "boolean"},
            "assigned_to_id": {"type": ["string", "null"], "format": "uuid"},
            "child": {
                "type": "object",
                "properties": {
                    "id": {"type": "string", "format": "uuid"},
                    "full_name": {"type": "string"},
                    "sex": {"type": "string"},
                    "birth_year": {"type": ["integer", "null"]},
                    "estimated_age": {"type": ["integer", "null"]},
                },
            },
        },
    },
    "Note": {
        "type": "object",
        "required": ["id", "body", "created_at"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "body": {"type": "string"},
            "author": _ref("UserRef"),
            "created_at": {"type": "string", "format": "date-time"},
        },
    },
}


#: A blank optional filter (what a search form sends) is the same as leaving it out; values are read stripped of
#: what Python calls whitespace, which is JSON Schema's (ECMAScript's) \s and also U+001C-U+001F and U+0085.
_SPACE = r"[\s\x1c-\x1f\x85]"
BLANK = {"type": "string", "pattern": f"^{_SPACE}*$"}


def _insensitive(word: str) -> str:
    return "".join(f"[{c.upper()}{c}]" if c.isalpha() else c for c in word)


_FLAG_WORDS = "|".join(map(_insensitive, ("true", "false", "yes", "no", "1", "0")))
#: A yes-or-no filter: true or false, also written 1/0 or yes/no, in any case (casework.api.cases.TRUE_WORDS).
FLAG = {
    "anyOf": [
        {"type": "boolean"},
        {
            "type": "string",
            "pattern": f"^{_SPACE}*({_FLAG_WORDS})?{_SPACE}*$",
        },
    ]
}


def _query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """An optional query parameter; one with a typed ``schema`` also takes a blank value (no filter)."""
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": {"type": "string"} if schema is None else {"anyOf": [schema, BLANK]},
        "description": description,
    }


CASE_PATHS: dict[str, Any] = {
    "/cases": {
        "post": {
            "summary": "Register a case (intake), after a duplicate check",
            "description": (
                "The intake is checked against the rules of Mẫu 01 and the code lists, then against earlier "
                "records of the same child: the same personal ID anywhere, or the same name and birth year in the "
                "province. When there are possible duplicates and the body has neither 'confirm_new_child': true "
                "nor 'existing_child_id', nothing is saved and the answer is 409 possible_duplicates with the list. "
                "A match outside the caller's area is audited and shows only its commune and whom to contact."
            ),
            "security": SECURED,
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("CaseIntake")}}},
            "responses": {
                "201": _ok(
                    {
                        "type": "object",
                        "required": ["id", "case_number", "stage", "possible_duplicates"],
                        "properties": {
                            "id": {"type": "string", "format": "uuid"},
                            "case_number": {"type": "string", "pattern": "^[0-9]{2}-[0-9]{4}-[0-9]{6}$"},
                            "stage": {"type": "string"},
                            "possible_duplicates": {"type": "array", "items": _ref("PossibleDuplicate")},
                        },
                    },
                    "Case registered",
                ),
                "400": _error("The body is not a JSON object"),
                "409": _error("Possible duplicates (code possible_duplicates, with the list); nothing was saved"),
                "422": _error(
                    "A rule is broken (code validation_failed; fields and field_codes name each field, e.g. "
                    "child.national_id invalid_national_id, received_at in_future, child.commune_code out_of_scope)"
                ),
                **RECORD_ERRORS,
            },
        },
        "get": {
            "summary": "Search and list the cases within the caller's area",
            "description": "Open cases, sorted by next deadline (overdue first), then newest report.",
            "security": SECURED,
            "parameters": [
                _query(
                    "q",
                    "a case number, a personal ID or phone number, or name words (diacritics optional)",
                    {"type": "string", "maxLength": 200},
                ),
                _query("stage", "workflow stage", {"type": "string", "maxLength": 64}),
                _query("category", f"a code of [special_circumstances], [at_risk] or [abuse_types], {CODES_NOTE}"),
                _query("risk", "risk level", {"type": "string", "enum": ["low", "medium", "high"]}),
                _query("commune", "commune code"),
                _query("assigned_to", "a user id, 'me', or 'none' for unassigned cases"),
                _query("overdue", "only cases past their next deadline", FLAG),
                _query("page", "page number, from 1", {"type": "integer", "minimum": 1, "maximum": 100_000}),
            ],
            "responses": {
                "200": _ok(
                    {
                        "type": "object",
                        "required": ["items", "total", "page", "per_page", "pages"],
                        "properties": {
                            "items": {"type": "array", "items": _ref("CaseSummary")},
                            "total": {"type": "integer"},
                            "page": {"type": "integer"},
                            "per_page": {"type": "integer"},
                            "pages": {"type": "integer"},
                        },
                    }
                ),
                "422": _error("A filter is not valid (code validation_failed, naming the parameter)"),
                **RECORD_ERRORS,
            },
        },
    },
    "/cases/{case_id}": {
        "get": {
            "summary": "A case with its child's details (decrypted; the view is audited)",
            "security": SECURED,
            "parameters": CASE_ID,
            "responses": {"200": _ok(_ref("Case")), **NOT_FOUND, **RECORD_ERRORS},
        },
        "patch": {
            "summary": "Change fields of a case or its child",
            "description": (
                "Each change is kept with its author and the old and new values (encrypted). Editable: risk_level, "
                "immediate_danger, source, channel, summary, and the child's full_name, other_names, date_of_birth, "
                "national_id, address, guardian_name, guardian_phone, sex, ethnicity, has_disability, "
                "disability_kind. A 'version' other than the case's current one is refused with 409 stale_version."
            ),
            "security": SECURED,
            "parameters": CASE_ID,
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["version", "changes"],
                            "properties": {
                                "version": {"type": "integer", "description": "the version the change is based on"},
                                "changes": {"type": "object", "minProperties": 1},
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": _ok(
                    {
                        "type": "object",
                        "required": ["id", "version", "changed"],
                        "properties": {
                            "id": {"type": "string", "format": "uuid"},
                            "case_number": {"type": "string"},
                            "version": {"type": "integer"},
                            "changed": {"type": "array", "items": {"type": "string"}},
                        },
                    },
                    "Changed (or nothing to change)",
                ),
                "400": _error("The body is not a JSON object"),
                "409": _error(
                    "The case changed since that version (code stale_version), or it is closed (code case_closed)"
                ),
                "422": _error("A field cannot be changed or its value breaks a rule (code validation_failed)"),
                **NOT_FOUND,
                **RECORD_ERRORS,
            },
        },
    },
    "/cases/{case_id}/notes": {
        "get": {
            "summary": "The notes of a case, newest first (the view is audited)",
            "security": SECURED,
            "parameters": CASE_ID,
            "responses": {
                "200": _ok(
                    {
                        "type": "object",
                        "required": ["items"],
                        "properties": {"items": {"type": "array", "items": _ref("Note")}},
                    }
                ),
                **NOT_FOUND,
                **RECORD_ERRORS,
            },
        },
        "post": {
            "summary": "Add a note to a case",
            "security": SECURED,
            "parameters": CASE_ID,
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["body"],
                            "properties": {"body": {"type": "string", "maxLength": 4000}},
                        }
                    }
                },
            },
            "responses": {
                "201": _ok(_ref("Note"), "Note added"),
                "400": _error("The body is not a JSON object"),
                "422": _error("The note is empty or too long (code validation_failed)"),
                **NOT_FOUND,
                **RECORD_ERRORS,
            },
        },
    },
}


# --- /cases/{case_id}/...: the support procedure ----------------------------------------------------------------------

USER_REF = _ref("UserRef")
DATE = {"type": "string", "format": "date", "description": "yyyy-mm-dd or dd/mm/yyyy"}
NULLABLE_DATE = {"type": ["string", "null"], "format": "date"}
NULLABLE_MOMENT = {"type": ["string", "null"], "format": "date-time"}
RATING = {"type": "string", "enum": ["low", "medium", "high"]}
WORK_ERRORS = {
    "400": _error("The body is not a JSON object"),
    "403": _error(
        "The caller's role never opens a child's record (code forbidden), or may read the case but not record "
        "work on it (a provincial officer)"
    ),
    **NOT_FOUND,
    **AUTH_ERRORS,
}
CLOSED = {"409": _error("The case is closed (code case_closed): reopen it first")}


def _items(schema: dict[str, Any]) -> dict[str, Any]:
    return _ok({"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "items": schema}}})


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _invalid(description: str) -> dict[str, Any]:
    return {"422": _error(f"{description} (code validation_failed; fields and field_codes name each field)")}


SUPPORT_SCHEMAS: dict[str, Any] = {
    "TransitionOption": {
        "type": "object",
        "required": ["id", "to", "label", "open", "reason", "reasons"],
        "description": "A transition out of the case's stage, open for the caller now or closed with its reasons.",
        "properties": {
            "id": {"type": "string", "description": "the transition's id in workflows/*.toml"},
            "to": {"type": "string", "description": "the stage it leads to: send it as 'to'"},
            "label": {"type": "string", "description": "in the language of Accept-Language (vi or en), else vi"},
            "open": {"type": "boolean"},
            "reason": {"type": ["string", "null"], "description": "why it is closed (the first of reasons)"},
            "reasons": {"type": "array", "items": {"type": "string"}},
        },
    },
    "AssessmentInput": {
        "type": "object",
        "required": ["kind", "harm_severity", "abuser_access", "care_obstacles", "child_capacity"],
        "description": (
            "The four ratings suggest a risk level; risk_level confirms it (default) or overrides it, which needs "
            "override_reason. A review (Mẫu 06) needs review_outcome; other kinds have none."
        ),
        "properties": {
            "kind": {"type": "string", "enum": ["initial", "detailed", "review"]},
            "harm_severity": RATING,
            "abuser_access": RATING,
            "care_obstacles": RATING,
            "child_capacity": RATING,
            "harm_note": {"type": "string", "maxLength": 4000},
            "access_note": {"type": "string", "maxLength": 4000},
            "obstacles_note": {"type": "string", "maxLength": 4000},
            "capacity_note": {"type": "string", "maxLength": 4000},
            "risk_level": RATING,
            "override_reason": {"type": "string", "maxLength": 4000},
            "needs": {"type": "string", "maxLength": 4000},
            "attendees": {"type": "string", "maxLength": 4000},
            "findings": {"type": "string", "maxLength": 4000},
            "review_outcome": {"type": "string", "enum": ["end", "new_plan", "continue"]},
        },
    },
    "Assessment": {
        "type": "object",
        "required": ["id", "kind", "suggested_level", "risk_level", "assessed_at"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "kind": {"type": "string", "enum": ["initial", "detailed", "review"]},
            "harm_severity": RATING,
            "abuser_access": RATING,
            "care_obstacles": RATING,
            "child_capacity": RATING,
            "harm_note": NULLABLE_TEXT,
            "access_note": NULLABLE_TEXT,
            "obstacles_note": NULLABLE_TEXT,
            "capacity_note": NULLABLE_TEXT,
            "suggested_level": RATING,
            "risk_level": {**RATING, "description": "the level the worker confirmed"},
            "override_reason": NULLABLE_TEXT,
            "needs": NULLABLE_TEXT,
            "attendees": NULLABLE_TEXT,
            "findings": NULLABLE_TEXT,
            "review_outcome": {"type": ["string", "null"], "enum": ["end", "new_plan", "continue", None]},
            "assessed_by": USER_REF,
            "assessed_at": {"type": "string", "format": "date-time"},
        },
    },
    "EmergencyMeasure": {
        "type": "object",
        "required": ["id", "measure", "taken_at"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "measure": {"type": "string", "description": f"[emergency_measures] {CODES_NOTE}"},
            "taken_at": {"type": "string", "format": "date-time"},
            "place": NULLABLE_TEXT,
            "note": NULLABLE_TEXT,
            "recorded_by": USER_REF,
            "recorded_at": {"type": "string", "format": "date-time"},
        },
    },
    "Plan": {
        "type": "object",
        "required": ["id", "cycle", "status", "services"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "cycle": {"type": "integer", "minimum": 1},
            "status": {"type": "string", "enum": ["draft", "submitted", "approved", "returned", "ended"]},
            "goals": NULLABLE_TEXT,
            "review_on": NULLABLE_DATE,
            "services": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string", "format": "uuid"},
                        "service_type": {"type": "string", "description": f"[service_types] {CODES_NOTE}"},
                        "responsible": NULLABLE_TEXT,
                        "details": NULLABLE_TEXT,
                        "due_on": NULLABLE_DATE,
                    },
                },
            },
            "created_by": USER_REF,
            "created_at": {"type": "string", "format": "date-time"},
            "submitted_at": NULLABLE_MOMENT,
            "decided_by": USER_REF,
            "decided_at": NULLABLE_MOMENT,
            "decision_note": NULLABLE_TEXT,
        },
    },
    "ServiceInput": {
        "type": "object",
        "required": ["service_type", "delivered_on"],
        "description": (
            "Proceedings (legal_aid_centre, the references, hearing_on) go with legal_counselling or legal_aid."
        ),
        "properties": {
            "service_type": {"type": "string", "description": f"[service_types] {CODES_NOTE}"},
            "delivered_on": {**DATE, "description": "not in the future; yyyy-mm-dd or dd/mm/yyyy"},
            "duration_minutes": {"type": "integer", "minimum": 1, "maximum": 10080},
            "outcome": {"type": "string", "enum": ["completed", "ongoing", "not_delivered"], "default": "completed"},
            "provider": {"type": "string", "maxLength": 4000},
            "notes": {"type": "string", "maxLength": 4000},
            "referral_status": {
                "type": "string",
                "enum": ["sent", "accepted", "done", "declined"],
                "description": "for a referral to an outside service",
            },
            "legal_aid_centre": {"type": "boolean", "description": "given by the provincial State legal aid centre"},
            "police_report_ref": {"type": "string", "maxLength": 200},
            "prosecution_ref": {"type": "string", "maxLength": 200},
            "court_ref": {"type": "string", "maxLength": 200},
            "hearing_on": DATE,
            "proceedings_outcome": {"type": "string", "maxLength": 4000},
        },
    },
    "Service": {
        "type": "object",
        "required": ["id", "service_type", "delivered_on", "outcome"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "plan_id": {"type": ["string", "null"], "format": "uuid"},
            "service_type": {"type": "string"},
            "delivered_on": {"type": "string", "format": "date"},
            "duration_minutes": {"type": ["integer", "null"]},
            "outcome": {"type": "string"},
            "provider": NULLABLE_TEXT,
            "notes": NULLABLE_TEXT,
            "referral_status": NULLABLE_TEXT,
            "referral_updated_at": NULLABLE_MOMENT,
            "legal_aid_centre": {"type": "boolean"},
            "police_report_ref": NULLABLE_TEXT,
            "prosecution_ref": NULLABLE_TEXT,
            "court_ref": NULLABLE_TEXT,
            "hearing_on": NULLABLE_DATE,
            "proceedings_outcome": NULLABLE_TEXT,
            "recorded_by": USER_REF,
            "recorded_at": {"type": "string", "format": "date-time"},
        },
    },
    "Visit": {
        "type": "object",
        "required": ["id", "visited_on", "outcome"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "visited_on": {"type": "string", "format": "date"},
            "outcome": {"type": "string", "enum": ["stable", "improving", "concern", "danger"]},
            "notes": NULLABLE_TEXT,
            "recorded_by": USER_REF,
            "recorded_at": {"type": "string", "format": "date-time"},
        },
    },
    "ClosureRequest": {
        "type": "object",
        "required": ["id", "reason", "status", "requested_at"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "reason": {"type": "string", "description": f"[closure_reasons] {CODES_NOTE}"},
            "note": NULLABLE_TEXT,
            "status": {"type": "string", "enum": ["pending", "approved", "rejected", "used"]},
            "requested_by": USER_REF,
            "requested_at": {"type": "string", "format": "date-time"},
            "decided_by": USER_REF,
            "decided_at": NULLABLE_MOMENT,
            "decision_note": NULLABLE_TEXT,
        },
    },
    "TimelineEntry": {
        "type": "object",
        "required": ["at", "kind", "title"],
        "properties": {
            "at": {"type": "string", "format": "date-time"},
            "kind": {
                "type": "string",
                "description": (
                    "report, transition, assessment, emergency_measure, plan, service, visit, closure_request, note, "
                    "file, assignment, referral, consent, ..."
                ),
            },
            "title": {"type": "string", "description": "in the language of Accept-Language (vi or en), else vi"},
            "actor_id": {"type": ["string", "null"], "format": "uuid"},
            "detail": NULLABLE_TEXT,
            "facts": {"type": "object", "description": "codes and numbers of the entry"},
        },
    },
}

SERVICE_ID = [
    *CASE_ID,
    {"name": "service_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}},
]
REQUEST_ID = [
    *CASE_ID,
    {"name": "request_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}},
]
LANGUAGE = [
    {
        "name": "Accept-Language",
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "vi or en, for labels, reasons and titles (default vi)",
    }
]
VIEWED = "the case's decrypted text; the view is audited"

SUPPORT_PATHS: dict[str, Any] = {
    "/cases/{case_id}/transitions": {
        "get": {
            "summary": "Every transition out of the case's stage, open or closed with why, for the caller",
            "security": SECURED,
            "parameters": [*CASE_ID, *LANGUAGE],
            "responses": {
                "200": _ok(
                    {
                        "type": "object",
                        "required": ["stage", "version", "items"],
                        "properties": {
                            "stage": {"type": "string"},
                            "version": {"type": "integer", "description": "send it back with POST"},
                            "items": {"type": "array", "items": _ref("TransitionOption")},
                        },
                    }
                ),
                **NOT_FOUND,
                **RECORD_ERRORS,
            },
        },
        "post": {
            "summary": "Move the case to another stage of its workflow",
            "description": (
                "The transition's roles and conditions (workflows/default.toml) decide; a refusal names the rule. "
                "A supervisor closing directly gives closure_reason; a social worker closes after a supervisor "
                "approved their closure request, for its reason. The effects of a transition (submitting, "
                "approving or sending back the plan, a new plan cycle) happen with it."
            ),
            "security": SECURED,
            "parameters": CASE_ID,
            "requestBody": _body(
                {
                    "type": "object",
                    "required": ["to", "version"],
                    "properties": {
                        "to": {"type": "string", "description": "the stage to move to"},
                        "version": {"type": "integer", "description": "the case's version the caller saw"},
                        "note": {"type": "string", "maxLength": 4000},
                        "closure_reason": {"type": "string", "description": f"[closure_reasons] {CODES_NOTE}"},
                    },
                }
            ),
            "responses": {
                "200": _ok(
                    {
                        "type": "object",
                        "required": ["id", "stage", "version", "next_deadline_at"],
                        "properties": {
                            "id": {"type": "string", "format": "uuid"},
                            "stage": {"type": "string"},
                            "version": {"type": "integer"},
                            "next_deadline_at": NULLABLE_MOMENT,
                            "closed_at": NULLABLE_MOMENT,
                            "closure_reason": NULLABLE_TEXT,
                        },
                    },
                    "The case moved",
                ),
                "409": _error(
                    "Refused: the case changed since that version (code stale_version); a rule closes the "
                    "transition, e.g. the role, a missing condition or a closed case (code transition_refused, the "
                    "message says which); no step leads from the stage to 'to' (code no_such_transition)"
                ),
                **_invalid("'to' or 'version' is missing, or closure_reason is unknown"),
                **WORK_ERRORS,
            },
        },
    },
    "/cases/{case_id}/assessments": {
        "get": {
            "summary": f"The case's assessments, oldest first, with suggested and confirmed levels ({VIEWED})",
            "security": SECURED,
            "parameters": CASE_ID,
            "responses": {"200": _items(_ref("Assessment")), **NOT_FOUND, **RECORD_ERRORS},
        },
        "post": {
            "summary": "Record a risk assessment (Mẫu 02, 03 or 06); the case takes the confirmed level",
            "security": SECURED,
            "parameters": CASE_ID,
            "requestBody": _body(_ref("AssessmentInput")),
            "responses": {
                "201": _ok(_ref("Assessment"), "Assessment recorded"),
                **CLOSED,
                **_invalid("A rating is missing, or the level is overridden without override_reason"),
                **WORK_ERRORS,
            },
        },
    },
    "/cases/{case_id}/emergency-measures": {
        "post": {
            "summary": "Record an emergency measure or temporary separation (Decree 56/2017, Arts. 31-32)",
            "security": SECURED,
            "parameters": CASE_ID,
            "requestBody": _body(
                {
                    "type": "object",
                    "required": ["measure"],
                    "properties": {
                        "measure": {"type": "string", "description": f"[emergency_measures] {CODES_NOTE}"},
                        "taken_at": {"type": "string", "format": "date-time", "description": "default: now"},
                        "place": {"type": "string", "maxLength": 4000},
                        "note": {"type": "string", "maxLength": 4000},
                    },
                }
            ),
            "responses": {
                "201": _ok(_ref("EmergencyMeasure"), "Measure recorded"),
                **CLOSED,
                **_invalid("The measure is unknown, or taken_at is in the future"),
                **WORK_ERRORS,
            },
        },
    },
    "/cases/{case_id}/plan": {
        "get": {
            "summary": f"The current support plan with its services and status, and earlier cycles ({VIEWED})",
            "security": SECURED,
            "parameters": CASE_ID,
            "responses": {
                "200": _ok(
                    {
                        "type": "object",
                        "required": ["current", "earlier"],
                        "properties": {
                            "current": {"oneOf": [_ref("Plan"), {"type": "null"}]},
                            "earlier": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "id": {"type": "string", "format": "uuid"},
                                        "cycle": {"type": "integer"},
                                        "status": {"type": "string"},
                                    },
                                },
                            },
                        },
                    }
                ),
                **NOT_FOUND,
                **RECORD_ERRORS,
            },
        },
        "put": {
            "summary": "Write the draft plan's goals, review date and planned services (Mẫu 04)",
            "description": "A submitted or approved plan cannot be changed: it is sent back, or a new cycle starts.",
            "security": SECURED,
            "parameters": CASE_ID,
            "requestBody": _body(
                {
                    "type": "object",
                    "required": ["goals"],
                    "properties": {
                        "goals": {"type": "string", "maxLength": 4000},
                        "review_on": DATE,
                        "services": {
                            "type": "array",
                            "maxItems": 30,
                            "items": {
                                "type": "object",
                                "required": ["service_type"],
                                "properties": {
                                    "service_type": {"type": "string", "description": f"[service_types] {CODES_NOTE}"},
                                    "responsible": {"type": "string", "maxLength": 4000},
                                    "details": {"type": "string", "maxLength": 4000},
                                    "due_on": DATE,
                                },
                            },
                        },
                    },
                }
            ),
            "responses": {
                "200": _ok(_ref("Plan"), "Plan saved"),
                "409": _error(
                    "The case is closed (code case_closed), or the plan is submitted or approved (plan_locked)"
                ),
                **_invalid("goals are missing, or a service is not valid (fields services.N.name)"),
                **WORK_ERRORS,
            },
        },
    },
    "/cases/{case_id}/services": {
        "get": {
            "summary": f"The services given to the child ({VIEWED})",
            "security": SECURED,
            "parameters": CASE_ID,
            "responses": {"200": _items(_ref("Service")), **NOT_FOUND, **RECORD_ERRORS},
        },
        "post": {
            "summary": "Record a service given to the child, or a referral to an outside service",
            "security": SECURED,
            "parameters": CASE_ID,
            "requestBody": _body(_ref("ServiceInput")),
            "responses": {
                "201": _ok(_ref("Service"), "Service recorded"),
                **CLOSED,
                **_invalid(
                    "e.g. service_type invalid_code, delivered_on in_future, duration_minutes out_of_range or "
                    "not_a_whole_number; nothing was saved"
                ),
                **WORK_ERRORS,
            },
        },
    },
    "/cases/{case_id}/services/{service_id}": {
        "patch": {
            "summary": "Move a referral on: sent, accepted, done or declined",
            "security": SECURED,
            "parameters": SERVICE_ID,
            "requestBody": _body(
                {
                    "type": "object",
                    "required": ["referral_status"],
                    "properties": {
                        "referral_status": {"type": "string", "enum": ["sent", "accepted", "done", "declined"]}
                    },
                }
            ),
            "responses": {
                "200": _ok(
                    {
                        "type": "object",
                        "properties": {
                            "id": {"type": "string", "format": "uuid"},
                            "referral_status": {"type": "string"},
                            "referral_updated_at": {"type": "string", "format": "date-time"},
                        },
                    }
                ),
                "404": _error("No such case or service record, or a case outside the caller's area"),
                "409": _error("The service was not a referral (not_a_referral), or its referral is finished"),
                **_invalid("The status is unknown"),
                **{k: v for k, v in WORK_ERRORS.items() if k != "404"},
            },
        },
    },
    "/cases/{case_id}/visits": {
        "post": {
            "summary": "Record a monitoring visit and what was found",
            "security": SECURED,
            "parameters": CASE_ID,
            "requestBody": _body(
                {
                    "type": "object",
                    "required": ["visited_on", "outcome"],
                    "properties": {
                        "visited_on": DATE,
                        "outcome": {"type": "string", "enum": ["stable", "improving", "concern", "danger"]},
                        "notes": {"type": "string", "maxLength": 4000},
                    },
                }
            ),
            "responses": {
                "201": _ok(_ref("Visit"), "Visit recorded"),
                **CLOSED,
                **_invalid("The date is missing or in the future, or the outcome is unknown"),
                **WORK_ERRORS,
            },
        },
    },
    "/cases/{case_id}/closure-requests": {
        "get": {
            "summary": f"The requests to close the case and the decisions on them ({VIEWED})",
            "security": SECURED,
            "parameters": CASE_ID,
            "responses": {"200": _items(_ref("ClosureRequest")), **NOT_FOUND, **RECORD_ERRORS},
        },
        "post": {
            "summary": "Ask a supervisor to approve closing the case",
            "security": SECURED,
            "parameters": CASE_ID,
            "requestBody": _body(
                {
                    "type": "object",
                    "required": ["reason"],
                    "properties": {
                        "reason": {"type": "string", "description": f"[closure_reasons] {CODES_NOTE}"},
                        "note": {"type": "string", "maxLength": 4000, "description": "required for reason other"},
                    },
                }
            ),
            "responses": {
                "201": _ok(_ref("ClosureRequest"), "Request recorded"),
                "409": _error("The case is closed (case_closed), or a request is already waiting (closure_pending)"),
                **_invalid("The reason is unknown, or 'other' without a note"),
                **WORK_ERRORS,
            },
        },
    },
    "/cases/{case_id}/closure-requests/{request_id}/decision": {
        "post": {
            "summary": "Approve or reject a request to close the case",
            "description": "Only a supervisor of the case's commune decides, and never on their own request.",
            "security": SECURED,
            "parameters": REQUEST_ID,
            "requestBody": _body(
                {
                    "type": "object",
                    "required": ["approve"],
                    "properties": {
                        "approve": {"type": "boolean"},
                        "note": {"type": "string", "maxLength": 4000, "description": "required to reject"},
                    },
                }
            ),
            "responses": {
                "200": _ok(_ref("ClosureRequest"), "Decided"),
                "403": _error(
                    "Not a supervisor of the commune (code forbidden), or the caller's own request (code own_request)"
                ),
                "404": _error("No such case or request, or a case outside the caller's area"),
                "409": _error("The request has already been decided (code already_decided)"),
                **_invalid("approve is not a boolean, or a rejection has no note"),
                "400": _error("The body is not a JSON object"),
                **AUTH_ERRORS,
            },
        },
    },
    "/cases/{case_id}/timeline": {
        "get": {
            "summary": f"Everything that happened on the case, oldest first ({VIEWED})",
            "security": SECURED,
            "parameters": [*CASE_ID, *LANGUAGE],
            "responses": {"200": _items(_ref("TimelineEntry")), **NOT_FOUND, **RECORD_ERRORS},
        },
    },
}


# --- /programmes, /payments: support payments -------------------------------------------------------------------------

MONEY = {"type": "integer", "minimum": 1, "description": "whole đồng, a JSON integer (text is refused)"}
PAYMENT_ID = [{"name": "payment_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}]
PAYMENT_ROLE_ERRORS = {
    "403": _error(
        "The caller's role has no part in payments (committee member, auditor, admin: code forbidden), or the rule "
        "refuses this role or person (the code says which)"
    ),
    **AUTH_ERRORS,
}
PAYMENT_NOT_FOUND = {
    "404": _error("No such payment request, or one outside the caller's scope: the two answers are the same")
}
PAYMENT_STATUS = {"type": "string", "enum": ["draft", "submitted", "returned", "approved", "rejected", "paid"]}
ROLE = {"type": "string", "enum": ["supervisor", "provincial_officer"]}

PAYMENT_SCHEMAS: dict[str, Any] = {
    "Programme": {
        "type": "object",
        "required": ["id", "name", "province", "year", "budget_vnd", "committed_vnd", "paid_vnd", "available_vnd"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "name": {"type": "string"},
            "province": {"type": "string", "pattern": "^[0-9]{2}$"},
            "year": {"type": "integer"},
            "budget_vnd": {"type": "integer"},
            "committed_vnd": {"type": "integer", "description": "approved, not yet paid"},
            "paid_vnd": {"type": "integer"},
            "available_vnd": {"type": "integer", "description": "budget - committed - paid"},
            "purposes": {
                "type": "array",
                "items": {"type": "string"},
                "description": f"[payment_purposes] {CODES_NOTE}; empty: every purpose",
            },
            "groups": {"type": "array", "items": {"type": "string"}, "description": "empty: every child"},
            "active": {"type": "boolean"},
            "created_at": {"type": "string", "format": "date-time"},
        },
    },
    "PaymentInput": {
        "type": "object",
        "required": ["programme", "purpose", "amount_vnd", "payee", "description"],
        "properties": {
            "programme": {"type": "string", "format": "uuid", "description": "a programme of the case's province"},
            "purpose": {"type": "string", "description": f"[payment_purposes] {CODES_NOTE}"},
            "amount_vnd": {**MONEY, "description": "whole đồng, a JSON integer, at most CASEWORK_PAYMENT_CEILING_VND"},
            "payee": {
                "type": "object",
                "required": ["name", "relation", "method"],
                "properties": {
                    "name": {"type": "string", "maxLength": 200},
                    "relation": {"type": "string", "maxLength": 100, "description": "to the child"},
                    "method": {"type": "string", "enum": ["bank", "cash"]},
                    "account": {"type": "string", "maxLength": 100, "description": "bank and number; for bank"},
                },
            },
            "description": {"type": "string", "maxLength": 4000},
        },
    },
    "Payment": {
        "type": "object",
        "required": ["id", "case_id", "programme", "purpose", "amount_vnd", "status", "decisions", "attachments"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "case_id": {"type": "string", "format": "uuid"},
            "commune_code": {"type": "string"},
            "programme": {
                "type": "object",
                "properties": {"id": {"type": "string", "format": "uuid"}, "name": {"type": "string"}},
            },
            "purpose": {"type": "string"},
            "amount_vnd": {"type": "integer"},
            "status": PAYMENT_STATUS,
            "round": {"type": "integer", "description": "submissions so far (a returned request goes again)"},
            "approver_roles": {
                "type": "array",
                "items": ROLE,
                "description": "who must approve, in order, fixed at submission by the approval policy",
            },
            "approvals": {"type": "integer", "description": "approvals of this round so far"},
            "next_role": {"oneOf": [ROLE, {"type": "null"}], "description": "whose decision is awaited"},
            "requested_by": USER_REF,
            "created_at": {"type": "string", "format": "date-time"},
            "submitted_at": NULLABLE_MOMENT,
            "decided_at": NULLABLE_MOMENT,
            "paid_at": NULLABLE_MOMENT,
            "decisions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "round": {"type": "integer"},
                        "step": {"type": "integer"},
                        "role": {"type": "string"},
                        "decision": {"type": "string", "enum": ["approve", "reject", "return"]},
                        "reason": NULLABLE_TEXT,
                        "decided_by": USER_REF,
                        "decided_at": {"type": "string", "format": "date-time"},
                    },
                },
            },
            "disbursement": {
                "oneOf": [
                    {
                        "type": "object",
                        "properties": {
                            "paid_on": {"type": "string", "format": "date"},
                            "method": {"type": "string", "enum": ["bank", "cash"]},
                            "reference": NULLABLE_TEXT,
                        },
                    },
                    {"type": "null"},
                ]
            },
            "attachments": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"id": {"type": "string", "format": "uuid"}, "name": {"type": "string"}},
                },
            },
            "payee": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "relation": {"type": "string"},
                    "method": {"type": "string", "enum": ["bank", "cash"]},
                    "account": NULLABLE_TEXT,
                },
            },
            "description": {"type": "string"},
        },
    },
}

PAYMENT_PATHS: dict[str, Any] = {
    "/programmes": {
        "get": {
            "summary": "The programmes of the caller's province, with budget, committed, paid and available amounts",
            "security": SECURED,
            "parameters": [_query("year", "only this year's programmes", YEAR)],
            "responses": {
                "200": _items(_ref("Programme")),
                **_invalid("The year is not one from 2000 to 2100"),
                **PAYMENT_ROLE_ERRORS,
            },
        },
        "post": {
            "summary": "Create a funding programme's budget for a province and year",
            "description": "A provincial officer or an administrator, for their own province.",
            "security": SECURED,
            "requestBody": _body(
                {
                    "type": "object",
                    "required": ["name", "year", "budget_vnd"],
                    "properties": {
                        "name": {"type": "string", "maxLength": 200},
                        "province": {"type": "string", "description": "default: the caller's province"},
                        "year": {"type": "integer", "minimum": 2000, "maximum": 2100},
                        "budget_vnd": MONEY,
                        "purposes": {
                            "type": "array",
                            "items": {"type": "string"},
                            "description": f"[payment_purposes] {CODES_NOTE}; empty: every purpose",
                        },
                        "groups": {
                            "type": "array",
                            "items": {"type": "string"},
                            "description": f"[special_circumstances] or [at_risk] {CODES_NOTE}; empty: every child",
                        },
                    },
                }
            ),
            "responses": {
                "201": _ok(_ref("Programme"), "Programme created"),
                "400": _error("The body is not a JSON object"),
                "409": _error("The province has a programme of that name for that year (code duplicate)"),
                **_invalid("e.g. another province (province out_of_scope), a budget as text or not positive"),
                **PAYMENT_ROLE_ERRORS,
            },
        },
    },
    "/cases/{case_id}/payments": {
        "post": {
            "summary": "Draft a payment request for the case (its social worker or supervisor)",
            "description": "The draft takes receipts at /payments/{payment_id}/attachments and goes with /submit.",
            "security": SECURED,
            "parameters": CASE_ID,
            "requestBody": _body(_ref("PaymentInput")),
            "responses": {
                "201": _ok(_ref("Payment"), "Draft saved"),
                "409": _error("The case is closed (code case_closed): it takes no new request"),
                **_invalid(
                    "e.g. amount_vnd not_whole_vnd (text, a fraction, a boolean), not_positive or over_ceiling; "
                    "programme unknown_programme; nothing was saved"
                ),
                **WORK_ERRORS,
            },
        },
    },
    "/payments": {
        "get": {
            "summary": "The payment requests the caller may see, newest first (a social worker: their own)",
            "security": SECURED,
            "parameters": [
                _query("status", "one status", PAYMENT_STATUS),
                _query("programme", "one programme's id", {"type": "string", "format": "uuid"}),
            ],
            "responses": {
                "200": _items(_ref("Payment")),
                **_invalid("Unknown status (invalid_status) or a programme that is not an id (invalid_id)"),
                **PAYMENT_ROLE_ERRORS,
            },
        },
    },
    "/payments/{payment_id}": {
        "get": {
            "summary": "A payment request with its decisions, disbursement and receipts",
            "security": SECURED,
            "parameters": PAYMENT_ID,
            "responses": {"200": _ok(_ref("Payment")), **PAYMENT_NOT_FOUND, **PAYMENT_ROLE_ERRORS},
        },
        "put": {
            "summary": "Rewrite a draft, or a request sent back for changes (its requester)",
            "security": SECURED,
            "parameters": PAYMENT_ID,
            "requestBody": _body(_ref("PaymentInput")),
            "responses": {
                "200": _ok(_ref("Payment"), "Saved"),
                "400": _error("The body is not a JSON object"),
                "409": _error("The request is submitted or decided (code not_editable)"),
                **_invalid("As for a new request; nothing was saved"),
                **PAYMENT_NOT_FOUND,
                **PAYMENT_ROLE_ERRORS,
            },
        },
    },
    "/payments/{payment_id}/attachments": {
        "post": {
            "summary": "Attach a receipt or quotation, stored encrypted (its requester, while it can be changed)",
            "security": SECURED,
            "parameters": PAYMENT_ID,
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["file"],
                            "properties": {"file": {"type": "string", "format": "binary"}},
                        }
                    }
                },
            },
            "responses": {
                "201": _ok(
                    {
                        "type": "object",
                        "required": ["id", "name", "size"],
                        "properties": {
                            "id": {"type": "string", "format": "uuid"},
                            "name": {"type": "string"},
                            "size": {"type": "integer", "description": "bytes"},
                        },
                    },
                    "File stored",
                ),
                "409": _error("The request is submitted or decided (code not_editable)"),
                "413": _error(
                    "The file is larger than CASEWORK_MAX_UPLOAD_MB (code file_too_large), or the whole request is "
                    "larger than that and 1 MB more (code payload_too_large)"
                ),
                "422": _error(
                    "No file (field file required), a type the store does not take (file_type_not_allowed), content "
                    "that does not match its type (file_type_mismatch), a document that would expand too far "
                    "(archive_bomb) or holds entries outside its folder (unsafe_archive), or a file name that is a "
                    "path or holds control characters (bad_file_name)"
                ),
                "503": _error("The server could not write the file, its storage full or failing (code storage_failed)"),
                **PAYMENT_NOT_FOUND,
                **PAYMENT_ROLE_ERRORS,
            },
        },
    },
    "/payments/{payment_id}/submit": {
        "post": {
            "summary": "Send the request for decision; the approval policy fixes who decides, in which order",
            "description": (
                "Up to and including 5,000,000 ₫ a supervisor of the case's commune; above that a provincial officer; "
                "from 20,000,000 ₫ a supervisor and then a provincial officer (the default policy)."
            ),
            "security": SECURED,
            "parameters": PAYMENT_ID,
            "responses": {
                "200": _ok(_ref("Payment"), "Submitted"),
                "409": _error(
                    "The case is closed (case_closed), has no approved support plan and the purpose is not "
                    "emergency (plan_not_approved), or the request is not a draft or returned (not_editable)"
                ),
                **_invalid("No receipt or quotation attached (attachments receipt_required)"),
                **PAYMENT_NOT_FOUND,
                **PAYMENT_ROLE_ERRORS,
            },
        },
    },
    "/payments/{payment_id}/decision": {
        "post": {
            "summary": "Approve, reject or send back the step awaiting the caller",
            "description": (
                "Needs a token obtained with 'otp' within CASEWORK_REAUTH_MINUTES. Never the requester, nobody outside "
                "the case's scope, and the second approver is someone else. The final approval commits the amount on "
                "the programme's budget."
            ),
            "security": SECURED,
            "parameters": PAYMENT_ID,
            "requestBody": _body(
                {
                    "type": "object",
                    "required": ["decision"],
                    "properties": {
                        "decision": {"type": "string", "enum": ["approve", "reject", "return"]},
                        "reason": {"type": "string", "maxLength": 4000, "description": "required to reject or return"},
                    },
                }
            ),
            "responses": {
                "200": _ok(_ref("Payment"), "Decided"),
                "400": _error("The body is not a JSON object"),
                "401": _error(
                    "Missing, expired or revoked token, or one obtained without 'otp' or too long ago (code "
                    "reauth_required)"
                ),
                "403": _error(
                    "The caller's role has no part in payments (forbidden), has no second factor "
                    "(second_factor_required), is the requester (own_request), is not the approver this step awaits "
                    "or is outside the scope (not_an_approver), or approved an earlier step (same_approver)"
                ),
                "409": _error(
                    "Already decided, possibly a moment ago by someone else (already_decided); the budget would be "
                    "overdrawn (budget_exceeded); no approved plan (plan_not_approved); the case is closed"
                ),
                **_invalid("The decision is unknown, or a rejection or return has no reason"),
                **PAYMENT_NOT_FOUND,
            },
        },
    },
    "/payments/{payment_id}/disbursement": {
        "post": {
            "summary": "Record that an approved request was paid (a finance officer or a supervisor)",
            "security": SECURED,
            "parameters": PAYMENT_ID,
            "requestBody": _body(
                {
                    "type": "object",
                    "required": ["paid_on", "method"],
                    "properties": {
                        "paid_on": {**DATE, "description": "not in the future; yyyy-mm-dd or dd/mm/yyyy"},
                        "method": {"type": "string", "enum": ["bank", "cash"]},
                        "reference": {"type": "string", "maxLength": 200, "description": "required for bank"},
                    },
                }
            ),
            "responses": {
                "201": _ok(_ref("Payment"), "Paid"),
                "400": _error("The body is not a JSON object"),
                "409": _error("Paid already (already_paid), or not approved (not_approved)"),
                **_invalid(
                    "The date is missing or in the future, the method unknown, or a bank payment has no reference"
                ),
                **PAYMENT_NOT_FOUND,
                **PAYMENT_ROLE_ERRORS,
            },
        },
    },
}


# --- /stats ----------------------------------------------------------------------------------------------------------

#: A published number: a count, VND, a share (%) or a median; "<k" for a small count hidden, "×" for a number hidden
#: so that no small count can be worked out from the totals; null where there is nothing to measure.
STAT_VALUE = {"type": ["number", "string", "null"], "description": 'a number, "<k", "×", or null'}
STAT_KEY = {
    "type": "object",
    "required": ["key", "label"],
    "properties": {"key": {"type": "string"}, "label": {"type": "string"}},
}
STAT_PERIOD = {
    "type": "object",
    "required": ["from", "to", "kind"],
    "properties": {
        "from": {"type": "string", "format": "date"},
        "to": {"type": "string", "format": "date"},
        "kind": {"type": "string", "enum": ["year", "half", "custom"]},
    },
}
_STAT_GRID = {
    "code": {"type": "string"},
    "title": {"type": "string"},
    "unit": {"type": "string", "enum": ["children", "cases", "vnd", "share", "hours", "days", "payments"]},
    "total": STAT_VALUE,
    "rows": {"type": "array", "items": STAT_KEY, "description": "the indicator's categories (one row 'all' if none)"},
    "columns": {"type": "array", "items": STAT_KEY, "description": "the breakdown's values (one column 'all' if none)"},
    "cells": {"type": "array", "items": {"type": "array", "items": STAT_VALUE}, "description": "cells[row][column]"},
    "row_totals": {"type": "array", "items": STAT_VALUE},
    "column_totals": {"type": "array", "items": STAT_VALUE},
    "suppressed": {"type": "boolean", "description": "some number of this grid is hidden"},
}
STATS_SCHEMAS: dict[str, Any] = {
    "StatsGrid": {"type": "object", "required": list(_STAT_GRID), "properties": _STAT_GRID},
    "StatsIndicator": {
        "allOf": [
            _ref("StatsGrid"),
            {"type": "object", "required": ["previous"], "properties": {"previous": _ref("StatsGrid")}},
        ]
    },
    "StatsReport": {
        "type": "object",
        "required": ["province", "commune", "period", "previous_period", "suppression", "indicators"],
        "properties": {
            "province": {"type": "string"},
            "commune": {"type": ["string", "null"]},
            "period": STAT_PERIOD,
            "previous_period": STAT_PERIOD,
            "breakdown": {
                "type": ["string", "null"],
                "enum": [None, "commune", "sex", "age_band", "ethnicity", "disability"],
            },
            "suppression": {
                "type": "object",
                "required": ["k", "applied", "any_suppressed"],
                "properties": {
                    "k": {"type": "integer", "description": "0 when not applied"},
                    "applied": {"type": "boolean", "description": "false for a provincial officer of the province"},
                    "any_suppressed": {"type": "boolean"},
                },
            },
            "generated_at": {"type": "string", "format": "date-time"},
            "indicators": {"type": "array", "items": _ref("StatsIndicator")},
            "new_cases_by_month": {
                "type": "object",
                "required": ["months", "values", "total", "suppressed"],
                "properties": {
                    "code": {"type": "string"},
                    "title": {"type": "string"},
                    "months": {"type": "array", "items": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"}},
                    "values": {"type": "array", "items": STAT_VALUE},
                    "total": STAT_VALUE,
                    "suppressed": {"type": "boolean"},
                },
            },
        },
    },
}
STATS_PATHS: dict[str, Any] = {
    "/stats": {
        "get": {
            "summary": "The indicators of a province or commune for a period, suppressed for the caller's role",
            "description": (
                "Committee members and provincial officers, for their own province. Committee members get counts "
                'from 1 to k-1 as "<k" (CASEWORK_STATS_MIN_COUNT, 5 by default) and other numbers hidden as "×" so '
                "that none can be worked out from the totals; provincial officers get their province's numbers as "
                "they are. Give from and to, or year (and half), or nothing for the current year. The answer is "
                "recorded in the audit trail as an export."
            ),
            "security": SECURED,
            "parameters": [
                _query("province", "province code; the caller's own by default"),
                _query("commune", "a commune of the province; the whole province by default"),
                _query("from", "first day of the period (yyyy-mm-dd or dd/mm/yyyy)"),
                _query("to", "last day of the period (at most five years after from)"),
                _query("year", "a calendar year, when from and to are not given", YEAR),
                _query("half", "1 or 2: a half of year", {"type": "string", "enum": ["1", "2"]}),
                _query(
                    "breakdown",
                    "the columns of every indicator",
                    {"type": "string", "enum": ["commune", "sex", "age_band", "ethnicity", "disability"]},
                ),
            ],
            "responses": {
                "200": _ok(_ref("StatsReport")),
                "403": _error(
                    "The caller's role never sees statistics (code forbidden), or the province is not the caller's "
                    "(code out_of_scope)"
                ),
                **_invalid(
                    "A day is missing or not a date, the period ends before it starts or is longer than five years, "
                    "half is not 1 or 2, or the commune is not the province's, or the breakdown is unknown"
                ),
                **AUTH_ERRORS,
            },
        }
    },
}


def build_document() -> dict[str, Any]:
    """Return the OpenAPI 3.1 document."""
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "casework API",
            "version": "1",
            "description": (
                "Child-protection case management. Authenticate with POST /tokens, then send "
                '\'Authorization: Bearer <token>\'. Errors are {"error": {"code", "message"}} with a stable code. '
                "Supervisors, provincial officers, auditors and administrators send 'otp' (the current code of their "
                "authenticator app) with POST /tokens. Approving a payment and exporting identifying data need a token "
                "obtained with 'otp' within CASEWORK_REAUTH_MINUTES (15 by default); an older one is refused with "
                "401 reauth_required until a new token is obtained. In a request body, an optional field sent as "
                'null (or "" for a single value) is the same as a field left out, but for true/false fields; in a '
                "query, so is an empty value."
            ),
        },
        "servers": [{"url": "/api/v1"}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                                "fields": {
                                    "type": "object",
                                    "description": "validation_failed: the messages of each field in error",
                                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                                },
                                "field_codes": {
                                    "type": "object",
                                    "description": (
                                        "validation_failed: stable codes of each field in error, e.g. "
                                        '{"child.national_id": ["invalid_national_id"]}'
                                    ),
                                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                                },
                                "possible_duplicates": {
                                    "type": "array",
                                    "description": "possible_duplicates: the earlier records that may be this child",
                                    "items": {"$ref": "#/components/schemas/PossibleDuplicate"},
                                },
                            },
                        }
                    },
                },
                "Province": {
                    "type": "object",
                    "required": ["code", "name", "type"],
                    "properties": {
                        "code": {"type": "string", "pattern": "^[0-9]{2}$"},
                        "name": {"type": "string"},
                        "type": {"type": "string", "enum": ["tinh", "thanh_pho"]},
                    },
                },
                **CASE_SCHEMAS,
                **SUPPORT_SCHEMAS,
                **PAYMENT_SCHEMAS,
                **STATS_SCHEMAS,
                "Commune": {
                    "type": "object",
                    "required": ["code", "name", "type", "province"],
                    "properties": {
                        "code": {"type": "string", "pattern": "^[0-9]{5}$"},
                        "name": {"type": "string"},
                        "type": {"type": "string", "enum": ["xa", "phuong", "dac_khu"]},
                        "province": {"type": "string"},
                        "merged_into": {"type": ["string", "null"]},
                        "merged_on": {"type": ["string", "null"], "format": "date"},
                    },
                },
            },
        },
        "paths": {
            "/tokens": {
                "post": {
                    "summary": "Get a bearer token",
                    "description": (
                        "Roles with a second factor (supervisor, provincial_officer, auditor, admin) also send 'otp', "
                        "the current 6-digit code of their authenticator app; a token so obtained counts as a fresh "
                        "second-factor check for CASEWORK_REAUTH_MINUTES. A wrong code counts towards the lockout "
                        "like a wrong password, and a code is accepted only once."
                    ),
                    "security": [],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["username", "password"],
                                    "properties": {
                                        "username": {"type": "string", "maxLength": 64},
                                        "password": {"type": "string", "maxLength": 1024},
                                        "otp": {
                                            "type": "string",
                                            "maxLength": 16,
                                            "description": "TOTP code; required for roles with a second factor",
                                        },
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "201": _ok(
                            {
                                "type": "object",
                                "required": ["token", "expires_at"],
                                "properties": {
                                    "token": {"type": "string"},
                                    "expires_at": {"type": "string", "format": "date-time"},
                                },
                            },
                            "Token issued",
                        ),
                        "400": _error("The body is not a JSON object"),
                        "401": _error(
                            "Wrong username or password (code invalid_credentials); the role needs a second factor "
                            "and 'otp' is missing (code otp_required); the code is wrong or already used "
                            "(code otp_invalid)"
                        ),
                        "403": _error(
                            "Account locked (code account_locked); the account has not set up its second factor "
                            "yet (code second_factor_not_enrolled)"
                        ),
                        "422": _error("A field is missing or not a string"),
                        "429": _error("Too many attempts from this address"),
                    },
                }
            },
            "/tokens/current": {
                "delete": {
                    "summary": "Revoke the token used for this request",
                    "security": SECURED,
                    "responses": {"204": {"description": "Revoked"}, **AUTH_ERRORS},
                }
            },
            "/me": {
                "get": {
                    "summary": "The caller's account, role and area",
                    "security": SECURED,
                    "responses": {
                        "200": _ok(
                            {
                                "type": "object",
                                "required": ["id", "username", "role", "province", "communes"],
                                "properties": {
                                    "id": {"type": "string", "format": "uuid"},
                                    "username": {"type": "string"},
                                    "full_name": {"type": "string"},
                                    "role": {"type": "string"},
                                    "province": {"type": "string"},
                                    "communes": {"type": "array", "items": {"type": "string"}},
                                    "token_expires_at": {"type": "string", "format": "date-time"},
                                },
                            }
                        ),
                        **AUTH_ERRORS,
                    },
                }
            },
            "/provinces": {
                "get": {
                    "summary": "The 34 provinces",
                    "security": SECURED,
                    "responses": {
                        "200": _ok(
                            {
                                "type": "object",
                                "properties": {
                                    "items": {"type": "array", "items": {"$ref": "#/components/schemas/Province"}}
                                },
                            }
                        ),
                        **AUTH_ERRORS,
                    },
                }
            },
            "/provinces/{code}/communes": {
                "get": {
                    "summary": "The communes of a province",
                    "security": SECURED,
                    "parameters": [{"name": "code", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {
                        "200": _ok(
                            {
                                "type": "object",
                                "properties": {
                                    "items": {"type": "array", "items": {"$ref": "#/components/schemas/Commune"}}
                                },
                            }
                        ),
                        "404": _error("Unknown province"),
                        **AUTH_ERRORS,
                    },
                }
            },
            "/jobs/{job_id}": {
                "get": {
                    "summary": "Progress of a background job started by the caller",
                    "security": SECURED,
                    "parameters": [{"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {
                        "200": _ok(
                            {
                                "type": "object",
                                "required": ["id", "status", "progress"],
                                "properties": {
                                    "id": {"type": "string"},
                                    "task": {"type": "string"},
                                    "status": {"type": "string", "enum": ["queued", "running", "finished", "failed"]},
                                    "progress": {"type": "integer", "minimum": 0, "maximum": 100},
                                    "message": {"type": "string"},
                                    "result": {"type": ["object", "null"]},
                                    "created_at": {"type": "string", "format": "date-time"},
                                    "finished_at": {"type": ["string", "null"], "format": "date-time"},
                                },
                            }
                        ),
                        "404": _error("Unknown job, or started by someone else"),
                        **AUTH_ERRORS,
                    },
                }
            },
            **CASE_PATHS,
            **SUPPORT_PATHS,
            **PAYMENT_PATHS,
            **STATS_PATHS,
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "security": [],
                    "responses": {"200": {"description": "The OpenAPI document", "content": {"application/json": {}}}},
                }
            },
        },
    }
    # The paths are the module's own dictionaries: work on a copy.
    document["paths"] = copy.deepcopy(document["paths"])
    # Any request can be one that cannot be read: a body that is not JSON, or text holding NUL (refused before any
    # view by casework.security.input_guard, as PostgreSQL cannot store it).
    for operations in document["paths"].values():
        for operation in operations.values():
            operation["responses"]["400"] = BAD_REQUEST
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                body["schema"] = _optional_nulls(body["schema"], document["components"]["schemas"], set())
    return document


_CONSTRAINING = ("enum", "format", "pattern", "minLength", "const")


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` also taking null, and "" for a single value (casework.checks reads both as not given)."""
    types = schema.get("type")
    types = [types] if isinstance(types, str) else list(types or [])
    if types and not {"string", "integer", "number"} & set(types):  # an object or a list: null only
        return {**schema, "type": types if "null" in types else [*types, "null"]}
    if types == ["string"] and not any(key in schema for key in _CONSTRAINING):
        return {**schema, "type": ["string", "null"]}  # "" is already a string it takes
    return {"anyOf": [schema, {"type": "null"}, {"const": ""}]}


def _optional_nulls(schema: dict[str, Any], components: dict[str, Any], done: set[str]) -> dict[str, Any]:
    """``schema`` with every optional field of a request body also taking null (and "" for a single value): the
    operations read them as "not given" (casework.checks), as schemathesis showed field after field. Booleans are
    the exception: null is neither true nor false, and is refused. A copy is returned; the components a request
    names (used by no answer) are replaced in ``components``."""
    ref = schema.get("$ref")
    if ref:
        name = ref.rsplit("/", 1)[-1]
        if name not in done:
            done.add(name)
            components[name] = _optional_nulls(components[name], components, done)
        return schema
    result = dict(schema)
    if isinstance(schema.get("properties"), dict):
        required = set(schema.get("required", []))
        result["properties"] = {}
        for name, prop in schema["properties"].items():
            prop = _optional_nulls(prop, components, done)
            optional = name not in required and prop.get("type") != "boolean"
            result["properties"][name] = _nullable(prop) if optional else prop
    if isinstance(schema.get("items"), dict):
        result["items"] = _optional_nulls(schema["items"], components, done)
    return result
