"""The endpoints the fake serves: the Stripe ones this service calls, and a few fake-only test controls."""

from __future__ import annotations

import copy
import re
import time
from typing import Any

from stripe_fake.cards import DECLINE_MESSAGES, TEST_CARDS, TEST_NUMBERS, luhn_valid
from stripe_fake.core import FakeStripe, Json, StripeApiError, invalid, missing, new_id, now

# --- parameter helpers ------------------------------------------------------------------------------------


def _int(params: Json, name: str, *, required: bool = False) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        if required:
            raise invalid(f"Missing required param: {name}.", param=name, code="parameter_missing")
        return None
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise invalid(f"Invalid integer: {raw}", param=name, code="parameter_invalid_integer") from None
    if value < 0:
        raise invalid(f"Invalid {name}: must be at least 0", param=name)
    return value


def _str(params: Json, name: str, *, required: bool = False) -> str | None:
    raw = params.get(name)
    if raw is None or raw == "":
        if required:
            raise invalid(f"Missing required param: {name}.", param=name, code="parameter_missing")
        return None
    if not isinstance(raw, str):
        raise invalid(f"Invalid string: {name}", param=name)
    return raw


def _bool(params: Json, name: str, default: bool = False) -> bool:
    raw = params.get(name)
    if raw is None:
        return default
    if raw not in ("true", "false"):
        raise invalid(f"Invalid boolean: {raw}", param=name)
    return bool(raw == "true")


def _metadata(params: Json) -> dict[str, str]:
    raw = params.get("metadata") or {}
    if not isinstance(raw, dict):
        raise invalid("Invalid metadata", param="metadata")
    return {str(k): str(v) for k, v in raw.items()}


def _expand(fake: FakeStripe, obj: Json, params: Json) -> Json:
    out = copy.deepcopy(obj)
    for path in params.get("expand") or []:
        node, *rest = path.split(".")
        if not rest and isinstance(out.get(node), str) and out[node] in fake.objects:
            out[node] = copy.deepcopy(fake.objects[out[node]])
    return out


def _list(items: list[Json], url: str) -> Json:
    return {"object": "list", "data": [copy.deepcopy(i) for i in items], "has_more": False, "url": url}


# --- customers --------------------------------------------------------------------------------------------


def _tax_identity(fake: FakeStripe, customer: Json, p: Json) -> None:
    """Address, tax exemption and tax ids (``tax_id_data`` on create; kept aside: not a field of the object)."""
    if "address" in p:
        raw = p.get("address")
        address = raw if isinstance(raw, dict) else {}
        customer["address"] = {k: address.get(k) or None for k in ("city", "country", "line1", "line2",
                                                                      "postal_code", "state")} if address else None
    if "tax_exempt" in p:
        exempt = _str(p, "tax_exempt") or "none"
        if exempt not in ("none", "exempt", "reverse"):
            raise invalid(f"Invalid tax_exempt: {exempt}", param="tax_exempt")
        customer["tax_exempt"] = exempt
    if "tax_id_data" in p:
        ids = p.get("tax_id_data")
        fake.hidden.setdefault(customer["id"], {})["tax_ids"] = [
            {"type": t.get("type"), "value": t.get("value")} for t in ids if isinstance(t, dict)
        ] if isinstance(ids, list) else []


def create_customer(fake: FakeStripe, p: Json, _: tuple[str, ...]) -> Json:
    customer = fake.put({
        "id": new_id("cus"), "object": "customer", "balance": 0, "created": now(), "currency": None,
        "delinquent": False, "description": _str(p, "description"), "email": _str(p, "email"),
        "invoice_prefix": new_id("").strip("_")[:8].upper(),
        "invoice_settings": {"custom_fields": None, "default_payment_method": None, "footer": None,
                             "rendering_options": None},
        "livemode": False, "metadata": _metadata(p), "name": _str(p, "name"), "phone": None,
        "preferred_locales": [], "shipping": None, "tax_exempt": "none", "test_clock": None, "address": None,
    })
    _tax_identity(fake, customer, p)
    return customer


