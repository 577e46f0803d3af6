"""Bill-back invoices on the local Stripe: items, a send_invoice invoice, finalize, send, pay or void."""

from __future__ import annotations

import pytest

from app.errors import NotFound
from billing.stripe.errors import PaymentProviderRejected
from billing.stripe.gateway import StripeGateway, idem
from tests.stripe_server import FakeStripe


async def test_invoice_collects_pending_items_and_moves_draft_open_paid(gateway: StripeGateway,
                                                                       fake: FakeStripe) -> None:
    org = await gateway.create_customer(key="account:a1:customer", metadata={"commerce_account_id": "a1"},
                                        email="billing@acme.test", name="Acme")
    for n, amount in enumerate((1200, 800)):
        await gateway.create_invoice_item(customer_id=org.id, amount_minor=amount, currency="USD",
                                          description=f"purchase {n}", key=idem("capture", n, "invoice_item"),
                                          metadata={"purchase_id": str(n)}, period=(1_700_000_000, 1_702_000_000))
    draft = await gateway.create_invoice(customer_id=org.id, days_until_due=30, key=idem("statement", "a1", "2026-11"),
                                         metadata={"period": "2026-11"})
    assert (draft.status, draft.amount_due, draft.collection_method, draft.auto_advance) == (
        "draft", 2000, "send_invoice", False)
    assert [line.metadata["purchase_id"] for line in draft.lines.data] == ["0", "1"]
    sent = fake.requests[-1]
    assert sent.params["pending_invoice_items_behavior"] == "include"
    final = await gateway.finalize_invoice(draft.id, key=idem("statement", "a1", "2026-11", "finalize"))
    assert final.status == "open" and final.number and final.hosted_invoice_url and final.due_date
    assert final.due_date - (final.status_transitions.finalized_at or 0) == 30 * 86_400
    await gateway.send_invoice(draft.id, key=idem("statement", "a1", "2026-11", "send"))
    await gateway.client.raw_request_async("post", f"/v1/_fake/invoices/{draft.id}/pay")
    assert (await gateway.get_invoice(draft.id)).status == "paid"
    assert [e["type"] for e in fake.events] == ["invoice.finalized", "invoice.sent", "invoice.paid"]


async def test_failed_invoice_payment_and_void(gateway: StripeGateway, fake: FakeStripe) -> None:
    org = await gateway.create_customer(key="account:a2:customer", metadata={})
    await gateway.create_invoice_item(customer_id=org.id, amount_minor=500, currency="EUR", description="x",
                                      key="ii:1", metadata={})
    inv = await gateway.create_invoice(customer_id=org.id, days_until_due=14, key="inv:1", metadata={})
    with pytest.raises(PaymentProviderRejected):  # only a finalized invoice can be sent
        await gateway.send_invoice(inv.id, key="inv:1:send")
    await gateway.finalize_invoice(inv.id, key="inv:1:finalize")
    await gateway.client.raw_request_async("post", f"/v1/_fake/invoices/{inv.id}/pay", success="false")
    assert (await gateway.void_invoice(inv.id, key="inv:1:void")).status == "void"
    assert [e["type"] for e in fake.events] == ["invoice.finalized", "invoice.payment_failed", "invoice.voided"]
    with pytest.raises(NotFound):
        await gateway.get_invoice("in_missing")
