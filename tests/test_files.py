"""The encrypted file store: round trips, nothing readable on disk, damage detected, uploads refused with nothing
stored, failed writes and rolled-back transactions leaving no file behind, downloads audited, re-encryption."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import secrets
import time
import uuid
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from werkzeug.datastructures import FileStorage
from werkzeug.test import EnvironBuilder

from casework.errors import NotFound
from casework.extensions import db
from casework.security import files, sniff
from casework.security.files import StoredFile
from casework.security.keys import DataKey, create_data_key, keyring

CHUNK = files.CHUNK_SIZE
RECORD = CHUNK + files.TAG_BYTES
MARKER = b"NGUYEN-THI-HA-SECRET-MARKER"
PNG_HEAD = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


# --- helpers and fixtures --------------------------------------------------------------------------------------


def pdf_bytes(size: int, marker: bytes = MARKER) -> bytes:
    """PDF-looking bytes of ``size``: the header, then random bytes with a marker repeated through them."""
    body = bytearray(b"%PDF-1.7\n")
    while len(body) < size:
        body += secrets.token_bytes(1000) + marker
    return bytes(body[:size])


def png_bytes(size: int = 2000) -> bytes:
    return PNG_HEAD + secrets.token_bytes(size - len(PNG_HEAD))


def office_zip(kind: str = "docx", *, extra: dict[str, bytes] | None = None) -> bytes:
    """A minimal DOCX, XLSX or ODT: enough for detection by content."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        if kind == "odt":
            archive.writestr(
                zipfile.ZipInfo("mimetype"), b"application/vnd.oasis.opendocument.text", zipfile.ZIP_STORED
            )
            archive.writestr("META-INF/manifest.xml", b"<manifest/>")
            archive.writestr("content.xml", b"<office:document-content/>")
        else:
            part = {"docx": "wordprocessingml.document", "xlsx": "spreadsheetml.sheet"}[kind]
            main = f"application/vnd.openxmlformats-officedocument.{part}.main+xml"
            archive.writestr(
                "[Content_Types].xml",
                f'<Types><Override PartName="/main.xml" ContentType="{main}"/></Types>'.encode(),
            )
            archive.writestr("word/document.xml" if kind == "docx" else "xl/workbook.xml", b"<doc>" * 200)
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return buffer.getvalue()


def disk_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def row_count() -> int:
    return db.session.scalar(select(func.count()).select_from(StoredFile))


def read_all(stored: StoredFile, actor=None) -> bytes:
    return b"".join(files.open_stream(stored, actor=actor))


@pytest.fixture
def store(app, monkeypatch, tmp_path) -> Path:
    """A file store of the test's own, under a fresh instance folder."""
    monkeypatch.setitem(app.config, "CASEWORK_INSTANCE", str(tmp_path))
    return tmp_path / "files"


@pytest.fixture
def audit_events(monkeypatch) -> list[tuple[str, dict]]:
    """Audit calls, captured (the audit trail is built separately; its API is what the store relies on)."""
    events: list[tuple[str, dict]] = []
    monkeypatch.setattr("casework.audit.record", lambda action, **kwargs: events.append((action, kwargs)))
    return events


@pytest.fixture
def worker(make_user):
    return make_user("social_worker")


@pytest.fixture
def upload(store, worker):
    """``upload(data, name)`` stores bytes through :func:`files.save_upload` and commits."""

    def save(data: bytes, name: str = "bien-ban.pdf", **kwargs) -> StoredFile:
        stored = files.save_upload(io.BytesIO(data), name, actor=worker, **kwargs)
        db.session.commit()
        return stored

    return save


def refused(store: Path, data: bytes, name: str, worker) -> files.UploadRefused:
    """Upload, expect a refusal, and check that nothing was stored: no file, no temporary file, no row."""
    with pytest.raises(files.UploadRefused) as caught:
        files.save_upload(io.BytesIO(data), name, actor=worker)
    db.session.rollback()
    assert disk_files(store) == []
    assert row_count() == 0
    return caught.value


# --- round trips ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [9, CHUNK - 1, CHUNK, 2 * CHUNK, 2 * CHUNK + 1, 300_000])
def test_a_file_reads_back_exactly_as_it_was_uploaded(upload, size):
    data = pdf_bytes(size)
    stored = upload(data)
    db.session.expire_all()
    assert stored.content_type == "application/pdf"
    assert stored.size == size
    assert stored.key_id == keyring().current_key_id()
    stream = files.open_stream(stored, actor=None)
    assert stream.size == size
    assert b"".join(stream) == data


