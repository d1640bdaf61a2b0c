"""The statistics pages: the dashboard of a province (or one of its communes), its exports, and the background
exports' pages.

Committee members and provincial officers see their own province only (403 elsewhere); every other role is refused
before anything is computed. Every number comes from :func:`casework.stats.operations.report`, which applies the
viewer's disclosure control, so nothing here decides what may be shown. The pages hold counts and labels of codes and
communes; no query made for them reads a child's name or a case number.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from casework import codes, i18n, scope
from casework.auth.models import User
from casework.errors import ValidationFailed
from casework.extensions import db
from casework.jobs.models import Job
from casework.locations.models import Commune, Province
from casework.security import downloads
from casework.stats import charts, operations, tasks  # tasks: registers the export job too
from casework.stats.forms import DashboardForm
from casework.stats.indicators import ALL, DIMENSION_LABELS

bp = Blueprint("stats", __name__, url_prefix="/stats")

#: How the numbers of each unit are written.
PERCENT_UNITS = frozenset({"share"})
DECIMAL_UNITS = frozenset({"hours", "days"})


def _viewer() -> User:
    return current_user._get_current_object()


def _require_statistics() -> None:
    """Refuse the roles that never see statistics (social workers, supervisors, auditors, admins, finance)."""
    if not scope.can_view_statistics(current_user):
        abort(403)


def _province() -> str:
    """The province asked for (the user's own by default); another province is refused with 403."""
    code = (request.args.get("province") or current_user.province_code or "").strip()
    if not scope.can_view_statistics(current_user, code):
        abort(403)
    return code


def _decimal(value: float) -> str:
    text = f"{value:,.1f}".rstrip("0").rstrip(".")
    if str(get_locale() or "vi").startswith("vi"):
        text = text.replace(",", " ").replace(".", ",").replace(" ", ".")
    return text


def format_value(value: object, unit: str = "children") -> str:
    """A published value as the pages write it: "1.234", "1.250.000 ₫", "33,3 %", a mark as it is, "—" for none."""
    if value is None or value == "":
        return "—"
    if not charts.is_number(value):
        return str(value)
    if unit == "vnd":
        return i18n.format_vnd(int(value))
    if unit in PERCENT_UNITS:
        return f"{_decimal(float(value))} %"
    if unit in DECIMAL_UNITS:
        return _decimal(float(value))
    return i18n.format_number(int(value))


@bp.app_template_filter("stat")
def stat_filter(value: object, unit: str = "children") -> str:
    return format_value(value, unit)


# --- the tables ---------------------------------------------------------------------------------------------------


@dataclass
class Line:
    label: str
    values: list[object]
    href: str | None = None
    total: bool = False


@dataclass
class Table:
    """An indicator as the page shows it: a header, a line per breakdown value (or per category), a total line."""

    code: str
    title: str
    unit: str
    head: list[str]
    lines: list[Line] = field(default_factory=list)
    suppressed: bool = False
    #: Short column headings and what they stand for, when the categories' names are too long to head a column.
    legend: list[tuple[str, str]] = field(default_factory=list)


#: A category's name longer than this heads its column by a short key (Art. 10's letter, or a number) and a legend.
MAX_HEADING = 24


def _headings(categories: list[tuple[object, str]]) -> tuple[list[str], list[tuple[str, str]]]:
    """The column headings of the categories, and the legend of the short ones (empty when all names fit)."""
    if all(len(label) <= MAX_HEADING for _, label in categories):
        return [label for _, label in categories], []
    articles = codes._lists()["special_circumstances"]  # noqa: SLF001 - the letters of Art. 10
    short = [
        articles[key]["article"] if isinstance(articles.get(key), dict) and "article" in articles[key] else str(n)
        for n, (key, _) in enumerate(categories, start=1)
    ]
    return short, list(zip(short, [label for _, label in categories], strict=True))


def _single_row(published: operations.Published) -> bool:
    return [key for key, _ in published.grid.rows] == [ALL]


def indicator_table(
    current: operations.Published, previous: operations.Published, dimension: str | None, drill
) -> Table:
    """Lay an indicator out for reading: without a breakdown, its categories down the side; with one, a line per
    value of the breakdown (the province's communes would not fit across a page) and the categories across. Each
    line ends with its total and the previous period's total beside it.

    :param drill: ``drill(commune_code)`` → the URL of the dashboard of that commune, or None.
    """
    this, before = str(_l("This period")), str(_l("Previous period"))
    table = Table(current.code, current.title, current.unit, [], suppressed=current.suppressed or previous.suppressed)
    categories = [] if _single_row(current) else current.grid.rows
    if dimension is None:
        if categories:
            table.head = [current.categories or str(_l("Category")), this, before]
            for key, label in categories:
                table.lines.append(Line(label, [current.row_total(key), previous.row_total(key)]))
        else:
            table.head = ["", this, before]
        table.lines.append(Line(str(_l("Total")), [current.total, previous.total], total=True))
        return table
    headings, table.legend = _headings(categories)
    table.head = [
        str(DIMENSION_LABELS[dimension]),
        *headings,
        str(_l("Total")),
        f"{_l('Total')} – {before.lower()}",
    ]
    for column, label in current.grid.columns:
        cells = [current.cell(row, column) for row, _ in categories]
        href = drill(column) if dimension == "commune" else None
        table.lines.append(Line(label, [*cells, current.column_total(column), previous.column_total(column)], href))
    totals = [current.row_total(row) for row, _ in categories]
    table.lines.append(Line(str(_l("Total")), [*totals, current.total, previous.total], total=True))
    return table


# --- the dashboard ------------------------------------------------------------------------------------------------


def _charts(viewer: User, form: DashboardForm, province_code: str, period, report_, series, drill) -> dict:
    """The three charts: children in special circumstances by group, the chosen indicator by commune (for the whole
    province), and new cases by month."""
    out = {}
    special = next((current for current, _ in report_.indicators if current.code == "children_special"), None)
    if special is not None:
        out["groups"] = charts.bar_chart(
            [charts.Item(label, special.row_total(key)) for key, label in special.grid.rows],
            chart_id="chart-groups",
            title=str(_l("Children in special circumstances by group (Art. 10)")),
            description=str(_l("One bar per group; a hidden number is drawn as an empty box with its mark.")),
            fmt=lambda v: format_value(v, "children"),
        )
    if form.commune_code is None:
        code = form.chart_code
        if report_.dimension == "commune":
            chosen = next(current for current, _ in report_.indicators if current.code == code)
        else:
            by_commune = operations.report(
                viewer, province_code, period, dimension="commune", codes=[code], allow_recent=True
            )
            chosen = by_commune.indicators[0][0]
        out["communes_title"] = chosen.title
        out["communes_suppressed"] = chosen.suppressed
        out["communes"] = charts.bar_chart(
            [charts.Item(label, chosen.column_total(key), drill(key)) for key, label in chosen.grid.columns],
            chart_id="chart-communes",
            title=str(_l("%(indicator)s by commune", indicator=chosen.title)),
            description=str(_l("One bar per commune; the commune's name opens its dashboard.")),
            fmt=lambda v: format_value(v, chosen.unit),
            empty=str(_l("The province has no communes.")),
            label_width=180,
        )
    out["months"] = charts.line_chart(
        [
            charts.Item(f"{month:02d}/{year}", value)
            for (year, month), value in zip(series.months, series.values, strict=True)
        ],
        chart_id="chart-months",
        title=str(_l("New cases by month")),
        description=str(_l("Reports received in each month of the period; a hidden month breaks the line.")),
        fmt=lambda v: format_value(v, "cases"),
    )
    return out


def _page(form: DashboardForm, province_code: str, *, status: int = 200, **context):
    commune = db.session.get(Commune, form.commune_code) if form.commune_code else None
    province = db.session.get(Province, province_code)
    return (
        render_template(
            "stats/dashboard.html",
            form=form,
            province=province,
            commune=commune,
            province_url=url_for("stats.dashboard", **form.params(commune="")),
            csv_url=url_for("stats.export_csv", **form.params()),
            xlsx_url=url_for("stats.export_xlsx", **form.params()),
            **context,
        ),
        status,
    )


@bp.get("/")
def dashboard():
    """Show the province's (or a commune's) indicators for a period, as tables and charts, with the previous period."""
    _require_statistics()
    viewer = _viewer()
    province_code = _province()
    form = DashboardForm(province_code, formdata=request.args)
    try:
        period = form.period()
        report_ = operations.report(
            viewer,
            province_code,
            period,
            commune_code=form.commune_code,
            dimension=form.dimension,
            allow_recent=True,
        )
        series = operations.monthly_series(viewer, province_code, period, form.commune_code, allow_recent=True)
    except ValidationFailed as exc:
        db.session.rollback()
        form.show_errors(exc.errors)
        return _page(form, province_code, status=422, report=None)

    # A province has up to a hundred communes, each linked from every table: one url_for and a substitution each
    # (a thousand url_for calls were a fifth of the page's time). Commune codes are digits, safe in a URL as they
    # are; an "=" typed into another field is escaped, so only the commune's own parameter matches.
    drill_url = url_for("stats.dashboard", **form.params(commune="COMMUNE"))

    def drill(commune_code: str) -> str | None:
        if form.commune_code is not None:
            return None
        return drill_url.replace("commune=COMMUNE", f"commune={commune_code}", 1)

    tables = [indicator_table(current, previous, report_.dimension, drill) for current, previous in report_.indicators]
    drawn = _charts(viewer, form, province_code, period, report_, series, drill)
    return _page(
        form,
        province_code,
        report=report_,
        tables=tables,
        series=series,
        charts=drawn,
        any_suppressed=report_.any_suppressed or series.suppressed or drawn.get("communes_suppressed", False),
        mark=operations.HIDDEN_MARK,
    )


# --- exports ------------------------------------------------------------------------------------------------------


def _export(fmt: str):
    _require_statistics()
    viewer = _viewer()
    province_code = _province()
    form = DashboardForm(province_code, formdata=request.args)
    try:
        period = form.period()
        operations.check_scope(viewer, province_code, form.commune_code)
        if tasks.needs_background(period, province_code, form.commune_code, form.dimension):
            job = tasks.launch_export(
                viewer,
                fmt,
                province_code,
                period,
                commune_code=form.commune_code,
                dimension=form.dimension,
                locale=str(get_locale() or "vi"),
            )
            return redirect(url_for("stats.show_export", job_id=job.id))
        report_ = operations.report(
            viewer, province_code, period, commune_code=form.commune_code, dimension=form.dimension
        )
    except ValidationFailed as exc:
        db.session.rollback()
        form.show_errors(exc.errors)
        return _page(form, province_code, status=422, report=None)
    data = tasks.render(report_, fmt)
    operations.record_export(viewer, report_, fmt)
    db.session.commit()
    response = Response(data, content_type=tasks.FORMATS[fmt])
    name = tasks.file_name(province_code, period, form.commune_code, fmt)
    response.headers.set("Content-Disposition", "attachment", filename=name)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/export.csv")
def export_csv():
    """Download the indicators as CSV (audited); a large export becomes a background job."""
    return _export("csv")


@bp.get("/export.xlsx")
def export_xlsx():
    """Download the indicators as XLSX with a cover sheet (audited); a large export becomes a background job."""
    return _export("xlsx")


def _load_export(job_id: uuid.UUID) -> Job:
    """An export job of the signed-in user (404 for anyone else's, or another kind of job)."""
    _require_statistics()
    job = db.session.get(Job, job_id)
    if job is None or job.task != tasks.EXPORT_TASK or job.created_by_id != current_user.id:
        abort(404)
    if not scope.can_view_statistics(current_user, (job.params or {}).get("province")):
        abort(403)
    return job


@bp.get("/exports/<uuid:job_id>")
def show_export(job_id: uuid.UUID):
    """Show a background export's progress, and its download link once it is made."""
    job = _load_export(job_id)
    stored = tasks.export_file(job) if job.status == "finished" else None
    return render_template("stats/export.html", job=job, stored=stored, name=(job.result or {}).get("filename"))


@bp.get("/exports/<uuid:job_id>/download")
def download_export(job_id: uuid.UUID):
    """Send a background export's file to the user who started it; the download is audited."""
    job = _load_export(job_id)
    stored = tasks.export_file(job) if job.status == "finished" else None
    if stored is None:
        abort(404)
    name = (job.result or {}).get("filename") or stored.original_name or "thong-ke"
    return downloads.send_stored(stored, _viewer(), name=name)
