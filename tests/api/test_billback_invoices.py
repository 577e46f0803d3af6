"""Bill-back invoices: a closed statement becomes invoice items and one send_invoice invoice, once; its status
follows the invoice webhooks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from app.accounts.models import Account
from app.clock import FrozenClock
from billing.models import Statement
from billing.stripe.errors import PaymentProviderUnavailable
from billing.stripe.flows import invoice_period, invoice_statement
from tests.api.stripe_app import CardWorld
from tests.stripe_server import FaultKind


async def _statement(sessionmaker: Any, external_id: str = "acme", *, total: int = 1125,
                     period: str = "2026-10") -> tuple[str, str]:
    """A closed statement as closing the period leaves it (two orders, one partly refunded)."""
    async with sessionmaker() as s, s.begin():
        account = await s.scalar(select(Account).where(Account.external_id == external_id))
        assert account is not None
        account.payment_terms_days = 45
        lines = [{"order_id": "ord_a", "currency": "USD", "captured_minor": 900, "refunded_minor": 0,
                  "net_minor": 900, "modules": ["reports_basic"]},
                 {"order_id": "ord_b", "currency": "USD", "captured_minor": 450, "refunded_minor": 225,
                  "net_minor": 225, "modules": ["comments"]}] if total else []
        row = Statement(account_id=account.account_id, statement_id=f"stm_{external_id}_{period}", period=period,
                        currency="USD", lines=lines, captured_minor=1350 if total else 0,
                        refunded_minor=225 if total else 0, total_minor=total, status="closed",
                        stripe_invoice_id=None, created_at=datetime(2026, 11, 1, tzinfo=UTC))
        s.add(row)
    return account.account_id, row.statement_id


async def _row(sessionmaker: Any, account_id: str, statement_id: str) -> Statement:
    async with sessionmaker() as s:
        return await s.get_one(Statement, (account_id, statement_id))


async def test_a_statement_is_invoiced_once_with_the_accounts_terms_and_follows_the_webhooks(
        shop: CardWorld, sessionmaker: Any, clock: FrozenClock) -> None:
    gateway = shop.client.app.state.stripe
    account_id, statement_id = await _statement(sessionmaker)
    first = await invoice_statement(sessionmaker, gateway, account_id, statement_id, clock=clock)
    again = await invoice_period(sessionmaker, gateway, "2026-10", clock=clock)
    assert again == {"invoiced": 0, "failed": 0}
    assert await invoice_statement(sessionmaker, gateway, account_id, statement_id, clock=clock) == first
    [invoice] = shop.fake.of_kind("invoice")
    assert invoice["id"] == first and invoice["collection_method"] == "send_invoice"
    assert (invoice["status"], invoice["amount_due"]) == ("open", 1125)
    assert invoice["due_date"] - invoice["status_transitions"]["finalized_at"] == 45 * 86_400
    assert [line["amount"] for line in invoice["lines"]["data"]] == [900, 225]
    assert invoice["metadata"]["commerce_statement_id"] == statement_id
    assert len(shop.fake.of_kind("invoiceitem")) == 2 and len(shop.fake.of_kind("customer")) == 1
    assert [e["type"] for e in shop.fake.events if e["type"].startswith("invoice.")] == [
        "invoice.finalized", "invoice.sent"]
    row = await _row(sessionmaker, account_id, statement_id)
    assert (row.status, row.stripe_invoice_id) == ("invoiced", first)
    await shop.deliver()
    finalized = shop.fake.events_of("invoice.finalized")
    await gateway.client.raw_request_async("post", f"/v1/_fake/invoices/{first}/pay", success="false")
    await shop.deliver()
    assert (await _row(sessionmaker, account_id, statement_id)).status == "payment_failed"
    await gateway.client.raw_request_async("post", f"/v1/_fake/invoices/{first}/pay", success="true")
    await shop.deliver()
    shop.fake._undelivered.extend(finalized)  # a late duplicate of the first event: a paid statement stays paid
    await shop.deliver()
    assert (await _row(sessionmaker, account_id, statement_id)).status == "paid"


async def test_a_crash_mid_way_is_finished_by_the_next_run_without_a_second_invoice(
        shop: CardWorld, sessionmaker: Any, clock: FrozenClock) -> None:
    gateway = shop.client.app.state.stripe
    account_id, statement_id = await _statement(sessionmaker)
    shop.fake.inject(FaultKind.LOST_RESPONSE, method="POST", path="/v1/invoices", times=3)
    with pytest.raises(PaymentProviderUnavailable):
        await invoice_statement(sessionmaker, gateway, account_id, statement_id, clock=clock)
    assert (await _row(sessionmaker, account_id, statement_id)).status == "closed"
    counted: list[tuple[int, int | None]] = []  # what the CLI's progress bar is told
    assert await invoice_period(sessionmaker, gateway, "2026-10", clock=clock,
                                progress=lambda done, total: counted.append((done, total))) == {
        "invoiced": 1, "failed": 0}
    assert counted == [(0, 1), (1, 1)]
    [invoice] = shop.fake.of_kind("invoice")
    assert invoice["amount_due"] == 1125 and len(shop.fake.of_kind("invoiceitem")) == 2
    assert (await _row(sessionmaker, account_id, statement_id)).status == "invoiced"


async def test_a_statement_without_spend_is_not_invoiced(shop: CardWorld, sessionmaker: Any,
                                                         clock: FrozenClock) -> None:
    account_id, statement_id = await _statement(sessionmaker, total=0)
    gateway = shop.client.app.state.stripe
    assert await invoice_statement(sessionmaker, gateway, account_id, statement_id, clock=clock) is None
    assert shop.fake.of_kind("invoice") == [] and shop.fake.of_kind("customer") == []


async def test_closing_a_period_then_invoicing_bills_the_budget_captures_once(
        shop: CardWorld, sessionmaker: Any, clock: FrozenClock) -> None:
    from billing.service._statements import close_period
    from tests.api.stripe_app import idem_header
    from tests.factories import bearer

    r = await shop.client.post("/v1/accounts/acme/budgets", json={"name": "Main", "currency": "USD",
                               "amount_minor": 100_000}, headers=bearer(shop.key))
    assert r.status_code == 201, r.text
    q = (await shop.client.post("/v1/quotes", json={"user": shop.a.user, "items": [{"module": "reports_basic"}]},
                                headers=bearer(shop.a.user_token))).json()
    o = await shop.client.post("/v1/orders", json={"quote_id": q["id"]},
                               headers={**bearer(shop.a.user_token), **idem_header()})
    assert o.json()["state"] == "fulfilled" and o.json()["route"] == "budget"
    clock.set(datetime(2026, 12, 2, tzinfo=UTC))
    async with sessionmaker() as s, s.begin():
        result = await close_period(s, period="2026-11", clock=clock)
    [statement] = result.closed
    gateway = shop.client.app.state.stripe
    for _ in range(2):
        assert (await invoice_period(sessionmaker, gateway, "2026-11", clock=clock))["failed"] == 0
    [invoice] = shop.fake.of_kind("invoice")
    assert invoice["amount_due"] == statement.total_minor == 225
    assert invoice["lines"]["data"][0]["description"] == f"reports_basic (order {o.json()['id']})"
    assert (await _row(sessionmaker, statement.account_id, statement.statement_id)).status == "invoiced"
