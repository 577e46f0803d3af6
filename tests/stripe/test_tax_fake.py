"""Stripe Tax on the local Stripe through the gateway: the rate table, inclusive amounts, reverse charge, the
checks Stripe makes (a US address needs its state, references are unique, reversals never exceed the total)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from billing.stripe.errors import PaymentProviderRejected
from billing.stripe.gateway import StripeGateway
from tests.stripe_server import FakeStripe


def _line(amount: int, reference: str = "a", **extra: Any) -> dict[str, object]:
    return {"amount": amount, "quantity": 1, "reference": reference, "tax_behavior": "exclusive", **extra}


async def _calc(gateway: StripeGateway, country: str, *lines: dict[str, object], **details: Any) -> Any:
    address = {"country": country, **({"state": details.pop("state")} if "state" in details else {})}
    return await gateway.calculate_tax(currency="EUR", customer_details={"address": address, **details},
                                       line_items=list(lines), tax_date=1_790_000_000)


@pytest.mark.parametrize(("country", "state", "rate", "reason"), [
    ("DE", None, "19.0", "standard_rated"), ("FR", None, "20.0", "standard_rated"),
    ("NL", None, "21.0", "standard_rated"), ("GB", None, "20.0", "standard_rated"),
    ("US", "NY", "4.0", "standard_rated"), ("US", "OR", "0", "not_subject_to_tax"),
    ("JP", None, "0", "not_collecting"),
])
async def test_the_rate_table(gateway: StripeGateway, country: str, state: str | None, rate: str,
                              reason: str) -> None:
    calc = await _calc(gateway, country, _line(10_000), **({"state": state} if state else {}))
    [line] = calc.line_items.data
    [part] = line.tax_breakdown
    assert (part.tax_rate_details.percentage_decimal, part.taxability_reason) == (rate, reason)
    assert line.amount_tax == int(Decimal(rate) * 100)  # of 10 000 minor units


async def test_inclusive_amounts_carry_their_tax_and_exclusive_ones_add_it(gateway: StripeGateway) -> None:
    calc = await _calc(gateway, "DE", _line(1000, "a"), _line(1190, "b", tax_behavior="inclusive"))
    assert (calc.tax_amount_exclusive, calc.tax_amount_inclusive, calc.amount_total) == (190, 190, 2380)


async def test_business_tax_ids_reverse_charge_and_overrides_exempt(gateway: StripeGateway) -> None:
    vat = await _calc(gateway, "FR", _line(1000), tax_ids=[{"type": "eu_vat", "value": "FR40303265045"}])
    assert vat.amount_total == 1000 and vat.tax_breakdown[0].taxability_reason == "reverse_charge"
    exempt = await _calc(gateway, "DE", _line(1000), taxability_override="customer_exempt")
    assert exempt.tax_breakdown[0].taxability_reason == "customer_exempt" and exempt.amount_total == 1000
    nontaxable = await _calc(gateway, "DE", _line(1000, tax_code="txcd_00000000"))
    assert nontaxable.tax_breakdown[0].taxability_reason == "product_exempt"


async def test_a_us_address_without_its_state_is_refused(gateway: StripeGateway) -> None:
    with pytest.raises(PaymentProviderRejected):
        await _calc(gateway, "US", _line(1000))


async def test_transactions_are_unique_by_reference_and_reversals_never_exceed_the_total(
        gateway: StripeGateway, fake: FakeStripe) -> None:
    calc = await _calc(gateway, "DE", _line(1000))
    tx = await gateway.record_tax_transaction(calculation_id=calc.id, reference="order:o1", key="k1", metadata={})
    again = await gateway.record_tax_transaction(calculation_id=calc.id, reference="order:o1", key="k1", metadata={})
    assert again.id == tx.id  # the same key replays
    with pytest.raises(PaymentProviderRejected):
        await gateway.record_tax_transaction(calculation_id=calc.id, reference="order:o1", key="k2", metadata={})
    part = await gateway.reverse_tax_transaction(transaction_id=tx.id, reference="order:o1:r1", key="r1",
                                                 flat_amount_minor=595, metadata={})
    [line] = fake.hidden[part.id]["line_items"]
    assert (line["amount"], line["amount_tax"]) == (-500, -95)
    with pytest.raises(PaymentProviderRejected):  # only 595 is left to reverse
        await gateway.reverse_tax_transaction(transaction_id=tx.id, reference="order:o1:r2", key="r2",
                                              flat_amount_minor=600, metadata={})
    with pytest.raises(PaymentProviderRejected):  # a partly reversed transaction is not reversed in full
        await gateway.reverse_tax_transaction(transaction_id=tx.id, reference="order:o1:r3", key="r3",
                                              flat_amount_minor=None, metadata={})
