"""Large statistics exports, made in the background.

An export whose period is longer than a year, or whose breakdown would give more than :data:`MAX_DIRECT_ROWS`
rows, is not made while the user's request waits: the dashboard launches the ``stats.export`` job and sends the user
to its page, which shows its progress and, when it is done, a download link. The job computes the indicators one by
one (reporting progress), writes the CSV or XLSX into the encrypted file store, owned by the job, and records the
export in the audit trail. Only the user who started it may download it, and the download is audited too.

The job takes the user's id and plain values, and applies that user's scope and suppression when it runs: a user
who lost the right to the province in between gets a failed job, not a file. Running it twice stores one file: the
file's row, its audit events and the job's end are committed together, so a worker killed before the end leaves no
row (at most a file no row names, which :func:`casework.security.files.sweep_orphans` removes), and the next attempt
finds the file of an attempt that did finish.
"""

from __future__ import annotations

import uuid
from datetime import date

from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import func, select

from casework import codes, jobs
from casework.auth.models import User
from casework.extensions import db
from casework.i18n import LANGUAGES
from casework.jobs import JobContext, task
from casework.jobs.models import Job
from casework.locations.models import Commune
from casework.payments.models import Programme
from casework.security import files
from casework.stats import operations
from casework.stats.indicators import CATALOGUE
from casework.stats.periods import Period

EXPORT_TASK = "stats.export"
#: The owner type of an export's file in the store (its owner id is the job's id).
FILE_OWNER = "stats_export"
#: A period longer than this many days is exported in the background.
MAX_DIRECT_DAYS = 366
#: An export of more rows than this is made in the background (a province of ~130 communes broken down by commune
#: gives about 7,000 rows; one of ~50 about 3,000, which takes a few seconds).
MAX_DIRECT_ROWS = 5000
FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
#: The code list that gives each indicator its rows (the others have one row, but programmes: counted).
_ROW_LISTS = {
    "children_special": "special_circumstances",
    "children_at_risk": "at_risk",
    "new_cases": "report_sources",
    "payments_by_purpose": "payment_purposes",
    "closed_by_reason": "closure_reasons",
}


def export_rows(province_code: str, commune_code: str | None, dimension: str | None) -> int:
    """About how many rows an export of the whole catalogue has: for each indicator, each row with its cells and
    its total, and the indicator's total."""
    if dimension is None:
        columns = 1
    elif dimension == "commune":
        columns = (
            1
            if commune_code
            else db.session.scalar(
                select(func.count(Commune.code)).where(
                    Commune.province_code == province_code, Commune.merged_into_code.is_(None)
                )
            )
            or 1
        )
    elif dimension == "ethnicity":
        columns = len(codes.codes("ethnicity")) + 1
    elif dimension == "age_band":
        columns = len(codes.codes("age_bands")) + 1
    else:
        columns = len(codes.codes(dimension)) if dimension == "sex" else 2
    programmes = db.session.scalar(select(func.count(Programme.id)).where(Programme.province_code == province_code))
    total = 0
    for indicator in CATALOGUE:
        if indicator.code in _ROW_LISTS:
            rows = len(codes.codes(_ROW_LISTS[indicator.code]))
        elif indicator.code == "payments_by_programme":
            rows = max(programmes or 0, 1)
        else:
            rows = 1
        total += rows * (columns + 1) + 1
    return total


def needs_background(period: Period, province_code: str, commune_code: str | None, dimension: str | None) -> bool:
    """Say whether an export is too large to make while the request waits."""
    if period.days > MAX_DIRECT_DAYS:
        return True
    return export_rows(province_code, commune_code, dimension) > MAX_DIRECT_ROWS


def file_name(province_code: str, period: Period, commune_code: str | None, fmt: str) -> str:
    """The export's file name: ``thong-ke-22-2026.xlsx``, ``thong-ke-22-06970-2026-h1.csv``, or with the days."""
    if period.kind == "year":
        when = f"{period.start.year}"
    elif period.kind == "half":
        when = f"{period.start.year}-h{1 if period.start.month == 1 else 2}"
    else:
        when = f"{period.start:%Y%m%d}-{period.end:%Y%m%d}"
    place = f"{province_code}-{commune_code}" if commune_code else province_code
    return f"thong-ke-{place}-{when}.{fmt}"


def render(report_: operations.Report, fmt: str) -> bytes:
    return operations.to_csv(report_) if fmt == "csv" else operations.to_xlsx(report_)


def launch_export(
    viewer: User,
    fmt: str,
    province_code: str,
    period: Period,
    *,
    commune_code: str | None,
    dimension: str | None,
    locale: str,
) -> Job:
    """Start the background export (the caller has checked the scope); the job's page follows its progress."""
    return jobs.launch(
        EXPORT_TASK,
        actor=viewer,
        user_id=str(viewer.id),
        province=province_code,
        commune=commune_code,
        start=period.start.isoformat(),
        end=period.end.isoformat(),
        kind=period.kind,
        breakdown=dimension,
        fmt=fmt,
        locale=locale if locale in LANGUAGES else "vi",
    )


def export_file(job: Job) -> files.StoredFile | None:
    """The file a finished export job stored, if any."""
    if job.task != EXPORT_TASK:
        return None
    return db.session.scalar(
        select(files.StoredFile).where(
            files.StoredFile.owner_type == FILE_OWNER,
            files.StoredFile.owner_id == str(job.id),
            files.StoredFile.deleted_at.is_(None),
        )
    )


@task(EXPORT_TASK)
def export_statistics(
    ctx: JobContext,
    user_id: str,
    province: str,
    start: str,
    end: str,
    fmt: str,
    kind: str = "custom",
    commune: str | None = None,
    breakdown: str | None = None,
    locale: str = "vi",
) -> dict:
    """Compute the indicators for the user, suppressed for their role, and store the export for them to download."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}")
    with force_locale(locale if locale in LANGUAGES else "vi"):
        viewer = db.session.get(User, uuid.UUID(user_id))
        if viewer is None:
            raise LookupError("the user who started the export no longer exists")
        period = Period(date.fromisoformat(start), date.fromisoformat(end), kind)
        name = file_name(province, period, commune, fmt)
        stored = export_file(ctx.job)
        if stored is not None:  # a second run: the file is already there
            return {"file_id": str(stored.id), "filename": name, "format": fmt, "size": stored.size}
        report_ = None
        for done, indicator in enumerate(CATALOGUE, start=1):
            part = operations.report(
                viewer, province, period, commune_code=commune, dimension=breakdown, codes=[indicator.code]
            )
            if report_ is None:
                report_ = part
            else:
                report_.indicators.extend(part.indicators)
            ctx.progress(
                90 * done // len(CATALOGUE),
                _("%(done)d of %(total)d indicators computed", done=done, total=len(CATALOGUE)),
            )
        data = render(report_, fmt)
        stored = files.save_generated(
            data, name, FORMATS[fmt], actor=viewer, owner_type=FILE_OWNER, owner_id=ctx.job.id
        )
        operations.record_export(viewer, report_, fmt)
        return {"file_id": str(stored.id), "filename": name, "format": fmt, "size": len(data)}