def get_customer(fake: FakeStripe, p: Json, ids: tuple[str, ...]) -> Json:
    return _expand(fake, fake.get("customer", ids[0]), p)


def update_customer(fake: FakeStripe, p: Json, ids: tuple[str, ...]) -> Json:
    customer = fake.get("customer", ids[0])
    for name in ("email", "name", "description"):
        if name in p:
            customer[name] = _str(p, name)
    if "metadata" in p:
        customer["metadata"] = {**customer["metadata"], **_metadata(p)}
    _tax_identity(fake, customer, p)
    settings = p.get("invoice_settings") or {}
    if "default_payment_method" in settings:
        pm_id = settings["default_payment_method"] or None
        if pm_id is not None and fake.get("payment_method", pm_id).get("customer") != customer["id"]:
            raise invalid(f"No such PaymentMethod: '{pm_id}'; it is not attached to this customer.",
                          param="invoice_settings[default_payment_method]", code="resource_missing")
        customer["invoice_settings"]["default_payment_method"] = pm_id
    return _expand(fake, customer, p)


# --- payment methods --------------------------------------------------------------------------------------


def materialize_payment_method(fake: FakeStripe, pm_id: str, *, param: str = "payment_method",
                               exp_month: int = 12, exp_year: int = 2034) -> Json:
    """A saved PaymentMethod, or a new one made from a test token such as ``pm_card_visa``."""
    card = TEST_CARDS.get(pm_id)
    if card is None:
        return fake.get("payment_method", pm_id, param=param)
    pm = fake.put({
        "id": new_id("pm"), "object": "payment_method", "allow_redisplay": "unspecified",
        "billing_details": {"address": None, "email": None, "name": None, "phone": None, "tax_id": None},
        "card": {"brand": card.brand, "checks": {"address_line1_check": None, "address_postal_code_check": None,
                                                  "cvc_check": "pass"},
                 "country": card.country, "display_brand": card.brand, "exp_month": exp_month, "exp_year": exp_year,
                 "fingerprint": new_id("fp")[3:19], "funding": "credit", "last4": card.last4,
                 "regulated_status": "unregulated", "wallet": None},
        "created": now(), "customer": None, "livemode": False, "metadata": {}, "type": "card",
    })
    fake.hidden[pm["id"]] = {"card": pm_id}  # the test card's name: its behaviour, kept as plain data
    return pm


def create_payment_method(fake: FakeStripe, p: Json, _: tuple[str, ...]) -> Json:
    """A card typed into a form (Stripe.js ``createPaymentMethod``): test numbers only, checked as Stripe does."""
    if _str(p, "type", required=True) != "card":
        raise invalid("The fake makes card payment methods only.", param="type")
    raw = p.get("card")
    details: Json = raw if isinstance(raw, dict) else {}
    number = str(details.get("number") or "").replace(" ", "")
    if not luhn_valid(number):
        raise StripeApiError(402, "card_error", "Your card number is incorrect.", code="incorrect_number",
                             param="card[number]")
    month, year = _int(details, "exp_month", required=True), _int(details, "exp_year", required=True)
    assert month is not None and year is not None
    year = year + 2000 if year < 100 else year
    today = time.gmtime()
    if not 1 <= month <= 12:
        raise StripeApiError(402, "card_error", "Your card's expiration month is invalid.",
                             code="invalid_expiry_month", param="card[exp_month]")
    if (year, month) < (today.tm_year, today.tm_mon) or year > today.tm_year + 50:
        raise StripeApiError(402, "card_error", "Your card's expiration year is invalid.",
                             code="invalid_expiry_year", param="card[exp_year]")
    if not re.fullmatch(r"\d{3,4}", str(details.get("cvc") or "")):
        raise StripeApiError(402, "card_error", "Your card's security code is invalid.", code="invalid_cvc",
                             param="card[cvc]")
    token = TEST_NUMBERS.get(number)
    if token is None:
        raise StripeApiError(402, "card_error", "Your card was declined. Your request was in test mode, but used a "
                             "non test card. For a list of valid test cards, visit: https://stripe.com/docs/testing.",
                             code="card_declined", decline_code="test_mode_live_card")
    return copy.deepcopy(materialize_payment_method(fake, token, exp_month=month, exp_year=year))


