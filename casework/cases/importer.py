"""The register import: the Excel template, reading a register's rows, converting old units, and checking or
importing the rows through the rules every other door uses.

Communes keep registers of children in special circumstances in Excel. A register made from
:func:`build_template` has one row per child and report under Vietnamese headers. Each row becomes the JSON shape
of ``/api/v1/cases`` and goes through :func:`~casework.cases.operations.validate_intake`,
:func:`~casework.cases.operations.duplicates_for` and :func:`~casework.cases.operations.open_case`, so a row is
accepted exactly when the intake form or the API would accept it. The dry run and the import are the same pass
over the rows (:class:`RegisterRun`); only the import writes.

**Old units.** Registers written before 1 July 2025 name old districts and communes. A row gives the new commune
code, or the old commune's code (mã xã cũ), or the old commune's, district's and province's names; an old commune
is converted through ``legacy_mappings``. One that went whole to one new commune is converted; one split between
several needs the worker's choice, made once per old commune, among the new communes that took it over and that
are in the worker's area. Until it is made, its rows are not imported.

**Nothing twice.** Each imported case keeps a keyed fingerprint of its row (:func:`fingerprints`): HMAC-SHA256,
under a key derived from a data key, over the identifying content of the row and its commune. A plain hash of a
child's name, birth date and commune could be confirmed by anyone guessing them; a keyed one cannot. A row whose
fingerprint is already stored, under any readable data key, is skipped, so re-importing a file creates nothing
and a key rotation does not make earlier imports look new.
"""

from __future__ import annotations

import base64
import hmac
import io
import json
import logging
import re
import unicodedata
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from hashlib import sha256
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from openpyxl import Workbook, load_workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation
from sqlalchemy import select, text

from casework import audit, codes, scope
from casework.auth.models import User
from casework.cases import operations
from casework.cases.models import Case, ImportBatch
from casework.dbtypes import utcnow
from casework.errors import Conflict, DomainError, NotFound, PermissionDenied, Problems, ValidationFailed
from casework.extensions import db
from casework.i18n import local_tz
from casework.jobs.models import Job
from casework.locations.models import Commune, LegacyDistrict, LegacyProvince, LegacyWard
from casework.locations.operations import new_communes_for_legacy_ward
from casework.security import files, sniff
from casework.security.keys import keyring
from casework.security.text import fold, words

logger = logging.getLogger(__name__)

Progress = Callable[[int, str], None]

CHECK_TASK = "cases.import_check"
RUN_TASK = "cases.import_run"
FINGERPRINT_PURPOSE = "casework/import-fingerprint"
#: A register larger than this is split by the worker: one job, one file, a bounded time.
MAX_ROWS = 10_000
#: Rows handled between two progress reports (and, in the import, two commits).
CHUNK = 50
#: Problem rows kept in a job's result; the counts are always complete.
MAX_LISTED = 500
#: Rows of the template's sheet that carry the drop-down lists.
TEMPLATE_ROWS = 2000
#: The header row is looked for in the first rows of a sheet (a register may have a title above it).
HEADER_SCAN = 10
#: This many empty rows in a row end the register (formatting can make a sheet look much longer than its data).
EMPTY_RUN = 1000
#: On PostgreSQL, the planner's statistics are refreshed after this many new cases, then after twice as many
#: as at the last refresh (:func:`_refresh_statistics`): often while the tables are small, rarely later.
ANALYZE_FIRST = 50

DATA_SHEET = "Sổ theo dõi"
LISTS_SHEET = "DanhMuc"
HELP_SHEET = "Hướng dẫn"
YES, NO = "Có", "Không"

# --- the columns --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """A column of the register. ``header`` is what the template shows (Vietnamese, like the register itself);
    a file's headers are matched without diacritics, case, ``*`` or a note in brackets."""

    key: str
    header: str
    kind: str = "text"
    list_name: str | None = None
    required: bool = False
    width: int = 16


COLUMNS: tuple[Column, ...] = (
    Column("row_label", "STT", "ignore", width=6),
    Column("full_name", "Họ và tên", required=True, width=28),
    Column("other_names", "Tên gọi khác", width=18),
    Column("sex", "Giới tính", "code", "sex", required=True, width=10),
    Column("date_of_birth", "Ngày sinh (dd/mm/yyyy)", "date", width=14),
    Column("birth_year", "Năm sinh", "int", width=10),
    Column("estimated_age", "Tuổi ước tính", "int", width=10),
    Column("national_id", "Số định danh cá nhân", "national_id", width=18),
    Column("ethnicity", "Dân tộc", "code", "ethnicity", width=12),
    Column("has_disability", "Khuyết tật (Có/Không)", "bool", width=12),
    Column("disability_kind", "Dạng khuyết tật", width=16),
    Column("address", "Địa chỉ", width=30),
    Column("guardian_name", "Họ tên cha, mẹ hoặc người chăm sóc", width=28),
    Column("guardian_phone", "Điện thoại người chăm sóc", "phone", width=16),
    Column("commune_code", "Mã xã/phường (từ 01/7/2025)", "commune", width=28),
    Column("old_ward_code", "Mã xã cũ", "old_ward", width=10),
    Column("old_ward_name", "Tên xã cũ", width=18),
    Column("old_district_name", "Tên huyện cũ", width=18),
    Column("old_province_name", "Tên tỉnh cũ", width=18),
    Column("categories", "Nhóm hoàn cảnh đặc biệt (Điều 10)", "codes", "special_circumstances", width=36),
    Column("at_risk", "Nguy cơ", "codes", "at_risk", width=24),
    Column("abuse_types", "Hình thức xâm hại", "codes", "abuse_types", width=20),
    Column("risk_level", "Mức độ nguy cơ", "code", "risk_levels", required=True, width=14),
    Column("immediate_danger", "Nguy hiểm tức thời (Có/Không)", "bool", width=14),
    Column("source", "Nguồn thông tin", "code", "report_sources", required=True, width=22),
    Column("channel", "Hình thức tiếp nhận", "code", "report_channels", width=16),
    Column("received_at", "Ngày tiếp nhận (dd/mm/yyyy)", "moment", required=True, width=16),
    Column("summary", "Tóm tắt tình hình", required=True, width=40),
    Column("reporter_name", "Người báo tin", width=20),
    Column("reporter_phone", "Điện thoại người báo tin", "phone", width=16),
    Column("reporter_address", "Địa chỉ người báo tin", width=24),
)
COLUMN = {c.key: c for c in COLUMNS}
LOCATION_KEYS = ("commune_code", "old_ward_code", "old_ward_name")

