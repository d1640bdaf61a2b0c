"""The ``casework`` command: init, users, serve, worker, demo, units.

Each command fails with a clear message and a non-zero status on bad arguments or a refused configuration.
"""

from __future__ import annotations

import gc
import os
import sys
from datetime import date

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext

import config as casework_config


def _create_app():
    from casework import create_app

    try:
        return create_app()
    except casework_config.ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@click.group(cls=FlaskGroup, create_app=_create_app, add_default_commands=False, add_version_option=False)
def main() -> None:
    """casework: child-protection case management."""


# --- init -------------------------------------------------------------------------------------------------------


def ensure_instance(settings: casework_config.Settings) -> list[str]:
    """Create the instance folder and the master key file (mode 0600) when absent; return what was created."""
    created = []
    if not settings.instance.exists():
        settings.instance.mkdir(parents=True, mode=0o700)
        created.append(f"instance folder {settings.instance}")
    from casework.security.keys import write_master_key_file

    key_file = settings.key_file
    if settings.master_key:
        return created  # the master key comes from CASEWORK_MASTER_KEY
    if not key_file.exists():
        write_master_key_file(key_file)
        created.append(f"master key {key_file} (mode 0600: back it up, see README)")
    elif key_file.stat().st_mode & 0o077:
        raise click.ClickException(f"{key_file} is readable by other users; run: chmod 600 {key_file}")
    return created


@main.command("init", with_appcontext=False)  # it creates what the app needs to start
def init_command() -> None:
    """Create or upgrade the database, load administrative units, create the instance folder and key file."""
    try:
        settings = casework_config.load()
    except casework_config.ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    created = ensure_instance(settings)
    app = _create_app()
    with app.app_context():
        from flask_migrate import upgrade

        from casework.extensions import db
        from casework.locations.operations import load_units
        from casework.security.keys import ensure_data_key, keyring

        upgrade()
        new_key = ensure_data_key(keyring())
        report = load_units()
        db.session.commit()
        if new_key is not None:
            created.append(f"data key {new_key.id}")
        if db.engine.url.get_backend_name() == "sqlite" and db.engine.url.database:
            # The embedded database holds children's records: only its owner may read it.
            os.chmod(db.engine.url.database, 0o600)
    for line in created:
        click.echo(f"created {line}")
    click.echo("database is at the latest migration")
    for table, counts in report.items():
        click.echo(f"{table}: {counts['added']} added, {counts['updated']} updated")


# --- users ------------------------------------------------------------------------------------------------------


@main.group("users")
def users_group() -> None:
    """Manage user accounts."""


@users_group.command("create")
@click.option("--username", required=True, help="Lower-case letters, digits, '.', '_' or '-'.")
@click.option(
    "--role",
    required=True,
    type=click.Choice(["social_worker", "supervisor", "provincial_officer", "committee_member", "auditor", "admin"]),
)
@click.option("--province", "province_code", required=True, help="Official province code, e.g. 22.")
@click.option("--commune", "communes", multiple=True, help="Official commune code (repeat for several).")
@click.option("--full-name", default="", help="The person's name.")
@click.option("--password-stdin", is_flag=True, required=True, help="Read the password from standard input.")
@with_appcontext
def users_create(username, role, province_code, communes, full_name, password_stdin) -> None:
    """Create a user account; for a role with a second factor, print the otpauth:// URI to enrol it."""
    from casework.auth import operations, second_factor
    from casework.errors import ValidationFailed
    from casework.extensions import db

    password = sys.stdin.readline().rstrip("\r\n")
    try:
        user = operations.create_user(
            username=username,
            password=password,
            role=role,
            province_code=province_code,
            commune_codes=communes,
            full_name=full_name,
        )
    except ValidationFailed as exc:
        db.session.rollback()
        for field, messages in exc.errors.items():
            for message in messages:
                click.echo(f"error: {field}: {message}", err=True)
        raise SystemExit(2) from None
    uri = None
    if second_factor.is_required(user):
        second_factor.issue_secret(user)
        uri = second_factor.provisioning_uri(user)
    db.session.commit()
    click.echo(
        f"created {user.username} ({user.role}, province {user.province_code}"
        + (f", communes {', '.join(user.commune_codes)}" if user.commune_codes else "")
        + ")"
    )
    if uri:
        _echo_enrolment(user.username, uri)


