"""The register import from Excel: the template, the dry run, the import, old units, re-imports and who sees what.

Workbooks are made here with openpyxl from the template the app offers, and go through the pages as a worker's
would: upload, dry run (a job), choices, import (a job). The PostgreSQL app runs the jobs in a real rq worker.
"""

from __future__ import annotations

import io
import re
import time
import uuid
from datetime import date, datetime, timedelta

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from casework.cases import importer
from casework.cases.models import Case, Child, ImportBatch
from casework.errors import Problems, ValidationFailed
from casework.extensions import db
from casework.jobs.models import Job
from tests.conftest import AuthActions, csrf_from, wait_for_job

FAMILY = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng"]
MIDDLE = ["Văn", "Thị", "Minh", "Ngọc", "Quốc", "Thanh", "Hữu", "Đức", "Gia", "Bảo"]
GIVEN = ["An", "Bình", "Châu", "Dũng", "Giang", "Hà", "Khánh", "Lan", "Mai", "Nam"]
ROW_RE = re.compile(r'<tr data-row="(\d+)" data-status="([a-z_]+)"')


@pytest.fixture
def runner(app, request):
    """Make sure a real rq worker runs when the app has Redis."""
    if app.config["CASEWORK_REDIS_URL"]:
        worker = request.getfixturevalue("rq_worker")
        assert worker.poll() is None, "the rq worker died"


def child_row(i: int, **changes) -> dict:
    """A valid row of the register, distinct from every other ``i`` below 1000 (name words, ID)."""
    row = {
        "row_label": i + 1,
        "full_name": f"{FAMILY[i % 10]} {MIDDLE[i // 10 % 10]} {GIVEN[i // 100 % 10]}",
        "sex": "Nữ" if i % 2 else "Nam",
        "date_of_birth": date(2012, 1, 1) + timedelta(days=3 * i),
        "national_id": f"022{i:09d}" if i % 3 == 0 else None,
        "ethnicity": "Kinh" if i % 4 else "Tày",
        "guardian_phone": "0912 345 678",
        "commune_code": "06970 - Xã Ba Chẽ",
        "categories": "Trẻ em bị bỏ rơi" if i % 2 else "abandoned; Trẻ em khuyết tật",
        "risk_level": "Trung bình",
        "source": "Tổng đài 111",
        "channel": "Điện thoại",
        # A date cell, or the date typed as text: both are read as that day, 00:00 in Vietnam.
        "received_at": date(2024, 1, 1) + timedelta(days=i % 400) if i % 5 else "15/03/2025",
        "summary": "Trẻ được theo dõi định kỳ tại xã.",
    }
    row.update(changes)
    return row


def fill(template: bytes, rows: list[dict]) -> bytes:
    """The template with ``rows`` written under its headers (by column key), from the sheet's second row."""
    workbook = load_workbook(io.BytesIO(template))
    sheet = workbook.worksheets[0]
    position = {cell.value.removesuffix(" *"): cell.column for cell in sheet[1]}
    for number, row in enumerate(rows, start=2):
        for key, value in row.items():
            sheet.cell(row=number, column=position[importer.COLUMN[key].header], value=value)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


class ImportPages:
    """A worker's way through the import pages."""

    def __init__(self, client) -> None:
        self.client = client

    def token(self, path: str = "/imports/") -> str:
        return csrf_from(self.client.get(path).get_data(as_text=True))

    def template(self) -> bytes:
        response = self.client.get("/imports/template.xlsx")
        assert response.status_code == 200
        return response.get_data()

    def upload(self, content: bytes, name: str = "so-theo-doi.xlsx"):
        return self.client.post(
            "/imports/",
            data={"csrf_token": self.token(), "file": (io.BytesIO(content), name)},
            content_type="multipart/form-data",
        )

    def check(self, content: bytes) -> tuple[ImportBatch, Job]:
        """Upload a register and wait for its dry run."""
        response = self.upload(content)
        assert response.status_code == 302, response.get_data(as_text=True)
        batch_id = uuid.UUID(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])
        batch = db.session.get(ImportBatch, batch_id)
        job = wait_for_job(importer.latest_job(batch, importer.CHECK_TASK).id, timeout=300)
        assert job.status == "finished", job.error
        db.session.refresh(batch)
        return batch, job

    def page(self, batch: ImportBatch) -> str:
        response = self.client.get(f"/imports/{batch.id}")
        assert response.status_code == 200
        return response.get_data(as_text=True)

    def run(self, batch: ImportBatch, choices: dict[str, str] | None = None):
        data = {"csrf_token": self.token(f"/imports/{batch.id}")}
        data.update({f"choices[{old}]": new for old, new in (choices or {}).items()})
        return self.client.post(f"/imports/{batch.id}/run", data=data)

    def imported(self, batch: ImportBatch, choices: dict[str, str] | None = None) -> Job:
        """Start the import and wait for it."""
        response = self.run(batch, choices)
        assert response.status_code == 302, response.get_data(as_text=True)
        job = wait_for_job(importer.latest_job(batch, importer.RUN_TASK).id, timeout=300)
        assert job.status == "finished", job.error
        db.session.refresh(batch)
        return job


