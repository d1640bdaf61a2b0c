"""Statistics for people: who may see which province, disclosure control applied to every output, the dashboard's
indicators with the previous period beside them, and the exports (CSV, XLSX with a cover sheet, JSON).

Every door (pages, exports, ``/api/v1/stats``, ``casework stats``) goes through :func:`report`, so suppression
is decided here once: committee members always get suppressed numbers; provincial officers see their own
province's numbers as they are; nobody else sees statistics.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from flask import current_app
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, case, func, select

from casework import audit, scope
from casework.auth.models import User
from casework.auth.roles import PROVINCIAL_OFFICER
from casework.cases.models import Case
from casework.errors import PermissionDenied, Problems, ValidationFailed
from casework.extensions import db
from casework.locations.models import Commune, Province
from casework.stats import indicators, snapshots, suppression
from casework.stats.indicators import CATALOGUE, DIMENSIONS, Grid, Result, Scope
from casework.stats.periods import Period

#: How a hidden number is shown: a small count as "<k"; one hidden to protect another as "×".
HIDDEN_MARK = "×"


@dataclass
class Published:
    """An indicator's grid as it may be shown to one viewer: ``shown`` holds numbers, "<k" or "×"."""

    code: str
    title: str
    unit: str
    grid: Grid
    shown: dict[tuple[str, Hashable, Hashable], object]
    hidden: dict[tuple[str, Hashable, Hashable], str]
    categories: str | None = None

    @property
    def suppressed(self) -> bool:
        return bool(self.hidden)

    def cell(self, row: Hashable, column: Hashable):
        return self.shown[("cell", row, column)]

    def row_total(self, row: Hashable):
        return self.shown.get(("row", row, None))

    def column_total(self, column: Hashable):
        return self.shown.get(("column", None, column))

    @property
    def total(self):
        return self.shown.get(("total", None, None))

    def as_dict(self) -> dict:
        rows = [{"key": str(r), "label": label} for r, label in self.grid.rows]
        columns = [{"key": str(c), "label": label} for c, label in self.grid.columns]
        return {
            "code": self.code,
            "title": self.title,
            "unit": self.unit,
            "total": self.total,
            "rows": rows,
            "columns": columns,
            "cells": [[self.cell(r, c) for c, _ in self.grid.columns] for r, _ in self.grid.rows],
            "row_totals": [self.row_total(r) for r, _ in self.grid.rows],
            "column_totals": [self.column_total(c) for c, _ in self.grid.columns],
            "suppressed": self.suppressed,
        }


@dataclass
class Report:
    """What a viewer may see of a province (or commune) for a period and its previous period."""

    province: Province
    commune: Commune | None
    period: Period
    previous: Period
    dimension: str | None
    k: int
    suppressing: bool
    indicators: list[tuple[Published, Published]] = field(default_factory=list)
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def any_suppressed(self) -> bool:
        return any(p.suppressed or q.suppressed for p, q in self.indicators)

    def as_dict(self) -> dict:
        return {
            "province": self.province.code,
            "commune": self.commune.code if self.commune else None,
            "period": self.period.as_dict(),
            "previous_period": self.previous.as_dict(),
            "breakdown": self.dimension,
            "suppression": {"k": self.k, "applied": self.suppressing, "any_suppressed": self.any_suppressed},
            "generated_at": self.generated_at.isoformat(),
            "indicators": [
                {**current.as_dict(), "previous": previous.as_dict()} for current, previous in self.indicators
            ],
        }


def _as_suppression_grid(grid: Grid) -> suppression.Grid:
    return suppression.Grid(
        rows=[r for r, _ in grid.rows],
        columns=[c for c, _ in grid.columns],
        cells={k: int(v or 0) for k, v in grid.cells.items()},
        row_totals={k: int(v or 0) for k, v in grid.row_totals.items()},
        column_totals={k: int(v or 0) for k, v in grid.column_totals.items()},
        total=int(grid.total or 0),
    )


