"""casework: case management for child protection in Vietnam."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

import config as casework_config

ROOT = Path(__file__).resolve().parent.parent


def _tune_sqlite(engine) -> None:
    """Enforce foreign keys and let readers work beside a writer (WAL) on the embedded database."""
    if engine.dialect.name != "sqlite":
        return
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()


def create_app(config: str | casework_config.Settings | Mapping[str, Any] | None = None) -> Flask:
    """Build the casework application.

    :param config: a configuration name (``embedded``, ``testing``, ``production``), a
        :class:`config.Settings`, or a mapping of Flask settings applied on top of the environment's.
    :raises config.ConfigError: the configuration is unsafe or incomplete; the message names the setting.
    """
    overrides: Mapping[str, Any] = {}
    if isinstance(config, casework_config.Settings):
        settings = config
    elif isinstance(config, str) or config is None:
        settings = casework_config.load(config)
    else:
        overrides = config
        settings = casework_config.load(overrides.get("CASEWORK_CONFIG"))
    settings.validate()

    app = Flask(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder="static",
        instance_path=str(settings.instance),
    )
    from casework.security.files import UploadRequest

    # Uploads stay in memory until the file store has encrypted them: never a plaintext temporary file.
    app.request_class = UploadRequest
    app.config.update(settings.flask_config())
    app.config.update(overrides)
    logging.basicConfig(level=app.config["CASEWORK_LOG_LEVEL"], format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)

    from casework import i18n
    from casework.extensions import babel, csrf, db, limiter, login_manager, migrate

    db.init_app(app)
    with app.app_context():
        _tune_sqlite(db.engine)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"), render_as_batch=True, compare_type=True)
    csrf.init_app(app)
    babel.init_app(app, locale_selector=i18n.select_locale, timezone_selector=i18n.select_timezone)
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config["CASEWORK_REDIS_URL"] or "memory://")
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    if app.config["CASEWORK_REDIS_URL"]:
        # Redis down: sign-in stays limited, per process in memory, until Redis answers again; never a 500.
        app.config.setdefault("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", True)
        app.config.setdefault("RATELIMIT_SWALLOW_ERRORS", True)
        app.config.setdefault("RATELIMIT_STORAGE_OPTIONS", {"socket_connect_timeout": 2, "socket_timeout": 2})
    limiter.init_app(app)

    # Audit trail: request ids (before any other before_request hook), automatic events. --------------------------
    from casework import audit

    audit.init_app(app)
    # --------------------------------------------------------------------------------------------------------------

    from casework import models  # noqa: F401 - every model registered on the metadata
    from casework.payments import operations as payments
    from casework.support import operations as _support  # noqa: F401 - registers the plan's review deadline

    payments.register_timeline()  # a case's payments appear on its timeline
    from casework.stats import snapshots

    snapshots.init_app(app)  # a change to what the indicators read makes its province's snapshots out of date
    from casework.workflow import registry as workflows

    workflows.init_app(app)  # a broken definition stops start-up here, naming the file and the problem
    from casework.auth import session as auth_session

    auth_session.init_app(app, login_manager)

    from casework.security import headers, keys

    headers.init_app(app)
    keys.init_app(app)

    from casework.api import bp as api_bp
    from casework.auth.views import bp as auth_bp
    from casework.jobs.views import bp as jobs_bp
    from casework.main.views import bp as main_bp

    app.register_blueprint(main_bp)
    app.register_blueprint(auth_bp)
    app.register_blueprint(jobs_bp)
    app.register_blueprint(api_bp)

    from casework.audit.views import bp as audit_bp  # audit trail: the auditor's pages
    from casework.cases.import_views import bp as imports_bp
    from casework.cases.views import bp as cases_bp

    app.register_blueprint(audit_bp)
    app.register_blueprint(cases_bp)
    app.register_blueprint(imports_bp)

    from casework.notifications.views import bp as notifications_bp  # the inbox and the unread count

    app.register_blueprint(notifications_bp)

    from casework.support.views import bp as support_bp  # the procedure page and the timeline

    app.register_blueprint(support_bp)

    from casework.support.print_views import bp as printing_bp  # the legal forms, printable and as PDF

    app.register_blueprint(printing_bp)

    from casework.workflow.views import bp as workflows_bp  # the workflows drawn as diagrams, read-only

    app.register_blueprint(workflows_bp)

    from casework.payments.views import bp as payments_bp  # payment requests, decisions, ledgers, the XLSX

    app.register_blueprint(payments_bp)

    from casework.stats.views import bp as stats_bp  # the statistics dashboard and its exports (and the export job)

    app.register_blueprint(stats_bp)

    from casework.api import init_error_handlers

    init_error_handlers(app)

    from casework.security import input_guard

    input_guard.init_app(app)  # text holding NUL (PostgreSQL cannot store it): a 400 before any view

    from casework import unavailable

    unavailable.init_app(app)  # the database out of reach: a 503 that says to try again, not a 500

    from casework.main import templating

    templating.init_app(app)
    return app
