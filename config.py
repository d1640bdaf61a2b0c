"""casework configuration.

Three configurations share one set of settings, read from environment variables prefixed ``CASEWORK_``:

- ``embedded`` (the default): SQLite and a key file in the instance folder; what ``make serve`` runs.
- ``testing``: the embedded configuration with cheap password hashing; the tests pass their own database URL.
- ``production``: refuses to start with a default secret, with SQLite (unless ``CASEWORK_ALLOW_SQLITE=1``)
  or without a key file, and names the missing setting.

``CASEWORK_CONFIG`` chooses one (``embedded``, ``testing`` or ``production``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The secret used when none is set. Production refuses to start with it.
DEFAULT_SECRET_KEY = "casework-embedded-not-secret"  # noqa: S105 - a marker refused in production


class ConfigError(RuntimeError):
    """A setting is missing or unsafe; the message names it."""


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(f"CASEWORK_{name}")
    return value if value not in (None, "") else default


def _env_int(name: str, default: int) -> int:
    raw = _env(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"CASEWORK_{name} must be a whole number, not {raw!r}") from None


def _env_bool(name: str, default: bool = False) -> bool:
    raw = _env(name)
    if raw is None:
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


@dataclass
class Settings:
    """Every setting casework reads, with its environment variable in the comment."""

    name: str = "embedded"
    instance: Path = field(default_factory=lambda: Path("instance").resolve())  # CASEWORK_INSTANCE
    secret_key: str = DEFAULT_SECRET_KEY  # CASEWORK_SECRET_KEY
    database_url: str | None = None  # CASEWORK_DATABASE_URL (default: SQLite in the instance folder)
    replica_url: str | None = None  # CASEWORK_REPLICA_URL (statistics read replica)
    redis_url: str | None = None  # CASEWORK_REDIS_URL (no Redis: background jobs run inline)
    master_key_file: Path | None = None  # CASEWORK_MASTER_KEY_FILE (default: <instance>/master.key)
    master_key: str | None = None  # CASEWORK_MASTER_KEY (base64; instead of the file, e.g. from a secret store)
    blind_index_bits: int = 32  # CASEWORK_BLIND_INDEX_BITS (16..63: fewer bits, more collisions, less leakage)
    allow_sqlite: bool = True  # CASEWORK_ALLOW_SQLITE (production only)
    session_idle_minutes: int = 30  # CASEWORK_SESSION_IDLE_MINUTES
    login_max_failures: int = 5  # CASEWORK_LOGIN_MAX_FAILURES
    login_lock_minutes: int = 15  # CASEWORK_LOGIN_LOCK_MINUTES
    api_token_hours: int = 8  # CASEWORK_API_TOKEN_HOURS
    max_upload_mb: int = 20  # CASEWORK_MAX_UPLOAD_MB (largest attachment; a request may be 1 MB more, for the form)
    reauth_minutes: int = 15  # CASEWORK_REAUTH_MINUTES (a second-factor check stays fresh this long)
    login_rate_limit: str = "30 per minute"  # CASEWORK_LOGIN_RATE_LIMIT (per client address, sign-in and tokens)
    default_locale: str = "vi"  # CASEWORK_DEFAULT_LOCALE
    timezone: str = "Asia/Ho_Chi_Minh"  # CASEWORK_TIMEZONE
    log_level: str = "INFO"  # CASEWORK_LOG_LEVEL
    audit_checkpoint_every: int = 100  # CASEWORK_AUDIT_CHECKPOINT_EVERY (events between signed checkpoints)
    audit_checkpoint_file: Path | None = None  # CASEWORK_AUDIT_CHECKPOINT_FILE (default: in the instance folder)
    workflows_dir: Path | None = None  # CASEWORK_WORKFLOWS_DIR (default: workflows/ in the checkout)
    reminder_hours: int = 24  # CASEWORK_REMINDER_HOURS (remind the assigned worker this long before a deadline)
    tick_minutes: int = 5  # CASEWORK_TICK_MINUTES (how often the rq scheduler runs the deadline check)
    job_lease_seconds: int = 120  # CASEWORK_JOB_LEASE_SECONDS (a job whose worker is silent this long is run again)
    stats_stale_minutes: int = 15  # CASEWORK_STATS_STALE_MINUTES (the dashboard may show figures this old, saying so)
    stats_min_count: int = 5  # CASEWORK_STATS_MIN_COUNT (k: published counts from 1 to k-1 are hidden as "<k")
    payment_ceiling_vnd: int = 100_000_000  # CASEWORK_PAYMENT_CEILING_VND (the largest amount one request may ask)
    argon2_time_cost: int = 3
    argon2_memory_cost: int = 65536
    secure_cookies: bool = False
    testing: bool = False

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{self.instance / 'casework.sqlite3'}"

    @property
    def key_file(self) -> Path:
        return self.master_key_file or self.instance / "master.key"

    @property
    def checkpoint_file(self) -> Path:
        return self.audit_checkpoint_file or self.instance / "audit-checkpoints.log"

    def flask_config(self) -> dict[str, Any]:
        """Translate the settings into Flask's configuration keys."""
        url = self.sqlalchemy_url
        # A database host that does not answer (rather than refusing) fails a request in 5 s with a 503, instead of
        # holding a gunicorn thread until the operating system gives up on the connection.
        # No server-side prepared statements: after five runs of a query psycopg prepares it, and PostgreSQL may then
        # plan it once for any parameters. A search term's rows range from ten to a hundred thousand; the generic
        # plan counted a common word's rows in 100 ms where the plan for that word takes 5 ms (1,000,000 cases).
        engine_options: dict[str, Any] = {
            "pool_pre_ping": True,
            "connect_args": {"connect_timeout": 5, "prepare_threshold": None},
        }
        if url.startswith("sqlite"):
            # One writer at a time; wait for the lock instead of failing at once.
            engine_options = {"connect_args": {"timeout": 30}}
        return {
            "CASEWORK_CONFIG": self.name,
            "SECRET_KEY": self.secret_key,
            "TESTING": self.testing,
            "SQLALCHEMY_DATABASE_URI": url,
            "SQLALCHEMY_ENGINE_OPTIONS": engine_options,
            "SQLALCHEMY_BINDS": {"replica": self.replica_url} if self.replica_url else {},
            "CASEWORK_INSTANCE": str(self.instance),
            "CASEWORK_REDIS_URL": self.redis_url,
            "CASEWORK_KEY_FILE": str(self.key_file),
            "CASEWORK_MASTER_KEY": self.master_key,
            "CASEWORK_BLIND_INDEX_BITS": self.blind_index_bits,
            "CASEWORK_SESSION_IDLE_MINUTES": self.session_idle_minutes,
            "CASEWORK_LOGIN_MAX_FAILURES": self.login_max_failures,
            "CASEWORK_LOGIN_LOCK_MINUTES": self.login_lock_minutes,
            "CASEWORK_API_TOKEN_HOURS": self.api_token_hours,
            "CASEWORK_REAUTH_MINUTES": self.reauth_minutes,
            "CASEWORK_LOGIN_RATE_LIMIT": self.login_rate_limit,
            "CASEWORK_TIMEZONE": self.timezone,
            "CASEWORK_LOG_LEVEL": self.log_level,
            "CASEWORK_AUDIT_CHECKPOINT_EVERY": self.audit_checkpoint_every,
            "CASEWORK_AUDIT_CHECKPOINT_FILE": str(self.checkpoint_file),
            "CASEWORK_WORKFLOWS_DIR": str(self.workflows_dir or Path(__file__).resolve().parent / "workflows"),
            "CASEWORK_REMINDER_HOURS": self.reminder_hours,
            "CASEWORK_TICK_MINUTES": self.tick_minutes,
            "CASEWORK_JOB_LEASE_SECONDS": self.job_lease_seconds,
            "CASEWORK_PAYMENT_CEILING_VND": self.payment_ceiling_vnd,
            "CASEWORK_STATS_MIN_COUNT": self.stats_min_count,
            "CASEWORK_STATS_STALE_MINUTES": self.stats_stale_minutes,
            "CASEWORK_ARGON2_TIME_COST": self.argon2_time_cost,
            "CASEWORK_ARGON2_MEMORY_COST": self.argon2_memory_cost,
            "BABEL_DEFAULT_LOCALE": self.default_locale,
            "BABEL_DEFAULT_TIMEZONE": self.timezone,
            "BABEL_TRANSLATION_DIRECTORIES": "translations",
            "WTF_CSRF_TIME_LIMIT": None,  # the token lives as long as the session, which expires when idle
            "SESSION_COOKIE_HTTPONLY": True,
            "SESSION_COOKIE_SAMESITE": "Lax",
            "SESSION_COOKIE_SECURE": self.secure_cookies,
            "SESSION_COOKIE_NAME": "casework_session",
            "REMEMBER_COOKIE_DURATION": 0,
            "CASEWORK_MAX_UPLOAD_MB": self.max_upload_mb,
            # The file store counts the file's own bytes and says which limit was hit; this stops larger bodies.
            "MAX_CONTENT_LENGTH": (self.max_upload_mb + 1) * 1024 * 1024,
        }

    def validate(self) -> None:
        """Refuse unsafe production settings, naming each one that is missing."""
        self.validate_always()
        if self.name != "production":
            return
        problems = []
        if self.secret_key == DEFAULT_SECRET_KEY or len(self.secret_key) < 32:
            problems.append("CASEWORK_SECRET_KEY is not set (it needs at least 32 random characters)")
        if self.database_url is None:
            problems.append("CASEWORK_DATABASE_URL is not set (production uses PostgreSQL)")
        elif self.database_url.startswith("sqlite") and not self.allow_sqlite:
            problems.append("CASEWORK_DATABASE_URL points at SQLite; set CASEWORK_ALLOW_SQLITE=1 to allow it")
        if self.master_key_file is None and not self.master_key:
            problems.append(
                "CASEWORK_MASTER_KEY_FILE (or CASEWORK_MASTER_KEY) is not set (the master key; see docs/SECURITY.md)"
            )
        elif self.master_key_file is not None and not self.master_key_file.is_file():
            problems.append(f"CASEWORK_MASTER_KEY_FILE names {self.master_key_file}, which does not exist")
        if problems:
            raise ConfigError("Production configuration refused: " + "; ".join(problems))

    def validate_always(self) -> None:
        """Checks that hold in every configuration."""
        if not 16 <= self.blind_index_bits <= 63:
            raise ConfigError(f"CASEWORK_BLIND_INDEX_BITS must be between 16 and 63, not {self.blind_index_bits}")
        if self.audit_checkpoint_every < 1:
            raise ConfigError(f"CASEWORK_AUDIT_CHECKPOINT_EVERY must be at least 1, not {self.audit_checkpoint_every}")
        if not 1 <= self.max_upload_mb <= 1024:
            raise ConfigError(f"CASEWORK_MAX_UPLOAD_MB must be between 1 and 1024, not {self.max_upload_mb}")
        if self.reauth_minutes < 1:
            raise ConfigError(f"CASEWORK_REAUTH_MINUTES must be at least 1, not {self.reauth_minutes}")
        if not 1 <= self.reminder_hours <= 24 * 30:
            raise ConfigError(f"CASEWORK_REMINDER_HOURS must be between 1 and 720, not {self.reminder_hours}")
        if not 0 <= self.stats_stale_minutes <= 24 * 60:
            raise ConfigError(
                f"CASEWORK_STATS_STALE_MINUTES must be between 0 and 1440, not {self.stats_stale_minutes}"
            )
        if not 2 <= self.stats_min_count <= 100:
            raise ConfigError(f"CASEWORK_STATS_MIN_COUNT must be between 2 and 100, not {self.stats_min_count}")
        if self.payment_ceiling_vnd < 1:
            raise ConfigError(f"CASEWORK_PAYMENT_CEILING_VND must be at least 1, not {self.payment_ceiling_vnd}")
        if not 1 <= self.tick_minutes <= 24 * 60:
            raise ConfigError(f"CASEWORK_TICK_MINUTES must be between 1 and 1440, not {self.tick_minutes}")
        if not 2 <= self.job_lease_seconds <= 24 * 3600:
            raise ConfigError(f"CASEWORK_JOB_LEASE_SECONDS must be between 2 and 86400, not {self.job_lease_seconds}")


