"""``casework keys``: rotation, status, retirement and backup of keys."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from casework.errors import DomainError


def _read_passphrase(from_stdin: bool, *, confirm: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt("Passphrase", hide_input=True, confirmation_prompt=confirm)


@click.group("keys")
def keys_group() -> None:
    """Data keys and the master key."""


@keys_group.command("status")
@with_appcontext
def status() -> None:
    """Show each data key and how many values, index entries and files it still protects."""
    from casework.security import rotation
    from casework.security.keys import keyring

    click.echo(f"{'key':<10}{'status':<9}{'values':>8}{'index':>8}{'files':>7}  {'pairs':<7}created")
    rows = rotation.key_status(keyring())
    for row in rows:
        click.echo(
            f"{row['id']:<10}{row['status']:<9}{row['values']:>8}{row['index_entries']:>8}{row['files']:>7}  "
            f"{'yes' if row['pair_terms'] else 'no':<7}{row['created_at']:%Y-%m-%d %H:%M}"
        )
    if any(not row["pair_terms"] for row in rows if row["status"] != "retired"):
        click.echo(
            "A readable key's search index has no pairs of name words, so name searches go word by word (slower "
            "at scale): rotate the key and retire the old one (docs/OPERATIONS.md, Upgrades)."
        )


@keys_group.command("verify-sample")
@click.option("--per-table", default=50, show_default=True, type=click.IntRange(1, 100000), help="Rows per table.")
@with_appcontext
def verify_sample(per_table: int) -> None:
    """Decrypt a sample of every encrypted column and stored file; print a fingerprint of what was read (the same
    before a backup and after its restore). Exit 1 naming each value or file that cannot be read."""
    from casework.extensions import db
    from casework.security.sample import verify_sample as check

    report = check(per_table)
    db.session.commit()
    for failure in report.failures:
        click.echo(f"cannot read: {failure}", err=True)
    click.echo(f"{report.values} values and {report.files} files decrypted, {len(report.failures)} failures")
    click.echo(f"fingerprint: {report.fingerprint}")
    if not report.ok:
        raise SystemExit(1)


def _launch_reencryption(wait: bool, timeout: int = 3600) -> None:
    import time

    from casework import jobs
    from casework.extensions import db
    from casework.jobs.models import Job

    job = jobs.launch("security.reencrypt")
    click.echo(f"re-encryption job {job.id} ({'inline' if jobs.redis_connection() is None else 'queued'})")
    deadline = time.monotonic() + timeout
    while wait and not job.done:
        if time.monotonic() > deadline:
            raise click.ClickException(f"job {job.id} not finished after {timeout}s; is `casework worker` running?")
        time.sleep(1)
        db.session.expire_all()
        job = db.session.get(Job, job.id)
        click.echo(f"  {job.progress}% {job.message}")
    if job.status == "failed":
        raise click.ClickException(f"re-encryption failed: {job.error.splitlines()[-1] if job.error else ''}")
    if job.done:
        click.echo(f"re-encryption {job.status}: {job.result}")


@keys_group.command("rotate")
@click.option("--wait", is_flag=True, help="Wait for the re-encryption job to finish.")
@with_appcontext
def rotate(wait: bool) -> None:
    """Make a new current data key and re-encrypt every value under it in the background."""
    from casework import audit
    from casework.extensions import db
    from casework.security import rotation
    from casework.security.keys import keyring

    key = rotation.rotate(keyring())
    audit.record("keys.rotate", object_type="data_key", object_id=key.id)
    db.session.commit()
    click.echo(f"new current data key {key.id}")
    _launch_reencryption(wait)


@keys_group.command("reencrypt")
@click.option("--wait", is_flag=True, help="Wait for the job to finish.")
@with_appcontext
def reencrypt(wait: bool) -> None:
    """Resume (or repeat) re-encryption under the current key; it only touches what is still to do."""
    _launch_reencryption(wait)


@keys_group.command("retire")
@click.argument("key_id")
@with_appcontext
def retire(key_id: str) -> None:
    """Erase a data key that no value, index entry or file uses any more."""
    from casework import audit
    from casework.extensions import db
    from casework.security import rotation
    from casework.security.keys import keyring

    try:
        rotation.retire(keyring(), key_id)
    except DomainError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc.message)) from None
    audit.record("keys.retire", object_type="data_key", object_id=key_id)
    db.session.commit()
    click.echo(f"data key {key_id} retired")


@keys_group.command("export-backup")
@click.option("--output", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Backup file to write.")
@click.option("--passphrase-stdin", is_flag=True, help="Read the passphrase from standard input.")
@with_appcontext
def export_backup(output: Path, passphrase_stdin: bool) -> None:
    """Write the master key wrapped under a passphrase. Without the master key the data is lost: keep this safe."""
    import os

    from casework.security import rotation
    from casework.security.keys import read_master_key

    if output.exists():
        raise click.ClickException(f"{output} exists; choose another file")
    passphrase = _read_passphrase(passphrase_stdin, confirm=True)
    try:
        text = rotation.export_backup(read_master_key(current_app), passphrase)
    except DomainError as exc:
        raise click.ClickException(str(exc.message)) from None
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text + "\n")
    click.echo(f"master key backup written to {output} (mode 0600); store it apart from the database backups")


@keys_group.command("import-backup")
@click.option("--input", "source", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--output", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Key file to create.")
@click.option("--passphrase-stdin", is_flag=True, help="Read the passphrase from standard input.")
def import_backup(source: Path, output: Path, passphrase_stdin: bool) -> None:
    """Recreate a master key file from a backup (restoring a server)."""
    from casework.security import rotation

    if output.exists():
        raise click.ClickException(f"{output} exists; refusing to overwrite a key file")
    passphrase = _read_passphrase(passphrase_stdin, confirm=False)
    try:
        key = rotation.import_backup(source.read_text(), passphrase)
    except DomainError as exc:
        raise click.ClickException(str(exc.message)) from None
    rotation.write_key_file(output, key)
    click.echo(f"master key restored to {output} (mode 0600)")
