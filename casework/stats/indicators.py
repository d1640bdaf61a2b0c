"""The indicator catalogue: each indicator defined once, here, and documented in ``docs/INDICATORS.md``.

Every indicator is computed for a province (optionally one commune) and a period, as a :class:`Result`: a grid
whose rows are the indicator's categories (the groups of Article 10, the sources of reports, ...; one row "all"
when it has none) and whose columns are the values of a breakdown (commune, sex, age band, ethnicity,
disability; one column "all" without one), with the total of each row, of each column and of the whole.

Children are counted once per total however many cases or groups they have: a child in two groups counts once in
the total and once in each group, so the cells of a row or column need not add up to its total.

The past stays as it was: whether a case was open in a period, when it was closed and why, and where it stood at the
end of a past period come from its history of steps (``case_transitions``), not from its state today, so reopening
or moving a case on does not rewrite last year's numbers.

Nothing here identifies a child: results hold counts, sums of VND and durations. Disclosure control is applied
afterwards (:mod:`casework.stats.suppression`, :func:`casework.stats.operations.publish`).
"""

from __future__ import annotations

import statistics
import uuid
from collections import defaultdict
from collections.abc import Callable, Hashable
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import Integer, and_, case, cast, exists, extract, func, literal, or_, select, tuple_, union_all
from sqlalchemy.orm import aliased

from casework import codes
from casework.cases.models import Case, CaseCode, CaseTransition, Child
from casework.dbtypes import utcnow
from casework.extensions import db
from casework.i18n import local_today, local_tz
from casework.locations.models import Commune
from casework.payments.models import Disbursement, PaymentRequest, Programme
from casework.stats.periods import Period
from casework.support.models import ServiceRecord, SupportPlan
from casework.workflow import compute_deadline, registry
from casework.workflow.deadlines import add_working_days
from casework.workflow.definition import BASE_ANCHORS, DEFAULT_WORKFLOW, ENTERED, RECEIVED

ALL = "all"
UNKNOWN = "unknown"
#: Ethnicity code 56 of Decision 121-TCTK/PPCĐ is "Không rõ" (not known): counted with the children whose ethnicity
#: was not recorded, in one "unknown" column.
ETHNICITY_NOT_KNOWN = "56"
DIMENSIONS = ("commune", "sex", "age_band", "ethnicity", "disability")
DIMENSION_LABELS = {
    "commune": _l("Commune"),
    "sex": _l("Sex"),
    "age_band": _l("Age band"),
    "ethnicity": _l("Ethnicity"),
    "disability": _l("Disability"),
}
#: Services that count as counselling, psychological support and legal support for the abuse indicators.
COUNSELLING = ("counselling",)
PSYCHOLOGICAL = ("psychological_support",)
LEGAL = ("legal_counselling", "legal_aid")
#: Decree 56/2017, Art. 31: the 12 hours within which a report about a child in danger is acted on; casework holds
#: every verification to it. Art. 28: the support plan is drafted and approved within 7 working days.
VERIFICATION_HOURS = 12
VERIFICATION_STAGE = "report_received"
PLAN_WORKING_DAYS = 7


@dataclass(frozen=True)
class Scope:
    province: str
    period: Period
    commune: str | None = None


@dataclass
class Grid:
    """Numbers by (row, column), with totals; ``rows``/``columns`` as (key, label) in display order."""

    rows: list[tuple[Hashable, str]]
    columns: list[tuple[Hashable, str]]
    cells: dict[tuple[Hashable, Hashable], float] = field(default_factory=dict)
    row_totals: dict[Hashable, float] = field(default_factory=dict)
    column_totals: dict[Hashable, float] = field(default_factory=dict)
    total: float = 0


@dataclass
class Result:
    """An indicator's numbers for a scope: ``grid`` (counts, VND, or a median), and for shares and medians the
    counts they rest on (``numerator``/``denominator`` for shares, ``counts`` for medians), which disclosure
    control looks at."""

    code: str
    unit: str
    grid: Grid
    numerator: Grid | None = None
    denominator: Grid | None = None
    counts: Grid | None = None


@dataclass(frozen=True)
class Indicator:
    code: str
    title: object  # a lazy string
    unit: str  # "children", "cases", "vnd", "share", "hours", "days", "payments"
    compute: Callable[[Scope, str | None], Result]
    categories: str | None = None  # what the rows are, for people


# --- the rows every indicator starts from -------------------------------------------------------------------------


def _bounds(scope: Scope) -> tuple[datetime, datetime]:
    return scope.period.bounds()


def _in_scope(scope: Scope):
    condition = Case.province_code == scope.province
    if scope.commune:
        condition = and_(condition, Case.commune_code == scope.commune)
    return condition


