"""The audit trail's tables: the events, the head of their chain, and signed checkpoints.

``audit_events`` and ``audit_checkpoints`` are append-only: the ORM refuses to update or delete their rows (below),
and on PostgreSQL a trigger refuses it too (migration 0003). ``audit_chain_head`` is the one row writers lock to
take their place in the chain; it is the only audit table that changes.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, Integer, String, Uuid, event
from sqlalchemy.orm import Mapped, ORMExecuteState, Session, mapped_column

from casework.dbtypes import UTCDateTime
from casework.extensions import db

MAC_LENGTH = 64  # hex of HMAC-SHA256


class AppendOnlyError(RuntimeError):
    """Something tried to change or remove a row of the append-only audit trail."""


class AuditEvent(db.Model):
    """One thing that happened: who, what, when and from where, sealed into the chain by ``mac``."""

    __tablename__ = "audit_events"
    __table_args__ = (CheckConstraint("seq > 0", name="positive_seq"),)

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    # A snapshot of the actor, not a foreign key: the event outlives any change to the account.
    actor_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    actor_username: Mapped[str | None] = mapped_column(String(64), index=True)
    actor_role: Mapped[str | None] = mapped_column(String(32))
    ip: Mapped[str | None] = mapped_column(String(45))
    request_id: Mapped[str | None] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64), index=True)
    object_type: Mapped[str | None] = mapped_column(String(64))
    object_id: Mapped[str | None] = mapped_column(String(64), index=True)
    fields: Mapped[list[str]] = mapped_column(JSON)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    prev_mac: Mapped[str] = mapped_column(String(MAC_LENGTH))
    mac: Mapped[str] = mapped_column(String(MAC_LENGTH))

    def __repr__(self) -> str:
        return f"<AuditEvent {self.seq} {self.action} {self.object_type}:{self.object_id}>"


class ChainHead(db.Model):
    """The last link of the chain; writers lock this single row while they append."""

    __tablename__ = "audit_chain_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    last_mac: Mapped[str] = mapped_column(String(MAC_LENGTH))


class Checkpoint(db.Model):
    """A signed statement that the chain reached event ``seq`` with ``event_mac`` at ``created_at``."""

    __tablename__ = "audit_checkpoints"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    event_mac: Mapped[str] = mapped_column(String(MAC_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    mac: Mapped[str] = mapped_column(String(MAC_LENGTH))


APPEND_ONLY = (AuditEvent, Checkpoint)


def _refuse(_mapper, _connection, target) -> None:
    raise AppendOnlyError(f"{target.__tablename__} is append-only: rows are never changed or deleted")


for _model in APPEND_ONLY:
    event.listen(_model, "before_update", _refuse)
    event.listen(_model, "before_delete", _refuse)


@event.listens_for(Session, "do_orm_execute")
def _refuse_bulk_changes(state: ORMExecuteState) -> None:
    """Refuse ORM ``update(AuditEvent)`` / ``delete(AuditEvent)`` statements, which skip the mapper events."""
    if not (state.is_update or state.is_delete):
        return
    for mapper in state.all_mappers:
        if mapper.class_ in APPEND_ONLY:
            raise AppendOnlyError(f"{mapper.class_.__tablename__} is append-only: rows are never changed or deleted")
