"""sales credits: an (account, category) index, so classifying a booking probes instead of scanning

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-02 06:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = '0032'
down_revision = '0031'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_sales_credits_account_id_category', 'sales_credits', ['account_id', 'category'],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_sales_credits_account_id_category', table_name='sales_credits')
