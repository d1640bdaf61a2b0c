"""The statistics dashboard in a real Chromium: a committee member opens it, changes the period, sees the charts
(with a hidden number drawn as a gap) and downloads the XLSX, whose cover sheet says what it holds."""

from __future__ import annotations

import io
import re

import pytest
from openpyxl import load_workbook
from playwright.sync_api import Page, expect

from casework.extensions import db
from tests.test_browser import HOME_URL, sign_in
from tests.test_browser_cases import label
from tests.test_stats_web import open_cases

NAMES = [f"Lường Thị Ví{n}" for n in range(15)]


@pytest.mark.browser
def test_a_committee_member_changes_the_period_sees_a_chart_and_downloads_the_xlsx(page: Page, make_user):
    # In the first half of 2025: 6 abandoned children in Ba Chẽ (February), 7 orphans in Kỳ Thượng (March) and
    # 2 trafficked children in Hà Tu (April): the 2 are hidden, and the 6 with them, so 7 is drawn.
    worker = make_user("social_worker", communes=("06970", "06979", "06652"), username="browserworker")
    open_cases(worker, 6, "06970", "abandoned", "school", 2, NAMES[:6])
    open_cases(worker, 7, "06979", "orphan_both_parents", "hotline_111", 3, NAMES[6:13])
    open_cases(worker, 2, "06652", "trafficked", "police", 4, NAMES[13:])
    db.session.commit()
    member = make_user("committee_member", full_name="Trần Văn Ủy")

    sign_in(page, member.username)
    expect(page).to_have_url(HOME_URL)
    page.get_by_role("navigation", name="Chính").get_by_role("link", name=label("Thống kê", "Statistics")).click()
    expect(page).to_have_url(re.compile(r"/stats/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(label("Thống kê về trẻ em", "Statistics on children"))

    # The first half of 2025.
    page.get_by_label(label("Kỳ báo cáo", "Period")).select_option("half")
    page.get_by_label(label("Năm", "Year")).select_option("2025")
    page.get_by_label(label("Sáu tháng", "Half-year")).select_option("1")
    page.get_by_role("button", name=label("Xem", "Show")).click()
    expect(page).to_have_url(re.compile(r"kind=half&year=2025&half=1"))
    expect(page.locator("#scope")).to_contain_text("6 tháng đầu 2025")

    # The charts: bars by group and by commune, a line over the months; hidden numbers are gaps with their mark.
    expect(page.locator("#suppression-note")).to_be_visible()
    groups = page.locator("svg#chart-groups")
    expect(groups).to_be_visible()
    expect(groups.locator('rect[fill="#2a6cb0"]')).to_have_count(1)  # the 7 orphans
    expect(groups.locator('g.bar[data-value="7"]')).to_have_count(1)
    expect(groups.locator("text.mark")).to_have_text(["×", "<5"])  # the abandoned (6, hidden with them), trafficked
    communes = page.locator("svg#chart-communes")
    expect(communes.locator('g.bar[data-value="7"]')).to_have_count(1)
    expect(communes.locator('g.bar[data-value="<5"]')).to_have_count(1)
    expect(page.locator("svg#chart-months circle")).to_have_count(4)  # January, March, May, June
    assert "Lường" not in page.content()

    # The XLSX, with its cover sheet.
    with page.expect_download() as download:
        page.get_by_role("link", name=label("Tải tệp XLSX", "Download XLSX")).click()
    assert download.value.suggested_filename == "thong-ke-22-2025-h1.xlsx"
    book = load_workbook(io.BytesIO(download.value.path().read_bytes()))  # the path has no .xlsx suffix
    cover = {row[0]: row[1] for row in book.worksheets[0].iter_rows(values_only=True) if row and row[0]}
    assert cover["Phạm vi"] == "Tỉnh Quảng Ninh"
    assert cover["Kỳ báo cáo"] == "6 tháng đầu 2025"
    assert "<5" in cover["Kiểm soát công bố"]
    assert any(row and "<5" in row for row in book.worksheets[1].iter_rows(values_only=True))
