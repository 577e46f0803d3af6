"""request ids: audit rows and outbox events name the request (X-Request-Id) that wrote them

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('audit_log', sa.Column('request_id', sa.String(length=100), nullable=True))
    op.add_column('outbox_events', sa.Column('request_id', sa.String(length=100), nullable=True))


def downgrade() -> None:
    op.drop_column('outbox_events', 'request_id')
    op.drop_column('audit_log', 'request_id')
