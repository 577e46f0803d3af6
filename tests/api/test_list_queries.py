"""Billing's list endpoints answer with a fixed number of SQL statements, however many rows they list (no N+1).

Each test lists once with one row and once with four, counting the statements the request sends through the
app's engine (a SQLAlchemy ``before_cursor_execute`` listener), and asserts the two counts are equal.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import event

from app.clock import FrozenClock
from tests.factories import apply_demo_catalog, bearer, make_key, make_tenant, make_user

_users = itertools.count()


@contextmanager
def counted(client: AsyncTestClient[Any]) -> Iterator[list[str]]:
    """The SQL statements sent through the app's engine while the block runs."""
    statements: list[str] = []

    def on_execute(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        # the key's last-used stamp (written in the background) and the rate limiter's lease refills (one per
        # few hundred requests of a key, whatever they list) and its node heartbeats are not the listing's work
        if not statement.startswith("UPDATE api_keys") and "rate_limit_" not in statement:
            statements.append(statement)

    engine = client.app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)


async def statements_for(client: AsyncTestClient[Any], url: str, key: str) -> tuple[int, int]:
    """(statements sent, rows listed) for one GET of ``url``."""
    with counted(client) as statements:
        r = await client.get(url, headers=bearer(key))
    assert r.status_code == 200, r.text
    return len(statements), len(r.json()["data"])


@pytest.fixture
async def key(sessionmaker: Any, clock: FrozenClock) -> str:
    await apply_demo_catalog(sessionmaker, clock)
    return await make_key(sessionmaker, clock)


@pytest.fixture
async def shop(client: AsyncTestClient[Any], key: str) -> AsyncTestClient[Any]:
    """Acme with a large budget (purchases go through on it)."""
    await make_tenant(client, key, "acme")
    r = await client.post("/v1/accounts/acme/budgets", json={"name": "Main", "currency": "USD",
                                                             "amount_minor": 10_000_000}, headers=bearer(key))
    assert r.status_code == 201, r.text
    return client


async def purchase(client: AsyncTestClient[Any], key: str, module: str = "reports_basic",
                   user: str | None = None) -> dict[str, Any]:
    """A new user of Acme (unless given) quotes and orders ``module`` on the budget route."""
    if user is None:
        user = f"buyer-{next(_users)}"
        await make_user(client, key, "acme", user, roles=["analyst"])
    q = await client.post("/v1/quotes", json={"user": user, "items": [{"module": module}]}, headers=bearer(key))
    assert q.status_code == 201, q.text
    o = await client.post("/v1/orders", json={"quote_id": q.json()["id"]},
                          headers={**bearer(key), "Idempotency-Key": f"list-{q.json()['id']}"})
    assert o.status_code == 201, o.text
    return dict(o.json())


async def assert_flat(client: AsyncTestClient[Any], key: str, url: str,
                      add_one: Callable[[], Awaitable[object]]) -> None:
    """Listing four rows costs exactly the statements that listing one costs."""
    await add_one()
    await client.get(url, headers=bearer(key))  # warm the key cache and the live catalog
    one, listed_one = await statements_for(client, url, key)
    for _ in range(3):
        await add_one()
    four, listed_four = await statements_for(client, url, key)
    assert (listed_one, listed_four) == (1, 4)
    assert four == one, f"{url}: {one} statements for one row, {four} for four"


async def test_account_orders_are_listed_in_a_constant_number_of_statements(shop: Any, key: str) -> None:
    await assert_flat(shop, key, "/v1/accounts/acme/orders", lambda: purchase(shop, key))


async def test_a_users_orders_are_listed_in_a_constant_number_of_statements(shop: Any, key: str) -> None:
    await make_user(shop, key, "acme", "collector", roles=["analyst"])
    modules = iter(["reports_basic", "advanced_charts", "report_branding", "comments"])
    await assert_flat(shop, key, "/v1/orders?user=collector",
                      lambda: purchase(shop, key, next(modules), user="collector"))


async def test_approvals_are_listed_in_a_constant_number_of_statements(shop: Any, key: str) -> None:
    r = await shop.put("/v1/accounts/acme/guardrails", json={"auto_approve_limit_minor": 0}, headers=bearer(key))
    assert r.status_code == 200, r.text
    await assert_flat(shop, key, "/v1/accounts/acme/approvals", lambda: purchase(shop, key))


