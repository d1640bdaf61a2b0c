"""Vietnamese first, English second; dates dd/mm/yyyy in Asia/Ho_Chi_Minh; money in whole VND."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

from babel.messages.pofile import read_po

from casework import i18n
from tests.conftest import TEST_PASSWORD, csrf_from

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = ROOT / "casework" / "translations" / "vi" / "LC_MESSAGES" / "messages.po"


def test_money_is_whole_vnd_with_dots():
    assert i18n.format_vnd(1250000) == "1.250.000 ₫"
    assert i18n.format_vnd(0) == "0 ₫"
    assert i18n.format_vnd(999) == "999 ₫"
    assert i18n.format_vnd(-5000) == "-5.000 ₫"
    assert i18n.format_vnd(None) == ""


def test_dates_are_day_month_year(app):
    assert i18n.format_date(date(2025, 7, 1)) == "01/07/2025"


def test_times_are_shown_in_ho_chi_minh_time(app):
    # 20:30 UTC on 31 December is 03:30 on 1 January in Vietnam (UTC+7): the date changes too.
    moment = datetime(2025, 12, 31, 20, 30, tzinfo=UTC)
    assert i18n.format_datetime(moment) == "01/01/2026 03:30"
    assert i18n.format_date(moment) == "01/01/2026"


def test_every_message_in_the_code_has_a_vietnamese_translation(tmp_path):
    pot = tmp_path / "messages.pot"
    subprocess.run(
        [
            str(Path(sys.executable).with_name("pybabel")),
            "extract",
            "-F",
            "babel.cfg",  # its patterns are relative to the repository root, as in `make translations`
            "-k",
            "_l",
            "-k",
            "lazy_gettext",
            "--no-location",
            "-o",
            str(pot),
            ".",
        ],
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    with pot.open("rb") as fh:
        wanted = {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(fh) if m.id}
    with CATALOGUE.open("rb") as fh:
        catalogue = read_po(fh)
    translated = {
        (m.id if isinstance(m.id, str) else m.id[0])
        for m in catalogue
        if m.id and (m.string if isinstance(m.string, str) else m.string[0]) and not m.fuzzy
    }
    assert len(wanted) > 100, "the extraction found too few messages to be real"
    missing = sorted(wanted - translated)
    assert missing == [], f"untranslated (run `make translations` and translate): {missing}"


def test_compiled_catalogue_is_up_to_date():
    mo = CATALOGUE.with_suffix(".mo")
    assert mo.exists()
    assert mo.stat().st_mtime >= CATALOGUE.stat().st_mtime - 1, "run `make translations` to compile the catalogue"


def test_pages_are_vietnamese_by_default_and_english_on_request(app, client):
    page = client.get("/login").get_data(as_text=True)
    assert '<html lang="vi">' in page and "Đăng nhập casework" in page
    response = client.get("/lang/en?next=/login")
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    page = client.get("/login").get_data(as_text=True)
    assert '<html lang="en">' in page and "Sign in to casework" in page


def test_a_forced_language_holds_inside_its_block_only_in_code_and_templates(app):
    """Translations are found once per request and language (casework.i18n.RequestDomain): a language forced for a
    notice in its reader's language (``force_locale``) must still take effect at once, and end with its block."""
    from flask import render_template_string
    from flask_babel import force_locale, gettext, lazy_gettext

    def both() -> tuple[str, str, str]:
        return gettext("Stage"), str(lazy_gettext("Closed")), render_template_string("{{ _('Stage') }}")

    with app.test_request_context("/"):
        assert both() == ("Bước xử lý", "Đã đóng", "Bước xử lý")
        with force_locale("en"):
            assert both() == ("Stage", "Closed", "Stage")
        assert both() == ("Bước xử lý", "Đã đóng", "Bước xử lý")
    with app.app_context():  # a job or a command: no request
        assert gettext("Stage") == "Bước xử lý"
        with force_locale("en"):
            assert (gettext("Stage"), str(lazy_gettext("Closed"))) == ("Stage", "Closed")
        assert gettext("Stage") == "Bước xử lý"


def test_language_choice_survives_sign_in(app, client, make_user):
    make_user(username="englishuser")
    client.get("/lang/en")
    token = csrf_from(client.get("/login").get_data(as_text=True))
    client.post("/login", data={"csrf_token": token, "username": "englishuser", "password": TEST_PASSWORD})
    assert "<h1>My caseload</h1>" in client.get("/").get_data(as_text=True)


def test_language_switch_refuses_unknown_languages_and_foreign_redirects(app, client):
    assert client.get("/lang/fr").status_code == 404
    response = client.get("/lang/en?next=https://evil.example/")
    assert response.headers["Location"] == "/"
    response = client.get("/lang/vi?next=//evil.example/")
    assert response.headers["Location"] == "/"
