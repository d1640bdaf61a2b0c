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
                                "fields": {"type": "object", "additionalProperties": {"type": "array"}},
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
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "security": [],
                    "responses": {"200": {"description": "The OpenAPI document", "content": {"application/json": {}}}},
                }
            },
        },
    }
