"""``make restore-test``: restore a backup into a fresh database and prove it is whole and readable.

With no arguments it first makes the backup, as docs/OPERATIONS.md says to: a throw-away PostgreSQL 15 with demo
data, one stored file and a key rotation (so the data sits under two data keys), then ``pg_dump -Fc``, the files
folder, the audit checkpoint file and ``casework keys export-backup`` under a passphrase. Given ``--dump`` (and
``--key-backup``, ``--files``, ``--checkpoints``), it restores that backup instead.

The restore goes to another throw-away PostgreSQL 15 and a new instance folder, as on a spare machine:
``pg_restore``, ``casework keys import-backup``, the files and checkpoint file put back, ``casework init``; then
``casework audit verify`` must pass, and ``casework keys verify-sample`` must decrypt a sample of every encrypted
column and every sampled file, with the same fingerprint as the source when the source is at hand. Last, a control:
the same restore with another master key must be refused, so a pass means something.

    make restore-test
    .venv/bin/python scripts/restore_test.py --cases 2000
    .venv/bin/python scripts/restore_test.py --dump casework-2026-11-23.dump --key-backup master-key.backup \\
        --files files/ --checkpoints checkpoints.log --passphrase-file pass.txt

Exit status 0 when every check passed; each step is printed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.services import PG_BIN, PostgresServer  # noqa: E402 - after the path is set

CASEWORK = Path(sys.executable).with_name("casework")
DEMO_PASSPHRASE = "restore-test passphrase, not a real one"  # noqa: S105 - the throw-away backup's passphrase


class Failed(Exception):
    pass


def step(message: str) -> None:
    print(f"--- {message}", flush=True)


def casework(env: dict[str, str], *args: str, stdin: str | None = None, expect_ok: bool = True) -> str:
    full = {k: v for k, v in os.environ.items() if not k.startswith("CASEWORK_")}
    full.update(env)
    result = subprocess.run(
        [str(CASEWORK), *args], env=full, input=stdin, capture_output=True, text=True, timeout=3600, check=False
    )
    output = (result.stdout + result.stderr).strip()
    if expect_ok and result.returncode:
        raise Failed(f"casework {' '.join(args)} exited {result.returncode}:\n{output[-3000:]}")
    if not expect_ok and result.returncode == 0:
        raise Failed(f"casework {' '.join(args)} succeeded where it had to fail:\n{output[-3000:]}")
    return output


def instance_env(database_url: str, instance: Path, config: str = "production") -> dict[str, str]:
    return {
        "CASEWORK_CONFIG": config,
        "CASEWORK_INSTANCE": str(instance),
        "CASEWORK_DATABASE_URL": database_url,
        "CASEWORK_SECRET_KEY": "restore-test-" + "s" * 40,
        "CASEWORK_LOG_LEVEL": "WARNING",
        "CASEWORK_MASTER_KEY_FILE": str(instance / "master.key"),
        "CASEWORK_AUDIT_CHECKPOINT_FILE": str(instance / "audit-checkpoints.log"),
    }


def pg(server: PostgresServer, tool: str, *args: str) -> None:
    result = subprocess.run(
        [str(PG_BIN / tool), "-h", "127.0.0.1", "-p", str(server.port), "-U", "postgres", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode:
        raise Failed(f"{tool} failed: {result.stderr.strip()[-2000:]}")


def fingerprint(output: str) -> str:
    match = re.search(r"^fingerprint: ([0-9a-f]{64})$", output, re.MULTILINE)
    if not match:
        raise Failed(f"no fingerprint in:\n{output}")
    return match.group(1)


ADD_FILE = """
from casework import create_app
from casework.extensions import db
from casework.cases.models import Case
from casework.security.files import save_generated
from sqlalchemy import select
app = create_app()
with app.app_context():
    case = db.session.scalars(select(Case).order_by(Case.id).limit(1)).one()
    save_generated(b"A receipt kept with the case.\\n" * 5000, "receipt.txt", "text/plain",
                   actor=None, owner_type="case", owner_id=case.id)
    db.session.commit()