#: The fields of validate_intake's problems, and the column each comes from.
FIELD_COLUMNS = {
    "child.full_name": "full_name",
    "child.other_names": "other_names",
    "child.sex": "sex",
    "child.date_of_birth": "date_of_birth",
    "child.birth_year": "birth_year",
    "child.estimated_age": "estimated_age",
    "child.national_id": "national_id",
    "child.ethnicity": "ethnicity",
    "child.has_disability": "has_disability",
    "child.disability_kind": "disability_kind",
    "child.address": "address",
    "child.guardian_name": "guardian_name",
    "child.guardian_phone": "guardian_phone",
    "child.commune_code": "commune_code",
    "categories": "categories",
    "at_risk": "at_risk",
    "abuse_types": "abuse_types",
    "risk_level": "risk_level",
    "immediate_danger": "immediate_danger",
    "source": "source",
    "channel": "channel",
    "received_at": "received_at",
    "summary": "summary",
    "reporter.name": "reporter_name",
    "reporter.phone": "reporter_phone",
    "reporter.address": "reporter_address",
}

#: Row statuses, in the order the dry-run table explains them.
STATUSES = ("ok", "created", "already_imported", "duplicate", "needs_choice", "error")


def _header_key(text: Any) -> str:
    return fold(re.sub(r"\(.*?\)", " ", str(text)).replace("*", " "))


_HEADERS: dict[str, Column] = {}
for _column in COLUMNS:
    _HEADERS[_header_key(_column.header)] = _column
    _HEADERS[_column.key] = _column  # a machine-written file may use the field names


# --- errors -------------------------------------------------------------------------------------------------------


class RegisterUnreadable(DomainError):
    """The file is not a register this import can read; the message says why."""

    code = "register_unreadable"


# --- the template ---------------------------------------------------------------------------------------------------

_HELP = (
    "Hướng dẫn nhập sổ theo dõi trẻ em có hoàn cảnh đặc biệt",
    "",
    "Mỗi dòng của trang «Sổ theo dõi» là một trẻ em và một lần tiếp nhận thông tin. Cột có dấu * là bắt buộc.",
    "Ngày ghi theo dạng dd/mm/yyyy. Cần ngày sinh, năm sinh hoặc tuổi ước tính.",
    "Nơi ở: ghi mã xã/phường mới (từ 01/7/2025), chọn trong danh sách.",
    "Sổ lập trước 01/7/2025: ghi mã xã cũ, hoặc tên xã cũ, tên huyện cũ và tên tỉnh cũ. Hệ thống chuyển sang "
    "xã/phường mới; nếu xã cũ được chia cho nhiều xã mới, người nhập chọn xã mới trước khi nhập.",
    "Số định danh cá nhân gồm 12 chữ số; giữ cột ở dạng văn bản để không mất số 0 ở đầu.",
    "Nhóm hoàn cảnh, nguy cơ, hình thức xâm hại: chọn trong danh sách; nhiều mục thì cách nhau bằng dấu chấm phẩy (;).",
    "Khi nhập, hệ thống kiểm tra trước (không lưu gì) và chỉ ra từng dòng có lỗi hoặc có thể trùng với hồ sơ đã có.",
    "Nhập lại cùng một tệp không tạo hồ sơ trùng: các dòng đã nhập được bỏ qua.",
)


def _list_values(column: Column) -> list[str]:
    if column.list_name == "ethnicity":
        return [codes.label("ethnicity", code) for code in codes.codes("ethnicity")]
    return [codes.label(column.list_name, code, "vi") for code in codes.codes(column.list_name)]


def template_communes(actor: User) -> list[Commune]:
    """The communes the actor may import into, for the template's drop-down list."""
    stmt = scope.filter_to_scope(select(Commune), Commune.code, actor).order_by(Commune.code)
    return list(db.session.scalars(stmt))