def test_a_multi_chunk_file_is_stored_in_chunks_and_read_as_a_stream(upload, store):
    data = pdf_bytes(300_000)
    stored = upload(data)
    path = files.path_of(stored)
    assert path.parent.parent == store and path.parent.name == stored.id.hex[:2]
    expected_chunks = -(-len(data) // CHUNK)
    assert path.stat().st_size == files.HEADER.size + len(data) + expected_chunks * files.TAG_BYTES
    chunks = list(files.open_stream(stored, actor=None))
    assert len(chunks) == expected_chunks and all(len(c) <= CHUNK for c in chunks)


def test_the_disk_holds_neither_the_content_nor_the_name(upload, store):
    stored = upload(pdf_bytes(300_000), "Biên bản NGUYEN-THI-HA-SECRET-MARKER.pdf")
    on_disk = b"".join(p.read_bytes() for p in disk_files(store))
    assert MARKER not in on_disk
    assert b"%PDF" not in on_disk
    assert stored.original_name.encode() not in on_disk
    assert oct(files.path_of(stored).stat().st_mode & 0o777) == oct(0o600)


def test_the_original_name_is_stored_encrypted(upload):
    name = "Phiếu đánh giá - Nguyễn Thị Hà.pdf"
    stored = upload(pdf_bytes(5000), name)
    rows = db.session.execute(text("SELECT * FROM stored_files")).all()
    dumped = repr(rows)
    assert "Nguy" not in dumped and "Phi" not in dumped
    assert db.session.execute(text("SELECT original_name_ct FROM stored_files")).scalar().startswith("v1:")
    db.session.expire_all()
    assert db.session.get(StoredFile, stored.id).original_name == name


def test_office_documents_and_images_are_recognised_by_content(upload):
    for data, name, content_type in [
        (
            office_zip("docx"),
            "ke-hoach.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
        (office_zip("xlsx"), "chi-tra.XLSX", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        (office_zip("odt"), "bien-ban.odt", "application/vnd.oasis.opendocument.text"),
        (png_bytes(), "anh.png", "image/png"),
        (b"\xff\xd8\xff\xe0" + secrets.token_bytes(3000), "anh.jpeg", "image/jpeg"),
        (b"RIFF\x00\x10\x00\x00WEBPVP8 " + secrets.token_bytes(3000), "anh.webp", "image/webp"),
    ]:
        stored = upload(data, name)
        assert stored.content_type == content_type
        assert read_all(stored) == data


def test_a_werkzeug_upload_is_accepted_as_it_comes_from_a_form(store, worker):
    data = pdf_bytes(70_000)
    storage = FileStorage(stream=io.BytesIO(data), filename="hoa-don.pdf", content_type="text/html")
    stored = files.save_upload(storage, storage.filename, actor=worker, owner_type="case", owner_id="c-1")
    db.session.commit()
    assert stored.content_type == "application/pdf"  # the client's claim is ignored
    assert (stored.owner_type, stored.owner_id) == ("case", "c-1")
    assert stored.created_by_id == worker.id
    assert read_all(stored) == data


def test_uploads_are_parsed_in_memory_never_spooled_to_a_temporary_file():
    data = pdf_bytes(600_000)  # Werkzeug spools anything over 500 KB to a temporary file, in plaintext
    environ = EnvironBuilder(method="POST", data={"file": (io.BytesIO(data), "a.pdf")}).get_environ()
    upload = files.UploadRequest(environ).files["file"]
    assert isinstance(upload.stream, io.BytesIO)
    assert upload.read() == data


# --- damage on disk --------------------------------------------------------------------------------------------


def flip_bit(path: Path, data: bytes) -> None:
    raw = bytearray(path.read_bytes())
    raw[files.HEADER.size + RECORD + 100] ^= 0x01  # inside chunk 1
    path.write_bytes(bytes(raw))


def cut_at_chunk_boundary(path: Path, data: bytes) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: files.HEADER.size + 2 * RECORD])  # chunks 0 and 1 of 5: a valid-looking shorter file


def cut_inside_a_chunk(path: Path, data: bytes) -> None:
    path.write_bytes(path.read_bytes()[:-1000])


def swap_chunks(path: Path, data: bytes) -> None:
    raw = path.read_bytes()
    h = files.HEADER.size
    first, second = raw[h : h + RECORD], raw[h + RECORD : h + 2 * RECORD]
    path.write_bytes(raw[:h] + second + first + raw[h + 2 * RECORD :])


def damage_header_key(path: Path, data: bytes) -> None:
    raw = bytearray(path.read_bytes())
    raw[4:12] = b"00000000"
    path.write_bytes(bytes(raw))


DAMAGE = [flip_bit, cut_at_chunk_boundary, cut_inside_a_chunk, swap_chunks, damage_header_key]


def forge_digest(stored: StoredFile) -> None:
    """Make the row agree with the damaged file, as someone who can write the database and the disk could."""
    path = files.path_of(stored)
    stored.sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    path.rename(files.path_of(stored))
    db.session.commit()


@pytest.mark.parametrize("damage", DAMAGE, ids=lambda f: f.__name__)
def test_damage_on_disk_is_caught_before_the_download_starts(upload, damage):
    data = pdf_bytes(300_000)
    stored = upload(data)
    damage(files.path_of(stored), data)
    with pytest.raises(files.FileDamaged) as caught:
        files.open_stream(stored, actor=None)
    assert caught.value.code == "file_damaged"
    assert "digest" in caught.value.detail


@pytest.mark.parametrize("damage", DAMAGE, ids=lambda f: f.__name__)
def test_damage_is_caught_by_the_chunks_even_when_the_digest_was_forged(upload, damage):
    data = pdf_bytes(300_000)
    stored = upload(data)
    damage(files.path_of(stored), data)
    forge_digest(stored)
    with pytest.raises(files.FileDamaged) as caught:
        read_all(stored)
    assert caught.value.status == 500
    assert MARKER.decode() not in caught.value.detail


def test_a_chunk_moved_from_another_file_is_refused(upload):
    first, second = upload(pdf_bytes(300_000)), upload(pdf_bytes(300_000))
    a, b = files.path_of(first), files.path_of(second)
    h = files.HEADER.size
    raw_a, raw_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(raw_a[: h + RECORD] + raw_b[h + RECORD : h + 2 * RECORD] + raw_a[h + 2 * RECORD :])
    with pytest.raises(files.FileDamaged):
        files.open_stream(first, actor=None)
    forge_digest(first)
    with pytest.raises(files.FileDamaged, match="bị hỏng") as caught:
        read_all(first)
    assert "chunk 1 " in caught.value.detail
    assert len(read_all(second)) == 300_000  # the other file is untouched


def test_a_missing_file_is_reported_as_missing(upload):
    stored = upload(pdf_bytes(1000))
    files.path_of(stored).unlink()
    with pytest.raises(files.FileDamaged) as caught:
        files.open_stream(stored, actor=None)
    assert caught.value.code == "file_missing"


# --- refused uploads: nothing stored -------------------------------------------------------------------------


def test_an_oversize_file_is_refused_with_413_and_nothing_stored(app, store, worker, monkeypatch):
    monkeypatch.setitem(app.config, "CASEWORK_MAX_UPLOAD_MB", 1)
    error = refused(store, pdf_bytes(1024 * 1024 + 1), "lon.pdf", worker)
    assert isinstance(error, files.FileTooLarge)
    assert (error.code, error.status) == ("file_too_large", 413)
    assert "1 MB" in error.message


def test_a_file_of_exactly_the_limit_is_accepted(app, upload, monkeypatch):
    monkeypatch.setitem(app.config, "CASEWORK_MAX_UPLOAD_MB", 1)
    assert upload(pdf_bytes(1024 * 1024)).size == 1024 * 1024


def test_the_size_is_counted_not_taken_from_the_client(app, store, worker, monkeypatch):
    monkeypatch.setitem(app.config, "CASEWORK_MAX_UPLOAD_MB", 1)
    storage = FileStorage(stream=io.BytesIO(pdf_bytes(2 * 1024 * 1024)), filename="a.pdf", content_length=100)
    with pytest.raises(files.FileTooLarge):
        files.save_upload(storage, "a.pdf", actor=worker)
    assert disk_files(store) == []


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (png_bytes(), "hoa-don.pdf"),  # a PNG named as a PDF
        (pdf_bytes(2000), "anh.png"),
        (b"MZ\x90\x00" + secrets.token_bytes(2000), "hoa-don.pdf"),  # an executable named as a PDF
        (b"<html><script>alert(1)</script></html>", "trang.pdf"),
        (office_zip("docx"), "bang.xlsx"),  # a Word document named as a spreadsheet
        (office_zip("docx", extra={"word/vbaProject.bin": b"macro"}), "ke-hoach.docx"),
        (b"PK\x03\x04" + secrets.token_bytes(3000), "hong.docx"),  # a broken archive
        (b"", "trong.pdf"),
    ],
    ids=["png-as-pdf", "pdf-as-png", "exe-as-pdf", "html-as-pdf", "docx-as-xlsx", "macros", "bad-zip", "empty"],
)
def test_content_that_does_not_match_its_type_is_refused(store, worker, data, name):
    error = refused(store, data, name, worker)
    assert isinstance(error, files.FileTypeMismatch)
    assert (error.code, error.status) == ("file_type_mismatch", 422)


