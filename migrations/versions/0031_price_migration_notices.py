"""price migrations: the notice each owner received of a scheduled price migration

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-02 06:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0031'
down_revision = '0030'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('price_migration_notices',
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('holding', sa.String(length=40), nullable=False),
    sa.Column('to_price_id', sa.String(length=60), nullable=False),
    sa.Column('migrate_existing_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('account_id', 'holding', 'to_price_id', 'migrate_existing_at', name=op.f('pk_price_migration_notices'))
    )


def downgrade() -> None:
    op.drop_table('price_migration_notices')
