"""Quote, order, subscription and statement lines are typed Structs in JSONB; rows written before they were
typed (plain dicts, ISO 8601 text with +00:00) load into the same Structs and read the same over HTTP."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import select, text

from app.clock import FrozenClock
from billing.domain.quotes import QuoteDecision, QuoteLine
from billing.domain.statements import StatementLine
from billing.models import Order, Quote, Statement, Subscription
from tests.factories import apply_demo_catalog, bearer, make_key, make_tenant


@pytest.fixture
async def key(sessionmaker: Any, clock: FrozenClock) -> str:
    await apply_demo_catalog(sessionmaker, clock)
    return await make_key(sessionmaker, clock)


async def _bought(client: AsyncTestClient[Any], key: str) -> dict[str, Any]:
    """Acme's user buys reports_basic from the budget: a fulfilled order, its quote and a subscription."""
    t = await make_tenant(client, key, "acme")
    await client.post("/v1/accounts/acme/budgets", json={"name": "Main", "currency": "USD", "amount_minor": 100_000},
                      headers=bearer(key))
    q = await client.post("/v1/quotes", json={"user": t.user, "items": [{"module": "reports_basic"}]},
                          headers=bearer(key))
    o = await client.post("/v1/orders", json={"quote_id": q.json()["id"]},
                          headers={**bearer(key), "Idempotency-Key": "typed-lines"})
    assert o.status_code == 201 and o.json()["state"] == "fulfilled", o.text
    return dict(o.json())


def _old_line(api_line: dict[str, Any]) -> dict[str, Any]:
    """A line exactly as billing stored it before lines were typed: the API's keys, periods as isoformat()."""
    assert api_line["period_start"].endswith("+00:00")  # what datetime.isoformat() wrote
    return dict(api_line)


async def _reads(client: AsyncTestClient[Any], key: str, order: dict[str, Any]) -> dict[str, Any]:
    return {"order": (await client.get(f"/v1/orders/{order['id']}", headers=bearer(key))).json(),
            "quote": (await client.get(f"/v1/quotes/{order['quote_id']}", headers=bearer(key))).json(),
            "subscriptions": (await client.get("/v1/accounts/acme/subscriptions", headers=bearer(key))).json(),
            "statements": (await client.get("/v1/accounts/acme/statements", headers=bearer(key))).json()}


async def test_rows_written_in_the_old_dict_shape_load_into_the_typed_lines_and_read_the_same(
        client: AsyncTestClient[Any], key: str, sessionmaker: Any, clock: FrozenClock) -> None:
    order = await _bought(client, key)
    clock.set(datetime(2026, 12, 2, tzinfo=UTC))
    closed = await client.post("/v1/billing/statements/close", json={"period": "2026-11"}, headers=bearer(key))
    assert len(closed.json()["closed"]) == 1, closed.text
    before = await _reads(client, key, order)
    line = _old_line(order["lines"][0])
    old_decision = {"route": "budget", "outcome": "auto_approved", "reasons": before["quote"]["decision"]["reasons"],
                    "vendor_approval_required": []}
    old_statement_line = {"order_id": order["id"], "currency": "USD", "captured_minor": order["total_minor"],
                          "refunded_minor": 0, "modules": ["reports_basic"], "net_minor": order["total_minor"]}
    async with sessionmaker() as s, s.begin():  # rewrite every typed column as the old code wrote it
        params = {"lines": json.dumps([line]), "line": json.dumps(line), "decision": json.dumps(old_decision),
                  "stm": json.dumps([old_statement_line]), "order": order["id"], "quote": order["quote_id"]}
        await s.execute(text("UPDATE orders SET lines = CAST(:lines AS jsonb) WHERE order_id = :order"), params)
        await s.execute(text("UPDATE quotes SET lines = CAST(:lines AS jsonb), decision = CAST(:decision AS jsonb)"
                             " WHERE quote_id = :quote"), params)
        await s.execute(text("UPDATE subscriptions SET line = CAST(:line AS jsonb) WHERE order_id = :order"), params)
        await s.execute(text("UPDATE statements SET lines = CAST(:stm AS jsonb)"), params)
    async with sessionmaker() as s:
        o = await s.scalar(select(Order).where(Order.order_id == order["id"]))
        q = await s.scalar(select(Quote).where(Quote.quote_id == order["quote_id"]))
        sub = await s.scalar(select(Subscription).where(Subscription.order_id == order["id"]))
        st = await s.scalar(select(Statement))
    assert o is not None and q is not None and sub is not None and st is not None
    assert isinstance(o.lines[0], QuoteLine) and o.lines == q.lines and sub.line == o.lines[0]
    assert o.lines[0].period_start == datetime(2026, 11, 1, tzinfo=UTC) and o.lines[0].model == "recurring"
    assert q.decision == QuoteDecision(route="budget", outcome="auto_approved",
                                       reasons=tuple(old_decision["reasons"]))
    assert st.lines == [StatementLine(order_id=order["id"], currency="USD", captured_minor=order["total_minor"],
                                      refunded_minor=0, net_minor=order["total_minor"], modules=("reports_basic",))]
    assert await _reads(client, key, order) == before


async def test_a_row_that_does_not_match_the_line_type_fails_loudly_instead_of_passing_as_a_dict(
        client: AsyncTestClient[Any], key: str, sessionmaker: Any) -> None:
    import msgspec

    order = await _bought(client, key)
    async with sessionmaker() as s, s.begin():
        await s.execute(text("UPDATE orders SET lines = '[{\"module\": \"reports_basic\"}]'::jsonb"
                             " WHERE order_id = :order"), {"order": order["id"]})
    async with sessionmaker() as s:
        with pytest.raises(msgspec.ValidationError):
            await s.scalar(select(Order).where(Order.order_id == order["id"]))