"""


def make_backup(work: Path, cases: int) -> tuple[dict[str, Path], str]:
    """Build a source database and back it up as the operations guide says; return the backup and its fingerprint."""
    source = PostgresServer().start()
    try:
        instance = work / "source-instance"
        # The embedded configuration, because production refuses demo data; the restore runs as production.
        env = instance_env(source.create_database("casework"), instance, "embedded")
        step(f"source: casework init, {cases} demo cases, a stored file, a key rotation")
        casework(env, "init")
        casework(env, "demo", "--cases", str(cases))
        full = {k: v for k, v in os.environ.items() if not k.startswith("CASEWORK_")}
        subprocess.run([sys.executable, "-c", ADD_FILE], env={**full, **env}, check=True, timeout=300)
        casework(env, "keys", "rotate", "--wait")
        casework(env, "audit", "checkpoint")
        before = casework(env, "keys", "verify-sample")
        print("    " + before.replace("\n", "\n    "))
        step("backup: pg_dump -Fc, the files folder, the checkpoint file, keys export-backup")
        backup = work / "backup"
        backup.mkdir()
        paths = {
            "dump": backup / "casework.dump",
            "key_backup": backup / "master-key.backup",
            "files": backup / "files",
            "checkpoints": backup / "audit-checkpoints.log",
        }
        pg(source, "pg_dump", "-Fc", "-f", str(paths["dump"]), "casework")
        casework(
            env, "keys", "export-backup", "--output", str(paths["key_backup"]), "--passphrase-stdin",
            stdin=DEMO_PASSPHRASE + "\n",
        )  # fmt: skip
        shutil.copytree(instance / "files", paths["files"])
        shutil.copy2(instance / "audit-checkpoints.log", paths["checkpoints"])
        return paths, fingerprint(before)
    finally:
        source.stop()  # the source is gone: the restore has only the backup


def restore(work: Path, name: str, paths: dict[str, Path | None], key: str) -> tuple[PostgresServer, dict[str, str]]:
    """Restore the backup into a fresh cluster and instance; ``key`` is "backup" or "other" (the control)."""
    server = PostgresServer().start()
    try:
        instance = work / name
        instance.mkdir(mode=0o700)
        env = instance_env(server.create_database("casework"), instance)
        pg(server, "pg_restore", "--no-owner", "--exit-on-error", "-d", "casework", str(paths["dump"]))
        if key == "backup":
            casework(
                env, "keys", "import-backup", "--input", str(paths["key_backup"]),
                "--output", str(instance / "master.key"), "--passphrase-stdin", stdin=PASSPHRASE + "\n",
            )  # fmt: skip
        if paths.get("files"):
            shutil.copytree(paths["files"], instance / "files")
        if paths.get("checkpoints"):
            shutil.copy2(paths["checkpoints"], instance / "audit-checkpoints.log")
        return server, env
    except BaseException:
        server.stop()
        raise


PASSPHRASE = DEMO_PASSPHRASE


def main(argv: list[str] | None = None) -> int:
    global PASSPHRASE  # noqa: PLW0603 - set once from the arguments
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=int(os.environ.get("RESTORE_TEST_CASES", "300")))
    parser.add_argument("--dump", type=Path, help="a pg_dump -Fc file to restore instead of a demo backup")
    parser.add_argument("--key-backup", type=Path, help="its master key backup (casework keys export-backup)")
    parser.add_argument("--files", type=Path, help="its files folder (<instance>/files)")
    parser.add_argument("--checkpoints", type=Path, help="its audit checkpoint file")
    parser.add_argument("--passphrase-file", type=Path, help="file holding the key backup's passphrase")
    parser.add_argument("--expect-fingerprint", help="the fingerprint `casework keys verify-sample` gave the source")
    args = parser.parse_args(argv)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="casework-restore-"))
    try:
        if args.dump:
            if not args.key_backup or not args.passphrase_file:
                parser.error("--dump needs --key-backup and --passphrase-file")
            PASSPHRASE = args.passphrase_file.read_text().rstrip("\r\n")
            paths = {"dump": args.dump, "key_backup": args.key_backup, "files": args.files, "checkpoints": None}
            paths["checkpoints"] = args.checkpoints
            expected = args.expect_fingerprint
        else:
            paths, expected = make_backup(work, args.cases)

        step("restore into a fresh PostgreSQL: pg_restore, keys import-backup, files and checkpoints back")
        server, env = restore(work, "restored", paths, "backup")
        try:
            print("    " + casework(env, "init").splitlines()[-1])
            step("casework audit verify")
            print("    " + casework(env, "audit", "verify").replace("\n", "\n    "))
            step("casework keys verify-sample")
            after = casework(env, "keys", "verify-sample")
            print("    " + after.replace("\n", "\n    "))
            if expected and fingerprint(after) != expected:
                raise Failed(f"the restored data differs from the source: fingerprint {fingerprint(after)}")
            if expected:
                print("    the same fingerprint as the source")
        finally:
            server.stop()

        step("control: the same restore with another master key must be refused")
        server, env = restore(work, "wrong-key", paths, "other")
        try:
            # init creates a new, unrelated master key file, then refuses to go on with it.
            refusal = casework(env, "init", expect_ok=False)
            if "does not open data key" not in refusal:
                raise Failed(f"a wrong master key was refused for another reason:\n{refusal}")
            casework(env, "audit", "verify", expect_ok=False)
            casework(env, "keys", "verify-sample", expect_ok=False)
            print("    refused: " + refusal.splitlines()[-1])
        finally:
            server.stop()
    except Failed as exc:
        print(f"RESTORE TEST FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"restore test passed in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