async def test_subscriptions_are_listed_in_a_constant_number_of_statements(shop: Any, key: str) -> None:
    await assert_flat(shop, key, "/v1/accounts/acme/subscriptions", lambda: purchase(shop, key))


async def test_budgets_are_listed_in_a_constant_number_of_statements(client: Any, key: str) -> None:
    await make_tenant(client, key, "acme")
    centers = itertools.count()

    async def add_budget() -> None:
        r = await client.post("/v1/accounts/acme/budgets", json={
            "name": "Team", "currency": "USD", "amount_minor": 100_000, "cost_center": f"cc-{next(centers)}"},
            headers=bearer(key))
        assert r.status_code == 201, r.text

    await assert_flat(client, key, "/v1/accounts/acme/budgets", add_budget)


async def test_the_ledger_is_listed_in_a_constant_number_of_statements(shop: Any, key: str) -> None:
    budget_id = (await shop.get("/v1/accounts/acme/budgets", headers=bearer(key))).json()["data"][0]["id"]
    url = f"/v1/accounts/acme/budgets/{budget_id}/ledger?period=2026-11"
    await purchase(shop, key)  # a reserve and a capture entry per purchase: list them in pairs
    one, listed_one = await statements_for(shop, url, key)
    for _ in range(3):
        await purchase(shop, key)
    four, listed_four = await statements_for(shop, url, key)
    assert (listed_one, listed_four) == (2, 8) and four == one


async def test_statements_are_listed_in_a_constant_number_of_statements(
        shop: Any, key: str, clock: FrozenClock) -> None:
    months = iter([(2026, 11), (2026, 12), (2027, 1), (2027, 2)])

    async def close_a_month() -> None:
        year, month = next(months)
        clock.set(datetime(year, month, 20, tzinfo=UTC))
        await purchase(shop, key)
        clock.set(datetime(year + month // 12, month % 12 + 1, 2, tzinfo=UTC))
        r = await shop.post("/v1/billing/statements/close", json={"period": f"{year}-{month:02d}"},
                            headers=bearer(key))
        assert r.status_code == 200 and len(r.json()["closed"]) == 1, r.text

    await assert_flat(shop, key, "/v1/accounts/acme/statements", close_a_month)


async def test_a_page_that_ends_at_the_last_order_has_no_next_cursor(shop: Any, key: str) -> None:
    bought = [(await purchase(shop, key))["id"] for _ in range(3)]
    first = (await shop.get("/v1/accounts/acme/orders", params={"limit": 2}, headers=bearer(key))).json()
    assert [o["id"] for o in first["data"]] == bought[:0:-1] and first["next_cursor"]
    rest = (await shop.get("/v1/accounts/acme/orders", params={"limit": 2, "cursor": first["next_cursor"]},
                           headers=bearer(key))).json()
    assert [o["id"] for o in rest["data"]] == bought[:1] and rest["next_cursor"] is None
    exact = (await shop.get("/v1/accounts/acme/orders", params={"limit": 3}, headers=bearer(key))).json()
    assert len(exact["data"]) == 3 and exact["next_cursor"] is None  # no empty page to fetch


async def test_a_ledger_page_that_ends_at_the_last_entry_has_no_next_cursor(shop: Any, key: str) -> None:
    budget_id = (await shop.get("/v1/accounts/acme/budgets", headers=bearer(key))).json()["data"][0]["id"]
    await purchase(shop, key)  # reserve + capture
    url = f"/v1/accounts/acme/budgets/{budget_id}/ledger"
    exact = (await shop.get(url, params={"limit": 2}, headers=bearer(key))).json()
    assert [e["kind"] for e in exact["data"]] == ["reserve", "capture"] and exact["next_cursor"] is None
    first = (await shop.get(url, params={"limit": 1}, headers=bearer(key))).json()
    rest = (await shop.get(url, params={"limit": 1, "cursor": first["next_cursor"]}, headers=bearer(key))).json()
    assert [e["kind"] for e in first["data"] + rest["data"]] == ["reserve", "capture"]
    assert rest["next_cursor"] is None
