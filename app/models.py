"""Imports every package's tables so the metadata (and Alembic's autogenerate) sees all of them."""

from app.accounts.models import Account, User
from app.audit import AuditEntry
from app.console import ConsoleLink, ConsoleSession
from app.db import Base
from app.idempotency import IdempotencyRecord
from app.jobs.models import JobRun
from app.keys import ApiKey
from app.outbox import OutboxEvent
from app.ratelimit.models import RateLimitCounter, RateLimitNode
from app.webhooks.models import (
    WebhookAttempt,
    WebhookCursor,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookFanout,
)
from billing.models import (
    Approval,
    Budget,
    BudgetAlert,
    BudgetHold,
    BudgetPeriod,
    GuardrailVersion,
    LedgerEntry,
    Order,
    Quote,
    SalesCredit,
    Statement,
)
from billing.stripe.models import StripeEventRecord
from catalog.models import (
    CatalogCategory,
    CatalogFeature,
    CatalogModule,
    CatalogModuleFeature,
    CatalogPolicy,
    CatalogPrice,
    CatalogRevision,
    CatalogSetting,
)
from entitlements.models import (
    DemandSignal,
    Grant,
    SeatAssignment,
    Trial,
    UsageAlert,
    UsageCounter,
    UsageEvent,
    UsageEventKey,
)
from suggest.models import (
    LearnedWeights,
    PairStat,
    PeerStat,
    RoleStat,
    SegmentPair,
    SegmentRole,
    SegmentStat,
    StatsRefresh,
    SuggestionFeedback,
    SuggestionImpression,
    SuggestionOutcome,
)

metadata = Base.metadata

__all__ = [
    "Account",
    "ApiKey",
    "Approval",
    "AuditEntry",
    "Budget",
    "BudgetAlert",
    "BudgetHold",
    "BudgetPeriod",
    "CatalogCategory",
    "CatalogFeature",
    "CatalogModule",
    "CatalogModuleFeature",
    "CatalogPolicy",
    "CatalogPrice",
    "CatalogRevision",
    "CatalogSetting",
    "ConsoleLink",
    "ConsoleSession",
    "DemandSignal",
    "Grant",
    "GuardrailVersion",
    "IdempotencyRecord",
    "JobRun",
    "LearnedWeights",
    "LedgerEntry",
    "Order",
    "OutboxEvent",
    "PairStat",
    "PeerStat",
    "Quote",
    "RateLimitCounter",
    "RateLimitNode",
    "RoleStat",
    "SalesCredit",
    "SeatAssignment",
    "SegmentPair",
    "SegmentRole",
    "SegmentStat",
    "Statement",
    "StatsRefresh",
    "StripeEventRecord",
    "SuggestionFeedback",
    "SuggestionImpression",
    "SuggestionOutcome",
    "Trial",
    "UsageAlert",
    "UsageCounter",
    "UsageEvent",
    "UsageEventKey",
    "User",
    "WebhookAttempt",
    "WebhookCursor",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookFanout",
    "metadata",
]