def build_template(actor: User) -> bytes:
    """Make the register template: the register sheet with its drop-down lists, the code lists on a hidden sheet,
    and a sheet of instructions."""
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = DATA_SHEET
    lists = workbook.create_sheet(LISTS_SHEET)
    lists.sheet_state = "hidden"
    guide = workbook.create_sheet(HELP_SHEET)

    header_font = Font(bold=True)
    header_fill = PatternFill("solid", fgColor="DDEBF7")
    wrap = Alignment(wrap_text=True, vertical="top")
    for index, column in enumerate(COLUMNS, start=1):
        cell = sheet.cell(row=1, column=index, value=column.header + (" *" if column.required else ""))
        cell.font, cell.fill, cell.alignment = header_font, header_fill, wrap
        letter = get_column_letter(index)
        sheet.column_dimensions[letter].width = column.width
        if column.kind in {"national_id", "phone", "commune", "old_ward"}:
            sheet.column_dimensions[letter].number_format = "@"  # typed digits stay text: no lost leading zero
    sheet.freeze_panes = "C2"
    sheet.row_dimensions[1].height = 45

    list_columns: list[tuple[Column, list[str], bool]] = []
    for column in COLUMNS:
        if column.kind in {"code", "codes"}:
            list_columns.append((column, _list_values(column), column.kind == "codes"))
        elif column.kind == "bool":
            list_columns.append((column, [YES, NO], False))
        elif column.kind == "commune":
            values = [f"{c.code} - {c.name}" for c in template_communes(actor)]
            if values:
                list_columns.append((column, values, False))
    for index, (column, values, several) in enumerate(list_columns, start=1):
        letter = get_column_letter(index)
        lists.cell(row=1, column=index, value=column.header)
        for row, value in enumerate(values, start=2):
            lists.cell(row=row, column=index, value=value)
        target = get_column_letter(COLUMNS.index(column) + 1)
        validation = DataValidation(
            type="list",
            formula1=f"={LISTS_SHEET}!${letter}$2:${letter}${len(values) + 1}",
            allow_blank=True,
            showErrorMessage=True,
            # Several values are written "a; b": the list then only warns instead of refusing.
            errorStyle="information" if several else "stop",
            showInputMessage=several,
            promptTitle=column.header if several else None,
            prompt="Chọn trong danh sách; nhiều mục cách nhau bằng dấu ;" if several else None,
        )
        validation.add(f"{target}2:{target}{TEMPLATE_ROWS + 1}")
        sheet.add_data_validation(validation)

    guide.column_dimensions["A"].width = 120
    for row, line in enumerate(_HELP, start=1):
        guide.cell(row=row, column=1, value=line).alignment = Alignment(wrap_text=True)
    guide["A1"].font = header_font

    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


# --- reading a register -------------------------------------------------------------------------------------------


@dataclass
class RegisterRow:
    """A row of a register: its number in the sheet, as the worker sees it, and its cells by column key."""

    number: int
    values: dict[str, Any]


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        value = unicodedata.normalize("NFC", value).strip()
        return value or None
    return value


def read_register(data: bytes) -> list[RegisterRow]:
    """Read the rows of a register (an XLSX workbook made from the template).

    :raises RegisterUnreadable: not a workbook, no register sheet, required columns missing, no rows or too many.
    """
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:  # noqa: BLE001 - a damaged or foreign file fails the parser in many unlisted ways
        raise RegisterUnreadable(_l("The file cannot be read as an Excel workbook.")) from None
    try:
        return _read_rows(workbook)
    finally:
        workbook.close()


def _find_header(rows: Iterator[tuple]) -> tuple[int, dict[int, Column]] | None:
    for number, values in enumerate(rows, start=1):
        found = {i: _HEADERS.get(_header_key(v)) for i, v in enumerate(values) if v is not None}
        found = {i: c for i, c in found.items() if c is not None}
        if any(c.key == "full_name" for c in found.values()):
            return number, found
        if number >= HEADER_SCAN:
            break
    return None


def _read_rows(workbook) -> list[RegisterRow]:
    for sheet in workbook.worksheets:  # chart sheets are not among them
        sheet.reset_dimensions()  # follow the rows really there, not the size the file claims
        rows = sheet.iter_rows(values_only=True)
        header = _find_header(rows)
        if header is None:
            continue
        header_row, columns = header
        present = {c.key for c in columns.values()}
        missing = [c.header for c in COLUMNS if c.required and c.key not in present]
        if missing:
            raise RegisterUnreadable(
                _l("The register lacks these columns of the template: %(columns)s.", columns=", ".join(missing))
            )
        if not present.intersection(LOCATION_KEYS):
            raise RegisterUnreadable(_l("The register has no column for the commune (new or old)."))
        found: list[RegisterRow] = []
        empty = 0
        for number, values in enumerate(rows, start=header_row + 1):
            cells = {c.key: _clean(values[i]) for i, c in columns.items() if c.kind != "ignore" and i < len(values)}
            if all(v is None for v in cells.values()):
                empty += 1
                if empty >= EMPTY_RUN:
                    break
                continue
            empty = 0
            found.append(RegisterRow(number, cells))
            if len(found) > MAX_ROWS:
                raise RegisterUnreadable(
                    _l("The register has more than %(n)d rows; split it into several files.", n=MAX_ROWS)
                )
        if not found:
            raise RegisterUnreadable(_l("The register has no rows to import."))
        return found
    raise RegisterUnreadable(
        _l("No sheet of the file has the template's header row (a column “%(header)s”).", header="Họ và tên")
    )


# --- cells to the intake's shape ------------------------------------------------------------------------------------

_YES = {"co", "x", "1", "c", "yes", "y", "true"}
_NO = {"khong", "0", "k", "no", "n", "false"}
_DATE_ONLY = re.compile(r"^\d{1,2}/\d{1,2}/\d{4}$")
_LEADING_DIGITS = re.compile(r"^\s*(\d+)")


def _label_index(list_name: str) -> dict[str, str]:
    index = _LABELS.get(list_name)
    if index is None:
        index = {}
        for code in codes.codes(list_name):
            index[fold(code)] = code
            for locale in ("vi", "en"):
                index.setdefault(fold(codes.label(list_name, code, locale)), code)
        _LABELS[list_name] = index
    return index


_LABELS: dict[str, dict[str, str]] = {}


def _number_text(value: int | float) -> str | None:
    if isinstance(value, float) and not value.is_integer():
        return None
    return str(int(value))


