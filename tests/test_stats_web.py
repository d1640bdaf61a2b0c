"""The statistics pages: the dashboard with its tables and charts, the drill-down to a commune, the exports (CSV,
XLSX with its cover sheet, and the background job for a large one), and every refusal.

The data: eight cases of 2025 in Quảng Ninh (22), six abandoned children in Xã Ba Chẽ (06970) and two orphans in
Xã Kỳ Thượng (06979). A committee member sees the two as "<5" (and what would give them away as "×"); a provincial
officer of the province sees 2. The children have names and case numbers that no statistics output may contain.
"""

from __future__ import annotations

import html
import io
import re
import zipfile

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from casework.audit import AuditEvent
from casework.cases import operations as case_operations
from casework.extensions import db
from casework.jobs import JobContext
from casework.jobs.models import Job
from casework.security import files
from casework.security.text import fold
from casework.stats import charts, tasks
from tests.conftest import AuthActions, wait_for_job

BA_CHE, KY_THUONG = "06970", "06979"
YEAR_2025 = {"kind": "year", "year": "2025"}
#: Names no statistics output may hold (with the case numbers, found when the cases are made).
NAMES = [f"Quàng Thị Xuyến{n}" for n in range(6)] + ["Hoàng Văn Dziệp", "Hoàng Thị Dziệu"]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def open_cases(worker, count: int, commune: str, group: str, source: str, month: int, names) -> list[str]:
    """Open ``count`` cases of 2025 and return their case numbers."""
    numbers = []
    for n in range(count):
        payload = {
            "child": {"full_name": names[n], "sex": "female", "birth_year": 2014, "commune_code": commune},
            "categories": [group],
            "risk_level": "medium",
            "source": source,
            "received_at": f"2025-{month:02d}-{10 + n:02d}T09:00:00+07:00",
            "summary": "Báo cáo để thống kê.",
        }
        case = case_operations.open_case(case_operations.validate_intake(payload, worker), worker)
        numbers.append(case.case_number)
    return numbers


def make_cases_2025(make_user) -> dict:
    """Six abandoned children in Ba Chẽ (February–March 2025), two orphans in Kỳ Thượng (April 2025), committed;
    return their names and case numbers."""
    worker = make_user("social_worker", communes=(BA_CHE, KY_THUONG), username="statsworker")
    numbers = open_cases(worker, 6, BA_CHE, "abandoned", "school", 2, NAMES[:6])
    numbers += open_cases(worker, 2, KY_THUONG, "orphan_both_parents", "hotline_111", 4, NAMES[6:])
    db.session.commit()
    return {"names": NAMES, "case_numbers": numbers}


@pytest.fixture
def cases_2025(make_user) -> dict:
    return make_cases_2025(make_user)


def signed_in(app, make_user, role: str, *, province: str = "22", username: str | None = None):
    user = make_user(role, province=province, username=username or f"stats{role.replace('_', '')}{province}")
    client = app.test_client()
    response = AuthActions(client).login(user.username)
    assert response.status_code == 302 and response.headers["Location"] == "/", response.status_code
    return client, user


def text_of(cell: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", cell)).strip()


def table_rows(page: str, code: str) -> list[list[str]]:
    """The rows of an indicator's table as text, its header first."""
    section = re.search(rf'<section[^>]*id="indicator-{code}".*?</section>', page, re.S)
    assert section, f"no table of {code}"
    return [
        [text_of(c) for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", section.group(0), re.S)
    ]


def row_named(rows: list[list[str]], label: str) -> list[str]:
    found = [row for row in rows if row and row[0] == label]
    assert len(found) == 1, (label, rows)
    return found[0]


def stats_events(fmt: str | None = None) -> list[AuditEvent]:
    db.session.rollback()  # what the requests committed
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "stats.export")).all()
    return [e for e in events if fmt is None or e.details["format"] == fmt]


def readable(data: bytes) -> str:
    """Everything a reader of a file could see: its bytes as text, and each member of an XLSX opened."""
    parts = [data.decode("utf-8", "replace")]
    if data[:2] == b"PK":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            parts += [archive.read(name).decode("utf-8", "replace") for name in archive.namelist()]
    text = html.unescape("\n".join(parts))
    return text + "\n" + fold(text)


