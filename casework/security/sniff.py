"""What a file is, judged by its bytes, never by its name.

An upload's first bytes name its family (:func:`candidates`); a ZIP-based document (DOCX, XLSX, ODT) is then
identified from its entries (:func:`inspect_archive`), which also refuses archives that are unsafe to hand on: entry
names that climb out of a folder, links, encrypted or duplicate entries, and archive bombs (too many entries, too
much uncompressed data, an entry compressed beyond any real document, entries that overlap). Nothing is extracted:
each entry is decompressed into memory, a block at a time, only to count its real size and check its CRC.

This module knows no Flask and no database; :mod:`casework.security.files` turns its refusals into domain errors.
"""

from __future__ import annotations

import re
import stat
import zipfile
import zlib
from dataclasses import dataclass
from typing import BinaryIO


@dataclass(frozen=True)
class FileType:
    """An accepted type: its name, the content type it is served with, the extensions a name may carry."""

    code: str
    content_type: str
    extensions: tuple[str, ...]
    archive: bool = False


PDF = FileType("pdf", "application/pdf", ("pdf",))
PNG = FileType("png", "image/png", ("png",))
JPEG = FileType("jpeg", "image/jpeg", ("jpg", "jpeg"))
WEBP = FileType("webp", "image/webp", ("webp",))
DOCX = FileType(
    "docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", ("docx",), archive=True
)
XLSX = FileType("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", ("xlsx",), archive=True)
ODT = FileType("odt", "application/vnd.oasis.opendocument.text", ("odt",), archive=True)

#: The allow-list. Anything else (executables, HTML, SVG, plain text, archives of other kinds) is refused.
ALLOWED: tuple[FileType, ...] = (PDF, PNG, JPEG, WEBP, DOCX, XLSX, ODT)
BY_EXTENSION: dict[str, FileType] = {ext: t for t in ALLOWED for ext in t.extensions}
ARCHIVES: tuple[FileType, ...] = tuple(t for t in ALLOWED if t.archive)

#: How many leading bytes :func:`candidates` looks at.
HEAD_BYTES = 512

# The main part of each Office Open XML document, as named in its [Content_Types].xml. Macro-enabled documents
# (.docm, .xlsm) declare other main parts and are therefore not recognised.
_OOXML_MAIN = {
    DOCX: b"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml",
    XLSX: b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
}
_ODF_MIMETYPE = b"application/vnd.oasis.opendocument.text"
_PDF_RE = re.compile(rb"%PDF-[12]\.\d")

# Archive limits. A real document compresses its XML 5 to 30 times; zeros compress over 1000 times.
MAX_ENTRIES = 5000
MAX_RATIO = 100  # uncompressed / compressed, for an entry above RATIO_FLOOR
RATIO_FLOOR = 1024 * 1024  # small entries may compress well (a blank sheet); they cannot add up to much
_METADATA_LIMIT = 1024 * 1024  # [Content_Types].xml and mimetype are read whole, up to this
_READ_BLOCK = 64 * 1024
_LOCAL_HEADER = 30  # bytes of a ZIP local file header before its name


