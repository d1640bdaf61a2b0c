"""The encrypted file store: attachments (receipts, assessment forms, photos) encrypted before they touch the disk.

**On disk.** Each file lives at ``<instance>/files/<first 2 hex of id>/<id>.<first 16 hex of sha256>.cwf``::

    header  = b"CWF1" | key id (8 ASCII) | nonce prefix (8 random bytes) | chunk size (u32, big-endian)
    chunk i = AES-256-GCM(plaintext[i * size : (i + 1) * size])   # ciphertext and its 16-byte tag
              nonce = nonce prefix | i (u32, big-endian)
              associated data = header | file id (16 bytes) | i (u32) | 1 if this is the last chunk else 0

The key is derived (HKDF) for this file alone from a data key: ``casework/file/<id>``. A chunk altered, dropped,
reordered or copied from another file fails authentication; a file cut at a chunk boundary fails too, because its
new last chunk was not sealed as the last. Files are written and read a chunk (64 KiB) at a time, so a large file
never sits whole in memory. The row keeps the SHA-256 of the *ciphertext*, checked before a download begins, so
damage is reported before the first byte is sent; it says nothing about the content.

**Why the digest is in the name.** A file is replaced only by a new file under a new name (re-encryption under a
new key), never rewritten in place. The row names the file it belongs to, so a rolled-back transaction leaves the
row pointing at the old file, still there, and two re-encryptions running at once cannot leave the row naming one
file while the disk holds the other.

**Transactions.** A file is written to ``.tmp-<id>.<random>`` in its folder, flushed and fsynced, checked, then
renamed into place, and the folder fsynced; any failure removes the temporary file. The row is added only once the
file is in place. Files written in a transaction that rolls back (or ends without committing) are removed; files of
rows deleted in a transaction are unlinked only after it commits. A crash between the rename and the commit leaves
a complete file no row names: :func:`sweep_orphans` removes those, and temporary files, once they are old.

**Uploads.** The name is reduced to nothing but a name: one with a folder (``a/b.pdf``, ``../../etc/passwd.pdf``),
a control or bidirectional-formatting character is refused, not silently changed, so the user sees why. Its
extension must be on the allow-list (:mod:`casework.security.sniff`) and agree with the content's first bytes;
ZIP-based documents are identified and checked for bombs and unsafe entries after they have been written
(encrypted) to the temporary file, read back through the decryption. The size limit (``CASEWORK_MAX_UPLOAD_MB``)
is counted on the bytes actually read, never taken from a header. :class:`UploadRequest` keeps Werkzeug from
spooling an upload to a plaintext temporary file first. File names and contents are never logged.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import re
import secrets
import struct
import unicodedata
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from hashlib import sha256
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import Request, current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, Uuid, event, func, select
from sqlalchemy.orm import Mapped, Session, SessionTransaction, mapped_column

from casework import audit
from casework.dbtypes import UTCDateTime, utcnow, uuid_pk
from casework.errors import DomainError, NotFound
from casework.extensions import db
from casework.security import sniff
from casework.security.fields import Encrypted
from casework.security.keys import KEY_ID_LENGTH, hkdf, keyring

logger = logging.getLogger(__name__)

MAGIC = b"CWF1"
HEADER = struct.Struct(">4s8s8sI")
CHUNK_SIZE = 64 * 1024
TAG_BYTES = 16
_MAX_CHUNK_SIZE = 16 * 1024 * 1024  # a header naming more is damaged, not a reason to allocate it
SUFFIX = ".cwf"
TEMP_PREFIX = ".tmp-"
MAX_NAME_LENGTH = 255
#: A ZIP-based document may expand to this many times the upload limit (checked with the compression ratio).
ARCHIVE_EXPANSION = 10
_NAME_RE = re.compile(r"^([0-9a-f-]{36})\.([0-9a-f]{16})\.cwf$")
# Control characters, bidirectional and other invisible formatting (U+202E can make "gpj.exe" read "exe.jpg"),
# surrogates, line and paragraph separators.
_REFUSED_CATEGORIES = {"Cc", "Cf", "Cs", "Zl", "Zp"}


# --- errors ------------------------------------------------------------------------------------------------------


class UploadRefused(DomainError):
    """An upload was refused because of what was sent; nothing was stored."""

    code = "upload_refused"
    status = 422


class BadFileName(UploadRefused):
    code = "bad_file_name"


class FileTypeNotAllowed(UploadRefused):
    code = "file_type_not_allowed"


class FileTypeMismatch(UploadRefused):
    code = "file_type_mismatch"


class FileTooLarge(UploadRefused):
    code = "file_too_large"
    status = 413


class ArchiveBomb(UploadRefused):
    code = "archive_bomb"


class UnsafeArchive(UploadRefused):
    code = "unsafe_archive"


class StorageError(DomainError):
    """The server could not write or read a file; the user can do nothing about it but retry or report it.

    ``detail`` says what happened, for the log and the administrator; it never names the file or its content.
    """

    code = "storage_failed"
    status = 503

    def __init__(self, message, *, detail: str = "", code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.detail = detail


class FileDamaged(StorageError):
    """A stored file is missing, altered, truncated or not the file its row names."""

    code = "file_damaged"
    status = 500


def _damaged(file_id, detail: str, *, code: str | None = None) -> FileDamaged:
    logger.error("stored file %s cannot be read: %s", file_id, detail)
    return FileDamaged(
        _l("The stored file is damaged and cannot be opened. Tell the administrator."), detail=detail, code=code
    )


def _storage_failed(exc: OSError, file_id, *, reading: bool = False) -> StorageError:
    name = errno.errorcode.get(exc.errno or 0, exc.__class__.__name__)
    logger.error("stored file %s could not be %s: %s", file_id, "read" if reading else "written", name)
    if reading:
        message = _l("The file could not be read. Try again; if it keeps failing, tell the administrator.")
    elif exc.errno in (errno.ENOSPC, errno.EDQUOT):
        message = _l("The file could not be saved: the server's storage is full. Tell the administrator.")
    else:
        message = _l("The file could not be saved. Try again; if it keeps failing, tell the administrator.")
    return StorageError(message, detail=name)


# --- the model ---------------------------------------------------------------------------------------------------


class StoredFile(db.Model):
    """A file in the store: its encrypted name, detected type and size, and where its ciphertext is."""

    __tablename__ = "stored_files"
    __table_args__ = (
        CheckConstraint("size >= 0", name="size_not_negative"),
        CheckConstraint("(owner_type IS NULL) = (owner_id IS NULL)", name="owner_complete"),
        Index("ix_stored_files_owner", "owner_type", "owner_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    # The name a worker gave the file can identify a child ("Biên bản - Nguyễn Văn A.pdf").
    original_name = Encrypted()
    content_type: Mapped[str] = mapped_column(String(100))  # detected from the content, never taken from the client
    size: Mapped[int] = mapped_column(BigInteger)  # bytes of plaintext
    key_id: Mapped[str] = mapped_column(String(KEY_ID_LENGTH), ForeignKey("data_keys.id"), index=True)
    sha256: Mapped[str] = mapped_column(String(64))  # of the ciphertext file
    owner_type: Mapped[str | None] = mapped_column(String(32))
    owner_id: Mapped[str | None] = mapped_column(String(64))
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def __repr__(self) -> str:
        return f"<StoredFile {self.id} {self.content_type} {self.size}>"


# --- where files are ---------------------------------------------------------------------------------------------


def store_root() -> Path:
    """The folder of the store: ``<instance>/files``."""
    return Path(current_app.config["CASEWORK_INSTANCE"]) / "files"


def _file_path(root: Path, file_id: uuid.UUID, digest: str) -> Path:
    return root / file_id.hex[:2] / f"{file_id}.{digest[:16]}{SUFFIX}"


def path_of(stored: StoredFile) -> Path:
    """Where the ciphertext of ``stored`` is."""
    return _file_path(store_root(), stored.id, stored.sha256)


def max_upload_bytes() -> int:
    return int(current_app.config["CASEWORK_MAX_UPLOAD_MB"]) * 1024 * 1024


def _file_key(key_id: str, file_id: uuid.UUID) -> bytes:
    # Derived afresh, not through Keyring.derived(): its cache keeps every key it derives, one per file ever read.
    return hkdf(keyring().data_key(key_id), f"casework/file/{file_id}")


# --- the format --------------------------------------------------------------------------------------------------


def _aad(header: bytes, file_id: uuid.UUID, index: int, final: bool) -> bytes:
    return header + file_id.bytes + struct.pack(">IB", index, final)


class _Sealer:
    """Encrypts a stream of plaintext into the chunked format, hashing what it writes."""

    def __init__(self, out: BinaryIO, key: bytes, file_id: uuid.UUID, key_id: str) -> None:
        self._out = out
        self._aead = AESGCM(key)
        self._file_id = file_id
        self._prefix = secrets.token_bytes(8)
        self._hash = sha256()
        self._buffer = bytearray()
        self._index = 0
        self.size = 0
        self.header = HEADER.pack(MAGIC, key_id.encode("ascii"), self._prefix, CHUNK_SIZE)
        self._emit(self.header)

    def write(self, data: bytes) -> None:
        self._buffer += data
        self.size += len(data)
        # Keep the last chunk back until finish(): only then is it known to be the last.
        while len(self._buffer) > CHUNK_SIZE:
            self._seal(bytes(self._buffer[:CHUNK_SIZE]), final=False)
            del self._buffer[:CHUNK_SIZE]

    def finish(self) -> str:
        """Seal the last chunk (empty for an empty file) and return the SHA-256 of everything written."""
        self._seal(bytes(self._buffer), final=True)
        self._buffer.clear()
        return self._hash.hexdigest()

    def _seal(self, plaintext: bytes, *, final: bool) -> None:
        nonce = self._prefix + struct.pack(">I", self._index)
        self._emit(self._aead.encrypt(nonce, plaintext, _aad(self.header, self._file_id, self._index, final)))
        self._index += 1

    def _emit(self, data: bytes) -> None:
        self._out.write(data)
        self._hash.update(data)


class _Opener:
    """Decrypts the chunks of one stored file, in any order; it owns the open file."""

    def __init__(self, fh: BinaryIO, file_id: uuid.UUID, expected_key_id: str, key: bytes | None = None) -> None:
        self._fh = fh
        self.file_id = file_id
        total = os.fstat(fh.fileno()).st_size
        fh.seek(0)
        header = fh.read(HEADER.size)
        if len(header) < HEADER.size:
            raise _damaged(file_id, "the header is truncated")
        magic, raw_kid, prefix, chunk_size = HEADER.unpack(header)
        if magic != MAGIC:
            raise _damaged(file_id, "not a casework file (wrong magic bytes)")
        if raw_kid != expected_key_id.encode("ascii"):
            raise _damaged(file_id, "the header names another key than the row")
        if not 1024 <= chunk_size <= _MAX_CHUNK_SIZE:
            raise _damaged(file_id, "the header names an impossible chunk size")
        record = chunk_size + TAG_BYTES
        body = total - HEADER.size
        if body < TAG_BYTES:
            raise _damaged(file_id, "truncated: there is no final chunk")
        self.count = -(-body // record)
        self._last_record = body - (self.count - 1) * record
        if self._last_record < TAG_BYTES:
            raise _damaged(file_id, f"truncated inside chunk {self.count - 1}")
        self.header = header
        self.chunk_size = chunk_size
        self.size = (self.count - 1) * chunk_size + self._last_record - TAG_BYTES
        self._record = record
        self._prefix = prefix
        self._aead = AESGCM(key if key is not None else _file_key(expected_key_id, file_id))

    def chunk(self, index: int) -> bytes:
        final = index == self.count - 1
        try:
            self._fh.seek(HEADER.size + index * self._record)
            sealed = self._fh.read(self._last_record if final else self._record)
        except OSError as exc:
            raise _storage_failed(exc, self.file_id, reading=True) from exc
        nonce = self._prefix + struct.pack(">I", index)
        try:
            return self._aead.decrypt(nonce, sealed, _aad(self.header, self.file_id, index, final))
        except InvalidTag:
            raise _damaged(
                self.file_id,
                f"chunk {index} of {self.count} failed authentication: altered, truncated, reordered or moved "
                "from another file",
            ) from None

    def close(self) -> None:
        self._fh.close()


class FileStream:
    """The plaintext of a stored file, decrypted one chunk per iteration.

    It needs no application context once open, so a view can return it as a streamed response; WSGI servers call
    :meth:`close`, which releases the file even if the response was never iterated.

    :raises FileDamaged: from iteration, if a chunk fails authentication (the digest was checked at opening, so
        only damage done since then can show up here).
    """

    def __init__(self, opener: _Opener) -> None:
        self._opener: _Opener | None = opener
        self._next = 0
        self.size = opener.size

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        opener = self._opener
        if opener is None or self._next >= opener.count:
            self.close()
            raise StopIteration
        try:
            data = opener.chunk(self._next)
        except BaseException:
            self.close()
            raise
        self._next += 1
        return data

    def close(self) -> None:
        if self._opener is not None:
            self._opener.close()
            self._opener = None

    def __enter__(self) -> FileStream:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


class _PlainReader(io.RawIOBase):
    """A seekable, read-only view of a file's plaintext, for :func:`zipfile.ZipFile` (one chunk in memory)."""

    def __init__(self, opener: _Opener) -> None:
        super().__init__()
        self._opener = opener
        self._pos = 0
        self._cached: tuple[int, bytes] | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._opener.size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view) and self._pos < self._opener.size:
            index, offset = divmod(self._pos, self._opener.chunk_size)
            if self._cached is None or self._cached[0] != index:
                self._cached = (index, self._opener.chunk(index))
            data = self._cached[1]
            n = min(len(view) - filled, len(data) - offset)
            view[filled : filled + n] = data[offset : offset + n]
            filled += n
            self._pos += n
        return filled