def _final_stages() -> set[str]:
    """The stages that close a case, in every workflow (``closed`` in the default one)."""
    return {s.id for d in registry.definitions().values() for s in d.stages.values() if s.final}


def _active(scope: Scope):
    """Cases open at some moment of the period: reported before its end, and not closed throughout it.

    A case is closed throughout the period when it was last closed before the period (``closed_at``), or when it
    was closed before the period and not reopened until after it: its history of steps says so, whatever it did
    later. A case closed in 2025 and reopened in 2026 is active in 2026; reopening it does not make it active in
    the months it stood closed.
    """
    start, end = _bounds(scope)
    closing, later = aliased(CaseTransition), aliased(CaseTransition)
    # Any step after a closing one is a reopening: nothing else leaves a final stage.
    closed_before_and_after = (
        select(closing.id)
        .where(
            closing.case_id == Case.id,
            closing.to_stage.in_(sorted(_final_stages())),
            closing.at < start,
            ~select(later.id).where(later.case_id == closing.case_id, later.at > closing.at, later.at < end).exists(),
        )
        .exists()
    )
    return and_(
        Case.received_at < end,
        or_(Case.closed_at.is_(None), Case.closed_at >= start),
        ~closed_before_and_after,
    )


def _dimension(name: str | None, scope: Scope, *, commune=None):
    """The breakdown's value for a row joined to ``Case`` and ``Child``.

    :param commune: the column that says which commune a row belongs to (default ``Case.commune_code``; a payment
        belongs to the commune where it was requested).
    """
    if name is None:
        return literal(ALL)
    if name == "commune":
        return Case.commune_code if commune is None else commune
    if name == "sex":
        return Child.sex
    if name == "ethnicity":
        return case(
            (or_(Child.ethnicity.is_(None), Child.ethnicity == ETHNICITY_NOT_KNOWN), UNKNOWN), else_=Child.ethnicity
        )
    if name == "disability":
        return case((Child.has_disability.is_(True), "yes"), else_="no")
    if name == "age_band":
        # Age at the end of the period, in whole years from the year of birth (what the register has). An age that
        # was only estimated was estimated when the child was first reported: it grows from that year.
        year = scope.period.end.year
        first = aliased(Case)
        first_reported = select(func.min(first.received_at)).where(first.child_id == Child.id).scalar_subquery()
        age = case(
            (Child.birth_year.is_not(None), year - Child.birth_year),
            else_=Child.estimated_age + (year - cast(extract("year", first_reported), Integer)),
        )
        bands = [(age <= b["max"], code) for code, b in codes._lists()["age_bands"].items()]  # noqa: SLF001
        return case((age.is_(None), UNKNOWN), *bands, else_=UNKNOWN)
    raise KeyError(name)


def _columns(name: str | None, scope: Scope, present: set) -> list[tuple[Hashable, str]]:
    """The columns of a breakdown: every value that can occur (so zeros show), plus the ones found."""
    if name is None:
        return [(ALL, str(_l("All")))]
    if name == "commune":
        stmt = select(Commune.code, Commune.name).where(Commune.province_code == scope.province)
        if scope.commune:
            stmt = stmt.where(Commune.code == scope.commune)
        else:
            stmt = stmt.where(or_(Commune.merged_into_code.is_(None), Commune.code.in_(present or {"-"})))
        return [(c, n) for c, n in reads().execute(stmt.order_by(Commune.name))]
    if name == "sex":
        return codes.choices("sex")
    if name == "age_band":
        return [(b, b) for b in codes.codes("age_bands")] + (
            [(UNKNOWN, str(_l("Unknown")))] if UNKNOWN in present else []
        )
    if name == "ethnicity":
        known = [(c, codes.label("ethnicity", c)) for c in codes.codes("ethnicity") if c in present]
        return known + ([(UNKNOWN, str(_l("Unknown")))] if UNKNOWN in present else [])
    if name == "disability":
        return [("yes", str(_l("With a disability"))), ("no", str(_l("Without a disability")))]
    raise KeyError(name)


#: The session statistics read through: the read replica's while a report is computed (``CASEWORK_REPLICA_URL``),
#: else the application's.
_reader: ContextVar[object | None] = ContextVar("casework_stats_reader", default=None)


def reads():
    return _reader.get() or db.session


@contextmanager
def reading_from_replica():
    """Within the block, the indicators read from the replica when one is configured (and nothing else does)."""
    from flask import current_app

    if "replica" not in (current_app.config.get("SQLALCHEMY_BINDS") or {}):
        yield db.session
        return
    from sqlalchemy.orm import Session

    session = Session(bind=db.engines["replica"])
    token = _reader.set(session)
    try:
        yield session
    finally:
        _reader.reset(token)
        session.close()


