"""tables updated in place many times keep 30 % of each page free (fillfactor 70), so their updates are HOT:
usage counters, demand signals, budget period balances

Revision ID: 0036
Revises: 0035
Create Date: 2026-12-03 02:40:00.000000
"""

from __future__ import annotations

from alembic import op

revision = '0036'
down_revision = '0035'
branch_labels = None
depends_on = None

TABLES = ("ent_usage_counters", "ent_demand_signals", "budget_periods")


def upgrade() -> None:
    # only pages written from now on keep the room; existing ones get it as they are rewritten (VACUUM FULL or
    # pg_repack, if an operator wants it at once: docs/operations.md)
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} SET (fillfactor = 70)")


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