def _keys(grid: Grid) -> Iterable[tuple[str, Hashable, Hashable]]:
    for r, _ in grid.rows:
        for c, _ in grid.columns:
            yield ("cell", r, c)
    for r in grid.row_totals:
        yield ("row", r, None)
    for c in grid.column_totals:
        yield ("column", None, c)
    yield ("total", None, None)


def _value(grid: Grid, key):
    kind, r, c = key
    if kind == "cell":
        return grid.cells.get((r, c))
    if kind == "row":
        return grid.row_totals.get(r)
    if kind == "column":
        return grid.column_totals.get(c)
    return grid.total


def publish(result: Result, k: int | None, *, title: str = "", categories: str | None = None) -> Published:
    """Apply disclosure control to ``result`` (``k`` None or < 2: none). Counts are suppressed as they are; a share is
    hidden where its numerator or denominator is; a sum of VND or a median where the count behind it is."""
    hidden: dict = {}
    marks: dict = {}
    if k and k >= 2:
        bases = [g for g in (result.numerator, result.denominator, result.counts) if g is not None]
        if not bases:
            bases = [result.grid]
        for base in bases:
            found = suppression.suppress(_as_suppression_grid(base), k)
            for key, reason in found.items():
                if reason == suppression.PRIMARY or key not in hidden:
                    hidden[key] = reason
        for key, reason in hidden.items():
            marks[key] = (
                f"<{k}" if reason == suppression.PRIMARY and result.unit in ("children", "cases") else HIDDEN_MARK
            )
    shown = {key: marks.get(key, _value(result.grid, key)) for key in _keys(result.grid)}
    return Published(result.code, title, result.unit, result.grid, shown, hidden, categories)


# --- who sees what --------------------------------------------------------------------------------------------------


def min_count(viewer: User, province_code: str) -> int | None:
    """The k applied for ``viewer``: none for a provincial officer of the province, else CASEWORK_STATS_MIN_COUNT."""
    if viewer.role == PROVINCIAL_OFFICER and viewer.province_code == province_code:
        return None
    return current_app.config["CASEWORK_STATS_MIN_COUNT"]


def check_scope(viewer: User, province_code: str, commune_code: str | None) -> tuple[Province, Commune | None]:
    """The province (and commune) ``viewer`` may see statistics of. :raises PermissionDenied: not theirs."""
    if not scope.can_view_statistics(viewer, province_code):
        raise PermissionDenied(_l("You see the statistics of your own province only."), code="out_of_scope")
    province = db.session.get(Province, province_code)
    if province is None:
        raise PermissionDenied(_l("You see the statistics of your own province only."), code="out_of_scope")
    commune = None
    if commune_code:
        commune = db.session.get(Commune, commune_code)
        if commune is None or commune.province_code != province_code:
            problems = Problems()
            problems.add("commune", "unknown_commune", _l("Choose a commune of the province."))
            problems.raise_if_any()
    return province, commune


def parse_period(
    raw_from: str | None, raw_to: str | None, *, year: str | None = None, half: str | None = None
) -> Period:
    """The period asked for: ``year`` (and ``half`` 1 or 2), or ``from``/``to`` dates (ISO or dd/mm/yyyy); the
    current year by default. :raises ValidationFailed: bad dates."""
    from casework.i18n import parse_day

    problems = Problems()
    try:
        if raw_from or raw_to:
            start = parse_day(raw_from or "")
            end = parse_day(raw_to or "")
            if end < start:
                problems.add("to", "before_start", _l("The period ends before it starts."))
            elif (end - start).days > 366 * 5:
                problems.add("to", "too_long", _l("A period is at most five years."))
            problems.raise_if_any()
            return Period(start, end)
        the_year = int(year) if year else indicators.today().year
        if not 2000 <= the_year <= 2100:
            raise ValueError
        if half in ("1", "2"):
            return Period.half(the_year, int(half))
        return Period.year(the_year)
    except ValueError:
        problems.add("from", "invalid_date", _l("Write the date as dd/mm/yyyy."))
        problems.raise_if_any()
        raise