@pytest.fixture
def pages(client) -> ImportPages:
    return ImportPages(client)


def count(model) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model))


# --- the template -------------------------------------------------------------------------------------------------


def test_the_template_is_a_real_workbook_with_vietnamese_headers_and_drop_down_lists(app, client, make_user, pages):
    make_user("social_worker", username="mau")
    AuthActions(client).login("mau")
    response = client.get("/imports/template.xlsx")
    assert response.status_code == 200
    assert response.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    workbook = load_workbook(io.BytesIO(response.get_data()))
    sheet = workbook.worksheets[0]
    assert sheet.title == "Sổ theo dõi"
    headers = [cell.value for cell in sheet[1]]
    for header in ("Họ và tên *", "Giới tính *", "Ngày sinh (dd/mm/yyyy)", "Số định danh cá nhân", "Mã xã cũ"):
        assert header in headers
    for header in ("Tên xã cũ", "Tên huyện cũ", "Tên tỉnh cũ", "Ngày tiếp nhận (dd/mm/yyyy) *", "Tóm tắt tình hình *"):
        assert header in headers
    lists = workbook["DanhMuc"]
    assert lists.sheet_state == "hidden"
    values = {cell.value for column in lists.iter_cols() for cell in column}
    assert {"Nữ", "Nam", "Kinh", "Tổng đài 111", "Trẻ em bị bỏ rơi", "06970 - Xã Ba Chẽ"} <= values
    assert "06799 - Xã Hải Hòa" not in values  # only the worker's own communes are offered
    validations = sheet.data_validations.dataValidation
    assert len(validations) >= 10
    assert all(v.type == "list" and v.formula1.startswith("=DanhMuc!") for v in validations)


# --- the 1,000-row register -----------------------------------------------------------------------------------------

#: (what is wrong, the change to a good row, the status and the code the dry run gives)
BAD = [
    ("missing name", {"full_name": None}, "error", "required"),
    ("date of birth in the future", {"date_of_birth": date.today() + timedelta(days=40)}, "error", "in_future"),
    ("11-digit personal ID", {"national_id": "02212345678"}, "error", "invalid_national_id"),
    ("unknown code", {"risk_level": "Rất cao"}, "error", "invalid_code"),
    ("commune outside the worker's area", {"commune_code": "06799"}, "error", "out_of_scope"),
    ("old commune split, no choice", {"commune_code": None, "old_ward_code": "06886"}, "needs_choice", None),
    ("unknown commune code", {"commune_code": "99999"}, "error", "unknown_commune"),
]
BAD_INDEXES = [7, 55, 101, 160, 222, 290, 333, 404, 470, 512, 577, 640, 701, 755, 800, 850, 901, 933, 970, 999]


