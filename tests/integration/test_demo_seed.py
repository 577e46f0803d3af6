"""The demo seed (make demo) runs twice without duplicating anything and leaves grants and usage behind."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.accounts.models import User
from app.demo import DEMO_GRANTS, seed_demo
from app.settings import Settings
from entitlements.models import Grant, SeatAssignment, UsageCounter
from suggest.models import PeerStat


async def test_demo_seed_is_idempotent_and_has_entitlements(engine: AsyncEngine, settings: Settings,
                                                            sessionmaker: Any) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    first = await seed_demo(engine, settings)
    assert await seed_demo(engine, settings) == first
    async with sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(Grant).where(Grant.source == "plan")) == len(DEMO_GRANTS)
        assert await s.scalar(select(func.count()).select_from(SeatAssignment)) == 1
        ana = await s.scalar(select(User.user_id).where(User.external_id == "acme-ana"))
        assert await s.scalar(select(UsageCounter.used).where(UsageCounter.feature == "reports",
                                                              UsageCounter.user_id == ana)) == 36
        # the suggestion history: colleagues with grants (seeded once) and peer statistics
        assert await s.scalar(select(func.count()).select_from(Grant).where(Grant.source == "admin")) > 20
        assert await s.scalar(select(func.count()).select_from(PeerStat)) > 10
