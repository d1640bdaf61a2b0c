"""Finding cases: one search box, filters, caseloads. Every query goes through the scope module.

A query is recognised by its shape: a case number (``22-2025-000123``), digits (a personal ID or a phone
number, looked up exactly through their blind indexes), or name words in any order, with or without diacritics
(through the name index). Index candidates are confirmed after decryption.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, and_, func, select, text, true
from sqlalchemy.orm import load_only, selectinload

from casework import scope
from casework.auth.models import User
from casework.cases.models import Case, CaseCode, Child, OpenCaseload
from casework.dbtypes import among, utcnow
from casework.extensions import db
from casework.security import fields as blind
from casework.security.text import digits, words

CASE_NUMBER_RE = re.compile(r"^\s*(\d{2})-(\d{4})-(\d{1,6})\s*$")
PER_PAGE = 25
MAX_CANDIDATES = 5000  # cases kept for one search text (a text matching more is too vague to page through)


@dataclass
class Filters:
    q: str = ""
    stage: str | None = None
    category: str | None = None
    risk: str | None = None
    commune: str | None = None
    assigned_to: uuid.UUID | None = None
    unassigned: bool = False
    overdue: bool = False
    due_within_days: int | None = None  # the next deadline falls within this many days (or has passed)
    open_only: bool = True
    page: int = 1


@dataclass
class Page:
    items: list[Case]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def scoped_cases(user: User) -> Select:
    """``SELECT cases`` restricted to what ``user`` may see."""
    return scope.filter_to_scope(select(Case), Case.commune_code, user)


@dataclass
class _Matches:
    """The case ids a search text matches, or a SELECT of them; ``to_confirm``: the text, when the ids came from exact
    lookups (:class:`casework.security.fields.Lookup`) and only the cases shown still need their names confirmed."""

    ids: Select | list[uuid.UUID]
    to_confirm: str | None = None
    #: the ids were taken under the search's own conditions (the user's scope, open cases only) and are in
    #: DEADLINE_ORDER: with no other filter, their number is the total and a page is a slice of them
    ordered: bool = False
    #: when only the requested page's ids were read (``window``): how many there are in all
    total: int | None = None


def _name_matches(case: Case, q: str) -> bool:
    child = case.child
    return blind.confirm(Child.full_name, child.full_name, q) or blind.confirm(Child.other_names, child.other_names, q)


def _matching_ids(
    q: str, within=(), communes: list[str] | None = None, window: tuple[int, int] | None = None
) -> _Matches | None:
    """Case ids (or a SELECT of them) matching the search text, or None when there is no text.

    :param within: conditions on ``Case`` (the user's scope, open cases...) applied before candidates are
        counted, so that a common name elsewhere cannot crowd out the matches the user may see.
    :param communes: the user's area: a name is looked up there only (a personal ID or a phone number is looked up
        everywhere, and ``within`` keeps what the user may see).
    :param window: (offset, limit) of the page wanted, when no other filter applies: a name's matches may then come
        back as that page's ids and their total (:attr:`_Matches.total`).
    """
    q = (q or "").strip()
    if not q:
        return None
    number = CASE_NUMBER_RE.match(q)
    if number:
        province, year, seq = number.groups()
        return _Matches(select(Case.id).where(Case.case_number == f"{province}-{year}-{int(seq):06d}"))
    only_digits = digits(q)
    if only_digits and len(only_digits) >= 9 and len(only_digits) == len(re.sub(r"[\s\-.+()]", "", q)):
        ids: set[uuid.UUID] = set()
        for child_field in (Child.national_id, Child.guardian_phone):
            candidates = blind.candidate_ids(child_field, only_digits)
            if candidates is not None:
                for child in db.session.scalars(select(Child).where(Child.id.in_(candidates)).limit(MAX_CANDIDATES)):
                    if blind.confirm(child_field, child_field.__get__(child), only_digits):
                        ids.update(c.id for c in child.cases)
        candidates = blind.candidate_ids(Case.reporter_phone, only_digits)
        if candidates is not None:
            for case in db.session.scalars(select(Case).where(Case.id.in_(candidates)).limit(MAX_CANDIDATES)):
                if blind.confirm(Case.reporter_phone, case.reporter_phone, only_digits):
                    ids.add(case.id)
        return _Matches(sorted(ids))
    if not words(q):
        return _Matches([])
    if window is not None:
        paged = _name_page(q, within, communes, window)
        if paged is not None:
            return paged
    per_field: list[list[uuid.UUID]] = []  # the matching cases of each name field, in DEADLINE_ORDER
    unconfirmed = False
    for child_field in NAME_FIELDS:
        found = blind.lookup(child_field, q, communes)
        if found is None:
            continue
        rows = db.session.connection().execute(_cases_of(found.rows, within).limit(MAX_CANDIDATES)).all()
        if not rows:
            continue
        if found.exact:
            # Every word looked up with long terms: these are the matches. Opening thousands of names to confirm
            # what the index already says was most of a common name's search; the cases shown are confirmed.
            unconfirmed = True
            per_field.append([case_id for case_id, _ in rows])
            continue
        # Only the candidates' sealed names, opened to confirm: reading every candidate child's record cost more
        # than all the rest of a search with thousands of candidates.
        sealed = getattr(Child, child_field.column)
        matches = blind.matcher(child_field, q)
        confirmed = {
            child_id
            for child_id, stored in db.session.execute(
                select(Child.id, sealed).where(among(Child.id, list({child_id for _, child_id in rows})))
            )
            if matches(child_field.open(stored, child_id))
        }
        per_field.append([case_id for case_id, child_id in rows if child_id in confirmed])
    found_ids = [ids for ids in per_field if ids]
    if len(found_ids) > 1:  # a name and another name of the same search (rare): sorted together again
        either = list(dict.fromkeys(found_ids[0] + found_ids[1]))
        found_ids = [list(db.session.scalars(select(Case.id).where(among(Case.id, either)).order_by(*DEADLINE_ORDER)))]
    return _Matches(found_ids[0] if found_ids else [], q if unconfirmed else None, ordered=True)


NAME_FIELDS = (Child.full_name, Child.other_names)


def _cases_of(candidate_children: Select, within) -> Select:
    """``SELECT id, child_id`` of the cases (per ``within``) of the candidate children, in DEADLINE_ORDER.

    On PostgreSQL each candidate's cases are read from ix_cases_open_child (LATERAL): left to choose, the planner
    misjudged how many cases a province has and scanned all of them (250 ms for an officer's "Nguyễn Minh", against
    30 ms). Passing ten thousand candidates back and forth as a list cost more than the lookup itself.
    """
    if db.session.get_bind().dialect.name != "postgresql":
        return (
            select(Case.id, Case.child_id)
            .where(Case.child_id.in_(candidate_children), *within)
            .order_by(*DEADLINE_ORDER)
        )
    # The estimated cost (thousands of candidates, each an index probe) is over PostgreSQL's bar for compiling the
    # query to machine code, which took 10-200 ms for a query that runs in 30-70.
    db.session.execute(text("SET LOCAL jit = off"))
    candidates = candidate_children.subquery()
    of_each = (
        select(Case.id, Case.child_id, Case.next_deadline_at, Case.received_at)
        .where(Case.child_id == candidates.c.row_id, *within)
        .lateral()
    )
    return (
        select(of_each.c.id, of_each.c.child_id)
        .select_from(candidates)
        .join(of_each, true())
        .order_by(of_each.c.next_deadline_at.asc().nulls_last(), of_each.c.received_at.desc())
    )


def _name_page(q: str, within, communes: list[str] | None, window: tuple[int, int]) -> _Matches | None:
    """One page of a name's matches and their total, read without the rest, when every name field's lookup is exact
    and one field at most has matches (the usual case); None otherwise.

    An officer's common name matches thousands of open cases: counting and sorting them is the database's work, and
    only the page's 25 ids come back (fetching the thousands of ids to slice them here cost a sixth of the search).
    """
    offset, limit = window
    page: _Matches | None = None
    for child_field in NAME_FIELDS:
        found = blind.lookup(child_field, q, communes)
        if found is None:
            continue
        if not found.exact:
            return None
        # count(*) OVER () is computed over every match, before the page is cut from them.
        counted = _cases_of(found.rows, within).add_columns(func.count().over()).offset(offset).limit(limit)
        rows = db.session.connection().execute(counted).all()
        if not rows:
            if offset:
                return None  # past the last page, or no match: counted by the general way
            continue
        if page is not None:
            return None  # matches in two fields: sorted together by the general way
        page = _Matches([case_id for case_id, _, _ in rows], q, ordered=True, total=rows[0][2])
    return page or _Matches([])


def overdue_condition(now: datetime | None = None):
    return and_(Case.closed_at.is_(None), Case.next_deadline_at.is_not(None), Case.next_deadline_at < (now or utcnow()))


def search(user: User, filters: Filters, *, per_page: int = PER_PAGE) -> Page:
    """Search the cases ``user`` may see, sorted by next deadline (overdue first), newest report next."""
    stmt = scoped_cases(user)
    within = [scope.commune_condition(Case.commune_code, user)]
    if filters.open_only:
        within.append(Case.closed_at.is_(None))
        stmt = stmt.where(Case.closed_at.is_(None))
    conditions = _filter_conditions(filters)
    page = max(1, filters.page)
    window = ((page - 1) * per_page, per_page) if not conditions else None
    matches = _matching_ids(filters.q, within, scope.communes_of(user), window)
    if matches is not None:
        ids = matches.ids
        if isinstance(ids, list) and not ids:
            return Page(items=[], total=0, page=1, per_page=per_page)
        if matches.ordered and not conditions:
            # A name's matches were found under these very conditions, and come sorted: their number is the total
            # and a page is a slice of them (or they are the page already), so only the page's cases are read
            # (sorting thousands of them again in SQL was a quarter of a common name's search).
            if matches.total is None:
                shown, total = ids[(page - 1) * per_page : page * per_page], len(ids)
            else:
                shown, total = ids, matches.total
            loaded = {
                case.id: case for case in db.session.scalars(stmt.where(among(Case.id, shown)).options(*_listed()))
            }
            items = [loaded[case_id] for case_id in shown if case_id in loaded]
            if matches.to_confirm:
                items = [case for case in items if _name_matches(case, matches.to_confirm)]
            return Page(items=items, total=total, page=page, per_page=per_page)
        stmt = stmt.where(among(Case.id, ids) if isinstance(ids, list) else Case.id.in_(ids))
    stmt = stmt.where(*conditions)
    total = db.session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    if filters.unassigned and filters.open_only and matches is None:
        return _queue_page(stmt, total, page, per_page)
    ordered = stmt.order_by(*DEADLINE_ORDER)
    page_rows = ordered.options(*_listed()).offset((page - 1) * per_page).limit(per_page)
    items = list(db.session.scalars(page_rows))
    if matches is not None and matches.to_confirm:
        items = [case for case in items if _name_matches(case, matches.to_confirm)]
    return Page(items=items, total=total, page=page, per_page=per_page)


def _queue_page(stmt: Select, total: int, page: int, per_page: int) -> Page:
    """A page of open unassigned cases: the queue a supervisor assigns from, short by nature and found at once by
    ``ix_cases_unassigned``. Left to itself, PostgreSQL walked all cases in deadline order
    (``ix_cases_next_deadline_at``) looking for the first unassigned ones of the user's communes: 74 ms at 1,000,000
    cases for a supervisor whose 3,000 were far down that order. A materialized CTE makes it read the queue, then
    sort it: 6 ms."""
    queue = (
        stmt.with_only_columns(Case.id, Case.next_deadline_at, Case.received_at)
        .cte("queue")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    shown = list(
        db.session.scalars(
            select(queue.c.id)
            .order_by(queue.c.next_deadline_at.asc().nulls_last(), queue.c.received_at.desc())
            .offset((page - 1) * per_page)
            .limit(per_page)
        )
    )
    loaded = {
        case.id: case for case in db.session.scalars(select(Case).where(among(Case.id, shown)).options(*_listed()))
    }
    items = [loaded[case_id] for case_id in shown if case_id in loaded]  # an id whose case is gone is skipped
    return Page(items=items, total=total, page=page, per_page=per_page)


def _filter_conditions(filters: Filters) -> list:
    """The conditions on ``Case`` of every filter but the search text, the user's scope and open cases."""
    conditions = []
    if filters.stage:
        conditions.append(Case.stage == filters.stage)
    if filters.risk:
        conditions.append(Case.risk_level == filters.risk)
    if filters.commune:
        conditions.append(Case.commune_code == filters.commune)
    if filters.assigned_to:
        conditions.append(Case.assigned_to_id == filters.assigned_to)
    if filters.unassigned:
        conditions.append(Case.assigned_to_id.is_(None))
    if filters.overdue:
        conditions.append(overdue_condition())
    if filters.due_within_days:
        conditions.extend(
            (
                Case.closed_at.is_(None),
                Case.next_deadline_at.is_not(None),
                Case.next_deadline_at < utcnow() + timedelta(days=filters.due_within_days),
            )
        )
    if filters.category:
        conditions.append(
            select(CaseCode.case_id).where(CaseCode.case_id == Case.id, CaseCode.code == filters.category).exists()
        )
    return conditions


