"""Computed reports kept until the data they were computed from changes.

A transaction that writes something the indicators read (a case, a child, codes, steps, plans, services, payments,
disbursements) moves its provinces' ``stats_versions`` number as it commits, in the same transaction.
:func:`cached_report` keys a snapshot by province, commune, period, breakdown, k and language, and uses it only while
the province's number is the one it was computed at: a dashboard is as fresh as the data or computed again.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import event, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from casework.extensions import db
from casework.stats.models import StatsSnapshot, StatsVersion

_DIRECT = ("Case", "Child", "PaymentRequest")  # carry their province
_BY_CASE = ("CaseCode", "CaseTransition", "SupportPlan", "ServiceRecord")  # belong to a case
_BY_PAYMENT = ("Disbursement",)
_PENDING = "casework.stats.provinces"  # provinces a transaction changed, until it commits


def _provinces_touched(session: Session) -> set[str]:
    from casework.cases.models import Case
    from casework.payments.models import PaymentRequest

    provinces: set[str] = set()
    case_ids: set[uuid.UUID] = set()
    payment_ids: set[uuid.UUID] = set()
    for instance in (*session.new, *session.dirty, *session.deleted):
        name = type(instance).__name__
        if name in _DIRECT:
            code = getattr(instance, "province_code", None)
            if code:
                provinces.add(code)
        elif name in _BY_CASE and getattr(instance, "case_id", None):
            case_ids.add(instance.case_id)
        elif name in _BY_PAYMENT and getattr(instance, "payment_id", None):
            payment_ids.add(instance.payment_id)
    if case_ids:
        provinces |= set(session.scalars(select(Case.province_code).where(Case.id.in_(case_ids))))
    if payment_ids:
        provinces |= set(
            session.scalars(select(PaymentRequest.province_code).where(PaymentRequest.id.in_(payment_ids)))
        )
    return provinces


def bump(connection, provinces: set[str]) -> None:
    """Move the numbers of ``provinces`` (creating them at 1): their snapshots are no longer current."""
    if not provinces:
        return
    table = StatsVersion.__table__
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    for code in sorted(provinces):  # a fixed order: two transactions never wait on each other's rows
        stmt = insert(table).values(province_code=code, version=1)
        connection.execute(
            stmt.on_conflict_do_update(index_elements=["province_code"], set_={"version": table.c.version + 1})
        )


def _after_flush(session: Session, _context) -> None:
    provinces = _provinces_touched(session)
    if provinces:
        session.info.setdefault(_PENDING, set()).update(provinces)


def _before_commit(session: Session) -> None:
    # Taken last, just before the commit: a transaction never holds a province's row while it waits for another
    # lock (a case number, a payment), so two transactions cannot wait on each other through it.
    session.flush()
    provinces = session.info.pop(_PENDING, None)
    if provinces:
        bump(session.connection(), provinces)


def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)


def init_app(app) -> None:
    for name, listener in (
        ("after_flush", _after_flush),
        ("before_commit", _before_commit),
        ("after_rollback", _after_rollback),
    ):
        if not event.contains(Session, name, listener):
            # First: the version moves before the audit trail seals the transaction's events.
            event.listen(Session, name, listener, insert=True)


def bump_all() -> None:
    """After a bulk load that bypassed the session (demo data): every province's snapshots are out of date."""
    from casework.locations.models import Province

    bump(db.session.connection(), set(db.session.scalars(select(Province.code))))


def current_version(province_code: str) -> int:
    return db.session.scalar(select(StatsVersion.version).where(StatsVersion.province_code == province_code)) or 0


def cached_report(
    key: str, province_code: str, compute: Callable[[], dict], *, max_age: timedelta | None = None
) -> tuple[dict, datetime, bool]:
    """The payload stored under ``key`` if still current, else ``compute()``'s, stored for next time.

    ``compute`` runs where the indicators read (the replica, when one is configured), and the snapshot is tagged
    with the province's number as *that* database has it: a replica that lags behind tags its figures with the older
    number, so they are computed again once it has caught up, never kept as current.

    :param max_age: a snapshot computed before the province's latest change is still used while it is younger than
        this (the caller says "as of" when): the dashboard's choice; exports and the API pass None.
    :returns: the payload, when it was computed, and whether it was computed now.
    """
    from casework.stats.indicators import reading_from_replica

    version = current_version(province_code)
    found = db.session.scalar(select(StatsSnapshot).where(StatsSnapshot.key == key))
    if found is not None and found.version == version:
        return found.payload, found.computed_at, False
    if found is not None and max_age is not None and datetime.now(UTC) - found.computed_at < max_age:
        return found.payload, found.computed_at, False
    started = time.perf_counter()
    with reading_from_replica() as reader:
        version = reader.scalar(select(StatsVersion.version).where(StatsVersion.province_code == province_code)) or 0
        payload = compute()
    elapsed = int((time.perf_counter() - started) * 1000)
    now = datetime.now(UTC)
    # Stored on a connection of its own: the request's transaction stays as it was (a GET writes nothing else).
    with contextlib.suppress(IntegrityError):  # another process stored the same figures a moment ago
        _store(key, province_code, version, now, elapsed, payload)
    return payload, now, True


def _store(key: str, province_code: str, version: int, now: datetime, elapsed: int, payload) -> None:
    with db.engine.begin() as connection:
        table = StatsSnapshot.__table__
        changed = connection.execute(
            update(table)
            .where(table.c.key == key)
            .values(version=version, computed_at=now, milliseconds=elapsed, payload=payload)
        ).rowcount
        if not changed:
            connection.execute(
                table.insert().values(
                    id=uuid.uuid4(),
                    key=key,
                    province_code=province_code,
                    version=version,
                    computed_at=now,
                    milliseconds=elapsed,
                    payload=payload,
                )
            )
