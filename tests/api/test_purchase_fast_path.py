"""The purchase fast path (one read, one statement) writes exactly the rows, events and answer of the ordinary
path, refuses exactly as it does, and keeps the purchase invariants: a crash before or after its statement."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select

import billing.service
import billing.service._fast_order as fast
from app.accounts.models import Account
from app.outbox import OutboxEvent
from billing.models import Budget, BudgetPeriod, LedgerEntry, Order, SalesCredit
from billing.service import _fast_memo as memo
from tests.api.test_auth import assert_problem
from tests.api.test_purchase import budget, key, order, quote  # noqa: F401  (fixtures)
from tests.factories import Tenant, bearer, make_tenant

_ID = re.compile(r"\b[a-z]{2,6}_[0-9a-z]{26}\b")
# request bookkeeping, not the purchase
_SKIP = {"alembic_version", "api_keys", "rate_limit_counters", "rate_limit_nodes"}
# values that differ between any two requests: sequence numbers, the writing transaction, per-attempt tokens
_VOLATILE = {"seq", "entry_id", "id", "xid", "claim_token", "request_id", "key", "request_sha256", "response_body"}


async def _rows(dsn: str) -> dict[str, set[str]]:
    conn = await asyncpg.connect(dsn)
    try:
        tables = [r[0] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        return {t: {r[0] for r in await conn.fetch(f'SELECT to_jsonb(t)::text FROM "{t}" t')}
                for t in tables if t not in _SKIP}
    finally:
        await conn.close()


def _normal(row: str, tenant: str) -> str:
    data = {k: v for k, v in json.loads(row).items() if k not in _VOLATILE}
    if "created_at" in data and "xid" in json.loads(row):
        data.pop("created_at")  # ent_changes: stamped by the server's clock
    text = _ID.sub(lambda m: m.group(0).split("_")[0] + "_*", json.dumps(data, sort_keys=True))
    return text.replace(tenant, "TENANT")


def _changed(before: dict[str, set[str]], after: dict[str, set[str]], tenant: Tenant) -> dict[str, list[str]]:
    changed = {t: sorted(_normal(x, tenant.account) for x in after[t] - before.get(t, set())) for t in after}
    return {t: rows for t, rows in changed.items() if rows}


# a suggestion of reports_basic shown yesterday (the purchase is attributed to it), and the buyer's roles already
# counted as peers owning it (the purchase adds an owner, up to the role's users)
_SHOWN = """
INSERT INTO sug_impressions (account_id, suggestion_id, request_id, user_id, module, kind, surface, trigger, rank,
                             score, holdout, amount_minor, currency, shown_at)
SELECT account_id, 'sug_' || left(md5(user_id), 26), 'sgr_1', user_id, 'reports_basic', 'purchase', 'widget',
       NULL, 1, 0.5, false, 225, 'USD', '2026-11-22T12:00:00Z' FROM users WHERE external_id = $1;
INSERT INTO sug_peer_stats (account_id, role, module, role_users, owners, active_owners)
SELECT account_id, unnest(roles), 'reports_basic', 5, 1, 0 FROM users WHERE external_id = $1
"""


async def _seen_before(dsn: str, user: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for part in _SHOWN.split(";"):
            await conn.execute(part, user)
    finally:
        await conn.close()


async def _purchase_rows(client: AsyncTestClient[Any], dsn: str, tenant: Tenant,
                         key: str) -> tuple[dict[str, list[str]], dict[str, Any]]:  # noqa: F811
    await budget(client, key, 100_000, account=tenant.account)
    await _seen_before(dsn, tenant.user)
    before = await _rows(dsn)
    q = await quote(client, tenant.user_token, tenant.user, "reports_basic", "comments")
    quoted = _changed(before, await _rows(dsn), tenant)
    assert list(quoted) == ["quotes"], quoted
    before = await _rows(dsn)
    r = await order(client, tenant.user_token, q["id"])
    assert r.status_code == 201, r.text
    after = await _rows(dsn)
    answers = [_ID.sub(lambda m: m.group(0).split("_")[0] + "_*", x).replace(tenant.account, "T")
               for x in (json.dumps(q), r.text)]
    return {**_changed(before, after, tenant), "quote": quoted["quotes"]}, {"quote": answers[0], "order": answers[1]}


def _off(monkeypatch: pytest.MonkeyPatch) -> None:
    async def ordinary(*args: Any, **kwargs: Any) -> None:
        return None

    monkeypatch.setattr(billing.service, "fast_order", ordinary)
    monkeypatch.setattr(billing.service, "fast_quote", ordinary)


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The fast path's statements, as they reach the driver."""
    seen: list[str] = []
    real = fast._build

    def build(*args: Any, **kwargs: Any) -> Any:
        built = real(*args, **kwargs)
        if built is not None:
            seen.append(built[0].sql())
        return built

    monkeypatch.setattr(fast, "_build", build)
    return seen


