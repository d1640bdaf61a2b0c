"""Forms of the case registry: intake, editing, search, and the small forms of the case page.

The intake form does not judge what it receives: it converts its fields into the API's JSON shape
(:meth:`IntakeForm.to_payload`) and :func:`casework.cases.operations.validate_intake` decides, so the web form, the
API and the import accept the same things. Codes are offered with their labels from ``codes.toml``; choices are
filled per request, in the language of the request.
"""

from __future__ import annotations

from typing import Any

from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField, HiddenField, RadioField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import AnyOf, DataRequired, Length, Optional, Regexp, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from casework import codes
from casework.cases.operations import MAX_NAME, MAX_TEXT, NATIONAL_ID_RE, PHONE_RE
from casework.i18n import local_today, parse_day
from casework.widgets import SelectField, SelectMultipleField
from casework.workflow import registry
from casework.workflow.definition import DEFAULT_WORKFLOW

REQUIRED = _l("This field is required.")


CONSENT_SUBJECTS = {"child": _l("The child"), "representative": _l("The legal representative")}

#: Personal Data Protection Law 2025, Art. 19(1): what is relied on when there is no consent.
LEGAL_BASIS_LABELS = {
    "protect_life_health": _l("Protecting the child's life or health in an emergency"),
    "legal_obligation": _l("A legal obligation"),
    "public_interest": _l("A task in the public interest"),
    "court_order": _l("A court order"),
}

REFERRAL_STATUS_LABELS = {
    "pending": _l("Awaiting an answer"),
    "accepted": _l("Accepted"),
    "declined": _l("Declined"),
    "cancelled": _l("Cancelled (consent withdrawn)"),
}


def stage_choices() -> list[tuple[str, str]]:
    """The stages of every workflow (the default's first, in its order), labelled in the user's language."""
    locale = str(get_locale() or "vi")
    found: dict[str, str] = {}
    definitions = registry.definitions()
    ordered = [definitions[DEFAULT_WORKFLOW], *(d for n, d in sorted(definitions.items()) if n != DEFAULT_WORKFLOW)]
    for definition in ordered:
        for stage in definition.stages.values():
            found.setdefault(stage.id, stage.label.for_locale(locale))
    return list(found.items())


def stage_label(code: str | None, workflow: str | None = None) -> str:
    """The label of stage ``code`` in ``workflow`` (else in any workflow that has it), or the code itself."""
    if not code:
        return ""
    locale = str(get_locale() or "vi")
    definition = registry.definition(workflow)
    if code in definition.stages:
        return definition.stages[code].label.for_locale(locale)
    return dict(stage_choices()).get(code, code)


def _collapse(value: Any) -> Any:
    """Strip and collapse the spaces of a one-line value, as the intake rules do."""
    return " ".join(value.split()) if isinstance(value, str) else value


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _digits_only(value: Any) -> Any:
    return "".join(value.split()) if isinstance(value, str) else value


def _phone_chars(value: Any) -> Any:
    return "".join(ch for ch in value if ch.isdigit() or ch == "+") if isinstance(value, str) else value


def _valid_past_day(_form, field) -> None:
    if not field.data:
        return
    try:
        day = parse_day(field.data)
    except ValueError:
        raise ValidationError(_l("Write the date as dd/mm/yyyy.")) from None
    if day > local_today():
        raise ValidationError(_l("The date cannot be in the future."))


def options(pairs, *, blank: str | None = None, optgroup: str | None = None) -> list[SelectChoice]:
    """``(value, label)`` pairs as WTForms' choices, after an empty first choice labelled ``blank`` if given."""
    result = [SelectChoice(value, str(label), optgroup=optgroup) for value, label in pairs]
    return [SelectChoice("", blank), *result] if blank is not None else result


class ShowsErrors:
    """A form that can show the errors of a ``ValidationFailed`` next to its fields.

    ``ERROR_FIELDS`` maps the operation's keys that are not the fields' names; a key that names no field becomes an
    error of the whole form.
    """

    ERROR_FIELDS: dict[str, str] = {}

    def _field_for(self, key: str) -> str:
        return self.ERROR_FIELDS.get(key, key)

    def show_errors(self, errors: dict[str, list[str]]) -> None:
        for key, messages in errors.items():
            name = self._field_for(key)
            target = self._fields.get(name) if name != "csrf_token" else None
            texts = [str(m) for m in messages]
            if target is None or isinstance(target, HiddenField):
                self.form_errors.extend(texts)
            else:
                target.errors = [*target.errors, *texts]


