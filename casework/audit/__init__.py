"""The tamper-evident audit trail.

Every sign-in and failed sign-in, every create, change, delete, workflow transition, approval, export and download,
and every view of a child's identifying details is recorded with :func:`record`, in the same transaction as the
change it records: the event is sealed into the chain when that transaction commits, and vanishes if it rolls back.

Models opt in to automatic events with a class attribute::

    class Case(db.Model):
        __audited__ = True

and every flush of such a row then records ``<table>.create``, ``<table>.update`` (naming the changed fields; an
encrypted field by its logical name, never its value) or ``<table>.delete``.

How the chain, checkpoints and verification work: :mod:`casework.audit.chain`.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flask import Flask
from sqlalchemy import Select, event, func, inspect, select
from sqlalchemy.orm import Session

from casework.audit import chain, context
from casework.audit.chain import Verification, verify, write_checkpoint
from casework.audit.models import AppendOnlyError, AuditEvent, ChainHead, Checkpoint
from casework.extensions import db

__all__ = [
    "AppendOnlyError",
    "AuditEvent",
    "ChainHead",
    "Checkpoint",
    "EventFilter",
    "Verification",
    "events_for_object",
    "filter_events",
    "init_app",
    "iter_events",
    "record",
    "record_export",
    "verify",
    "write_checkpoint",
]

NAME_LENGTH = 64


def record(
    action: str,
    *,
    object_type: str | None = None,
    object_id: uuid.UUID | str | None = None,
    fields: Iterable[str] = (),
    details: dict[str, Any] | None = None,
    actor=None,
) -> None:
    """Record an audit event in the current transaction.

    :param action: what happened, e.g. ``auth.sign_in``, ``auth.sign_in_failed``, ``child.view``, ``file.download``.
    :param fields: names of the changed fields (never their values).
    :param details: small non-identifying facts (codes, counts); never plaintext of an encrypted field.
    :param actor: the user acting; defaults to the signed-in user of the request, or the system.
    """
    _record(
        db.session(),
        action,
        object_type=object_type,
        object_id=object_id,
        fields=fields,
        details=details,
        actor=actor,
    )


def _check_name(label: str, value: str | None, *, required: bool = False) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str) or not value or len(value) > NAME_LENGTH:
        raise ValueError(f"audit {label} must be text of 1 to {NAME_LENGTH} characters, not {value!r}")


def _jsonable(value: Any) -> Any:
    """``value`` as plain JSON values (UUIDs, dates and decimals as text, sets sorted), or TypeError."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError("audit details take finite numbers only")
        return value
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((_jsonable(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    raise TypeError(f"audit details take JSON values, not {type(value).__name__}")


def _record(
    session: Session,
    action: str,
    *,
    object_type: str | None,
    object_id: uuid.UUID | str | None,
    fields: Iterable[str],
    details: dict[str, Any] | None,
    actor,
) -> None:
    object_id = str(object_id) if object_id is not None else None
    _check_name("action", action, required=True)
    _check_name("object type", object_type)
    _check_name("object id", object_id)
    names = sorted(set(fields))
    if not all(isinstance(name, str) for name in names):
        raise TypeError("audit fields are names of fields")
    if details is not None and not isinstance(details, dict):
        raise TypeError("audit details are a mapping")
    values = context.facts(actor)
    values.update(
        action=action,
        object_type=object_type,
        object_id=object_id,
        fields=names,
        details=_jsonable(details) if details is not None else None,
    )
    chain.add_pending(session, values)


# --- automatic events of audited models -----------------------------------------------------------------------------


def _field_names(obj, *, changed: bool) -> list[str]:
    """The logical names of ``obj``'s set (or changed) columns; an encrypted column ``x_ct`` is named ``x``."""
    from casework.security.fields import REGISTRY

    encrypted = {f.column: f.name for owner, f in REGISTRY if isinstance(obj, owner)}
    state = inspect(obj)
    primary_key = {column.key for column in state.mapper.primary_key}
    names = []
    for attr in state.mapper.column_attrs:
        if changed:
            if not state.attrs[attr.key].history.has_changes():
                continue
        elif attr.key in primary_key or state.dict.get(attr.key) is None:
            continue
        names.append(encrypted.get(attr.key, attr.key))
    return names


def _object_id(obj) -> str:
    key = inspect(obj).mapper.primary_key_from_instance(obj)
    return "/".join(str(part) for part in key)


def _is_audited(obj) -> bool:
    return bool(getattr(type(obj), "__audited__", False))


@event.listens_for(Session, "after_flush")
def _record_model_changes(session: Session, _flush_context) -> None:
    """Record the creation, change and deletion of audited rows in the flush's transaction."""
    changes = [(obj, "create") for obj in session.new]
    changes += [(obj, "update") for obj in session.dirty]
    changes += [(obj, "delete") for obj in session.deleted]
    for obj, kind in changes:
        if not _is_audited(obj):
            continue
        if kind == "update":
            names = _field_names(obj, changed=True)
            if not names:
                continue  # only relationships changed; their own rows record themselves if audited
        else:
            names = _field_names(obj, changed=False) if kind == "create" else []
        table = inspect(obj).mapper.local_table.name
        _record(
            session,
            f"{table}.{kind}",
            object_type=table,
            object_id=_object_id(obj),
            fields=names,
            details=None,
            actor=None,
        )


chain.register_session_events()


# --- reading the trail ----------------------------------------------------------------------------------------------


@dataclass
class EventFilter:
    """What the auditor asks for; every part is optional. ``until`` is exclusive; times are UTC."""

    username: str | None = None
    object_id: str | None = None
    action: str | None = None  # exact, or a prefix when it ends with "*" (``auth.*``)
    since: datetime | None = None
    until: datetime | None = None
    through_seq: int | None = None  # nothing newer than this event (an export's cut-off)

    def as_details(self) -> dict[str, Any]:
        return {k: _jsonable(v) for k, v in vars(self).items() if v not in (None, "")}


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def filter_events(stmt: Select, wanted: EventFilter) -> Select:
    """Restrict a select of :class:`AuditEvent` to ``wanted``."""
    if wanted.username:
        stmt = stmt.where(AuditEvent.actor_username == wanted.username.strip().lower())
    if wanted.object_id:
        stmt = stmt.where(AuditEvent.object_id == wanted.object_id.strip())
    if wanted.action:
        action = wanted.action.strip()
        if action.endswith("*"):
            stmt = stmt.where(AuditEvent.action.like(_escape_like(action[:-1]) + "%", escape="\\"))
        else:
            stmt = stmt.where(AuditEvent.action == action)
    if wanted.since:
        stmt = stmt.where(AuditEvent.occurred_at >= wanted.since)
    if wanted.until:
        stmt = stmt.where(AuditEvent.occurred_at < wanted.until)
    if wanted.through_seq is not None:
        stmt = stmt.where(AuditEvent.seq <= wanted.through_seq)
    return stmt


def search_events(wanted: EventFilter, *, page: int = 1, per_page: int = 50) -> tuple[list[AuditEvent], bool]:
    """One page of matching events, newest first, and whether another page follows."""
    stmt = filter_events(select(AuditEvent), wanted).order_by(AuditEvent.seq.desc())
    rows = db.session.scalars(stmt.offset((page - 1) * per_page).limit(per_page + 1)).all()
    return list(rows[:per_page]), len(rows) > per_page


def iter_events(wanted: EventFilter, *, batch_size: int = 500) -> Iterator[AuditEvent]:
    """Every matching event, newest first, read a batch at a time (for exports)."""
    last = None
    while True:
        stmt = filter_events(select(AuditEvent), wanted).order_by(AuditEvent.seq.desc()).limit(batch_size)
        if last is not None:
            stmt = stmt.where(AuditEvent.seq < last)
        rows = db.session.scalars(stmt).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


def record_export(wanted: EventFilter, *, actor=None, file_format: str = "csv") -> EventFilter:
    """Record that ``actor`` exports the events ``wanted``, as the trail stands now; return the filter to export.

    The export is cut off at the newest event before its own, so that the count recorded is the count exported.
    """
    wanted = replace(wanted, through_seq=db.session.scalar(select(func.max(AuditEvent.seq))) or 0)
    count = db.session.scalar(
        select(func.count()).select_from(filter_events(select(AuditEvent.seq), wanted).subquery())
    )
    record(
        "audit.export", details={"filters": wanted.as_details(), "events": count, "format": file_format}, actor=actor
    )
    return wanted


def events_for_object(object_type: str, object_id: uuid.UUID | str, *, limit: int | None = None) -> list[AuditEvent]:
    """Who viewed or changed an object, and when, newest first (a case's access log)."""
    stmt = (
        select(AuditEvent)
        .where(AuditEvent.object_type == object_type, AuditEvent.object_id == str(object_id))
        .order_by(AuditEvent.seq.desc())
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(db.session.scalars(stmt))


def init_app(app: Flask) -> None:
    """Request ids for every request (the blueprint is registered with the others)."""
    context.init_app(app)
