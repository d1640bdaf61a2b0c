"""Refuse a request that carries the NUL character, before any of its text reaches a query.

No username, code, filter, note or id that a person types holds U+0000, and PostgreSQL's text cannot store it:
psycopg refuses such a parameter with a ``DataError``, which surfaced as a 500 on whatever query the text reached
first (a sign-in, a filter of the case list, a province's communes), on PostgreSQL only. Found by schemathesis and
by hand (issue #8, "Hostile input"). A request with NUL in its path, query string, form fields or JSON body is now
answered 400 before any view runs, on both databases: the API in its JSON error shape, a page with the error page.
File names are not looked at here: the file store refuses control characters in them with its own message.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, request
from werkzeug.exceptions import BadRequest

NUL = "\x00"
MESSAGE = "Text may not contain the NUL character (U+0000)."


def holds_nul(value: Any) -> bool:
    """Say whether a string, or any key or string inside nested lists and objects (decoded JSON), holds NUL.

    The walk is iterative: a body nested as deep as the JSON parser allows cannot exhaust the stack here.
    """
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if NUL in item:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def refuse_nul() -> None:
    """``before_request``: a 400 for a request whose path, query, form fields or JSON body hold NUL."""
    found = NUL in request.path or any(holds_nul(k) or holds_nul(v) for k, v in request.args.items(multi=True))
    if not found and request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        found = any(holds_nul(k) or holds_nul(v) for k, v in request.form.items(multi=True))
    if not found and request.is_json:
        found = holds_nul(request.get_json(silent=True))
    if found:
        raise BadRequest(MESSAGE)


def init_app(app: Flask) -> None:
    app.before_request(refuse_nul)