def challenge_action(fake: FakeStripe, intent: Json) -> Json:
    """``next_action`` of an intent waiting for 3-D Secure: the fake's challenge page (Stripe.js opens the bank's)."""
    url = f"{fake.base_url}/_fake/3ds/{intent['id']}?client_secret={intent['client_secret']}"
    return {"type": "use_stripe_sdk", "use_stripe_sdk": {"type": "three_d_secure_redirect", "stripe_js": url}}


def _card_of(fake: FakeStripe, pm_id: str) -> Any:
    return TEST_CARDS[fake.hidden[pm_id]["card"]]


def list_payment_methods(fake: FakeStripe, p: Json, _: tuple[str, ...]) -> Json:
    customer = _str(p, "customer", required=True)
    assert customer is not None
    fake.get("customer", customer, param="customer")
    kind = _str(p, "type")
    items = [pm for pm in fake.of_kind("payment_method")
             if pm["customer"] == customer and (kind is None or pm["type"] == kind)]
    items.sort(key=lambda pm: (pm["created"], pm["id"]), reverse=True)
    limit = _int(p, "limit") or 10
    result = _list(items[:limit], "/v1/payment_methods")
    result["has_more"] = len(items) > limit
    return result


def get_payment_method(fake: FakeStripe, p: Json, ids: tuple[str, ...]) -> Json:
    return _expand(fake, fake.get("payment_method", ids[0]), p)


def attach_payment_method(fake: FakeStripe, p: Json, ids: tuple[str, ...]) -> Json:
    customer = _str(p, "customer", required=True)
    assert customer is not None
    fake.get("customer", customer, param="customer")
    pm = materialize_payment_method(fake, ids[0], param="id")
    if pm["customer"] not in (None, customer):
        raise invalid("The payment method you provided has already been attached to a customer.",
                      code="payment_method_unexpected_state")
    if _card_of(fake, pm["id"]).behaviour == "decline_on_setup":
        raise _card_declined(pm["id"], "generic_decline")
    pm["customer"] = customer
    return copy.deepcopy(pm)


def detach_payment_method(fake: FakeStripe, p: Json, ids: tuple[str, ...]) -> Json:
    pm = fake.get("payment_method", ids[0])
    if pm["customer"] is None:
        raise invalid("The payment method you provided is not attached to a customer so detachment is "
                      "impossible.", code="payment_method_unexpected_state")
    customer = fake.get("customer", pm["customer"])
    if customer["invoice_settings"]["default_payment_method"] == pm["id"]:
        customer["invoice_settings"]["default_payment_method"] = None
    pm["customer"] = None
    return copy.deepcopy(pm)


def _card_declined(pm_id: str, decline_code: str, **extra: Any) -> StripeApiError:
    return StripeApiError(402, "card_error", DECLINE_MESSAGES.get(decline_code, "Your card was declined."),
                          code="card_declined", decline_code=decline_code, payment_method={"id": pm_id}, **extra)


# --- setup intents ----------------------------------------------------------------------------------------


def create_setup_intent(fake: FakeStripe, p: Json, _: tuple[str, ...]) -> Json:
    customer = _str(p, "customer")
    if customer is not None:
        fake.get("customer", customer, param="customer")
    seti_id = new_id("seti")
    seti = fake.put({
        "id": seti_id, "object": "setup_intent", "application": None, "cancellation_reason": None,
        "client_secret": f"{seti_id}_secret_{new_id('s')[2:]}", "created": now(), "customer": customer,
        "description": _str(p, "description"), "last_setup_error": None, "latest_attempt": None,
        "livemode": False, "mandate": None, "metadata": _metadata(p), "next_action": None, "on_behalf_of": None,
        "payment_method": None, "payment_method_types": ["card"], "single_use_mandate": None,
        "status": "requires_payment_method", "usage": _str(p, "usage") or "off_session",
    })
    if _bool(p, "confirm"):
        return confirm_setup_intent(fake, p, (seti_id,))
    return copy.deepcopy(seti)


