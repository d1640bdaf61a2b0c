"""A support payment in a real Chromium: a social worker requests a medical reimbursement with a receipt, the
supervisor (with her second factor) approves it from her inbox, the payment is recorded, and the case's and the
programme's ledgers show it paid. The case and the programme are set up through the operations (fast)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import TEST_PASSWORD, current_code
from tests.test_browser import HOME_URL, enter_code, sign_in
from tests.test_browser_cases import label
from tests.test_browser_support import sign_out
from tests.test_payments_web import case_with_approved_plan, default_policy, programme_of

PAYMENT_URL = re.compile(r"/payments/[0-9a-f-]{36}(#\w+)?$")
REAUTH_URL = re.compile(r"/reauth(\?.*)?$")
RECEIPT = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def confirm_if_asked(page: Page, user) -> bool:
    """Answer the re-authentication page (password and code) if the action led there; say whether it did."""
    if not REAUTH_URL.search(page.url):
        return False
    page.get_by_label(label("Mật khẩu", "Password")).fill(TEST_PASSWORD)
    page.get_by_label(re.compile(r"^(Mã xác thực|Code)$")).fill(current_code(user))
    page.get_by_role("button", name=label("Tiếp tục", "Continue")).click()
    return True


@pytest.mark.browser
def test_a_medical_reimbursement_is_requested_approved_paid_and_shown_in_the_ledgers(page: Page, make_user):
    worker = make_user("social_worker", full_name="Đặng Thu Hương")
    supervisor = make_user("supervisor", full_name="Phạm Thị Lan")
    officer = make_user("provincial_officer", full_name="Vũ Văn Tỉnh")
    default_policy()
    case = case_with_approved_plan(worker, supervisor, name="Vi Văn Nam")
    programme = programme_of(officer, name="Quỹ Bảo trợ trẻ em tỉnh Quảng Ninh")

    # The worker requests the reimbursement from the case's payments.
    sign_in(page, worker.username)
    expect(page).to_have_url(HOME_URL)
    page.goto(f"/cases/{case.id}")
    page.get_by_role("navigation", name=label("Hồ sơ", "Case")).get_by_role(
        "link", name=label("Chi trả", "Payments")
    ).click()
    expect(page.locator("#total-paid")).to_have_text("0 ₫")
    page.get_by_role("link", name=label("Lập đề nghị chi trả", "New payment request")).click()
    page.get_by_label(label("Chương trình", "Programme")).select_option(label=f"{programme.name} ({programme.year})")
    page.get_by_label(label("Mục đích chi", "Purpose")).select_option("medical_treatment")
    page.get_by_label(re.compile(r"^(Số tiền|Amount)")).fill("1.250.000")
    page.get_by_label(label("Nội dung chi", "What the money is for")).fill(
        "Viện phí khám và bó bột tay tại Bệnh viện đa khoa tỉnh."
    )
    page.get_by_label(label("Họ tên người nhận tiền", "Payee's full name")).fill("Vi Thị Mai")
    page.get_by_label(label("Quan hệ với trẻ", "Relation to the child")).fill("Mẹ")
    page.get_by_label(label("Chuyển khoản", "Bank transfer")).check()
    page.get_by_label(label("Ngân hàng và số tài khoản", "Bank and account number")).fill("Agribank 8888 0001 2345")
    page.get_by_role("button", name=label("Lưu dự thảo", "Save the draft")).click()
    expect(page).to_have_url(PAYMENT_URL)
    payment_url = page.url.split("#")[0]
    expect(page.locator("#amount")).to_have_text("1.250.000 ₫")
    expect(page.locator("#status")).to_have_attribute("data-status", "draft")

    page.locator('input[type="file"][name="file"]').set_input_files(
        files=[{"name": "hoa-don-vien-phi.pdf", "mimeType": "application/pdf", "buffer": RECEIPT}]
    )
    page.get_by_role("button", name=label("Đính kèm", "Attach")).click()
    expect(page.get_by_role("link", name="hoa-don-vien-phi.pdf")).to_be_visible()
    page.get_by_role("button", name=label("Gửi đề nghị", "Submit the request")).click()
    expect(page.locator("#status")).to_have_attribute("data-status", "submitted")
    sign_out(page)

    # The supervisor finds it in her inbox and approves it (her second factor is fresh from signing in; if the
    # check has lapsed she is asked for her password and a code, and comes back to the request).
    sign_in(page, supervisor.username)
    enter_code(page, supervisor)
    expect(page).to_have_url(HOME_URL)
    page.get_by_role("navigation", name="Chính").get_by_role("link", name=label("Chi trả", "Payments")).click()
    page.get_by_role("link", name=label("Chờ tôi quyết định", "Awaiting my decision")).click()
    row = page.locator("table.payments tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator("td.money")).to_have_text("1.250.000 ₫")
    expect(row.locator("td.age")).not_to_be_empty()
    row.get_by_role("link").first.click()
    expect(page).to_have_url(payment_url)
    page.get_by_role("button", name=label("Phê duyệt", "Approve")).click()
    if confirm_if_asked(page, supervisor):
        expect(page).to_have_url(payment_url)
        page.get_by_role("button", name=label("Phê duyệt", "Approve")).click()
    expect(page.locator("#status")).to_have_attribute("data-status", "approved")

    # She records the payment made by bank transfer.
    page.get_by_label(re.compile(r"^(Số chứng từ|Reference)")).fill("UNC-2026-0042")
    page.get_by_role("button", name=label("Ghi nhận đã chi trả", "Record the payment")).click()
    expect(page.locator("#status")).to_have_attribute("data-status", "paid")
    expect(page.locator("#paid-on")).not_to_be_empty()

    # The inbox is empty; the case's ledger and the programme's show the amount paid.
    page.goto("/payments/inbox")
    expect(page.locator("#inbox-empty")).to_be_visible()
    page.goto(payment_url)
    page.get_by_role("link", name=label("Chi trả của hồ sơ", "The case's payments")).click()
    expect(page.locator("#total-paid")).to_have_text("1.250.000 ₫")
    expect(page.locator("#total-approved")).to_have_text("0 ₫")
    page.goto(payment_url)
    page.get_by_role("link", name=f"{programme.name} ({programme.year})").click()
    expect(page.locator("#paid")).to_have_text("1.250.000 ₫")
    expect(page.locator("#available")).to_have_text("498.750.000 ₫")
