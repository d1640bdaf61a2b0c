"""The keyed chain: canonical form, sealing events at commit, signed checkpoints, and verification.

Each event's ``mac`` is HMAC-SHA256, under the audit key (derived from the master key, outside the database), over
the previous event's ``mac`` and the event's canonical content, its sequence number included. Someone who can
write to the database but does not hold the key can neither edit an event, nor insert, delete or reorder one,
without breaking the chain from that event on.

Events get their place in the chain when their transaction commits (``before_commit``): the writer locks the
single row of ``audit_chain_head``, numbers its events after the head, and moves the head, all in its own
transaction. The lock is held only from that moment to the commit, and concurrent writers queue on it, so the chain
stays one line. A transaction that rolls back leaves neither its change nor its events; a rolled-back savepoint
drops the events recorded inside it. (Committing a savepoint seals the events so far inside it, within the outer
transaction, and holds the head's lock until the outer commit.)

Deleting the newest events (and rewinding the head) leaves no broken link, so every
``CASEWORK_AUDIT_CHECKPOINT_EVERY`` events a checkpoint is signed with a second key: a row in
``audit_checkpoints`` and a line appended, after commit, to ``CASEWORK_AUDIT_CHECKPOINT_FILE`` outside the
database. :func:`verify` refuses a trail that ends before the newest checkpoint of either.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import insert, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, SessionTransaction

from casework.audit.models import AuditEvent, ChainHead, Checkpoint
from casework.dbtypes import utcnow
from casework.extensions import db
from casework.security.keys import keyring

logger = logging.getLogger(__name__)

#: The ``prev_mac`` of the first event. It needs no key: every event's own MAC is keyed.
GENESIS = "0" * 64
VERSION = 1

_PENDING = "casework_audit_pending"
_NEW_CHECKPOINTS = "casework_audit_new_checkpoints"

# --- canonical form and MACs ----------------------------------------------------------------------------------------


def canonical(data: Mapping[str, Any]) -> bytes:
    """The one byte string a mapping of JSON values is signed as: sorted keys, no spaces, UTF-8."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def timestamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_content(values: Mapping[str, Any]) -> dict[str, Any]:
    """What an event's MAC covers: every column but the MACs themselves, as JSON values."""
    actor_id = values["actor_id"]
    return {
        "v": VERSION,
        "seq": values["seq"],
        "occurred_at": timestamp(values["occurred_at"]),
        "actor_id": str(actor_id) if actor_id is not None else None,
        "actor_username": values["actor_username"],
        "actor_role": values["actor_role"],
        "ip": values["ip"],
        "request_id": values["request_id"],
        "action": values["action"],
        "object_type": values["object_type"],
        "object_id": values["object_id"],
        "fields": list(values["fields"] or []),
        "details": values["details"],
    }


def event_mac(key: bytes, prev_mac: str, values: Mapping[str, Any]) -> str:
    return hmac.new(key, prev_mac.encode() + b"\n" + canonical(event_content(values)), hashlib.sha256).hexdigest()


def checkpoint_mac(key: bytes, seq: int, event_mac_: str, created_at: datetime) -> str:
    content = {"v": VERSION, "seq": seq, "event_mac": event_mac_, "created_at": timestamp(created_at)}
    return hmac.new(key, canonical(content), hashlib.sha256).hexdigest()


# --- pending events, bound to the transaction that recorded them ----------------------------------------------------


def _current_transaction(session: Session) -> SessionTransaction:
    if not session.in_transaction():
        session.begin()  # bind the event to a transaction now, so that its rollback drops the event
    transaction = session.get_nested_transaction() or session.get_transaction()
    assert transaction is not None
    return transaction


def add_pending(session: Session, values: dict[str, Any]) -> None:
    """Queue an event's values; it is numbered, sealed and inserted when its transaction commits."""
    session.info.setdefault(_PENDING, []).append((_current_transaction(session), values))


