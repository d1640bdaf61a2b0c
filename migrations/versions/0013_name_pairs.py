"""data keys say whether their blind-index entries have the pairs of name words

A name's index now holds every two of its words together as well as each word (``Encrypted(pairs=True)``), so a
search for two words reads the rows having both, not every row of the commoner word: an officer's "Nguyễn Trang"
read the 79,000 Nguyễn of the province to keep 1,574 children.

The terms are keyed HMACs: a migration, which has no master key, cannot add them to the entries already written. A
key created from now on (``casework init``, a rotation) has them in all its entries and says so (``pair_terms``);
the keys of before say false, and name searches keep to single words while any such key is readable. Rotating the
data key (``casework keys rotate``) and retiring the old one brings every entry to the pairs.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-23 23:20:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("data_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pair_terms", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade():
    # Entries of pairs under a key stay behind: they answer no single-word lookup and go with the key's rows.
    with op.batch_alter_table("data_keys", schema=None) as batch_op:
        batch_op.drop_column("pair_terms")
