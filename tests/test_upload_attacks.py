"""Hostile uploads through the real doors, over HTTP: a case's attachments in the web UI, a payment request's
receipts in the web UI, and a payment request's attachments in the API.

Each attack — a file over the size limit, a request over the request limit, content that is not what the name
says, an archive bomb, an archive entry that leaves its folder, a name that is a path, a type outside the allow-list —
is refused with the status and the message the user would see, and nothing is stored: no row, no audit event of an
upload, no file under ``<instance>/files``, not even a temporary one. A full disk, and a disk that fails the write,
while saving an attachment give a clear error, leave no partial file and no row.

The store-level checks are in ``tests/test_files.py``; these prove the doors use them and answer properly. The doors
are reached through the live server (werkzeug's threaded server) with ``requests``: real multipart bodies, a real
sign-in with its session cookie and CSRF tokens, a real bearer token.

Written for issue #8, they found two faults of the web doors: a request over the size limit was a 500 (the error
page's sign-out form read the body again, and werkzeug raised its 413 a second time), and a full disk while attaching
a file to a case showed "Something went wrong" instead of saying the storage is full.
"""

from __future__ import annotations

import errno
import functools
import html
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from casework.audit import AuditEvent
from casework.auth import operations as auth_operations
from casework.cases import operations as case_operations
from casework.extensions import db
from casework.payments import operations as payment_operations
from casework.security import files
from casework.security.files import StoredFile
from casework.support.models import SupportPlan
from tests.conftest import TEST_PASSWORD, csrf_from
from tests.test_cases_api import intake
from tests.test_files import disk_files, office_zip, pdf_bytes
from tests.test_payments_api import payment_body

MB = 1024 * 1024
#: The limit of these tests: 1 MB a file, and (as the app sets it, one more for the form) 2 MB a request.
LIMIT_MB = 1
USER_AGENT = "casework-hostile-input-tests"


def said(msgid: str, **values) -> str:
    """The message ``msgid`` as the user reads it (the UI and the API answer in Vietnamese)."""
    with force_locale("vi"):
        return str(_l(msgid, **values))


def signed_in(live_server: str, username: str) -> requests.Session:
    """A browser session signed in through the real form (no second factor: a social worker)."""
    browser = requests.Session()
    # Flask-Login's strong session protection ties a session to the User-Agent it was signed in with.
    browser.headers["User-Agent"] = USER_AGENT
    token = csrf_from(browser.get(f"{live_server}/login", timeout=30).text)
    response = browser.post(
        f"{live_server}/login",
        data={"csrf_token": token, "username": username, "password": TEST_PASSWORD},
        allow_redirects=False,
        timeout=30,
    )
    assert response.status_code == 302, response.text[:500]
    return browser


# --- the world: a social worker's case and payment request, and the three doors ---------------------------------


@pytest.fixture
def store(app, monkeypatch, tmp_path) -> Path:
    """A file store of the test's own, under a fresh instance folder, with a 1 MB limit (2 MB a request)."""
    monkeypatch.setitem(app.config, "CASEWORK_INSTANCE", str(tmp_path))
    monkeypatch.setitem(app.config, "CASEWORK_MAX_UPLOAD_MB", LIMIT_MB)
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", (LIMIT_MB + 1) * MB)
    return tmp_path / "files"


@dataclass
class Desk:
    case_id: str
    payment_id: str
    token: str
    browser: requests.Session
    base: str


@pytest.fixture
def desk(store, live_server, make_user) -> Desk:
    """Hoa's case (with an approved plan) and her draft payment request; her browser session and API token."""
    worker = make_user("social_worker", communes=("06970",), username="hoa", full_name="Trần Thị Hoa")
    officer = make_user("provincial_officer", username="officer")
    case = case_operations.open_case(case_operations.validate_intake(intake(child__national_id=None), worker), worker)
    db.session.add(SupportPlan(case_id=case.id, cycle=1, status="approved", created_by_id=worker.id))
    programme = payment_operations.create_programme(
        officer, {"name": "Quỹ Bảo trợ trẻ em", "year": 2026, "budget_vnd": 100_000_000}
    )
    db.session.flush()
    payment = payment_operations.create_request(case, worker, payment_body(str(programme.id)))
    token = auth_operations.issue_token(worker).token
    db.session.commit()
    return Desk(str(case.id), str(payment.id), token, signed_in(live_server, "hoa"), live_server)


