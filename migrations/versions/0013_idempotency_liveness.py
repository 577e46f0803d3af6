"""idempotency keys: a claim token per attempt instead of a lock lease (liveness is an advisory lock)

Revision ID: 0013
Revises: 0007
Create Date: 2026-12-01 23:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('idempotency_keys', sa.Column('claim_token', sa.String(length=32), nullable=True))
    op.drop_column('idempotency_keys', 'locked_until')


def downgrade() -> None:
    op.add_column('idempotency_keys', sa.Column('locked_until', sa.DateTime(timezone=True), nullable=False,
                                                server_default=sa.text('now()')))
    op.alter_column('idempotency_keys', 'locked_until', server_default=None)
    op.drop_column('idempotency_keys', 'claim_token')