def _text(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return YES if value else NO
    if isinstance(value, int | float):
        return _number_text(value) or str(value)
    if isinstance(value, datetime | date):
        return value.strftime("%d/%m/%Y")
    return str(value)


def _code(value: Any, list_name: str) -> Any:
    """A code from a code, a label (Vietnamese or English, with or without diacritics) or an article letter;
    anything else is passed on for the intake rules to refuse."""
    if value is None:
        return None
    text = _text(value)
    index = _label_index(list_name)
    code = index.get(fold(text))
    if code is None and list_name == "ethnicity" and text.isdigit():
        code = index.get(text.zfill(2))  # "1" for "01": Excel drops the zero
    return code or text


def _codes(value: Any, list_name: str) -> list[Any]:
    if value is None:
        return []
    parts = re.split(r"[;\n]", _text(value))
    return [_code(part.strip(), list_name) for part in parts if part.strip()]


def _yes_no(value: Any) -> Any:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    folded = fold(_text(value))
    if folded in _YES:
        return True
    if folded in _NO:
        return False
    return folded  # not a boolean: the intake rules say "answer yes or no"


def _date(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date) or value is None:
        return value
    return _text(value)


def _moment(value: Any) -> Any:
    """A register gives the day a report was received; a day without a time is taken at 00:00, Vietnam's time."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime.combine(value, time())
    if value is None:
        return None
    text = _text(value)
    return f"{text} 00:00" if _DATE_ONLY.match(text) else text


def _int(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value) if float(value).is_integer() else value
    return _text(value)


def _national_id(value: Any, problems: Problems) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        text = _number_text(value)
        if text is None or len(text) < 12:
            # A number cell has no leading zero; the ID's first digits name a province, often from 0. Not guessed.
            problems.add(
                "child.national_id",
                "leading_zero_lost",
                _l("The number has lost its leading zero: format the column as text and type it again."),
            )
            return None
        return text
    return _text(value)


def _phone(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        text = _number_text(value)
        # Vietnamese numbers start with 0 (or the country code 84); a number cell drops that 0.
        return text if text is None or text.startswith("84") else "0" + text
    return _text(value)


def unit_code(value: Any, width: int = 5) -> str | None:
    """A unit's code from a cell: ``6970`` (a number cell), ``"06970"`` or ``"06970 - Xã Ba Chẽ"``."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        text = _number_text(value)
        return text.zfill(width) if text else str(value)
    text = _text(value)
    match = _LEADING_DIGITS.match(text)
    if match and len(match.group(1)) <= width:
        return match.group(1).zfill(width)
    return text


def to_payload(values: Mapping[str, Any], commune_code: str | None, problems: Problems) -> dict[str, Any]:
    """The intake (``/api/v1/cases``'s JSON shape) a row stands for."""
    return {
        "child": {
            "full_name": _text(values.get("full_name")),
            "other_names": _text(values.get("other_names")),
            "sex": _code(values.get("sex"), "sex"),
            "date_of_birth": _date(values.get("date_of_birth")),
            "birth_year": _int(values.get("birth_year")),
            "estimated_age": _int(values.get("estimated_age")),
            "national_id": _national_id(values.get("national_id"), problems),
            "ethnicity": _code(values.get("ethnicity"), "ethnicity"),
            "has_disability": _yes_no(values.get("has_disability")),
            "disability_kind": _text(values.get("disability_kind")),
            "address": _text(values.get("address")),
            "guardian_name": _text(values.get("guardian_name")),
            "guardian_phone": _phone(values.get("guardian_phone")),
            "commune_code": commune_code,
        },
        "categories": _codes(values.get("categories"), "special_circumstances"),
        "at_risk": _codes(values.get("at_risk"), "at_risk"),
        "abuse_types": _codes(values.get("abuse_types"), "abuse_types"),
        "risk_level": _code(values.get("risk_level"), "risk_levels"),
        "immediate_danger": _yes_no(values.get("immediate_danger")),
        "source": _code(values.get("source"), "report_sources"),
        "channel": _code(values.get("channel"), "report_channels"),
        "received_at": _moment(values.get("received_at")),
        "summary": _text(values.get("summary")),
        "reporter": {
            "name": _text(values.get("reporter_name")),
            "phone": _phone(values.get("reporter_phone")),
            "address": _text(values.get("reporter_address")),
        },
    }


# --- old units ----------------------------------------------------------------------------------------------------

_PROVINCE_PREFIXES = ("thanh pho", "tinh", "tp")
_DISTRICT_PREFIXES = ("thanh pho", "thi xa", "huyen", "quan", "tp", "tx", "q", "h")
_WARD_PREFIXES = ("thi tran", "phuong", "xa", "tt", "p", "x")


def _unit_key(name: str) -> str:
    """A unit's name for comparison: folded, punctuation as spaces, "Phường 01" as "phuong 1"."""
    parts = re.sub(r"[.,\-_/]", " ", fold(name)).split()
    return " ".join(p.lstrip("0") or "0" if p.isdigit() else p for p in parts)


def _bare(key: str, prefixes: tuple[str, ...]) -> str:
    for prefix in prefixes:
        if key.startswith(prefix + " "):
            return key[len(prefix) + 1 :]
    return key


def _match(units: list, name: str, prefixes: tuple[str, ...]) -> list:
    """The units called ``name``: by the full name ("Xã Thanh Sơn") first, else without the type ("Thanh Sơn")."""
    wanted = _unit_key(name)
    exact = [u for u in units if _unit_key(u.name) == wanted]
    if exact:
        return exact
    bare = _bare(wanted, prefixes)
    return [u for u in units if _bare(_unit_key(u.name), prefixes) == bare]


@dataclass
class Place:
    """Where a row's child lives, in today's units, and how that was found."""

    commune_code: str | None = None
    old_ward_code: str | None = None
    converted: bool = False  # from an old commune (whole, or split with the worker's choice)
    needs_choice: bool = False  # from a split old commune, no valid choice yet (commune_code is provisional)


class Locator:
    """Turns a row's location columns into today's commune, converting old units; remembers what it looked up."""

    def __init__(self, actor: User, choices: Mapping[str, str] | None = None) -> None:
        self.actor = actor
        self.choices = dict(choices or {})
        self._candidates: dict[str, list[str]] = {}
        self._named: dict[tuple[str, str, str], tuple[str | None, tuple[str, Any] | None]] = {}
        self._wards: dict[str, bool] = {}

    def candidates(self, old_ward_code: str) -> list[str]:
        """The new communes that took over the old commune (one, or several when it was split)."""
        if old_ward_code not in self._candidates:
            self._candidates[old_ward_code] = [m.new_commune_code for m in new_communes_for_legacy_ward(old_ward_code)]
        return self._candidates[old_ward_code]

    def _known_ward(self, code: str) -> bool:
        if code not in self._wards:
            self._wards[code] = db.session.get(LegacyWard, code) is not None
        return self._wards[code]

    def resolve(self, values: Mapping[str, Any], problems: Problems) -> Place:
        new = unit_code(values.get("commune_code"))
        old = unit_code(values.get("old_ward_code"))
        old_field = "old_ward_code"
        if old is None and values.get("old_ward_name"):
            old_field = "old_ward_name"
            old, problem = self._ward_by_names(
                values.get("old_ward_name"), values.get("old_district_name"), values.get("old_province_name")
            )
            if problem is not None:
                problems.add(old_field, *problem)
                return Place(commune_code=new)
        if old is None:
            return Place(commune_code=new)
        if not self._known_ward(old):
            problems.add(old_field, "unknown_old_ward", _l("Unknown old commune code."))
            return Place(commune_code=new)
        candidates = self.candidates(old)
        if not candidates:
            problems.add(old_field, "no_new_commune", _l("No new commune is known for this old commune."))
            return Place(commune_code=new, old_ward_code=old)
        if new is not None:
            if new not in candidates:
                problems.add(
                    "commune_code",
                    "not_from_old_ward",
                    _l("This commune did not take over the old commune given in the same row."),
                )
            return Place(commune_code=new, old_ward_code=old)
        if len(candidates) == 1:
            return Place(commune_code=candidates[0], old_ward_code=old, converted=True)
        chosen = self.choices.get(old)
        if chosen in candidates and scope.can_access_commune(self.actor, chosen):
            return Place(commune_code=chosen, old_ward_code=old, converted=True)
        in_area = [c for c in candidates if scope.can_access_commune(self.actor, c)]
        # The rest of the row is checked against a provisional commune; none in the area makes it an error there.
        return Place(commune_code=(in_area or candidates)[0], old_ward_code=old, needs_choice=bool(in_area))

    def _ward_by_names(self, ward: Any, district: Any, province: Any) -> tuple[str | None, tuple[str, Any] | None]:
        key = (_unit_key(_text(ward)), _unit_key(_text(district or "")), _unit_key(_text(province or "")))
        if key not in self._named:
            self._named[key] = self._find_ward(_text(ward), _text(district), _text(province))
        return self._named[key]

    @staticmethod
    def _find_ward(ward: str, district: str | None, province: str | None) -> tuple[str | None, tuple[str, Any] | None]:
        if not district or not province:
            return None, (
                "old_units_incomplete",
                _l("Give the old district and province with the old commune's name, or the old commune's code."),
            )
        ambiguous = ("ambiguous_old_unit", _l("Several old units have this name; give the old commune's code."))
        provinces = _match(list(db.session.scalars(select(LegacyProvince))), province, _PROVINCE_PREFIXES)
        if len(provinces) != 1:
            return None, ambiguous if provinces else ("unknown_old_province", _l("Unknown old province."))
        districts = _match(
            list(db.session.scalars(select(LegacyDistrict).where(LegacyDistrict.province_code == provinces[0].code))),
            district,
            _DISTRICT_PREFIXES,
        )
        if len(districts) != 1:
            return None, ambiguous if districts else ("unknown_old_district", _l("Unknown old district."))
        wards = _match(
            list(db.session.scalars(select(LegacyWard).where(LegacyWard.district_code == districts[0].code))),
            ward,
            _WARD_PREFIXES,
        )
        if len(wards) != 1:
            return None, ambiguous if wards else ("unknown_old_ward", _l("Unknown old commune in this district."))
        return wards[0].code, None


def clean_choices(raw: Mapping[str, str], actor: User) -> dict[str, str]:
    """The worker's choices for split old communes (old commune code → new commune code), checked.

    An empty choice means "not now": those rows stay out of the import.

    :raises ValidationFailed: a choice is not one of the communes that took over the old commune, or is outside
        the actor's area.
    """
    problems = Problems()
    chosen: dict[str, str] = {}
    for old, new in list(raw.items())[:1000]:
        new = (new or "").strip()
        if not new:
            continue
        name = f"choices[{old}]"
        candidates = (
            [m.new_commune_code for m in new_communes_for_legacy_ward(old)] if re.fullmatch(r"\d{5}", old) else []
        )
        if len(candidates) < 2:
            problems.add(name, "not_split", _l("This old commune was not split: there is nothing to choose."))
        elif new not in candidates:
            problems.add(name, "not_a_candidate", _l("Choose one of the communes that took over this old commune."))
        elif not scope.can_access_commune(actor, new):
            problems.add(name, "out_of_scope", _l("This commune is outside your area."))
        else:
            chosen[old] = new
    problems.raise_if_any()
    return chosen


# --- fingerprints ---------------------------------------------------------------------------------------------------


def _identity(data: operations.IntakeData) -> bytes:
    """The identifying content of a row, normalised: who the child is, when the report came, and the commune."""
    child = data.child
    content = {
        "name": " ".join(words(child["full_name"] or "")),
        "sex": child["sex"],
        "date_of_birth": child["date_of_birth"].isoformat() if child["date_of_birth"] else None,
        "birth_year": child["birth_year"],
        "estimated_age": child["estimated_age"],
        "national_id": child["national_id"],
        "received_on": data.received_at.astimezone(local_tz()).date().isoformat(),
        "commune": child["commune_code"],
    }
    return json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def fingerprints(data: operations.IntakeData) -> list[str]:
    """The row's fingerprint under every readable data key, the current key's first (the one stored).

    ``<key id>:<base64url HMAC-SHA256>``: 52 characters, within the column's 64.
    """
    ring = keyring()
    message = _identity(data)
    found = []
    for kid in ring.key_ids():
        mac = hmac.new(ring.derived(kid, FINGERPRINT_PURPOSE), message, sha256).digest()
        found.append(f"{kid}:{base64.urlsafe_b64encode(mac).decode().rstrip('=')}")
    return found


def already_imported(prints: list[str]) -> bool:
    return db.session.scalar(select(Case.id).where(Case.import_fingerprint.in_(prints)).limit(1)) is not None


# --- one pass over the rows -----------------------------------------------------------------------------------------


@dataclass
class RowOutcome:
    """What became of a row: ``ok`` (would be imported), ``created``, ``already_imported``, ``duplicate``,
    ``needs_choice`` or ``error`` (with its problems, column by column)."""

    row: int
    status: str
    problems: list[dict[str, str]] = field(default_factory=list)
    old_ward: str | None = None
    commune: str | None = None
    converted: bool = False
    duplicate_of_row: int | None = None
    duplicates: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"row": self.row, "status": self.status}
        for name in ("problems", "old_ward", "commune", "duplicate_of_row", "duplicates"):
            value = getattr(self, name)
            if value:
                out[name] = value
        return out