#: Results already computed in this report (:func:`memoised`): a report asks for the same rows several times (the
#: abused children behind four shares; the verification and plan timings behind a median and a share).
_memo: ContextVar[dict | None] = ContextVar("casework_stats_memo", default=None)


@contextmanager
def memoised():
    """Within the block, identical aggregations are computed once."""
    token = _memo.set({})
    try:
        yield
    finally:
        _memo.reset(token)


def _remembered(key, compute):
    memo = _memo.get()
    if memo is None:
        return compute()
    if key not in memo:
        memo[key] = compute()
    return memo[key]


def _grid(
    rows_stmt,
    scope: Scope,
    dimension: str | None,
    categories: list[tuple[Hashable, str]] | None,
    *,
    value: str = "distinct",
) -> Grid:
    """Aggregate ``rows_stmt`` (columns ``unit``, ``cat``, ``dim`` and, for sums, ``amount``) into a grid.

    :param value: ``distinct`` counts distinct units, ``sum`` adds ``amount``, ``count`` counts rows.
    """
    compiled = rows_stmt.compile(dialect=reads().get_bind().dialect)
    key = (
        "grid",
        str(compiled),
        repr(sorted(compiled.params.items(), key=lambda kv: kv[0])),
        value,
        dimension,
        tuple(categories or ()),
        scope,
    )
    return _remembered(key, lambda: _aggregate(rows_stmt, scope, dimension, categories, value))


def _aggregate(rows_stmt, scope: Scope, dimension: str | None, categories, value: str) -> Grid:
    rows = rows_stmt.subquery()

    def measure():
        if value == "distinct":
            return func.count(func.distinct(rows.c.unit))
        if value == "sum":
            return func.coalesce(func.sum(rows.c.amount), 0)
        return func.count()

    if reads().get_bind().dialect.name == "postgresql":
        # One pass over the rows for the cells, the row and column totals and the whole.
        cells, row_totals, column_totals, total = {}, {}, {}, 0
        stmt = select(rows.c.cat, rows.c.dim, func.grouping(rows.c.cat), func.grouping(rows.c.dim), measure()).group_by(
            func.grouping_sets(tuple_(rows.c.cat, rows.c.dim), tuple_(rows.c.cat), tuple_(rows.c.dim), tuple_())
        )
        for cat, dim, no_cat, no_dim, number in reads().execute(stmt):
            if not no_cat and not no_dim:
                cells[cat, dim] = number
            elif not no_cat:
                row_totals[cat] = number
            elif not no_dim:
                column_totals[dim] = number
            else:
                total = number
        return _assemble(cells, row_totals, column_totals, total or 0, scope, dimension, categories)
    cells = {
        (c, d): v
        for c, d, v in reads().execute(select(rows.c.cat, rows.c.dim, measure()).group_by(rows.c.cat, rows.c.dim))
    }
    row_totals = dict(reads().execute(select(rows.c.cat, measure()).group_by(rows.c.cat)).all())
    column_totals = dict(reads().execute(select(rows.c.dim, measure()).group_by(rows.c.dim)).all())
    total = reads().scalar(select(measure()).select_from(rows)) or 0
    return _assemble(cells, row_totals, column_totals, total, scope, dimension, categories)


def _grid_of(
    samples: list[tuple[Hashable, Hashable, Hashable]],
    scope: Scope,
    dimension: str | None,
    categories: list[tuple[Hashable, str]] | None,
) -> Grid:
    """Like :func:`_grid` (distinct units) for (unit, cat, dim) rows worked out in Python."""
    cells: dict = defaultdict(set)
    row_totals: dict = defaultdict(set)
    column_totals: dict = defaultdict(set)
    for unit, cat, dim in samples:
        cells[cat, dim].add(unit)
        row_totals[cat].add(unit)
        column_totals[dim].add(unit)
    return _assemble(
        {key: len(units) for key, units in cells.items()},
        {key: len(units) for key, units in row_totals.items()},
        {key: len(units) for key, units in column_totals.items()},
        len({unit for unit, _, _ in samples}),
        scope,
        dimension,
        categories,
    )


def _text_key(value):
    """Row and column keys are text or numbers (a programme's id becomes its text), as a snapshot stores them."""
    return str(value) if isinstance(value, uuid.UUID) else value


