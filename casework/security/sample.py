"""Proof that a database can be read with the keys at hand: decrypt a sample of every encrypted column and stored
file, and sum up what was read in one fingerprint.

After a restore (``make restore-test``, docs/OPERATIONS.md) this shows the backup, the files folder and the master
key belong together: a value sealed under a key that was not restored, a row moved between tables, a file missing
or altered, each fails here by name. The sample is the first ``per_table`` rows of each table in primary-key order,
so the same database gives the same fingerprint on any machine: run it before the dump and after the restore and
compare the two lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from hashlib import sha256

from sqlalchemy import or_, select

from casework import audit
from casework.extensions import db
from casework.security import fields
from casework.security.files import FileDamaged, StorageError, StoredFile, _open_verified


@dataclass
class SampleReport:
    values: int = 0
    files: int = 0
    failures: list[str] = field(default_factory=list)
    fingerprint: str = ""

    @property
    def ok(self) -> bool:
        return not self.failures


def _encrypted_models() -> list[tuple[type, list[fields.Encrypted]]]:
    by_model: dict[type, list[fields.Encrypted]] = {}
    for owner, column in fields.REGISTRY:
        if hasattr(owner, "__table__"):
            by_model.setdefault(owner, []).append(column)
    return sorted(by_model.items(), key=lambda item: item[0].__table__.name)


def verify_sample(per_table: int = 50, *, actor=None) -> SampleReport:
    """Decrypt the first ``per_table`` rows of every table with encrypted columns and as many stored files."""
    report = SampleReport()
    digest = sha256()
    for model, columns in _encrypted_models():
        key = model.__mapper__.primary_key[0]
        present = or_(*(getattr(model, c.column).is_not(None) for c in columns))
        for row in db.session.scalars(select(model).where(present).order_by(key).limit(per_table)):
            row_id = getattr(row, key.key)
            for column in columns:
                try:
                    value = getattr(row, column.name)
                except fields.DecryptionError as exc:
                    report.failures.append(str(exc))
                    continue
                if value is not None:
                    report.values += 1
                    digest.update(f"{model.__table__.name}|{row_id}|{column.name}|{value}\n".encode())
    live = select(StoredFile).where(StoredFile.deleted_at.is_(None)).order_by(StoredFile.id).limit(per_table)
    for stored in db.session.scalars(live):
        content = sha256()
        try:
            with _open_verified(stored) as stream:
                for chunk in stream:
                    content.update(chunk)
        except (FileDamaged, StorageError) as exc:
            report.failures.append(f"file {stored.id}: {exc.detail or exc.message}")
            continue
        report.files += 1
        digest.update(f"file|{stored.id}|{content.hexdigest()}\n".encode())
    report.fingerprint = digest.hexdigest()
    # Reading children's records is recorded like any other read, without what was read.
    audit.record(
        "keys.sample_check",
        object_type="database",
        actor=actor,
        details={"values": report.values, "files": report.files, "failures": len(report.failures)},
    )
    return report