def get_setup_intent(fake: FakeStripe, p: Json, ids: tuple[str, ...]) -> Json:
    return _expand(fake, fake.get("setup_intent", ids[0]), p)


def confirm_setup_intent(fake: FakeStripe, p: Json, ids: tuple[str, ...]) -> Json:
    seti = fake.get("setup_intent", ids[0])
    if seti["status"] not in ("requires_payment_method", "requires_confirmation"):
        raise invalid(f"You cannot confirm this SetupIntent because it has a status of {seti['status']}.",
                      code="setup_intent_unexpected_state")
    pm_id = _str(p, "payment_method") or seti["payment_method"]
    if pm_id is None:
        raise invalid("You must provide a payment_method.", param="payment_method", code="parameter_missing")
    pm = materialize_payment_method(fake, pm_id)
    seti["payment_method"] = pm["id"]
    card = _card_of(fake, pm["id"])
    if card.behaviour == "decline_on_setup":
        seti["status"] = "requires_payment_method"
        seti["last_setup_error"] = {"code": "card_declined", "decline_code": card.decline_code,
                                    "message": "Your card was declined.", "type": "card_error"}
        fake.emit("setup_intent.setup_failed", seti)
        raise _card_declined(pm["id"], card.decline_code or "generic_decline", setup_intent=copy.deepcopy(seti))
    if card.behaviour == "authenticate":
        seti["status"] = "requires_action"
        seti["next_action"] = challenge_action(fake, seti)
        fake.emit("setup_intent.requires_action", seti)
        return copy.deepcopy(seti)
    _succeed_setup(fake, seti)
    return copy.deepcopy(seti)


def _succeed_setup(fake: FakeStripe, seti: Json) -> None:
    seti["status"], seti["next_action"], seti["last_setup_error"] = "succeeded", None, None
    if seti["customer"] is not None:
        fake.objects[seti["payment_method"]]["customer"] = seti["customer"]
    fake.emit("setup_intent.succeeded", seti)


# --- payment intents and charges --------------------------------------------------------------------------


# Stripe's minimum charge per currency (minor units) and its three-decimal rule; amounts in other currencies
# are taken as they come.
MINIMUM_CHARGE = {"usd": 50, "eur": 50, "gbp": 30, "chf": 50, "cad": 50, "aud": 50, "nzd": 50, "sek": 300,
                  "nok": 300, "dkk": 250, "pln": 200, "czk": 1500, "brl": 50, "mxn": 1000, "inr": 50, "sgd": 50,
                  "hkd": 400, "jpy": 50, "huf": 17500, "aed": 200, "thb": 1000, "myr": 200, "ron": 200, "bgn": 100}
THREE_DECIMAL = ("bhd", "jod", "kwd", "omr", "tnd")


def _check_amount(amount: int, currency: str) -> None:
    cur = currency.lower()
    minimum = MINIMUM_CHARGE.get(cur, 1)
    if amount < minimum:
        raise invalid(f"Amount must be at least {minimum} minor units of {cur}", param="amount",
                      code="amount_too_small")
    if cur in THREE_DECIMAL and amount % 10:
        raise invalid("Amounts in three-decimal currencies must be divisible by 10 (the last digit must be 0).",
                      param="amount", code="invalid_amount")


def create_payment_intent(fake: FakeStripe, p: Json, _: tuple[str, ...]) -> Json:
    amount = _int(p, "amount", required=True)
    currency = _str(p, "currency", required=True)
    assert amount is not None and currency is not None
    _check_amount(amount, currency)
    customer = _str(p, "customer")
    if customer is not None:
        fake.get("customer", customer, param="customer")
    pi_id = new_id("pi")
    pi = fake.put({
        "id": pi_id, "object": "payment_intent", "amount": amount, "amount_capturable": 0, "amount_received": 0,
        "application": None, "canceled_at": None, "cancellation_reason": None, "capture_method": "automatic",
        "client_secret": f"{pi_id}_secret_{new_id('s')[2:]}", "confirmation_method": "automatic",
        "created": now(), "currency": currency.lower(), "customer": customer,
        "description": _str(p, "description"), "last_payment_error": None, "latest_charge": None,
        "livemode": False, "metadata": _metadata(p), "next_action": None, "payment_method": None,
        "payment_method_types": ["card"], "receipt_email": None, "setup_future_usage": _str(p, "setup_future_usage"),
        "status": "requires_payment_method",
    })
    if _str(p, "payment_method") is not None:
        pi["payment_method"] = materialize_payment_method(fake, p["payment_method"])["id"]
        pi["status"] = "requires_confirmation"
    if _bool(p, "confirm"):
        return _confirm(fake, pi, p)
    return _expand(fake, pi, p)


