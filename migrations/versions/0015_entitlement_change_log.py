"""entitlement change log: what the SDK change stream reads, in commit order (xid)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 00:35:20.548667
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ent_changes',
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('seq', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('user_id', sa.String(length=40), nullable=True),
    sa.Column('xid', sa.BigInteger(), server_default=sa.text('(pg_current_xact_id()::text)::bigint'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('account_id', 'seq', name=op.f('pk_ent_changes'))
    )
    op.create_index('ix_ent_changes_created_at', 'ent_changes', ['created_at'], unique=False)
    op.create_index('ix_ent_changes_xid', 'ent_changes', ['xid'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_ent_changes_xid', table_name='ent_changes')
    op.drop_index('ix_ent_changes_created_at', table_name='ent_changes')
    op.drop_table('ent_changes')
