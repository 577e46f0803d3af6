"""Invoice items and one-off invoices (send_invoice): draft -> open -> paid | void, with their events."""

from __future__ import annotations

import copy

from stripe_fake.core import FakeStripe, Json, invalid, new_id, now
from stripe_fake.resources import _bool, _expand, _int, _metadata, _str
from stripe_fake.tax import invoice_line_tax

_DAY = 86_400


def create_invoice_item(fake: FakeStripe, p: Json, _: tuple[str, ...]) -> Json:
    customer = _str(p, "customer", required=True)
    currency = _str(p, "currency", required=True)
    amount = _int(p, "amount", required=True)
    assert customer is not None and currency is not None and amount is not None
    fake.get("customer", customer, param="customer")
    period = p.get("period") or {}
    start = _int(period, "start") or now()
    end = _int(period, "end") or start
    behavior = _str(p, "tax_behavior") or "exclusive"
    if behavior not in ("exclusive", "inclusive", "unspecified"):
        raise invalid(f"Invalid tax_behavior: {behavior}", param="tax_behavior")
    item_id = new_id("ii")
    fake.hidden[item_id] = {"tax_code": _str(p, "tax_code"), "tax_behavior": behavior}
    return copy.deepcopy(fake.put({
        "id": item_id, "object": "invoiceitem", "amount": amount, "currency": currency.lower(),
        "customer": customer, "date": now(), "description": _str(p, "description"), "discountable": True,
        "invoice": None, "livemode": False, "metadata": _metadata(p), "period": {"start": start, "end": end},
        "proration": False, "quantity": 1, "tax_rates": [], "test_clock": None,
    }))


def create_invoice(fake: FakeStripe, p: Json, _: tuple[str, ...]) -> Json:
    customer_id = _str(p, "customer", required=True)
    assert customer_id is not None
    customer = fake.get("customer", customer_id, param="customer")
    method = _str(p, "collection_method") or "charge_automatically"
    days = _int(p, "days_until_due")
    if method == "send_invoice" and days is None:
        raise invalid("Missing required param: days_until_due.", param="days_until_due", code="parameter_missing")
    invoice_id = new_id("in")
    items = []
    if (_str(p, "pending_invoice_items_behavior") or "exclude") == "include":
        items = [i for i in fake.of_kind("invoiceitem") if i["customer"] == customer_id and i["invoice"] is None]
    currency = (_str(p, "currency") or (items[0]["currency"] if items else "usd")).lower()
    auto = p.get("automatic_tax")
    automatic = _bool(auto if isinstance(auto, dict) else {}, "enabled")
    if automatic and not (customer.get("address") or {}).get("country"):
        raise invalid("Automatic tax needs the customer's address (customer_tax_location_invalid).",
                      param="automatic_tax[enabled]", code="customer_tax_location_invalid")
    lines = []
    for item in items:
        item["invoice"] = invoice_id
        line = {
            "id": new_id("il"), "object": "line_item", "amount": item["amount"], "currency": item["currency"],
            "description": item["description"], "invoice": invoice_id, "livemode": False,
            "metadata": dict(item["metadata"]), "period": dict(item["period"]), "quantity": 1,
        }
        if automatic:
            terms = fake.hidden.get(item["id"], {})
            behavior = terms.get("tax_behavior") or "exclusive"
            line["taxes"] = [invoice_line_tax(fake, customer, amount=item["amount"], tax_code=terms.get("tax_code"),
                                              tax_behavior="exclusive" if behavior == "unspecified" else behavior)]
        lines.append(line)
    subtotal = sum(line["amount"] for line in lines)
    total = subtotal + sum(t["amount"] for line in lines for t in line.get("taxes", [])
                           if t["tax_behavior"] == "exclusive")
    tax_lines = [t for line in lines for t in line.get("taxes", [])]
    created = now()
    return _public(copy.deepcopy(fake.put({
        "id": invoice_id, "object": "invoice", "amount_due": total, "amount_paid": 0, "amount_remaining": total,
        "attempt_count": 0, "attempted": False, "auto_advance": _bool(p, "auto_advance", default=True),
        "collection_method": method, "created": created, "currency": currency, "customer": customer_id,
        "customer_email": customer["email"], "customer_name": customer["name"], "description": _str(p, "description"),
        "due_date": None, "hosted_invoice_url": None, "invoice_pdf": None, "livemode": False,
        "lines": {"object": "list", "data": lines, "has_more": False, "url": f"/v1/invoices/{invoice_id}/lines"},
        "metadata": _metadata(p), "number": None, "period_end": created, "period_start": created,
        "status": "draft", "status_transitions": {"finalized_at": None, "marked_uncollectible_at": None,
                                                  "paid_at": None, "voided_at": None},
        "subtotal": subtotal, "total": total, "webhooks_delivered_at": None,
        "days_until_due": days,
        "automatic_tax": {"disabled_reason": None, "enabled": automatic, "liability": {"account": None, "type": "self"}
                          if automatic else None, "provider": "stripe" if automatic else None,
                          "status": "complete" if automatic else None},
        "customer_address": copy.deepcopy(customer.get("address")), "customer_tax_exempt": customer["tax_exempt"],
        "customer_tax_ids": [{"type": t["type"], "value": t["value"]}
                             for t in fake.hidden.get(customer_id, {}).get("tax_ids", [])],
        "total_taxes": tax_lines if automatic else [],
    })))