def list_payment_intents(fake: FakeStripe, p: Json, _: tuple[str, ...]) -> Json:
    """Newest first, optionally one customer's; ``limit`` (1-100) and ``starting_after`` page through them."""
    customer = _str(p, "customer")
    items = [pi for pi in fake.of_kind("payment_intent") if customer is None or pi["customer"] == customer]
    items.sort(key=lambda pi: (pi["created"], pi["id"]), reverse=True)
    after = _str(p, "starting_after")
    if after is not None:
        ids = [pi["id"] for pi in items]
        if after not in ids:
            raise missing("payment_intent", after, "starting_after")
        items = items[ids.index(after) + 1:]
    limit = _int(p, "limit") or 10
    if not 1 <= limit <= 100:
        raise invalid("limit must be between 1 and 100.", param="limit")
    result = _list([_expand(fake, pi, p) for pi in items[:limit]], "/v1/payment_intents")
    result["has_more"] = len(items) > limit
    return result


def get_payment_intent(fake: FakeStripe, p: Json, ids: tuple[str, ...]) -> Json:
    return _expand(fake, fake.get("payment_intent", ids[0]), p)


def confirm_payment_intent(fake: FakeStripe, p: Json, ids: tuple[str, ...]) -> Json:
    pi = fake.get("payment_intent", ids[0])
    if _str(p, "payment_method") is not None:
        pi["payment_method"] = materialize_payment_method(fake, p["payment_method"])["id"]
    return _confirm(fake, pi, p)


def _confirm(fake: FakeStripe, pi: Json, p: Json) -> Json:
    if pi["status"] not in ("requires_payment_method", "requires_confirmation"):
        raise invalid(f"You cannot confirm this PaymentIntent because it has a status of {pi['status']}.",
                      code="payment_intent_unexpected_state")
    if pi["payment_method"] is None:
        raise invalid("You must provide a payment_method.", param="payment_method", code="parameter_missing")
    pm = fake.objects[pi["payment_method"]]
    if pm["customer"] is not None and pm["customer"] != pi["customer"]:
        raise invalid("The provided PaymentMethod is attached to another customer.", param="payment_method")
    card = _card_of(fake, pm["id"])
    off_session = _bool(p, "off_session")
    if card.behaviour == "authenticate" and off_session:
        pi["status"] = "requires_payment_method"
        message = "Your card was declined. This transaction requires authentication."
        error = {"code": "authentication_required", "decline_code": "authentication_required",
                 "message": message, "payment_method": copy.deepcopy(pm), "type": "card_error"}
        pi["last_payment_error"] = error
        fake.emit("payment_intent.payment_failed", pi)
        raise StripeApiError(402, "card_error", message, code="authentication_required",
                             decline_code="authentication_required", payment_method=copy.deepcopy(pm),
                             payment_intent=copy.deepcopy(pi))
    if card.behaviour == "authenticate":
        pi["status"] = "requires_action"
        pi["next_action"] = challenge_action(fake, pi)
        fake.emit("payment_intent.requires_action", pi)
        return _expand(fake, pi, p)
    if card.behaviour in ("decline", "decline_on_setup"):
        code = card.decline_code or "generic_decline"
        charge = _charge(fake, pi, pm, failed_code=code)
        pi["status"], pi["latest_charge"] = "requires_payment_method", charge["id"]
        pi["last_payment_error"] = {"charge": charge["id"], "code": "card_declined", "decline_code": code,
                                    "message": DECLINE_MESSAGES.get(code, "Your card was declined."),
                                    "payment_method": copy.deepcopy(pm), "type": "card_error"}
        fake.emit("payment_intent.payment_failed", pi)
        raise _card_declined(pm["id"], code, charge=charge["id"], payment_intent=copy.deepcopy(pi))
    _succeed_payment(fake, pi, pm)
    return _expand(fake, pi, p)


