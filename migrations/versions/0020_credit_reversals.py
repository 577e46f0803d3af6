"""credit reversals: sales_credits.kind (booking | reversal) and reference (what reversed it)

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-02 03:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('sales_credits', sa.Column('kind', sa.String(length=16), server_default='booking', nullable=False))
    op.add_column('sales_credits', sa.Column('reference', sa.String(length=120), server_default='', nullable=False))
    op.drop_index('uq_sales_credits_account_id_order_id_module', table_name='sales_credits')
    op.create_index('uq_sales_credits_account_id_order_id_module', 'sales_credits',
                    ['account_id', 'order_id', 'module', 'kind', 'reference'], unique=True)


def downgrade() -> None:
    op.execute("DELETE FROM sales_credits WHERE kind <> 'booking'")
    op.drop_index('uq_sales_credits_account_id_order_id_module', table_name='sales_credits')
    op.create_index('uq_sales_credits_account_id_order_id_module', 'sales_credits',
                    ['account_id', 'order_id', 'module'], unique=True)
    op.drop_column('sales_credits', 'reference')
    op.drop_column('sales_credits', 'kind')