def _assemble(cells: dict, row_totals: dict, column_totals: dict, total, scope, dimension, categories) -> Grid:
    """A grid with every row and column that can occur (so zeros show), plus any value found outside them."""
    cells = {(_text_key(r), _text_key(c)): v for (r, c), v in cells.items()}
    row_totals = {_text_key(r): v for r, v in row_totals.items()}
    column_totals = {_text_key(c): v for c, v in column_totals.items()}
    if categories is not None:
        categories = [(_text_key(r), label) for r, label in categories]
    present_dims = {d for _, d in cells}
    columns = _columns(dimension, scope, present_dims)
    known_columns = {key for key, _ in columns}
    columns += [(d, str(d)) for d in sorted(present_dims - known_columns, key=str)]
    if categories is None:
        categories = [(ALL, str(_l("All")))]
    known_rows = {key for key, _ in categories}
    categories = categories + [(c, str(c)) for c in sorted({c for c, _ in cells} - known_rows, key=str)]
    return Grid(
        rows=categories,
        columns=columns,
        cells={(r, c): int(cells.get((r, c), 0)) for r, _ in categories for c, _ in columns},
        row_totals={r: int(row_totals.get(r, 0)) for r, _ in categories},
        column_totals={c: int(column_totals.get(c, 0)) for c, _ in columns},
        total=int(total),
    )


def _code_rows(list_name: str) -> list[tuple[str, str]]:
    return codes.choices(list_name)


def _children_with_codes(list_name: str, scope: Scope, dimension: str | None, *, by_code: bool):
    cat = CaseCode.code if by_code else literal(ALL)
    stmt = (
        select(Case.child_id.label("unit"), cat.label("cat"), _dimension(dimension, scope).label("dim"))
        .outerjoin(Child, Child.id == Case.child_id)
        .join(CaseCode, and_(CaseCode.case_id == Case.id, CaseCode.list_name == list_name))
        .where(_in_scope(scope), _active(scope))
    )
    return stmt


# --- the indicators -------------------------------------------------------------------------------------------------


def children_special(scope: Scope, dimension: str | None) -> Result:
    stmt = _children_with_codes("special_circumstances", scope, dimension, by_code=True)
    grid = _grid(stmt, scope, dimension, _code_rows("special_circumstances"))
    # The whole: each child once, whatever their groups.
    rows = _children_with_codes("special_circumstances", scope, dimension, by_code=False)
    overall = _grid(rows, scope, dimension, None)
    grid.column_totals, grid.total = overall.column_totals, overall.total
    return Result("children_special", "children", grid)


def children_at_risk(scope: Scope, dimension: str | None) -> Result:
    stmt = _children_with_codes("at_risk", scope, dimension, by_code=True)
    grid = _grid(stmt, scope, dimension, _code_rows("at_risk"))
    overall = _grid(_children_with_codes("at_risk", scope, dimension, by_code=False), scope, dimension, None)
    grid.column_totals, grid.total = overall.column_totals, overall.total
    return Result("children_at_risk", "children", grid)


def new_cases(scope: Scope, dimension: str | None) -> Result:
    start, end = _bounds(scope)
    stmt = (
        select(Case.id.label("unit"), Case.source.label("cat"), _dimension(dimension, scope).label("dim"))
        .outerjoin(Child, Child.id == Case.child_id)
        .where(_in_scope(scope), Case.received_at >= start, Case.received_at < end)
    )
    return Result("new_cases", "cases", _grid(stmt, scope, dimension, _code_rows("report_sources")))


def _abused(scope: Scope, dimension: str | None):
    return (
        select(Case.child_id.label("unit"), literal(ALL).label("cat"), _dimension(dimension, scope).label("dim"))
        .outerjoin(Child, Child.id == Case.child_id)
        .where(
            _in_scope(scope),
            _active(scope),
            exists().where(CaseCode.case_id == Case.id, CaseCode.list_name == "abuse_types"),
        )
    )


def abused_children(scope: Scope, dimension: str | None) -> Result:
    return Result("abused_children", "children", _grid(_abused(scope, dimension), scope, dimension, None))


def _received(service_types: tuple[str, ...], scope: Scope):
    """A service of these types was given to the child, on any of their cases, during the period."""
    other = aliased(Case)
    return (
        select(ServiceRecord.id)
        .join(other, other.id == ServiceRecord.case_id)
        .where(
            other.child_id == Child.id,
            ServiceRecord.service_type.in_(service_types),
            ServiceRecord.delivered_on >= scope.period.start,
            ServiceRecord.delivered_on <= scope.period.end,
            ServiceRecord.outcome != "not_delivered",
        )
        .exists()
    )


def _abused_share(code: str, groups: tuple[tuple[str, ...], ...]) -> Callable[[Scope, str | None], Result]:
    def compute(scope: Scope, dimension: str | None) -> Result:
        denominator = _grid(_abused(scope, dimension), scope, dimension, None)
        stmt = _abused(scope, dimension)
        for service_types in groups:
            stmt = stmt.where(_received(service_types, scope))
        numerator = _grid(stmt, scope, dimension, None)
        return Result(code, "share", _share(numerator, denominator), numerator, denominator)

    return compute