def test_a_register_of_1000_rows_is_checked_imported_and_not_imported_twice(app, runner, client, make_user, pages):
    make_user("social_worker", username="xaba")
    AuthActions(client).login("xaba")
    client.get("/lang/en")  # the assertions below read messages; the jobs write them in the uploader's language
    expected = {}  # row number in the sheet -> (status, code)
    rows = []
    for i in range(1000):
        row = child_row(i)
        if i in BAD_INDEXES:
            _, change, status, code = BAD[BAD_INDEXES.index(i) % len(BAD)]
            row.update(change)
            expected[i + 2] = (status, code)  # the header is row 1
        rows.append(row)
    content = fill(pages.template(), rows)

    started = time.monotonic()
    batch, check = pages.check(content)
    checked_in = time.monotonic() - started

    # The dry run lists exactly the 20 bad rows, with their row numbers, and saves nothing.
    result = check.result
    assert result["total"] == 1000
    assert result["counts"]["ok"] == 980
    assert result["counts"]["error"] == 17 and result["counts"]["needs_choice"] == 3
    assert {r["row"]: r["status"] for r in result["rows"]} == {n: s for n, (s, _) in expected.items()}
    for listed in result["rows"]:
        status, code = expected[listed["row"]]
        if code:
            assert code in {p["code"] for p in listed["problems"]}, listed
    assert result["splits"] == {"06886": sorted(n for n, (s, _) in expected.items() if s == "needs_choice")}
    ready = {n for first, last in result["ranges"]["ok"] for n in range(first, last + 1)}
    assert ready == set(range(2, 1002)) - set(expected)  # every other row, as ranges of row numbers
    html = pages.page(batch)
    assert {int(n): s for n, s in ROW_RE.findall(html)} == {n: s for n, (s, _) in expected.items()}
    assert "Họ và tên" in html  # a problem names the register's column
    assert count(Case) == 0 and count(Child) == 0
    assert batch.status == "checked" and batch.total_rows == 1000 and batch.error_rows == 17
    assert check.progress == 100 and check.message == "Row 1000 of 1000"

    # The import saves the 980; the split old commune's rows wait for a choice.
    started = time.monotonic()
    run = pages.imported(batch)
    imported_in = time.monotonic() - started
    assert run.result["created"] == 980
    assert run.progress == 100 and run.message == "Row 1000 of 1000"
    assert count(Case) == 980 and count(Child) == 980
    assert batch.status == "imported" and batch.created_rows == 980 and batch.error_rows == 17
    assert batch.skipped_rows == 3
    fingerprints = db.session.scalars(select(Case.import_fingerprint)).all()
    assert len(set(fingerprints)) == 980
    assert all(re.fullmatch(r"[0-9a-f]{8}:[A-Za-z0-9_-]{43}", f) for f in fingerprints)
    html = pages.page(batch)
    assert '<dd data-count="created">980</dd>' in html
    assert pages.run(batch).status_code == 302  # a second run of the same batch is refused with a message
    assert "already been imported" in client.get(f"/imports/{batch.id}").get_data(as_text=True)

    # The same file again: every row is recognised, nothing is created, and the page says so.
    again, check = pages.check(content)
    assert again.id != batch.id
    assert check.result["counts"]["already_imported"] == 980 and check.result["counts"]["ok"] == 0
    run = pages.imported(again)
    assert run.result["created"] == 0
    assert count(Case) == 980
    assert "data-nothing-created" in pages.page(again)
    print(f"\n1,000-row register: dry run {checked_in:.1f} s, import {imported_in:.1f} s")


# --- old units ------------------------------------------------------------------------------------------------------


QN = {"old_province_name": "Quang Ninh"}  # without diacritics, without "Tỉnh": still found


def test_a_legacy_register_converts_whole_old_communes_and_asks_for_split_ones(app, runner, client, make_user, pages):
    make_user("social_worker", username="haibache", communes=("06970", "06886"))
    AuthActions(client).login("haibache")
    rows = [
        # Xã Thanh Sơn (06973) went whole into Xã Ba Chẽ (06970): by code, by a number cell, by its names.
        child_row(1, commune_code=None, old_ward_code="06973"),
        child_row(2, commune_code=None, old_ward_code=6973),
        child_row(3, commune_code=None, old_ward_name="Thanh Sơn", old_district_name="Huyện Ba Chẽ", **QN),
        # Xã Hải Lạng (06886) was split between 06799, 06886 and 06970.
        child_row(4, commune_code=None, old_ward_code="06886"),
        child_row(5, commune_code=None, old_ward_code="06886"),
        child_row(6, commune_code=None, old_ward_code="99998"),
        child_row(7, commune_code=None, old_ward_name="Không Có", old_district_name="Ba Chẽ", **QN),
    ]
    batch, check = pages.check(fill(pages.template(), rows))
    result = check.result
    assert {k: v for k, v in result["counts"].items() if v} == {"ok": 3, "needs_choice": 2, "error": 2}
    assert result["conversions"] == {"06973": {"06970": 3}}
    assert result["splits"] == {"06886": [5, 6]}
    codes = {r["row"]: [p["code"] for p in r.get("problems", [])] for r in result["rows"]}
    assert codes[7] == ["unknown_old_ward"] and codes[8] == ["unknown_old_ward"]
    html = pages.page(batch)
    assert 'name="choices[06886]"' in html
    assert '<option value="06886">' in html and '<option value="06970">' in html
    assert '<option value="06799" disabled>' in html  # a candidate outside the worker's area

    # A choice outside the mapping's candidates, outside the area, or for an old commune that was not split.
    for choices in ({"06886": "06922"}, {"06886": "06799"}, {"06973": "06970"}):
        response = pages.run(batch, choices)
        assert response.status_code == 422, choices
        assert importer.latest_job(batch, importer.RUN_TASK) is None
    assert count(Case) == 0

    run = pages.imported(batch, {"06886": "06886"})
    assert run.result["created"] == 5
    placed = dict(db.session.execute(select(Case.commune_code, func.count()).group_by(Case.commune_code)).all())
    assert placed == {"06970": 3, "06886": 2}


