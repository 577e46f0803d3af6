"""suggestions: impressions, feedback, outcomes (tenant tables); peer statistics per account and per segment

Revision ID: 0007
Revises: 0009
Create Date: 2026-11-23 10:19:57.415399
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sug_outcomes',
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('outcome_id', sa.String(length=40), nullable=False),
    sa.Column('user_id', sa.String(length=40), nullable=False),
    sa.Column('module', sa.String(length=60), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('source_ref', sa.String(length=200), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('suggestion_id', sa.String(length=40), nullable=True),
    sa.Column('holdout', sa.Boolean(), nullable=True),
    sa.CheckConstraint("kind IN ('purchase', 'admin_denied')", name=op.f('ck_sug_outcomes_kind_known')),
    sa.CheckConstraint('amount_minor >= 0', name=op.f('ck_sug_outcomes_amount_not_negative')),
    sa.PrimaryKeyConstraint('account_id', 'outcome_id', name=op.f('pk_sug_outcomes')),
    sa.UniqueConstraint('account_id', 'kind', 'source_ref', 'module', name=op.f('uq_sug_outcomes_account_id_kind_source_ref_module'))
    )
    op.create_index('ix_sug_outcomes_at', 'sug_outcomes', ['at'], unique=False)
    op.create_index('ix_sug_outcomes_user', 'sug_outcomes', ['account_id', 'user_id', 'at'], unique=False)
    op.create_table('sug_pair_stats',
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('module_a', sa.String(length=60), nullable=False),
    sa.Column('module_b', sa.String(length=60), nullable=False),
    sa.Column('users', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('account_id', 'module_a', 'module_b', name=op.f('pk_sug_pair_stats'))
    )
    op.create_table('sug_peer_stats',
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('role', sa.String(length=60), nullable=False),
    sa.Column('module', sa.String(length=60), nullable=False),
    sa.Column('role_users', sa.BigInteger(), nullable=False),
    sa.Column('owners', sa.BigInteger(), nullable=False),
    sa.Column('active_owners', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('account_id', 'role', 'module', name=op.f('pk_sug_peer_stats'))
    )
    op.create_table('sug_segment_pairs',
    sa.Column('segment', sa.String(length=60), nullable=False),
    sa.Column('module_a', sa.String(length=60), nullable=False),
    sa.Column('module_b', sa.String(length=60), nullable=False),
    sa.Column('users', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('segment', 'module_a', 'module_b', name=op.f('pk_sug_segment_pairs'))
    )
    op.create_table('sug_segment_stats',
    sa.Column('segment', sa.String(length=60), nullable=False),
    sa.Column('role', sa.String(length=60), nullable=False),
    sa.Column('module', sa.String(length=60), nullable=False),
    sa.Column('accounts', sa.BigInteger(), nullable=False),
    sa.Column('role_users', sa.BigInteger(), nullable=False),
    sa.Column('owners', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('segment', 'role', 'module', name=op.f('pk_sug_segment_stats'))
    )
    op.create_table('sug_stats_refresh',
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('users', sa.BigInteger(), nullable=False),
    sa.Column('refreshed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('account_id', name=op.f('pk_sug_stats_refresh'))
    )
    op.create_table('sug_impressions',
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('suggestion_id', sa.String(length=40), nullable=False),
    sa.Column('request_id', sa.String(length=40), nullable=False),
    sa.Column('user_id', sa.String(length=40), nullable=False),
    sa.Column('module', sa.String(length=60), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('surface', sa.String(length=60), nullable=False),
    sa.Column('trigger', sa.String(length=20), nullable=True),
    sa.Column('rank', sa.BigInteger(), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('holdout', sa.Boolean(), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=True),
    sa.Column('shown_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id', 'user_id'], ['users.account_id', 'users.user_id'], name=op.f('fk_sug_impressions_account_id_user_id_users')),
    sa.PrimaryKeyConstraint('account_id', 'suggestion_id', name=op.f('pk_sug_impressions'))
    )
    op.create_index('ix_sug_impressions_shown_at', 'sug_impressions', ['shown_at'], unique=False)
    op.create_index('ix_sug_impressions_user_module', 'sug_impressions', ['account_id', 'user_id', 'module', 'shown_at'], unique=False)
    op.create_index('ix_sug_impressions_user_surface', 'sug_impressions', ['account_id', 'user_id', 'surface', 'shown_at'], unique=False)
    op.create_table('sug_feedback',
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('suggestion_id', sa.String(length=40), nullable=False),
    sa.Column('action', sa.String(length=10), nullable=False),
    sa.Column('user_id', sa.String(length=40), nullable=False),
    sa.Column('module', sa.String(length=60), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("action IN ('click', 'dismiss')", name=op.f('ck_sug_feedback_action_known')),
    sa.ForeignKeyConstraint(['account_id', 'suggestion_id'], ['sug_impressions.account_id', 'sug_impressions.suggestion_id'], name=op.f('fk_sug_feedback_account_id_suggestion_id_sug_impressions')),
    sa.PrimaryKeyConstraint('account_id', 'suggestion_id', 'action', name=op.f('pk_sug_feedback'))
    )
    op.create_index('ix_sug_feedback_user', 'sug_feedback', ['account_id', 'user_id', 'action', 'at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_sug_feedback_user', table_name='sug_feedback')
    op.drop_table('sug_feedback')
    op.drop_index('ix_sug_impressions_user_surface', table_name='sug_impressions')
    op.drop_index('ix_sug_impressions_user_module', table_name='sug_impressions')
    op.drop_index('ix_sug_impressions_shown_at', table_name='sug_impressions')
    op.drop_table('sug_impressions')
    op.drop_table('sug_stats_refresh')
    op.drop_table('sug_segment_stats')
    op.drop_table('sug_segment_pairs')
    op.drop_table('sug_peer_stats')
    op.drop_table('sug_pair_stats')
    op.drop_index('ix_sug_outcomes_user', table_name='sug_outcomes')
    op.drop_index('ix_sug_outcomes_at', table_name='sug_outcomes')
    op.drop_table('sug_outcomes')
