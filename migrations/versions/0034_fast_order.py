"""fast order: the function a one-statement fast path calls to refuse (and so roll back) the whole statement

Revision ID: 0034
Revises: 0033
Create Date: 2026-12-02 12:20:00.000000
"""

from __future__ import annotations

from alembic import op

revision = '0034'
down_revision = '0033'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # VOLATILE, so the planner never evaluates it ahead of the CASE that guards it
    op.execute("""
        CREATE FUNCTION commerce_fast_abort(reason text) RETURNS boolean
        LANGUAGE plpgsql VOLATILE AS $$
        BEGIN
            RAISE EXCEPTION 'commerce_fast_path:%', reason USING ERRCODE = 'P0001';
        END
        $$
    """)


def downgrade() -> None:
    op.execute("DROP FUNCTION commerce_fast_abort(text)")