def _column_of(name: str, place: Place, values: Mapping[str, Any]) -> str:
    key = FIELD_COLUMNS.get(name, name)
    if key == "commune_code" and values.get("commune_code") is None and place.old_ward_code:
        key = "old_ward_code" if values.get("old_ward_code") is not None else "old_ward_name"
    column = COLUMN.get(key)
    return column.header if column else ""


class RegisterRun:
    """One pass over a register: a dry run (``create=False``) or the import. Both apply the same checks in the
    same order, so the dry run says what the import will do (unless the records change in between)."""

    def __init__(self, actor: User, *, choices: Mapping[str, str] | None = None, create: bool = False) -> None:
        self.actor = actor
        self.create = create
        self.locator = Locator(actor, choices)
        self.now = utcnow()
        # Earlier rows of the same file, by fingerprint, personal ID and (name words, birth year, province).
        self._prints: dict[str, int] = {}
        self._ids: dict[str, int] = {}
        self._names: dict[tuple, int] = {}
        # The session's identity map holds objects weakly: held here, a commune is loaded once per commit, not
        # once by each of the rules that look it up for each row.
        self._communes: dict[str, Commune | None] = {}

    def _commune(self, code: str | None) -> Commune | None:
        if not isinstance(code, str):
            return None
        if code not in self._communes:
            self._communes[code] = db.session.get(Commune, code)
        return self._communes[code]

    def process(self, row: RegisterRow) -> RowOutcome:
        problems = Problems()
        place = self.locator.resolve(row.values, problems)
        self._commune(place.commune_code)
        location_refused = bool(problems)
        payload = to_payload(row.values, place.commune_code, problems)
        data = None
        try:
            data = operations.validate_intake(payload, self.actor, now=self.now)
        except ValidationFailed as exc:
            for name, messages in exc.errors.items():
                if name == "child.commune_code" and location_refused:
                    continue  # the old unit's problem already says why there is no commune
                found = exc.field_codes.get(name, [])
                for index, message in enumerate(messages):
                    problems.add(name, found[index] if index < len(found) else "invalid", message)
        outcome = RowOutcome(
            row.number,
            "ok",
            old_ward=place.old_ward_code,
            commune=None if place.needs_choice else place.commune_code,
            converted=place.converted,
        )
        if problems:
            outcome.status = "error"
            outcome.problems = [
                {"field": name, "code": code, "column": _column_of(name, place, row.values), "message": str(message)}
                for name in problems.errors
                for code, message in zip(problems.codes[name], problems.errors[name], strict=True)
            ]
            return outcome
        if place.needs_choice:
            outcome.status = "needs_choice"
            return outcome
        prints = fingerprints(data)
        earlier = self._prints.setdefault(prints[0], row.number)
        if earlier != row.number:
            outcome.status, outcome.duplicate_of_row = "duplicate", earlier
            return outcome
        if already_imported(prints):
            outcome.status = "already_imported"
            return outcome
        earlier = self._earlier_child(data)
        if earlier is not None:
            outcome.status, outcome.duplicate_of_row = "duplicate", earlier
            return outcome
        found = operations.duplicates_for(data, self.actor)
        if found:
            outcome.status, outcome.duplicates = "duplicate", [d.as_dict() for d in found]
            return outcome
        if self.create:
            # open_case builds the case (added to the session through its child) before adding it; a flush in
            # between (any query while it is built) would warn and skip it. It flushes itself.
            with db.session.no_autoflush:
                operations.open_case(data, self.actor, import_fingerprint=prints[0])
            outcome.status = "created"
        self._remember(data, row.number)
        return outcome

    def _name_key(self, data: operations.IntakeData) -> tuple | None:
        child = data.child
        if not (child["full_name"] and child["birth_year"] and words(child["full_name"])):
            return None
        commune = self._commune(child["commune_code"])
        return (tuple(sorted(words(child["full_name"]))), child["birth_year"], commune.province_code)

    def _earlier_child(self, data: operations.IntakeData) -> int | None:
        """An earlier row of this file with the child: the rules of find_duplicates, applied within the file."""
        national_id = data.child["national_id"]
        if national_id and national_id in self._ids:
            return self._ids[national_id]
        return self._names.get(self._name_key(data))

    def _remember(self, data: operations.IntakeData, number: int) -> None:
        if data.child["national_id"]:
            self._ids.setdefault(data.child["national_id"], number)
        key = self._name_key(data)
        if key is not None:
            self._names.setdefault(key, number)


