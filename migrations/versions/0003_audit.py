"""protection: audit trail

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 00:40:00

"""
from alembic import op
import sqlalchemy as sa
import casework.dbtypes  # noqa: F401 - custom column types


# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

#: The chain's genesis link (casework.audit.chain.GENESIS), written here as a literal: a migration never changes.
GENESIS = '0' * 64

APPEND_ONLY_TABLES = ('audit_events', 'audit_checkpoints')


def upgrade():
    head = op.create_table('audit_chain_head',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('last_seq', sa.BigInteger(), nullable=False),
    sa.Column('last_mac', sa.String(length=64), nullable=False),
    sa.CheckConstraint('id = 1', name=op.f('ck_audit_chain_head_single_row')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_chain_head'))
    )
    op.create_table('audit_checkpoints',
    sa.Column('seq', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('event_mac', sa.String(length=64), nullable=False),
    sa.Column('created_at', casework.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.Column('mac', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_audit_checkpoints'))
    )
    op.create_table('audit_events',
    sa.Column('seq', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('occurred_at', casework.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor_id', sa.Uuid(), nullable=True),
    sa.Column('actor_username', sa.String(length=64), nullable=True),
    sa.Column('actor_role', sa.String(length=32), nullable=True),
    sa.Column('ip', sa.String(length=45), nullable=True),
    sa.Column('request_id', sa.String(length=32), nullable=True),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('object_type', sa.String(length=64), nullable=True),
    sa.Column('object_id', sa.String(length=64), nullable=True),
    sa.Column('fields', sa.JSON(), nullable=False),
    sa.Column('details', sa.JSON(), nullable=True),
    sa.Column('prev_mac', sa.String(length=64), nullable=False),
    sa.Column('mac', sa.String(length=64), nullable=False),
    sa.CheckConstraint('seq > 0', name=op.f('ck_audit_events_positive_seq')),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_audit_events'))
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_events_action'), ['action'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_actor_username'), ['actor_username'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_object_id'), ['object_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_occurred_at'), ['occurred_at'], unique=False)

    # The chain starts at the genesis link; writers lock this row to append.
    op.bulk_insert(head, [{'id': 1, 'last_seq': 0, 'last_mac': GENESIS}])

    if op.get_bind().dialect.name == 'postgresql':
        # Append-only in the database too: only someone who can disable triggers (a superuser) can change history,
        # and even then the chain's MACs and the signed checkpoints show it.
        op.execute("""
            CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
            END
            $$
        """)
        for table in APPEND_ONLY_TABLES:
            op.execute(
                f'CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} '
                'FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()'
            )
            op.execute(
                f'CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} '
                'FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()'
            )


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        for table in APPEND_ONLY_TABLES:
            op.execute(f'DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}')
            op.execute(f'DROP TRIGGER IF EXISTS {table}_append_only ON {table}')
        op.execute('DROP FUNCTION IF EXISTS audit_refuse_change()')

    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_events_occurred_at'))
        batch_op.drop_index(batch_op.f('ix_audit_events_object_id'))
        batch_op.drop_index(batch_op.f('ix_audit_events_actor_username'))
        batch_op.drop_index(batch_op.f('ix_audit_events_action'))

    op.drop_table('audit_events')
    op.drop_table('audit_checkpoints')
    op.drop_table('audit_chain_head')
