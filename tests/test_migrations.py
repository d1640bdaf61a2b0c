"""The migrations build exactly the schema the models describe, on both backends, and every one goes down and up
again with data in the tables."""

from __future__ import annotations

import pprint
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import flask_migrate
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, inspect, select

from casework.extensions import db
from tests.conftest import TEST_PASSWORD, build_app

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def script_directory() -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config)


def fresh_database_url(backend: str, tmp_path: Path, request) -> str:
    """An empty database: a new SQLite file, or a new database on the session's PostgreSQL server."""
    if backend == "postgresql":
        return request.getfixturevalue("pg_server").create_database(f"casework_mig_{uuid.uuid4().hex[:10]}")
    return f"sqlite:///{tmp_path / 'migrations.sqlite3'}"


@contextmanager
def app_on(app_env: dict[str, str], url: str) -> Iterator:
    """An app on ``url``, its context pushed (on top of any other), its engine disposed at the end."""
    new_app = build_app({**app_env, "CASEWORK_DATABASE_URL": url})
    with new_app.app_context():
        try:
            yield new_app
        finally:
            db.session.remove()
            db.engine.dispose()


def schema_diff() -> list:
    """What autogenerate would put into a new migration: nothing when models and migrations agree."""
    with db.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "render_as_batch": connection.dialect.name == "sqlite"}
        )
        return compare_metadata(context, db.metadata)


def current_revisions() -> tuple[str, ...]:
    with db.engine.connect() as connection:
        return tuple(MigrationContext.configure(connection).get_current_heads())


def table_names() -> set[str]:
    return set(inspect(db.engine).get_table_names())


def assert_schema_at_head(head: str) -> None:
    assert current_revisions() == (head,), "the database is not stamped with the head revision (alembic_version)"
    assert set(db.metadata.tables) <= table_names()
    diff = schema_diff()
    assert diff == [], "models and migrations differ:\n" + pprint.pformat(diff)


def test_the_history_is_linear():
    script = script_directory()
    heads = script.get_heads()
    assert len(heads) == 1, f"several heads: {heads} (merge them)"
    assert len(script.get_bases()) == 1
    revisions = list(script.walk_revisions())
    assert all(not r.is_merge_point and not r.is_branch_point for r in revisions)
    files = [p for p in (MIGRATIONS / "versions").glob("*.py") if not p.name.startswith("_")]
    assert len(revisions) == len(files), "a migration file is not on the path from the base to the head"
    assert revisions[0].revision == heads[0]
    assert revisions[-1].down_revision is None


def test_models_and_migrations_agree(backend, app_env, tmp_path, request):
    url = fresh_database_url(backend, tmp_path, request)
    head = script_directory().get_current_head()
    with app_on(app_env, url):
        assert table_names() == set()
        flask_migrate.upgrade()
        assert_schema_at_head(head)


def test_every_migration_goes_down_and_up_again_with_data(backend, app_env, tmp_path, request):
    from casework.auth import operations as auth_operations
    from casework.auth.models import User
    from casework.locations import operations as unit_operations
    from casework.locations.models import Commune

    url = fresh_database_url(backend, tmp_path, request)
    script = script_directory()
    head = script.get_current_head()
    revisions = list(script.walk_revisions())  # from the head down to the base
    with app_on(app_env, url):
        flask_migrate.upgrade()
        assert_schema_at_head(head)
        unit_operations.load_units()
        auth_operations.create_user(
            username="migrated",
            password=TEST_PASSWORD,
            role="supervisor",
            province_code="22",
            commune_codes=("06970",),
        )
        unit_operations.mark_commune_merged("06979", "06970", date(2026, 1, 1))
        db.session.commit()
        assert db.session.scalar(select(func.count()).select_from(User)) == 1
        assert db.session.scalar(select(func.count()).select_from(Commune)) == 3321
        db.session.remove()

        for revision in revisions:
            flask_migrate.downgrade(revision=revision.down_revision or "base")
            expected = (revision.down_revision,) if revision.down_revision else ()
            assert current_revisions() == expected
        left = table_names() & set(db.metadata.tables)
        assert left == set(), f"tables left at the base: {sorted(left)}"
        assert table_names() <= {"alembic_version"}

        for revision in reversed(revisions):
            flask_migrate.upgrade(revision=revision.revision)
            assert current_revisions() == (revision.revision,)
        assert_schema_at_head(head)
        assert db.session.scalar(select(func.count()).select_from(User)) == 0
        # The schema works again: units load into it.
        assert unit_operations.load_units()["communes"] == {"added": 3321, "updated": 0}
        db.session.commit()
