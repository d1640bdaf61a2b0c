"""Sending a file of the encrypted store to the browser, one way for every page: the download is recorded (and
committed) before the first byte leaves, the name survives Vietnamese diacritics, and nothing is cached."""

from __future__ import annotations

import unicodedata
from urllib.parse import quote

from flask import Response

from casework.extensions import db
from casework.security import files
from casework.security.files import StoredFile


def attachment_header(name: str) -> tuple[str, dict[str, str]]:
    """``Content-Disposition: attachment`` with an ASCII name and the full name in RFC 5987 form."""
    try:
        name.encode("ascii")
    except UnicodeEncodeError:
        simple = unicodedata.normalize("NFKD", name.replace("đ", "d").replace("Đ", "D"))
        simple = simple.encode("ascii", "ignore").decode("ascii") or "file"
        return "attachment", {"filename": simple, "filename*": f"UTF-8''{quote(name, safe='!#$&+-.^_`|~')}"}
    return "attachment", {"filename": name}


def send_stored(stored: StoredFile, actor, *, name: str | None = None) -> Response:
    """Stream ``stored`` decrypted as a download named ``name`` (default: the name it was given)."""
    name = name or stored.original_name or "file"
    stream = files.open_stream(stored, actor=actor)  # records the download
    try:
        db.session.commit()
    except BaseException:
        stream.close()
        raise
    response = Response(stream, content_type=stored.content_type, direct_passthrough=True)
    disposition, options = attachment_header(name)
    response.headers.set("Content-Disposition", disposition, **options)
    response.headers["Content-Length"] = str(stream.size)
    response.headers["Cache-Control"] = "no-store"
    return response
