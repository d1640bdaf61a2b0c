"""When the database cannot be reached: a clear 503 that says to try again, never a 500.

PostgreSQL restarted, a fail-over, the connection cut: the request stops where it was, its transaction rolls back
(PostgreSQL commits a transaction whole or not at all, the audit events with the change), and the user is told to
try again in a moment. The pool throws the broken connections away and ``pool_pre_ping`` tests each one before it is
lent again, so once the server is back the next requests reconnect by themselves: the application needs no restart.
"""

from __future__ import annotations

import logging
import sqlite3

from flask import Flask, g, make_response, render_template
from flask_babel import gettext as _
from sqlalchemy import exc as sa_exc

from casework.api import _is_api_request, error_response
from casework.extensions import db, login_manager

logger = logging.getLogger(__name__)

#: Seconds a client is asked to wait before it tries again (a restart of PostgreSQL takes a few).
RETRY_AFTER_SECONDS = 5

#: The outages of the embedded SQLite database. sqlite3 reports a mistyped table or column as an OperationalError
#: too, and that is a bug, not an outage: it stays a 500.
_SQLITE_OUTAGES = ("database is locked", "database table is locked", "unable to open database file", "disk i/o error")


def is_database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database is out of reach or refused the work for now (try again), as opposed to
    a bug or a broken rule."""
    if isinstance(exc, sa_exc.TimeoutError):
        return True  # the pool had no connection to lend in time
    if isinstance(exc, sa_exc.PendingRollbackError):
        # The connection was lost earlier in the request, someone caught that error and the request went on (the
        # unread count of the menu does, so that an error page still renders): SQLAlchemy's error 8s2b.
        return exc.code == "8s2b"
    if not isinstance(exc, sa_exc.DBAPIError):
        return False
    if exc.connection_invalidated or isinstance(exc, sa_exc.InterfaceError):
        return True
    if not isinstance(exc, sa_exc.OperationalError):
        return False
    if isinstance(exc.orig, sqlite3.Error):
        return any(outage in str(exc.orig).lower() for outage in _SQLITE_OUTAGES)
    # PostgreSQL (psycopg): connection failures, the server shutting down or starting up, too many connections,
    # a cancelled statement, a deadlock: the DB-API's "errors related to the database's operation".
    return True


def _reason(exc: BaseException) -> str:
    """The driver's message, first line: SQLAlchemy's own adds the statement and its parameters."""
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0][:300] if lines else exc.__class__.__name__


def _end_session() -> None:
    """Close the request's session. When its connection has died, the rollback on it fails: then the session is
    dropped as it is (the pool has thrown the connection away, and the server rolled back what was not committed)."""
    try:
        db.session.remove()
    except sa_exc.SQLAlchemyError as exc:
        if not is_database_unavailable(exc):
            raise
        logger.warning("database connection lost while ending a request: %s", _reason(exc))
        db.session.registry.clear()


def unavailable_response():
    """The 503: JSON under /api/v1 (code ``database_unavailable``), a page elsewhere; both with ``Retry-After``."""
    if _is_api_request():
        response = error_response(
            503,
            "database_unavailable",
            _("The database cannot be reached at the moment. Try again in a few seconds."),
        )
    else:
        # The page must not need the database: it is shown as to a visitor (no menu, no unread count), since the
        # signed-in user's row cannot be read now.
        g._login_user = login_manager.anonymous_user()
        response = make_response(render_template("errors/503.html"), 503)
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def init_app(app: Flask) -> None:
    """Answer 503 to a request that failed because the database is unavailable."""

    def handle_database_error(exc: Exception):
        if not is_database_unavailable(exc):
            raise exc  # a bug, not an outage: Flask's usual 500
        logger.warning("database unavailable, answered 503: %s", _reason(exc))
        _end_session()
        return unavailable_response()

    for exc_class in (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError, sa_exc.PendingRollbackError):
        app.register_error_handler(exc_class, handle_database_error)

    # Registered after Flask-SQLAlchemy's, so it runs before it (Flask runs teardowns last-registered first).
    @app.teardown_appcontext
    def end_session_on_lost_connection(_exc):
        """End the request's session without turning a finished answer into a 500 when the connection died after
        the answer was ready (the database shut down while a page rendered)."""
        _end_session()