class ContentRefused(ValueError):
    """The content is refused; ``reason`` is ``unrecognised``, ``unsafe_archive`` or ``archive_bomb``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def extension(name: str) -> str:
    """The lower-case extension of a file name, without the dot ("" when there is none)."""
    stem, dot, ext = name.rpartition(".")
    return ext.lower() if dot and stem else ""


def candidates(head: bytes) -> tuple[FileType, ...]:
    """The accepted types the first bytes of a file allow (empty: none).

    A ZIP could be any of the archive types until :func:`inspect_archive` has looked inside.
    """
    if _PDF_RE.match(head):
        return (PDF,)
    if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
        return (PNG,)
    if head.startswith(b"\xff\xd8\xff"):
        return (JPEG,)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return (WEBP,)
    if head.startswith(b"PK\x03\x04"):
        return ARCHIVES
    return ()


def inspect_archive(fileobj: BinaryIO, *, max_total: int) -> FileType:
    """Identify a ZIP-based document and check that it is safe, without extracting it.

    :param fileobj: the archive, readable and seekable.
    :param max_total: the most uncompressed bytes all entries together may hold.
    :raises ContentRefused: the archive is unreadable or of no accepted type (``unrecognised``), has a dangerous
        entry (``unsafe_archive``), or would expand beyond the limits (``archive_bomb``).
    """
    try:
        with zipfile.ZipFile(fileobj) as archive:
            infos = archive.infolist()
            _check_entries(infos, max_total=max_total)
            kind = _identify(archive, infos)
            _check_real_sizes(archive, infos, max_total=max_total)
            return kind
    except ContentRefused:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, OSError, ValueError) as exc:
        raise ContentRefused("unrecognised", f"unreadable ZIP archive ({exc.__class__.__name__})") from None
    except (zlib.error, RuntimeError, OverflowError) as exc:
        raise ContentRefused("unrecognised", f"unreadable ZIP archive ({exc.__class__.__name__})") from None


def unsafe_entry_name(name: str) -> bool:
    """Say whether an entry name could write outside the folder it is extracted into."""
    if not name or name.startswith(("/", "\\")) or "\\" in name:
        return True
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return True
    parts = name.split("/")
    if ":" in parts[0]:  # a drive letter or a scheme
        return True
    return any(part == ".." for part in parts)


def _check_entries(infos: list[zipfile.ZipInfo], *, max_total: int) -> None:
    if not infos:
        raise ContentRefused("unrecognised", "the archive is empty")
    if len(infos) > MAX_ENTRIES:
        raise ContentRefused("archive_bomb", f"the archive has {len(infos)} entries (at most {MAX_ENTRIES})")
    seen: set[str] = set()
    total = 0
    for info in infos:
        if unsafe_entry_name(info.filename):
            raise ContentRefused("unsafe_archive", "an entry name leaves the archive's folder")
        if info.filename in seen:
            raise ContentRefused("unsafe_archive", "two entries have the same name")
        seen.add(info.filename)
        if stat.S_ISLNK(info.external_attr >> 16):
            raise ContentRefused("unsafe_archive", "an entry is a symbolic link")
        if info.flag_bits & 0x1:
            raise ContentRefused("unsafe_archive", "an entry is encrypted")
        total += info.file_size
        if total > max_total:
            raise ContentRefused("archive_bomb", f"the archive expands beyond {max_total} bytes")
        if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise ContentRefused("archive_bomb", f"an entry is compressed more than {MAX_RATIO} times")
    # Entries whose data overlap let a few compressed bytes stand for many entries (a "better zip bomb").
    ordered = sorted(infos, key=lambda i: i.header_offset)
    for before, after in zip(ordered, ordered[1:], strict=False):
        raw_name = before.orig_filename.encode("utf-8" if before.flag_bits & 0x800 else "cp437")
        end = before.header_offset + _LOCAL_HEADER + len(raw_name) + before.compress_size
        if end > after.header_offset:
            raise ContentRefused("archive_bomb", "entries of the archive overlap")


def _read_small(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    if info.file_size > _METADATA_LIMIT:
        raise ContentRefused("unrecognised", f"{info.filename} is implausibly large")
    with archive.open(info) as entry:
        return entry.read(_METADATA_LIMIT + 1)


def _identify(archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo]) -> FileType:
    names = {info.filename: info for info in infos}
    if any(name.lower().endswith("vbaproject.bin") for name in names):
        raise ContentRefused("unrecognised", "the document carries macros")
    # OpenDocument: the first entry is "mimetype", stored, holding the document's type.
    if infos[0].filename == "mimetype":
        if _read_small(archive, infos[0]).strip() == _ODF_MIMETYPE and "META-INF/manifest.xml" in names:
            return ODT
        raise ContentRefused("unrecognised", "an OpenDocument of a type that is not accepted")
    content_types = names.get("[Content_Types].xml")
    if content_types is None:
        raise ContentRefused("unrecognised", "a ZIP archive that is not an accepted document")
    declared = _read_small(archive, content_types)
    found = [kind for kind, main in _OOXML_MAIN.items() if main in declared]
    if len(found) != 1:
        raise ContentRefused("unrecognised", "an Office document of a type that is not accepted")
    return found[0]


def _check_real_sizes(archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo], *, max_total: int) -> None:
    """Decompress every entry into nothing, counting: declared sizes can lie, the CRC check catches it."""
    total = 0
    for info in infos:
        if info.is_dir():
            continue
        with archive.open(info) as entry:
            while block := entry.read(_READ_BLOCK):
                total += len(block)
                if total > max_total:
                    raise ContentRefused("archive_bomb", f"the archive expands beyond {max_total} bytes")
