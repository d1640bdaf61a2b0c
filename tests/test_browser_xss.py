"""Hostile text in every free-text field, through the pages in a real Chromium (issue #8, "Hostile input").

Each field gets a value of its own (a tag such as ``x07`` finds it again), made of Vietnamese words around the
payloads of a cross-site scripting attack: a ``<script>`` element, an ``<img onerror>`` and an ``<svg onload>`` that
break out of an attribute, a ``javascript:`` URL, a ``</textarea>`` that ends a text area, and ``{{7*7}}`` for
template injection. The values are typed into the real forms, as a worker would type them, and then every page that
shows them is read. A value passes when the page shows it as text, exactly as typed (so ``{{7*7}}`` was not
computed into 49), and nothing ran:

- ``window.__xss``, which every payload would set, stays undefined, and no dialog opened;
- no Content Security Policy violation was reported, neither as a ``securitypolicyviolation`` event of the page
  (collected by an init script into ``window.__csp``) nor in the console. The policy forbids inline scripts, so a
  value rendered as markup would be blocked rather than run: the violation is the trace it leaves, and a canary at
  the start proves that the trace is seen;
- the page holds no element with an ``on*`` attribute, no inline ``<script>``, no ``javascript:`` link, and no
  ``iframe``, ``object``, ``embed`` or ``base`` element.

Fields whose value is refused (a date, a number, a phone, a code) carry the payload too: the page that refuses them
shows the form again, and the value must come back in its input as text. A few values are forged past the page, as
an attacker would send them (a hidden field, a checkbox's value, a step's target), where the server echoes them.
The names of uploaded files (a case's attachment, a payment's receipt) and the text columns of an imported Excel
register are checked the same way.

:data:`FIELDS` says, for every ``StringField`` and ``TextAreaField`` of every form class under ``casework``, which
journey of this module checks it and how; :data:`NOT_SHOWN` lists the few that are never shown back, with the reason.
``test_every_free_text_field_is_covered_or_explained`` fails for a field added later without a line there, and each
journey fails if a field it claims was not seen.

The journeys run on one backend: what is checked is how the templates render text, which is the same code whatever
database stored it (both backends return the same strings, encrypted fields decrypted the same way), and a journey
through every form takes most of a minute.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import uuid
from datetime import timedelta
from urllib.parse import quote

import pytest
from playwright.sync_api import Locator, Page, expect
from sqlalchemy import select
from wtforms import Form, PasswordField, StringField
from wtforms.fields.core import UnboundField

import casework
from casework.cases import importer
from casework.cases.models import Case, Child
from casework.dbtypes import utcnow
from casework.extensions import db
from casework.i18n import local_tz
from tests.conftest import BACKENDS, TEST_PASSWORD, current_code, user_named
from tests.test_browser import CODE_LABEL, HOME_URL, enter_code, sign_in
from tests.test_browser_cases import CASE_URL, label
from tests.test_browser_payments import PAYMENT_URL, RECEIPT, confirm_if_asked
from tests.test_browser_support import sign_out
from tests.test_import import child_row, fill

# --- the payloads ---------------------------------------------------------------------------------------------------

SCRIPT = "<script>window.__xss=1</script>"
IMG = '"><img src=x onerror="window.__xss=1">'
SVG = "'><svg onload=window.__xss=1>"
LINK = "javascript:window.__xss=1"
TEMPLATE = "{{7*7}}"
TEXTAREA = "</textarea><img src=x onerror=window.__xss=1>"
#: One of these goes into each one-line value, in turn; a text area gets them all.
ROTATION = (SCRIPT, IMG, SVG, LINK, TEXTAREA)
#: At most 40 characters: the rules quote an unknown code cut to 40 (``Unknown value: …``).
SHORT_IMG = "<img src=x onerror=window.__xss=1>"

# --- which journey checks which field, and how -----------------------------------------------------------------------

SHOWN = "shown"  # saved, then read as text on the pages that display it
REFUSED = "refused"  # refused, and read back from the form shown again (or from the error that quotes it)

CASE, DOORS = "case", "doors"

#: Every free-text field of every form class under ``casework``: (journey, how it is checked).
FIELDS: dict[str, tuple[str, str]] = {
    # user administration
    "UserCreateForm.username": (CASE, REFUSED),  # a username is letters, digits and .-_ only
    "UserCreateForm.full_name": (CASE, SHOWN),  # users list, user page, the header, every "who" of a case
    # intake (Mẫu 01) and its corrections
    **{
        f"IntakeForm.{name}": (CASE, SHOWN)
        for name in (
            "full_name",
            "other_names",
            "disability_kind",
            "address",
            "guardian_name",
            "summary",
            "reporter_name",
            "reporter_address",
        )
    },
    **{
        f"IntakeForm.{name}": (CASE, REFUSED)
        for name in (
            "date_of_birth",
            "birth_year",
            "estimated_age",
            "national_id",
            "guardian_phone",
            "received_at",
            "reporter_phone",
            "duplicate_choice",  # forged: a hidden field the page writes back
            "duplicates_shown",  # forged likewise
        )
    },
    **{
        f"EditCaseForm.{name}": (CASE, SHOWN)
        for name in ("full_name", "other_names", "disability_kind", "address", "guardian_name", "summary")
    },
    **{
        f"EditCaseForm.{name}": (CASE, REFUSED)
        for name in ("date_of_birth", "national_id", "guardian_phone", "version")
    },
    # the case page
    "SearchForm.q": (CASE, REFUSED),  # a search is shown back in its box
    "NoteForm.body": (CASE, SHOWN),
    "ConsentForm.note": (CASE, SHOWN),
    "AssignForm.reason": (CASE, SHOWN),
    "ReferForm.to_commune": (CASE, REFUSED),
    "ReferForm.reason": (CASE, SHOWN),
    "ReferForm.override_reason": (CASE, SHOWN),
    "DecisionForm.note": (CASE, SHOWN),
    "SiblingForm.case_number": (CASE, REFUSED),
    # the procedure page
    "TransitionForm.note": (CASE, SHOWN),
    "TransitionForm.to": (CASE, REFUSED),  # forged: "the workflow has no step from … to …" quotes it
    **{
        f"AssessmentForm.{name}": (CASE, SHOWN)
        for name in (
            "harm_note",
            "access_note",
            "obstacles_note",
            "capacity_note",
            "override_reason",
            "needs",
            "attendees",
            "findings",
        )
    },
    "EmergencyForm.place": (CASE, SHOWN),
    "EmergencyForm.note": (CASE, SHOWN),
    "EmergencyForm.taken_at": (CASE, REFUSED),
    "PlanForm.goals": (CASE, SHOWN),
    "PlanForm.review_on": (CASE, REFUSED),
    "PlannedServiceForm.responsible": (CASE, SHOWN),
    "PlannedServiceForm.details": (CASE, SHOWN),
    "PlannedServiceForm.due_on": (CASE, REFUSED),
    **{
        f"ServiceForm.{name}": (CASE, SHOWN)
        for name in ("provider", "notes", "police_report_ref", "prosecution_ref", "court_ref", "proceedings_outcome")
    },
    **{f"ServiceForm.{name}": (CASE, REFUSED) for name in ("delivered_on", "duration_minutes", "hearing_on")},
    "VisitForm.notes": (CASE, SHOWN),
    "VisitForm.visited_on": (CASE, REFUSED),
    "ClosureRequestForm.note": (CASE, SHOWN),
    "ClosureDecisionForm.note": (CASE, SHOWN),
    # payments and programmes
    **{
        f"PaymentRequestForm.{name}": (CASE, SHOWN)
        for name in ("description", "payee_name", "payee_relation", "payee_account")
    },
    "PaymentRequestForm.amount_vnd": (CASE, REFUSED),
    "DecideForm.reason": (CASE, SHOWN),
    "DisburseForm.reference": (CASE, SHOWN),
    "DisburseForm.paid_on": (CASE, REFUSED),
    "ExportForm.month": (CASE, REFUSED),
    "ProgrammeForm.name": (CASE, SHOWN),
    "ProgrammeForm.year": (CASE, REFUSED),
    "ProgrammeForm.budget_vnd": (CASE, REFUSED),
    "ReauthForm.code": (CASE, REFUSED),
    # sign-in, statistics and the audit trail
    "LoginForm.username": (DOORS, REFUSED),
    "CodeForm.code": (DOORS, REFUSED),
    "DashboardForm.date_from": (DOORS, REFUSED),
    "DashboardForm.date_to": (DOORS, REFUSED),
    **{f"EventFilterForm.{name}": (DOORS, REFUSED) for name in ("user", "object_id", "action", "since", "until")},
}

#: Free-text fields that are never shown back, and why.
NOT_SHOWN: dict[str, str] = {
    "DecideForm.decision": "the value of the button pressed; an unknown one gets a fixed message and is not echoed",
    "DecisionForm.decision": "the value of the button pressed; AnyOf refuses others with a fixed message",
    "ClosureDecisionForm.decision": "the value of the button pressed; only 'approve' approves, and it is not echoed",
    "TransitionForm.version": "read as a number; the page writes the case's own version, never the one sent",
}

#: Text columns of the register import (``importer.COLUMNS`` of kind "text") and where their values are seen.
IMPORT_SHOWN = (
    "full_name",
    "other_names",
    "disability_kind",
    "address",
    "guardian_name",
    "summary",
    "reporter_name",
    "reporter_address",
)
IMPORT_NOT_SHOWN = {
    "old_ward_name": "used only to find an old commune; the error names the column, not the value",
    "old_district_name": "likewise",
    "old_province_name": "likewise",
}

# --- what the browser checks ----------------------------------------------------------------------------------------

#: Runs before any script of every page: keeps the page's Content Security Policy violations in ``window.__csp``.
WATCH_CSP = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__csp.push(`${event.violatedDirective} blocked ${event.blockedURI} ${event.sample || ""}`);
}, true);
"""

