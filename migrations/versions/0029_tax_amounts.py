"""tax amounts: quotes' calculation and net/tax/gross, orders' calculation and tax transaction, refunds' tax
reversal, card payments' calculation (PaymentIntent metadata), statements' invoiced tax and reverse charge

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-02 06:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0029'
down_revision = '0028'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('quotes', sa.Column('tax', postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.add_column('quotes', sa.Column('tax_calculation_id', sa.String(length=120), nullable=True))
    op.add_column('quotes', sa.Column('tax_minor', sa.BigInteger(), nullable=True))
    op.add_column('quotes', sa.Column('gross_minor', sa.BigInteger(), nullable=True))
    op.add_column('orders', sa.Column('tax_calculation_id', sa.String(length=120), nullable=True))
    op.add_column('orders', sa.Column('tax_minor', sa.BigInteger(), nullable=True))
    op.add_column('orders', sa.Column('tax_transaction_id', sa.String(length=120), nullable=True))
    op.add_column('order_refunds', sa.Column('tax_reversal_id', sa.String(length=120), nullable=True))
    op.add_column('card_payments', sa.Column('tax_calculation_id', sa.String(length=120), nullable=True))
    op.add_column('statements', sa.Column('tax_minor', sa.BigInteger(), nullable=True))
    op.add_column('statements', sa.Column('reverse_charge', sa.Boolean(), server_default='false', nullable=False))


def downgrade() -> None:
    op.drop_column('statements', 'reverse_charge')
    op.drop_column('statements', 'tax_minor')
    op.drop_column('card_payments', 'tax_calculation_id')
    op.drop_column('order_refunds', 'tax_reversal_id')
    op.drop_column('orders', 'tax_transaction_id')
    op.drop_column('orders', 'tax_minor')
    op.drop_column('orders', 'tax_calculation_id')
    op.drop_column('quotes', 'gross_minor')
    op.drop_column('quotes', 'tax_minor')
    op.drop_column('quotes', 'tax_calculation_id')
    op.drop_column('quotes', 'tax')