def _echo_enrolment(username: str, uri: str) -> None:
    click.echo(f"{username} signs in with a second factor. Add this URI to their authenticator app (or a QR code):")
    click.echo(f"  {uri}")
    click.echo("At the first sign-in they confirm it with a code and receive their recovery codes.")


@users_group.command("list")
@with_appcontext
def users_list() -> None:
    """List user accounts."""
    from sqlalchemy import select

    from casework.auth.models import User
    from casework.extensions import db

    for user in db.session.scalars(select(User).order_by(User.province_code, User.username)):
        state = "active" if user.active else "inactive"
        click.echo(f"{user.username}\t{user.role}\t{user.province_code}\t{','.join(user.commune_codes)}\t{state}")


@users_group.command("unlock")
@click.argument("username")
@with_appcontext
def users_unlock(username: str) -> None:
    """Lift a sign-in lock."""
    from sqlalchemy import select

    from casework.auth import operations
    from casework.auth.models import User
    from casework.extensions import db

    user = db.session.scalar(select(User).where(User.username == username))
    if user is None:
        raise click.ClickException(f"no user {username!r}")
    operations.unlock(user)
    db.session.commit()
    click.echo(f"unlocked {username}")


@users_group.command("reset-2fa")
@click.argument("username")
@with_appcontext
def users_reset_2fa(username: str) -> None:
    """Forget a user's second factor (a lost phone): secret, recovery codes, sessions and API tokens."""
    from sqlalchemy import select

    from casework.auth import second_factor
    from casework.auth.models import User
    from casework.extensions import db

    user = db.session.scalar(select(User).where(User.username == username.strip().lower()))
    if user is None:
        raise click.ClickException(f"no user {username!r}")
    uri = second_factor.reset(user)
    db.session.commit()
    click.echo(f"second factor of {user.username} reset; their sessions and API tokens have ended")
    if uri:
        _echo_enrolment(user.username, uri)


# --- units ------------------------------------------------------------------------------------------------------


@main.group("units")
def units_group() -> None:
    """Administrative units."""


@units_group.command("merge")
@click.option("--commune", required=True, help="Code of the commune that ceases to exist.")
@click.option("--into", required=True, help="Code of the commune that takes it over.")
@click.option(
    "--from",
    "on",
    required=True,
    type=click.DateTime(formats=["%Y-%m-%d", "%d/%m/%Y"]),
    help="Date of the merger (YYYY-MM-DD or dd/mm/yyyy).",
)
@with_appcontext
def units_merge(commune: str, into: str, on) -> None:
    """Record that a commune was merged into another from a date."""
    from casework.errors import ValidationFailed
    from casework.extensions import db
    from casework.locations.operations import mark_commune_merged

    try:
        mark_commune_merged(commune, into, on.date() if hasattr(on, "date") else date.fromisoformat(on))
    except ValidationFailed as exc:
        db.session.rollback()
        raise click.ClickException("; ".join(str(m) for ms in exc.errors.values() for m in ms)) from None
    db.session.commit()
    click.echo(f"{commune} merged into {into} from {on:%d/%m/%Y}")


@main.group("caseloads")
def caseloads_group() -> None:
    """Workers' caseloads."""


@caseloads_group.command("recount")
@with_appcontext
def caseloads_recount() -> None:
    """Count each worker's open cases afresh and put right the totals their home pages show (kept by the
    database's triggers; needed only after work that bypassed them)."""
    from casework.cases.operations import recount_open_caseloads
    from casework.extensions import db

    wrong = recount_open_caseloads()
    db.session.commit()
    for worker_id, commune, kept, counted in wrong:
        click.echo(f"worker {worker_id} in {commune}: {kept} -> {counted}")
    click.echo(f"{len(wrong)} open-case totals put right" if wrong else "open-case totals right")


# --- keys: on the command itself, not the app's, so that `keys import-backup` restores a server whose app cannot
# start yet (production refuses to start without its master key file) ---------------------------------------------

