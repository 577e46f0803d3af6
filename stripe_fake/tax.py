"""Stripe Tax, small: calculations, transactions from them, reversals, and the tax of an automatic-tax invoice.

The fake's rate table (documented in docs/payments.md, "The local Stripe's tax table"): the seller is outside
the EU and the UK (registered for EU OSS and UK VAT) and registered in the US states listed.

* DE 19 %, FR 20 %, NL 21 % (EU VAT), GB 20 % (UK VAT): B2C pays the customer's country's rate; a business with
  a tax id of its country's type (``eu_vat`` / ``gb_vat``) gets ``reverse_charge`` at 0 %.
* US: NY 4 % (state), CA 7.25 %, TX 6.25 %, WA 6.5 %; OR has no sales tax (``not_subject_to_tax``); any other
  state ``not_collecting``. A US address needs its state.
* Anywhere else: ``not_collecting``. ``taxability_override=customer_exempt`` -> 0 % ``customer_exempt``;
  ``reverse_charge`` -> 0 % ``reverse_charge``. Tax code ``txcd_00000000`` (nontaxable) -> ``product_exempt``.
Amounts round half up per line; inclusive lines carry their tax inside the amount.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from stripe_fake.core import FakeStripe, Json, invalid, new_id, now
from stripe_fake.resources import _int, _metadata, _str

DEFAULT_TAX_CODE = "txcd_10103001"  # Software as a service, business use
NONTAXABLE = "txcd_00000000"


@dataclass(frozen=True)
class Rate:
    country: str
    state: str | None
    level: str
    display_name: str
    percent: str
    tax_type: str


RATES: dict[str, Rate] = {
    "DE": Rate("DE", None, "country", "Germany", "19.0", "vat"),
    "FR": Rate("FR", None, "country", "France", "20.0", "vat"),
    "NL": Rate("NL", None, "country", "Netherlands", "21.0", "vat"),
    "GB": Rate("GB", None, "country", "United Kingdom", "20.0", "vat"),
    "US-NY": Rate("US", "NY", "state", "New York", "4.0", "sales_tax"),
    "US-CA": Rate("US", "CA", "state", "California", "7.25", "sales_tax"),
    "US-TX": Rate("US", "TX", "state", "Texas", "6.25", "sales_tax"),
    "US-WA": Rate("US", "WA", "state", "Washington", "6.5", "sales_tax"),
}
NO_SALES_TAX_STATES = {"OR": "Oregon", "MT": "Montana", "NH": "New Hampshire", "DE": "Delaware", "AK": "Alaska"}
B2B_TAX_ID = {"DE": "eu_vat", "FR": "eu_vat", "NL": "eu_vat", "GB": "gb_vat"}


def _round(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _where(details: Json) -> tuple[str, str | None]:
    address = details.get("address") if isinstance(details.get("address"), dict) else None
    if address is None or not address.get("country"):
        raise invalid("Missing required param: customer_details[address][country].",
                      param="customer_details[address][country]", code="customer_tax_location_invalid")
    country = str(address["country"]).upper()
    state = str(address.get("state") or "").upper() or None
    if country == "US" and state is None:
        raise invalid("A US address needs its state to determine the tax location.",
                      param="customer_details[address][state]", code="customer_tax_location_invalid")
    return country, state


def _decide(details: Json, tax_code: str) -> tuple[Rate | None, str, str, str | None, str]:
    """(rate or None for 0 %, taxability reason, jurisdiction name, state, level) for this customer and code."""
    country, state = _where(details)
    override = str(details.get("taxability_override") or "none")
    rate = RATES.get(f"US-{state}" if country == "US" else country)
    name = rate.display_name if rate else NO_SALES_TAX_STATES.get(state or "", country)
    level = "state" if country == "US" else "country"
    if override == "customer_exempt":
        return None, "customer_exempt", name, state, level
    ids = [t for t in details.get("tax_ids") or [] if isinstance(t, dict)]
    if rate is not None and (override == "reverse_charge" or (
            country in B2B_TAX_ID and any(t.get("type") == B2B_TAX_ID[country] for t in ids))):
        return None, "reverse_charge", name, state, level
    if country == "US" and state in NO_SALES_TAX_STATES:
        return None, "not_subject_to_tax", name, state, level
    if rate is None:
        return None, "not_collecting", name, state, level
    if tax_code == NONTAXABLE:
        return None, "product_exempt", name, state, level
    return rate, "standard_rated", name, state, level


def _line(details: Json, item: Json, index: int, currency: str) -> Json:
    amount = _int(item, "amount", required=True)
    assert amount is not None
    behavior = _str(item, "tax_behavior") or "exclusive"
    if behavior not in ("exclusive", "inclusive"):
        raise invalid(f"Invalid tax_behavior: {behavior}", param=f"line_items[{index}][tax_behavior]")
    code = _str(item, "tax_code") or DEFAULT_TAX_CODE
    if not code.startswith("txcd_") or len(code) != 13:
        raise invalid(f"Invalid tax code: {code}", param=f"line_items[{index}][tax_code]")
    rate, reason, name, state, level = _decide(details, code)
    percent = Decimal(rate.percent) if rate else Decimal(0)
    if behavior == "exclusive":
        tax = _round(Decimal(amount) * percent / 100)
        taxable = amount
    else:
        tax = _round(Decimal(amount) * percent / (100 + percent))
        taxable = amount - tax
    country, _ = _where(details)
    return {
        "id": new_id("tax_li"), "object": "tax.calculation_line_item", "amount": amount, "amount_tax": tax,
        "livemode": False, "metadata": _metadata(item), "performance_location": None, "product": None,
        "quantity": _int(item, "quantity") or 1, "reference": _str(item, "reference") or f"L{index}",
        "tax_behavior": behavior, "tax_code": code,
        "tax_breakdown": [{
            "amount": tax, "jurisdiction": {"country": country, "display_name": name, "level": level, "state": state},
            "sourcing": "destination", "taxability_reason": reason, "taxable_amount": taxable,
            "tax_rate_details": {"display_name": "VAT" if rate and rate.tax_type == "vat" else "Sales tax",
                                 "percentage_decimal": str(percent), "tax_type": rate.tax_type if rate else "vat"},
        }],
    }


def _details(details: Json) -> Json:
    address = dict(details.get("address") or {})
    return {"address": {k: address.get(k) for k in ("city", "country", "line1", "line2", "postal_code", "state")},
            "address_source": details.get("address_source") or "billing", "ip_address": None,
            "tax_ids": [{"type": t.get("type"), "value": t.get("value")} for t in details.get("tax_ids") or []],
            "taxability_override": details.get("taxability_override") or "none"}


def create_calculation(fake: FakeStripe, p: Json, _: tuple[str, ...]) -> Json:
    currency = (_str(p, "currency", required=True) or "").lower()
    details = p.get("customer_details")
    if not isinstance(details, dict):
        raise invalid("Missing required param: customer_details.", param="customer_details", code="parameter_missing")
    items = p.get("line_items")
    if not isinstance(items, list) or not items:
        raise invalid("Missing required param: line_items.", param="line_items", code="parameter_missing")
    lines = [_line(details, item, i, currency) for i, item in enumerate(items)]
    if len({line["reference"] for line in lines}) != len(lines):
        raise invalid("Line item references must be unique.", param="line_items")
    exclusive = sum(line["amount_tax"] for line in lines if line["tax_behavior"] == "exclusive")
    inclusive = sum(line["amount_tax"] for line in lines if line["tax_behavior"] == "inclusive")
    breakdown: dict[tuple[Any, ...], Json] = {}
    for line in lines:
        part = line["tax_breakdown"][0]
        key = (part["jurisdiction"]["country"], part["jurisdiction"]["state"], part["tax_rate_details"]
               ["percentage_decimal"], part["taxability_reason"], line["tax_behavior"] == "inclusive")
        row = breakdown.setdefault(key, {
            "amount": 0, "inclusive": key[4], "taxability_reason": key[3], "taxable_amount": 0,
            "tax_rate_details": {"country": key[0], "flat_amount": None, "percentage_decimal": key[2],
                                 "rate_type": "percentage", "state": key[1],
                                 "tax_type": part["tax_rate_details"]["tax_type"]}})
        row["amount"] += part["amount"]
        row["taxable_amount"] += part["taxable_amount"]
    created = now()
    calc = fake.put({
        "id": new_id("taxcalc"), "object": "tax.calculation",
        "amount_total": sum(line["amount"] for line in lines) + exclusive, "currency": currency,
        "customer": _str(p, "customer"), "customer_details": _details(details), "expires_at": created + 90 * 86_400,
        "livemode": False, "ship_from_details": None, "shipping_cost": None, "tax_amount_exclusive": exclusive,
        "tax_amount_inclusive": inclusive, "tax_breakdown": list(breakdown.values()),
        "tax_date": _int(p, "tax_date") or created,
    })
    fake.hidden[calc["id"]] = {"line_items": lines}
    return _calculation(fake, calc, p)


def _calculation(fake: FakeStripe, calc: Json, p: Json) -> Json:
    out = copy.deepcopy(calc)
    if "line_items" in (p.get("expand") or []):
        lines = fake.hidden[calc["id"]]["line_items"]
        out["line_items"] = {"object": "list", "data": copy.deepcopy(lines), "has_more": False,
                             "url": f"/v1/tax/calculations/{calc['id']}/line_items"}
    return out


def get_calculation(fake: FakeStripe, p: Json, ids: tuple[str, ...]) -> Json:
    return _calculation(fake, fake.get("tax.calculation", ids[0]), p)


def _transaction_line(line: Json, *, sign: int, original: str | None, reference: str, amount: int | None = None,
                      amount_tax: int | None = None) -> Json:
    return {
        "id": new_id("tax_li"), "object": "tax.transaction_line_item",
        "amount": sign * (line["amount"] if amount is None else amount),
        "amount_tax": sign * (line["amount_tax"] if amount_tax is None else amount_tax), "livemode": False,
        "metadata": dict(line.get("metadata") or {}), "product": None, "quantity": line["quantity"],
        "reference": reference, "reversal": {"original_line_item": original} if original else None,
        "tax_behavior": line["tax_behavior"], "tax_code": line["tax_code"],
        "type": "reversal" if original else "transaction",
    }


def _unique_reference(fake: FakeStripe, reference: str) -> None:
    if any(t["reference"] == reference for t in fake.of_kind("tax.transaction")):
        raise invalid(f"A transaction with reference '{reference}' already exists.", param="reference")


def _transaction(fake: FakeStripe, base: Json, lines: list[Json], *, reference: str, kind: str,
                 metadata: dict[str, str], original: str | None) -> Json:
    at = now()
    tx = fake.put({
        "id": new_id("tax"), "object": "tax.transaction", "created": at, "currency": base["currency"],
        "customer": base.get("customer"), "customer_details": copy.deepcopy(base["customer_details"]),
        "livemode": False, "metadata": metadata, "posted_at": at, "reference": reference,
        "reversal": {"original_transaction": original} if original else None, "ship_from_details": None,
        "shipping_cost": None, "tax_date": base["tax_date"], "type": kind,
    })
    fake.hidden[tx["id"]] = {"line_items": lines}
    return tx


def _with_lines(fake: FakeStripe, tx: Json, p: Json) -> Json:
    out = copy.deepcopy(tx)
    if "line_items" in (p.get("expand") or []):
        out["line_items"] = {"object": "list", "data": copy.deepcopy(fake.hidden[tx["id"]]["line_items"]),
                             "has_more": False, "url": f"/v1/tax/transactions/{tx['id']}/line_items"}
    return out


def create_from_calculation(fake: FakeStripe, p: Json, _: tuple[str, ...]) -> Json:
    calc_id = _str(p, "calculation", required=True)
    reference = _str(p, "reference", required=True)
    assert calc_id is not None and reference is not None
    calc = fake.get("tax.calculation", calc_id, param="calculation")
    if calc["expires_at"] is not None and calc["expires_at"] <= fake.clock():
        raise invalid("The calculation has expired.", param="calculation")
    _unique_reference(fake, reference)
    lines = [_transaction_line(line, sign=1, original=None, reference=line["reference"])
             for line in fake.hidden[calc_id]["line_items"]]
    for line, calc_line in zip(lines, fake.hidden[calc_id]["line_items"], strict=True):
        fake.hidden[line["id"]] = {"calc_line": calc_line["id"]}
    return _with_lines(fake, _transaction(fake, calc, lines, reference=reference, kind="transaction",
                                          metadata=_metadata(p), original=None), p)


def _gross(line: Json) -> int:
    return int(line["amount"]) + (int(line["amount_tax"]) if line["tax_behavior"] == "exclusive" else 0)


def _reversed_so_far(fake: FakeStripe, tx_id: str) -> int:
    """The gross already reversed of a transaction (a positive number)."""
    return -sum(_gross(line) for rev in fake.of_kind("tax.transaction")
                if rev["reversal"] and rev["reversal"]["original_transaction"] == tx_id
                for line in fake.hidden[rev["id"]]["line_items"])


def create_reversal(fake: FakeStripe, p: Json, _: tuple[str, ...]) -> Json:
    """Full, or partial by ``flat_amount`` (negative, tax included), spread over the lines in proportion."""
    original_id = _str(p, "original_transaction", required=True)
    reference = _str(p, "reference", required=True)
    mode = _str(p, "mode", required=True)
    assert original_id is not None and reference is not None
    original = fake.get("tax.transaction", original_id, param="original_transaction")
    if original["type"] != "transaction":
        raise invalid("Only a transaction can be reversed, not a reversal.", param="original_transaction")
    _unique_reference(fake, reference)
    lines: list[Json] = fake.hidden[original_id]["line_items"]
    gross = sum(_gross(ln) for ln in lines)
    done = _reversed_so_far(fake, original_id)
    if mode == "full":
        if done:
            raise invalid("A partly reversed transaction cannot be reversed in full.", param="mode")
        out = [_transaction_line(ln, sign=-1, original=ln["id"], reference=f"{ln['reference']}-rev") for ln in lines]
    elif mode == "partial":
        raw = p.get("flat_amount")
        try:
            flat = -int(str(raw))
        except (TypeError, ValueError):
            raise invalid("A partial reversal of the fake needs flat_amount (negative).", param="flat_amount") from None
        if flat <= 0 or flat > gross - done:
            raise invalid(f"flat_amount must be negative and at most what is left to reverse ({gross - done}).",
                          param="flat_amount")
        out = []
        for ln in lines:
            share = Decimal(flat) / Decimal(gross)
            back_tax = _round(Decimal(ln["amount_tax"]) * share)
            back_gross = _round(Decimal(_gross(ln)) * share)
            back_amount = back_gross - back_tax if ln["tax_behavior"] == "exclusive" else back_gross
            out.append(_transaction_line(ln, sign=-1, original=ln["id"], reference=f"{ln['reference']}-rev",
                                         amount=back_amount, amount_tax=back_tax))
    else:
        raise invalid(f"Invalid mode: {mode}", param="mode")
    return _with_lines(fake, _transaction(fake, original, out, reference=reference, kind="reversal",
                                          metadata=_metadata(p), original=original_id), p)


def get_transaction(fake: FakeStripe, p: Json, ids: tuple[str, ...]) -> Json:
    return _with_lines(fake, fake.get("tax.transaction", ids[0]), p)


# --- a customer's tax ids -----------------------------------------------------------------------------------

def _tax_ids(fake: FakeStripe, customer_id: str) -> list[Json]:
    ids: list[Json] = fake.hidden.setdefault(customer_id, {}).setdefault("tax_ids", [])
    return ids


def _tax_id_object(customer_id: str, entry: Json) -> Json:
    value = str(entry["value"])
    return {"id": entry.setdefault("id", new_id("txi")), "object": "tax_id",
            "country": value[:2] if entry["type"] in ("eu_vat", "gb_vat") else None,
            "created": entry.setdefault("created", now()), "customer": customer_id, "livemode": False,
            "type": entry["type"], "value": value, "verification": {"status": "unavailable", "verified_address": None,
                                                                    "verified_name": None}}


def create_tax_id(fake: FakeStripe, p: Json, ids: tuple[str, ...]) -> Json:
    customer = fake.get("customer", ids[0], param="customer")
    kind, value = _str(p, "type", required=True), _str(p, "value", required=True)
    entry = {"type": kind, "value": value}
    _tax_ids(fake, customer["id"]).append(entry)
    return _tax_id_object(customer["id"], entry)


def list_tax_ids(fake: FakeStripe, p: Json, ids: tuple[str, ...]) -> Json:
    customer = fake.get("customer", ids[0], param="customer")
    return {"object": "list", "data": [_tax_id_object(customer["id"], e) for e in _tax_ids(fake, customer["id"])],
            "has_more": False, "url": f"/v1/customers/{customer['id']}/tax_ids"}


# --- automatic tax on invoices -----------------------------------------------------------------------------

def customer_tax_details(fake: FakeStripe, customer: Json) -> Json:
    """A customer's address, tax ids and exemption as Stripe Tax's customer_details."""
    override = {"exempt": "customer_exempt", "reverse": "reverse_charge"}.get(customer.get("tax_exempt") or "none",
                                                                              "none")
    return {"address": customer.get("address") or {}, "tax_ids": _tax_ids(fake, customer["id"]),
            "taxability_override": override}


def invoice_line_tax(fake: FakeStripe, customer: Json, *, amount: int, tax_code: str | None,
                     tax_behavior: str) -> Json:
    """The ``taxes`` entry of one invoice line (automatic tax) and nothing else."""
    calc_line = _line(customer_tax_details(fake, customer), {"amount": str(amount), "tax_behavior": tax_behavior,
                                                       "tax_code": tax_code or DEFAULT_TAX_CODE}, 0, "")
    part = calc_line["tax_breakdown"][0]
    return {"amount": calc_line["amount_tax"], "tax_behavior": tax_behavior,
            "tax_rate_details": {"tax_rate": f"txr_fake_{part['jurisdiction']['country'].lower()}_"
                                             f"{part['tax_rate_details']['percentage_decimal'].replace('.', '_')}"},
            "taxability_reason": part["taxability_reason"], "taxable_amount": part["taxable_amount"],
            "type": "tax_rate_details"}
