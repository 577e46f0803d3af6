"""usage events partitioned by month of occurred_at; event ids deduplicated in ent_usage_event_keys

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03 11:00:00.000000
"""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import op

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None

COLUMNS = ("account_id, event_id, user_id, feature, kind, quantity, occurred_at, period_start, properties, "
           "recorded_at")


def _month(offset: int) -> datetime:
    now = datetime.now(UTC)
    index = now.year * 12 + now.month - 1 + offset
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def upgrade() -> None:
    op.execute("ALTER TABLE ent_usage_events RENAME TO ent_usage_events_unpartitioned")
    op.execute("ALTER TABLE ent_usage_events_unpartitioned RENAME CONSTRAINT pk_ent_usage_events TO pk_old_usage")
    op.execute("ALTER TABLE ent_usage_events_unpartitioned "
               "RENAME CONSTRAINT ck_ent_usage_events_quantity_positive TO ck_old_usage_quantity")
    op.execute("ALTER INDEX ix_ent_usage_events_user RENAME TO ix_old_usage_user")
    op.execute("""
        CREATE TABLE ent_usage_events (
            account_id VARCHAR(40) NOT NULL,
            event_id VARCHAR(200) NOT NULL,
            user_id VARCHAR(40) NOT NULL,
            feature VARCHAR(60) NOT NULL,
            kind VARCHAR(16) NOT NULL,
            quantity BIGINT NOT NULL,
            occurred_at TIMESTAMP WITH TIME ZONE NOT NULL,
            period_start TIMESTAMP WITH TIME ZONE NOT NULL,
            properties JSONB,
            recorded_at TIMESTAMP WITH TIME ZONE NOT NULL,
            CONSTRAINT pk_ent_usage_events PRIMARY KEY (account_id, event_id, occurred_at),
            CONSTRAINT ck_ent_usage_events_quantity_positive CHECK (quantity > 0)
        ) PARTITION BY RANGE (occurred_at)""")
    op.execute("CREATE INDEX ix_ent_usage_events_user ON ent_usage_events (account_id, user_id, feature, occurred_at)")
    op.execute("CREATE TABLE ent_usage_events_default PARTITION OF ent_usage_events DEFAULT")
    for offset in range(-2, 4):  # the usage_partitions job keeps this window moving
        lo, hi = _month(offset), _month(offset + 1)
        op.execute(f"CREATE TABLE ent_usage_events_y{lo.year:04d}m{lo.month:02d} PARTITION OF ent_usage_events "
                   f"FOR VALUES FROM ('{lo.isoformat()}') TO ('{hi.isoformat()}')")
    op.execute("""
        CREATE TABLE ent_usage_event_keys (
            account_id VARCHAR(40) NOT NULL,
            event_id VARCHAR(200) NOT NULL,
            recorded_at TIMESTAMP WITH TIME ZONE NOT NULL,
            CONSTRAINT pk_ent_usage_event_keys PRIMARY KEY (account_id, event_id)
        )""")
    op.execute("CREATE INDEX ix_ent_usage_event_keys_recorded_at ON ent_usage_event_keys (recorded_at)")
    op.execute(f"INSERT INTO ent_usage_events ({COLUMNS}) SELECT {COLUMNS} FROM ent_usage_events_unpartitioned")  # noqa: S608
    op.execute("INSERT INTO ent_usage_event_keys (account_id, event_id, recorded_at) "
               "SELECT account_id, event_id, recorded_at FROM ent_usage_events_unpartitioned")
    op.execute("DROP TABLE ent_usage_events_unpartitioned")


def downgrade() -> None:
    op.execute("ALTER TABLE ent_usage_events RENAME TO ent_usage_events_partitioned")
    op.execute("ALTER TABLE ent_usage_events_partitioned RENAME CONSTRAINT pk_ent_usage_events TO pk_new_usage")
    op.execute("ALTER TABLE ent_usage_events_partitioned "
               "RENAME CONSTRAINT ck_ent_usage_events_quantity_positive TO ck_new_usage_quantity")
    op.execute("ALTER INDEX ix_ent_usage_events_user RENAME TO ix_new_usage_user")
    op.execute("""
        CREATE TABLE ent_usage_events (
            account_id VARCHAR(40) NOT NULL,
            event_id VARCHAR(200) NOT NULL,
            user_id VARCHAR(40) NOT NULL,
            feature VARCHAR(60) NOT NULL,
            kind VARCHAR(16) NOT NULL,
            quantity BIGINT NOT NULL,
            occurred_at TIMESTAMP WITH TIME ZONE NOT NULL,
            period_start TIMESTAMP WITH TIME ZONE NOT NULL,
            properties JSONB,
            recorded_at TIMESTAMP WITH TIME ZONE NOT NULL,
            CONSTRAINT pk_ent_usage_events PRIMARY KEY (account_id, event_id),
            CONSTRAINT ck_ent_usage_events_quantity_positive CHECK (quantity > 0)
        )""")
    op.execute("CREATE INDEX ix_ent_usage_events_user ON ent_usage_events (account_id, user_id, feature, occurred_at)")
    op.execute(f"INSERT INTO ent_usage_events ({COLUMNS}) SELECT {COLUMNS} FROM ent_usage_events_partitioned "  # noqa: S608
               "ON CONFLICT DO NOTHING")
    op.execute("DROP TABLE ent_usage_events_partitioned")
    op.execute("DROP TABLE ent_usage_event_keys")
