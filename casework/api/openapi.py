"""The OpenAPI 3.1 document of /api/v1, written by hand and checked against the URL map by the tests."""

from __future__ import annotations

from typing import Any

ERROR = {"$ref": "#/components/schemas/Error"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ERROR}}}


def _ok(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


AUTH_ERRORS = {"401": _error("Missing, expired or revoked token")}
SECURED = [{"bearer": []}]


# --- /cases -----------------------------------------------------------------------------------------------------------

CODES_NOTE = "codes from casework/codes.toml"
NULLABLE_TEXT = {"type": ["string", "null"]}
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


def _query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema or {"type": "string"},
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
                _query("q", "a case number, a personal ID or phone number, or name words (diacritics optional)"),
                _query("stage", "workflow stage"),
                _query("category", f"a code of [special_circumstances], [at_risk] or [abuse_types], {CODES_NOTE}"),
                _query("risk", "risk level", {"type": "string", "enum": ["low", "medium", "high"]}),
                _query("commune", "commune code"),
                _query("assigned_to", "a user id, 'me', or 'none' for unassigned cases"),
                _query("overdue", "only cases past their next deadline", {"type": "boolean"}),
                _query("page", "page number, from 1", {"type": "integer", "minimum": 1}),
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


def build_document() -> dict[str, Any]:
    """Return the OpenAPI 3.1 document."""
    return {
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
                "401 reauth_required until a new token is obtained."
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
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "security": [],
                    "responses": {"200": {"description": "The OpenAPI document", "content": {"application/json": {}}}},
                }
            },
        },
    }