def test_choices_are_checked_against_the_mapping_and_the_area(app, make_user):
    """The import job checks the choices again with the same function as the page."""
    worker = make_user("social_worker", username="jobcheck", communes=("06970",))
    with pytest.raises(ValidationFailed):
        importer.clean_choices({"06886": "06799"}, worker)
    assert importer.clean_choices({"06886": "06970", "06973": ""}, worker) == {"06886": "06970"}


# --- refusals and access --------------------------------------------------------------------------------------------


def test_a_file_that_is_not_a_workbook_or_not_the_template_is_refused(app, runner, client, make_user, pages):
    make_user("social_worker", username="sai")
    AuthActions(client).login("sai")
    client.get("/lang/en")
    assert pages.upload(b"%PDF-1.4 not a register", name="so.pdf").status_code == 422
    assert pages.upload(b"%PDF-1.4 not a register", name="so.xlsx").status_code == 422
    other = io.BytesIO()
    workbook = load_workbook(io.BytesIO(pages.template()))
    workbook.worksheets[0].delete_rows(1)  # no header row: not the template any more
    workbook.save(other)
    batch, check = pages.check(other.getvalue())
    assert batch.status == "failed"
    assert "header row" in check.result["file_error"]
    assert count(Case) == 0


def test_only_the_uploader_sees_a_batch(app, runner, client, make_user, pages):
    make_user("social_worker", username="owner1")
    make_user("social_worker", username="elsewhere", communes=("07030",))
    make_user("social_worker", username="colleague")  # same commune: still not their batch
    auth = AuthActions(client)
    auth.login("owner1")
    batch, _ = pages.check(fill(pages.template(), [child_row(1)]))
    auth.logout()
    for username in ("elsewhere", "colleague"):
        auth.login(username)
        assert client.get(f"/imports/{batch.id}").status_code == 404
        assert pages.run(batch).status_code == 404
        assert str(batch.id) not in client.get("/imports/").get_data(as_text=True)
        auth.logout()
    assert count(Case) == 0


def test_the_dry_run_and_the_import_flag_the_same_child_twice_in_one_file(app, runner, client, make_user, pages):
    make_user("social_worker", username="trung")
    AuthActions(client).login("trung")
    first = child_row(3)  # has a personal ID
    same_row = dict(first)
    same_id = child_row(9, national_id=first["national_id"])
    batch, check = pages.check(fill(pages.template(), [first, same_row, same_id]))
    listed = {r["row"]: (r["status"], r.get("duplicate_of_row")) for r in check.result["rows"]}
    assert listed == {3: ("duplicate", 2), 4: ("duplicate", 2)}
    run = pages.imported(batch)
    assert run.result["created"] == 1
    assert {r["row"]: r["status"] for r in run.result["rows"]} == {3: "duplicate", 4: "duplicate"}


def test_cells_excel_changed_are_read_as_the_worker_meant(app, make_user):
    """Numbers lose leading zeros in Excel: unit codes are padded, a phone gets its 0, a personal ID is refused."""
    assert importer.unit_code(6970) == "06970"
    assert importer.unit_code("06970 - Xã Ba Chẽ") == "06970"
    problems = Problems()
    payload = importer.to_payload(
        {
            "national_id": 22012345678,
            "guardian_phone": 912345678,
            "received_at": datetime(2025, 3, 15),
            "sex": "nu",
            "has_disability": "x",
        },
        "06970",
        problems,
    )
    assert problems.codes == {"child.national_id": ["leading_zero_lost"]}
    assert payload["child"]["guardian_phone"] == "0912345678"
    assert payload["child"]["sex"] == "female" and payload["child"]["has_disability"] is True