@dataclass(frozen=True)
class Door:
    """One way in for a file: how to send it, and what the user reads when it is refused."""

    name: str
    send: Callable[[Desk, bytes, str], requests.Response]
    api: bool
    owner_type: str

    def owner_id(self, desk: Desk) -> str:
        return desk.case_id if self.owner_type == "case" else desk.payment_id


def _web_upload(page: str, target: str) -> Callable[[Desk, bytes, str], requests.Response]:
    def send(desk: Desk, data: bytes, name: str) -> requests.Response:
        token = csrf_from(desk.browser.get(f"{desk.base}{page.format(d=desk)}", timeout=30).text)
        return desk.browser.post(
            f"{desk.base}{target.format(d=desk)}",
            data={"csrf_token": token},
            files={"file": (name, data, "application/octet-stream")},
            allow_redirects=False,
            timeout=60,
        )

    return send


def _api_upload(desk: Desk, data: bytes, name: str) -> requests.Response:
    return requests.post(
        f"{desk.base}/api/v1/payments/{desk.payment_id}/attachments",
        files={"file": (name, data, "application/octet-stream")},
        headers={"Authorization": f"Bearer {desk.token}"},
        timeout=60,
    )


DOORS = [
    Door("web-case-file", _web_upload("/cases/{d.case_id}", "/cases/{d.case_id}/files"), False, "case"),
    Door(
        "web-payment-receipt",
        _web_upload("/payments/{d.payment_id}", "/payments/{d.payment_id}/receipts"),
        False,
        "payment",
    ),
    Door("api-payment-attachment", _api_upload, True, "payment"),
]


def nothing_stored(store: Path) -> None:
    """No row, no upload in the audit trail, no file (not even a temporary one) in the store."""
    db.session.rollback()  # see what the requests committed
    assert db.session.scalar(select(func.count()).select_from(StoredFile)) == 0
    uploads = select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "file.upload")
    assert db.session.scalar(uploads) == 0
    assert disk_files(store) == []


def shown(door: Door, response: requests.Response) -> str:
    """What the user reads of a refusal: the API's error message, or the page's text."""
    if door.api:
        body = response.json()
        assert set(body) == {"error"}, body
        return body["error"]["message"]
    return html.unescape(response.text)


# --- a genuine file goes in through every door (so the checks below could fail) --------------------------------


@pytest.mark.parametrize("door", DOORS, ids=lambda d: d.name)
def test_a_genuine_pdf_is_stored_through_every_door(door, desk, store):
    response = door.send(desk, pdf_bytes(50_000), "hoa-don-vien-phi.pdf")
    assert response.status_code == (201 if door.api else 302), response.text[:500]
    db.session.rollback()
    stored = db.session.scalars(select(StoredFile)).all()
    assert [(f.owner_type, f.owner_id, f.size) for f in stored] == [(door.owner_type, door.owner_id(desk), 50_000)]
    assert [p.name for p in disk_files(store)] == [files.path_of(stored[0]).name]


# --- hostile files: refused with a clear message, nothing stored ----------------------------------------------


@dataclass(frozen=True)
class Attack:
    data: Callable[[], bytes]
    filename: str
    status: int
    code: str
    message: str
    values: tuple[tuple[str, int], ...] = ()


@functools.cache
def archive_bomb() -> bytes:
    """A Word document of 50 KB holding 50 MB of zeros (made once: compressing it takes most of a second)."""
    return office_zip("docx", extra={"word/media/big.bin": b"\0" * (50 * MB)})