# --- transactions: files follow the rows that name them -----------------------------------------------------------

_PENDING = "casework.files.pending"
_WRITTEN = "written"  # remove unless the transaction commits
_UNLINK = "unlink"  # remove once the transaction commits


@dataclass
class _Pending:
    path: Path
    transaction: SessionTransaction
    action: str


def _track(path: Path, action: str) -> None:
    session = db.session()
    transaction = session.get_nested_transaction() or session.get_transaction() or session.begin()
    session.info.setdefault(_PENDING, []).append(_Pending(path, transaction, action))


def _within(transaction: SessionTransaction | None, ancestor: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ancestor:
            return True
        transaction = transaction.parent
    return False


@event.listens_for(Session, "after_commit")
def _files_after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint released: its files now stand or fall with the enclosing transaction
    for item in session.info.pop(_PENDING, None) or ():
        if item.action == _UNLINK:
            _discard(item.path)


@event.listens_for(Session, "after_soft_rollback")
def _files_after_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    pending = session.info.get(_PENDING)
    if not pending:
        return
    kept = []
    for item in pending:
        if _within(item.transaction, previous_transaction):
            if item.action == _WRITTEN:
                _discard(item.path)
        else:
            kept.append(item)
    session.info[_PENDING] = kept


@event.listens_for(Session, "after_transaction_end")
def _files_after_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is not None:
        return
    # The outermost transaction ended without a commit (a commit has already taken the list): a session closed
    # with work pending, e.g. after an exception nobody rolled back.
    for item in session.info.pop(_PENDING, None) or ():
        if item.action == _WRITTEN:
            _discard(item.path)


def _discard(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        logger.warning("could not remove %s from the file store: %s", path.name, exc.__class__.__name__)


# --- writing -----------------------------------------------------------------------------------------------------


def _create_exclusive(path: Path) -> BinaryIO:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    return os.fdopen(fd, "wb")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_dirs(directory: Path) -> None:
    root = directory.parent
    for folder in (root, directory):
        if not folder.is_dir():
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            _fsync_dir(folder.parent)


def _store(
    file_id: uuid.UUID,
    key_id: str,
    fill: Callable[[_Sealer], None],
    check: Callable[[Path, bytes], None] | None = None,
) -> tuple[Path, str, int]:
    """Encrypt what ``fill`` writes into a new file, ``check`` it, and move it into place.

    :return: the file's path, the SHA-256 of its ciphertext and the plaintext size.
    :raises StorageError: the disk refused (full, read-only, ...); no file is left behind.
    """
    root = store_root()
    directory = root / file_id.hex[:2]
    temp = directory / f"{TEMP_PREFIX}{file_id}.{secrets.token_hex(4)}"
    final: Path | None = None
    try:
        _make_dirs(directory)
        key = _file_key(key_id, file_id)
        with _create_exclusive(temp) as out:
            sealer = _Sealer(out, key, file_id, key_id)
            fill(sealer)
            digest = sealer.finish()
            out.flush()
            os.fsync(out.fileno())
        if check is not None:
            check(temp, key)
        final = _file_path(root, file_id, digest)
        os.replace(temp, final)
        _fsync_dir(directory)
    except OSError as exc:
        _discard(temp)
        if final is not None:
            _discard(final)
        raise _storage_failed(exc, file_id) from exc
    except BaseException:
        _discard(temp)
        if final is not None:
            _discard(final)
        raise
    return final, digest, sealer.size


def clean_file_name(name: str | None) -> str:
    """The name as given, if it is nothing but a file name.

    Refused rather than repaired, so that the user learns why: a path (``/`` or ``\\``, a drive letter, ``..``),
    a control or invisible formatting character, an empty or overlong name.

    :raises BadFileName:
    """
    if not isinstance(name, str):
        raise BadFileName(_l("The file has no name."), field="file")
    cleaned = unicodedata.normalize("NFC", name).strip()
    problem = None
    if not cleaned or cleaned in {".", ".."}:
        problem = _l("The file has no name.")
    elif "/" in cleaned or "\\" in cleaned or re.match(r"^[A-Za-z]:", cleaned):
        problem = _l("The file name contains a folder path; give only the file's own name.")
    elif any(unicodedata.category(ch) in _REFUSED_CATEGORIES for ch in cleaned):
        problem = _l("The file name contains invisible or control characters; rename the file and try again.")
    elif len(cleaned) > MAX_NAME_LENGTH:
        problem = _l("The file name is longer than %(n)d characters.", n=MAX_NAME_LENGTH)
    if problem is not None:
        raise BadFileName(problem, field="file")
    return cleaned


def _read_head(stream: BinaryIO, size: int) -> bytes:
    head = b""
    while len(head) < size:
        block = stream.read(size - len(head))
        if not block:
            break
        head += block
    return head


def _not_allowed() -> FileTypeNotAllowed:
    return FileTypeNotAllowed(
        _l("This type of file is not accepted. Accepted: PDF, JPEG, PNG, WebP, Word (.docx), Excel (.xlsx), .odt."),
        field="file",
    )


def _mismatch() -> FileTypeMismatch:
    return FileTypeMismatch(_l("The file's content does not match its type."), field="file")


def _refusal(exc: sniff.ContentRefused) -> UploadRefused:
    logger.info("upload refused: %s (%s)", exc.reason, exc.detail)
    if exc.reason == "archive_bomb":
        return ArchiveBomb(_l("The document would expand to an unreasonable size; it was refused."), field="file")
    if exc.reason == "unsafe_archive":
        return UnsafeArchive(_l("The document contains unsafe entries; it was refused."), field="file")
    return _mismatch()


def save_upload(
    stream: BinaryIO,
    filename: str | None,
    *,
    actor,
    owner_type: str | None = None,
    owner_id: uuid.UUID | str | None = None,
) -> StoredFile:
    """Check, encrypt and store an upload, and add its row (flushed, not committed).

    :param stream: anything with ``read(n)``: a Werkzeug ``FileStorage``, its ``.stream``, an open file.
    :param filename: the name the client gave; it is stored encrypted.
    :raises UploadRefused: ``bad_file_name``, ``file_type_not_allowed``, ``file_type_mismatch``,
        ``file_too_large`` (413), ``archive_bomb`` or ``unsafe_archive``; nothing was stored.
    :raises StorageError: ``storage_failed``: the disk refused; nothing was stored.
    """
    name = clean_file_name(filename)
    declared = sniff.BY_EXTENSION.get(sniff.extension(name))
    if declared is None:
        raise _not_allowed()
    if (owner_type is None) != (owner_id is None):
        raise ValueError("owner_type and owner_id are given together or not at all")
    limit = max_upload_bytes()
    head = _read_head(stream, sniff.HEAD_BYTES)
    if not head:
        raise FileTypeMismatch(_l("The file is empty."), field="file")
    if declared not in sniff.candidates(head):
        logger.info("upload refused: content does not match the declared %s", declared.code)
        raise _mismatch()

    def fill(sealer: _Sealer) -> None:
        block = head
        while block:
            if sealer.size + len(block) > limit:
                logger.info("upload refused: larger than %d bytes", limit)
                raise FileTooLarge(_l("The file is larger than %(n)d MB.", n=limit // (1024 * 1024)), field="file")
            sealer.write(block)
            block = stream.read(CHUNK_SIZE)

    def check_archive(temp: Path, key: bytes) -> None:
        with open(temp, "rb") as fh:
            reader = _PlainReader(_Opener(fh, file_id, key_id, key))
            try:
                found = sniff.inspect_archive(reader, max_total=limit * ARCHIVE_EXPANSION)
            except sniff.ContentRefused as exc:
                raise _refusal(exc) from None
        if found is not declared:
            logger.info("upload refused: a %s named as %s", found.code, declared.code)
            raise _mismatch()

    file_id = uuid.uuid4()
    key_id = keyring().current_key_id()
    path, digest, size = _store(file_id, key_id, fill, check_archive if declared.archive else None)
    _track(path, _WRITTEN)
    stored = StoredFile(
        id=file_id,
        content_type=declared.content_type,
        size=size,
        key_id=key_id,
        sha256=digest,
        owner_type=owner_type,
        owner_id=None if owner_id is None else str(owner_id),
        created_by_id=getattr(actor, "id", None),
    )
    stored.original_name = name
    try:
        db.session.add(stored)
        db.session.flush()
    except BaseException:
        _discard(path)  # no row will name it
        raise
    audit.record(
        "file.upload",
        object_type="file",
        object_id=file_id,
        details={"content_type": declared.content_type, "size": size},
        actor=actor,
    )
    logger.info("stored file %s (%s, %d bytes)", file_id, declared.code, size)
    return stored


def save_generated(
    data: bytes,
    filename: str,
    content_type: str,
    *,
    actor,
    owner_type: str,
    owner_id: uuid.UUID | str,
) -> StoredFile:
    """Encrypt and store a file the application made itself (an export), and add its row (flushed, not committed).

    Nothing came from outside, so the content is not sniffed against an allow-list as an upload is (a CSV has no
    signature to check); the name is still only a name.

    :raises BadFileName: the name is a path or holds control characters.
    :raises StorageError: ``storage_failed``: the disk refused; nothing was stored.
    """
    name = clean_file_name(filename)

    def fill(sealer: _Sealer) -> None:
        for start in range(0, len(data), CHUNK_SIZE):
            sealer.write(data[start : start + CHUNK_SIZE])

    file_id = uuid.uuid4()
    key_id = keyring().current_key_id()
    path, digest, size = _store(file_id, key_id, fill)
    _track(path, _WRITTEN)
    stored = StoredFile(
        id=file_id,
        content_type=content_type,
        size=size,
        key_id=key_id,
        sha256=digest,
        owner_type=owner_type,
        owner_id=str(owner_id),
        created_by_id=getattr(actor, "id", None),
    )
    stored.original_name = name
    try:
        db.session.add(stored)
        db.session.flush()
    except BaseException:
        _discard(path)  # no row will name it
        raise
    audit.record(
        "file.generate",
        object_type="file",
        object_id=file_id,
        details={"content_type": content_type, "size": size, "owner_type": owner_type},
        actor=actor,
    )
    return stored


class UploadRequest(Request):
    """A request whose uploaded files are parsed into memory, never spooled to a temporary file.

    Werkzeug writes any upload over 500 KB to a temporary file, in plaintext, before a view can see it. Here the
    upload stays in memory (at most ``MAX_CONTENT_LENGTH``, ``CASEWORK_MAX_UPLOAD_MB`` + 1 MB, per request) until
    :func:`save_upload` has encrypted it. Install with ``app.request_class = UploadRequest``.
    """

    def _get_file_stream(self, total_content_length, content_type, filename=None, content_length=None) -> BinaryIO:
        return io.BytesIO()


# --- reading -----------------------------------------------------------------------------------------------------


def _open_verified(stored: StoredFile) -> FileStream:
    """Open a stored file after checking its ciphertext against the row's digest (same descriptor throughout)."""
    try:
        fh = open(path_of(stored), "rb")  # noqa: SIM115 - the FileStream owns and closes it
    except FileNotFoundError:
        raise _damaged(stored.id, "the file is missing from the store", code="file_missing") from None
    except OSError as exc:
        raise _storage_failed(exc, stored.id, reading=True) from exc
    try:
        digest = sha256()
        while block := fh.read(1024 * 1024):
            digest.update(block)
        if digest.hexdigest() != stored.sha256:
            raise _damaged(stored.id, "the ciphertext does not match the digest in its row: altered or truncated")
        return FileStream(_Opener(fh, stored.id, stored.key_id))
    except OSError as exc:
        fh.close()
        raise _storage_failed(exc, stored.id, reading=True) from exc
    except BaseException:
        fh.close()
        raise


def open_stream(stored: StoredFile, *, actor) -> FileStream:
    """Open a stored file for download, recording the download in the audit trail.

    The audit event joins the current transaction: commit before returning the streamed response.
    Serve the plaintext as ``stored.content_type`` with ``Content-Disposition: attachment`` and ``nosniff``.

    :raises NotFound: the file was deleted.
    :raises FileDamaged: ``file_missing`` or ``file_damaged``: the file is not the one its row names.
    """
    if stored.deleted_at is not None:
        raise NotFound(_l("This file has been deleted."))
    stream = _open_verified(stored)
    audit.record("file.download", object_type="file", object_id=stored.id, actor=actor)
    return stream


# --- deleting, re-encrypting, housekeeping -------------------------------------------------------------------------


def delete_file(stored: StoredFile, *, actor) -> None:
    """Mark a file deleted; its ciphertext is unlinked once the transaction commits."""
    if stored.deleted_at is not None:
        return
    stored.deleted_at = utcnow()
    _track(path_of(stored), _UNLINK)
    audit.record("file.delete", object_type="file", object_id=stored.id, actor=actor)
    db.session.flush()


def reencrypt_file(stored: StoredFile) -> bool:
    """Re-encrypt a file under the current data key, as a new file; say whether anything changed.

    The old file is unlinked once the transaction commits; a rollback removes the new one instead. The file's name
    is an ordinary encrypted field, re-sealed with the other fields (:mod:`casework.security.rotation`).

    :raises FileDamaged: the file cannot be read, so cannot be re-encrypted.
    """
    if stored.deleted_at is not None:
        return False
    key_id = keyring().current_key_id()
    if stored.key_id == key_id:
        return False
    old_path = path_of(stored)
    with _open_verified(stored) as plaintext:

        def fill(sealer: _Sealer) -> None:
            for chunk in plaintext:
                sealer.write(chunk)

        path, digest, size = _store(stored.id, key_id, fill)
    _track(path, _WRITTEN)
    _track(old_path, _UNLINK)
    stored.key_id = key_id
    stored.sha256 = digest
    db.session.flush()
    logger.info("re-encrypted stored file %s under key %s", stored.id, key_id)
    return True


def count_by_key() -> dict[str, int]:
    """How many files (not deleted) each data key protects, for ``casework keys status``."""
    rows = db.session.execute(
        select(StoredFile.key_id, func.count()).where(StoredFile.deleted_at.is_(None)).group_by(StoredFile.key_id)
    ).tuples()
    return dict(rows.all())


def sweep_orphans(min_age: timedelta = timedelta(hours=1)) -> int:
    """Remove temporary files and files no live row names, older than ``min_age``; return how many.

    They are what a crash leaves (killed during a write, or between the rename and the commit). ``min_age`` spares
    files whose transaction may still be open.
    """
    root = store_root()
    if not root.is_dir():
        return 0
    cutoff = (utcnow() - min_age).timestamp()
    removed = 0
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        candidates: dict[uuid.UUID, list[tuple[Path, str]]] = {}
        for path in folder.iterdir():
            if not path.is_file() or path.stat().st_mtime > cutoff:
                continue
            if path.name.startswith(TEMP_PREFIX):
                _discard(path)
                removed += 1
                continue
            match = _NAME_RE.match(path.name)
            if match:
                candidates.setdefault(uuid.UUID(match.group(1)), []).append((path, match.group(2)))
        if not candidates:
            continue
        live = {
            (row_id, digest[:16])
            for row_id, digest in db.session.execute(
                select(StoredFile.id, StoredFile.sha256).where(
                    StoredFile.id.in_(candidates), StoredFile.deleted_at.is_(None)
                )
            ).all()
        }
        for file_id, paths in candidates.items():
            for path, prefix in paths:
                if (file_id, prefix) not in live:
                    _discard(path)
                    removed += 1
    if removed:
        logger.info("removed %d orphaned files from the store", removed)
    return removed