def load(name: str | None = None) -> Settings:
    """Build the settings for configuration ``name`` (default ``CASEWORK_CONFIG`` or ``embedded``)."""
    name = name or _env("CONFIG", "embedded")
    if name not in {"embedded", "testing", "production"}:
        raise ConfigError(f"CASEWORK_CONFIG must be embedded, testing or production, not {name!r}")
    instance = Path(_env("INSTANCE", "instance")).resolve()
    key_file = _env("MASTER_KEY_FILE")
    checkpoint_file = _env("AUDIT_CHECKPOINT_FILE")
    workflows_dir = _env("WORKFLOWS_DIR")
    settings = Settings(
        name=name,
        instance=instance,
        secret_key=_env("SECRET_KEY", DEFAULT_SECRET_KEY),
        database_url=_env("DATABASE_URL"),
        replica_url=_env("REPLICA_URL"),
        redis_url=_env("REDIS_URL"),
        master_key_file=Path(key_file).resolve() if key_file else None,
        master_key=_env("MASTER_KEY"),
        blind_index_bits=_env_int("BLIND_INDEX_BITS", 32),
        allow_sqlite=_env_bool("ALLOW_SQLITE", default=name != "production"),
        session_idle_minutes=_env_int("SESSION_IDLE_MINUTES", 30),
        login_max_failures=_env_int("LOGIN_MAX_FAILURES", 5),
        login_lock_minutes=_env_int("LOGIN_LOCK_MINUTES", 15),
        api_token_hours=_env_int("API_TOKEN_HOURS", 8),
        max_upload_mb=_env_int("MAX_UPLOAD_MB", 20),
        reauth_minutes=_env_int("REAUTH_MINUTES", 15),
        login_rate_limit=_env("LOGIN_RATE_LIMIT", "30 per minute"),
        default_locale=_env("DEFAULT_LOCALE", "vi"),
        timezone=_env("TIMEZONE", "Asia/Ho_Chi_Minh"),
        log_level=_env("LOG_LEVEL", "INFO"),
        audit_checkpoint_every=_env_int("AUDIT_CHECKPOINT_EVERY", 100),
        audit_checkpoint_file=Path(checkpoint_file).resolve() if checkpoint_file else None,
        workflows_dir=Path(workflows_dir).resolve() if workflows_dir else None,
        reminder_hours=_env_int("REMINDER_HOURS", 24),
        tick_minutes=_env_int("TICK_MINUTES", 5),
        job_lease_seconds=_env_int("JOB_LEASE_SECONDS", 120),
        payment_ceiling_vnd=_env_int("PAYMENT_CEILING_VND", 100_000_000),
        stats_min_count=_env_int("STATS_MIN_COUNT", 5),
        stats_stale_minutes=_env_int("STATS_STALE_MINUTES", 15),
        secure_cookies=name == "production",
        testing=name == "testing",
    )
    if name == "testing":
        # Hashing strength is not under test; speed is.
        settings.argon2_time_cost = 1
        settings.argon2_memory_cost = 1024
    return settings
