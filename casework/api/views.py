"""API endpoints of the platform: tokens, the caller, units, jobs and the OpenAPI document."""

from __future__ import annotations

import uuid

from flask import current_app, g, jsonify, request
from flask_login import current_user
from sqlalchemy import select

from casework.api import ApiError, bp
from casework.api.openapi import build_document
from casework.auth import operations as auth_operations
from casework.auth import second_factor
from casework.extensions import db, limiter
from casework.jobs.models import Job
from casework.locations.models import Commune, Province


def json_body() -> dict:
    """Return the request's JSON object, or answer 400."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ApiError(400, "bad_request", "The body must be a JSON object.")
    return data


def _string_field(data: dict, name: str, *, required: bool = True, max_length: int = 1024) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise ApiError(422, "validation_failed", f"'{name}' is required.", fields={name: ["required"]})
        return None
    if not isinstance(value, str) or len(value) > max_length:
        raise ApiError(422, "validation_failed", f"'{name}' must be a string.", fields={name: ["not a string"]})
    return value


def _iso(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


@bp.post("/tokens")
@limiter.limit(lambda: current_app.config["CASEWORK_LOGIN_RATE_LIMIT"])
def create_token():
    """Exchange a username and password (and a TOTP code, for roles with a second factor) for a bearer token."""
    data = json_body()
    username = _string_field(data, "username", max_length=64)
    password = _string_field(data, "password")
    otp = _string_field(data, "otp", required=False, max_length=16)
    try:
        user = auth_operations.authenticate(username, password)
        checked = False
        if second_factor.is_required(user):
            if not second_factor.is_enrolled(user):
                raise ApiError(
                    403,
                    "second_factor_not_enrolled",
                    "This account needs a second factor: sign in on the web once to set up the authenticator app.",
                )
            if otp is None:
                raise ApiError(
                    401, "otp_required", "This account needs 'otp': the current code from the authenticator app."
                )
            second_factor.verify(user, otp, step="api_token", allow_recovery=False)
            checked = True
    except (auth_operations.DomainError, ApiError):
        db.session.commit()  # keep the failure count and its audit event
        raise
    auth_operations.complete_sign_in(user, channel="api", second_factor="totp" if checked else None)
    issued = auth_operations.issue_token(user, second_factor=checked)
    db.session.commit()
    return jsonify(token=issued.token, expires_at=_iso(issued.record.expires_at)), 201


@bp.delete("/tokens/current")
def revoke_token():
    """Revoke the token that authenticates this request."""
    auth_operations.sign_out(g.api_token.user, token=g.api_token)
    db.session.commit()
    return "", 204


@bp.get("/me")
def me():
    """Describe the caller: role, province and communes."""
    return jsonify(
        id=str(current_user.id),
        username=current_user.username,
        full_name=current_user.full_name,
        role=current_user.role,
        province=current_user.province_code,
        communes=current_user.commune_codes,
        token_expires_at=_iso(g.api_token.expires_at),
    )


@bp.get("/provinces")
def list_provinces():
    """List the 34 provinces (reference data, for any signed-in caller)."""
    rows = db.session.scalars(select(Province).order_by(Province.code)).all()
    return jsonify(items=[{"code": p.code, "name": p.name, "type": p.type} for p in rows])


@bp.get("/provinces/<code>/communes")
def list_communes(code: str):
    """List the communes of a province (reference data, for any signed-in caller)."""
    if db.session.get(Province, code) is None:
        raise ApiError(404, "not_found", "Unknown province code.")
    rows = db.session.scalars(select(Commune).where(Commune.province_code == code).order_by(Commune.code)).all()
    return jsonify(
        items=[
            {
                "code": c.code,
                "name": c.name,
                "type": c.type,
                "province": c.province_code,
                "merged_into": c.merged_into_code,
                "merged_on": c.merged_on.isoformat() if c.merged_on else None,
            }
            for c in rows
        ]
    )


@bp.get("/jobs/<job_id>")
def show_job(job_id: str):
    """Report a job's progress to the user who started it."""
    try:
        uid = uuid.UUID(job_id)
    except ValueError:
        raise ApiError(404, "not_found", "Unknown job.") from None
    job = db.session.get(Job, uid)
    if job is None or job.created_by_id != current_user.id:
        raise ApiError(404, "not_found", "Unknown job.")
    return jsonify(
        id=str(job.id),
        task=job.task,
        status=job.status,
        progress=job.progress,
        message=job.message,
        result=job.result,
        created_at=_iso(job.created_at),
        finished_at=_iso(job.finished_at),
    )


@bp.get("/openapi.json")
def openapi():
    """Serve the OpenAPI 3.1 document of this API."""
    return jsonify(build_document())