def _succeed_payment(fake: FakeStripe, pi: Json, pm: Json) -> None:
    charge = _charge(fake, pi, pm)
    pi["status"], pi["latest_charge"], pi["amount_received"] = "succeeded", charge["id"], pi["amount"]
    pi["next_action"], pi["last_payment_error"] = None, None
    if pi["setup_future_usage"] and pi["customer"] and pm["customer"] is None:
        pm["customer"] = pi["customer"]
    fake.emit("payment_intent.succeeded", pi)


def _charge(fake: FakeStripe, pi: Json, pm: Json, *, failed_code: str | None = None) -> Json:
    ok = failed_code is None
    return fake.put({
        "id": new_id("ch"), "object": "charge", "amount": pi["amount"], "amount_captured": pi["amount"] if ok else 0,
        "amount_refunded": 0, "balance_transaction": None, "captured": ok, "created": now(),
        "currency": pi["currency"], "customer": pi["customer"], "description": pi["description"],
        "disputed": False, "failure_code": None if ok else "card_declined",
        "failure_message": None if ok else DECLINE_MESSAGES.get(failed_code or "", "Your card was declined."),
        "livemode": False, "metadata": dict(pi["metadata"]),
        "outcome": {"network_status": "approved_by_network" if ok else "declined_by_network",
                    "reason": None if ok else failed_code, "risk_level": "normal",
                    "seller_message": "Payment complete." if ok else "The bank did not return any further details.",
                    "type": "authorized" if ok else "issuer_declined"},
        "paid": ok, "payment_intent": pi["id"], "payment_method": pm["id"], "receipt_url": None,
        "refunded": False, "status": "succeeded" if ok else "failed",
    })


def get_charge(fake: FakeStripe, p: Json, ids: tuple[str, ...]) -> Json:
    return _expand(fake, fake.get("charge", ids[0]), p)


def authenticate(fake: FakeStripe, p: Json, ids: tuple[str, ...]) -> Json:
    """Fake-only: the customer completes (``success=true``) or fails 3-D Secure for a PI or SetupIntent."""
    obj = fake.objects.get(ids[0])
    if obj is None or obj["object"] not in ("payment_intent", "setup_intent") or obj["status"] != "requires_action":
        raise invalid(f"{ids[0]} is not waiting for authentication.")
    success = _bool(p, "success", default=True)
    if obj["object"] == "setup_intent":
        if success:
            _succeed_setup(fake, obj)
        else:
            obj["status"], obj["next_action"] = "requires_payment_method", None
            obj["last_setup_error"] = {"code": "setup_intent_authentication_failure", "type": "invalid_request_error",
                                       "message": "The customer failed authentication."}
            fake.emit("setup_intent.setup_failed", obj)
        return copy.deepcopy(obj)
    if success:
        _succeed_payment(fake, obj, fake.objects[obj["payment_method"]])
    else:
        obj["status"], obj["next_action"] = "requires_payment_method", None
        obj["last_payment_error"] = {"code": "payment_intent_authentication_failure", "type": "invalid_request_error",
                                     "message": "The customer failed authentication."}
        fake.emit("payment_intent.payment_failed", obj)
    return copy.deepcopy(obj)


# --- refunds and disputes ---------------------------------------------------------------------------------