#: What a page holds that should not be there, and what the init script collected.
INSPECT = """
() => {
  const found = [];
  for (const element of document.querySelectorAll("*")) {
    for (const attribute of element.attributes) {
      const name = attribute.name.toLowerCase();
      if (name.startsWith("on")) found.push(`${element.tagName.toLowerCase()}[${name}]`);
      if (["href", "src", "action", "formaction", "xlink:href"].includes(name)
          && /^\\s*javascript:/i.test(attribute.value)) {
        found.push(`${element.tagName.toLowerCase()}[${name}=${attribute.value}]`);
      }
    }
  }
  for (const script of document.querySelectorAll("script")) if (!script.src) found.push("inline script");
  for (const element of document.querySelectorAll("iframe, object, embed, base")) found.push(element.tagName);
  return {xss: typeof window.__xss, csp: window.__csp === undefined ? null : window.__csp, found};
}
"""


def today(days: int = 0) -> str:
    return (utcnow().astimezone(local_tz()).date() + timedelta(days=days)).strftime("%d/%m/%Y")


def phone_chars(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit() or ch == "+")


def csp_directives(header: str) -> dict[str, list[str]]:
    parts = (p.split() for p in header.split(";") if p.strip())
    return {p[0]: p[1:] for p in parts}


def assert_strict_csp(header: str | None) -> None:
    """A policy under which no injected markup can run: scripts only from the site, no inline code, no eval."""
    assert header, "no Content-Security-Policy header"
    directives = csp_directives(header)
    assert directives.get("default-src") == ["'self'"], header
    assert directives.get("script-src") == ["'self'"], header
    assert directives.get("object-src") == ["'none'"], header
    assert directives.get("base-uri") == ["'none'"], header
    assert directives.get("frame-ancestors") == ["'none'"], header
    assert directives.get("form-action") == ["'self'"], header
    for forbidden in ("'unsafe-inline'", "'unsafe-eval'", "'unsafe-hashes'", "data:", "*"):
        assert forbidden not in directives.get("script-src", []), header
        assert forbidden not in directives.get("default-src", []), header