def _invoice(fake: FakeStripe, invoice_id: str) -> Json:
    return fake.get("invoice", invoice_id)


def get_invoice(fake: FakeStripe, p: Json, ids: tuple[str, ...]) -> Json:
    return _public(_expand(fake, _invoice(fake, ids[0]), p))


def _public(invoice: Json) -> Json:
    out = dict(invoice)
    out.pop("days_until_due", None)  # kept for finalization; not a field of the Invoice object
    return out


def finalize_invoice(fake: FakeStripe, p: Json, ids: tuple[str, ...]) -> Json:
    invoice = _invoice(fake, ids[0])
    if invoice["status"] != "draft":
        raise invalid("This invoice is already finalized, you can't re-finalize a non-draft invoice.",
                      code="invoice_not_editable")
    at = now()
    invoice["status"] = "open" if invoice["amount_due"] > 0 else "paid"
    sequence = 1 + sum(1 for i in fake.of_kind("invoice") if i["number"])
    invoice["number"] = f"{invoice['id'][3:11].upper()}-{sequence:04d}"
    invoice["hosted_invoice_url"] = f"https://invoice.stripe.com/i/fake/{invoice['id']}"
    invoice["status_transitions"]["finalized_at"] = at
    if invoice["collection_method"] == "send_invoice":
        invoice["due_date"] = at + _DAY * int(invoice["days_until_due"] or 0)
    fake.emit("invoice.finalized", _public(invoice))
    if invoice["status"] == "paid":
        invoice["status_transitions"]["paid_at"] = at
        fake.emit("invoice.paid", _public(invoice))
    return _public(copy.deepcopy(invoice))


def send_invoice(fake: FakeStripe, p: Json, ids: tuple[str, ...]) -> Json:
    invoice = _invoice(fake, ids[0])
    if invoice["status"] != "open" or invoice["collection_method"] != "send_invoice":
        raise invalid("You can only manually send an invoice if its status is open and it is billed by "
                      "send_invoice.", code="invoice_not_editable")
    fake.emit("invoice.sent", _public(invoice))
    return _public(copy.deepcopy(invoice))


def void_invoice(fake: FakeStripe, p: Json, ids: tuple[str, ...]) -> Json:
    invoice = _invoice(fake, ids[0])
    if invoice["status"] != "open":
        raise invalid("You can only void an open invoice.", code="invoice_not_editable")
    invoice["status"] = "void"
    invoice["status_transitions"]["voided_at"] = now()
    fake.emit("invoice.voided", _public(invoice))
    return _public(copy.deepcopy(invoice))


def pay_invoice(fake: FakeStripe, p: Json, ids: tuple[str, ...]) -> Json:
    """Fake-only: the customer pays an open invoice (``success=false``: the payment attempt fails)."""
    invoice = _invoice(fake, ids[0])
    if invoice["status"] != "open":
        raise invalid("Only an open invoice can be paid.", code="invoice_not_editable")
    invoice["attempt_count"] += 1
    invoice["attempted"] = True
    if _bool(p, "success", default=True):
        invoice["status"] = "paid"
        invoice["amount_paid"], invoice["amount_remaining"] = invoice["amount_due"], 0
        invoice["status_transitions"]["paid_at"] = now()
        fake.emit("invoice.paid", _public(invoice))
    else:
        fake.emit("invoice.payment_failed", _public(invoice))
    return _public(copy.deepcopy(invoice))


def list_invoice_lines(fake: FakeStripe, p: Json, ids: tuple[str, ...]) -> Json:
    """An invoice's lines, a page of ``limit`` after ``starting_after``."""
    lines = _invoice(fake, ids[0])["lines"]["data"]
    after = _str(p, "starting_after")
    start = next((i + 1 for i, line in enumerate(lines) if line["id"] == after), 0) if after else 0
    limit = _int(p, "limit") or 10
    page = lines[start:start + limit]
    return {"object": "list", "data": copy.deepcopy(page), "has_more": start + limit < len(lines),
            "url": f"/v1/invoices/{ids[0]}/lines"}