#: Open cases by next deadline (those without one last), the newest report first among equals. Written as plain
#: ``NULLS LAST`` so that ``ix_cases_caseload`` serves it in order: a worker's first 200 cases are read from the
#: index instead of sorting all of them (a sort expression, ``CASE WHEN ... IS NULL``, no index can serve).
DEADLINE_ORDER = (Case.next_deadline_at.asc().nulls_last(), Case.received_at.desc())


def _open_assigned(worker: User):
    return scoped_cases(worker).where(Case.assigned_to_id == worker.id, Case.closed_at.is_(None))


def caseload_counts(worker: User) -> tuple[int, int]:
    """How many open cases the worker has, and how many of them are past their next deadline."""
    # The total is kept by the database per commune (OpenCaseload); only the overdue cases are read to be counted.
    total = db.session.scalar(
        scope.filter_to_scope(
            select(func.coalesce(func.sum(OpenCaseload.open_cases), 0)), OpenCaseload.commune_code, worker
        ).where(OpenCaseload.assigned_to_id == worker.id)
    )
    overdue = db.session.scalar(
        scope.filter_to_scope(select(func.count()).select_from(Case), Case.commune_code, worker).where(
            Case.assigned_to_id == worker.id, overdue_condition()
        )
    )
    return int(total), int(overdue)


