"""The fake's routing table: (method, path pattern, handler, the SDK params TypedDict the body must fit)."""

from __future__ import annotations

import re

from stripe_fake import invoices as inv
from stripe_fake import resources as res
from stripe_fake import tax
from stripe_fake.core import Handler, Route

_ID = r"([A-Za-z0-9_]+)"


def _r(method: str, path: str, handler: Handler, params_class: str | None, *, browser: bool = False) -> Route:
    return Route(method, re.compile(path.replace("{id}", _ID)), handler, params_class, publishable=browser)


# browser=True: Stripe.js calls it with the publishable key (and, for an intent, its client secret).
ROUTES: list[Route] = [
    _r("POST", "/v1/customers", res.create_customer, "CustomerCreateParams"),
    _r("GET", "/v1/customers/{id}", res.get_customer, "CustomerRetrieveParams"),
    _r("POST", "/v1/customers/{id}", res.update_customer, "CustomerUpdateParams"),
    _r("POST", "/v1/customers/{id}/tax_ids", tax.create_tax_id, "CustomerTaxIdCreateParams"),
    _r("GET", "/v1/customers/{id}/tax_ids", tax.list_tax_ids, "CustomerTaxIdListParams"),
    _r("GET", "/v1/payment_methods", res.list_payment_methods, "PaymentMethodListParams"),
    _r("POST", "/v1/payment_methods", res.create_payment_method, "PaymentMethodCreateParams", browser=True),
    _r("GET", "/v1/payment_methods/{id}", res.get_payment_method, "PaymentMethodRetrieveParams"),
    _r("POST", "/v1/payment_methods/{id}/attach", res.attach_payment_method, "PaymentMethodAttachParams"),
    _r("POST", "/v1/payment_methods/{id}/detach", res.detach_payment_method, "PaymentMethodDetachParams"),
    _r("POST", "/v1/setup_intents", res.create_setup_intent, "SetupIntentCreateParams"),
    _r("GET", "/v1/setup_intents/{id}", res.get_setup_intent, "SetupIntentRetrieveParams", browser=True),
    _r("POST", "/v1/setup_intents/{id}/confirm", res.confirm_setup_intent, "SetupIntentConfirmParams", browser=True),
    _r("POST", "/v1/payment_intents", res.create_payment_intent, "PaymentIntentCreateParams"),
    _r("GET", "/v1/payment_intents", res.list_payment_intents, "PaymentIntentListParams"),
    _r("GET", "/v1/payment_intents/{id}", res.get_payment_intent, "PaymentIntentRetrieveParams", browser=True),
    _r("POST", "/v1/payment_intents/{id}/confirm", res.confirm_payment_intent, "PaymentIntentConfirmParams",
       browser=True),
    _r("GET", "/v1/charges/{id}", res.get_charge, "ChargeRetrieveParams"),
    _r("POST", "/v1/refunds", res.create_refund, "RefundCreateParams"),
    _r("GET", "/v1/refunds/{id}", res.get_refund, "RefundRetrieveParams"),
    _r("GET", "/v1/disputes/{id}", res.get_dispute, "DisputeRetrieveParams"),
    _r("POST", "/v1/invoiceitems", inv.create_invoice_item, "InvoiceItemCreateParams"),
    _r("POST", "/v1/invoices", inv.create_invoice, "InvoiceCreateParams"),
    _r("GET", "/v1/invoices/{id}", inv.get_invoice, "InvoiceRetrieveParams"),
    _r("GET", "/v1/invoices/{id}/lines", inv.list_invoice_lines, "InvoiceLineItemListParams"),
    _r("POST", "/v1/invoices/{id}/finalize", inv.finalize_invoice, "InvoiceFinalizeInvoiceParams"),
    _r("POST", "/v1/invoices/{id}/send", inv.send_invoice, "InvoiceSendInvoiceParams"),
    _r("POST", "/v1/invoices/{id}/void", inv.void_invoice, "InvoiceVoidInvoiceParams"),
    _r("POST", "/v1/tax/calculations", tax.create_calculation, "tax.CalculationCreateParams"),
    _r("GET", "/v1/tax/calculations/{id}", tax.get_calculation, "tax.CalculationRetrieveParams"),
    _r("POST", "/v1/tax/transactions/create_from_calculation", tax.create_from_calculation,
       "tax.TransactionCreateFromCalculationParams"),
    _r("POST", "/v1/tax/transactions/create_reversal", tax.create_reversal, "tax.TransactionCreateReversalParams"),
    _r("GET", "/v1/tax/transactions/{id}", tax.get_transaction, "tax.TransactionRetrieveParams"),
    # fake-only test controls (what a card holder, a bank or a payer would do)
    _r("POST", "/v1/_fake/authenticate/{id}", res.authenticate, None, browser=True),
    _r("POST", "/v1/_fake/charges/{id}/dispute", res.open_dispute, None),
    _r("POST", "/v1/_fake/disputes/{id}/close", res.close_dispute, None),
    _r("POST", "/v1/_fake/invoices/{id}/pay", inv.pay_invoice, None),
    _r("POST", "/v1/_fake/refunds/{id}/settle", res.settle_refund, None),
]