class MultiCheckboxField(SelectMultipleField):
    """Several codes picked with checkboxes; the operation judges the codes, not the field."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("validate_choice", False)
        super().__init__(*args, **kwargs)


# --- intake -------------------------------------------------------------------------------------------------------


class IntakeForm(ShowsErrors, FlaskForm):
    """Mẫu 01: the child, why they come to the service, and the report; converted to the API's JSON shape."""

    full_name = StringField(_l("Full name of the child"), filters=[_collapse])
    other_names = StringField(_l("Other names"), filters=[_collapse])
    sex = SelectField(_l("Sex"), choices=[], validate_choice=False)
    date_of_birth = StringField(_l("Date of birth (dd/mm/yyyy)"), filters=[_strip])
    birth_year = StringField(_l("Year of birth"), filters=[_strip])
    estimated_age = StringField(_l("Estimated age (years)"), filters=[_strip])
    ethnicity = SelectField(_l("Ethnicity"), choices=[], validate_choice=False)
    has_disability = BooleanField(_l("The child has a disability"))
    disability_kind = StringField(_l("Kind of disability"), filters=[_collapse])
    national_id = StringField(_l("Personal ID number"), filters=[_strip])
    address = StringField(_l("Address"), filters=[_collapse])
    guardian_name = StringField(_l("Parent or guardian"), filters=[_collapse])
    guardian_phone = StringField(_l("Phone of the parent or guardian"), filters=[_strip])
    commune_code = SelectField(_l("Commune"), choices=[], validate_choice=False)

    categories = MultiCheckboxField(_l("Groups of children in special circumstances (Law on Children, Art. 10)"))
    at_risk = MultiCheckboxField(_l("At risk of"))
    abuse_types = MultiCheckboxField(_l("Forms of abuse"))
    risk_level = SelectField(_l("Risk level"), choices=[], validate_choice=False)
    immediate_danger = BooleanField(_l("The child is in immediate danger (12-hour emergency path)"))
    source = SelectField(_l("Who reported"), choices=[], validate_choice=False)
    channel = SelectField(_l("How it was reported"), choices=[], validate_choice=False)
    received_at = StringField(_l("Received on (dd/mm/yyyy hh:mm)"), filters=[_strip])
    summary = TextAreaField(_l("What was reported"))

    reporter_name = StringField(_l("Reporter's name"), filters=[_collapse])
    reporter_phone = StringField(_l("Reporter's phone"), filters=[_strip])
    reporter_address = StringField(_l("Reporter's address"), filters=[_collapse])

    # The answer to the duplicate check: a child's id (link to that child) or "new"; rendered as radio buttons.
    duplicate_choice = StringField(filters=[_strip])
    duplicates_shown = HiddenField()

    #: Keys of ValidationFailed.errors that are not named like the form's fields.
    ERROR_FIELDS = {
        "reporter.name": "reporter_name",
        "reporter.phone": "reporter_phone",
        "reporter.address": "reporter_address",
        "existing_child_id": "duplicate_choice",
    }

    def __init__(self, *args, communes: list[tuple[str, str]] = (), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sex.choices = options(codes.choices("sex"), blank="—")
        self.ethnicity.choices = options(codes.choices("ethnicity"), blank="—")
        # A worker of one commune has nothing to choose: that commune is already selected.
        self.commune_code.choices = options(communes, blank=None if len(communes) == 1 else "—")
        self.categories.choices = options(codes.choices("special_circumstances"))
        self.at_risk.choices = options(codes.choices("at_risk"))
        self.abuse_types.choices = options(codes.choices("abuse_types"))
        self.risk_level.choices = options(codes.choices("risk_levels"), blank="—")
        self.source.choices = options(codes.choices("report_sources"), blank="—")
        self.channel.choices = options(codes.choices("report_channels"), blank="—")

    def linked_child_id(self) -> str | None:
        choice = self.duplicate_choice.data or ""
        return choice if choice and choice != "new" else None

    def to_payload(self) -> dict[str, Any]:
        """The intake in the JSON shape of ``POST /api/v1/cases`` (what ``validate_intake`` reads)."""
        child = {
            name: getattr(self, name).data or None
            for name in (
                "full_name",
                "other_names",
                "sex",
                "date_of_birth",
                "birth_year",
                "estimated_age",
                "ethnicity",
                "disability_kind",
                "national_id",
                "address",
                "guardian_name",
                "guardian_phone",
                "commune_code",
            )
        }
        child["has_disability"] = bool(self.has_disability.data)
        payload: dict[str, Any] = {
            "child": child,
            "categories": list(self.categories.data or []),
            "at_risk": list(self.at_risk.data or []),
            "abuse_types": list(self.abuse_types.data or []),
            "risk_level": self.risk_level.data or None,
            "immediate_danger": bool(self.immediate_danger.data),
            "source": self.source.data or None,
            "channel": self.channel.data or None,
            "received_at": self.received_at.data or None,
            "summary": self.summary.data or None,
            "reporter": {
                "name": self.reporter_name.data or None,
                "phone": self.reporter_phone.data or None,
                "address": self.reporter_address.data or None,
            },
        }
        if self.linked_child_id():
            payload["existing_child_id"] = self.linked_child_id()
        return payload

    def _field_for(self, key: str) -> str:
        # ``child.full_name`` → ``full_name``; ``reporter.name`` → ``reporter_name``
        return self.ERROR_FIELDS.get(key, key.removeprefix("child."))


# --- editing ------------------------------------------------------------------------------------------------------

_NATIONAL_ID = Regexp(NATIONAL_ID_RE, message=_l("A personal ID number has 12 digits."))
_PHONE = Regexp(PHONE_RE, message=_l("A phone number has 9 to 12 digits."))


def _max(n: int) -> Length:
    return Length(max=n, message=_l("At most %(n)d characters.", n=n))


class EditCaseForm(ShowsErrors, FlaskForm):
    """The fields of a case and its child that can be corrected; ``version`` catches a stale form."""

    version = HiddenField(validators=[DataRequired()])
    full_name = StringField(
        _l("Full name of the child"), validators=[DataRequired(REQUIRED), _max(MAX_NAME)], filters=[_collapse]
    )
    other_names = StringField(_l("Other names"), validators=[Optional(), _max(MAX_NAME)], filters=[_collapse])
    sex = SelectField(_l("Sex"), choices=[])
    date_of_birth = StringField(_l("Date of birth (dd/mm/yyyy)"), validators=[Optional(), _valid_past_day])
    ethnicity = SelectField(_l("Ethnicity"), choices=[], default="")
    has_disability = BooleanField(_l("The child has a disability"))
    disability_kind = StringField(_l("Kind of disability"), validators=[Optional(), _max(32)], filters=[_collapse])
    national_id = StringField(_l("Personal ID number"), validators=[Optional(), _NATIONAL_ID], filters=[_digits_only])
    address = StringField(_l("Address"), validators=[Optional(), _max(500)], filters=[_collapse])
    guardian_name = StringField(_l("Parent or guardian"), validators=[Optional(), _max(MAX_NAME)], filters=[_collapse])
    guardian_phone = StringField(
        _l("Phone of the parent or guardian"), validators=[Optional(), _PHONE], filters=[_phone_chars]
    )
    risk_level = SelectField(_l("Risk level"), choices=[])
    immediate_danger = BooleanField(_l("The child is in immediate danger (12-hour emergency path)"))
    source = SelectField(_l("Who reported"), choices=[])
    channel = SelectField(_l("How it was reported"), choices=[], default="")
    summary = TextAreaField(_l("What was reported"), validators=[DataRequired(REQUIRED), _max(MAX_TEXT)])

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sex.choices = options(codes.choices("sex"))
        self.ethnicity.choices = options(codes.choices("ethnicity"), blank="—")
        self.risk_level.choices = options(codes.choices("risk_levels"))
        self.source.choices = options(codes.choices("report_sources"))
        self.channel.choices = options(codes.choices("report_channels"), blank="—")

    @classmethod
    def of(cls, case) -> EditCaseForm:
        """The form filled from the case as it is now."""
        child = case.child
        form = cls(
            formdata=None,
            version=str(case.version),
            full_name=child.full_name,
            other_names=child.other_names,
            sex=child.sex,
            date_of_birth=child.date_of_birth.strftime("%d/%m/%Y") if child.date_of_birth else "",
            ethnicity=child.ethnicity or "",
            has_disability=child.has_disability,
            disability_kind=child.disability_kind,
            national_id=child.national_id,
            address=child.address,
            guardian_name=child.guardian_name,
            guardian_phone=child.guardian_phone,
            risk_level=case.risk_level,
            immediate_danger=case.immediate_danger,
            source=case.source,
            channel=case.channel or "",
            summary=case.summary,
        )
        return form

    def version_number(self) -> int:
        try:
            return int(self.version.data)
        except (TypeError, ValueError):
            return 0

    def changes(self) -> dict[str, Any]:
        """The values as the models hold them: empty text is None, the date a ``date``."""
        values: dict[str, Any] = {}
        for name in (
            "full_name",
            "other_names",
            "national_id",
            "address",
            "guardian_name",
            "guardian_phone",
            "sex",
            "ethnicity",
            "disability_kind",
            "risk_level",
            "source",
            "channel",
        ):
            values[name] = getattr(self, name).data or None
        values["summary"] = (self.summary.data or "").strip() or None
        values["date_of_birth"] = parse_day(self.date_of_birth.data) if self.date_of_birth.data else None
        values["has_disability"] = bool(self.has_disability.data)
        values["immediate_danger"] = bool(self.immediate_danger.data)
        return values


# --- search -------------------------------------------------------------------------------------------------------


class SearchForm(FlaskForm):
    """The search box and filters of the case list; a GET form, so without a CSRF token."""

    class Meta:
        csrf = False

    q = StringField(_l("Case number, personal ID, phone or name"), validators=[Optional(), _max(200)])
    stage = SelectField(_l("Stage"), choices=[], validate_choice=False)
    category = SelectField(_l("Group, risk or form of abuse"), choices=[], validate_choice=False)
    risk = SelectField(_l("Risk level"), choices=[], validate_choice=False)
    commune = SelectField(_l("Commune"), choices=[], validate_choice=False)
    worker = SelectField(_l("Worker"), choices=[], validate_choice=False)
    overdue = BooleanField(_l("Overdue only"))
    due = SelectField(_l("Next deadline"), choices=[], validate_choice=False)
    closed = BooleanField(_l("Include closed cases"))

    def __init__(self, *args, communes=(), workers=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        everything = str(_l("All"))
        self.stage.choices = options(stage_choices(), blank=everything)
        self.due.choices = options([("1", _l("Within a day")), ("7", _l("Within a week"))], blank=str(_l("Any time")))
        self.category.choices = [
            SelectChoice("", everything),
            *options(codes.choices("special_circumstances"), optgroup=str(_l("Groups (Art. 10)"))),
            *options(codes.choices("at_risk"), optgroup=str(_l("At risk of"))),
            *options(codes.choices("abuse_types"), optgroup=str(_l("Forms of abuse"))),
        ]
        self.risk.choices = options(codes.choices("risk_levels"), blank=everything)
        self.commune.choices = options(list(communes), blank=everything)
        self.worker.choices = options([("none", _l("Unassigned")), *workers], blank=everything)


# --- the forms of the case page -------------------------------------------------------------------------------------


class NoteForm(ShowsErrors, FlaskForm):
    body = TextAreaField(_l("New note"), validators=[DataRequired(REQUIRED), _max(MAX_TEXT)])


class FileForm(ShowsErrors, FlaskForm):
    file = FileField(_l("File (PDF, image, Word, Excel)"), validators=[FileRequired(_l("Choose a file."))])


class ConsentForm(ShowsErrors, FlaskForm):
    subject = SelectField(_l("Who"), choices=[], validate_choice=False)
    scope = SelectField(_l("For what"), choices=[], validate_choice=False)
    given = RadioField(
        _l("Answer"),
        choices=[
            SelectChoice("yes", _l("Consent given")),
            SelectChoice("no", _l("No consent: a legal basis is relied on")),
        ],
        default="yes",
    )
    basis = SelectField(_l("Legal basis (without consent)"), choices=[], validate_choice=False)
    note = TextAreaField(_l("Note"), validators=[Optional(), _max(MAX_TEXT)])

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("prefix", "consent")
        super().__init__(*args, **kwargs)
        self.subject.choices = options(CONSENT_SUBJECTS.items())
        self.scope.choices = options(codes.choices("consent_scopes"))
        self.basis.choices = options(LEGAL_BASIS_LABELS.items(), blank="—")


class AssignForm(ShowsErrors, FlaskForm):
    worker = SelectField(_l("Social worker"), choices=[], validate_choice=False, validators=[DataRequired(REQUIRED)])
    reason = TextAreaField(_l("Reason (optional)"), validators=[Optional(), _max(MAX_TEXT)])

    def __init__(self, *args, workers=(), **kwargs) -> None:
        kwargs.setdefault("prefix", "assign")
        super().__init__(*args, **kwargs)
        self.worker.choices = options(workers)


class ReferForm(ShowsErrors, FlaskForm):
    to_commune = StringField(_l("Code of the receiving commune"), filters=[_strip], validators=[_max(5)])
    reason = TextAreaField(_l("Reason for the referral"), validators=[_max(MAX_TEXT)])
    override_reason = TextAreaField(
        _l("Without recorded consent: the supervisor's reason for sharing"), validators=[_max(MAX_TEXT)]
    )

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("prefix", "refer")
        super().__init__(*args, **kwargs)


class SiblingForm(ShowsErrors, FlaskForm):
    ERROR_FIELDS = {"sibling": "case_number"}

    case_number = StringField(
        _l("Case number of the sibling"), validators=[DataRequired(REQUIRED), _max(20)], filters=[_strip]
    )

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("prefix", "sibling")
        super().__init__(*args, **kwargs)


class DecisionForm(FlaskForm):
    """The receiving supervisor's answer to a referral: the button pressed says which."""

    decision = StringField(validators=[AnyOf(["accept", "decline"], message=_l("Unknown value."))])
    note = TextAreaField(_l("Note (optional)"), validators=[Optional(), _max(MAX_TEXT)])