#: What a list of cases (``templates/cases/_macros.html``, case_table) shows of each case and its child.
LISTED_COLUMNS = (
    Case.case_number,
    Case.child_id,
    Case.commune_code,
    Case.stage,
    Case.workflow,
    Case.risk_level,
    Case.immediate_danger,
    Case.assigned_to_id,
    Case.next_deadline_at,
    Case.received_at,
    Case.closed_at,
)


@dataclass(frozen=True, slots=True)
class ListedChild:
    full_name: str | None


@dataclass(frozen=True, slots=True)
class ListedCase:
    """What a list shows of a case (LISTED_COLUMNS and the child's name), read as a plain row: a home page's 50 cases
    built as ORM objects with their children were a fifth of its time."""

    id: uuid.UUID
    case_number: str
    child_id: uuid.UUID
    commune_code: str
    stage: str
    workflow: str
    risk_level: str
    immediate_danger: bool
    assigned_to_id: uuid.UUID | None
    next_deadline_at: datetime | None
    received_at: datetime
    closed_at: datetime | None
    child: ListedChild


def caseload(worker: User, *, limit: int = 200) -> list[ListedCase]:
    """A social worker's open cases: overdue first, then by next deadline, with what a list shows of them."""
    stmt = (
        _open_assigned(worker)
        .with_only_columns(Case.id, *LISTED_COLUMNS, Child.full_name_ct, maintain_column_froms=False)
        .join(Child, Child.id == Case.child_id)
        .order_by(*DEADLINE_ORDER)
        .limit(limit)
    )
    name = Child.full_name  # the descriptor: each name opened for its own child's row
    return [
        ListedCase(*row[:-1], child=ListedChild(name.open(row[-1], row.child_id))) for row in db.session.execute(stmt)
    ]


