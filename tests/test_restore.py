"""Backups restore: ``make restore-test`` end to end, and the sample check it relies on catching what a bad restore
looks like (a value moved between rows, a file missing or altered, another master key)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select, update

from casework.cases.models import Child
from casework.extensions import db
from casework.security import files
from casework.security.sample import verify_sample
from tests.conftest import casework_cli

ROOT = Path(__file__).resolve().parent.parent


def make_child(name: str) -> Child:
    child = Child(sex="female", commune_code="06970", full_name=name)
    db.session.add(child)
    db.session.commit()
    return child


def test_the_restore_test_restores_a_backup_and_refuses_another_key(pg_server):
    # pg_server: the restore test starts PostgreSQL clusters of its own, from the same Debian package.
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "restore_test.py"), "--cases", "60"],
        capture_output=True,
        text=True,
        timeout=600,
        env={k: v for k, v in os.environ.items() if not k.startswith("CASEWORK_")},
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "audit trail intact" in output
    assert "the same fingerprint as the source" in output
    assert "0 failures" in output
    assert "refused: Error: the master key does not open data key" in output


def test_the_sample_reads_every_encrypted_table_and_is_the_same_twice(app):
    make_child("Nguyễn Thị Lan")
    make_child("Trần Văn Minh")
    first = verify_sample(10)
    db.session.commit()
    second = verify_sample(10)
    assert first.ok and first.values >= 2
    assert first.fingerprint == second.fingerprint


def test_a_changed_value_changes_the_fingerprint(app):
    child = make_child("Nguyễn Thị Lan")
    before = verify_sample(10).fingerprint
    child.full_name = "Nguyễn Thị Lanh"
    db.session.commit()
    assert verify_sample(10).fingerprint != before


def test_a_value_moved_to_another_row_is_named_as_unreadable(app):
    a, b = make_child("Nguyễn Thị Lan"), make_child("Trần Văn Minh")
    table = Child.__table__
    stolen = db.session.execute(select(table.c.full_name_ct).where(table.c.id == a.id)).scalar()
    db.session.execute(update(table).where(table.c.id == b.id).values(full_name_ct=stolen))
    db.session.commit()
    b_id = b.id
    db.session.expunge_all()
    report = verify_sample(10)
    assert not report.ok
    assert any(str(b_id) in failure for failure in report.failures), report.failures


def test_a_missing_or_altered_file_is_named(app, monkeypatch, tmp_path):
    monkeypatch.setitem(app.config, "CASEWORK_INSTANCE", str(tmp_path))
    kept = files.save_generated(
        b"x" * 1000, "a.txt", "text/plain", actor=None, owner_type="case", owner_id=tmp_path.name
    )
    gone = files.save_generated(
        b"y" * 1000, "b.txt", "text/plain", actor=None, owner_type="case", owner_id=tmp_path.name
    )
    db.session.commit()
    assert verify_sample(10).files == 2
    files.path_of(gone).unlink()
    path = files.path_of(kept)
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    report = verify_sample(10)
    assert report.files == 0
    assert {f.split(":")[0] for f in report.failures} == {f"file {kept.id}", f"file {gone.id}"}


def test_the_command_exits_1_naming_what_cannot_be_read(app, app_env):
    a, b = make_child("Nguyễn Thị Lan"), make_child("Trần Văn Minh")
    table = Child.__table__
    stolen = db.session.execute(select(table.c.full_name_ct).where(table.c.id == a.id)).scalar()
    db.session.execute(update(table).where(table.c.id == b.id).values(full_name_ct=stolen))
    db.session.commit()
    result = casework_cli(app_env, "keys", "verify-sample")
    assert result.returncode == 1
    assert "cannot read: " in result.stderr and str(b.id) in result.stderr
    assert "Nguyễn" not in result.stdout + result.stderr  # what was read is never printed


def test_a_production_server_is_set_up_and_its_key_restored_before_the_app_can_start(tmp_path):
    # Production refuses to start without its master key file: the commands that create it must not need the app.
    def production(folder: Path) -> dict[str, str]:
        return {
            "CASEWORK_CONFIG": "production",
            "CASEWORK_INSTANCE": str(folder),
            "CASEWORK_MASTER_KEY_FILE": str(folder / "master.key"),
            "CASEWORK_SECRET_KEY": "s" * 40,
            "CASEWORK_DATABASE_URL": f"sqlite:///{folder / 'db.sqlite3'}",
            "CASEWORK_ALLOW_SQLITE": "1",
        }

    first, spare = production(tmp_path / "first"), production(tmp_path / "spare")
    created = casework_cli(first, "init")
    assert created.returncode == 0, created.stderr
    key = tmp_path / "first" / "master.key"
    assert key.stat().st_mode & 0o777 == 0o600
    backup = tmp_path / "master-key.backup"
    exported = casework_cli(
        first, "keys", "export-backup", "--output", str(backup), "--passphrase-stdin", stdin="a long pass phrase\n"
    )
    assert exported.returncode == 0, exported.stderr
    (tmp_path / "spare").mkdir(mode=0o700)
    restored = casework_cli(
        spare, "keys", "import-backup", "--input", str(backup), "--output", str(tmp_path / "spare" / "master.key"),
        "--passphrase-stdin", stdin="a long pass phrase\n",
    )  # fmt: skip
    assert restored.returncode == 0, restored.stderr
    assert (tmp_path / "spare" / "master.key").read_bytes() == key.read_bytes()
