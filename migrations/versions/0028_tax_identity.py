"""tax identity: accounts' billing address, tax ids and tax status; users' billing country; modules' tax code

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-02 06:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0028'
down_revision = '0027'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('accounts', sa.Column('billing_address', postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.add_column('accounts', sa.Column('tax_ids', postgresql.JSONB(astext_type=sa.Text()),
                                        server_default=sa.text("'[]'::jsonb"), nullable=False))
    op.add_column('accounts', sa.Column('tax_status', sa.String(length=16), server_default='taxable', nullable=False))
    op.add_column('users', sa.Column('billing_country', sa.String(length=2), nullable=True))
    op.add_column('catalog_modules', sa.Column('tax_code', sa.String(length=40), nullable=True))


def downgrade() -> None:
    op.drop_column('catalog_modules', 'tax_code')
    op.drop_column('users', 'billing_country')
    op.drop_column('accounts', 'tax_status')
    op.drop_column('accounts', 'tax_ids')
    op.drop_column('accounts', 'billing_address')
