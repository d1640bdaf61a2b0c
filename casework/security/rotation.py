"""Key rotation: a new current data key, re-encryption in the background, status, retirement, backups.

Re-encryption walks every encrypted column of every model in batches, re-sealing each value (and rebuilding its
blind-index entries) under the current key and committing each batch. Its progress is the data itself: a value
still under an old key is still to do. A job killed half-way therefore resumes where it stopped when run again,
and the application keeps reading (old keys stay readable) and writing (new values use the new key) meanwhile.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from sqlalchemy import delete, func, or_, select

from casework.dbtypes import utcnow
from casework.errors import Conflict, NotFound, ValidationFailed
from casework.extensions import db
from casework.security import fields
from casework.security.keys import DataKey, Keyring, create_data_key, decode_master_key, encode_master_key

BATCH_SIZE = 200

Progress = Callable[[int, str], None]


def rotate(ring: Keyring) -> DataKey:
    """Make a new current data key; the old one stays readable until re-encryption is done."""
    return create_data_key(ring)


def _models() -> dict[type, list[fields.Encrypted]]:
    by_model: dict[type, list[fields.Encrypted]] = {}
    for owner, field in fields.REGISTRY:
        if hasattr(owner, "__table__"):
            by_model.setdefault(owner, []).append(field)
    return by_model


def _stale_condition(model, model_fields, current: str):
    prefix = f"{fields.VERSION}:{current}:"
    conditions = [
        getattr(model, f.column).is_not(None) & ~getattr(model, f.column).startswith(prefix, autoescape=True)
        for f in model_fields
    ]
    return or_(*conditions)


def stale_counts(ring: Keyring) -> dict[str, int]:
    """How many rows per table still hold a value (or index entry) not under the current key."""
    current = ring.current_key_id()
    counts = {}
    for model, model_fields in _models().items():
        counts[model.__tablename__] = db.session.scalar(
            select(func.count()).select_from(model).where(_stale_condition(model, model_fields, current))
        )
    counts["blind_index_entries"] = db.session.scalar(
        select(func.count(fields.BlindIndexEntry.id)).where(fields.BlindIndexEntry.key_id != current)
    )
    return counts


def reencrypt_all(ring: Keyring, progress: Progress | None = None, batch_size: int = BATCH_SIZE) -> dict[str, int]:
    """Re-seal every value still under an old key, batch by batch, committing each batch.

    Safe to run twice and to resume after a crash: it only touches what is still under an old key.
    """
    report = progress or (lambda percent, message: None)
    total = max(1, sum(stale_counts(ring).values()))
    done = 0
    result: dict[str, int] = {}
    for model, model_fields in _models().items():
        name = model.__tablename__
        result[name] = 0
        while True:
            current = ring.current_key_id()
            rows = db.session.scalars(
                select(model).where(_stale_condition(model, model_fields, current)).order_by(model.id).limit(batch_size)
            ).all()
            if not rows:
                break
            for row in rows:
                changed = False
                for field in model_fields:
                    changed |= field.reencrypt(row)
                result[name] += changed
            done += len(rows)
            db.session.commit()
            report(min(99, int(100 * done / total)), f"{name}: {result[name]}")
    # Index entries whose value was re-sealed are rebuilt with it; any left under an old key (e.g. written by a
    # process that had not yet seen the new key) are rebuilt from their row.
    result["blind_index_entries"] = _rebuild_stale_index_entries(ring, batch_size)
    report(100, "done")
    return result


def _rebuild_stale_index_entries(ring: Keyring, batch_size: int) -> int:
    rebuilt = 0
    by_column = {(f.table, f.column): (owner, f) for owner, f in fields.REGISTRY}
    entry = fields.BlindIndexEntry
    while True:
        current = ring.current_key_id()
        stale = db.session.execute(
            select(entry.table_name, entry.column_name, entry.row_id)
            .where(entry.key_id != current)
            .distinct()
            .limit(batch_size)
        ).all()
        if not stale:
            return rebuilt
        for table, column, row_id in stale:
            model, field = by_column[(table, column)]
            row = db.session.get(model, row_id)
            if row is None:  # an orphan entry: its row is gone
                db.session.execute(delete(entry).where(entry.table_name == table, entry.row_id == row_id))
            else:
                fields.mark_for_reindex(row, field)
            rebuilt += 1
        db.session.commit()


def key_status(ring: Keyring) -> list[dict]:
    """Every data key with the number of values, index entries and files it still protects."""
    keys = db.session.scalars(select(DataKey).order_by(DataKey.created_at)).all()
    counts: dict[str, dict[str, int]] = {k.id: {"values": 0, "index_entries": 0, "files": 0} for k in keys}
    for model, model_fields in _models().items():
        for field in model_fields:
            column = getattr(model, field.column)
            kid = func.substr(column, len(fields.VERSION) + 2, 8)
            for key_id, n in db.session.execute(
                select(kid, func.count()).select_from(model).where(column.is_not(None)).group_by(kid)
            ).all():
                counts.setdefault(key_id, {"values": 0, "index_entries": 0, "files": 0})["values"] += n
    for key_id, n in db.session.execute(
        select(fields.BlindIndexEntry.key_id, func.count()).group_by(fields.BlindIndexEntry.key_id)
    ).all():
        counts.setdefault(key_id, {"values": 0, "index_entries": 0, "files": 0})["index_entries"] += n
    for key_id, n in _file_counts().items():
        counts.setdefault(key_id, {"values": 0, "index_entries": 0, "files": 0})["files"] += n
    return [
        {
            "id": k.id,
            "status": k.status,
            "created_at": k.created_at,
            "retired_at": k.retired_at,
            "pair_terms": k.pair_terms,
            **counts[k.id],
        }
        for k in keys
    ]


def _file_counts() -> dict[str, int]:
    try:
        from casework.security import files
    except ImportError:  # the file store is optional for key status
        return {}
    counter = getattr(files, "count_by_key", None)
    return counter() if counter else {}


def retire(ring: Keyring, key_id: str) -> DataKey:
    """Retire a data key nothing uses any more: its wrapped material is erased.

    :raises Conflict: it is the current key, or values, index entries or files still use it.
    """
    key = db.session.get(DataKey, key_id)
    if key is None:
        raise NotFound(f"no data key {key_id}")
    if key.status == "current":
        raise Conflict(f"data key {key_id} is the current key; rotate first")
    if key.status == "retired":
        return key
    status = next(s for s in key_status(ring) if s["id"] == key_id)
    in_use = status["values"] + status["index_entries"] + status["files"]
    if in_use:
        raise Conflict(
            f"data key {key_id} still protects {status['values']} values, {status['index_entries']} index entries "
            f"and {status['files']} files; run the re-encryption first"
        )
    key.status = "retired"
    key.retired_at = utcnow()
    key.wrapped = ""  # the key itself is gone
    db.session.flush()
    ring.forget()
    return key


# --- backup of the master key -------------------------------------------------------------------------------


def _scrypt(passphrase: str, salt: bytes, n: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=8, p=1).derive(passphrase.encode("utf-8"))


MIN_PASSPHRASE = 12


def export_backup(master_key: bytes, passphrase: str, *, n: int = 2**15) -> str:
    """Wrap the master key under a passphrase (scrypt + AES-256-GCM); return the backup as JSON text."""
    if len(passphrase) < MIN_PASSPHRASE:
        raise ValidationFailed({"passphrase": [f"the passphrase needs at least {MIN_PASSPHRASE} characters"]})
    salt = secrets.token_bytes(16)
    nonce = secrets.token_bytes(12)
    sealed = AESGCM(_scrypt(passphrase, salt, n)).encrypt(nonce, master_key, b"casework master key backup v1")
    return json.dumps(
        {
            "format": "casework-master-key-backup",
            "version": 1,
            "kdf": {"name": "scrypt", "n": n, "r": 8, "p": 1, "salt": base64.b64encode(salt).decode()},
            "cipher": "AES-256-GCM",
            "nonce": base64.b64encode(nonce).decode(),
            "ciphertext": base64.b64encode(sealed).decode(),
        },
        indent=2,
    )


def import_backup(text: str, passphrase: str) -> bytes:
    """Recover the master key from a backup; a wrong passphrase or an altered file is refused."""
    try:
        data = json.loads(text)
        if data.get("format") != "casework-master-key-backup" or data.get("version") != 1:
            raise ValueError("not a casework master key backup")
        salt = base64.b64decode(data["kdf"]["salt"])
        key = _scrypt(passphrase, salt, int(data["kdf"]["n"]))
        master = AESGCM(key).decrypt(
            base64.b64decode(data["nonce"]), base64.b64decode(data["ciphertext"]), b"casework master key backup v1"
        )
    except InvalidTag:
        raise ValidationFailed({"passphrase": ["wrong passphrase, or the backup file was altered"]}) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ValidationFailed({"backup": [f"unreadable backup: {exc}"]}) from None
    return decode_master_key(encode_master_key(master), "the backup")


def write_key_file(path: Path, master_key: bytes) -> None:
    from casework.security.keys import write_master_key_file

    write_master_key_file(path, master_key)