def create_refund(fake: FakeStripe, p: Json, _: tuple[str, ...]) -> Json:
    pi_id, charge_id = _str(p, "payment_intent"), _str(p, "charge")
    if pi_id is not None:
        pi = fake.get("payment_intent", pi_id, param="payment_intent")
        charge_id = pi["latest_charge"] if pi["status"] == "succeeded" else None
        if charge_id is None:
            raise invalid(f"This PaymentIntent ({pi_id}) does not have a successful charge to refund.",
                          code="charge_not_refundable")
    if charge_id is None:
        raise invalid("Must provide a charge or a payment_intent.", code="parameter_missing")
    charge = fake.get("charge", charge_id, param="charge")
    remaining = charge["amount"] - charge["amount_refunded"]
    amount = _int(p, "amount")
    amount = remaining if amount is None else amount
    if charge["status"] != "succeeded" or remaining == 0:
        raise invalid(f"Charge {charge_id} has already been refunded.", code="charge_already_refunded")
    if amount <= 0 or amount > remaining:
        raise invalid(f"Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining})",
                      param="amount", code="amount_too_large")
    refund = fake.put({
        "id": new_id("re"), "object": "refund", "amount": amount, "balance_transaction": None,
        "charge": charge_id, "created": now(), "currency": charge["currency"], "metadata": _metadata(p),
        "payment_intent": charge["payment_intent"], "reason": _str(p, "reason"), "receipt_number": None,
        "status": "pending" if fake.refunds_pending else "succeeded", "failure_reason": None,
    })
    charge["amount_refunded"] += amount  # as at Stripe: a pending refund already counts
    charge["refunded"] = charge["amount_refunded"] == charge["amount"]
    fake.emit("refund.created", refund)
    fake.emit("charge.refunded", charge)
    return copy.deepcopy(refund)


def settle_refund(fake: FakeStripe, p: Json, ids: tuple[str, ...]) -> Json:
    """Fake-only: a pending refund ends ``succeeded``, ``failed`` (the bank returned it) or ``canceled``."""
    refund = fake.get("refund", ids[0])
    status = _str(p, "status", required=True)
    if status not in ("succeeded", "failed", "canceled") or refund["status"] != "pending":
        raise invalid("Only a pending refund settles, as succeeded, failed or canceled.", param="status")
    refund["status"] = status
    if status != "succeeded":  # the money stays with the merchant: the charge no longer counts it
        refund["failure_reason"] = "expired_or_canceled_card" if status == "failed" else None
        charge = fake.objects[refund["charge"]]
        charge["amount_refunded"] -= refund["amount"]
        charge["refunded"] = False
    fake.emit("refund.updated", refund)
    if status == "failed":
        fake.emit("refund.failed", refund)
    return copy.deepcopy(refund)


def get_refund(fake: FakeStripe, p: Json, ids: tuple[str, ...]) -> Json:
    return _expand(fake, fake.get("refund", ids[0]), p)


def open_dispute(fake: FakeStripe, p: Json, ids: tuple[str, ...]) -> Json:
    """Fake-only: the card holder disputes a charge."""
    charge = fake.get("charge", ids[0])
    if charge["status"] != "succeeded" or charge["disputed"]:
        raise invalid(f"Charge {ids[0]} cannot be disputed.")
    charge["disputed"] = True
    dispute = fake.put({
        "id": new_id("dp"), "object": "dispute", "amount": charge["amount"] - charge["amount_refunded"],
        "charge": charge["id"], "created": now(), "currency": charge["currency"], "is_charge_refundable": False,
        "livemode": False, "metadata": {}, "payment_intent": charge["payment_intent"],
        "reason": _str(p, "reason") or "fraudulent", "status": "needs_response",
    })
    fake.emit("charge.dispute.created", dispute)
    return copy.deepcopy(dispute)


def close_dispute(fake: FakeStripe, p: Json, ids: tuple[str, ...]) -> Json:
    """Fake-only: the bank decides a dispute (``status=won|lost``)."""
    dispute = fake.get("dispute", ids[0])
    status = _str(p, "status", required=True)
    if status not in ("won", "lost") or dispute["status"] in ("won", "lost"):
        raise invalid("A dispute closes once, as won or lost.", param="status")
    dispute["status"] = status
    fake.emit("charge.dispute.closed", dispute)
    return copy.deepcopy(dispute)


def get_dispute(fake: FakeStripe, p: Json, ids: tuple[str, ...]) -> Json:
    return _expand(fake, fake.get("dispute", ids[0]), p)