def _share(numerator: Grid, denominator: Grid) -> Grid:
    def ratio(n, d):
        return round(100.0 * n / d, 1) if d else None

    return Grid(
        rows=numerator.rows,
        columns=numerator.columns,
        cells={k: ratio(v, denominator.cells.get(k, 0)) for k, v in numerator.cells.items()},
        row_totals={k: ratio(v, denominator.row_totals.get(k, 0)) for k, v in numerator.row_totals.items()},
        column_totals={k: ratio(v, denominator.column_totals.get(k, 0)) for k, v in numerator.column_totals.items()},
        total=ratio(numerator.total, denominator.total),
    )


def _paid(scope: Scope, dimension: str | None, cat, *, unit):
    """Payments disbursed in the period (the date of payment decides, not the date of approval), in the province
    (or commune) where they were requested, as rows (``unit``, ``cat``, ``dim``, ``amount``)."""
    return (
        select(
            unit.label("unit"),
            cat.label("cat"),
            _dimension(dimension, scope, commune=PaymentRequest.commune_code).label("dim"),
            PaymentRequest.amount_vnd.label("amount"),
        )
        .select_from(PaymentRequest)
        .join(Disbursement, Disbursement.payment_id == PaymentRequest.id)
        .join(Case, Case.id == PaymentRequest.case_id)
        .outerjoin(Child, Child.id == Case.child_id)
        .where(
            PaymentRequest.province_code == scope.province,
            *([PaymentRequest.commune_code == scope.commune] if scope.commune else []),
            Disbursement.paid_on >= scope.period.start,
            Disbursement.paid_on <= scope.period.end,
        )
    )


def medical_children(scope: Scope, dimension: str | None) -> Result:
    stmt = _paid(scope, dimension, literal(ALL), unit=Case.child_id).where(
        PaymentRequest.purpose == "medical_treatment"
    )
    return Result("medical_children", "children", _grid(stmt, scope, dimension, None))


def medical_paid_vnd(scope: Scope, dimension: str | None) -> Result:
    stmt = _paid(scope, dimension, literal(ALL), unit=Case.child_id).where(
        PaymentRequest.purpose == "medical_treatment"
    )
    # Disclosure control looks at how many children a sum is about, not how many payments make it up: six
    # payments to one child are one child's costs.
    counts = _grid(stmt, scope, dimension, None)
    return Result("medical_paid_vnd", "vnd", _grid(stmt, scope, dimension, None, value="sum"), counts=counts)


def payments_by_purpose(scope: Scope, dimension: str | None) -> Result:
    stmt = _paid(scope, dimension, PaymentRequest.purpose, unit=PaymentRequest.id)
    children = _paid(scope, dimension, PaymentRequest.purpose, unit=Case.child_id)
    counts = _grid(children, scope, dimension, _code_rows("payment_purposes"))
    amounts = _grid(stmt, scope, dimension, _code_rows("payment_purposes"), value="sum")
    return Result("payments_by_purpose", "vnd", amounts, counts=counts)


def payments_by_programme(scope: Scope, dimension: str | None) -> Result:
    programmes = [
        (p.id, p.name)
        for p in reads().scalars(
            select(Programme).where(Programme.province_code == scope.province).order_by(Programme.year, Programme.name)
        )
    ]
    stmt = _paid(scope, dimension, PaymentRequest.programme_id, unit=PaymentRequest.id)
    children = _paid(scope, dimension, PaymentRequest.programme_id, unit=Case.child_id)
    counts = _grid(children, scope, dimension, programmes)
    return Result("payments_by_programme", "vnd", _grid(stmt, scope, dimension, programmes, value="sum"), counts=counts)


def closed_by_reason(scope: Scope, dimension: str | None) -> Result:
    """Cases closed in the period, by the reason given when they were closed.

    The closing step decides (its date and its reason), so a case closed in 2025 and reopened in 2026 still counts
    among 2025's closures, and a case closed in each of two periods counts in each. A case closed without a
    recorded step (an imported register) counts by ``closed_at``.
    """
    start, end = _bounds(scope)
    finals = sorted(_final_stages())
    steps = (
        select(
            Case.id.label("unit"), CaseTransition.closure_reason.label("cat"), _dimension(dimension, scope).label("dim")
        )
        .select_from(CaseTransition)
        .join(Case, Case.id == CaseTransition.case_id)
        .outerjoin(Child, Child.id == Case.child_id)
        .where(
            _in_scope(scope), CaseTransition.to_stage.in_(finals), CaseTransition.at >= start, CaseTransition.at < end
        )
    )
    without_steps = (
        select(Case.id.label("unit"), Case.closure_reason.label("cat"), _dimension(dimension, scope).label("dim"))
        .outerjoin(Child, Child.id == Case.child_id)
        .where(
            _in_scope(scope),
            Case.closed_at >= start,
            Case.closed_at < end,
            ~select(CaseTransition.id)
            .where(CaseTransition.case_id == Case.id, CaseTransition.to_stage.in_(finals))
            .exists(),
        )
    )
    stmt = union_all(steps, without_steps)
    return Result("closed_by_reason", "cases", _grid(stmt, scope, dimension, _code_rows("closure_reasons")))


