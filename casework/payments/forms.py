"""The forms of the payment pages. They carry the input and the CSRF token; the rules (what an amount may be, who
is paid, which programme pays for what) are :mod:`casework.payments.operations`', whose errors the forms show next
to their fields. Choices are filled per request, in the language of the request."""

from __future__ import annotations

import re
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import RadioField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice

from casework import codes
from casework.cases.forms import MultiCheckboxField, ShowsErrors, options
from casework.payments.operations import METHOD_LABELS, STATUS_LABELS  # noqa: F401 - the pages' labels too
from casework.widgets import SelectField

DECISION_LABELS = {"approve": _l("Approved"), "reject": _l("Rejected"), "return": _l("Sent back for changes")}
#: The month picker's value, as ``<input type="month">`` sends it.
MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _without_separators(value: Any) -> Any:
    """ "500.000.000" or "500 000 000 ₫" as digits; anything else is left for the rules to refuse."""
    if not isinstance(value, str):
        return value
    compact = value.strip().replace(".", "").replace(" ", "").replace("₫", "")
    return compact if compact.isdigit() else value.strip()


def _methods() -> list[SelectChoice]:
    return [SelectChoice(code, label) for code, label in METHOD_LABELS.items()]


class PaymentRequestForm(ShowsErrors, FlaskForm):
    """A request to pay for a child's case; converted to the API's JSON shape for ``create_request``."""

    programme = SelectField(_l("Programme"), choices=[], validate_choice=False)
    purpose = SelectField(_l("Purpose"), choices=[], validate_choice=False)
    amount_vnd = StringField(_l("Amount (whole đồng, e.g. 1.250.000)"), filters=[_strip])
    payee_name = StringField(_l("Payee's full name"), filters=[_strip])
    payee_relation = StringField(_l("Relation to the child"), filters=[_strip])
    payee_method = RadioField(_l("Paid by"), choices=[], validate_choice=False)
    payee_account = StringField(_l("Bank and account number"), filters=[_strip])
    description = TextAreaField(_l("What the money is for"))

    #: Keys of the operation's errors that are not named like the form's fields.
    ERROR_FIELDS = {
        "payee": "payee_name",
        "payee.name": "payee_name",
        "payee.relation": "payee_relation",
        "payee.method": "payee_method",
        "payee.account": "payee_account",
    }

    def __init__(self, *args, programmes=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.programme.choices = options([(str(p.id), f"{p.name} ({p.year})") for p in programmes], blank="—")
        self.purpose.choices = options(codes.choices("payment_purposes"), blank="—")
        self.payee_method.choices = _methods()

    @classmethod
    def of(cls, payment, programmes) -> PaymentRequestForm:
        """The form filled from a request as it is now (to change a draft or a request sent back)."""
        return cls(
            formdata=None,
            programmes=programmes,
            programme=str(payment.programme_id),
            purpose=payment.purpose,
            amount_vnd=f"{payment.amount_vnd:,}".replace(",", "."),
            payee_name=payment.payee_name,
            payee_relation=payment.payee_relation,
            payee_method=payment.payee_method,
            payee_account=payment.payee_account,
            description=payment.description,
        )

    def to_payload(self) -> dict[str, Any]:
        """The request in the JSON shape of the API (what ``create_request`` and ``update_request`` read)."""
        return {
            "programme": self.programme.data or None,
            "purpose": self.purpose.data or None,
            "amount_vnd": self.amount_vnd.data or None,
            "description": self.description.data or None,
            "payee": {
                "name": self.payee_name.data or None,
                "relation": self.payee_relation.data or None,
                "method": self.payee_method.data or None,
                "account": self.payee_account.data or None,
            },
        }


class ReceiptForm(ShowsErrors, FlaskForm):
    file = FileField(_l("Receipt or quotation (PDF or image)"), validators=[FileRequired(_l("Choose a file."))])


class SubmitForm(ShowsErrors, FlaskForm):
    """The button that sends a request for decision; what is missing (a receipt) is shown on it."""


class DecideForm(ShowsErrors, FlaskForm):
    """The approver's decision: the button pressed says which; a rejection or a return says why."""

    decision = StringField()
    reason = TextAreaField(_l("Reason (required to reject or send back)"))


class DisburseForm(ShowsErrors, FlaskForm):
    paid_on = StringField(_l("Paid on (dd/mm/yyyy)"), filters=[_strip])
    method = RadioField(_l("Method"), choices=[], validate_choice=False)
    reference = StringField(_l("Reference (of the bank transfer or the cash receipt)"), filters=[_strip])

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.method.choices = _methods()


class ProgrammeForm(ShowsErrors, FlaskForm):
    ERROR_FIELDS = {"province": "name"}

    name = StringField(_l("Name of the programme"), filters=[_strip])
    year = StringField(_l("Year"), filters=[_strip])
    budget_vnd = StringField(_l("Budget (whole đồng)"), filters=[_without_separators])
    purposes = MultiCheckboxField(_l("Pays for (none ticked: every purpose)"))
    groups = MultiCheckboxField(_l("For children of these groups (none ticked: every child)"))

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.purposes.choices = options(codes.choices("payment_purposes"))
        self.groups.choices = options([*codes.choices("special_circumstances"), *codes.choices("at_risk")])

    def to_payload(self) -> dict[str, Any]:
        return {
            "name": self.name.data or None,
            "year": self.year.data or None,
            "budget_vnd": self.budget_vnd.data or None,
            "purposes": list(self.purposes.data or []),
            "groups": list(self.groups.data or []),
        }


class ListFilterForm(FlaskForm):
    """The filters of the list of requests; a GET form, so without a CSRF token."""

    class Meta:
        csrf = False

    status = SelectField(_l("Status"), choices=[], validate_choice=False)
    programme = SelectField(_l("Programme"), choices=[], validate_choice=False)

    def __init__(self, *args, programmes=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        everything = str(_l("All"))
        self.status.choices = options(STATUS_LABELS.items(), blank=everything)
        self.programme.choices = options([(str(p.id), f"{p.name} ({p.year})") for p in programmes], blank=everything)


class ExportForm(FlaskForm):
    """The month to export; a GET form (the download itself is audited)."""

    class Meta:
        csrf = False

    month = StringField(_l("Month (yyyy-mm)"), filters=[_strip])

    def year_month(self) -> tuple[int, int] | None:
        match = MONTH_RE.match(self.month.data or "")
        return (int(match.group(1)), int(match.group(2))) if match else None