def report(
    viewer: User,
    province_code: str,
    period: Period,
    *,
    commune_code: str | None = None,
    dimension: str | None = None,
    codes: Iterable[str] | None = None,
    allow_recent: bool = False,
) -> Report:
    """The indicators ``viewer`` may see for the scope, suppressed as their role requires, with the previous period.

    :param allow_recent: figures computed in the last ``CASEWORK_STATS_STALE_MINUTES`` may be used even if the
        province changed since (the dashboard, which then says when they were computed); otherwise they are current.
    """
    province, commune = check_scope(viewer, province_code, commune_code)
    if dimension is not None and dimension not in DIMENSIONS:
        problems = Problems()
        problems.add("breakdown", "unknown_breakdown", _l("Unknown breakdown."))
        problems.raise_if_any()
    wanted = list(codes) if codes else [i.code for i in CATALOGUE]
    k = min_count(viewer, province_code)
    out = Report(province, commune, period, period.previous(), dimension, k or 0, k is not None)

    minutes = current_app.config["CASEWORK_STATS_STALE_MINUTES"] if allow_recent else 0
    payload, computed_at, _ = _computed(
        province_code,
        commune_code,
        period,
        dimension,
        wanted,
        k,
        max_age=timedelta(minutes=minutes) if minutes else None,
    )
    out.indicators = [(_load(current), _load(previous)) for current, previous in payload]
    out.generated_at = computed_at
    return out


def _computed(
    province_code: str,
    commune_code: str | None,
    period: Period,
    dimension: str | None,
    wanted: list[str],
    k: int | None,
    *,
    max_age: timedelta | None = None,
) -> tuple[list, datetime, bool]:
    """The published pairs (current, previous) of ``wanted`` for the scope, from a current snapshot or computed
    (and when, and whether just now)."""
    previous = period.previous()

    def compute() -> list:
        pairs = []
        with indicators.memoised():
            for code in wanted:
                indicator = indicators.BY_CODE[code]
                title = str(indicator.title)
                categories = str(indicator.categories) if indicator.categories else None
                current = indicator.compute(Scope(province_code, period, commune_code), dimension)
                before = indicator.compute(Scope(province_code, previous, commune_code), dimension)
                pairs.append(
                    [
                        _dump(publish(current, k, title=title, categories=categories)),
                        _dump(publish(before, k, title=title, categories=categories)),
                    ]
                )
        return pairs

    key = "|".join(
        [
            province_code,
            commune_code or "",
            period.start.isoformat(),
            period.end.isoformat(),
            period.kind,
            dimension or "",
            str(k or 0),
            str(get_locale() or "vi"),
            ",".join(wanted),
        ]
    )
    digest = hashlib.sha256(key.encode()).hexdigest()
    return snapshots.cached_report(digest, province_code, compute, max_age=max_age)


#: The views computed ahead of viewers (``refresh_stale``): the dashboard's default, this year by commune.
DEFAULT_DIMENSION = "commune"


def refresh_stale(now: date | None = None) -> int:
    """Compute again, ahead of anyone asking, the dashboards' default views (this year by commune, suppressed and
    not, in Vietnamese) of every province whose data changed since they were computed. Run by ``casework tick``.

    :returns: how many views were computed.
    """
    from flask_babel import force_locale

    from casework.stats.models import StatsVersion

    year = (now or indicators.today()).year
    wanted = [i.code for i in CATALOGUE]
    k = current_app.config["CASEWORK_STATS_MIN_COUNT"]
    computed = 0
    provinces = list(db.session.scalars(select(StatsVersion.province_code).order_by(StatsVersion.province_code)))
    for province_code in provinces:
        for suppressed in (k, None):
            with force_locale("vi"):
                _, _, fresh = _computed(province_code, None, Period.year(year), DEFAULT_DIMENSION, wanted, suppressed)
            computed += fresh
        _monthly_counts(province_code, None, Period.year(year))  # the default view's chart of new cases by month
    return computed


