"""The offers a user sees: the catalog's availability over what the user holds now."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

import catalog
from app.accounts import resolve_user
from app.auth import Principal
from catalog.schemas import OfferList
from entitlements.service._grants import owned_modules, trials_used


async def user_offers(session: AsyncSession, principal: Principal, user_ref: str, *, now: datetime) -> OfferList:
    """Every module the user may see and buy; tenancy as ``resolve_user`` enforces it."""
    user = await resolve_user(session, principal, user_ref)
    owned = await owned_modules(session, user.account_id, user.user_id, now=now)
    used = await trials_used(session, user.account_id, user.user_id)
    return await catalog.offers_for(session, user, owned=owned, trials_used=used)
