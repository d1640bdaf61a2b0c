"""The machine doors of the statistics: ``GET /api/v1/stats`` and ``casework stats``.

Both apply the same disclosure control as the pages: a committee member's answer has the two orphans of Xã Kỳ
Thượng as "<5"; a provincial officer of the province gets 2. The command line without ``--as`` writes suppressed
numbers; with ``--as`` it applies that user's rights, and refuses a user of another province.
"""

from __future__ import annotations

import csv
import io
import json

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from casework.audit import AuditEvent
from casework.extensions import db
from tests.conftest import casework_cli
from tests.test_api import assert_error, bearer
from tests.test_stats_web import KY_THUONG, assert_no_child_in, make_cases_2025, stats_events

API = "/api/v1/stats"
YEAR_2025 = {"from": "2025-01-01", "to": "2025-12-31"}


@pytest.fixture
def cases_2025(make_user) -> dict:
    return make_cases_2025(make_user)


def indicator(body: dict, code: str) -> dict:
    return next(i for i in body["indicators"] if i["code"] == code)


def column_total(item: dict, key: str):
    keys = [c["key"] for c in item["columns"]]
    return item["column_totals"][keys.index(key)]


# --- GET /api/v1/stats ------------------------------------------------------------------------------------------------


def test_a_committee_member_gets_suppressed_indicators_with_their_breakdown(client, make_user, api_token, cases_2025):
    token = api_token(make_user("committee_member"))
    response = client.get(API, query_string={**YEAR_2025, "breakdown": "commune"}, headers=bearer(token))
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["province"] == "22" and body["commune"] is None and body["breakdown"] == "commune"
    # Dates that make a whole year are compared with the year before (2024 had 366 days).
    assert body["period"] == {"from": "2025-01-01", "to": "2025-12-31", "kind": "year"}
    assert body["previous_period"] == {"from": "2024-01-01", "to": "2024-12-31", "kind": "year"}
    assert body["suppression"] == {"k": 5, "applied": True, "any_suppressed": True}
    special = indicator(body, "children_special")
    assert column_total(special, KY_THUONG) == "<5"
    assert column_total(special, "06970") == "×"
    assert special["total"] == 8 and special["suppressed"] is True
    assert special["previous"]["total"] == 0
    months = body["new_cases_by_month"]
    assert months["months"][0] == "2025-01" and len(months["months"]) == 12
    assert months["values"][3] == "<5"  # April: the two orphans
    assert months["total"] == 8
    assert all(isinstance(v, int | str) for v in months["values"])
    assert_no_child_in(response.get_data(), cases_2025, "/api/v1/stats")


def test_a_provincial_officer_gets_the_numbers_of_the_province(client, make_user, api_token, cases_2025):
    token = api_token(make_user("provincial_officer"))
    body = client.get(API, query_string={**YEAR_2025, "breakdown": "commune"}, headers=bearer(token)).get_json()
    assert body["suppression"] == {"k": 0, "applied": False, "any_suppressed": False}
    special = indicator(body, "children_special")
    assert column_total(special, KY_THUONG) == 2 and column_total(special, "06970") == 6
    rows = [r["key"] for r in special["rows"]]
    assert special["row_totals"][rows.index("orphan_both_parents")] == 2
    assert body["new_cases_by_month"]["values"][:5] == [0, 6, 0, 2, 0]  # February: Ba Chẽ; April: Kỳ Thượng