#: Statuses of rows that need nothing from the worker: shown as ranges of row numbers, not one by one.
PLAIN_STATUSES = ("ok", "created", "already_imported")


class Tally:
    """What a pass found: counts by status, the rows to show (capped), the row numbers of the others as ranges,
    conversions and splits of old communes."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.rows: list[dict[str, Any]] = []
        self.ranges: dict[str, list[list[int]]] = {status: [] for status in PLAIN_STATUSES}
        self.conversions: dict[str, Counter[str]] = {}
        self.splits: dict[str, list[int]] = {}

    def add(self, outcome: RowOutcome) -> None:
        self.counts[outcome.status] += 1
        if outcome.status in PLAIN_STATUSES:
            ranges = self.ranges[outcome.status]
            if ranges and ranges[-1][1] == outcome.row - 1:
                ranges[-1][1] = outcome.row
            else:
                ranges.append([outcome.row, outcome.row])
        elif len(self.rows) < MAX_LISTED:
            self.rows.append(outcome.as_dict())
        if outcome.status == "needs_choice":
            self.splits.setdefault(outcome.old_ward, []).append(outcome.row)
        elif outcome.converted and outcome.status in {"ok", "created"}:
            self.conversions.setdefault(outcome.old_ward, Counter())[outcome.commune] += 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, Any]:
        problems = sum(self.counts[s] for s in ("error", "duplicate", "needs_choice"))
        return {
            "total": self.total,
            "counts": {status: self.counts[status] for status in STATUSES},
            "rows": self.rows,
            "listed_all": problems <= len(self.rows),
            "ranges": {status: ranges[:MAX_LISTED] for status, ranges in self.ranges.items() if ranges},
            "conversions": {old: dict(targets) for old, targets in sorted(self.conversions.items())},
            "splits": {old: rows[:50] for old, rows in sorted(self.splits.items())},
            "split_rows": {old: len(rows) for old, rows in self.splits.items()},
        }


# --- batches -------------------------------------------------------------------------------------------------------


def create_batch(stream, filename: str | None, actor: User) -> ImportBatch:
    """Store an uploaded register (encrypted, like every upload) and open its batch.

    :raises PermissionDenied: the actor's role keeps no records.
    :raises UploadRefused: not an XLSX workbook, or refused by the file store's checks.
    """
    if not scope.can_view_records(actor):
        raise PermissionDenied(_l("Your role does not import registers."))
    name = files.clean_file_name(filename)
    if sniff.extension(name) != "xlsx":
        raise files.FileTypeNotAllowed(_l("Upload the register as an Excel workbook (.xlsx)."), field="file")
    batch_id = uuid.uuid4()
    stored = files.save_upload(stream, name, actor=actor, owner_type="import", owner_id=batch_id)
    communes = actor.commune_codes
    batch = ImportBatch(
        id=batch_id,
        file_id=stored.id,
        commune_code=communes[0] if len(communes) == 1 else None,
        created_by_id=actor.id,
    )
    db.session.add(batch)
    db.session.flush()
    return batch


def load_batch(batch_id: uuid.UUID | str, actor: User) -> ImportBatch:
    """Load a batch for the user who uploaded it; anyone else is told it does not exist."""
    try:
        uid = uuid.UUID(str(batch_id))
    except ValueError:
        raise NotFound(_l("No such import.")) from None
    batch = db.session.get(ImportBatch, uid)
    if batch is None or batch.created_by_id != getattr(actor, "id", None) or not scope.can_view_records(actor):
        raise NotFound(_l("No such import."))
    return batch


def batches_of(actor: User, limit: int = 20) -> list[ImportBatch]:
    return list(
        db.session.scalars(
            select(ImportBatch)
            .where(ImportBatch.created_by_id == actor.id)
            .order_by(ImportBatch.created_at.desc())
            .limit(limit)
        )
    )


def latest_job(batch: ImportBatch, task_name: str) -> Job | None:
    """The latest job of ``task_name`` started for the batch."""
    return db.session.scalar(
        select(Job)
        .where(
            Job.task == task_name,
            Job.created_by_id == batch.created_by_id,
            Job.params["batch_id"].as_string() == str(batch.id),
        )
        .order_by(Job.created_at.desc())
        .limit(1)
    )


def ensure_can_run(batch: ImportBatch) -> None:
    """:raises Conflict: the dry run has not finished, or the batch was imported or is being imported."""
    if batch.status == "imported":
        raise Conflict(_l("This file has already been imported."), code="already_imported")
    if batch.status != "checked":
        raise Conflict(_l("The file must be checked before it is imported."), code="not_checked")
    running = latest_job(batch, RUN_TASK)
    if running is not None and not running.done:
        raise Conflict(_l("This file is being imported."), code="import_running")


def describe_splits(result: Mapping[str, Any], actor: User) -> list[dict[str, Any]]:
    """The split old communes of a dry run, with names and the candidates the actor may choose."""
    described = []
    for old, rows in (result.get("splits") or {}).items():
        ward = db.session.get(LegacyWard, old)
        district = db.session.get(LegacyDistrict, ward.district_code) if ward else None
        province = db.session.get(LegacyProvince, ward.province_code) if ward else None
        candidates = []
        for mapping in new_communes_for_legacy_ward(old):
            commune = db.session.get(Commune, mapping.new_commune_code)
            candidates.append(
                {
                    "code": commune.code,
                    "name": commune.name,
                    "in_area": scope.can_access_commune(actor, commune.code),
                }
            )
        described.append(
            {
                "code": old,
                "name": ", ".join(u.name for u in (ward, district, province) if u is not None),
                "rows": rows,
                "row_count": (result.get("split_rows") or {}).get(old, len(rows)),
                "candidates": candidates,
            }
        )
    return described


def unit_names(result: Mapping[str, Any]) -> dict[str, str]:
    """Names of the old and new units a result mentions, for display."""
    names: dict[str, str] = {}
    for old, targets in (result.get("conversions") or {}).items():
        ward = db.session.get(LegacyWard, old)
        names[f"old:{old}"] = ward.name if ward else old
        for new in targets:
            commune = db.session.get(Commune, new)
            names[new] = commune.name if commune else new
    return names


# --- the two passes (run as jobs: casework/cases/tasks.py) ----------------------------------------------------------


def batch_for_job(batch_id: str, user_id: str) -> tuple[ImportBatch, User]:
    """The batch and its uploader, for a job; the uploader must still be allowed to import.

    :raises NotFound: no such batch, or the user is not its uploader.
    :raises PermissionDenied: the user may no longer keep records.
    """
    actor = db.session.get(User, uuid.UUID(str(user_id)))
    batch = db.session.get(ImportBatch, uuid.UUID(str(batch_id)))
    if actor is None or batch is None or batch.created_by_id != actor.id:
        raise NotFound(_l("No such import."))
    if not scope.can_view_records(actor):
        raise PermissionDenied(_l("Your role does not import registers."))
    return batch, actor


def _rows_of(batch: ImportBatch, actor: User) -> list[RegisterRow]:
    stored = db.session.get(files.StoredFile, batch.file_id)
    if stored is None:
        raise NotFound(_l("No such import."))
    with files.open_stream(stored, actor=actor) as stream:
        data = b"".join(stream)  # bounded by the upload limit; openpyxl needs a seekable file
    return read_register(data)


def _walk(rows: list[RegisterRow], run: RegisterRun, progress: Progress, each_chunk=None) -> Tally:
    tally = Tally()
    total = len(rows)
    for index, row in enumerate(rows, start=1):
        outcome = run.process(row)
        tally.add(outcome)
        if index % CHUNK == 0 or index == total:
            if each_chunk is not None:
                each_chunk(tally)
            progress(5 + int(94 * index / total), _("Row %(n)d of %(total)d", n=index, total=total))
    return tally


def _refresh_statistics() -> None:
    """Let PostgreSQL's planner see the children just added, as its manual advises after loading data.

    The duplicate search of each row looks children up through the blind index. Planned with statistics from
    before the import, when the tables were small, that lookup took 0.75 s instead of 1 ms once 600 children had
    been added: the import slowed down with every row. ANALYZE samples the tables and locks out no reader or
    writer; a role that does not own them gets a warning, not an error.
    """
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("ANALYZE children, blind_index_entries"))


def check_register(batch: ImportBatch, actor: User, *, progress: Progress) -> dict[str, Any]:
    """The dry run: say what would become of each row; save nothing but the batch's counts.

    ``progress`` is called every :data:`CHUNK` rows (a job's progress also commits).
    """
    progress(1, _("Reading the file"))
    try:
        rows = _rows_of(batch, actor)
    except RegisterUnreadable as exc:
        batch.status = "failed"
        db.session.flush()
        return {"file_error": str(exc.message)}
    tally = _walk(rows, RegisterRun(actor), progress)
    result = tally.as_dict()
    batch.status = "checked"
    batch.total_rows = tally.total
    batch.error_rows = tally.counts["error"]
    batch.skipped_rows = tally.total - tally.counts["ok"] - tally.counts["error"]
    db.session.flush()
    audit.record("import.check", object_type="import_batch", object_id=batch.id, actor=actor, details=result["counts"])
    return result


def import_register(
    batch: ImportBatch, actor: User, *, choices: Mapping[str, str], progress: Progress
) -> dict[str, Any]:
    """The import: open a case for every row that passes, skipping rows already imported.

    The cases of each :data:`CHUNK` of rows are committed together with the batch's count by ``progress``, so a
    crash leaves whole rows and a true count; running it again skips what is already there.
    """
    progress(1, _("Reading the file"))
    rows = _rows_of(batch, actor)
    created_before = batch.created_rows or 0
    run = RegisterRun(actor, choices=choices, create=True)
    next_analysis = ANALYZE_FIRST

    def after_chunk(tally: Tally) -> None:
        nonlocal next_analysis
        batch.created_rows = created_before + tally.counts["created"]
        if tally.counts["created"] >= next_analysis:
            _refresh_statistics()
            next_analysis = 2 * tally.counts["created"]

    tally = _walk(rows, run, progress, after_chunk)
    result = tally.as_dict()
    result["created"] = tally.counts["created"]
    batch.status = "imported"
    batch.total_rows = tally.total
    batch.error_rows = tally.counts["error"]
    batch.skipped_rows = max(0, tally.total - batch.created_rows - batch.error_rows)
    db.session.flush()
    audit.record(
        "import.run",
        object_type="import_batch",
        object_id=batch.id,
        actor=actor,
        details={**result["counts"], "choices": len(choices)},
    )
    return result
