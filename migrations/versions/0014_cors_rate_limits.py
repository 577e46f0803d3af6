"""cors and rate limits: accounts.allowed_origins; shared rate-limit counters and their writers (UNLOGGED)

Revision ID: 0014
Revises: 0007
Create Date: 2026-11-24 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('accounts', sa.Column('allowed_origins', sa.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False))
    op.create_index('ix_accounts_with_allowed_origins', 'accounts', ['account_id'], unique=False,
                    postgresql_where=sa.text('cardinality(allowed_origins) > 0'))
    op.create_table('rate_limit_counters',
    sa.Column('bucket', sa.String(length=120), nullable=False),
    sa.Column('window_start_s', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('hits', sa.BigInteger(), nullable=False),
    sa.Column('last_grant', sa.BigInteger(), nullable=False),
    sa.Column('expires_at_s', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('bucket', 'window_start_s', name=op.f('pk_rate_limit_counters')),
    prefixes=['UNLOGGED'],
    )
    op.create_index('ix_rate_limit_counters_expires_at_s', 'rate_limit_counters', ['expires_at_s'], unique=False)
    op.create_table('rate_limit_nodes',
    sa.Column('node_id', sa.String(length=40), nullable=False),
    sa.Column('seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('node_id', name=op.f('pk_rate_limit_nodes')),
    prefixes=['UNLOGGED'],
    )


def downgrade() -> None:
    op.drop_table('rate_limit_nodes')
    op.drop_index('ix_rate_limit_counters_expires_at_s', table_name='rate_limit_counters')
    op.drop_table('rate_limit_counters')
    op.drop_index('ix_accounts_with_allowed_origins', table_name='accounts', postgresql_where=sa.text('cardinality(allowed_origins) > 0'))
    op.drop_column('accounts', 'allowed_origins')