def assert_no_child_in(data: bytes, secrets: dict, where: str) -> None:
    seen = readable(data)
    for secret in [*secrets["names"], *secrets["case_numbers"]]:
        assert secret not in seen and fold(secret) not in seen, f"{where} shows {secret!r}"


# --- who sees what ----------------------------------------------------------------------------------------------------


def test_a_committee_member_sees_small_counts_hidden_and_the_page_says_so(app, make_user, cases_2025):
    client, _ = signed_in(app, make_user, "committee_member")
    response = client.get("/stats/", query_string=YEAR_2025)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'id="suppression-note"' in page
    assert "&lt;5" in page and "×" in page
    rows = table_rows(page, "children_special")
    assert rows[0][0] == "Xã, phường"  # the breakdown's name heads the communes
    ky_thuong = row_named(rows, "Xã Kỳ Thượng")
    assert ky_thuong[-2] == "<5"  # this period's total of the commune: 2 children, hidden
    assert "2" not in ky_thuong[1:]
    ba_che = row_named(rows, "Xã Ba Chẽ")
    assert ba_che[-2] == "×"  # 6, hidden so that Kỳ Thượng's 2 cannot be worked out from the province's 8
    assert row_named(rows, "Tổng")[-2] == "8"
    # The month series is suppressed too: two reports in April 2025.
    assert re.search(r'<g class="point" data-value="&lt;5">', page)


def test_a_provincial_officer_sees_the_numbers_of_the_province_as_they_are(app, make_user, cases_2025):
    client, _ = signed_in(app, make_user, "provincial_officer")
    page = client.get("/stats/", query_string=YEAR_2025).get_data(as_text=True)
    assert 'id="suppression-note"' not in page
    assert 'id="unsuppressed-note"' in page
    rows = table_rows(page, "children_special")
    assert row_named(rows, "Xã Kỳ Thượng")[-2] == "2"
    assert row_named(rows, "Xã Ba Chẽ")[-2] == "6"
    assert "&lt;5" not in page


def test_the_dashboard_opens_on_the_current_year_broken_down_by_commune(app, make_user):
    from casework.stats.indicators import today

    client, _ = signed_in(app, make_user, "committee_member")
    page = client.get("/stats/").get_data(as_text=True)
    assert re.search(rf'<option selected value="{today().year}">', page)
    assert re.search(r'<option selected value="commune">', page)
    assert (
        'id="chart-groups-title"' in page and 'id="chart-communes-title"' in page and 'id="chart-months-title"' in page
    )


def test_another_province_is_refused(app, make_user, cases_2025):
    for role in ("committee_member", "provincial_officer"):
        client, _ = signed_in(app, make_user, role)
        for path in ("/stats/", "/stats/export.csv", "/stats/export.xlsx"):
            response = client.get(path, query_string={**YEAR_2025, "province": "01"})
            assert response.status_code == 403, (role, path)
            assert "Xã" not in response.get_data(as_text=True)
    # A committee member of Hà Nội is refused Quảng Ninh.
    client, _ = signed_in(app, make_user, "committee_member", province="01")
    assert client.get("/stats/", query_string={**YEAR_2025, "province": "22"}).status_code == 403
    assert stats_events() == []


@pytest.mark.parametrize("role", ["social_worker", "supervisor", "auditor", "admin", "finance_officer"])
def test_roles_that_never_see_statistics_are_refused(app, make_user, role, cases_2025):
    client, _ = signed_in(app, make_user, role)
    for path in ("/stats/", "/stats/export.csv", "/stats/export.xlsx"):
        assert client.get(path, query_string=YEAR_2025).status_code == 403, path
    assert "/stats/" not in client.get("/").get_data(as_text=True)  # not offered in the navigation either


def test_the_navigation_and_the_home_page_lead_committee_members_to_the_dashboard(app, make_user):
    client, _ = signed_in(app, make_user, "committee_member")
    home = client.get("/").get_data(as_text=True)
    assert home.count('href="/stats/"') == 2  # the navigation and the home page's button
    officer, _ = signed_in(app, make_user, "provincial_officer")
    assert 'href="/stats/"' in officer.get("/").get_data(as_text=True)