def test_a_plain_zip_named_as_a_document_is_refused(store, worker):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", b"hello")
    assert refused(store, buffer.getvalue(), "tai-lieu.docx", worker).code == "file_type_mismatch"


@pytest.mark.parametrize("name", ["setup.exe", "trang.html", "anh.svg", "ghi-chu.txt", "nen.zip", "khong-duoi", ".pdf"])
def test_types_outside_the_allow_list_are_refused(store, worker, name):
    data = b"MZ" + secrets.token_bytes(500) if name.endswith(".exe") else pdf_bytes(500)
    assert refused(store, data, name, worker).code == "file_type_not_allowed"


BAD_NAMES = {
    "traversal": "../../etc/passwd.pdf",
    "folder": "a/b.pdf",
    "absolute": "/etc/passwd.pdf",
    "backslash": "a\\b.pdf",
    "drive": "C:evil.pdf",
    "nul": "bad\x00.pdf",
    "tab": "tab\t.pdf",
    "bidi": "gpj\u202e.pdf",  # shows as "fdp.jpg"
    "empty": "",
    "blank": "   ",
    "long": "x" * 300 + ".pdf",
    "none": None,
}


@pytest.mark.parametrize("name", BAD_NAMES.values(), ids=BAD_NAMES.keys())
def test_a_name_with_a_path_or_control_characters_is_refused(store, worker, name):
    error = refused(store, pdf_bytes(1000), name, worker)
    assert (error.code, error.field) == ("bad_file_name", "file")


