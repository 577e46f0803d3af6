"""suggestions: peer statistics maintained on every change (each user's counted holdings, and whether an
account's statistics are maintained since its last recount)

Revision ID: 0035
Revises: 0034
Create Date: 2026-12-02 12:15:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0035'
down_revision = '0034'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sug_user_holdings',
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('user_id', sa.String(length=40), nullable=False),
    sa.Column('roles', postgresql.ARRAY(sa.Text()), nullable=True),
    sa.Column('modules', postgresql.ARRAY(sa.Text()), nullable=False),
    sa.Column('active', postgresql.ARRAY(sa.Text()), nullable=False),
    sa.PrimaryKeyConstraint('account_id', 'user_id', name=op.f('pk_sug_user_holdings'))
    )
    op.add_column('sug_stats_refresh', sa.Column('maintained', sa.Boolean(), server_default=sa.false(),
                                                 nullable=False))
    # Every account gets a row: those counted before this revision are recounted by the statistics job (their
    # per-user holdings are unknown until then), and are not maintained on changes meanwhile.
    op.execute("""
        INSERT INTO sug_stats_refresh (account_id, users, refreshed_at, maintained)
        SELECT account_id, 0, TIMESTAMPTZ '1970-01-01 00:00:00+00', false FROM accounts
        ON CONFLICT (account_id) DO UPDATE SET refreshed_at = TIMESTAMPTZ '1970-01-01 00:00:00+00'
    """)


def downgrade() -> None:
    op.drop_column('sug_stats_refresh', 'maintained')
    op.drop_table('sug_user_holdings')