def _stage_rows() -> list[tuple[str, str]]:
    """The stages a case can be open at, in workflow order (the default workflow's first), with their labels."""
    locale = str(get_locale() or "vi")
    rows: dict[str, str] = {}
    for _, definition in sorted(registry.definitions().items(), key=lambda item: item[0] != DEFAULT_WORKFLOW):
        for stage in definition.stages.values():
            if not stage.final and stage.id not in rows:
                rows[stage.id] = stage.label.for_locale(locale)
    return list(rows.items())


def overdue_open(scope: Scope, dimension: str | None) -> Result:
    """Open cases past a deadline at the end of the period, by the stage they were at.

    For a period not over yet, the deadlines as they stand now (``Case.next_deadline_at``). For a past period,
    each case's stage, deadline and plan at the end of the period are rebuilt from its history of steps and plans:
    a case late on 31 December and closed since still counts in that year, and a case due later now, but late
    then, does too.
    """
    _, end = _bounds(scope)
    now = utcnow()
    if end >= now:
        samples = [
            tuple(row)
            for row in reads().execute(
                select(Case.id, Case.stage, _dimension(dimension, scope))
                .outerjoin(Child, Child.id == Case.child_id)
                .where(
                    _in_scope(scope),
                    Case.closed_at.is_(None),
                    Case.next_deadline_at.is_not(None),
                    Case.next_deadline_at < now,
                )
            )
        ]
    else:
        samples = _overdue_at(end, scope, dimension)
    return Result("overdue_open", "cases", _grid_of(samples, scope, dimension, _stage_rows()))


def _overdue_at(moment: datetime, scope: Scope, dimension: str | None) -> list[tuple[Hashable, str, Hashable]]:
    """(case, stage, dim) of the cases open and past a deadline at ``moment``, rebuilt from their history."""
    # Not closed at the moment: still open, or last closed after it (an earlier closing is checked below).
    candidates = (_in_scope(scope), Case.received_at < moment, or_(Case.closed_at.is_(None), Case.closed_at >= moment))
    cases = (
        reads()
        .execute(
            select(
                Case.id,
                Case.workflow,
                Case.stage,
                Case.stage_entered_at,
                Case.received_at,
                Case.immediate_danger,
                _dimension(dimension, scope),
            )
            .outerjoin(Child, Child.id == Case.child_id)
            .where(*candidates)
        )
        .all()
    )
    if not cases:
        return []
    history: dict[Hashable, list] = defaultdict(list)
    for step in reads().execute(
        select(CaseTransition.case_id, CaseTransition.from_stage, CaseTransition.to_stage, CaseTransition.at)
        .join(Case, Case.id == CaseTransition.case_id)
        .where(*candidates)
        .order_by(CaseTransition.at)
    ):
        history[step.case_id].append(step)
    plans: dict[Hashable, list] = defaultdict(list)
    for plan in reads().execute(
        select(
            SupportPlan.case_id, SupportPlan.cycle, SupportPlan.status, SupportPlan.decided_at, SupportPlan.review_on
        )
        .join(Case, Case.id == SupportPlan.case_id)
        .where(*candidates, SupportPlan.created_at < moment)
        .order_by(SupportPlan.cycle)
    ):
        plans[plan.case_id].append(plan)
    tz = local_tz()
    out = []
    for case_id, workflow, stage, stage_entered_at, received_at, danger, dim in cases:
        steps = history[case_id]
        before = [step for step in steps if step.at < moment]
        if before:
            stage, entered = before[-1].to_stage, before[-1].at
        elif steps:  # the first step says where the case stood before it
            stage, entered = steps[0].from_stage, received_at
        else:
            entered = stage_entered_at or received_at
        definition = registry.definition(workflow)
        spec = definition.stages.get(stage)
        if spec is None or spec.final:
            continue
        anchors = {RECEIVED: received_at, ENTERED: entered}
        for deadline in (spec.deadline, spec.danger_deadline):
            if deadline is not None and deadline.start not in BASE_ANCHORS:
                entries = [step.at for step in before if step.to_stage == deadline.start]
                anchors[deadline.start] = entries[-1] if entries else entered
        due = compute_deadline(definition, stage, anchors, immediate_danger=bool(danger), tz=tz)
        if due is None:  # the stage sets none: the review date of the plan being carried out, if any
            current = plans[case_id][-1] if plans[case_id] else None
            if (
                current is not None
                and current.status in ("approved", "ended")
                and current.decided_at is not None
                and current.decided_at < moment
                and current.review_on is not None
            ):
                due = datetime.combine(current.review_on, time(23, 59), tzinfo=tz)
        if due is not None and due < moment:
            out.append((case_id, stage, dim))
    return out