class Watch:
    """One browser page under watch: the values typed, what was seen, and everything that must not happen."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.values: dict[str, str] = {}
        self.checked: dict[str, set[str]] = {SHOWN: set(), REFUSED: set()}
        self.incidents: list[str] = []
        page.on("dialog", self._dialog)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.incidents.append(f"page error: {error}"))
        page.add_init_script(WATCH_CSP)

    def _dialog(self, dialog) -> None:
        self.incidents.append(f"{dialog.type} dialog: {dialog.message}")
        dialog.dismiss()

    def _console(self, message) -> None:
        if "content security policy" in message.text.lower():
            self.incidents.append(f"console: {message.text}")

    # --- values

    def value(self, key: str, size: str = "line") -> str:
        """The hostile value of ``key`` (``Form.field``, or ``Form.field@where`` for one of several submissions)."""
        if key not in self.values:
            n = len(self.values) + 1
            tag = f"x{n:02d}"
            if size == "short":  # a kind of disability: at most 32 characters
                value = f"{tag}<svg onload=window.__xss=1>"
            elif size == "code":  # a code from a list, quoted back cut to 40 characters
                value = f"{tag}{SHORT_IMG}"
            elif size == "file":  # a file's name: anything but a path
                value = f"Biên bản {tag} {IMG}.pdf"
            elif size == "text":
                value = (
                    f"Trẻ kể: “{tag}” {SCRIPT} {IMG} {SVG} {LINK} {TEMPLATE} {TEXTAREA} — đã ghi nhận ở bản Lũng Cú."
                )
            else:
                value = f"Lò Thị Ánh {tag} {ROTATION[n % len(ROTATION)]} {TEMPLATE} Mường Khương"
            self.values[key] = value
        return self.values[key]

    def type(self, scope: Locator | Page, name: str, key: str, size: str = "line") -> None:
        """Type ``key``'s value into the field ``name``, past any ``maxlength``: an attacker is not held by it."""
        field = scope.locator(f'[name="{name}"]')
        field.evaluate("element => element.removeAttribute('maxlength')")
        field.fill(self.value(key, size))

    def _mark(self, how: str, key: str) -> None:
        self.checked[how].add(key.split("@")[0])

    # --- checks

    def look(self, url: str | None = None, shows: tuple[str, ...] | list[str] = ()) -> str:
        """Open ``url`` (or stay), check that nothing ran and that each value of ``shows`` is shown as text."""
        if url is not None:
            response = self.page.goto(url)
            assert response is not None and response.ok, f"{url} answered {response and response.status}"
            assert_strict_csp(response.headers.get("content-security-policy"))
        self.page.wait_for_load_state("load")
        text = self.page.locator("body").inner_text()
        for key in shows:
            assert self.values[key] in text, f"{key} ({self.values[key]!r}) is not shown as text on {self.page.url}"
            self._mark(SHOWN, key)
        self.assert_nothing_ran()
        return text

    def assert_nothing_ran(self) -> None:
        state = self.page.evaluate(INSPECT)
        where = self.page.url
        assert state["csp"] is not None, f"the violation listener is missing on {where}"
        assert state["xss"] == "undefined", f"a payload ran on {where}"
        assert state["csp"] == [], f"Content Security Policy violations on {where}: {state['csp']}"
        assert state["found"] == [], f"injected markup on {where}: {state['found']}"
        assert self.incidents == [], f"on or before {where}: {self.incidents}"

    def kept(self, scope: Locator | Page, name: str, key: str, filtered=None) -> None:
        """The form shown again holds ``key``'s value in field ``name``, as text (after the form's ``filtered``)."""
        # The value attribute as the page wrote it too: a month picker empties a value that is not a month.
        held = scope.locator(f'[name="{name}"]').evaluate_all(
            "elements => elements.flatMap(e => [e.value, e.getAttribute('value')])"
        )
        wanted = filtered(self.values[key]) if filtered else self.values[key]
        assert wanted in held, f"{key} was not given back in {name}: {held} on {self.page.url}"
        self._mark(REFUSED, key)

    def quoted(self, key: str) -> None:
        """The page refusing ``key``'s value quotes it as text (in an error message)."""
        assert self.values[key] in self.page.locator("body").inner_text(), f"{key} is not quoted on {self.page.url}"
        self._mark(REFUSED, key)

    def submit(self, button: Locator, status: int | None = None) -> None:
        """Press ``button`` and wait for the page it leads to; check that page too."""
        with self.page.expect_navigation() as navigation:
            button.click()
        if status is not None:
            assert navigation.value is not None and navigation.value.status == status, (
                f"answered {navigation.value and navigation.value.status}, not {status}"
            )
        self.look()

    def assert_journey_done(self, journey: str) -> None:
        for how in (SHOWN, REFUSED):
            claimed = {key for key, (j, h) in FIELDS.items() if j == journey and h == how}
            missing = claimed - self.checked[how]
            assert not missing, f"{how} never checked for: {sorted(missing)}"


#: The journeys render the same templates whatever stored the text: they run on the first backend only.
one_backend = pytest.mark.parametrize("backend", BACKENDS[:1], indirect=True)


@pytest.fixture
def jobs_run(app, request):
    """A real rq worker when the app has Redis (the import's dry run and import are jobs)."""
    if app.config["CASEWORK_REDIS_URL"]:
        worker = request.getfixturevalue("rq_worker")
        assert worker.poll() is None, "the rq worker died"


def open_details(section: Locator) -> None:
    """Open the ``<details>`` of a page section that holds a form, if it is closed."""
    details = section.locator("details").first
    if details.get_attribute("open") is None:
        details.locator("summary").first.click()


def take_step(watch: Watch, to: str, key: str) -> None:
    item = watch.page.locator(f'li.step[data-to="{to}"]')
    open_details(item)
    watch.type(item, "note", key, "text")
    watch.submit(item.get_by_role("button"))
    expect(watch.page.locator(".flash-success")).to_be_visible()


def sign_in_with_code(page: Page, user) -> None:
    sign_in(page, user.username)
    enter_code(page, user)
    expect(page).to_have_url(HOME_URL)


# --- the table is complete -------------------------------------------------------------------------------------------


def free_text_fields() -> set[str]:
    """``Form.field`` for each StringField or TextAreaField (hidden ones too; passwords aside) of every form class
    defined under ``casework``."""
    found = set()
    for info in pkgutil.walk_packages(casework.__path__, "casework."):
        module = importlib.import_module(info.name)
        for cls in vars(module).values():
            if not (inspect.isclass(cls) and issubclass(cls, Form) and cls.__module__ == module.__name__):
                continue
            for name in dir(cls):
                attr = getattr(cls, name)
                if (
                    isinstance(attr, UnboundField)
                    and issubclass(attr.field_class, StringField)
                    and not issubclass(attr.field_class, PasswordField)
                ):
                    found.add(f"{cls.__name__}.{name}")
    return found