def _key_out(value) -> object:
    return value if value is None or isinstance(value, str | int) else str(value)


def _dump(published: Published) -> dict:
    """A published indicator as JSON for a snapshot (keys that are not text or numbers become text)."""
    grid = published.grid
    return {
        "code": published.code,
        "title": published.title,
        "unit": published.unit,
        "categories": published.categories,
        "rows": [[_key_out(r), label] for r, label in grid.rows],
        "columns": [[_key_out(c), label] for c, label in grid.columns],
        "cells": [[_key_out(r), _key_out(c), v] for (r, c), v in grid.cells.items()],
        "row_totals": [[_key_out(r), v] for r, v in grid.row_totals.items()],
        "column_totals": [[_key_out(c), v] for c, v in grid.column_totals.items()],
        "total": grid.total,
        "shown": [[kind, _key_out(r), _key_out(c), v] for (kind, r, c), v in published.shown.items()],
        "hidden": [[kind, _key_out(r), _key_out(c), why] for (kind, r, c), why in published.hidden.items()],
    }


def _load(data: dict) -> Published:
    grid = Grid(
        rows=[(r, label) for r, label in data["rows"]],
        columns=[(c, label) for c, label in data["columns"]],
        cells={(r, c): v for r, c, v in data["cells"]},
        row_totals=dict(data["row_totals"]),
        column_totals=dict(data["column_totals"]),
        total=data["total"],
    )
    return Published(
        code=data["code"],
        title=data["title"],
        unit=data["unit"],
        grid=grid,
        shown={(kind, r, c): v for kind, r, c, v in data["shown"]},
        hidden={(kind, r, c): why for kind, r, c, why in data["hidden"]},
        categories=data["categories"],
    )


def record_export(viewer: User, report_: Report, fmt: str) -> None:
    audit.record(
        "stats.export",
        object_type="province",
        object_id=report_.province.code,
        actor=viewer,
        details={
            "format": fmt,
            "commune": report_.commune.code if report_.commune else None,
            "from": report_.period.start.isoformat(),
            "to": report_.period.end.isoformat(),
            "suppressed": report_.suppressing,
        },
    )


# --- exports ----------------------------------------------------------------------------------------------------------


def _flat_rows(report_: Report) -> Iterable[list]:
    for current, previous in report_.indicators:
        for r, row_label in current.grid.rows:
            for c, column_label in current.grid.columns:
                yield [
                    current.code,
                    current.title,
                    row_label,
                    column_label,
                    current.cell(r, c),
                    previous.shown.get(("cell", r, c), ""),
                ]
            yield [
                current.code,
                current.title,
                row_label,
                str(_l("Total")),
                current.row_total(r),
                previous.row_total(r),
            ]
        yield [current.code, current.title, str(_l("Total")), str(_l("Total")), current.total, previous.total]


def _headers() -> list[str]:
    return [
        str(_l("Indicator code")),
        str(_l("Indicator")),
        str(_l("Row")),
        str(_l("Breakdown")),
        str(_l("This period")),
        str(_l("Previous period")),
    ]


def to_csv(report_: Report) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(_headers())
    for row in _flat_rows(report_):
        writer.writerow(row)
    return ("\ufeff" + out.getvalue()).encode("utf-8")  # a BOM, so Excel reads the Vietnamese