def test_a_communes_name_drills_down_to_its_dashboard_and_back(app, make_user, cases_2025):
    client, _ = signed_in(app, make_user, "provincial_officer")
    page = client.get("/stats/", query_string={**YEAR_2025, "breakdown": "commune"}).get_data(as_text=True)
    section = re.search(r'<section[^>]*id="indicator-children_special".*?</section>', page, re.S).group(0)
    link = re.search(r'<a href="([^"]+)">Xã Ba Chẽ</a>', section)
    assert link, "the commune's name is not a link"
    url = html.unescape(link.group(1))
    assert "commune=06970" in url and "year=2025" in url
    assert f'href="{link.group(1)}"' in page  # the bar of the commune chart leads there too
    commune_page = client.get(url).get_data(as_text=True)
    assert "<strong>Xã Ba Chẽ</strong>" in commune_page
    rows = table_rows(commune_page, "children_special")
    assert [row[0] for row in rows[1:]] == ["Xã Ba Chẽ", "Tổng"]
    assert row_named(rows, "Xã Ba Chẽ")[-2] == "6"
    back = re.search(r'<p class="lead" id="scope">\s*<a href="([^"]+)">Tỉnh Quảng Ninh</a>', commune_page)
    assert back, "no way back to the province"
    province_page = client.get(html.unescape(back.group(1))).get_data(as_text=True)
    assert row_named(table_rows(province_page, "children_special"), "Xã Kỳ Thượng")[-2] == "2"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"kind": "custom", "from": "31/12/2025", "to": "01/01/2025"}, "The period ends before it starts."),
        ({"kind": "custom", "from": "hôm qua", "to": "01/01/2025"}, "Write the date as dd/mm/yyyy."),
        ({"kind": "custom", "from": "01/01/2025"}, "Give the last day of the period."),
        ({"kind": "half", "year": "2025", "half": "3"}, "Choose the first or the second half of the year."),
        ({"kind": "year", "year": "1899"}, "Choose a year between 2000 and 2100."),
        ({"kind": "year", "year": "2025", "commune": "00004"}, "Choose a commune of the province."),
        ({"kind": "year", "year": "2025", "breakdown": "religion"}, "Unknown breakdown."),
    ],
)
def test_a_bad_choice_is_refused_with_a_message_and_exports_nothing(app, make_user, query, message):
    client, _ = signed_in(app, make_user, "committee_member")
    client.get("/lang/en")
    for path in ("/stats/", "/stats/export.csv", "/stats/export.xlsx"):
        response = client.get(path, query_string=query)
        assert response.status_code == 422, (path, response.status_code)
        assert message in html.unescape(response.get_data(as_text=True)), path
    assert stats_events() == []
    assert db.session.scalars(select(Job)).all() == []


# --- exports ----------------------------------------------------------------------------------------------------------


def test_the_csv_export_carries_the_marks_and_is_audited(app, make_user, cases_2025):
    client, user = signed_in(app, make_user, "committee_member")
    response = client.get("/stats/export.csv", query_string=YEAR_2025)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"] == "attachment; filename=thong-ke-22-2025.csv"
    assert response.headers["Cache-Control"] == "no-store"
    text = response.get_data().decode("utf-8-sig")
    assert "Xã Kỳ Thượng" in text and "<5" in text and "×" in text
    assert ",2," not in text
    events = stats_events("csv")
    assert len(events) == 1
    assert events[0].actor_username == user.username
    assert events[0].details == {
        "format": "csv",
        "commune": None,
        "from": "2025-01-01",
        "to": "2025-12-31",
        "suppressed": True,
    }


def test_the_xlsx_export_has_a_cover_sheet_and_the_marks(app, make_user, cases_2025):
    client, _ = signed_in(app, make_user, "committee_member")
    response = client.get("/stats/export.xlsx", query_string={"kind": "half", "year": "2025", "half": "1"})
    assert response.status_code == 200
    assert response.mimetype == XLSX
    assert response.headers["Content-Disposition"] == "attachment; filename=thong-ke-22-2025-h1.xlsx"
    assert response.headers["Cache-Control"] == "no-store"
    book = load_workbook(io.BytesIO(response.get_data()))
    cover = {row[0]: row[1] for row in book.worksheets[0].iter_rows(values_only=True) if row and row[0]}
    assert cover["Phạm vi"] == "Tỉnh Quảng Ninh"
    assert cover["Kỳ báo cáo"] == "6 tháng đầu 2025"
    assert re.fullmatch(r"\d\d/\d\d/\d{4} \d\d:\d\d", cover["Thời điểm lập"])
    assert "<5" in cover["Kiểm soát công bố"]
    assert any("Điều 10" in str(v) or "Art. 10" in str(v) for v in cover.values())  # the definitions
    data = list(book.worksheets[1].iter_rows(values_only=True))
    assert any("<5" in row for row in data) and any("×" in row for row in data)
    assert len(stats_events("xlsx")) == 1