def _quote_spy(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each quote took the fast path."""
    answered: list[bool] = []
    real = billing.service.fast_quote

    async def spy(*args: Any, **kwargs: Any) -> Any:
        found = await real(*args, **kwargs)
        answered.append(found is not None)
        return found

    monkeypatch.setattr(billing.service, "fast_quote", spy)
    return answered


async def test_the_fast_path_writes_the_rows_and_answer_the_ordinary_path_writes(
    client: AsyncTestClient[Any], key: str, settings: Any, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
) -> None:
    dsn = settings.database_url.replace("postgresql+asyncpg://", "postgresql://")
    acme = await make_tenant(client, key, "acme")
    await quote(client, acme.user_token, acme.user, "reports_basic")  # the process caches the live catalog
    seen = _spy(monkeypatch)
    quotes = _quote_spy(monkeypatch)
    fast_rows, fast_answer = await _purchase_rows(client, dsn, acme, key)
    assert quotes == [True], "the quote took the fast path"
    assert len(seen) == 1, "the purchase took the fast path"
    assert "memo_changed" in seen[0], "the order decided from what the quote read (D99)"
    _off(monkeypatch)
    slow_rows, slow_answer = await _purchase_rows(client, dsn, await make_tenant(client, key, "beta"), key)
    assert len(seen) == 1
    assert fast_answer == slow_answer
    assert sorted(fast_rows) == sorted(slow_rows)
    for table in slow_rows:
        assert fast_rows[table] == slow_rows[table], table
    outcome = json.loads(fast_rows["sug_outcomes"][0])
    assert outcome["suggestion_id"] == "sug_*", outcome  # attributed to the suggestion shown
    assert any('"owners": 2' in row for row in fast_rows["sug_peer_stats"]), fast_rows["sug_peer_stats"]
    assert len(fast_rows["outbox_events"]) == 6  # created, paid, 2 granted, provisioning, fulfilled


memo_take = memo.take

_RIVAL = ("INSERT INTO budget_periods SELECT b.account_id, b.budget_id, '2026-11', '2026-11-01', '2026-12-01', "
          "b.amount_minor, 0, b.amount_minor - 100 FROM budgets b JOIN accounts a USING (account_id) "
          "WHERE a.external_id = $1")


async def _rival(dsn: str, account: str) -> None:
    """A rival buyer took all but 100 of the account's budget this period."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(_RIVAL, account)
    finally:
        await conn.close()


async def _refused_after_a_rival(client: AsyncTestClient[Any], key: str, dsn: str, account: str,  # noqa: F811
                                 monkeypatch: pytest.MonkeyPatch, *, fast_path: bool) -> dict[str, Any]:
    """The rival comes between the order's read and its statement (fast path), or before the order."""
    tenant = await make_tenant(client, key, account)
    await budget(client, key, 100_000, account=account)
    await client.put(f"/v1/accounts/{account}/guardrails", json={"routes": ["budget"]}, headers=bearer(key))
    q = await quote(client, tenant.user_token, tenant.user, "reports_basic")
    real = fast._read

    async def read_then_rival(*args: Any, **kwargs: Any) -> Any:
        found = await real(*args, **kwargs)
        await _rival(dsn, account)
        return found

    if fast_path:
        monkeypatch.setattr(memo, "take", lambda *args: None)  # the order reads (D99: not the quote's memo)
        monkeypatch.setattr(fast, "_read", read_then_rival)
    else:
        _off(monkeypatch)
        await _rival(dsn, account)
    r = await order(client, tenant.user_token, q["id"])
    monkeypatch.setattr(fast, "_read", real)
    monkeypatch.setattr(memo, "take", memo_take)
    return {"status": r.status_code, **json.loads(_ID.sub("id", r.text).replace(account, "T"))}


async def test_a_refusal_found_by_the_statement_gives_the_ordinary_answer(
    client: AsyncTestClient[Any], key: str, settings: Any, sessionmaker: Any,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dsn = settings.database_url.replace("postgresql+asyncpg://", "postgresql://")
    seen = _spy(monkeypatch)
    fast_answer = await _refused_after_a_rival(client, key, dsn, "acme", monkeypatch, fast_path=True)
    assert len(seen) == 1, "the fast path built its statement, and the statement refused"
    async with sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(Order)) == 0
        assert await s.scalar(select(func.count()).select_from(LedgerEntry)) == 0
    ordinary = await _refused_after_a_rival(client, key, dsn, "beta", monkeypatch, fast_path=False)
    assert fast_answer == ordinary
    assert fast_answer["status"] == 422 and fast_answer["code"] == "purchase_blocked", fast_answer


@pytest.mark.parametrize("step", ["before_the_statement", "after_the_commit"])
async def test_a_crash_around_the_statement_leaves_all_or_nothing_and_the_retry_answers_once(
    client: AsyncTestClient[Any], key: str, sessionmaker: Any, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
    step: str,
) -> None:
    acme = await make_tenant(client, key, "acme")
    await budget(client, key, 100_000)
    q = await quote(client, acme.user_token, acme.user, "reports_basic")

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"process died {step.replace('_', ' ')}")

    target: tuple[Any, str] = (fast, "_order_rows") if step == "before_the_statement" else (fast, "dispatch_local")
    real: Callable[..., Any] | Awaitable[Any] = getattr(*target)
    monkeypatch.setattr(*target, crash)
    headers = {"Idempotency-Key": "crash-fast"}
    first = await order(client, acme.user_token, q["id"], **headers)
    assert_problem(first, 500)
    async with sessionmaker() as s:
        orders = await s.scalar(select(func.count()).select_from(Order))
        captured = await s.scalar(select(func.coalesce(func.sum(BudgetPeriod.captured_minor), 0)))
        events = await s.scalar(select(func.count()).select_from(OutboxEvent).where(
            OutboxEvent.type.like("order.%")))
    assert (orders, captured, events) == ((0, 0, 0) if step == "before_the_statement" else (1, 225, 3))
    monkeypatch.setattr(*target, real)
    retried = await order(client, acme.user_token, q["id"], **headers)
    assert retried.status_code == 201 and retried.json()["state"] == "fulfilled", retried.text
    assert (retried.headers.get("idempotent-replayed") == "true") == (step == "after_the_commit")
    again = await order(client, acme.user_token, q["id"], **headers)
    assert again.status_code == 201 and again.headers.get("idempotent-replayed") == "true"
    assert again.json() == retried.json()
    async with sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(Order)) == 1
        assert await s.scalar(select(func.sum(LedgerEntry.amount_minor)).where(LedgerEntry.kind == "capture")) == 225