FOLDER = "The file name contains a folder path; give only the file's own name."
MISMATCH = "The file's content does not match its type."
ATTACKS = {
    "oversize": Attack(
        lambda: pdf_bytes(LIMIT_MB * MB + 1),
        "hoa-don.pdf",
        413,
        "file_too_large",
        "The file is larger than %(n)d MB.",
        (("n", LIMIT_MB),),
    ),
    "exe-named-pdf": Attack(
        lambda: b"MZ\x90\x00" + secrets.token_bytes(4000), "hoa-don.pdf", 422, "file_type_mismatch", MISMATCH
    ),
    "html-named-png": Attack(
        lambda: b"<html><script>alert(document.cookie)</script></html>", "anh.png", 422, "file_type_mismatch", MISMATCH
    ),
    "pdf-named-docx": Attack(lambda: pdf_bytes(4000), "ke-hoach.docx", 422, "file_type_mismatch", MISMATCH),
    "archive-bomb": Attack(
        archive_bomb,
        "ke-hoach.docx",
        422,
        "archive_bomb",
        "The document would expand to an unreasonable size; it was refused.",
    ),
    "zip-slip": Attack(
        lambda: office_zip("docx", extra={"../../../etc/cron.d/evil": b"* * * * * root sh"}),
        "ke-hoach.docx",
        422,
        "unsafe_archive",
        "The document contains unsafe entries; it was refused.",
    ),
    "traversal-name": Attack(lambda: pdf_bytes(4000), "../../instance/files/evil.pdf", 422, "bad_file_name", FOLDER),
    "absolute-name": Attack(lambda: pdf_bytes(4000), "/etc/cron.d/evil.pdf", 422, "bad_file_name", FOLDER),
    "windows-name": Attack(lambda: pdf_bytes(4000), "C:\\Users\\hoa\\..\\..\\evil.pdf", 422, "bad_file_name", FOLDER),
    "html-type": Attack(
        lambda: b"<html><script>alert(1)</script></html>",
        "trang.html",
        422,
        "file_type_not_allowed",
        "This type of file is not accepted. Accepted: PDF, JPEG, PNG, WebP, Word (.docx), Excel (.xlsx), .odt.",
    ),
}


@pytest.mark.parametrize("attack", ATTACKS.values(), ids=ATTACKS.keys())
@pytest.mark.parametrize("door", DOORS, ids=lambda d: d.name)
def test_a_hostile_upload_is_refused_with_a_clear_message_and_nothing_is_stored(door, attack, desk, store):
    response = door.send(desk, attack.data(), attack.filename)
    assert response.status_code == attack.status, response.text[:1000]
    message = said(attack.message, **dict(attack.values))
    assert message in shown(door, response)
    if door.api:
        assert response.json()["error"]["code"] == attack.code
    nothing_stored(store)


@pytest.mark.parametrize("door", DOORS, ids=lambda d: d.name)
def test_a_request_over_the_request_limit_is_refused_before_it_is_read(door, desk, store):
    response = door.send(desk, pdf_bytes((LIMIT_MB + 2) * MB), "hoa-don.pdf")
    assert response.status_code == 413, response.text[:1000]
    if door.api:
        assert response.json()["error"]["code"] == "payload_too_large"
        assert f"at most {LIMIT_MB} MB" in shown(door, response)
    else:
        assert said("The file is larger than %(n)d MB.", n=LIMIT_MB) in shown(door, response)
    nothing_stored(store)


# --- the disk fails while the attachment is written -------------------------------------------------------------


class FailingFile:
    """A file that takes ``allowed`` bytes, then fails as a full (or broken) disk does."""

    def __init__(self, real, allowed: int, error: OSError) -> None:
        self._real, self._allowed, self._error = real, allowed, error

    def write(self, data: bytes) -> int:
        if self._allowed <= 0:
            raise self._error
        written = self._real.write(data[: self._allowed])
        self._allowed -= written
        if written < len(data):
            raise self._error
        return written

    def __getattr__(self, name):
        return getattr(self._real, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._real.close()


FAILURES = {
    "disk-full": (
        OSError(errno.ENOSPC, "No space left on device"),
        "The file could not be saved: the server's storage is full. Tell the administrator.",
    ),
    "write-failed": (
        OSError(errno.EIO, "Input/output error"),
        "The file could not be saved. Try again; if it keeps failing, tell the administrator.",
    ),
}


@pytest.mark.parametrize("failure", FAILURES.values(), ids=FAILURES.keys())
@pytest.mark.parametrize("door", DOORS, ids=lambda d: d.name)
def test_a_disk_that_fails_mid_write_gives_a_clear_error_and_leaves_nothing(door, failure, desk, store, monkeypatch):
    error, msgid = failure
    real_create = files._create_exclusive
    partial: list[Path] = []

    def create_then_fail(path: Path):
        partial.append(path)
        return FailingFile(real_create(path), 200_000, error)  # three chunks reach the disk, then it fails

    monkeypatch.setattr(files, "_create_exclusive", create_then_fail)
    response = door.send(desk, pdf_bytes(600_000), "bien-ban.pdf")
    assert response.status_code == 503, response.text[:1000]
    assert said(msgid) in shown(door, response)
    if door.api:
        assert response.json()["error"]["code"] == "storage_failed"
    assert len(partial) == 1 and partial[0].name.startswith(files.TEMP_PREFIX)
    assert not partial[0].exists()  # the temporary file was written to, then removed
    nothing_stored(store)
