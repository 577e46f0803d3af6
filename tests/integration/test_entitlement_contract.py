"""The functions other packages call: grant, revoke, revoke_by_source, owned_modules, mark_trial_converted."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app.auth import VendorPrincipal
from app.clock import FrozenClock
from app.outbox import OutboxEvent
from entitlements import grant, mark_trial_converted, owned_modules, revoke, revoke_by_source
from entitlements.errors import TrialAlreadyUsed
from entitlements.models import Trial
from entitlements.service import catalog_view, start_trial, sweep
from tests.integration.test_entitlement_races import setup

VENDOR = VendorPrincipal(key_id="key_test", scopes=frozenset())


async def events(sessionmaker: Any, type_: str) -> list[dict[str, Any]]:
    async with sessionmaker() as s:
        return [e.payload for e in await s.scalars(select(OutboxEvent).where(OutboxEvent.type == type_))]


async def test_order_grants_are_revoked_by_source_and_ownership_follows(sessionmaker: Any,
                                                                        clock: FrozenClock) -> None:
    account_id, (user_id,) = await setup(sessionmaker, clock)
    now = clock.now()
    async with sessionmaker() as s, s.begin():
        for module in ("reports_basic", "reports_pro"):
            g = await grant(s, account_id=account_id, user_id=user_id, module=module, source="order",
                            source_ref="ord_1", starts_at=now, ends_at=None, clock=clock)
            assert g.grant_id.startswith("grt_")
        later = await grant(s, account_id=account_id, user_id=None, module="comments", source="plan",
                            source_ref="p", starts_at=now + timedelta(days=3), ends_at=None, clock=clock)
        assert await owned_modules(s, account_id, user_id, now=now) == {"reports_basic", "reports_pro"}
        assert "comments" in await owned_modules(s, account_id, user_id, now=now + timedelta(days=3))
    async with sessionmaker() as s, s.begin():
        revoked = await revoke_by_source(s, account_id=account_id, source="order", source_ref="ord_1",
                                         reason="refund", clock=clock)
        assert len(revoked) == 2 and all(g.revoked_at == now for g in revoked)
        assert await owned_modules(s, account_id, user_id, now=now) == frozenset()
        again = await revoke(s, account_id=account_id, grant_id=revoked[0].grant_id, reason="x", clock=clock)
        assert again.revoke_reason == "refund"  # revoking twice changes nothing
        await revoke(s, account_id=account_id, grant_id=later.grant_id, reason="cancel", clock=clock,
                     at=now + timedelta(days=10))
        assert "comments" in await owned_modules(s, account_id, user_id, now=now + timedelta(days=9))
        assert "comments" not in await owned_modules(s, account_id, user_id, now=now + timedelta(days=10))
    assert len(await events(sessionmaker, "entitlement.granted")) == 3
    assert len(await events(sessionmaker, "entitlement.revoked")) == 3


async def test_a_trial_converts_once_and_says_so_when_it_ends(sessionmaker: Any, clock: FrozenClock) -> None:
    account_id, (user_id,) = await setup(sessionmaker, clock)
    async with sessionmaker() as s, s.begin():
        view = await catalog_view(s)
        trial = await start_trial(s, VENDOR, "u0", "comments", view=view, scope="user", clock=clock)
    clock.advance(timedelta(days=3))
    async with sessionmaker() as s, s.begin():
        await mark_trial_converted(s, account_id=account_id, user_id=user_id, module="comments", clock=clock)
        await mark_trial_converted(s, account_id=account_id, user_id=user_id, module="comments", clock=clock)
        row = await s.get_one(Trial, (account_id, trial.id))
        assert row.converted_at == clock.now()
    clock.advance(timedelta(days=20))
    async with sessionmaker() as s, s.begin():
        assert (await sweep(s, clock=clock, trial_ending_days=3))["trial.ended"] == 1
    converted = await events(sessionmaker, "trial.converted")
    assert len(converted) == 1 and converted[0]["days_to_convert"] == 3
    assert (await events(sessionmaker, "trial.ended"))[0]["converted"] is True


async def test_account_scoped_trial_is_once_per_account(sessionmaker: Any, clock: FrozenClock) -> None:
    account_id, (_, other) = await setup(sessionmaker, clock, users=2)
    async with sessionmaker() as s, s.begin():
        view = await catalog_view(s)
        await start_trial(s, VENDOR, "u0", "comments", view=view, scope="account", clock=clock)
        assert "comments" in await owned_modules(s, account_id, other, now=clock.now())  # the whole account
    async with sessionmaker() as s, s.begin():
        with pytest.raises(TrialAlreadyUsed):
            await start_trial(s, VENDOR, "u1", "comments", view=view, scope="account", clock=clock)