from casework.security.cli import keys_group  # noqa: E402 - grouped with its section

main.add_command(keys_group)


# --- serve, worker ------------------------------------------------------------------------------------------------


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--threads", default=4, show_default=True, type=click.IntRange(1, 64))
def serve(host: str, port: int, workers: int, threads: int) -> None:
    """Serve casework with gunicorn."""
    from gunicorn.app.base import BaseApplication

    app = _create_app()

    class Server(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("threads", threads)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("accesslog", "-")
            # The path without its query string: a search's query holds a child's name, which no log may keep.
            self.cfg.set("access_log_format", '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms')
            self.cfg.set("timeout", 60)
            self.cfg.set("pre_fork", _pre_fork)
            self.cfg.set("post_fork", _post_fork)

        def load(self):
            return app

    def _pre_fork(server, worker):
        # The application's 190,000 long-lived objects (modules, mappers, code lists) out of the cyclic garbage
        # collector's reach: each full collection walked them all, 70-80 ms in one process at every third name
        # search of a province (measured at 1,000,000 cases). It also keeps the memory pages the workers share with
        # the master from being copied.
        gc.freeze()

    def _post_fork(server, worker):
        from casework.extensions import db

        with app.app_context():
            db.engine.dispose(close=False)  # each worker opens its own connections

    Server().run()


@main.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
def worker(burst: bool) -> None:
    """Run background jobs from Redis (needs CASEWORK_REDIS_URL), and the deadline check every few minutes."""
    from casework.jobs.worker import work

    app = _create_app()
    if not burst:
        from casework.notifications.schedule import ensure_scheduled

        with app.app_context():
            ensure_scheduled()  # the next run of the deadline check, unless already scheduled (no Redis: nothing)
    gc.freeze()  # as before gunicorn's forks (serve): the job's work horse, forked from here, skips them
    work(app, burst=burst)


@main.command("tick")
@with_appcontext
def tick() -> None:
    """Send the deadline reminders and alerts that are due (safe to run from cron every few minutes, even twice), and
    compute the dashboards of provinces whose data changed."""
    from casework.extensions import db
    from casework.notifications import operations

    result = operations.tick()
    db.session.commit()
    click.echo(f"deadline check: {result.reminders} reminders, {result.alerts} alerts sent")
    from casework.stats import operations as stats

    refreshed = stats.refresh_stale()
    db.session.commit()
    click.echo(f"statistics: {refreshed} dashboard views computed ahead of their viewers")


# --- demo ---------------------------------------------------------------------------------------------------------


@main.group("demo", invoke_without_command=True)
@click.option("--first-run", is_flag=True, help="Seed users, and cases, only where the database has none yet.")
@click.option(
    "--cases",
    "case_count",
    default=0,
    show_default=True,
    type=click.IntRange(0, 1_000_000),
    help="Synthetic children and cases to generate (0: users only).",
)
@click.option("--seed", type=click.IntRange(0), default=None, help="Seed of the generator (default: random, printed).")
@with_appcontext
@click.pass_context
def demo(ctx: click.Context, first_run: bool, case_count: int, seed: int | None) -> None:
    """Create demo users of every role and, with --cases, synthetic cases (not in production); print the logins."""
    import secrets

    from sqlalchemy import func, select

    from casework import demo as demo_data
    from casework.auth.models import User
    from casework.cases.models import Case
    from casework.extensions import db

    _refuse_demo_in_production()
    if ctx.invoked_subcommand is not None:
        return
    if first_run and db.session.scalar(select(func.count(User.id))):
        click.echo("demo data: already seeded")
    else:
        created = demo_data.seed_users()
        from datetime import date

        programmes = demo_data.seed_programmes(date.today().year)
        db.session.commit()
        click.echo(f"demo data: {len(created)} users and {programmes} programmes created")
    if case_count and first_run and db.session.scalar(select(Case.id).limit(1)) is not None:
        click.echo("demo data: cases already present")
    elif case_count:
        from casework.cases import demo_data as synthetic

        seed = secrets.randbelow(2**31) if seed is None else seed

        def progress(done: int, total: int) -> None:
            if total >= 10_000 and (done % 10_000 < synthetic.CHUNK_SIZE or done == total):
                click.echo(f"  {done}/{total} cases", err=True)

        try:
            generated = synthetic.generate(case_count, seed=seed, progress=progress)
        except LookupError as exc:
            db.session.rollback()
            raise click.ClickException(str(exc)) from None
        plans = demo_data.seed_support(seed)
        payments = demo_data.seed_payments(seed)
        from casework.stats import snapshots

        snapshots.bump_all()  # the bulk load bypassed the session: computed statistics are out of date
        db.session.commit()
        stages = ", ".join(f"{stage} {generated.by_stage.get(stage, 0)}" for stage in synthetic.STAGES)
        click.echo(
            f"demo data: {generated.cases} cases generated in {generated.seconds:.1f}s (seed {seed}): {stages}; "
            f"{plans} support plans with their services, {payments} payments"
        )
    click.echo(f"Demo logins (password for each: {demo_data.DEMO_PASSWORD}):")
    for user in demo_data.DEMO_USERS:
        secret = demo_data.DEMO_TOTP_SECRETS.get(user.username)
        click.echo((f"  {user.username:<11} {user.role:<19}" + (f" code key {secret}" if secret else "")).rstrip())
    click.echo(
        "Roles with a code key sign in with a second factor: add the key to an authenticator app "
        "(time-based, 6 digits), or print the current code with `casework demo code USERNAME`."
    )


def _refuse_demo_in_production() -> None:
    if current_app.config["CASEWORK_CONFIG"] == "production":
        raise click.ClickException("demo data is refused in the production configuration")


@demo.command("code")
@click.argument("username")
@with_appcontext
def demo_code(username: str) -> None:
    """Print the current sign-in code of a demo account (not in production)."""
    from casework import demo as demo_data

    _refuse_demo_in_production()
    try:
        code = demo_data.current_code(username)
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(code)


# --- jobs ---------------------------------------------------------------------------------------------------------


@main.group("jobs")
def jobs_group() -> None:
    """Background jobs."""


@jobs_group.command("check")
@click.option("--timeout", default=60, show_default=True, type=click.IntRange(1, 3600), help="Seconds to wait.")
@with_appcontext
def jobs_check(timeout: int) -> None:
    """Run a small job and wait for it: proves that Redis and a worker (or inline mode) work."""
    import time

    from casework import jobs
    from casework.extensions import db
    from casework.jobs.models import Job

    job = jobs.launch("jobs.selfcheck", steps=3)
    mode = "inline" if jobs.redis_connection() is None else "rq worker"
    deadline = time.monotonic() + timeout
    while True:
        db.session.expire_all()
        job = db.session.get(Job, job.id)
        if job.done or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if job.status != "finished":
        raise click.ClickException(
            f"job {job.id} is {job.status} after {timeout}s ({mode}); is `casework worker` running?"
        )
    click.echo(f"job {job.id} finished ({mode})")


# --- audit --------------------------------------------------------------------------------------------------------


@main.group("audit")
def audit_group() -> None:
    """The tamper-evident audit trail."""


@audit_group.command("verify")
@click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(1, 100000), help="Events per read.")
@with_appcontext
def audit_verify(batch_size: int) -> None:
    """Check every event, link and checkpoint; exit 1 naming the first bad event."""
    from casework.audit import verify

    try:
        result = verify(batch_size=batch_size)
    except casework_config.ConfigError as exc:  # no master key: the audit keys come from it
        raise click.ClickException(str(exc)) from None
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    if not result.ok:
        click.echo(result.summary(), err=True)
        raise SystemExit(1)
    click.echo(result.summary())


