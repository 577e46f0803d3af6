"""card payments: the idempotency key is unique per account (every tenant key includes account_id)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03 12:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('uq_card_payments_account_id_idempotency_key', 'card_payments', ['account_id', 'idempotency_key'],
                    unique=True)
    op.drop_index('uq_card_payments_idempotency_key', table_name='card_payments')


def downgrade() -> None:
    op.create_index('uq_card_payments_idempotency_key', 'card_payments', ['idempotency_key'], unique=True)
    op.drop_index('uq_card_payments_account_id_idempotency_key', table_name='card_payments')
