"""The demo seed (make demo) runs twice without duplicating anything and leaves grants and usage behind."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.demo import DEMO_GRANTS, seed_demo
from app.settings import Settings
from entitlements.models import Grant, SeatAssignment, UsageCounter


async def test_demo_seed_is_idempotent_and_has_entitlements(engine: AsyncEngine, settings: Settings,
                                                            sessionmaker: Any) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    first = await seed_demo(engine, settings)
    assert await seed_demo(engine, settings) == first
    async with sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(Grant)) == len(DEMO_GRANTS)
        assert await s.scalar(select(func.count()).select_from(SeatAssignment)) == 1
        assert await s.scalar(select(UsageCounter.used).where(UsageCounter.feature == "reports")) == 36
