"""session token revocation: a per-user token generation embedded in every session token

Revision ID: 0011
Revises: 0007
Create Date: 2026-12-01 23:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing users start at generation 0, which is also what tokens minted before this revision carry.
    op.add_column('users', sa.Column('token_generation', sa.BigInteger(), server_default=sa.text('0'),
                                     nullable=False))


def downgrade() -> None:
    op.drop_column('users', 'token_generation')
