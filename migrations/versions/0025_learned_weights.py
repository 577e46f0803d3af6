"""suggestions: learned weights per fit (sug_weights), versioned

Revision ID: 0025
Revises: 0020
Create Date: 2026-12-02 03:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0025'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sug_weights',
    sa.Column('version', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('fitted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('trained_until', sa.DateTime(timezone=True), nullable=False),
    sa.Column('window_days', sa.BigInteger(), nullable=False),
    sa.Column('rows', sa.BigInteger(), nullable=False),
    sa.Column('positives', sa.BigInteger(), nullable=False),
    sa.Column('learned', sa.Boolean(), nullable=False),
    sa.Column('weights', sa.Text(), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('recall_at_3', sa.Float(), nullable=True),
    sa.Column('popularity_recall_at_3', sa.Float(), nullable=True),
    sa.CheckConstraint('rows >= 0 AND positives >= 0', name=op.f('ck_sug_weights_counts_not_negative')),
    sa.PrimaryKeyConstraint('version', name=op.f('pk_sug_weights'))
    )


def downgrade() -> None:
    op.drop_table('sug_weights')
