"""metered billing: metered plans (metered modules bought) and their usage charges per period

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-02 06:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0030'
down_revision = '0029'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('metered_plans',
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('plan_id', sa.String(length=40), nullable=False),
    sa.Column('order_id', sa.String(length=40), nullable=False),
    sa.Column('user_id', sa.String(length=40), nullable=False),
    sa.Column('module', sa.String(length=100), nullable=False),
    sa.Column('route', sa.String(length=16), nullable=False),
    sa.Column('price_id', sa.String(length=60), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id', 'order_id'], ['orders.account_id', 'orders.order_id'], name=op.f('fk_metered_plans_account_id_order_id_orders')),
    sa.ForeignKeyConstraint(['account_id', 'user_id'], ['users.account_id', 'users.user_id'], name=op.f('fk_metered_plans_account_id_user_id_users')),
    sa.PrimaryKeyConstraint('account_id', 'plan_id', name=op.f('pk_metered_plans'))
    )
    op.create_index('ix_metered_plans_status', 'metered_plans', ['status'], unique=False)
    op.create_index('uq_metered_plans_account_id_order_id_module', 'metered_plans', ['account_id', 'order_id', 'module'], unique=True)
    op.create_table('usage_charges',
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('charge_id', sa.String(length=40), nullable=False),
    sa.Column('plan_id', sa.String(length=40), nullable=False),
    sa.Column('user_id', sa.String(length=40), nullable=False),
    sa.Column('module', sa.String(length=100), nullable=False),
    sa.Column('route', sa.String(length=16), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('usage_period', sa.String(length=7), nullable=False),
    sa.Column('period_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('period_end', sa.DateTime(timezone=True), nullable=False),
    sa.Column('billed_period', sa.String(length=7), nullable=False),
    sa.Column('price_id', sa.String(length=60), nullable=False),
    sa.Column('price_version', sa.BigInteger(), nullable=False),
    sa.Column('quantity', sa.BigInteger(), nullable=False),
    sa.Column('quantity_before', sa.BigInteger(), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('detail', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('stripe_invoice_id', sa.String(length=120), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('amount_minor >= 0 AND quantity >= 0', name=op.f('ck_usage_charges_amounts_non_negative')),
    sa.ForeignKeyConstraint(['account_id', 'plan_id'], ['metered_plans.account_id', 'metered_plans.plan_id'], name=op.f('fk_usage_charges_account_id_plan_id_metered_plans')),
    sa.PrimaryKeyConstraint('account_id', 'charge_id', name=op.f('pk_usage_charges'))
    )
    op.create_index('ix_usage_charges_billed_period', 'usage_charges', ['billed_period', 'route'], unique=False)
    op.create_index('ix_usage_charges_invoice_pending', 'usage_charges', ['status'], unique=False, postgresql_where=sa.text("status = 'invoice_pending'"))
    op.create_index('uq_usage_charges_plan_usage_billed', 'usage_charges', ['account_id', 'plan_id', 'usage_period', 'billed_period'], unique=True)
    # ### end Alembic commands ###


def downgrade() -> None:
    op.drop_index('uq_usage_charges_plan_usage_billed', table_name='usage_charges')
    op.drop_index('ix_usage_charges_invoice_pending', table_name='usage_charges',
                  postgresql_where=sa.text("status = 'invoice_pending'"))
    op.drop_index('ix_usage_charges_billed_period', table_name='usage_charges')
    op.drop_table('usage_charges')
    op.drop_index('uq_metered_plans_account_id_order_id_module', table_name='metered_plans')
    op.drop_index('ix_metered_plans_status', table_name='metered_plans')
    op.drop_table('metered_plans')
