"""indexes measured at 1,000,000 cases: a worker's caseload, and name search terms read from the index alone

``ix_cases_caseload``: ``casework.cases.search.DEADLINE_ORDER`` (next deadline, none last, newest report first) over
the open cases of one worker. The first ones are read from this partial index in order instead of sorting every
open case the worker has, and the counts of open and overdue cases come from the index alone (it carries the
commune, for the scope). At 1,000,000 demo cases a worker with 33,607 open cases: 1.4 s before, 10 ms after.

``ix_blind_index_lookup`` carries the row id, so that the rows of a search term are an index-only scan
(``casework.security.fields.candidate_ids``). Rebuilding it takes about 40 s for 7.5 million entries.

PostgreSQL only: SQLite takes neither NULLS LAST in an index nor INCLUDE, and an embedded database is a commune's.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23 06:10:00

"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

LOOKUP = ['table_name', 'column_name', 'key_id', 'term']


def upgrade():
    if op.get_context().dialect.name != "postgresql":
        return
    op.create_index(
        'ix_cases_caseload',
        'cases',
        ['assigned_to_id', sa.text('next_deadline_at ASC NULLS LAST'), sa.text('received_at DESC')],
        unique=False,
        postgresql_where=sa.text('closed_at IS NULL'),
        postgresql_include=['commune_code'],
    )
    op.drop_index('ix_blind_index_lookup', table_name='blind_index_entries')
    op.create_index('ix_blind_index_lookup', 'blind_index_entries', LOOKUP, postgresql_include=['row_id'])


def downgrade():
    if op.get_context().dialect.name != "postgresql":
        return
    op.drop_index('ix_blind_index_lookup', table_name='blind_index_entries')
    op.create_index('ix_blind_index_lookup', 'blind_index_entries', LOOKUP)
    op.drop_index('ix_cases_caseload', table_name='cases')
