"""Tax on quotes, orders and statements: what Stripe Tax is asked, and what its answer means. Pure.

Money stays integer minor units. A quote's tax is Stripe Tax's calculation (``tax.calculations``) of its
lines; without one (Stripe not configured, no billing address) the quote says so (``not_computed`` with the
reason) and shows no tax or gross amount: never a guessed one (D-tax in docs/decisions.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import msgspec

from app.accounts.tax import BillingAddress, TaxId, TaxStatus, normalise_tax_id
from app.money import round_half_up

TaxBehavior = Literal["exclusive", "inclusive"]
TaxState = Literal["computed", "not_computed"]
# Stripe's taxability_override per our tax status (taxable: Stripe decides from address and tax ids)
OVERRIDES: dict[TaxStatus, str] = {"taxable": "none", "exempt": "customer_exempt", "reverse_charge": "reverse_charge"}
# Stripe's customer.tax_exempt per our tax status (bill-back invoices with automatic tax)
CUSTOMER_EXEMPT: dict[TaxStatus, str] = {"taxable": "none", "exempt": "exempt", "reverse_charge": "reverse"}


NOT_CONFIGURED = ("Tax was not computed: Stripe Tax is not configured on this service; the amounts are the "
                  "catalog prices as declared (exclusive prices: tax may be due on top).")
NO_ADDRESS = ("Tax was not computed: the account has no billing address (and the buyer no billing country); "
              "the vendor sets it on the account (billing_address).")


UNAVAILABLE = ("Tax was not computed: Stripe Tax did not answer. This purchase is paid from a budget, so the "
               "bill-back invoice computes its tax.")


class TaxLine(msgspec.Struct, kw_only=True, frozen=True):
    """Tax of one jurisdiction at one rate, summed over a quote's lines."""

    jurisdiction: str  # Stripe's display name, e.g. "Germany", "New York"
    country: str
    state: str | None
    level: str  # country | state | county | city | district
    rate: str  # the percentage as Stripe gives it, e.g. "19.0"
    taxability: str  # standard_rated | reverse_charge | customer_exempt | not_collecting | ...
    taxable_minor: int
    tax_minor: int


class QuoteTax(msgspec.Struct, kw_only=True, frozen=True):
    """A quote's tax (stored in its JSONB; the order copies the amounts)."""

    status: TaxState
    reason: str | None = None  # why not computed
    calculation_id: str | None = None
    net_minor: int | None = None
    tax_minor: int | None = None
    gross_minor: int | None = None
    breakdown: tuple[TaxLine, ...] = ()
    reverse_charge: bool = False
    exempt: bool = False


def not_computed(reason: str) -> QuoteTax:
    return QuoteTax(status="not_computed", reason=reason)


@dataclass(frozen=True)
class Customer:
    """Who is taxed, as Stripe Tax's ``customer_details``."""

    country: str
    state: str | None
    postal_code: str | None
    city: str | None
    line1: str | None
    tax_ids: tuple[TaxId, ...]
    status: TaxStatus


@dataclass(frozen=True)
class TaxItem:
    """One line to tax: its amount (after discount), code and behaviour; ``reference`` is unique per quote."""

    reference: str
    amount_minor: int
    quantity: int
    tax_code: str | None
    tax_behavior: TaxBehavior


def customer_of(*, address: BillingAddress | None, tax_ids: Sequence[TaxId], status: TaxStatus,
                user_country: str | None, card_route: bool) -> Customer | None:
    """Whom to tax: a card purchase by a user with a billing country is that person's (no company tax ids);
    otherwise the account's billing address, tax ids and status. None: nothing to compute tax for."""
    if card_route and user_country:
        return Customer(country=user_country, state=None, postal_code=None, city=None, line1=None, tax_ids=(),
                        status=status if status == "exempt" else "taxable")
    if address is None:
        return None
    return Customer(country=address.country, state=address.state, postal_code=address.postal_code,
                    city=address.city, line1=address.line1,
                    tax_ids=tuple(normalise_tax_id(t) for t in tax_ids), status=status)


def customer_details(customer: Customer) -> dict[str, object]:
    """Stripe Tax's ``customer_details`` parameter."""
    address: dict[str, str] = {"country": customer.country}
    for name in ("state", "postal_code", "city", "line1"):
        value = getattr(customer, name)
        if value:
            address[name] = value
    details: dict[str, object] = {"address": address, "address_source": "billing",
                                  "taxability_override": OVERRIDES[customer.status]}
    if customer.tax_ids:
        details["tax_ids"] = [{"type": t.type, "value": t.value} for t in customer.tax_ids]
    return details


def tax_items(lines: Iterable[tuple[str, int, int, str | None, TaxBehavior]]) -> list[TaxItem]:
    """The taxable lines (module, total, quantity, code, behaviour); nothing due now (metered) is not taxed."""
    return [TaxItem(reference=module, amount_minor=total, quantity=max(quantity, 1), tax_code=code,
                    tax_behavior=behavior)
            for module, total, quantity, code, behavior in lines if total > 0]


@dataclass(frozen=True)
class LineResult:
    """Stripe's answer for one line: the tax amount and each jurisdiction's part."""

    reference: str
    amount_tax_minor: int
    parts: tuple[TaxLine, ...]


def summarise(*, calculation_id: str, amount_total_minor: int, tax_exclusive_minor: int,
              tax_inclusive_minor: int, lines: Sequence[LineResult]) -> QuoteTax:
    """Net, tax by jurisdiction and rate, gross from a calculation (gross = Stripe's amount_total)."""
    tax = tax_exclusive_minor + tax_inclusive_minor
    merged: dict[tuple[str, str, str | None, str, str, str], list[int]] = {}
    for line in lines:
        for part in line.parts:
            key = (part.jurisdiction, part.country, part.state, part.level, part.rate, part.taxability)
            sums = merged.setdefault(key, [0, 0])
            sums[0] += part.taxable_minor
            sums[1] += part.tax_minor
    breakdown = tuple(TaxLine(jurisdiction=k[0], country=k[1], state=k[2], level=k[3], rate=k[4], taxability=k[5],
                              taxable_minor=v[0], tax_minor=v[1]) for k, v in merged.items())
    reasons = {p.taxability for p in breakdown}
    return QuoteTax(status="computed", calculation_id=calculation_id, net_minor=amount_total_minor - tax,
                    tax_minor=tax, gross_minor=amount_total_minor, breakdown=breakdown,
                    reverse_charge="reverse_charge" in reasons, exempt="customer_exempt" in reasons)


def charged_minor(price_total_minor: int, tax: QuoteTax | None) -> int:
    """What a card order charges: the gross when tax was computed, else the prices as quoted."""
    if tax is None or tax.status != "computed" or tax.gross_minor is None:
        return price_total_minor
    return tax.gross_minor


def net_share(amount_minor: int, *, charged_minor: int, tax_minor: int | None) -> int:
    """The part of an amount of a taxed charge that is not tax (sales credit is booked net of tax)."""
    if not tax_minor or charged_minor <= 0:
        return amount_minor
    return round_half_up(Fraction(amount_minor * (charged_minor - tax_minor), charged_minor))