def cover_lines(report_: Report) -> list[tuple[str, str]]:
    from casework.i18n import format_datetime

    place = report_.province.name + (f" – {report_.commune.name}" if report_.commune else "")
    rule = (
        str(
            _l(
                'Counts from 1 to %(below)d are shown as "<%(k)d"; other cells marked "%(mark)s" are hidden so '
                "that no hidden count can be worked out from the totals.",
                below=report_.k - 1,
                k=report_.k,
                mark=HIDDEN_MARK,
            )
        )
        if report_.suppressing
        else str(_l("Not suppressed: for the province's officers only. Do not publish as it is."))
    )
    return [
        (str(_l("Scope")), place),
        (str(_l("Period")), report_.period.label()),
        (str(_l("Previous period")), report_.previous.label()),
        (str(_l("Breakdown")), str(indicators.DIMENSION_LABELS[report_.dimension]) if report_.dimension else "—"),
        (str(_l("Generated")), format_datetime(report_.generated_at)),
        (str(_l("Disclosure control")), rule),
    ]


def to_xlsx(report_: Report) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    cover = book.active
    cover.title = str(_l("Cover"))[:31]
    cover.append([str(_l("Statistics on child protection"))])
    cover["A1"].font = Font(bold=True, size=14)
    for label, value in cover_lines(report_):
        cover.append([label, value])
    cover.append([])
    cover.append([str(_l("Indicator")), str(_l("Definition"))])
    for indicator in CATALOGUE:
        cover.append([str(indicator.title), DEFINITIONS.get(indicator.code, "")])
    cover.column_dimensions["A"].width = 48
    cover.column_dimensions["B"].width = 110
    data = book.create_sheet(str(_l("Indicators"))[:31])
    data.append(_headers())
    for cell in data[1]:
        cell.font = Font(bold=True)
    for row in _flat_rows(report_):
        data.append(row)
    data.column_dimensions["B"].width = 50
    data.column_dimensions["C"].width = 36
    data.column_dimensions["D"].width = 28
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


#: One line per indicator for the export's cover sheet; the full definitions are in docs/INDICATORS.md.
DEFINITIONS = {
    "children_special": "Distinct children with a case open during the period that names a group of Art. 10 (Law "
    "on Children 2016); rows: each group (a child in several groups counts in each; once in the total).",
    "children_at_risk": "Distinct children with a case open during the period that names a risk (Art. 49).",
    "new_cases": "Cases whose report was received during the period; rows: the source of the report.",
    "abused_children": "Distinct children with a case open during the period that names a form of abuse.",
    "abused_counselling": "Of the abused children, the share given counselling during the period.",
    "abused_psychological": "Of the abused children, the share given psychological support during the period.",
    "abused_legal": "Of the abused children, the share given legal counselling or legal aid during the period.",
    "abused_all_three": "Of the abused children, the share given all three during the period.",
    "medical_children": "Distinct children with a medical examination and treatment payment paid in the period.",
    "medical_paid_vnd": "VND paid for medical examination and treatment in the period (date of payment).",
    "payments_by_programme": "VND paid in the period, by programme.",
    "payments_by_purpose": "VND paid in the period, by purpose.",
    "verification_hours": "Median hours from the report to the first step out of 'report received', for reports "
    "received in the period.",
    "verification_within_deadline": "Of the reports received in the period that were verified, or still wait after "
    "12 hours, the share verified within 12 hours (Decree 56/2017, Art. 31).",
    "plan_days": "Median days from the report to the approval of the first support plan, for plans approved in "
    "the period.",
    "plan_within_deadline": "Share of those plans approved within 7 working days of the start of drafting "
    "(Decree 56/2017, Art. 28).",
    "overdue_open": "Open cases past a deadline at the end of the period, rebuilt from their history (now, for a "
    "period not over yet); rows: the stage they were at.",
    "closed_by_reason": "Cases closed during the period, by the date and reason of the closing step (a case reopened "
    "since still counts); rows: the reason for closing.",
}


def period_of(date_from: date, date_to: date) -> Period:
    return Period(date_from, date_to)


