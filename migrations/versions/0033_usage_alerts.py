"""usage alerts: one row per episode of usage.limit_near and entitlement.unused, so each is told once

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-02 06:11:47.165929
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0033'
down_revision = '0032'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ent_usage_alerts',
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('alert_id', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('account_id', 'alert_id', name=op.f('pk_ent_usage_alerts'))
    )
    op.create_index('uq_ent_usage_alerts_open', 'ent_usage_alerts', ['account_id', 'kind', 'subject'], unique=True, postgresql_where=sa.text('closed_at IS NULL'))


def downgrade() -> None:
    op.drop_index('uq_ent_usage_alerts_open', table_name='ent_usage_alerts', postgresql_where=sa.text('closed_at IS NULL'))
    op.drop_table('ent_usage_alerts')