def test_a_year_or_half_and_a_commune_can_be_asked_for(client, make_user, api_token, cases_2025):
    token = api_token(make_user("provincial_officer"))
    body = client.get(
        API, query_string={"year": "2025", "half": "1", "commune": KY_THUONG}, headers=bearer(token)
    ).get_json()
    assert body["period"] == {"from": "2025-01-01", "to": "2025-06-30", "kind": "half"}
    assert body["previous_period"] == {"from": "2024-07-01", "to": "2024-12-31", "kind": "half"}
    assert body["commune"] == KY_THUONG and body["breakdown"] is None
    assert indicator(body, "children_special")["total"] == 2
    assert len(body["new_cases_by_month"]["months"]) == 6
    body = client.get(API, query_string={"from": "01/03/2025", "to": "30/04/2025"}, headers=bearer(token)).get_json()
    assert body["period"] == {"from": "2025-03-01", "to": "2025-04-30", "kind": "custom"}
    assert body["previous_period"] == {"from": "2024-12-30", "to": "2025-02-28", "kind": "custom"}  # as many days
    assert body["new_cases_by_month"]["months"] == ["2025-03", "2025-04"]
    assert body["new_cases_by_month"]["values"] == [0, 2]


def test_each_answer_is_recorded_as_an_export(client, make_user, api_token, cases_2025):
    member = make_user("committee_member")
    client.get(API, query_string=YEAR_2025, headers=bearer(api_token(member)))
    events = stats_events("json")
    assert len(events) == 1
    assert events[0].actor_username == member.username and events[0].object_id == "22"
    assert events[0].details["suppressed"] is True


def test_another_province_is_out_of_scope(client, make_user, api_token):
    for role in ("committee_member", "provincial_officer"):
        token = api_token(make_user(role))
        assert_error(client.get(API, query_string={"province": "01"}, headers=bearer(token)), 403, "out_of_scope")
        # Even with dates that would be refused: the scope is checked first.
        response = client.get(API, query_string={"province": "01", "from": "x"}, headers=bearer(token))
        assert_error(response, 403, "out_of_scope")
    assert stats_events() == []


@pytest.mark.parametrize("role", ["social_worker", "supervisor", "auditor", "admin", "finance_officer"])
def test_roles_that_never_see_statistics_are_forbidden(client, make_user, api_token, role):
    token = api_token(make_user(role))
    assert_error(client.get(API, query_string=YEAR_2025, headers=bearer(token)), 403, "forbidden")


def test_without_a_token_the_answer_is_401(client):
    assert_error(client.get(API), 401, "token_missing")


@pytest.mark.parametrize(
    ("query", "field", "code"),
    [
        ({"from": "2025-12-31", "to": "2025-01-01"}, "to", "before_start"),
        ({"from": "31-12-2025", "to": "2026-01-01"}, "from", "invalid_date"),
        ({"from": "2025-01-01"}, "to", "required"),
        ({"from": "2015-01-01", "to": "2025-01-01"}, "to", "too_long"),
        ({"year": "2025", "half": "3"}, "half", "unknown_half"),
        ({"year": "twenty"}, "year", "invalid_year"),
        ({"commune": "00004"}, "commune", "unknown_commune"),  # Hà Nội's, not Quảng Ninh's
        ({"commune": "99999"}, "commune", "unknown_commune"),
        ({"breakdown": "religion"}, "breakdown", "unknown_breakdown"),
    ],
)
def test_bad_dates_communes_and_breakdowns_are_refused(client, make_user, api_token, query, field, code):
    token = api_token(make_user("committee_member"))
    error = assert_error(client.get(API, query_string=query, headers=bearer(token)), 422, "validation_failed")
    assert error["field_codes"] == {field: [code]}
    assert error["fields"][field]
    assert stats_events() == []


# --- casework stats ---------------------------------------------------------------------------------------------------


def run_stats(app_env, tmp_path, *args: str, fmt: str = "csv"):
    output = tmp_path / f"out.{fmt}"
    result = casework_cli(
        app_env,
        "stats",
        "--province",
        "22",
        "--from",
        "01/01/2025",
        "--to",
        "31/12/2025",
        "--format",
        fmt,
        "--output",
        str(output),
        *args,
    )
    return result, output


