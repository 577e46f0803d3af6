"""entitlements: grants, seat assignments, trials, usage events and counters, demand signals (tenant tables)

Revision ID: 0006
Revises: 0004
Create Date: 2026-11-23 09:47:17.958620
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0006'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ent_demand_signals',
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('user_id', sa.String(length=40), nullable=False),
    sa.Column('feature', sa.String(length=60), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('denied_checks', sa.BigInteger(), nullable=False),
    sa.Column('attempts', sa.BigInteger(), nullable=False),
    sa.Column('last_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('account_id', 'user_id', 'feature', 'day', name=op.f('pk_ent_demand_signals'))
    )
    op.create_table('ent_usage_counters',
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('user_id', sa.String(length=40), nullable=False),
    sa.Column('feature', sa.String(length=60), nullable=False),
    sa.Column('period_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('period_end', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('used >= 0', name=op.f('ck_ent_usage_counters_used_not_negative')),
    sa.PrimaryKeyConstraint('account_id', 'user_id', 'feature', 'period_start', name=op.f('pk_ent_usage_counters'))
    )
    op.create_table('ent_usage_events',
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('event_id', sa.String(length=200), nullable=False),
    sa.Column('user_id', sa.String(length=40), nullable=False),
    sa.Column('feature', sa.String(length=60), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('quantity', sa.BigInteger(), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('period_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('properties', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('quantity > 0', name=op.f('ck_ent_usage_events_quantity_positive')),
    sa.PrimaryKeyConstraint('account_id', 'event_id', name=op.f('pk_ent_usage_events'))
    )
    op.create_index('ix_ent_usage_events_user', 'ent_usage_events', ['account_id', 'user_id', 'feature', 'occurred_at'], unique=False)
    op.create_table('ent_grants',
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('grant_id', sa.String(length=40), nullable=False),
    sa.Column('user_id', sa.String(length=40), nullable=True),
    sa.Column('module', sa.String(length=60), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('source_ref', sa.String(length=200), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('seats', sa.BigInteger(), nullable=True),
    sa.Column('seats_assigned', sa.BigInteger(), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoke_reason', sa.String(length=500), nullable=True),
    sa.Column('expired_event_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('ends_at IS NULL OR ends_at >= starts_at', name=op.f('ck_ent_grants_ends_after_start')),
    sa.CheckConstraint('seats IS NULL OR (user_id IS NULL AND seats > 0)', name=op.f('ck_ent_grants_seats_account_wide')),
    sa.CheckConstraint('seats_assigned >= 0 AND (seats IS NULL OR seats_assigned <= seats)', name=op.f('ck_ent_grants_seats_bound')),
    sa.ForeignKeyConstraint(['account_id', 'user_id'], ['users.account_id', 'users.user_id'], name=op.f('fk_ent_grants_account_id_user_id_users')),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.account_id'], name=op.f('fk_ent_grants_account_id_accounts')),
    sa.PrimaryKeyConstraint('account_id', 'grant_id', name=op.f('pk_ent_grants')),
    sa.UniqueConstraint('account_id', 'source', 'source_ref', 'module', name=op.f('uq_ent_grants_account_id_source_source_ref_module'))
    )
    op.create_index('ix_ent_grants_account_id_user_id', 'ent_grants', ['account_id', 'user_id'], unique=False)
    op.create_index('ix_ent_grants_pending_expiry', 'ent_grants', ['ends_at'], unique=False, postgresql_where=sa.text('expired_event_at IS NULL'))
    op.create_table('ent_seat_assignments',
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('grant_id', sa.String(length=40), nullable=False),
    sa.Column('user_id', sa.String(length=40), nullable=False),
    sa.Column('assigned_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id', 'grant_id'], ['ent_grants.account_id', 'ent_grants.grant_id'], name=op.f('fk_ent_seat_assignments_account_id_grant_id_ent_grants')),
    sa.ForeignKeyConstraint(['account_id', 'user_id'], ['users.account_id', 'users.user_id'], name=op.f('fk_ent_seat_assignments_account_id_user_id_users')),
    sa.PrimaryKeyConstraint('account_id', 'grant_id', 'user_id', name=op.f('pk_ent_seat_assignments'))
    )
    op.create_index('ix_ent_seat_assignments_account_id_user_id', 'ent_seat_assignments', ['account_id', 'user_id'], unique=False)
    op.create_table('ent_trials',
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('trial_id', sa.String(length=40), nullable=False),
    sa.Column('subject', sa.String(length=40), nullable=False),
    sa.Column('user_id', sa.String(length=40), nullable=True),
    sa.Column('module', sa.String(length=60), nullable=False),
    sa.Column('grant_id', sa.String(length=40), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ending_event_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_event_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('converted_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['account_id', 'grant_id'], ['ent_grants.account_id', 'ent_grants.grant_id'], name=op.f('fk_ent_trials_account_id_grant_id_ent_grants')),
    sa.PrimaryKeyConstraint('account_id', 'trial_id', name=op.f('pk_ent_trials')),
    sa.UniqueConstraint('account_id', 'module', 'subject', name=op.f('uq_ent_trials_account_id_module_subject'))
    )
    op.create_index('ix_ent_trials_ends_at', 'ent_trials', ['ends_at'], unique=False, postgresql_where=sa.text('ended_event_at IS NULL'))


def downgrade() -> None:
    op.drop_index('ix_ent_trials_ends_at', table_name='ent_trials', postgresql_where=sa.text('ended_event_at IS NULL'))
    op.drop_table('ent_trials')
    op.drop_index('ix_ent_seat_assignments_account_id_user_id', table_name='ent_seat_assignments')
    op.drop_table('ent_seat_assignments')
    op.drop_index('ix_ent_grants_pending_expiry', table_name='ent_grants', postgresql_where=sa.text('expired_event_at IS NULL'))
    op.drop_index('ix_ent_grants_account_id_user_id', table_name='ent_grants')
    op.drop_table('ent_grants')
    op.drop_index('ix_ent_usage_events_user', table_name='ent_usage_events')
    op.drop_table('ent_usage_events')
    op.drop_table('ent_usage_counters')
    op.drop_table('ent_demand_signals')
