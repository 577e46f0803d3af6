"""Imports every package's tables so the metadata (and Alembic's autogenerate) sees all of them."""

from app.accounts.models import Account, User
from app.audit import AuditEntry
from app.db import Base
from app.idempotency import IdempotencyRecord
from app.keys import ApiKey
from app.outbox import OutboxEvent
from billing.stripe_events import StripeEventRecord

metadata = Base.metadata

__all__ = ["Account", "ApiKey", "AuditEntry", "IdempotencyRecord", "OutboxEvent", "StripeEventRecord", "User",
           "metadata"]