def _refusals(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """What each run of the order's statement gave: True, a memo guard that refused it, or None."""
    seen: list[Any] = []
    real = fast._run

    async def run(*args: Any, **kwargs: Any) -> Any:
        done = await real(*args, **kwargs)
        seen.append(done)
        return done

    monkeypatch.setattr(fast, "_run", run)
    return seen


async def _sql(dsn: str, sql: str, *args: Any) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql, *args)
    finally:
        await conn.close()


async def test_a_rival_spending_after_the_quote_fails_the_memo_and_the_order_gives_the_ordinary_answer(
    client: AsyncTestClient[Any], key: str, settings: Any, sessionmaker: Any,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dsn = settings.database_url.replace("postgresql+asyncpg://", "postgresql://")
    runs = _refusals(monkeypatch)
    tenant = await make_tenant(client, key, "acme")
    await budget(client, key, 100_000, account="acme")
    await client.put("/v1/accounts/acme/guardrails", json={"routes": ["budget"]}, headers=bearer(key))
    q = await quote(client, tenant.user_token, tenant.user, "reports_basic")
    await _rival(dsn, "acme")  # between the quote (and its memo) and the order
    r = await order(client, tenant.user_token, q["id"])
    assert runs == ["memo_period"], "the memo's statement refused before writing; the order read again"
    async with sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(Order)) == 0
        assert await s.scalar(select(func.count()).select_from(LedgerEntry)) == 0
    ordinary = await _refused_after_a_rival(client, key, dsn, "beta", monkeypatch, fast_path=False)
    assert {"status": r.status_code, **json.loads(_ID.sub("id", r.text).replace("acme", "T"))} == ordinary
    async with sessionmaker() as s:  # the budget's orders read for a while (its period row moves under memos)
        budget_id = await s.scalar(select(Budget.budget_id).join(Account, Account.account_id == Budget.account_id)
                                   .where(Account.external_id == "acme"))
    assert budget_id is not None and memo.busy(fast.engine_key(client.app.state.fast_engine), budget_id)
    memo.forget()


async def test_what_changed_since_the_quote_is_read_again_not_taken_from_the_memo(
    client: AsyncTestClient[Any], key: str, settings: Any, sessionmaker: Any,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dsn = settings.database_url.replace("postgresql+asyncpg://", "postgresql://")
    runs = _refusals(monkeypatch)
    tenant = await make_tenant(client, key, "acme")
    await budget(client, key, 100_000, account="acme")
    r = await client.put("/v1/accounts/acme/guardrails", json={"auto_approve_limit_minor": 50_000}, headers=bearer(key))
    assert r.status_code == 200, r.text
    first = await quote(client, tenant.user_token, tenant.user, "reports_basic")
    second = await quote(client, tenant.user_token, tenant.user, "report_branding")  # the same category
    await _sql(dsn, "UPDATE accounts SET sales_rep = 'rep-new' WHERE external_id = $1", "acme")
    assert (await order(client, tenant.user_token, first["id"])).status_code == 201
    assert runs == ["memo_changed", True], "the account's row changed: read again"
    runs.clear()
    assert (await order(client, tenant.user_token, second["id"])).status_code == 201
    assert runs == ["memo_changed", True], "the account was credited for the category meanwhile: read again"
    async with sessionmaker() as s:
        credits = (await s.execute(select(SalesCredit.module, SalesCredit.motion, SalesCredit.rep)
                                   .order_by(SalesCredit.booked_at, SalesCredit.module))).all()
    assert sorted(credits) == [("report_branding", "expand", "rep-new"), ("reports_basic", "land", "rep-new")]
    third = await quote(client, tenant.user_token, tenant.user, "comments")
    runs.clear()
    assert (await order(client, tenant.user_token, third["id"])).status_code == 201
    assert runs == [True], "nothing changed since this quote: one statement"