def provinces_for(viewer: User) -> list[Province]:
    if not viewer.province_code:
        return []
    return list(db.session.scalars(select(Province).where(Province.code == viewer.province_code)))


# --- the dashboard's month series and the command line's reports (additive: the doors' needs) -----------------------


@dataclass
class Series:
    """A count for each month of a period, published for one viewer: ``values`` hold numbers, "<k" or "×"."""

    code: str
    title: str
    months: list[tuple[int, int]]
    values: list[object]
    total: object
    suppressed: bool

    def as_dict(self) -> dict:
        return {
            "code": self.code,
            "title": self.title,
            "months": [f"{year:04d}-{month:02d}" for year, month in self.months],
            "values": self.values,
            "total": self.total,
            "suppressed": self.suppressed,
        }


def _month_period(period: Period, year: int, month: int) -> Period:
    """The part of ``period`` that falls in ``month`` of ``year``."""
    first = date(year, month, 1)
    following = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
    return Period(max(first, period.start), min(following - timedelta(days=1), period.end))


def _monthly_counts(
    province_code: str, commune_code: str | None, period: Period, *, max_age: timedelta | None = None
) -> list[int]:
    """Reports received in each month of ``period`` in the scope, from a current snapshot or counted now (one scan
    of the province's cases: 150 ms at 1,000,000 cases, which every dashboard view used to pay)."""
    months = period.months()
    if not months:
        return []

    def compute() -> dict:
        condition = Case.province_code == province_code
        if commune_code:
            condition = and_(condition, Case.commune_code == commune_code)
        measures = []
        for year, month in months:
            start, end = _month_period(period, year, month).bounds()
            measures.append(
                func.coalesce(func.sum(case((and_(Case.received_at >= start, Case.received_at < end), 1))), 0)
            )
        return {"counts": [int(v or 0) for v in indicators.reads().execute(select(*measures).where(condition)).one()]}

    key = "|".join(["months", province_code, commune_code or "", period.start.isoformat(), period.end.isoformat()])
    payload, _, _ = snapshots.cached_report(
        hashlib.sha256(key.encode()).hexdigest(), province_code, compute, max_age=max_age
    )
    return payload["counts"]


def monthly_series(
    viewer: User,
    province_code: str,
    period: Period,
    commune_code: str | None = None,
    *,
    allow_recent: bool = False,
) -> Series:
    """New cases (reports received) in each month of ``period``, suppressed as the viewer's role requires.

    The months are published as a one-row table with its total, so disclosure control treats them like any other
    count: a month of 1 to k−1 reports shows as "<k", and enough others are hidden that it cannot be worked out
    from the total. The raw counts are kept as a snapshot like the indicators' (``allow_recent`` as in
    :func:`report`); suppression is applied for each viewer.
    """
    check_scope(viewer, province_code, commune_code)
    months = period.months()
    minutes = current_app.config["CASEWORK_STATS_STALE_MINUTES"] if allow_recent else 0
    counts = _monthly_counts(
        province_code, commune_code, period, max_age=timedelta(minutes=minutes) if minutes else None
    )
    columns = [((year, month), f"{month:02d}/{year}") for year, month in months]
    grid = Grid(
        rows=[(indicators.ALL, str(_l("All")))],
        columns=columns,
        cells={(indicators.ALL, key): n for (key, _), n in zip(columns, counts, strict=True)},
        row_totals={indicators.ALL: sum(counts)},
        column_totals={key: n for (key, _), n in zip(columns, counts, strict=True)},
        total=sum(counts),
    )
    title = str(_l("New cases by month"))
    published = publish(Result("new_cases_by_month", "cases", grid), min_count(viewer, province_code), title=title)
    return Series(
        code="new_cases_by_month",
        title=title,
        months=months,
        values=[published.cell(indicators.ALL, key) for key, _ in columns],
        total=published.total,
        suppressed=published.suppressed,
    )


