"""console sign-in: one-time console links and cookie console sessions

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-02 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0027'
down_revision = '0026'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('console_links',
    sa.Column('link_id', sa.String(length=40), nullable=False),
    sa.Column('secret_sha256', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('account_id', sa.String(length=40), nullable=True),
    sa.Column('user_id', sa.String(length=40), nullable=True),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("kind IN ('admin', 'vendor')", name=op.f('ck_console_links_kind_known')),
    sa.CheckConstraint("kind = 'vendor' OR (account_id IS NOT NULL AND user_id IS NOT NULL)",
                       name=op.f('ck_console_links_admin_has_user')),
    sa.PrimaryKeyConstraint('link_id', name=op.f('pk_console_links')),
    )
    op.create_table('console_sessions',
    sa.Column('session_id', sa.String(length=40), nullable=False),
    sa.Column('secret_sha256', sa.String(length=64), nullable=False),
    sa.Column('csrf_token', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('account_id', sa.String(length=40), nullable=True),
    sa.Column('user_id', sa.String(length=40), nullable=True),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('token_generation', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("kind IN ('admin', 'vendor')", name=op.f('ck_console_sessions_kind_known')),
    sa.PrimaryKeyConstraint('session_id', name=op.f('pk_console_sessions')),
    )
    op.create_index('ix_console_sessions_account_id', 'console_sessions', ['account_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_console_sessions_account_id', table_name='console_sessions')
    op.drop_table('console_sessions')
    op.drop_table('console_links')
