"""The forms of the procedure page. They carry the input and the CSRF token; the rules (which values are allowed,
what is required when) are :mod:`casework.support.operations`', whose errors the forms show next to their fields."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    FieldList,
    Form,
    FormField,
    HiddenField,
    RadioField,
    StringField,
    TextAreaField,
)

from casework import codes
from casework.cases.forms import ShowsErrors, options
from casework.widgets import SelectField

RATING_LABELS = {"high": _l("High"), "medium": _l("Medium"), "low": _l("Low")}
CAPACITY_LABELS = {
    "high": _l("Much: can protect themself and recover"),
    "medium": _l("Some"),
    "low": _l("Little: cannot protect themself"),
}
ASSESSMENT_LABELS = {
    "initial": _l("Initial risk assessment (Mẫu 02)"),
    "detailed": _l("Detailed assessment and case meeting (Mẫu 03)"),
    "review": _l("Review and evaluation (Mẫu 06)"),
}
REVIEW_OUTCOME_LABELS = {
    "end": _l("End the plan: no more risk, the child is stable"),
    "new_plan": _l("Start a new plan cycle"),
    "continue": _l("Go on with the current plan"),
}
PLAN_STATUS_LABELS = {
    "draft": _l("Draft"),
    "submitted": _l("Awaiting approval"),
    "approved": _l("Approved"),
    "returned": _l("Sent back for changes"),
    "ended": _l("Ended"),
}
REFERRAL_LABELS = {"sent": _l("Sent"), "accepted": _l("Accepted"), "done": _l("Done"), "declined": _l("Declined")}
SERVICE_OUTCOME_LABELS = {
    "completed": _l("Given"),
    "ongoing": _l("Ongoing"),
    "not_delivered": _l("Not given"),
}
VISIT_OUTCOME_LABELS = {
    "stable": _l("Stable"),
    "improving": _l("Improving"),
    "concern": _l("A concern"),
    "danger": _l("The child is in danger"),
}
CLOSURE_STATUS_LABELS = {
    "pending": _l("Awaiting a supervisor"),
    "approved": _l("Approved"),
    "rejected": _l("Rejected"),
    "used": _l("Used to close the case"),
}
FACTORS = (
    ("harm_severity", "harm_note", _l("How serious the harm is")),
    ("abuser_access", "access_note", _l("The abuser's access to the child")),
    ("care_obstacles", "obstacles_note", _l("Obstacles in the care environment")),
)
DAY_HINT = {"placeholder": "dd/mm/yyyy", "inputmode": "numeric", "autocomplete": "off"}


def _labelled(labels: dict, *, blank: str | None = None) -> list:
    return options(labels.items(), blank=blank)


class TransitionForm(ShowsErrors, FlaskForm):
    to = HiddenField()
    version = HiddenField()
    note = TextAreaField(_l("Note"))
    closure_reason = SelectField(_l("Reason for closing"), choices=[], validate_choice=False)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.closure_reason.choices = options(codes.choices("closure_reasons"), blank="")


class AssessmentForm(ShowsErrors, FlaskForm):
    kind = SelectField(_l("Assessment"), choices=[], validate_choice=False)
    harm_severity = RadioField(FACTORS[0][2], choices=[], validate_choice=False)
    harm_note = TextAreaField(_l("Notes"))
    abuser_access = RadioField(FACTORS[1][2], choices=[], validate_choice=False)
    access_note = TextAreaField(_l("Notes"))
    care_obstacles = RadioField(FACTORS[2][2], choices=[], validate_choice=False)
    obstacles_note = TextAreaField(_l("Notes"))
    child_capacity = RadioField(
        _l("The child's capacity to protect themself and recover"), choices=[], validate_choice=False
    )
    capacity_note = TextAreaField(_l("Notes"))
    risk_level = SelectField(_l("Risk level"), choices=[], validate_choice=False)
    override_reason = TextAreaField(_l("Why a level other than the suggested one"))
    needs = TextAreaField(_l("Needs identified"))
    attendees = TextAreaField(_l("Who attended the case meeting"))
    findings = TextAreaField(_l("The child's condition and the safety of the environment"))
    review_outcome = SelectField(_l("Outcome of the review"), choices=[], validate_choice=False)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.kind.choices = _labelled(ASSESSMENT_LABELS)
        for name, _note, _label in FACTORS:
            getattr(self, name).choices = _labelled(RATING_LABELS)
        self.child_capacity.choices = _labelled(CAPACITY_LABELS)
        self.risk_level.choices = _labelled(RATING_LABELS, blank=str(_l("The suggested level")))
        self.review_outcome.choices = _labelled(REVIEW_OUTCOME_LABELS, blank="")


class EmergencyForm(ShowsErrors, FlaskForm):
    measure = SelectField(_l("Measure"), choices=[], validate_choice=False)
    taken_at = StringField(_l("Taken at (dd/mm/yyyy hh:mm)"))
    place = StringField(_l("Where the child is safe now"))
    note = TextAreaField(_l("Note"))

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.measure.choices = options(codes.choices("emergency_measures"), blank="")


class PlannedServiceForm(Form):
    service_type = SelectField(_l("Service"), choices=[], validate_choice=False)
    responsible = StringField(_l("Responsible"))
    due_on = StringField(_l("By (dd/mm/yyyy)"))
    details = StringField(_l("Details"))

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.service_type.choices = options(codes.choices("service_types"), blank="")


PLAN_ROWS = 6


class PlanForm(ShowsErrors, FlaskForm):
    goals = TextAreaField(_l("Goals of the plan"))
    review_on = StringField(_l("Review date (dd/mm/yyyy)"))
    services = FieldList(FormField(PlannedServiceForm), min_entries=PLAN_ROWS, max_entries=30)

    ERROR_FIELDS = {}

    def show_errors(self, errors: dict[str, list[str]]) -> None:
        for key, messages in errors.items():
            if key.startswith("services."):
                _, n, name = (key.split(".") + ["", ""])[:3]
                entries = self.services.entries
                if n.isdigit() and int(n) < len(entries) and name in entries[int(n)].form._fields:
                    target = entries[int(n)].form[name]
                    target.errors = [*target.errors, *(str(m) for m in messages)]
                    continue
            super().show_errors({key: messages})

    ROW_FIELDS = ("service_type", "responsible", "due_on", "details")

    def as_data(self, formdata) -> dict:
        """The input as the operation takes it, read by row number (``services-<n>-<field>``); blank rows are left
        out and the numbers of the others kept in ``row_numbers``."""
        rows, self.row_numbers = [], []
        for n in range(self.services.max_entries):
            row = {k: (formdata.get(f"services-{n}-{k}") or "").strip() or None for k in self.ROW_FIELDS}
            if any(row.values()):
                rows.append(row)
                self.row_numbers.append(n)
        return {"goals": self.goals.data, "review_on": self.review_on.data, "services": rows}

    def shown_again(self, data: dict) -> PlanForm:
        """A form holding ``data`` with each row where it was typed, to show errors next to it."""
        rows: list[dict] = [{} for _ in range(max([PLAN_ROWS - 1, *self.row_numbers]) + 1)]
        for n, row in zip(self.row_numbers, data["services"], strict=True):
            rows[n] = {k: v or "" for k, v in row.items()}
        return PlanForm(formdata=None, data={"goals": data["goals"], "review_on": data["review_on"], "services": rows})


class ServiceForm(ShowsErrors, FlaskForm):
    service_type = SelectField(_l("Service"), choices=[], validate_choice=False)
    delivered_on = StringField(_l("Date (dd/mm/yyyy)"))
    duration_minutes = StringField(_l("Duration (minutes)"))
    outcome = SelectField(_l("Outcome"), choices=[], validate_choice=False)
    provider = StringField(_l("Provider"))
    notes = TextAreaField(_l("Notes"))
    referral_status = SelectField(_l("Referral to an outside service"), choices=[], validate_choice=False)
    legal_aid_centre = BooleanField(_l("Referred to the provincial State legal aid centre"))
    police_report_ref = StringField(_l("Police report"))
    prosecution_ref = StringField(_l("Prosecution reference"))
    court_ref = StringField(_l("Court case reference"))
    hearing_on = StringField(_l("Hearing date (dd/mm/yyyy)"))
    proceedings_outcome = TextAreaField(_l("Outcome of the proceedings"))

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.service_type.choices = options(codes.choices("service_types"), blank="")
        self.outcome.choices = _labelled(SERVICE_OUTCOME_LABELS)
        self.referral_status.choices = _labelled(REFERRAL_LABELS, blank=str(_l("Not a referral")))


class ReferralStatusForm(ShowsErrors, FlaskForm):
    referral_status = SelectField(_l("Referral status"), choices=[], validate_choice=False)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.referral_status.choices = _labelled(REFERRAL_LABELS)


class VisitForm(ShowsErrors, FlaskForm):
    visited_on = StringField(_l("Date of the visit (dd/mm/yyyy)"))
    outcome = SelectField(_l("What was found"), choices=[], validate_choice=False)
    notes = TextAreaField(_l("Notes"))

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.outcome.choices = _labelled(VISIT_OUTCOME_LABELS, blank="")


class ClosureRequestForm(ShowsErrors, FlaskForm):
    reason = SelectField(_l("Reason for closing"), choices=[], validate_choice=False)
    note = TextAreaField(_l("Note"))

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.reason.choices = options(codes.choices("closure_reasons"), blank="")


class ClosureDecisionForm(ShowsErrors, FlaskForm):
    decision = HiddenField()
    note = TextAreaField(_l("Note (required to reject)"))