def test_an_archive_bomb_is_refused(store, worker):
    bomb = office_zip("docx", extra={"word/media/big.bin": b"\0" * (20 * 1024 * 1024)})
    assert len(bomb) < 100_000
    error = refused(store, bomb, "ke-hoach.docx", worker)
    assert (error.code, error.status) == ("archive_bomb", 422)


def test_an_archive_expanding_beyond_the_total_is_refused(app, store, worker, monkeypatch):
    monkeypatch.setitem(app.config, "CASEWORK_MAX_UPLOAD_MB", 1)  # archives may expand to 10 MB
    block = secrets.token_bytes(16 * 1024) * 64  # 1 MB, compressing about 60 times: under the ratio limit
    entries = {f"word/media/image{i}.bin": block for i in range(12)}
    assert refused(store, office_zip("docx", extra=entries), "ke-hoach.docx", worker).code == "archive_bomb"


@pytest.mark.parametrize("entry", ["../../evil.sh", "/etc/cron.d/x", "word\\..\\..\\evil", "C:/evil"])
def test_an_archive_with_an_entry_outside_its_folder_is_refused(store, worker, entry):
    data = office_zip("docx", extra={entry: b"#!/bin/sh"})
    assert refused(store, data, "ke-hoach.docx", worker).code == "unsafe_archive"


def patch_central_entry(data: bytes, name: bytes, offset: int, value: int) -> bytes:
    """Overwrite a 4-byte field of ``name``'s central directory record (as a forger would)."""
    record = data.index(b"PK\x01\x02")
    while data[record + 46 : record + 46 + len(name)] != name:
        record = data.index(b"PK\x01\x02", record + 4)
    return data[: record + offset] + value.to_bytes(4, "little") + data[record + offset + 4 :]


def test_an_archive_whose_entries_overlap_is_refused():
    data = patch_central_entry(office_zip("docx"), b"word/document.xml", 42, 0)  # its data: the first entry's
    with pytest.raises(sniff.ContentRefused) as caught:
        sniff.inspect_archive(io.BytesIO(data), max_total=10**8)
    assert caught.value.reason == "archive_bomb"


