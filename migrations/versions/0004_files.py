"""protection: encrypted file store

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 00:40:00

"""
from alembic import op
import sqlalchemy as sa
import casework.dbtypes  # noqa: F401 - custom column types


# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('stored_files',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('content_type', sa.String(length=100), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('key_id', sa.String(length=8), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('owner_type', sa.String(length=32), nullable=True),
    sa.Column('owner_id', sa.String(length=64), nullable=True),
    sa.Column('created_by_id', sa.Uuid(), nullable=True),
    sa.Column('created_at', casework.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.Column('deleted_at', casework.dbtypes.UTCDateTime(timezone=True), nullable=True),
    sa.Column('original_name_ct', sa.Text(), nullable=True),
    sa.CheckConstraint('size >= 0', name=op.f('ck_stored_files_size_not_negative')),
    sa.CheckConstraint('(owner_type IS NULL) = (owner_id IS NULL)', name=op.f('ck_stored_files_owner_complete')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_stored_files_created_by_id_users')),
    sa.ForeignKeyConstraint(['key_id'], ['data_keys.id'], name=op.f('fk_stored_files_key_id_data_keys')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stored_files'))
    )
    with op.batch_alter_table('stored_files', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_stored_files_key_id'), ['key_id'], unique=False)
        batch_op.create_index('ix_stored_files_owner', ['owner_type', 'owner_id'], unique=False)


def downgrade():
    # The ciphertext files under <instance>/files stay on disk: deleting a folder of case files is an operator's
    # decision, not a schema change's.
    with op.batch_alter_table('stored_files', schema=None) as batch_op:
        batch_op.drop_index('ix_stored_files_owner')
        batch_op.drop_index(batch_op.f('ix_stored_files_key_id'))

    op.drop_table('stored_files')
