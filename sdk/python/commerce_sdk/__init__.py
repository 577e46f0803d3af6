"""Python client of the commerce and entitlements API.

    from commerce_sdk import Commerce
    client = Commerce(api_key="sk_...", base_url="https://commerce.example.com")
    if client.entitlements.check("user-42", "pdf_export").allowed: ...
"""

from commerce_sdk import events
from commerce_sdk._async import AsyncCommerce
from commerce_sdk._http import RetryPolicy
from commerce_sdk._sync import Commerce
from commerce_sdk.entitlements import CachePolicy, Decision
from commerce_sdk.errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationRequired,
    BadRequest,
    BudgetExhausted,
    CardDeclined,
    CardSetupRequired,
    CommerceError,
    Conflict,
    FeatureNotFound,
    Forbidden,
    IdempotencyKeyReused,
    LimitExceeded,
    ModuleNotAvailable,
    NotFound,
    PaymentFailed,
    PurchaseBlocked,
    QuoteUnusable,
    RateLimited,
    SeatsExhausted,
    ServerError,
    TrialAlreadyUsed,
    Unauthorized,
    Unprocessable,
)
from commerce_sdk.usage import UsagePolicy
from commerce_sdk.webhooks import Event, WebhookVerificationError, verify

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AsyncCommerce",
    "AuthenticationRequired",
    "BadRequest",
    "BudgetExhausted",
    "CachePolicy",
    "CardDeclined",
    "CardSetupRequired",
    "Commerce",
    "CommerceError",
    "Conflict",
    "Decision",
    "Event",
    "FeatureNotFound",
    "Forbidden",
    "IdempotencyKeyReused",
    "LimitExceeded",
    "ModuleNotAvailable",
    "NotFound",
    "PaymentFailed",
    "PurchaseBlocked",
    "QuoteUnusable",
    "RateLimited",
    "RetryPolicy",
    "SeatsExhausted",
    "ServerError",
    "TrialAlreadyUsed",
    "Unauthorized",
    "Unprocessable",
    "UsagePolicy",
    "WebhookVerificationError",
    "events",
    "verify",
]
__version__ = "0.1.0"
