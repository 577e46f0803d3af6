"""``billing.buyer_facts`` (one statement) gives what the ordinary reads give (``resolve_user_and_account``,
``current_policy``, ``budget_and_state``): for a user with a cost centre's budget, one on the account-wide budget,
before and after the period's row exists, with and without a policy, in an account without budgets; and the same
404 for a user the principal may not see."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from app.accounts import service as accounts
from app.accounts.schemas import AccountUpsert, UserUpsert
from app.auth import VendorPrincipal
from app.clock import FrozenClock
from app.errors import NotFound
from app.ids import new_id
from billing import service as billing
from billing.domain import guardrails as g

VENDOR = VendorPrincipal(key_id="key_test", scopes=frozenset({"billing:read"}))


async def _ordinary(s: Any, principal: Any, ref: str, clock: FrozenClock) -> tuple[Any, ...]:
    user, account = await accounts.resolve_user_and_account(s, principal, ref)
    version, policy = await billing.current_policy(s, account)
    _, state, _ = await billing.budget_and_state(s, account.account_id, user.cost_center, now=clock.now())
    funds = g.BudgetState(currency=state.budget.currency, remaining_minor=state.remaining_minor) if state else None
    return user.user_id, user.roles, user.cost_center, account.account_id, account.currency, version, policy, funds


async def _one(s: Any, principal: Any, ref: str, clock: FrozenClock) -> tuple[Any, ...]:
    found = await billing.buyer_facts(s, principal, ref, now=clock.now())
    assert found is not None
    user, account = found.user, found.account
    return (user.user_id, user.roles, user.cost_center, account.account_id, account.currency, found.policy_version,
            found.policy, found.funds)


async def test_one_statement_reads_what_the_ordinary_reads_do(sessionmaker: Any, clock: FrozenClock) -> None:
    async with sessionmaker() as s, s.begin():
        acme, _ = await accounts.upsert_account(s, AccountUpsert(external_id="acme", name="Acme"), actor="t",
                                                clock=clock)
        bare, _ = await accounts.upsert_account(s, AccountUpsert(external_id="bare", name="Bare"), actor="t",
                                                clock=clock)
        for ref, account, cc in (("eng-1", acme, "eng"), ("ops-1", acme, "ops"), ("none-1", acme, None),
                                 ("bare-1", bare, None)):
            await accounts.upsert_user(s, account, UserUpsert(external_id=ref, roles=["analyst"], cost_center=cc),
                                       actor="t", clock=clock)
        await billing.create_budget(s, acme, name="All", currency="USD", amount_minor=100_000, cost_center=None,
                                    anchor_day=1, actor="t", clock=clock)
        eng = await billing.create_budget(s, acme, name="Eng", currency="USD", amount_minor=30_000,
                                          cost_center="eng", anchor_day=15, actor="t", clock=clock)
    refs = ("eng-1", "ops-1", "none-1", "bare-1")
    async with sessionmaker() as s, s.begin():  # no policy, no period rows yet
        for ref in refs:
            assert await _one(s, VENDOR, ref, clock) == await _ordinary(s, VENDOR, ref, clock)
    async with sessionmaker() as s, s.begin():  # a policy, and money held and captured on the eng budget
        await billing.save_policy(s, acme, g.GuardrailPolicy(auto_approve_limit_minor=1_000), actor="t", clock=clock)
        await billing.reserve(s, eng, order_id=new_id("ord"), amount_minor=2_500, clock=clock)
        await billing.reserve(s, eng, order_id=new_id("ord"), amount_minor=1_200, clock=clock, capture_now=True)
    async with sessionmaker() as s, s.begin():
        for ref in refs:
            assert await _one(s, VENDOR, ref, clock) == await _ordinary(s, VENDOR, ref, clock)
        eng_facts = await billing.buyer_facts(s, VENDOR, "eng-1", now=clock.now())
        assert eng_facts is not None and eng_facts.funds == g.BudgetState(currency="USD", remaining_minor=26_300)
        assert eng_facts.policy_version == 1 and eng_facts.policy.auto_approve_limit_minor == 1_000
    clock.advance(timedelta(days=40))  # a new period: the budget's amount untouched, as before its first hold
    async with sessionmaker() as s, s.begin():
        for ref in refs:
            assert await _one(s, VENDOR, ref, clock) == await _ordinary(s, VENDOR, ref, clock)
        # not found by external id (e.g. our own id): the caller's ordinary reads look further
        assert await billing.buyer_facts(s, VENDOR, "nobody", now=clock.now()) is None
        # a key bound to another account: the same 404 as the ordinary read
        other = VendorPrincipal(key_id="key_bound", scopes=VENDOR.scopes, account_ids=frozenset({bare.account_id}))
        with pytest.raises(NotFound) as ordinary:
            await accounts.resolve_user_and_account(s, other, "eng-1")
        with pytest.raises(NotFound) as one:
            await billing.buyer_facts(s, other, "eng-1", now=clock.now())
        assert str(one.value) == str(ordinary.value)