def test_an_officers_export_is_unsuppressed_and_says_so(app, make_user, cases_2025):
    client, _ = signed_in(app, make_user, "provincial_officer")
    response = client.get("/stats/export.xlsx", query_string=YEAR_2025)
    book = load_workbook(io.BytesIO(response.get_data()))
    rule = [row[1] for row in book.worksheets[0].iter_rows(values_only=True) if row and row[0] == "Kiểm soát công bố"]
    assert rule and "<5" not in rule[0]
    assert not any("<5" in row for row in book.worksheets[1].iter_rows(values_only=True))
    assert stats_events("xlsx")[0].details["suppressed"] is False


def test_no_stats_output_names_a_child_or_a_case(app, make_user, api_token, cases_2025):
    client, user = signed_in(app, make_user, "committee_member")
    queries = [
        YEAR_2025,
        {**YEAR_2025, "breakdown": ""},
        {**YEAR_2025, "breakdown": "sex"},
        {**YEAR_2025, "commune": KY_THUONG},
        {"kind": "custom", "from": "01/04/2025", "to": "30/04/2025", "breakdown": "age_band"},
    ]
    for query in queries:
        for path in ("/stats/", "/stats/export.csv", "/stats/export.xlsx"):
            response = client.get(path, query_string=query)
            assert response.status_code == 200, (path, query)
            assert_no_child_in(response.get_data(), cases_2025, f"{path} {query}")
    token = api_token(user)
    answer = client.get(
        "/api/v1/stats",
        query_string={"from": "2025-01-01", "to": "2025-12-31"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 200
    assert_no_child_in(answer.get_data(), cases_2025, "/api/v1/stats")


@pytest.mark.usefixtures("rq_worker")
def test_a_long_period_is_exported_in_the_background_for_its_starter_only(app, make_user, cases_2025):
    client, user = signed_in(app, make_user, "committee_member")
    query = {"kind": "custom", "from": "01/01/2024", "to": "31/12/2025"}
    response = client.get("/stats/export.xlsx", query_string=query)
    assert response.status_code == 302
    job_url = response.headers["Location"]
    assert re.fullmatch(r"/stats/exports/[0-9a-f-]{36}", job_url)
    job = db.session.scalars(select(Job).where(Job.task == "stats.export")).one()
    job = wait_for_job(job.id)
    assert job.status == "finished", job.error
    assert job.created_by_id == user.id
    page = client.get(job_url).get_data(as_text=True)
    assert "thong-ke-22-20240101-20251231.xlsx" in page
    download = client.get(f"{job_url}/download")
    assert download.status_code == 200
    assert download.mimetype == XLSX
    assert download.headers["Content-Disposition"] == "attachment; filename=thong-ke-22-20240101-20251231.xlsx"
    assert download.headers["Cache-Control"] == "no-store"
    book = load_workbook(io.BytesIO(download.get_data()))
    cover = {row[0]: row[1] for row in book.worksheets[0].iter_rows(values_only=True) if row and row[0]}
    assert cover["Kỳ báo cáo"] == "01/01/2024 – 31/12/2025"
    assert_no_child_in(download.get_data(), cases_2025, "the background export")
    events = stats_events("xlsx")
    assert len(events) == 1 and events[0].actor_username == user.username
    downloads = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "file.download")).all()
    assert [e.actor_username for e in downloads] == [user.username]
    # Run again (a worker restarted mid-way), the job stores no second file.
    again = tasks.export_statistics(JobContext(job), **job.params)
    assert again["file_id"] == job.result["file_id"]
    assert (
        len(db.session.scalars(select(files.StoredFile).where(files.StoredFile.owner_type == "stats_export")).all())
        == 1
    )
    # Another committee member of the province cannot see the job or take its file.
    other, _ = signed_in(app, make_user, "committee_member", username="othermember")
    assert other.get(job_url).status_code == 404
    assert other.get(f"{job_url}/download").status_code == 404