def operator_report(
    province_code: str,
    period: Period,
    *,
    commune_code: str | None = None,
    dimension: str | None = None,
    codes: Iterable[str] | None = None,
) -> Report:
    """What the command line publishes when no user is named: suppressed with CASEWORK_STATS_MIN_COUNT, as for a
    committee member, since the file it writes may leave the building. :raises ValidationFailed: an unknown province,
    commune or breakdown."""
    problems = Problems()
    province = db.session.get(Province, province_code)
    if province is None:
        problems.add("province", "unknown_province", _l("Unknown province."))
        problems.raise_if_any()
    commune = None
    if commune_code:
        commune = db.session.get(Commune, commune_code)
        if commune is None or commune.province_code != province_code:
            problems.add("commune", "unknown_commune", _l("Choose a commune of the province."))
    if dimension is not None and dimension not in DIMENSIONS:
        problems.add("breakdown", "unknown_breakdown", _l("Unknown breakdown."))
    problems.raise_if_any()
    k = current_app.config["CASEWORK_STATS_MIN_COUNT"]
    out = Report(province, commune, period, period.previous(), dimension, k, True)
    for code in list(codes) if codes else [i.code for i in CATALOGUE]:
        indicator = indicators.BY_CODE[code]
        title = str(indicator.title)
        categories = str(indicator.categories) if indicator.categories else None
        current = indicator.compute(Scope(province_code, period, commune_code), dimension)
        before = indicator.compute(Scope(province_code, out.previous, commune_code), dimension)
        out.indicators.append(
            (
                publish(current, k, title=title, categories=categories),
                publish(before, k, title=title, categories=categories),
            )
        )
    return out


#: The kinds of period the doors offer: a calendar year, a half-year, or days chosen by the user.
PERIOD_KINDS = ("year", "half", "custom")


def choose_period(
    kind: str | None = None,
    *,
    year: str | None = None,
    half: str | None = None,
    date_from: str | None = None,
    date_to: str | None = None,
) -> Period:
    """The period the user chose in a door's terms: ``kind`` (``year``, ``half``, ``custom``; guessed from what is
    given when absent) and its year, half (1 or 2) or first and last days. The current year by default.

    :raises ValidationFailed: an unknown kind, a half other than 1 or 2, a missing or malformed day, a bad year.
    """
    date_from, date_to = (date_from or "").strip(), (date_to or "").strip()
    year, half = (year or "").strip() or None, (half or "").strip() or None
    if kind is None or kind == "":
        kind = "custom" if date_from or date_to else "half" if half else "year"
    problems = Problems()
    if kind not in PERIOD_KINDS:
        problems.add("kind", "unknown_period", _l("Choose a year, a half-year or your own dates."))
    elif kind == "custom":
        if not date_from:
            problems.add("from", "required", _l("Give the first day of the period."))
        if not date_to:
            problems.add("to", "required", _l("Give the last day of the period."))
    elif kind == "half" and half not in ("1", "2"):
        problems.add("half", "unknown_half", _l("Choose the first or the second half of the year."))
    if year is not None and not year.isdigit():
        problems.add("year", "invalid_year", _l("Write the year as four digits."))
    problems.raise_if_any()
    if kind == "custom":
        chosen = parse_period(date_from, date_to)
        # Whole calendar years and halves are compared with the year or half before, not with as many days.
        whole = [Period.year(chosen.start.year), Period.half(chosen.start.year, 1), Period.half(chosen.start.year, 2)]
        return next((p for p in whole if (p.start, p.end) == (chosen.start, chosen.end)), chosen)
    try:
        return parse_period(None, None, year=year, half=half if kind == "half" else None)
    except ValidationFailed as exc:  # parse_period names "from" for a year out of range
        raise ValidationFailed(
            {"year": [str(_l("Choose a year between 2000 and 2100."))]}, field_codes={"year": ["invalid_year"]}
        ) from exc
