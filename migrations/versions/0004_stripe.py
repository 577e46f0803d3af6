"""stripe: webhook events table, lookup of users by Stripe customer

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('stripe_events',
    sa.Column('event_id', sa.String(length=255), nullable=False),
    sa.Column('type', sa.String(length=120), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('processed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.SmallInteger(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.PrimaryKeyConstraint('event_id', name=op.f('pk_stripe_events'))
    )
    op.create_index('ix_users_stripe_customer_id', 'users', ['stripe_customer_id'], unique=True,
                    postgresql_where=sa.text('stripe_customer_id IS NOT NULL'))


def downgrade() -> None:
    op.drop_index('ix_users_stripe_customer_id', table_name='users',
                  postgresql_where=sa.text('stripe_customer_id IS NOT NULL'))
    op.drop_table('stripe_events')
