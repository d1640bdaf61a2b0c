"""open cases per worker and commune, kept by the database: a caseload's total without counting it

A social worker's home page shows how many open cases they hold. Counting them read every one of the worker's
open cases from ``ix_cases_caseload``: 7-10 ms of PostgreSQL per page for a worker with 35,000 open cases at
1,000,000 demo cases, a quarter of the machine's work on that page. ``open_caseloads`` holds the count per worker
and commune (the commune for the scope: a worker sees the cases of their own communes). Triggers on ``cases`` keep
it in the same transaction as the change, whoever writes: one more when a case is opened or assigned, one fewer
when it is closed, reassigned, moved to another commune or deleted. The overdue count still reads the index, but
only the cases past their deadline.

On PostgreSQL the two rows a reassignment changes are taken in key order, so that two reassignments crossing each
other (A to B, B to A) cannot deadlock. The upgrade fills the table from the cases already there (one grouped pass:
seconds at 1,000,000 cases), with the cases locked against writes until the migration commits.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-24 02:10:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

POSTGRESQL_FUNCTION = """
CREATE FUNCTION open_caseloads_follow() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    was_open boolean := TG_OP <> 'INSERT' AND OLD.closed_at IS NULL AND OLD.assigned_to_id IS NOT NULL;
    is_open boolean := TG_OP <> 'DELETE' AND NEW.closed_at IS NULL AND NEW.assigned_to_id IS NOT NULL;
    old_first boolean;
BEGIN
    IF was_open AND is_open AND OLD.assigned_to_id = NEW.assigned_to_id AND OLD.commune_code = NEW.commune_code THEN
        RETURN NULL;
    END IF;
    old_first := was_open AND (NOT is_open
        OR (OLD.assigned_to_id, OLD.commune_code) < (NEW.assigned_to_id, NEW.commune_code));
    IF old_first THEN
        UPDATE open_caseloads SET open_cases = open_cases - 1
         WHERE assigned_to_id = OLD.assigned_to_id AND commune_code = OLD.commune_code;
    END IF;
    IF is_open THEN
        INSERT INTO open_caseloads (assigned_to_id, commune_code, open_cases)
        VALUES (NEW.assigned_to_id, NEW.commune_code, 1)
        ON CONFLICT (assigned_to_id, commune_code) DO UPDATE SET open_cases = open_caseloads.open_cases + 1;
    END IF;
    IF was_open AND NOT old_first THEN
        UPDATE open_caseloads SET open_cases = open_cases - 1
         WHERE assigned_to_id = OLD.assigned_to_id AND commune_code = OLD.commune_code;
    END IF;
    RETURN NULL;
END $$
"""

POSTGRESQL_TRIGGER = (
    "CREATE TRIGGER cases_open_caseloads AFTER INSERT OR DELETE OR UPDATE OF assigned_to_id, commune_code, closed_at "
    "ON cases FOR EACH ROW EXECUTE FUNCTION open_caseloads_follow()"
)

_SQLITE_ADD = (
    "INSERT INTO open_caseloads (assigned_to_id, commune_code, open_cases) "
    "SELECT NEW.assigned_to_id, NEW.commune_code, 1 WHERE NEW.closed_at IS NULL AND NEW.assigned_to_id IS NOT NULL "
    "ON CONFLICT (assigned_to_id, commune_code) DO UPDATE SET open_cases = open_cases + 1;"
)
_SQLITE_TAKE = (
    "UPDATE open_caseloads SET open_cases = open_cases - 1 "
    "WHERE OLD.closed_at IS NULL AND assigned_to_id = OLD.assigned_to_id AND commune_code = OLD.commune_code;"
)
SQLITE_TRIGGERS = {
    "cases_open_caseloads_insert": f"AFTER INSERT ON cases BEGIN {_SQLITE_ADD} END",
    "cases_open_caseloads_update": (
        f"AFTER UPDATE OF assigned_to_id, commune_code, closed_at ON cases BEGIN {_SQLITE_TAKE} {_SQLITE_ADD} END"
    ),
    "cases_open_caseloads_delete": f"AFTER DELETE ON cases BEGIN {_SQLITE_TAKE} END",
}

FILL = (
    "INSERT INTO open_caseloads (assigned_to_id, commune_code, open_cases) "
    "SELECT assigned_to_id, commune_code, count(*) FROM cases "
    "WHERE closed_at IS NULL AND assigned_to_id IS NOT NULL GROUP BY assigned_to_id, commune_code"
)


def upgrade():
    op.create_table(
        "open_caseloads",
        sa.Column("assigned_to_id", sa.Uuid(), nullable=False),
        sa.Column("commune_code", sa.String(length=5), nullable=False),
        sa.Column("open_cases", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["assigned_to_id"], ["users.id"], name=op.f("fk_open_caseloads_assigned_to_id_users")),
        sa.ForeignKeyConstraint(
            ["commune_code"], ["communes.code"], name=op.f("fk_open_caseloads_commune_code_communes")
        ),
        sa.PrimaryKeyConstraint("assigned_to_id", "commune_code", name=op.f("pk_open_caseloads")),
    )
    postgresql = op.get_context().dialect.name == "postgresql"
    if postgresql:
        # No case may change between the count and the trigger's first firing (SQLite's writer lock does this there).
        op.execute("LOCK TABLE cases IN SHARE ROW EXCLUSIVE MODE")
    op.execute(FILL)
    if postgresql:
        op.execute(POSTGRESQL_FUNCTION)
        op.execute(POSTGRESQL_TRIGGER)
    else:
        for name, body in SQLITE_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {body}")


def downgrade():
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS cases_open_caseloads ON cases")
        op.execute("DROP FUNCTION IF EXISTS open_caseloads_follow()")
    else:
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table("open_caseloads")