def _within(transaction: SessionTransaction | None, ended: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ended:
            return True
        transaction = transaction.parent
    return False


def _drop_rolled_back(session: Session, ended: SessionTransaction) -> None:
    for key in (_PENDING, _NEW_CHECKPOINTS):
        entries = session.info.get(key)
        if entries:
            session.info[key] = [(tx, item) for tx, item in entries if not _within(tx, ended)]


# --- sealing at commit ----------------------------------------------------------------------------------------------


def _dialect(session: Session) -> str:
    return session.get_bind(mapper=ChainHead.__mapper__).dialect.name


def lock_head(session: Session) -> tuple[int, str]:
    """Lock the chain head until the end of the transaction and return its (last seq, last MAC)."""
    head = ChainHead.__table__
    query = select(head.c.last_seq, head.c.last_mac).where(head.c.id == 1)
    if _dialect(session) == "postgresql":
        row = session.execute(query.with_for_update()).first()
    else:
        # SQLite: write before reading, so this transaction holds the database's write lock (waiting for it if need
        # be) and reads the head no other writer can move before this one commits.
        session.execute(update(head).where(head.c.id == 1).values(last_seq=head.c.last_seq))
        row = session.execute(query).first()
    if row is None:  # a schema built without migration 0003, which creates the row
        session.execute(insert(head).values(id=1, last_seq=0, last_mac=GENESIS))
        return 0, GENESIS
    return row.last_seq, row.last_mac


def _insert_checkpoint(session: Session, seq: int, mac: str) -> dict[str, Any]:
    created_at = utcnow()
    row = {
        "seq": seq,
        "event_mac": mac,
        "created_at": created_at,
        "mac": checkpoint_mac(keyring().checkpoint_key, seq, mac, created_at),
    }
    session.execute(insert(Checkpoint.__table__).values(**row))
    session.info.setdefault(_NEW_CHECKPOINTS, []).append((_current_transaction(session), row))
    return row


def seal(session: Session) -> None:
    """Number and sign the session's pending events after the chain head, insert them, and move the head."""
    entries = session.info.pop(_PENDING, None)
    if not entries:
        return
    key = keyring().audit_key
    first_seq, prev_mac = lock_head(session)
    seq = first_seq
    rows = []
    for _tx, values in entries:
        seq += 1
        row = {**values, "seq": seq, "prev_mac": prev_mac}
        row["mac"] = prev_mac = event_mac(key, prev_mac, row)
        rows.append(row)
    session.execute(insert(AuditEvent.__table__), rows)
    head = ChainHead.__table__
    session.execute(update(head).where(head.c.id == 1).values(last_seq=seq, last_mac=prev_mac))
    every = current_app.config.get("CASEWORK_AUDIT_CHECKPOINT_EVERY", 100)
    if seq // every > first_seq // every:
        _insert_checkpoint(session, seq, prev_mac)


def write_checkpoint(session: Session | None = None) -> tuple[int, bool] | None:
    """Sign a checkpoint at the newest event now (``casework audit checkpoint``); the caller commits.

    :returns: (seq, whether a new checkpoint was written), or None when the trail is empty.
    """
    session = session or db.session()
    seq, mac = lock_head(session)
    if seq == 0:
        return None
    if session.get(Checkpoint, seq) is not None:
        return seq, False
    _insert_checkpoint(session, seq, mac)
    return seq, True


def checkpoint_file() -> Path:
    return Path(current_app.config["CASEWORK_AUDIT_CHECKPOINT_FILE"])


def checkpoint_line(row: Mapping[str, Any]) -> str:
    return (
        canonical(
            {
                "seq": row["seq"],
                "event_mac": row["event_mac"],
                "created_at": timestamp(row["created_at"]),
                "mac": row["mac"],
            }
        ).decode()
        + "\n"
    )


def append_checkpoints(rows: list[dict[str, Any]]) -> None:
    """Append committed checkpoints to the file outside the database; a failure is logged, never raised."""
    path = checkpoint_file()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write("".join(checkpoint_line(row) for row in rows))
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        logger.error("audit checkpoint(s) %s not written to %s: %s", [r["seq"] for r in rows], path, exc)


def _before_commit(session: Session) -> None:
    # Commit flushes after this hook; flush first, so that automatic events of the last changes are pending too.
    session.flush()
    seal(session)


def _after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint: the outer transaction may still roll back
    rows = [row for _tx, row in session.info.pop(_NEW_CHECKPOINTS, [])]
    if rows and has_app_context():
        append_checkpoints(rows)


def _after_rollback(session: Session) -> None:
    if not session.in_nested_transaction():  # the whole transaction: its events go with it
        session.info.pop(_PENDING, None)
        session.info.pop(_NEW_CHECKPOINTS, None)


def _after_soft_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    _drop_rolled_back(session, previous_transaction)  # a savepoint: only the events recorded inside it


def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is not None:
        return
    # Committed events were sealed and rolled-back ones dropped: what is left belongs to a transaction that was
    # closed without either, e.g. a view that recorded a view event and never committed. Nothing may carry over.
    left = session.info.pop(_PENDING, None)
    session.info.pop(_NEW_CHECKPOINTS, None)
    if left:
        logger.warning(
            "audit events discarded, their transaction was never committed: %s", [v["action"] for _, v in left]
        )


def register_session_events() -> None:
    from sqlalchemy import event

    for name, listener in (
        ("before_commit", _before_commit),
        ("after_commit", _after_commit),
        ("after_rollback", _after_rollback),
        ("after_soft_rollback", _after_soft_rollback),
        ("after_transaction_end", _after_transaction_end),
    ):
        if not event.contains(Session, name, listener):
            event.listen(Session, name, listener)


# --- verification ---------------------------------------------------------------------------------------------------


@dataclass
class Verification:
    """The outcome of :func:`verify`: ``ok``, or the first problem and the event it concerns."""

    ok: bool = True
    events: int = 0
    last_seq: int = 0
    newest_checkpoint: int = 0
    problem: str | None = None
    bad_seq: int | None = None
    warnings: list[str] = field(default_factory=list)

    def fail(self, problem: str, bad_seq: int | None = None) -> Verification:
        self.ok, self.problem, self.bad_seq = False, problem, bad_seq
        return self

    def summary(self) -> str:
        if not self.ok:
            return f"audit trail BROKEN: {self.problem}"
        checkpoint = (
            f"newest checkpoint at event {self.newest_checkpoint}" if self.newest_checkpoint else "no checkpoint"
        )
        return f"audit trail intact: {self.events} events, {checkpoint}"


def _read_checkpoint_file(path: Path, key: bytes) -> tuple[dict[int, str], list[str]]:
    found: dict[int, str] = {}
    problems: list[str] = []
    if not path.exists():
        return found, problems
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                seq, mac = int(data["seq"]), str(data["event_mac"])
                created_at = datetime.fromisoformat(data["created_at"].replace("Z", "+00:00"))
                valid = hmac.compare_digest(checkpoint_mac(key, seq, mac, created_at), str(data["mac"]))
            except (ValueError, KeyError, TypeError, AttributeError):
                valid = False
            if not valid:
                problems.append(f"line {number} of {path} is not a checkpoint signed with the audit key (damaged?)")
            elif found.get(seq, mac) != mac:
                problems.append(f"{path} holds two different checkpoints for event {seq}")
            else:
                found[seq] = mac
    return found, problems


def _batches(session: Session, after: int, size: int) -> Iterator[list[Mapping[str, Any]]]:
    """Events after ``after`` by seq, a batch at a time; a row that cannot be read is yielded as its seq alone."""
    table = AuditEvent.__table__
    while True:
        query = select(table).where(table.c.seq > after).order_by(table.c.seq).limit(size)
        try:
            rows = list(session.execute(query).mappings())
        except (ValueError, TypeError, SQLAlchemyError):
            session.rollback()
            seqs = session.scalars(select(table.c.seq).where(table.c.seq > after).order_by(table.c.seq).limit(size))
            rows = []
            for seq in list(seqs):
                try:
                    rows.extend(session.execute(select(table).where(table.c.seq == seq)).mappings())
                except (ValueError, TypeError, SQLAlchemyError):
                    session.rollback()
                    rows.append({"seq": seq, "unreadable": True})
                    break
        if not rows:
            return
        yield rows
        after = rows[-1]["seq"]


def verify(*, batch_size: int = 1000, session: Session | None = None) -> Verification:
    """Check the whole trail: every link and MAC, every checkpoint, and that nothing was cut from the end.

    Events are read in batches of ``batch_size``, never all at once. Reads happen in an order that concurrent
    writers cannot turn into a false alarm: the head, then the checkpoint file, then the checkpoint table, then the
    events (each of those was committed before the next).
    """
    session = session or db.session()
    ring = keyring()
    result = Verification()

    head = session.execute(select(ChainHead.last_seq, ChainHead.last_mac).where(ChainHead.id == 1)).first()
    path = checkpoint_file()
    in_file, checkpoint_problems = _read_checkpoint_file(path, ring.checkpoint_key)
    in_table: dict[int, str] = {}
    for row in session.execute(select(Checkpoint.__table__).order_by(Checkpoint.seq)).mappings():
        expected = checkpoint_mac(ring.checkpoint_key, row["seq"], row["event_mac"], row["created_at"])
        if not hmac.compare_digest(expected, row["mac"]):
            checkpoint_problems.append(
                f"the checkpoint of event {row['seq']} in the database is not signed with the audit key (forged?)"
            )
        else:
            in_table[row["seq"]] = row["event_mac"]
    for seq, mac in sorted(in_file.items()):
        if seq not in in_table:
            checkpoint_problems.append(f"the checkpoint of event {seq} is in {path} but not in the database (deleted?)")
        elif in_table[seq] != mac:
            checkpoint_problems.append(f"the checkpoints of event {seq} in {path} and in the database differ")
    if in_table and not path.exists():
        result.warnings.append(f"the checkpoint file {path} does not exist; only the database's checkpoints are used")
    signed = {**in_table, **in_file}
    result.newest_checkpoint = max(signed, default=0)

    key = ring.audit_key
    prev_seq, prev_mac = 0, GENESIS
    head_mac_seen = None
    for rows in _batches(session, 0, batch_size):
        for row in rows:
            seq = row["seq"]
            if seq != prev_seq + 1:
                if seq > prev_seq + 1:
                    return result.fail(f"event {prev_seq + 1} is missing (deleted?)", prev_seq + 1)
                return result.fail(f"event {seq} is out of place after event {prev_seq}", seq)
            if row.get("unreadable"):
                return result.fail(f"event {seq} cannot be read (edited?)", seq)
            if row["prev_mac"] != prev_mac:
                return result.fail(
                    f"event {seq} does not follow event {prev_seq} (inserted, deleted or reordered?)", seq
                )
            if not hmac.compare_digest(event_mac(key, prev_mac, row), row["mac"]):
                return result.fail(f"event {seq}: its content does not match its MAC (edited or forged?)", seq)
            if seq in signed and signed[seq] != row["mac"]:
                return result.fail(f"event {seq} differs from the checkpoint signed for it (rewritten?)", seq)
            if head is not None and seq == head.last_seq:
                head_mac_seen = row["mac"]
            prev_seq, prev_mac = seq, row["mac"]
            result.events += 1
    result.last_seq = prev_seq

    if head is None and prev_seq:
        return result.fail("the chain head is missing (deleted?)")
    ends = f"the trail ends at event {prev_seq}" if prev_seq else "the trail is empty"
    if result.newest_checkpoint > prev_seq:
        return result.fail(
            f"event {prev_seq + 1} is missing: {ends} but a signed checkpoint covers event "
            f"{result.newest_checkpoint} (truncated?)",
            prev_seq + 1,
        )
    if head is not None and head.last_seq > prev_seq:
        return result.fail(
            f"event {prev_seq + 1} is missing: {ends} but the chain head records event {head.last_seq} (truncated?)",
            prev_seq + 1,
        )
    if checkpoint_problems:
        return result.fail(checkpoint_problems[0])
    if head is not None and head.last_seq and head_mac_seen != head.last_mac:
        return result.fail(f"event {head.last_seq} does not match the chain head (rewritten?)", head.last_seq)
    return result
