"""Tables of accounts and users; every tenant table keys on account_id first."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKeyConstraint, Index, String, Text, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from app.accounts.tax import BillingAddress, TaxId, TaxStatus
from app.db import Base
from app.types import StructJSONB


class Account(Base):
    __tablename__ = "accounts"
    __table_args__ = (
        Index("ix_accounts_with_allowed_origins", "account_id",
              postgresql_where=text("cardinality(allowed_origins) > 0")),
    )

    account_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    external_id: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    segment: Mapped[str] = mapped_column(String(60), default="smb")
    region: Mapped[str] = mapped_column(String(60), default="us")
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    discount_bps: Mapped[int] = mapped_column(default=0)
    payment_terms_days: Mapped[int] = mapped_column(default=30)
    sales_team: Mapped[str | None] = mapped_column(String(200))
    sales_rep: Mapped[str | None] = mapped_column(String(200))
    stripe_customer_id: Mapped[str | None] = mapped_column(String(120))
    # web origins (scheme://host[:port]) where the vendor embeds the widget for this account (CORS)
    allowed_origins: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list, server_default=text("'{}'"))
    # tax identity (Stripe Tax): where the account is billed, its registrations, and how it is taxed
    billing_address: Mapped[BillingAddress | None] = mapped_column(StructJSONB(BillingAddress), default=None)
    tax_ids: Mapped[list[TaxId]] = mapped_column(StructJSONB(list[TaxId]), default=list,
                                                 server_default=text("'[]'::jsonb"))
    tax_status: Mapped[TaxStatus] = mapped_column(String(16), default="taxable", server_default="taxable")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        ForeignKeyConstraint(["account_id"], ["accounts.account_id"]),
        Index("ix_users_external_id", "external_id", unique=True),
        Index("ix_users_stripe_customer_id", "stripe_customer_id", unique=True,
              postgresql_where=text("stripe_customer_id IS NOT NULL")),
    )

    account_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    external_id: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    name: Mapped[str | None] = mapped_column(String(200))
    roles: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    cost_center: Mapped[str | None] = mapped_column(String(120))
    stripe_customer_id: Mapped[str | None] = mapped_column(String(120))
    billing_country: Mapped[str | None] = mapped_column(String(2), default=None)  # the card route's tax country
    # Every session token carries the generation it was minted at; bumping it revokes all earlier tokens.
    token_generation: Mapped[int] = mapped_column(server_default=text("0"))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