def test_the_command_writes_suppressed_csv_without_a_user(app, app_env, tmp_path, cases_2025):
    result, output = run_stats(app_env, tmp_path, "--breakdown", "commune")
    assert result.returncode == 0, result.stderr
    assert "suppressed (k=5)" in result.stdout
    assert output.stat().st_mode & 0o077 == 0
    rows = list(csv.reader(io.StringIO(output.read_bytes().decode("utf-8-sig"))))
    assert len(rows[0]) == 6 and rows[0][1:] == ["Chỉ tiêu", "Dòng", "Phân tổ", "Kỳ này", "Kỳ trước"]
    ky_thuong = [r for r in rows if r[0] == "children_special" and r[3] == "Xã Kỳ Thượng" and r[4] != "0"]
    assert ky_thuong and all(r[4] in {"<5", "×"} for r in ky_thuong)
    assert_no_child_in(output.read_bytes(), cases_2025, "casework stats --format csv")
    events = stats_events("csv")
    assert len(events) == 1 and events[0].actor_username is None and events[0].details["suppressed"] is True


def test_the_command_writes_xlsx_with_its_cover_sheet(app, app_env, tmp_path, cases_2025):
    result, output = run_stats(app_env, tmp_path, "--commune", KY_THUONG, fmt="xlsx")
    assert result.returncode == 0, result.stderr
    book = load_workbook(output)
    cover = {row[0]: row[1] for row in book.worksheets[0].iter_rows(values_only=True) if row and row[0]}
    assert cover["Phạm vi"] == "Tỉnh Quảng Ninh – Xã Kỳ Thượng"
    assert "<5" in cover["Kiểm soát công bố"]
    assert any("<5" in row for row in book.worksheets[1].iter_rows(values_only=True))


def test_the_command_writes_json_as_a_named_officer_unsuppressed(app, app_env, tmp_path, make_user, cases_2025):
    officer = make_user("provincial_officer", username="cliofficer")
    result, output = run_stats(app_env, tmp_path, "--as", officer.username, fmt="json")
    assert result.returncode == 0, result.stderr
    assert "NOT suppressed" in result.stdout
    body = json.loads(output.read_text(encoding="utf-8"))
    assert body["suppression"]["applied"] is False
    assert indicator(body, "children_special")["total"] == 8
    rows = [r["key"] for r in indicator(body, "children_special")["rows"]]
    assert indicator(body, "children_special")["row_totals"][rows.index("orphan_both_parents")] == 2
    assert stats_events("json")[0].actor_username == officer.username


def test_the_command_as_a_committee_member_is_suppressed(app, app_env, tmp_path, make_user, cases_2025):
    member = make_user("committee_member", username="climember")
    result, output = run_stats(app_env, tmp_path, "--as", member.username, fmt="json")
    assert result.returncode == 0, result.stderr
    body = json.loads(output.read_text(encoding="utf-8"))
    rows = [r["key"] for r in indicator(body, "children_special")["rows"]]
    assert indicator(body, "children_special")["row_totals"][rows.index("orphan_both_parents")] == "<5"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--as", "hanoimember"), "refused: hanoimember may not see the statistics of province 22"),
        (("--as", "statsworker"), "refused: statsworker may not see the statistics of province 22"),
        (("--as", "nobody"), "no active user 'nobody'"),
        (("--commune", "00004"), "commune: Choose a commune of the province."),
        (("--to", "01/01/2024"), "to: The period ends before it starts."),
        (("--from", "2025-13-01"), "from: Write the date as dd/mm/yyyy."),
        (("--province", "99"), "province: Unknown province."),
        (("--format", "pdf"), "Invalid value for '--format'"),
    ],
)
def test_the_command_refuses_bad_input_and_other_provinces(
    app, app_env, tmp_path, make_user, cases_2025, args, message
):
    make_user("committee_member", province="01", username="hanoimember")
    result, output = run_stats(app_env, tmp_path, *args)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert not output.exists()
    db.session.rollback()
    assert db.session.scalars(select(AuditEvent).where(AuditEvent.action == "stats.export")).all() == []