def _median_grid(samples: list[tuple[Hashable, float | None, bool]], scope: Scope, dimension: str | None):
    """From (dim, duration or None, within the deadline) samples: the medians of the durations, how many durations
    each rests on, how many samples there are, and how many were within the deadline."""
    by_dim: dict[Hashable, list[tuple[float | None, bool]]] = defaultdict(list)
    for dim, duration, within in samples:
        by_dim[dim].append((duration, within))
    columns = _columns(dimension, scope, set(by_dim))
    columns += [(d, str(d)) for d in sorted(set(by_dim) - {k for k, _ in columns}, key=str)]
    rows = [(ALL, str(_l("All")))]

    def grid_of(fn) -> Grid:
        everything = [s for values in by_dim.values() for s in values]
        return Grid(
            rows=rows,
            columns=columns,
            cells={(ALL, c): fn(by_dim.get(c, [])) for c, _ in columns},
            row_totals={ALL: fn(everything)},
            column_totals={c: fn(by_dim.get(c, [])) for c, _ in columns},
            total=fn(everything),
        )

    def median(values):
        durations = [v for v, _ in values if v is not None]
        return round(statistics.median(durations), 1) if durations else None

    medians = grid_of(median)
    measured = grid_of(lambda values: sum(1 for v, _ in values if v is not None))
    assessed = grid_of(len)
    within = grid_of(lambda values: sum(1 for _, w in values if w))
    return medians, measured, assessed, within


def _first_exit_of(stage: str):
    return (
        select(CaseTransition.case_id, func.min(CaseTransition.at).label("at"))
        .where(CaseTransition.from_stage == stage)
        .group_by(CaseTransition.case_id)
        .subquery()
    )


def _verification(scope: Scope, dimension: str | None):
    return _remembered(("verification", scope, dimension), lambda: _verification_samples(scope, dimension))


def _verification_samples(scope: Scope, dimension: str | None):
    """Reports received in the period: hours from the report to the first step out of "report received", and
    whether that came within 12 hours. A report still waiting there after its 12 hours counts as late (it has no
    duration yet); one still inside its 12 hours is not counted yet."""
    start, end = _bounds(scope)
    verified = _first_exit_of(VERIFICATION_STAGE)
    rows = (
        reads()
        .execute(
            select(_dimension(dimension, scope), Case.received_at, verified.c.at, Case.stage)
            .outerjoin(Child, Child.id == Case.child_id)
            .outerjoin(verified, verified.c.case_id == Case.id)
            .where(_in_scope(scope), Case.received_at >= start, Case.received_at < end)
        )
        .all()
    )
    now = utcnow()
    samples = []
    for dim, received, at, stage in rows:
        if at is not None:
            hours = (at - received).total_seconds() / 3600
            samples.append((dim, max(hours, 0.0), hours <= VERIFICATION_HOURS))
        elif stage == VERIFICATION_STAGE and received + timedelta(hours=VERIFICATION_HOURS) < now:
            samples.append((dim, None, False))
        # Otherwise the report is within its 12 hours, or was imported past this step without a date for it.
    return _median_grid(samples, scope, dimension)


def verification_hours(scope: Scope, dimension: str | None) -> Result:
    medians, measured, _, _ = _verification(scope, dimension)
    return Result("verification_hours", "hours", medians, counts=measured)


def verification_within_deadline(scope: Scope, dimension: str | None) -> Result:
    _, _, assessed, within = _verification(scope, dimension)
    return Result("verification_within_deadline", "share", _share(within, assessed), within, assessed)


def _plans(scope: Scope, dimension: str | None):
    return _remembered(("plans", scope, dimension), lambda: _plan_samples(scope, dimension))


