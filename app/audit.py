"""Audit log: every mutation by a vendor key or a customer admin, with a before/after summary."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Identity, Index, String, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from app.clock import Clock
from app.db import Base
from app.logs import current_request_id


class AuditEntry(Base):
    """Global table: entries for vendor-level objects (catalog, keys) have no account."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_account_id_id", "account_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    account_id: Mapped[str | None] = mapped_column(String(40))
    occurred_at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(120))
    target_type: Mapped[str] = mapped_column(String(60))
    target_id: Mapped[str] = mapped_column(String(200))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    request_id: Mapped[str | None] = mapped_column(String(100))  # the request (X-Request-Id) that did it


async def record(
    session: AsyncSession, *, clock: Clock, actor: str, action: str, target_type: str, target_id: str,
    account_id: str | None = None, before: dict[str, Any] | None = None, after: dict[str, Any] | None = None,
) -> None:
    """Append one audit entry in the caller's transaction."""
    session.add(AuditEntry(
        account_id=account_id, occurred_at=clock.now(), actor=actor, action=action,
        target_type=target_type, target_id=target_id, before=before, after=after,
        request_id=current_request_id(),
    ))


async def list_entries(
    session: AsyncSession, *, account_id: str | None, after_id: int | None, limit: int,
) -> list[AuditEntry]:
    """Newest first; ``account_id=None`` lists the whole deployment (vendor view)."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if account_id is not None:
        query = query.where(AuditEntry.account_id == account_id)
    if after_id is not None:
        query = query.where(AuditEntry.id < after_id)
    return list((await session.scalars(query)).all())