def test_every_free_text_field_is_covered_or_explained():
    fields = free_text_fields()
    assert len(fields) > 50, "the form classes were not found"
    assert not set(FIELDS) & set(NOT_SHOWN), "a field is both checked and excused"
    unaccounted = fields - set(FIELDS) - set(NOT_SHOWN)
    assert not unaccounted, f"free-text fields without an XSS check (add them to FIELDS or NOT_SHOWN): {unaccounted}"
    gone = (set(FIELDS) | set(NOT_SHOWN)) - fields
    assert not gone, f"FIELDS or NOT_SHOWN name fields that no longer exist: {gone}"
    text_columns = {c.key for c in importer.COLUMNS if c.kind == "text"}
    assert text_columns == set(IMPORT_SHOWN) | set(IMPORT_NOT_SHOWN), text_columns


@one_backend
def test_the_content_security_policy_forbids_inline_script(client):
    assert_strict_csp(client.get("/login").headers.get("Content-Security-Policy"))


# --- the journeys ----------------------------------------------------------------------------------------------------


@pytest.mark.browser
@one_backend
def test_hostile_text_in_every_form_of_a_case_is_shown_as_text_and_never_runs(page: Page, make_user, jobs_run):
    admin = make_user("admin", full_name="Trần Văn Quản")
    supervisor = make_user("supervisor", full_name="Phạm Thị Lan")
    receiving = make_user("supervisor", communes=("06979",), full_name="Lê Văn Giám")
    transferee = make_user("social_worker", full_name="Lê Văn Bình")
    watch = Watch(page)
    v = watch.value

    # The canary: markup slipped into a page is blocked by the policy, and the watch sees the violation.
    watch.look("/login")
    page.evaluate(
        """document.body.insertAdjacentHTML("beforeend", '<img src="/static/none" onerror="window.__xss=1">')"""
    )
    page.wait_for_function("window.__csp.length > 0")
    canary = page.evaluate(INSPECT)
    assert canary["xss"] == "undefined" and canary["csp"], canary
    assert "img[onerror]" in canary["found"], canary
    for _ in range(20):  # the console message follows the event
        if watch.incidents:
            break
        page.wait_for_timeout(100)
    assert any("Content Security Policy" in i for i in watch.incidents), watch.incidents
    watch.incidents.clear()

    # --- an administrator creates the worker (a hostile full name) and a programme (a hostile name)
    sign_in_with_code(page, admin)
    watch.look("/admin/users/new")
    form = page.locator("main form")
    watch.type(form, "username", "UserCreateForm.username")
    watch.type(form, "full_name", "UserCreateForm.full_name")
    form.locator('select[name="role"]').select_option("social_worker")
    form.locator('select[name="communes"]').select_option("06970")
    form.locator('[name="password"]').fill(TEST_PASSWORD)
    form.locator('[name="confirm"]').fill(TEST_PASSWORD)
    watch.submit(form.locator('button[type="submit"]'), status=422)
    watch.kept(form, "username", "UserCreateForm.username")
    watch.kept(form, "full_name", "UserCreateForm.full_name")
    form.locator('[name="username"]').fill("hostile.worker")
    form.locator('[name="password"]').fill(TEST_PASSWORD)
    form.locator('[name="confirm"]').fill(TEST_PASSWORD)
    watch.submit(form.locator('button[type="submit"]'))
    watch.look(shows=["UserCreateForm.full_name"])
    watch.look("/admin/users", shows=["UserCreateForm.full_name"])

    watch.look("/programmes/new")
    form = page.locator("main form")
    for name in ("name", "year", "budget_vnd"):
        watch.type(form, name, f"ProgrammeForm.{name}")
    watch.submit(form.locator('button[type="submit"]'), status=422)
    for name in ("name", "year", "budget_vnd"):
        watch.kept(form, name, f"ProgrammeForm.{name}")
    form.locator('[name="year"]').fill(str(utcnow().astimezone(local_tz()).year))
    form.locator('[name="budget_vnd"]').fill("500.000.000")
    watch.submit(form.locator('button[type="submit"]'))
    watch.look(shows=["ProgrammeForm.name"])
    assert v("ProgrammeForm.name") in page.title()
    programme_url = page.url
    watch.look("/programmes", shows=["ProgrammeForm.name"])
    sign_out(page)

    # --- the worker signs in (a javascript: "next" is not followed) and registers the child
    watch.look("/login?next=" + quote(LINK))
    sign_in(page, "hostile.worker", go=False)
    expect(page).to_have_url(HOME_URL)
    watch.look(shows=["UserCreateForm.full_name"])

    watch.look("/cases/new")
    form = page.locator("form.intake")
    sizes = {"disability_kind": "short", "summary": "text"}
    stored = [k.split(".")[1] for k, (_, how) in FIELDS.items() if k.startswith("IntakeForm.") and how == SHOWN]
    refused = ("date_of_birth", "birth_year", "estimated_age", "national_id", "guardian_phone", "received_at")
    for name in (*stored, *refused, "reporter_phone"):
        watch.type(form, name, f"IntakeForm.{name}", sizes.get(name, "line"))
    form.locator('input[name="has_disability"]').check()
    form.locator('select[name="sex"]').select_option("female")
    form.locator('select[name="risk_level"]').select_option("medium")
    form.locator('select[name="source"]').select_option("school")
    # Forged past the page: a duplicate answer and its fingerprint, and a category that is not in the list.
    v("IntakeForm.duplicate_choice")
    v("IntakeForm.duplicates_shown")
    forged_category = v("forged:category", "code")
    form.evaluate(
        """(form, [choice, shown, category]) => {
          form.querySelector('[name="duplicates_shown"]').value = shown;
          for (const [name, value] of [["duplicate_choice", choice], ["categories", category]]) {
            const input = document.createElement("input");
            input.type = "hidden"; input.name = name; input.value = value; input.className = "forged";
            form.append(input);
          }
        }""",
        [v("IntakeForm.duplicate_choice"), v("IntakeForm.duplicates_shown"), forged_category],
    )
    watch.submit(form.get_by_role("button", name=label("Lưu hồ sơ", "Save the case")), status=422)
    for name in (*stored, *refused, "reporter_phone", "duplicate_choice", "duplicates_shown"):
        watch.kept(form, name, f"IntakeForm.{name}")
    watch.look(shows=["forged:category"])  # "Unknown value: …"
    form.evaluate(
        """form => {
          form.querySelectorAll('[name="duplicate_choice"]').forEach(e => e.remove());
          form.querySelector('[name="duplicates_shown"]').value = "";
        }"""
    )
    for name in ("date_of_birth", "estimated_age", "national_id", "guardian_phone", "reporter_phone"):
        form.locator(f'[name="{name}"]').fill("")
    form.locator('[name="birth_year"]').fill("2014")
    form.locator('[name="received_at"]').fill(f"{today(-1)} 08:30")
    form.locator('input[name="categories"][value="abandoned"]').check()
    watch.submit(form.get_by_role("button", name=label("Lưu hồ sơ", "Save the case")))
    expect(page).to_have_url(CASE_URL)
    case_url = page.url.split("#")[0]
    case_id = uuid.UUID(case_url.rsplit("/", 1)[1])
    intake_keys = [f"IntakeForm.{name}" for name in stored]
    watch.look(shows=[*intake_keys, "UserCreateForm.full_name"])
    case_number = page.get_by_role("heading", level=1).inner_text().split()[-1]
    watch.look("/", shows=["IntakeForm.full_name"])  # the caseload

    # The search box gives the search back; a search by number lists the child.
    watch.look("/cases/")
    search = page.locator("main form").first
    watch.type(search, "q", "SearchForm.q")
    watch.submit(search.locator('button[type="submit"]'))
    watch.kept(page.locator("main form").first, "q", "SearchForm.q")
    watch.look(f"/cases/?q={case_number}", shows=["IntakeForm.full_name"])

    # Corrections: the refused values come back, then the saved ones replace the intake's (kept in the history).
    watch.look(f"{case_url}/edit")
    form = page.locator("main form")
    version = form.locator('[name="version"]').input_value()
    sizes = {"disability_kind": "short", "summary": "text"}
    edited = [k.split(".")[1] for k, (_, how) in FIELDS.items() if k.startswith("EditCaseForm.") and how == SHOWN]
    for name in (*edited, "date_of_birth", "national_id", "guardian_phone"):
        watch.type(form, name, f"EditCaseForm.{name}", sizes.get(name, "line"))
    form.locator('[name="version"]').evaluate("(e, value) => { e.value = value; }", v("EditCaseForm.version"))
    watch.submit(form.locator('button[type="submit"]'), status=422)
    for name in (*edited, "date_of_birth", "version"):
        watch.kept(form, name, f"EditCaseForm.{name}")
    # The corrections form strips what cannot be in these numbers before it judges them.
    watch.kept(form, "national_id", "EditCaseForm.national_id", filtered=lambda text: "".join(text.split()))
    watch.kept(form, "guardian_phone", "EditCaseForm.guardian_phone", filtered=phone_chars)
    for name in ("date_of_birth", "national_id", "guardian_phone"):
        form.locator(f'[name="{name}"]').fill("")
    form.locator('[name="version"]').evaluate("(e, value) => { e.value = value; }", version)
    watch.submit(form.locator('button[type="submit"]'))
    expect(page).to_have_url(CASE_URL)
    edit_keys = [f"EditCaseForm.{name}" for name in edited]
    watch.look(shows=[*edit_keys, *intake_keys])  # the intake's values in the change history

    # A note, a consent, a sibling that is not found, a file with a hostile name.
    notes = page.locator("#notes form")
    watch.type(notes, "body", "NoteForm.body", "text")
    watch.submit(notes.get_by_role("button"))
    consents = page.locator("#consents")
    open_details(consents)
    consents.locator('select[name="consent-subject"]').select_option("representative")
    consents.locator('select[name="consent-scope"]').select_option("recording")
    watch.type(consents, "consent-note", "ConsentForm.note", "text")
    watch.submit(consents.locator('button[type="submit"]'))
    siblings = page.locator("#siblings form")
    watch.type(siblings, "sibling-case_number", "SiblingForm.case_number")
    watch.submit(siblings.get_by_role("button"), status=422)
    watch.kept(page.locator("#siblings form"), "sibling-case_number", "SiblingForm.case_number")
    page.locator('#files input[type="file"]').set_input_files(
        files=[{"name": v("upload:case", "file"), "mimeType": "application/pdf", "buffer": RECEIPT}]
    )
    watch.submit(page.locator('#files form button[type="submit"]'))
    watch.look(shows=["NoteForm.body", "ConsentForm.note", "upload:case"])

    # --- the procedure: steps, an emergency measure, assessments, the plan
    procedure_url = f"{case_url}/procedure"
    watch.look(procedure_url)
    step = page.locator('li.step[data-to="initial_assessment"]')
    open_details(step)
    step.locator('input[name="to"]').evaluate("(e, value) => { e.value = value; }", v("TransitionForm.to"))
    watch.submit(step.get_by_role("button"))
    watch.quoted("TransitionForm.to")
    take_step(watch, "initial_assessment", "TransitionForm.note@start")

    emergency = page.locator("#emergency")
    open_details(emergency)
    emergency.locator('select[name="emergency-measure"]').select_option("safe_shelter")
    watch.type(emergency, "emergency-taken_at", "EmergencyForm.taken_at")
    watch.type(emergency, "emergency-place", "EmergencyForm.place")
    watch.type(emergency, "emergency-note", "EmergencyForm.note", "text")
    watch.submit(emergency.get_by_role("button", name=label("Ghi nhận", "Record")), status=422)
    for name in ("taken_at", "place", "note"):
        watch.kept(page.locator("#emergency"), f"emergency-{name}", f"EmergencyForm.{name}")
    page.locator('#emergency [name="emergency-taken_at"]').fill("")
    watch.submit(page.locator("#emergency").get_by_role("button", name=label("Ghi nhận", "Record")))
    watch.look(shows=["EmergencyForm.place", "EmergencyForm.note"])

    assessment_texts = [k.split(".")[1] for k in FIELDS if k.startswith("AssessmentForm.")]

    def assess(kind: str, level: str, outcome: str = "") -> None:
        section = page.locator("#assessments")
        open_details(section)
        section.locator('select[name="kind"]').select_option(kind)
        for factor in ("harm_severity", "abuser_access", "care_obstacles"):
            section.locator(f'input[name="{factor}"][value="low"]').check()
        section.locator('input[name="child_capacity"][value="high"]').check()  # suggested: low
        section.locator('select[name="risk_level"]').select_option(level)  # not the suggested one: a reason
        section.locator('select[name="review_outcome"]').select_option(outcome)
        for name in assessment_texts:
            watch.type(section, name, f"AssessmentForm.{name}@{kind}", "text")
        watch.submit(section.get_by_role("button", name=label("Ghi nhận đánh giá", "Record the assessment")))
        expect(page.locator(".flash-success")).to_be_visible()
        watch.look(shows=[f"AssessmentForm.{name}@{kind}" for name in assessment_texts])

    assess("initial", "high")
    take_step(watch, "detailed_assessment", "TransitionForm.note@detailed")
    assess("detailed", "medium")
    take_step(watch, "plan_drafting", "TransitionForm.note@plan")

    plan = page.locator("#plan form")
    watch.type(plan, "goals", "PlanForm.goals", "text")
    watch.type(plan, "review_on", "PlanForm.review_on")
    plan.locator('select[name="services-0-service_type"]').select_option("medical_care")
    for name in ("responsible", "details", "due_on"):
        watch.type(plan, f"services-0-{name}", f"PlannedServiceForm.{name}")
    plan.locator('select[name="services-1-service_type"]').select_option("legal_aid")
    watch.submit(plan.get_by_role("button", name=label("Lưu kế hoạch", "Save the plan")), status=422)
    plan = page.locator("#plan form")
    watch.kept(plan, "goals", "PlanForm.goals")
    watch.kept(plan, "review_on", "PlanForm.review_on")
    for name in ("responsible", "details", "due_on"):
        watch.kept(plan, f"services-0-{name}", f"PlannedServiceForm.{name}")
    plan.locator('[name="review_on"]').fill(today(90))
    plan.locator('[name="services-0-due_on"]').fill(today(30))
    watch.submit(plan.get_by_role("button", name=label("Lưu kế hoạch", "Save the plan")))
    expect(page.locator(".flash-success")).to_be_visible()
    watch.look(shows=["PlanForm.goals", "PlannedServiceForm.responsible", "PlannedServiceForm.details"])
    take_step(watch, "plan_approval", "TransitionForm.note@submit")

    # --- the register import: a row of hostile text, and a row whose unknown category is quoted back
    template = importer.build_template(user_named("hostile.worker"))
    imported = child_row(
        1,
        **{
            name: v(f"import:{name}", "short" if name == "disability_kind" else "text" if name == "summary" else "line")
            for name in IMPORT_SHOWN
        },
        has_disability="Có",
    )
    refused_row = child_row(2, categories=v("import:category", "code"))
    page.goto("/imports/")
    page.locator('input[type="file"]').set_input_files(
        files=[
            {
                "name": "so-theo-doi.xlsx",
                "mimeType": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "buffer": fill(template, [imported, refused_row]),
            }
        ]
    )
    watch.submit(page.locator('main form button[type="submit"]'))
    expect(page.locator("[data-check-result]")).to_be_visible(timeout=60000)
    watch.look(shows=["import:category"])
    watch.submit(page.get_by_role("button", name=label("Nhập các dòng", "Import the rows")))
    expect(page.locator("[data-import-result]")).to_be_visible(timeout=60000)
    watch.look(shows=["import:category"])
    watch.look("/jobs/")  # the dry run and the import, each with its result
    jobs = page.locator('main table a[href^="/jobs/"]').evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert len(jobs) == 2, jobs
    for job in jobs:
        watch.look(job)
    db.session.expire_all()
    imported_case = db.session.scalar(select(Case.id).join(Child).where(Case.id != case_id))
    assert imported_case is not None, "the import created no case"
    watch.look(f"/cases/{imported_case}", shows=[f"import:{name}" for name in IMPORT_SHOWN])
    sign_out(page)

    # --- the supervisor refers the case (no consent to sharing: her reason) and approves the plan
    sign_in_with_code(page, supervisor)
    watch.look(case_url)
    referrals = page.locator("#referrals")
    open_details(referrals)
    watch.type(referrals, "refer-to_commune", "ReferForm.to_commune")
    watch.type(referrals, "refer-reason", "ReferForm.reason", "text")
    watch.type(referrals, "refer-override_reason", "ReferForm.override_reason", "text")
    watch.submit(referrals.locator('button[type="submit"]'), status=422)
    referrals = page.locator("#referrals")
    watch.kept(referrals, "refer-to_commune", "ReferForm.to_commune")
    referrals.locator('[name="refer-to_commune"]').fill("06979")
    watch.submit(referrals.locator('button[type="submit"]'))
    watch.look(shows=["ReferForm.reason", "ReferForm.override_reason"])
    watch.look(procedure_url)
    take_step(watch, "support", "TransitionForm.note@approve")
    sign_out(page)

    # --- the receiving commune's supervisor reads the referral and declines it, saying why
    sign_in_with_code(page, receiving)
    watch.look("/cases/referrals", shows=["ReferForm.reason", "ReferForm.override_reason"])
    watch.type(page.locator("main form").first, "note", "DecisionForm.note", "text")
    watch.submit(page.locator("main form").first.get_by_role("button", name=label("Từ chối", "Decline")))
    sign_out(page)

    # --- the worker records the support, asks to close, and requests a payment
    sign_in(page, "hostile.worker")
    expect(page).to_have_url(HOME_URL)
    watch.look(procedure_url)
    services = page.locator("#services")
    open_details(services)
    services.locator('select[name="service_type"]').select_option("legal_aid")
    for name in ("delivered_on", "duration_minutes", "hearing_on", "provider", "police_report_ref", "prosecution_ref"):
        watch.type(services, name, f"ServiceForm.{name}")
    watch.type(services, "court_ref", "ServiceForm.court_ref")
    watch.type(services, "notes", "ServiceForm.notes", "text")
    watch.type(services, "proceedings_outcome", "ServiceForm.proceedings_outcome", "text")
    watch.submit(services.get_by_role("button", name=label("Ghi nhận dịch vụ", "Record the service")), status=422)
    services = page.locator("#services")
    service_fields = [k.split(".")[1] for k in FIELDS if k.startswith("ServiceForm.")]
    for name in service_fields:
        watch.kept(services, name, f"ServiceForm.{name}")
    services.locator('[name="delivered_on"]').fill(today())
    services.locator('[name="duration_minutes"]').fill("45")
    services.locator('[name="hearing_on"]').fill(today(30))
    watch.submit(services.get_by_role("button", name=label("Ghi nhận dịch vụ", "Record the service")))
    expect(page.locator(".flash-success")).to_be_visible()
    watch.look(shows=[f"ServiceForm.{n}" for n in service_fields if FIELDS[f"ServiceForm.{n}"][1] == SHOWN])

    visits = page.locator("#visits")
    open_details(visits)
    watch.type(visits, "visit-visited_on", "VisitForm.visited_on")
    visits.locator('select[name="visit-outcome"]').select_option("concern")
    watch.type(visits, "visit-notes", "VisitForm.notes", "text")
    watch.submit(visits.get_by_role("button", name=label("Ghi nhận lần thăm", "Record the visit")), status=422)
    visits = page.locator("#visits")
    watch.kept(visits, "visit-visited_on", "VisitForm.visited_on")
    watch.kept(visits, "visit-notes", "VisitForm.notes")
    visits.locator('[name="visit-visited_on"]').fill(today())
    watch.submit(visits.get_by_role("button", name=label("Ghi nhận lần thăm", "Record the visit")))
    watch.look(shows=["VisitForm.notes"])

    assess("review", "medium", "continue")
    closing = page.locator("#closing")
    open_details(closing)
    closing.locator('select[name="closure-reason"]').select_option("goals_met")
    watch.type(closing, "closure-note", "ClosureRequestForm.note", "text")
    watch.submit(closing.locator('button[type="submit"]'))
    watch.look(shows=["ClosureRequestForm.note"])

    watch.look(f"{case_url}/payments/new")
    form = page.locator("main form")
    form.locator('select[name="programme"]').select_option(index=1)
    form.locator('select[name="purpose"]').select_option("medical_treatment")
    watch.type(form, "amount_vnd", "PaymentRequestForm.amount_vnd")
    watch.type(form, "description", "PaymentRequestForm.description", "text")
    for name in ("payee_name", "payee_relation", "payee_account"):
        watch.type(form, name, f"PaymentRequestForm.{name}")
    form.locator('input[name="payee_method"][value="bank"]').check()
    watch.submit(form.locator('button[type="submit"]'), status=422)
    payment_fields = ("amount_vnd", "description", "payee_name", "payee_relation", "payee_account")
    for name in payment_fields:
        watch.kept(form, name, f"PaymentRequestForm.{name}")
    form.locator('[name="amount_vnd"]').fill("500.000")
    watch.submit(form.locator('button[type="submit"]'))
    expect(page).to_have_url(PAYMENT_URL)
    payment_url = page.url.split("#")[0]
    page.locator('#receipts input[type="file"]').set_input_files(
        files=[{"name": v("upload:receipt", "file"), "mimeType": "application/pdf", "buffer": RECEIPT}]
    )
    watch.submit(page.locator('#receipts form button[type="submit"]'))
    watch.submit(page.locator("#submit form").get_by_role("button"))
    expect(page.locator("#status")).to_have_attribute("data-status", "submitted")
    payment_keys = [f"PaymentRequestForm.{n}" for n in payment_fields if n != "amount_vnd"]
    watch.look(shows=[*payment_keys, "ProgrammeForm.name", "upload:receipt"])
    sign_out(page)

    # --- the supervisor decides: the closing, the payment (and pays it), a transfer; then reads every page
    sign_in_with_code(page, supervisor)
    watch.look("/reauth?next=/")
    form = page.locator("main form")
    form.locator('[name="password"]').fill(TEST_PASSWORD)
    watch.type(form, "code", "ReauthForm.code")
    watch.submit(form.locator('button[type="submit"]'), status=422)
    watch.kept(page.locator("main form"), "code", "ReauthForm.code")

    watch.look(procedure_url)
    decision = page.locator("#closing table form")
    watch.type(decision, "decision-note", "ClosureDecisionForm.note", "text")
    watch.submit(decision.locator('button[value="approve"]'))
    watch.look(shows=["ClosureDecisionForm.note"])

    watch.look(case_url)
    assign = page.locator("#assignments form")
    assign.locator('select[name="assign-worker"]').select_option(str(transferee.id))
    watch.type(assign, "assign-reason", "AssignForm.reason", "text")
    watch.submit(assign.locator('button[type="submit"]'))
    watch.look(shows=["AssignForm.reason"])

    watch.look(payment_url)
    watch.type(page.locator("#decide"), "reason", "DecideForm.reason", "text")
    watch.submit(page.get_by_role("button", name=label("Phê duyệt", "Approve")))
    if confirm_if_asked(page, supervisor):
        watch.type(page.locator("#decide"), "reason", "DecideForm.reason", "text")
        watch.submit(page.get_by_role("button", name=label("Phê duyệt", "Approve")))
    expect(page.locator("#status")).to_have_attribute("data-status", "approved")
    disburse = page.locator("#disbursement form")
    watch.type(disburse, "paid_on", "DisburseForm.paid_on")
    disburse.locator('input[name="method"][value="bank"]').check()
    watch.type(disburse, "reference", "DisburseForm.reference")
    watch.submit(disburse.locator('button[type="submit"]'), status=422)
    disburse = page.locator("#disbursement form")
    watch.kept(disburse, "paid_on", "DisburseForm.paid_on")
    watch.kept(disburse, "reference", "DisburseForm.reference")
    disburse.locator('[name="paid_on"]').fill(today())
    watch.submit(disburse.locator('button[type="submit"]'))
    expect(page.locator("#status")).to_have_attribute("data-status", "paid")

    watch.look("/payments/export")
    month = page.locator('main form [name="month"]')
    month.evaluate("element => { element.type = 'text'; }")  # a month picker: an attacker sends any text
    watch.type(page.locator("main form"), "month", "ExportForm.month")
    watch.submit(page.locator("main form").locator('button[type="submit"]'), status=422)
    watch.kept(page.locator("main form"), "month", "ExportForm.month")

    # Every page that shows the values, read by the supervisor.
    who = "UserCreateForm.full_name"
    child = ["EditCaseForm.full_name", "EditCaseForm.address", "EditCaseForm.guardian_name"]
    steps = [f"TransitionForm.note@{s}" for s in ("start", "detailed", "plan", "submit", "approve")]
    notes_of = {kind: [f"AssessmentForm.{n}@{kind}" for n in assessment_texts] for kind in ("initial", "detailed")}
    notes_of["review"] = [f"AssessmentForm.{n}@review" for n in assessment_texts]
    watch.look(
        case_url,
        shows=[
            *edit_keys,
            *intake_keys,
            "NoteForm.body",
            "ConsentForm.note",
            "ReferForm.reason",
            "ReferForm.override_reason",
            "DecisionForm.note",
            "AssignForm.reason",
            "upload:case",
            who,
        ],
    )
    watch.look(
        procedure_url,
        shows=[
            "EditCaseForm.full_name",
            *steps,
            "EmergencyForm.place",
            "EmergencyForm.note",
            *notes_of["initial"],
            *notes_of["detailed"],
            *notes_of["review"],
            "PlanForm.goals",
            "PlannedServiceForm.responsible",
            "PlannedServiceForm.details",
            "ServiceForm.provider",
            "ServiceForm.notes",
            "ServiceForm.police_report_ref",
            "ServiceForm.prosecution_ref",
            "ServiceForm.court_ref",
            "ServiceForm.proceedings_outcome",
            "VisitForm.notes",
            "ClosureRequestForm.note",
            "ClosureDecisionForm.note",
            who,
        ],
    )
    watch.look(
        f"{case_url}/timeline",
        shows=[
            "EditCaseForm.full_name",
            "EditCaseForm.summary",
            *steps,
            "EmergencyForm.note",
            "AssessmentForm.override_reason@initial",
            "AssessmentForm.override_reason@detailed",
            "AssessmentForm.override_reason@review",
            "ServiceForm.notes",
            "VisitForm.notes",
            "ClosureRequestForm.note",
            "ClosureDecisionForm.note",
            "NoteForm.body",
            "upload:case",
            "AssignForm.reason",
            "ReferForm.reason",
            "DecideForm.reason",
            who,
        ],
    )
    printed = {
        "mau01": [
            *edit_keys,
            "IntakeForm.reporter_name",
            "IntakeForm.reporter_address",
            "EmergencyForm.place",
            "EmergencyForm.note",
            who,
        ],
        "mau02": [*child, *notes_of["initial"][:5], "EmergencyForm.place", "EmergencyForm.note", who],
        "mau03": [*child, *notes_of["detailed"][:7], who],
        "mau04": [
            *child,
            "AssessmentForm.needs@detailed",
            "PlanForm.goals",
            "PlannedServiceForm.responsible",
            "PlannedServiceForm.details",
            who,
        ],
        "mau05": [
            "EditCaseForm.full_name",
            "EditCaseForm.address",
            "PlanForm.goals",
            "PlannedServiceForm.responsible",
            "PlannedServiceForm.details",
            "TransitionForm.note@approve",
            who,
        ],
        "mau06": [
            *child,
            *notes_of["review"][:5],
            "AssessmentForm.findings@review",
            "ServiceForm.provider",
            "VisitForm.notes",
            who,
        ],
    }
    for code, keys in printed.items():
        watch.look(f"{case_url}/forms/{code}", shows=keys)
    watch.look(
        payment_url,
        shows=[*payment_keys, "ProgrammeForm.name", "DecideForm.reason", "DisburseForm.reference", "upload:receipt"],
    )
    watch.look(f"{case_url}/payments", shows=["ProgrammeForm.name"])
    watch.look("/payments/", shows=["ProgrammeForm.name"])
    watch.look("/payments/inbox")
    watch.look("/payments/to-pay")
    watch.look(programme_url, shows=["ProgrammeForm.name"])
    watch.look("/programmes", shows=["ProgrammeForm.name"])
    watch.look("/cases/", shows=["EditCaseForm.full_name", "import:full_name"])
    watch.look("/")
    watch.look("/notifications")

    watch.assert_journey_done(CASE)