def _plan_samples(scope: Scope, dimension: str | None):
    """Cases whose first support plan was approved in the period: days from the report, and whether the plan was
    approved within 7 working days of the start of drafting (Art. 28)."""
    start, end = _bounds(scope)
    approved = (
        select(
            SupportPlan.case_id,
            func.min(SupportPlan.decided_at).label("at"),
            func.min(SupportPlan.created_at).label("drafted"),
        )
        .where(SupportPlan.decided_at.is_not(None), SupportPlan.status.in_(("approved", "ended")))
        .group_by(SupportPlan.case_id)
        .subquery()
    )
    drafting = (
        select(CaseTransition.case_id, func.min(CaseTransition.at).label("at"))
        .where(CaseTransition.to_stage == "plan_drafting")
        .group_by(CaseTransition.case_id)
        .subquery()
    )
    rows = (
        reads()
        .execute(
            select(
                _dimension(dimension, scope),
                Case.received_at,
                approved.c.at,
                func.coalesce(drafting.c.at, approved.c.drafted),
            )
            .outerjoin(Child, Child.id == Case.child_id)
            .join(approved, approved.c.case_id == Case.id)
            .outerjoin(drafting, drafting.c.case_id == Case.id)
            .where(_in_scope(scope), approved.c.at >= start, approved.c.at < end)
        )
        .all()
    )
    tz = local_tz()
    samples = []
    for dim, received, at, drafted in rows:
        days = (at - received).total_seconds() / 86400
        due = add_working_days(drafted.astimezone(tz), PLAN_WORKING_DAYS, tz)
        samples.append((dim, max(days, 0.0), at <= due))
    return _median_grid(samples, scope, dimension)


def plan_days(scope: Scope, dimension: str | None) -> Result:
    medians, measured, _, _ = _plans(scope, dimension)
    return Result("plan_days", "days", medians, counts=measured)


def plan_within_deadline(scope: Scope, dimension: str | None) -> Result:
    _, _, assessed, within = _plans(scope, dimension)
    return Result("plan_within_deadline", "share", _share(within, assessed), within, assessed)


CATALOGUE: tuple[Indicator, ...] = (
    Indicator(
        "children_special",
        _l("Children in special circumstances"),
        "children",
        children_special,
        _l("Groups of Article 10"),
    ),
    Indicator("children_at_risk", _l("Children at risk"), "children", children_at_risk, _l("Risks")),
    Indicator("new_cases", _l("New cases"), "cases", new_cases, _l("Source of the report")),
    Indicator("abused_children", _l("Abused children"), "children", abused_children),
    Indicator(
        "abused_counselling",
        _l("Abused children who received counselling (%)"),
        "share",
        _abused_share("abused_counselling", (COUNSELLING,)),
    ),
    Indicator(
        "abused_psychological",
        _l("Abused children who received psychological support (%)"),
        "share",
        _abused_share("abused_psychological", (PSYCHOLOGICAL,)),
    ),
    Indicator(
        "abused_legal",
        _l("Abused children who received legal support (%)"),
        "share",
        _abused_share("abused_legal", (LEGAL,)),
    ),
    Indicator(
        "abused_all_three",
        _l("Abused children who received all three (%)"),
        "share",
        _abused_share("abused_all_three", (COUNSELLING, PSYCHOLOGICAL, LEGAL)),
    ),
    Indicator("medical_children", _l("Children whose medical costs were supported"), "children", medical_children),
    Indicator("medical_paid_vnd", _l("Medical costs paid (VND)"), "vnd", medical_paid_vnd),
    Indicator(
        "payments_by_programme", _l("Payments by programme (VND)"), "vnd", payments_by_programme, _l("Programme")
    ),
    Indicator("payments_by_purpose", _l("Payments by purpose (VND)"), "vnd", payments_by_purpose, _l("Purpose")),
    Indicator("verification_hours", _l("Hours from report to verification (median)"), "hours", verification_hours),
    Indicator(
        "verification_within_deadline",
        _l("Reports verified within 12 hours (%)"),
        "share",
        verification_within_deadline,
    ),
    Indicator("plan_days", _l("Days from report to approved support plan (median)"), "days", plan_days),
    Indicator(
        "plan_within_deadline",
        _l("Plans approved within 7 working days of drafting (%)"),
        "share",
        plan_within_deadline,
    ),
    Indicator("overdue_open", _l("Open cases past a deadline"), "cases", overdue_open),
    Indicator("closed_by_reason", _l("Cases closed"), "cases", closed_by_reason, _l("Reason for closing")),
)
BY_CODE = {indicator.code: indicator for indicator in CATALOGUE}


def compute(code: str, scope: Scope, dimension: str | None = None) -> Result:
    """Compute one indicator. :raises KeyError: unknown indicator or dimension."""
    if dimension is not None and dimension not in DIMENSIONS:
        raise KeyError(dimension)
    return BY_CODE[code].compute(scope, dimension)


def today() -> date:
    return local_today()
