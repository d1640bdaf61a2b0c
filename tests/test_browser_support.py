"""The support procedure in a real Chromium: a case taken from the report to its closure through the pages, by a
social worker and a supervisor (with her second factor), and the timeline that shows it all."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.test_browser import HOME_URL, enter_code, sign_in
from tests.test_browser_cases import CASE_URL, label


def take_step(page: Page, to: str, note: str) -> None:
    """Open the step leading to stage ``to`` on the procedure page, write the note and take it."""
    item = page.locator(f'li.step[data-to="{to}"]')
    item.locator("summary").click()
    item.get_by_label(label("Ghi chú", "Note")).fill(note)
    item.get_by_role("button").click()
    expect(page.locator(".flash-success")).to_be_visible()


def sign_out(page: Page) -> None:
    page.get_by_role("button", name=label("Đăng xuất", "Sign out")).click()


@pytest.mark.browser
def test_a_case_goes_from_report_to_closure_through_the_pages_and_the_timeline_shows_it(page: Page, make_user):
    worker = make_user("social_worker", full_name="Đặng Thu Hương")
    supervisor = make_user("supervisor", full_name="Phạm Thị Lan")

    # The report (Mẫu 01), through the intake form.
    sign_in(page, worker.username)
    expect(page).to_have_url(HOME_URL)
    page.get_by_role("navigation", name="Chính").get_by_role("link", name=label("Tiếp nhận", "New case")).click()
    page.get_by_label(label("Họ và tên trẻ", "Full name of the child")).fill("Vi Thị Hoa")
    page.get_by_label(label("Giới tính", "Sex")).select_option(label="Nữ")
    page.get_by_label(label("Năm sinh", "Year of birth")).fill("2013")
    page.get_by_label("Trẻ em bị bỏ rơi").check()
    page.get_by_label(label("Mức độ nguy cơ", "Risk level")).select_option(label="Trung bình")
    page.get_by_label(label("Nguồn báo tin", "Who reported")).select_option(label="Tổng đài 111")
    page.get_by_label(label("Nội dung tin báo", "What was reported")).fill("Trẻ thường bị bỏ đói, nghỉ học nhiều.")
    page.get_by_role("button", name=label("Lưu hồ sơ", "Save the case")).click()
    expect(page).to_have_url(CASE_URL)
    case_url = page.url.split("#")[0]

    # The procedure page: assessment, detailed assessment, the plan.
    page.get_by_role("link", name=label("Quy trình và hỗ trợ", "Procedure and support")).click()
    expect(page.locator("#current-stage")).to_have_text("Tiếp nhận thông báo")
    take_step(page, "initial_assessment", "Đã xác minh với nhà trường.")
    expect(page.locator("#current-stage")).to_have_text("Đánh giá nguy cơ ban đầu")

    assessments = page.locator("#assessments")
    assessments.locator("summary").click()
    for factor, rating in (("harm_severity", "medium"), ("abuser_access", "medium"), ("care_obstacles", "high")):
        assessments.locator(f'input[name="{factor}"][value="{rating}"]').check()
    assessments.locator('input[name="child_capacity"][value="medium"]').check()
    assessments.get_by_role("button", name=label("Ghi nhận đánh giá", "Record the assessment")).click()
    expect(page.locator(".flash-success")).to_be_visible()
    expect(page.locator("#assessments table td strong")).to_have_text(label("Cao", "High"))  # 1 + 1 + 2 = 4

    take_step(page, "detailed_assessment", "Họp trường hợp với nhà trường và trạm y tế.")
    take_step(page, "plan_drafting", "Bắt đầu lập kế hoạch.")
    plan = page.locator("#plan form")
    plan.get_by_label(label("Mục tiêu của kế hoạch", "Goals of the plan")).fill("Trẻ được ăn đủ và đi học đều.")
    plan.locator('select[name="services-0-service_type"]').select_option("counselling")
    plan.locator('input[name="services-0-responsible"]').fill("Cán bộ bảo vệ trẻ em xã")
    plan.locator('select[name="services-1-service_type"]').select_option("education_support")
    plan.get_by_role("button", name=label("Lưu kế hoạch", "Save the plan")).click()
    expect(page.locator(".flash-success")).to_be_visible()
    take_step(page, "plan_approval", "Trình chủ tịch xã.")
    # The worker cannot approve it: the step is shown closed with its reason.
    expect(page.locator('li.step[data-to="support"] .reasons li')).to_have_text(
        label("Vai trò của bạn không được thực hiện bước này.", "Your role cannot take this step.")
    )
    sign_out(page)

    # The supervisor approves the plan (Mẫu 05), after her second factor.
    sign_in(page, supervisor.username)
    enter_code(page, supervisor)
    expect(page).to_have_url(HOME_URL)
    page.goto(case_url.replace("/cases/", "/cases/") + "/procedure")
    take_step(page, "support", "Đồng ý kế hoạch.")
    expect(page.locator("#plan-status")).to_have_text(label("Đã phê duyệt", "Approved"))

    # Support carried out: a counselling session, then the review and the closing.
    services = page.locator("#services")
    services.locator("summary").click()
    services.locator('select[name="service_type"]').select_option("counselling")
    services.locator('input[name="delivered_on"]').fill("20/11/2026")
    services.locator('input[name="duration_minutes"]').fill("45")
    services.locator('textarea[name="notes"]').fill("Trẻ cởi mở hơn.")
    services.get_by_role("button", name=label("Ghi nhận dịch vụ", "Record the service")).click()
    expect(page.locator(".flash-success")).to_be_visible()
    take_step(page, "review", "Rà soát sau một tháng.")

    closing = page.locator('li.step[data-to="closed"]')
    closing.locator("summary").click()
    closing.locator('select[name="closure_reason"]').select_option("goals_met")
    closing.get_by_label(label("Ghi chú", "Note")).fill("Trẻ ổn định, đi học đều.")
    closing.get_by_role("button").click()
    expect(page.locator("#current-stage")).to_have_text("Đã đóng hồ sơ")

    # The timeline shows the report, the steps, the plan, the service and the closing, in order.
    page.get_by_role("link", name=label("Dòng thời gian", "Timeline")).first.click()
    page.get_by_role("link", name=label("Cũ nhất trước", "Oldest first")).click()
    events = page.locator("#timeline li")
    texts = events.all_inner_texts()
    joined = "\n".join(texts)
    for expected in (
        "Trẻ thường bị bỏ đói, nghỉ học nhiều.",
        "Đã xác minh với nhà trường.",
        "Đồng ý kế hoạch.",
        "Trẻ cởi mở hơn.",
        "Trẻ ổn định, đi học đều.",
    ):
        assert expected in joined, expected
    assert joined.index("Trẻ thường bị bỏ đói") < joined.index("Đồng ý kế hoạch.") < joined.index("Trẻ ổn định")
    assert re.search("Đã đóng hồ sơ", texts[-1]) or "Đã đóng hồ sơ" in joined