@audit_group.command("checkpoint")
@with_appcontext
def audit_checkpoint() -> None:
    """Sign a checkpoint at the newest event now (run it from cron to narrow what truncation could hide)."""
    from casework.audit import write_checkpoint
    from casework.extensions import db

    try:
        written = write_checkpoint()
        db.session.commit()
    except casework_config.ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if written is None:
        click.echo("the audit trail is empty: no checkpoint written")
    elif written[1]:
        click.echo(f"checkpoint signed at event {written[0]}")
    else:
        click.echo(f"event {written[0]} already has a checkpoint")


# --- stats --------------------------------------------------------------------------------------------------------


@main.command("stats")
@click.option("--province", "province_code", required=True, help="Official province code, e.g. 22.")
@click.option("--from", "date_from", required=True, help="First day of the period (YYYY-MM-DD or dd/mm/yyyy).")
@click.option("--to", "date_to", required=True, help="Last day of the period (YYYY-MM-DD or dd/mm/yyyy).")
@click.option("--commune", "commune_code", default=None, help="A commune of the province (default: all of it).")
@click.option(
    "--breakdown",
    type=click.Choice(["commune", "sex", "age_band", "ethnicity", "disability"]),
    default=None,
    help="The columns of every indicator (default: none).",
)
@click.option("--format", "fmt", required=True, type=click.Choice(["csv", "xlsx", "json"]), help="The file's format.")
@click.option("--output", required=True, type=click.Path(dir_okay=False), help="The file to write (replaced).")
@click.option(
    "--as",
    "username",
    default=None,
    help="Run as this user: their province only, and their suppression (a provincial officer of the province gets "
    "the numbers unsuppressed). Without it, the output is suppressed as for a committee member.",
)
@with_appcontext
def stats_command(province_code, date_from, date_to, commune_code, breakdown, fmt, output, username) -> None:
    """Write a province's indicators for a period (with the previous period) as CSV, XLSX or JSON.

    Disclosure control applies as on the pages: without --as, counts from 1 to CASEWORK_STATS_MIN_COUNT - 1 are
    written as "<k" and numbers that would give them away as "×", since the file may leave the building. With
    --as USERNAME the user's own rights apply: only a committee member or provincial officer of the province is
    served, and only a provincial officer gets the numbers as they are. The export is recorded in the audit trail.
    """
    import json

    from flask_babel import force_locale
    from sqlalchemy import select

    from casework.auth.models import User
    from casework.errors import PermissionDenied, ValidationFailed
    from casework.extensions import db
    from casework.stats import operations

    def refuse(exc: ValidationFailed) -> click.ClickException:
        with force_locale("en"):  # the command speaks English, like the others; the files are in Vietnamese
            return click.ClickException("; ".join(f"{name}: {m}" for name, ms in exc.errors.items() for m in ms))

    with force_locale("vi"):
        viewer = None
        if username is not None:
            viewer = db.session.scalar(select(User).where(User.username == username.strip().lower()))
            if viewer is None or not viewer.active:
                raise click.ClickException(f"no active user {username!r}")
        try:
            period = operations.choose_period("custom", date_from=date_from, date_to=date_to)
            if viewer is None:
                report = operations.operator_report(
                    province_code.strip(), period, commune_code=commune_code, dimension=breakdown
                )
            else:
                report = operations.report(
                    viewer, province_code.strip(), period, commune_code=commune_code, dimension=breakdown
                )
        except ValidationFailed as exc:
            db.session.rollback()
            raise refuse(exc) from None
        except PermissionDenied:
            db.session.rollback()
            message = f"refused: {username} may not see the statistics of province {province_code}"
            raise click.ClickException(message) from None
        if fmt == "json":
            data = json.dumps(report.as_dict(), ensure_ascii=False, indent=2).encode("utf-8")
        elif fmt == "csv":
            data = operations.to_csv(report)
        else:
            data = operations.to_xlsx(report)
        try:
            # Unsuppressed numbers are for the province's officers: the file is readable by its owner only.
            descriptor = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "wb") as fh:
                fh.write(data)
        except OSError as exc:
            db.session.rollback()
            raise click.ClickException(f"cannot write {output}: {exc.strerror}") from None
        operations.record_export(viewer, report, fmt)
        db.session.commit()
    state = f"suppressed (k={report.k})" if report.suppressing else "NOT suppressed: for the province only"
    click.echo(f"wrote {output}: {len(report.indicators)} indicators, {report.period.label()}, {state}")
