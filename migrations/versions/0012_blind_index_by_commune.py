"""blind index entries carry their row's commune, so a search reads only the user's area

A name search used to read a term's entries across the whole country and then keep those in the user's area: at
1,000,000 cases the words of a common name ("Nguyễn", "Văn") are hundreds of thousands of entries each, read for a
worker who follows three hundred children. Each entry now carries the commune of its row (``children`` and
``cases`` both have one), copied here from the rows themselves, and the lookup index has it after the term
(``casework.security.fields.candidate_ids``). The commune leaks nothing new: the row it points at has it in clear.

``ix_cases_open_child``: the open cases of the candidate children, with the commune for the scope,
read from the index alone (10 ms -> 3 ms for 1,500 candidates).

Backfilling takes about as long as rebuilding the index (minutes for 7.5 million entries).

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-23 09:10:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

LOOKUP = ["table_name", "column_name", "key_id", "term"]
#: The tables whose encrypted columns have a blind index; both have a commune_code.
TABLES = ("children", "cases")


def upgrade():
    with op.batch_alter_table("blind_index_entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("commune_code", sa.String(length=5), nullable=True))
    op.drop_index("ix_blind_index_lookup", table_name="blind_index_entries")  # not maintained during the copy
    postgresql = op.get_context().dialect.name == "postgresql"
    for table in TABLES:
        if postgresql:
            op.execute(
                f"UPDATE blind_index_entries AS e SET commune_code = t.commune_code FROM {table} AS t "
                f"WHERE e.table_name = '{table}' AND t.id = e.row_id"
            )
        else:
            op.execute(
                f"UPDATE blind_index_entries SET commune_code = "
                f"(SELECT t.commune_code FROM {table} t WHERE t.id = blind_index_entries.row_id) "
                f"WHERE table_name = '{table}'"
            )
    if postgresql:
        op.create_index(
            "ix_blind_index_lookup", "blind_index_entries", [*LOOKUP, "commune_code"], postgresql_include=["row_id"]
        )
    else:
        op.create_index("ix_blind_index_lookup", "blind_index_entries", [*LOOKUP, "commune_code"])
    # A name search's candidate children -> their open cases (on PostgreSQL with the scope, from the index alone).
    op.create_index(
        "ix_cases_open_child",
        "cases",
        ["child_id"],
        postgresql_where=sa.text("closed_at IS NULL"),
        sqlite_where=sa.text("closed_at IS NULL"),
        postgresql_include=["commune_code"],
    )


def downgrade():
    op.drop_index("ix_cases_open_child", table_name="cases")
    op.drop_index("ix_blind_index_lookup", table_name="blind_index_entries")
    if op.get_context().dialect.name == "postgresql":
        op.create_index("ix_blind_index_lookup", "blind_index_entries", LOOKUP, postgresql_include=["row_id"])
    else:
        op.create_index("ix_blind_index_lookup", "blind_index_entries", LOOKUP)
    with op.batch_alter_table("blind_index_entries", schema=None) as batch_op:
        batch_op.drop_column("commune_code")
