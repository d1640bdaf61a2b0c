"""The statistics dashboard's form: a GET form of the province's scope, the period and the breakdown.

The form carries input only; what a period may be is :func:`casework.stats.operations.choose_period`'s to say, and
its errors are shown next to the fields. The same query string drives the page, its exports and its drill-down
links, so a link to a view of the statistics can be shared with another member of the committee.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import StringField

from casework.cases.forms import ShowsErrors, options
from casework.errors import ValidationFailed
from casework.extensions import db
from casework.locations.models import Commune
from casework.stats import operations
from casework.stats.indicators import CATALOGUE, DIMENSION_LABELS, DIMENSIONS, today
from casework.stats.periods import Period
from casework.widgets import SelectField

#: The indicator drawn by commune unless the user picks another.
DEFAULT_CHART = "children_special"
#: The breakdown of a first visit: the province's communes side by side.
DEFAULT_BREAKDOWN = "commune"
#: How many years back the year picker goes.
YEARS_BACK = 10

PERIOD_KIND_LABELS = {
    "year": _l("Whole year"),
    "half": _l("Half-year"),
    "custom": _l("From – to (your own dates)"),
}


def _strip(value):
    return value.strip() if isinstance(value, str) else value


def communes_of(province_code: str) -> list[Commune]:
    """The province's communes as they are now (merged ones left out), by name."""
    return list(
        db.session.scalars(
            select(Commune)
            .where(Commune.province_code == province_code, Commune.merged_into_code.is_(None))
            .order_by(Commune.name)
        )
    )


class DashboardForm(ShowsErrors, FlaskForm):
    """What the dashboard shows: a period, a commune or the whole province, a breakdown, the chart's indicator."""

    class Meta:
        csrf = False  # a GET form that changes nothing

    kind = SelectField(_l("Period"), choices=[], default="year", validate_choice=False)
    year = SelectField(_l("Year"), choices=[], validate_choice=False)
    half = SelectField(_l("Half-year"), choices=[], default="1", validate_choice=False)
    date_from = StringField(_l("From (dd/mm/yyyy)"), name="from", filters=[_strip])
    date_to = StringField(_l("To (dd/mm/yyyy)"), name="to", filters=[_strip])
    commune = SelectField(_l("Commune"), choices=[], default="", validate_choice=False)
    breakdown = SelectField(_l("Breakdown"), choices=[], default=DEFAULT_BREAKDOWN, validate_choice=False)
    chart = SelectField(_l("Indicator drawn by commune"), choices=[], default=DEFAULT_CHART, validate_choice=False)

    ERROR_FIELDS = {"from": "date_from", "to": "date_to"}

    def __init__(self, province_code: str, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        this_year = today().year
        if not self.year.data:
            self.year.data = str(this_year)
        self.kind.choices = options(PERIOD_KIND_LABELS.items())
        self.year.choices = options((str(y), str(y)) for y in range(this_year, this_year - YEARS_BACK, -1))
        self.half.choices = options(
            [("1", _l("First half (January – June)")), ("2", _l("Second half (July – December)"))]
        )
        self.commune.choices = options(
            ((c.code, c.name) for c in communes_of(province_code)), blank=str(_l("The whole province"))
        )
        self.breakdown.choices = options(((d, DIMENSION_LABELS[d]) for d in DIMENSIONS), blank=str(_l("No breakdown")))
        self.chart.choices = options((i.code, i.title) for i in CATALOGUE)

    @property
    def commune_code(self) -> str | None:
        return self.commune.data or None

    @property
    def dimension(self) -> str | None:
        return self.breakdown.data or None

    @property
    def chart_code(self) -> str:
        return self.chart.data if self.chart.data in {i.code for i in CATALOGUE} else DEFAULT_CHART

    def period(self) -> Period:
        """The period chosen, after checking the breakdown too.

        :raises ValidationFailed: an unknown breakdown; a bad period (see :func:`operations.choose_period`).
        """
        if self.dimension is not None and self.dimension not in DIMENSIONS:
            raise ValidationFailed(
                {"breakdown": [str(_l("Unknown breakdown."))]}, field_codes={"breakdown": ["unknown_breakdown"]}
            )
        return operations.choose_period(
            self.kind.data or "year",
            year=self.year.data,
            half=self.half.data,
            date_from=self.date_from.data,
            date_to=self.date_to.data,
        )

    def params(self, **changes) -> dict[str, str]:
        """The query string of what the form shows (empty values left out), with ``changes``: for the links of the
        page (drill-down, back to the province, exports), so each keeps the rest of the choice."""
        values = {
            "kind": self.kind.data or "year",
            "year": self.year.data,
            "half": self.half.data if (self.kind.data or "year") == "half" else "",
            "from": self.date_from.data if self.kind.data == "custom" else "",
            "to": self.date_to.data if self.kind.data == "custom" else "",
            "commune": self.commune.data or "",
            "breakdown": self.breakdown.data or "",
            "chart": self.chart_code,
        }
        values.update(changes)
        # An empty breakdown is a choice ("no breakdown"), kept so that the default does not come back.
        return {k: v for k, v in values.items() if v or k == "breakdown"}
