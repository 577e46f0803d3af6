"""api keys bound to accounts: api_keys.account_ids (NULL: a global key)

Revision ID: 0010
Revises: 0007
Create Date: 2026-11-30 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0010'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable with no default: every existing key stays global, and the column is added without a rewrite.
    op.add_column('api_keys', sa.Column('account_ids', postgresql.ARRAY(sa.String(length=40)), nullable=True))
    op.create_check_constraint(op.f('ck_api_keys_binding_not_empty'), 'api_keys',
                               'account_ids IS NULL OR cardinality(account_ids) > 0')


def downgrade() -> None:
    op.drop_constraint(op.f('ck_api_keys_binding_not_empty'), 'api_keys', type_='check')
    op.drop_column('api_keys', 'account_ids')