@pytest.mark.browser
@one_backend
def test_hostile_text_in_sign_in_statistics_and_audit_filters_is_shown_back_as_text(page: Page, make_user):
    member = make_user("committee_member", full_name="Lê Thị Ủy")
    auditor = make_user("auditor", full_name="Đỗ Văn Kiểm")
    watch = Watch(page)

    # A hostile username is given back in the sign-in form.
    watch.look("/login")
    form = page.locator("main form")
    watch.type(form, "username", "LoginForm.username")
    form.locator('[name="password"]').fill("not the password")
    watch.submit(form.get_by_role("button", name="Đăng nhập", exact=True))
    watch.kept(page.locator("main form"), "username", "LoginForm.username")

    # The statistics dashboard gives back the dates it cannot read.
    sign_in(page, member.username)
    expect(page).to_have_url(HOME_URL)
    watch.look("/stats/")
    form = page.locator("main form").first
    form.locator('select[name="kind"]').select_option("custom")
    watch.type(form, "from", "DashboardForm.date_from")
    watch.type(form, "to", "DashboardForm.date_to")
    watch.submit(form.locator('button[type="submit"]').first, status=422)
    form = page.locator("main form").first
    watch.kept(form, "from", "DashboardForm.date_from")
    watch.kept(form, "to", "DashboardForm.date_to")
    sign_out(page)

    # The second sign-in step gives back a hostile code; the auditor's filters give back what they cannot use.
    sign_in(page, auditor.username)
    form = page.locator("main form")
    watch.type(form, "code", "CodeForm.code")
    watch.submit(form.get_by_role("button", name="Đăng nhập", exact=True), status=422)
    watch.kept(page.locator("main form"), "code", "CodeForm.code")
    page.get_by_label(CODE_LABEL).fill(current_code(auditor))
    page.get_by_role("button", name="Đăng nhập", exact=True).click()
    expect(page).to_have_url(HOME_URL)
    watch.look("/audit/")
    form = page.locator("main form").first
    for name in ("user", "object_id", "action", "since", "until"):
        watch.type(form, name, f"EventFilterForm.{name}")
    watch.submit(form.locator('button[type="submit"]').first, status=422)
    form = page.locator("main form").first
    for name in ("user", "object_id", "action", "since", "until"):
        watch.kept(form, name, f"EventFilterForm.{name}")

    watch.assert_journey_done(DOORS)
