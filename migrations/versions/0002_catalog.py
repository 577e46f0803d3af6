"""catalog: revisions, settings, categories, features, modules, versioned prices, policies (global tables)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 09:23:46.619586
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('catalog_categories',
    sa.Column('key', sa.String(length=60), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('revision', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_catalog_categories'))
    )
    op.create_table('catalog_features',
    sa.Column('key', sa.String(length=60), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('spec', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('revision', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_catalog_features'))
    )
    op.create_table('catalog_modules',
    sa.Column('key', sa.String(length=60), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('category', sa.String(length=60), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('trial_days', sa.BigInteger(), nullable=True),
    sa.Column('requires', postgresql.ARRAY(sa.Text()), nullable=False),
    sa.Column('excludes', postgresql.ARRAY(sa.Text()), nullable=False),
    sa.Column('revision', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_catalog_modules'))
    )
    op.create_index(op.f('ix_catalog_modules_category'), 'catalog_modules', ['category'], unique=False)
    op.create_table('catalog_policies',
    sa.Column('key', sa.String(length=60), nullable=False),
    sa.Column('module_key', sa.String(length=60), nullable=True),
    sa.Column('category', sa.String(length=60), nullable=True),
    sa.Column('spec', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('revision', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_catalog_policies'))
    )
    op.create_table('catalog_revisions',
    sa.Column('revision', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('applied_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=120), nullable=False),
    sa.Column('source_sha256', sa.String(length=64), nullable=False),
    sa.Column('change_count', sa.BigInteger(), nullable=False),
    sa.Column('summary', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('document', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.PrimaryKeyConstraint('revision', name=op.f('pk_catalog_revisions'))
    )
    op.create_table('catalog_settings',
    sa.Column('key', sa.String(length=60), nullable=False),
    sa.Column('value', sa.String(length=200), nullable=False),
    sa.Column('revision', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_catalog_settings'))
    )
    op.create_table('catalog_module_features',
    sa.Column('module_key', sa.String(length=60), nullable=False),
    sa.Column('feature_key', sa.String(length=60), nullable=False),
    sa.Column('limit_value', sa.BigInteger(), nullable=True),
    sa.Column('config_value', sa.String(length=500), nullable=True),
    sa.ForeignKeyConstraint(['feature_key'], ['catalog_features.key'], name=op.f('fk_catalog_module_features_feature_key_catalog_features')),
    sa.ForeignKeyConstraint(['module_key'], ['catalog_modules.key'], name=op.f('fk_catalog_module_features_module_key_catalog_modules')),
    sa.PrimaryKeyConstraint('module_key', 'feature_key', name=op.f('pk_catalog_module_features'))
    )
    op.create_index('ix_catalog_module_features_feature_key', 'catalog_module_features', ['feature_key'], unique=False)
    op.create_table('catalog_prices',
    sa.Column('price_id', sa.String(length=40), nullable=False),
    sa.Column('module_key', sa.String(length=60), nullable=False),
    sa.Column('slot', sa.String(length=40), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.Column('is_current', sa.Boolean(), nullable=False),
    sa.Column('model', sa.String(length=16), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=True),
    sa.Column('spec', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('migrate_existing_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revision', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('superseded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('superseded_revision', sa.BigInteger(), nullable=True),
    sa.CheckConstraint('amount_minor IS NULL OR amount_minor >= 0', name=op.f('ck_catalog_prices_amount_non_negative')),
    sa.CheckConstraint('version >= 1', name=op.f('ck_catalog_prices_version_positive')),
    sa.ForeignKeyConstraint(['module_key'], ['catalog_modules.key'], name=op.f('fk_catalog_prices_module_key_catalog_modules')),
    sa.PrimaryKeyConstraint('price_id', name=op.f('pk_catalog_prices')),
    sa.UniqueConstraint('module_key', 'slot', 'version', name=op.f('uq_catalog_prices_module_key_slot_version'))
    )
    op.create_index('ix_catalog_prices_current_slot', 'catalog_prices', ['module_key', 'slot'], unique=True, postgresql_where=sa.text('is_current'))


def downgrade() -> None:
    op.drop_index('ix_catalog_prices_current_slot', table_name='catalog_prices', postgresql_where=sa.text('is_current'))
    op.drop_table('catalog_prices')
    op.drop_index('ix_catalog_module_features_feature_key', table_name='catalog_module_features')
    op.drop_table('catalog_module_features')
    op.drop_table('catalog_settings')
    op.drop_table('catalog_revisions')
    op.drop_table('catalog_policies')
    op.drop_index(op.f('ix_catalog_modules_category'), table_name='catalog_modules')
    op.drop_table('catalog_modules')
    op.drop_table('catalog_features')
    op.drop_table('catalog_categories')
