"""record_purchase attribution (window, idempotency, holdout), record_denial, and the peer statistics recount."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.accounts.models import Account, User
from app.clock import FrozenClock
from app.ids import new_id
from entitlements import grant
from suggest import record_denial, record_purchase, refresh_account
from suggest.models import PeerStat, SegmentStat, SuggestionImpression, SuggestionOutcome
from suggest.peers import count_peers
from tests.factories import apply_demo_catalog


async def _users(session: AsyncSession, clock: FrozenClock, n: int, segment: str = "smb") -> list[User]:
    now = clock.now()
    account = Account(account_id=new_id("acct"), external_id=new_id("ext"), name="A", segment=segment,
                      created_at=now, updated_at=now)
    session.add(account)
    users = [User(account_id=account.account_id, user_id=new_id("usr"), external_id=new_id("u"),
                  roles=["analyst"] if i else ["admin"], created_at=now, updated_at=now) for i in range(n)]
    session.add_all(users)
    await session.flush()
    return users


def _shown(user: User, module: str, at: Any, holdout: bool = False) -> SuggestionImpression:
    return SuggestionImpression(account_id=user.account_id, suggestion_id=new_id("sug"), request_id=new_id("sgr"),
                                user_id=user.user_id, module=module, kind="purchase", surface="s", trigger=None,
                                rank=1, score=0.5, holdout=holdout, amount_minor=100, currency="USD", shown_at=at)


async def test_a_purchase_is_attributed_to_the_latest_suggestion_within_the_window(
        sessionmaker: async_sessionmaker[AsyncSession], clock: FrozenClock) -> None:
    async with sessionmaker() as s, s.begin():
        u = (await _users(s, clock, 2))[1]
        old, recent = _shown(u, "reports_pro", clock.now() - timedelta(days=9)), _shown(u, "reports_pro", clock.now())
        other = _shown(u, "advanced_charts", clock.now())
        s.add_all([old, recent, other])
        await s.flush()
        args: dict[str, Any] = {"account_id": u.account_id, "user_id": u.user_id, "currency": "USD"}
        inside = await record_purchase(s, **args, module="reports_pro", order_id="o1", amount_minor=2400,
                                       at=clock.now() + timedelta(days=6))
        outside = await record_purchase(s, **args, module="reports_pro", order_id="o2", amount_minor=2400,
                                        at=clock.now() + timedelta(days=8))
        replay = await record_purchase(s, **args, module="reports_pro", order_id="o1", amount_minor=2400,
                                       at=clock.now() + timedelta(days=6))
        before = await record_purchase(s, **args, module="geo_maps", order_id="o3", amount_minor=900,
                                       at=clock.now())
        rows = (await s.scalars(select(SuggestionOutcome).where(SuggestionOutcome.account_id == u.account_id))).all()
    assert inside == recent.suggestion_id and outside is None and replay == recent.suggestion_id and before is None
    assert len(rows) == 3  # the replay of o1 recorded nothing new
    assert {r.source_ref: r.suggestion_id for r in rows} == {"o1": recent.suggestion_id, "o2": None, "o3": None}


async def test_holdout_purchases_keep_their_group_and_denials_are_recorded_once(
        sessionmaker: async_sessionmaker[AsyncSession], clock: FrozenClock) -> None:
    async with sessionmaker() as s, s.begin():
        u = (await _users(s, clock, 2))[1]
        ghost = _shown(u, "comments", clock.now(), holdout=True)
        s.add(ghost)
        await s.flush()
        await record_purchase(s, account_id=u.account_id, user_id=u.user_id, module="comments", order_id="o9",
                              amount_minor=300, currency="USD", at=clock.now())
        for _ in range(2):
            await record_denial(s, account_id=u.account_id, user_id=u.user_id, module="geo_maps", approval_id="ap1",
                                at=clock.now())
        rows = (await s.scalars(select(SuggestionOutcome).where(SuggestionOutcome.account_id == u.account_id)
                                .order_by(SuggestionOutcome.kind))).all()
    assert [(r.kind, r.holdout) for r in rows] == [("admin_denied", None), ("purchase", True)]


def test_peer_counts_are_per_role_with_active_owners_and_pairs() -> None:
    users = {"u1": ["analyst"], "u2": ["analyst"], "u3": ["analyst", "manager"]}
    holdings = {"u1": frozenset({"a", "b"}), "u2": frozenset({"a"}), "u3": frozenset()}
    roles, owners, active, pairs = count_peers(users, holdings, {"u1": frozenset({"fa"})}, {"a": frozenset({"fa"})})
    assert roles == {"analyst": 3, "manager": 1}
    assert owners[("analyst", "a")] == 2 and active[("analyst", "a")] == 1 and active[("analyst", "b")] == 0
    assert pairs[("a", "a")] == 2 and pairs[("a", "b")] == 1 and ("manager", "a") not in owners


async def test_refresh_counts_grants_into_account_and_segment_statistics(
        sessionmaker: async_sessionmaker[AsyncSession], clock: FrozenClock) -> None:
    await apply_demo_catalog(sessionmaker, clock)
    async with sessionmaker() as s, s.begin():
        users = await _users(s, clock, 6, segment="seg-x")
        for i, u in enumerate(users[1:4]):
            await grant(s, account_id=u.account_id, user_id=u.user_id, module="advanced_charts", source="admin",
                        source_ref=f"g{i}", starts_at=clock.now() - timedelta(days=1), ends_at=None, clock=clock)
        counted = await refresh_account(s, users[0].account_id, now=clock.now(), unused_days=30)
        stat = await s.get(PeerStat, (users[0].account_id, "analyst", "advanced_charts"))
        seg = await s.get(SegmentStat, ("seg-x", "analyst", "advanced_charts"))
        await record_purchase(s, account_id=users[0].account_id, user_id=users[4].user_id, module="advanced_charts",
                              order_id="o1", amount_minor=1500, currency="USD", at=clock.now())
        bumped = await s.scalar(select(PeerStat.owners).where(
            PeerStat.account_id == users[0].account_id, PeerStat.role == "analyst",
            PeerStat.module == "advanced_charts").execution_options(populate_existing=True))
    assert counted == 6 and stat is not None and (stat.role_users, stat.owners) == (5, 3)
    assert seg is not None and (seg.accounts, seg.owners, seg.role_users) == (1, 3, 5)
    assert bumped == 3  # a recorded purchase changes no count: its grant's event does (test_suggest_maintained)