def _listed() -> tuple:
    """Loader options for a page of search results: what a list shows (LISTED_COLUMNS), the API's summary of the
    child, and the names a result is confirmed against; the rest of each record stays unread."""
    return (
        load_only(*LISTED_COLUMNS),
        selectinload(Case.child).load_only(
            Child.full_name_ct, Child.other_names_ct, Child.sex, Child.birth_year, Child.estimated_age
        ),
    )


@dataclass
class TeamRow:
    worker: User | None
    open_cases: int
    overdue: int


def team_caseload(supervisor: User) -> list[TeamRow]:
    """Open and overdue cases per worker in the supervisor's communes, and the unassigned ones."""
    now = utcnow()
    # Open cases per worker as the database keeps them (OpenCaseload); the overdue ones read for those workers only,
    # from their caseloads' index, and the unassigned ones from theirs (ix_cases_unassigned): counting every open
    # case of two communes holding 72,000 took 52 ms at 1,000,000 cases.
    open_counts = {
        worker_id: int(n)
        for worker_id, n in db.session.execute(
            scope.filter_to_scope(
                select(OpenCaseload.assigned_to_id, func.sum(OpenCaseload.open_cases)),
                OpenCaseload.commune_code,
                supervisor,
            ).group_by(OpenCaseload.assigned_to_id)
        )
        if n
    }
    overdue: dict = {}
    if open_counts:
        overdue = dict(
            db.session.execute(
                scoped_cases(supervisor)
                .with_only_columns(Case.assigned_to_id, func.count())
                .where(among(Case.assigned_to_id, list(open_counts)), overdue_condition(now))
                .group_by(Case.assigned_to_id)
            ).all()
        )
    unassigned, unassigned_late = db.session.execute(
        scoped_cases(supervisor)
        .with_only_columns(func.count(), func.count().filter(overdue_condition(now)))
        .where(Case.closed_at.is_(None), Case.assigned_to_id.is_(None))
    ).one()
    result = [
        TeamRow(worker=db.session.get(User, worker_id), open_cases=n, overdue=int(overdue.get(worker_id, 0)))
        for worker_id, n in open_counts.items()
    ]
    if unassigned:
        result.append(TeamRow(worker=None, open_cases=unassigned, overdue=int(unassigned_late)))
    result.sort(key=lambda r: (r.worker is not None, -(r.overdue), r.worker.username if r.worker else ""))
    return result
