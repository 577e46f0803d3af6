"""HTTP contract of accounts, users and session tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from msgspec import Meta

from app.accounts.tax import BillingAddress, Country, TaxId, TaxStatus
from app.schemas import Currency, Email, ExternalId, Input, Name, Output, Role, Slug

DiscountBps = Annotated[int, Meta(ge=0, le=10_000, description="Contract discount in basis points")]
TermsDays = Annotated[int, Meta(ge=0, le=365)]
TtlSeconds = Annotated[int, Meta(ge=30, le=86_400)]
WebOrigin = Annotated[str, Meta(
    min_length=8, max_length=255, pattern=r"^[Hh][Tt][Tt][Pp][Ss]?://[^/?#*@\s\x00-\x1f\x7f\x85\ufeff]+$",
    description="A web origin as browsers send it: scheme://host[:port], no path", examples=["https://app.example.com"],
)]
AllowedOrigins = Annotated[list[WebOrigin], Meta(
    max_length=20, description="Web origins where the widget runs for this account (CORS for its session tokens); "
                               "omitted = unchanged, [] = none")]


class AccountUpsert(Input):
    """Create or update an account by the vendor's external id."""

    external_id: ExternalId
    name: Name
    segment: Slug = "smb"
    region: Slug = "us"
    currency: Currency = "USD"
    discount_bps: DiscountBps = 0
    payment_terms_days: TermsDays = 30
    sales_team: Name | None = None
    sales_rep: Name | None = None
    allowed_origins: AllowedOrigins | None = None
    billing_address: BillingAddress | None = None  # omitted: unchanged
    tax_ids: Annotated[list[TaxId], Meta(max_length=10)] | None = None  # omitted: unchanged; [] = none
    tax_status: TaxStatus | None = None  # omitted: unchanged (new accounts: taxable)


class AccountRead(Output, frozen=True):
    id: str
    external_id: str
    name: str
    segment: str
    region: str
    currency: str
    discount_bps: int
    payment_terms_days: int
    sales_team: str | None
    sales_rep: str | None
    allowed_origins: list[str]
    billing_address: BillingAddress | None
    tax_ids: list[TaxId]
    tax_status: TaxStatus
    created_at: datetime
    updated_at: datetime


class AccountPage(Output, frozen=True):
    data: list[AccountRead]
    next_cursor: str | None


class UserUpsert(Input):
    """Create or update a user of an account by the vendor's external id (unique in the deployment)."""

    external_id: ExternalId
    email: Email | None = None
    name: Name | None = None
    roles: Annotated[list[Role], Meta(max_length=50)] = []
    cost_center: Slug | None = None
    billing_country: Country | None = None  # the card route taxes a user's purchase for this country


class UserRead(Output, frozen=True):
    id: str
    account: str
    external_id: str
    email: str | None
    name: str | None
    roles: list[str]
    cost_center: str | None
    billing_country: str | None
    created_at: datetime
    updated_at: datetime


class UserPage(Output, frozen=True):
    data: list[UserRead]
    next_cursor: str | None


class SessionTokenCreate(Input):
    """Mint a session token so the widget or admin console acts as this user."""

    account: ExternalId
    user: ExternalId
    roles: Annotated[list[Role], Meta(max_length=50)] | None = None
    ttl_seconds: TtlSeconds | None = None


class SessionTokenRead(Output, frozen=True):
    token: str
    token_type: str
    expires_at: datetime
    account: str
    user: str
    roles: list[str]
    is_admin: bool


class TokenRevocationRead(Output, frozen=True):
    """Every session token the user held was revoked at ``revoked_at``; tokens minted afterwards work."""

    account: str
    user: str
    revoked_at: datetime


class Me(Output, frozen=True):
    account: str
    user: str
    roles: list[str]
    is_admin: bool


class AdminConsoleLink(Input, tag_field="console", tag="admin"):
    """A one-time sign-in link to the admin console for a customer admin of the account."""

    account: ExternalId
    user: ExternalId


class VendorConsoleLink(Input, tag_field="console", tag="vendor"):
    """A one-time sign-in link to the vendor console for a member of the vendor's staff (global keys only)."""

    email: Email


ConsoleLinkCreate = AdminConsoleLink | VendorConsoleLink


class ConsoleLinkRead(Output, frozen=True):
    console: str
    path: Annotated[str, Meta(description="Open this path on the service (once, before expires_at) to sign in")]
    url: str
    expires_at: datetime
