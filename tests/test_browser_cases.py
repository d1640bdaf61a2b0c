"""The case registry in a real Chromium: a social worker's day, from intake to a note and an attachment.

Fields are found by their accessible labels and buttons by their accessible names. Where a label is new, the pattern
also accepts its English msgid until the Vietnamese catalogue translates it.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.test_browser import HOME_URL, sign_in

CASE_URL = re.compile(r"/cases/[0-9a-f-]{36}(#\w+)?$")


def label(vietnamese: str, english: str) -> re.Pattern:
    """A label in Vietnamese, or its English msgid while the catalogue lacks it."""
    return re.compile(f"^({re.escape(vietnamese)}|{re.escape(english)})$")


@pytest.mark.browser
def test_worker_registers_a_child_finds_the_case_without_diacritics_and_adds_a_note_and_a_file(
    page: Page, make_user, tmp_path
):
    worker = make_user("social_worker", full_name="Đặng Thu Hương")
    sign_in(page, worker.username)
    expect(page).to_have_url(HOME_URL)
    navigation = page.get_by_role("navigation", name="Chính")

    # Intake: a child with a Vietnamese name.
    navigation.get_by_role("link", name=label("Tiếp nhận", "New case")).click()
    page.get_by_label(label("Họ và tên trẻ", "Full name of the child")).fill("Nguyễn Thị Ánh Tuyết")
    page.get_by_label(label("Giới tính", "Sex")).select_option(label="Nữ")
    page.get_by_label(label("Năm sinh", "Year of birth")).fill("2016")
    page.get_by_label("Trẻ em bị bỏ rơi").check()  # labels of codes come from codes.toml, already Vietnamese
    page.get_by_label(label("Mức độ nguy cơ", "Risk level")).select_option(label="Cao")
    page.get_by_label(label("Nguồn báo tin", "Who reported")).select_option(label="Tổng đài 111")
    page.get_by_label(label("Nội dung tin báo", "What was reported")).fill("Trẻ bị bỏ lại ở chợ một mình.")
    page.get_by_role("button", name=label("Lưu hồ sơ", "Save the case")).click()

    expect(page).to_have_url(CASE_URL)
    case_url = page.url
    expect(page.locator(".lead")).to_contain_text("Nguyễn Thị Ánh Tuyết")
    case_number = page.get_by_role("heading", level=1).inner_text().split()[-1]
    assert re.fullmatch(r"22-\d{4}-\d{6}", case_number), case_number

    # Search: the name typed without diacritics, words in another order.
    page.get_by_role("navigation", name="Chính").get_by_role("link", name=label("Hồ sơ", "Cases")).click()
    page.get_by_label(
        label("Số hồ sơ, số định danh, điện thoại hoặc họ tên", "Case number, personal ID, phone or name")
    ).fill("tuyet anh nguyen")
    page.get_by_role("button", name=label("Tìm", "Search")).click()
    results = page.get_by_role("table")
    expect(results.get_by_role("row")).to_have_count(2)  # the header and the one case
    results.get_by_role("link", name=case_number, exact=True).click()
    expect(page).to_have_url(case_url)

    # A note and an attachment, both listed on the case page.
    page.get_by_label(label("Ghi chú mới", "New note")).fill("Đã gặp bà ngoại của trẻ tại nhà.")
    page.get_by_role("button", name=label("Thêm ghi chú", "Add the note")).click()
    expect(page).to_have_url(CASE_URL)
    pdf = tmp_path / "bien-ban-tiep-nhan.pdf"
    pdf.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")
    page.get_by_label(label("Tệp (PDF, ảnh, Word, Excel)", "File (PDF, image, Word, Excel)")).set_input_files(pdf)
    page.get_by_role("button", name=label("Đính kèm tệp", "Attach the file")).click()
    expect(page).to_have_url(CASE_URL)

    expect(page.locator("#notes")).to_contain_text("Đã gặp bà ngoại của trẻ tại nhà.")
    expect(page.locator("#notes")).to_contain_text("Đặng Thu Hương")
    attachment = page.locator("#files").get_by_role("link", name="bien-ban-tiep-nhan.pdf")
    expect(attachment).to_be_visible()
    with page.expect_download() as download:
        attachment.click()
    assert download.value.suggested_filename == "bien-ban-tiep-nhan.pdf"
    assert download.value.path().read_bytes().startswith(b"%PDF-1.4")
