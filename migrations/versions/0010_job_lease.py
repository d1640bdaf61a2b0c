"""jobs: lease and hand-over to the queue

A job whose worker was killed, or that Redis could not take when it was launched, is handed over again by the
sweep (``casework worker``): ``queue_id`` names the rq job of the latest hand-over, ``enqueued_at`` when Redis took
it, ``lease_expires_at`` until when the attempt holding the job is trusted without news.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23 06:00:00

"""

from alembic import op
import sqlalchemy as sa
import casework.dbtypes  # noqa: F401 - custom column types


# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('queue_id', sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column('enqueued_at', casework.dbtypes.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('lease_expires_at', casework.dbtypes.UTCDateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('lease_expires_at')
        batch_op.drop_column('enqueued_at')
        batch_op.drop_column('queue_id')