@pytest.mark.usefixtures("rq_worker")
def test_a_large_breakdown_is_exported_in_the_background(app, make_user, cases_2025, monkeypatch):
    monkeypatch.setattr(tasks, "MAX_DIRECT_ROWS", 500)  # by commune: ~3,000 rows; without a breakdown: ~130
    client, _ = signed_in(app, make_user, "provincial_officer")
    response = client.get("/stats/export.csv", query_string={**YEAR_2025, "breakdown": "commune"})
    assert response.status_code == 302
    job = wait_for_job(db.session.scalars(select(Job).where(Job.task == "stats.export")).one().id)
    assert job.status == "finished", job.error
    download = client.get(f"{response.headers['Location']}/download")
    assert download.status_code == 200
    assert download.headers["Content-Type"] == "text/csv; charset=utf-8"
    text = download.get_data().decode("utf-8-sig")
    assert "Xã Kỳ Thượng" in text and "<5" not in text
    # Without a breakdown the same export is small enough to answer at once.
    assert client.get("/stats/export.csv", query_string={**YEAR_2025, "breakdown": ""}).status_code == 200


def test_an_export_job_page_is_refused_to_other_roles_and_for_other_jobs(app, make_user):
    client, user = signed_in(app, make_user, "committee_member")
    selfcheck = Job(task="jobs.selfcheck", params={}, created_by_id=user.id, status="finished")
    db.session.add(selfcheck)
    db.session.commit()
    # A job of another kind is not an export, even for its starter.
    assert client.get(f"/stats/exports/{selfcheck.id}").status_code == 404
    assert client.get(f"/stats/exports/{selfcheck.id}/download").status_code == 404


# --- the charts -------------------------------------------------------------------------------------------------------


def test_the_charts_are_self_contained_svg_with_hidden_values_drawn_as_gaps(app):
    items = [
        charts.Item("Trẻ em bị bỏ rơi", 12),
        charts.Item("<script>alert(1)</script> & co", "<5"),
        charts.Item("Xã Ba Chẽ", "×", href="/stats/?commune=06970&year=2025"),
        charts.Item("Không có số liệu", None),
    ]
    svg = str(charts.bar_chart(items, chart_id="c", title="Tiêu đề <b>", fmt=str))
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "<script" not in svg and "style=" not in svg and "<style" not in svg
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in svg
    assert "Tiêu đề &lt;b&gt;" in svg
    assert 'href="/stats/?commune=06970&amp;year=2025"' in svg
    # One drawn bar (12); the hidden and missing values are empty outlines with their mark, never a bar.
    assert len(re.findall(r'<rect [^>]*fill="#2a6cb0"', svg)) == 1
    assert len(re.findall(r'<rect [^>]*class="gap"', svg)) == 3
    assert re.search(r'class="mark">&lt;5</text>', svg) and re.search(r'class="mark">×</text>', svg)
    line = str(
        charts.line_chart(
            [charts.Item("01/2025", 3), charts.Item("02/2025", "<5"), charts.Item("03/2025", 7)],
            chart_id="l",
            title="T",
        )
    )
    assert "<polyline" not in line  # the line breaks at the hidden month: no run of two published points
    assert line.count("<circle") == 2 and "&lt;5</text>" in line
    assert "style=" not in line and "<script" not in line


def test_the_dashboard_draws_its_charts_in_the_page(app, make_user, cases_2025):
    client, _ = signed_in(app, make_user, "provincial_officer")
    response = client.get("/stats/", query_string=YEAR_2025)
    page = response.get_data(as_text=True)
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert page.count('<svg xmlns="http://www.w3.org/2000/svg"') == 3
    groups = re.search(r'<svg [^>]*id="chart-groups".*?</svg>', page, re.S)
    assert groups and len(re.findall(r'<rect [^>]*fill="#2a6cb0"', groups.group(0))) == 2  # abandoned, orphans
    assert "<polyline" in page  # February to April 2025, every month published for the officer
    assert " style=" not in page
