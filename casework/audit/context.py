"""Who acts and from where: the request id of each request, and the actor, address and request of an event."""

from __future__ import annotations

import secrets
from typing import Any

from flask import Flask, g, has_request_context, request
from flask_login import current_user

from casework.dbtypes import utcnow

REQUEST_ID_HEADER = "X-Request-ID"


def new_request_id() -> str:
    return secrets.token_hex(16)


def request_id() -> str | None:
    """The id of the current request (None outside one)."""
    if not has_request_context():
        return None
    if "request_id" not in g:
        g.request_id = new_request_id()
    return g.request_id


def default_actor():
    """The signed-in user of the current request (browser session or API token), else None: the system."""
    if has_request_context() and current_user and current_user.is_authenticated:
        return current_user._get_current_object()
    return None


def facts(actor=None) -> dict[str, Any]:
    """When, who (id, username and role as they are now) and from where, for an event being recorded."""
    if actor is None:
        actor = default_actor()
    return {
        "occurred_at": utcnow(),
        "actor_id": getattr(actor, "id", None),
        "actor_username": getattr(actor, "username", None),
        "actor_role": getattr(actor, "role", None),
        "ip": request.remote_addr if has_request_context() else None,
        "request_id": request_id(),
    }


def init_app(app: Flask) -> None:
    """Give every request an id, kept in ``g.request_id``, stored with its events and returned in a header.

    The id is always generated here, never taken from the client, so that nobody can make two requests look alike.
    """

    @app.before_request
    def assign_request_id():
        g.request_id = new_request_id()

    @app.after_request
    def send_request_id(response):
        response.headers[REQUEST_ID_HEADER] = request_id()
        return response
