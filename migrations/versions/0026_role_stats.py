"""suggestions: role sizes per account and per segment (the denominators of every share)

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-02 03:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sug_role_stats',
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('role', sa.String(length=60), nullable=False),
    sa.Column('users', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('account_id', 'role', name=op.f('pk_sug_role_stats'))
    )
    op.create_table('sug_segment_roles',
    sa.Column('segment', sa.String(length=60), nullable=False),
    sa.Column('role', sa.String(length=60), nullable=False),
    sa.Column('users', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('segment', 'role', name=op.f('pk_sug_segment_roles'))
    )
    # Statistics counted before this revision have no role sizes: recount on the next request of each account.
    op.execute("DELETE FROM sug_stats_refresh")


def downgrade() -> None:
    op.drop_table('sug_segment_roles')
    op.drop_table('sug_role_stats')
