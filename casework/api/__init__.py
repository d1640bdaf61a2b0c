"""``/api/v1``: the JSON door. Bearer tokens, JSON errors, and the OpenAPI document."""

from __future__ import annotations

from flask import Blueprint, Flask, current_app, g, jsonify, request
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import HTTPException

from casework.auth import operations as auth_operations
from casework.dbtypes import utcnow
from casework.errors import DomainError, ValidationFailed
from casework.extensions import csrf, db

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)  # the API reads no cookies: a request authenticates with its bearer token alone

#: Endpoints that answer without a token.
PUBLIC_ENDPOINTS = frozenset({"api.create_token", "api.openapi"})

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


def error_response(status: int, code: str, message: str, **extra):
    """Answer ``{"error": {"code", "message", ...}}`` with ``status``."""
    body = {"error": {"code": code, "message": str(message), **extra}}
    response = jsonify(body)
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="casework"'  # RFC 6750
    return response


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


@bp.before_request
def authenticate_bearer():
    """Require a valid bearer token on every endpoint but the public ones; cookies are ignored."""
    g.api_token = None
    g._login_user = None
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return error_response(
            401, "token_missing", "Send 'Authorization: Bearer <token>'; get one at POST /api/v1/tokens."
        )
    record = auth_operations.resolve_token(token.strip())
    if record is None:
        return error_response(401, "token_invalid", "The token is unknown, expired or revoked.")
    now = utcnow()
    if record.last_used_at is None or (now - record.last_used_at).total_seconds() > 300:
        record.last_used_at = now
        db.session.commit()
    g.api_token = record
    g._login_user = record.user  # Flask-Login's current_user for this request only
    return None


def _is_api_request() -> bool:
    return request.path.startswith(bp.url_prefix + "/") or request.path == bp.url_prefix


def init_error_handlers(app: Flask) -> None:
    """Turn every error under /api/v1 into the JSON error shape; pages keep their HTML errors."""

    @app.errorhandler(ApiError)
    def handle_api_error(exc: ApiError):
        return error_response(exc.status, exc.code, exc.message, **exc.extra)

    @app.errorhandler(DomainError)
    def handle_domain_error(exc: DomainError):
        db.session.rollback()
        extra = {}
        if isinstance(exc, ValidationFailed):
            extra["fields"] = {k: [str(m) for m in v] for k, v in exc.errors.items()}
            if exc.field_codes:
                extra["field_codes"] = exc.field_codes
        if _is_api_request():
            return error_response(exc.status, exc.code, str(exc.message), **extra)
        from flask import render_template

        return render_template("error.html", status=exc.status, message=exc.message), exc.status

    @app.errorhandler(StaleDataError)
    def handle_stale(exc: StaleDataError):
        # Two edits of the same version: the second matched no row. Nothing was overwritten.
        db.session.rollback()
        message = "Someone changed this record since you opened it. Reload it and make your change again."
        if _is_api_request():
            return error_response(409, "stale_version", message)
        from flask import render_template

        return render_template("error.html", status=409, message=message), 409

    @app.errorhandler(HTTPException)
    def handle_http_error(exc: HTTPException):
        if _is_api_request():
            status = exc.code or 500
            message = exc.description or exc.name
            if status == 429:
                message = f"Too many requests from this address ({exc.description}); wait and try again."
            if status == 413:
                limit = current_app.config["CASEWORK_MAX_UPLOAD_MB"]
                message = f"The request is larger than {limit + 1} MB; a file may be at most {limit} MB."
            response = error_response(status, HTTP_CODES.get(status, "error"), message)
            if status == 405 and getattr(exc, "valid_methods", None):
                # RFC 9110, 15.5.6: a 405 names the methods the resource does support.
                response.headers["Allow"] = ", ".join(exc.valid_methods)
            if status == 429 and exc.response is not None:
                retry = exc.response.headers.get("Retry-After")
                if retry:
                    response.headers["Retry-After"] = retry
            return response
        from flask import render_template
        from flask_babel import lazy_gettext as _l

        message = exc.description
        if exc.code == 413:  # werkzeug's words are English and say nothing of the limit
            message = _l("The file is larger than %(n)d MB.", n=current_app.config["CASEWORK_MAX_UPLOAD_MB"])
        return render_template("error.html", status=exc.code, message=message), exc.code or 500


from casework.api import cases, payments, stats, support, views  # noqa: E402,F401 - routes on bp
