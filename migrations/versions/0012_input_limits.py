"""input limits: sales team and rep hold the 200 characters the API accepts (accounts, sales credits)

Revision ID: 0012
Revises: 0007
Create Date: 2026-12-01 23:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0013'
branch_labels = None
depends_on = None

# Widening a varchar is a catalog-only change in PostgreSQL (no table rewrite, no long lock).
_COLUMNS = (('accounts', 'sales_team'), ('accounts', 'sales_rep'), ('sales_credits', 'team'), ('sales_credits', 'rep'))


def upgrade() -> None:
    for table, column in _COLUMNS:
        op.alter_column(table, column, existing_type=sa.String(length=120), type_=sa.String(length=200),
                        existing_nullable=True)


def downgrade() -> None:
    # Values longer than the old limit are cut to it: the narrower column cannot hold them.
    for table, column in _COLUMNS:
        op.alter_column(table, column, existing_type=sa.String(length=200), type_=sa.String(length=120),
                        existing_nullable=True, postgresql_using=f'left({column}, 120)')