def test_an_archive_that_lies_about_an_entry_size_is_refused():
    data = patch_central_entry(office_zip("docx"), b"word/document.xml", 24, 10)  # declares 10 bytes
    with pytest.raises(sniff.ContentRefused) as caught:
        sniff.inspect_archive(io.BytesIO(data), max_total=10**8)
    assert caught.value.reason == "unrecognised"


def test_a_genuine_document_passes_the_archive_checks():
    assert sniff.inspect_archive(io.BytesIO(office_zip("xlsx")), max_total=10**8) is sniff.XLSX


# --- failed writes ---------------------------------------------------------------------------------------------


def test_a_full_disk_leaves_no_file_and_no_row_and_says_so(store, worker, monkeypatch):
    real_create = files._create_exclusive

    class FillsUp(io.BufferedWriter):
        written = 0

        def write(self, data):
            if self.written > CHUNK:
                raise OSError(errno.ENOSPC, "No space left on device")
            self.written += len(data)
            return super().write(data)

    def create(path):
        return FillsUp(real_create(path).detach())  # the real file, its writes failing once the disk "fills"

    monkeypatch.setattr(files, "_create_exclusive", create)
    with pytest.raises(files.StorageError) as caught:
        files.save_upload(io.BytesIO(pdf_bytes(300_000)), "a.pdf", actor=worker)
    db.session.rollback()
    assert caught.value.code == "storage_failed"
    assert "bộ nhớ của máy chủ đã đầy" in caught.value.message
    assert disk_files(store) == []
    assert row_count() == 0


@pytest.mark.parametrize("step", ["replace", "fsync"])
def test_a_failed_write_leaves_no_temporary_or_final_file(store, worker, monkeypatch, step):
    if step == "replace":

        def fail(*_args):
            raise OSError(errno.EIO, "Input/output error")

        monkeypatch.setattr(files.os, "replace", fail)
    else:
        real_fsync_dir = files._fsync_dir

        def fail_once_in_place(path):
            if any(p.suffix == ".cwf" for p in Path(path).iterdir()):
                raise OSError(errno.EIO, "Input/output error")
            real_fsync_dir(path)

        monkeypatch.setattr(files, "_fsync_dir", fail_once_in_place)
    with pytest.raises(files.StorageError) as caught:
        files.save_upload(io.BytesIO(pdf_bytes(100_000)), "a.pdf", actor=worker)
    db.session.rollback()
    assert caught.value.code == "storage_failed"
    assert "Không lưu được tệp" in caught.value.message
    assert disk_files(store) == []
    assert row_count() == 0


def test_a_failing_row_insert_removes_the_written_file(store, monkeypatch):
    class Ghost:
        id = uuid.uuid4()  # no such user: the foreign key fails at flush

    with pytest.raises(Exception, match="(?i)foreign key"):
        files.save_upload(io.BytesIO(pdf_bytes(1000)), "a.pdf", actor=Ghost())
    db.session.rollback()
    assert disk_files(store) == []


# --- transactions --------------------------------------------------------------------------------------------


def test_a_rolled_back_transaction_removes_the_file_written_for_it(store, worker):
    stored = files.save_upload(io.BytesIO(pdf_bytes(1000)), "a.pdf", actor=worker)
    path = files.path_of(stored)
    assert path.exists()
    db.session.rollback()
    assert not path.exists()
    assert disk_files(store) == []


def test_a_session_closed_without_commit_removes_the_file(store, worker):
    stored = files.save_upload(io.BytesIO(pdf_bytes(1000)), "a.pdf", actor=worker)
    path = files.path_of(stored)
    db.session.remove()
    assert not path.exists()


def test_a_rolled_back_savepoint_removes_only_its_own_files(store, worker, upload):
    kept = upload(pdf_bytes(1000))
    before = files.save_upload(io.BytesIO(pdf_bytes(1000)), "b.pdf", actor=worker)
    savepoint = db.session.begin_nested()
    inner = files.save_upload(io.BytesIO(pdf_bytes(1000)), "c.pdf", actor=worker)
    inner_path = files.path_of(inner)
    savepoint.rollback()
    assert not inner_path.exists()
    released = db.session.begin_nested()
    later = files.save_upload(io.BytesIO(pdf_bytes(1000)), "d.pdf", actor=worker)
    released.commit()
    db.session.commit()
    assert {p.name for p in disk_files(store)} == {files.path_of(f).name for f in (kept, before, later)}
    assert row_count() == 3


def test_a_deleted_file_is_unlinked_only_after_commit(upload, audit_events, worker):
    stored = upload(pdf_bytes(1000))
    path = files.path_of(stored)
    files.delete_file(stored, actor=worker)
    assert path.exists()
    db.session.rollback()  # the deletion is undone: the file stays
    assert path.exists() and stored.deleted_at is None
    files.delete_file(stored, actor=worker)
    db.session.commit()
    assert not path.exists()
    assert ("file.delete", {"object_type": "file", "object_id": stored.id, "actor": worker}) in audit_events
    with pytest.raises(NotFound):
        files.open_stream(stored, actor=worker)
    assert files.count_by_key() == {}


def test_sweep_removes_old_temporary_and_orphaned_files_only(upload, store):
    live = upload(pdf_bytes(1000))
    folder = files.path_of(live).parent
    temp = folder / f".tmp-{live.id}.abcd1234"
    orphan = folder / f"{uuid.uuid4()}.{'0' * 16}.cwf"
    fresh_orphan = folder / f"{uuid.uuid4()}.{'1' * 16}.cwf"
    for path in (temp, orphan, fresh_orphan):
        path.write_bytes(b"x")
    old = time.time() - 2 * 3600
    for path in (temp, orphan, files.path_of(live)):
        os.utime(path, (old, old))
    assert files.sweep_orphans() == 2
    assert {p.name for p in disk_files(store)} == {files.path_of(live).name, fresh_orphan.name}


# --- audit ---------------------------------------------------------------------------------------------------


def test_uploads_and_downloads_are_audited_without_names(upload, audit_events, worker):
    stored = upload(pdf_bytes(1000), "Nguyễn Thị Hà.pdf")
    assert audit_events == [
        (
            "file.upload",
            {
                "object_type": "file",
                "object_id": stored.id,
                "details": {"content_type": "application/pdf", "size": 1000},
                "actor": worker,
            },
        )
    ]
    read_all(stored, actor=worker)
    assert audit_events[-1] == ("file.download", {"object_type": "file", "object_id": stored.id, "actor": worker})
    assert "Nguy" not in repr(audit_events)


def test_a_damaged_file_is_not_recorded_as_downloaded(upload, audit_events):
    stored = upload(pdf_bytes(1000))
    files.path_of(stored).write_bytes(b"CWF1 nonsense")
    with pytest.raises(files.FileDamaged):
        files.open_stream(stored, actor=None)
    assert [action for action, _ in audit_events] == ["file.upload"]


# --- key rotation --------------------------------------------------------------------------------------------


def test_reencryption_moves_a_file_to_the_current_key_and_it_still_reads(upload, store, worker):
    data = pdf_bytes(300_000)
    stored = upload(data)
    old_key, old_path = stored.key_id, files.path_of(stored)
    ring = keyring()
    new_key = create_data_key(ring).id
    db.session.commit()
    try:
        assert files.count_by_key() == {old_key: 1}
        assert files.reencrypt_file(stored) is True
        new_path = files.path_of(stored)
        assert new_path != old_path and new_path.exists() and old_path.exists()  # the old one until commit
        db.session.commit()
        assert not old_path.exists()
        db.session.expire_all()
        stored = db.session.get(StoredFile, stored.id)
        assert stored.key_id == new_key
        assert new_path.read_bytes()[4:12] == new_key.encode()
        assert read_all(stored) == data
        assert files.count_by_key() == {new_key: 1}
        assert files.reencrypt_file(stored) is False  # running twice changes nothing
    finally:
        _restore_single_key(ring)


def test_a_rolled_back_reencryption_keeps_the_old_file_readable(upload, store):
    data = pdf_bytes(100_000)
    stored = upload(data)
    old_path = files.path_of(stored)
    ring = keyring()
    create_data_key(ring)
    db.session.commit()
    try:
        files.reencrypt_file(stored)
        new_path = files.path_of(stored)
        db.session.rollback()
        assert old_path.exists() and not new_path.exists()
        db.session.expire_all()
        assert read_all(db.session.get(StoredFile, stored.id)) == data
    finally:
        _restore_single_key(ring)


def _restore_single_key(ring) -> None:
    """Leave one current key for the next tests (data keys are kept between tests)."""
    db.session.rollback()
    db.session.execute(text("DELETE FROM stored_files"))
    current = ring.current_key_id()
    for key in db.session.scalars(select(DataKey).where(DataKey.id != current)):
        db.session.delete(key)
    db.session.commit()
    ring.forget()
