"""Everything Stripe, in one place.

* ``gateway``: the one client (the official SDK's ``StripeClient``), idempotency keys, Stripe's errors translated
  once into ``errors``;
* ``flows``: one orchestrating function per flow that calls Stripe (card setup, pay, refund, renewal charge,
  invoice, reconcile), each committing its pending state, calling Stripe outside any transaction, and
  recording the answer in a new transaction;
* ``inbound`` (the event store: verify, store once, dispatch), ``handlers`` and ``cards`` (their handlers),
  ``routes`` (``/v1/payment-methods`` and ``POST /v1/stripe/webhook``), ``schemas``, ``models``.
The local fake Stripe is not here: it is the top-level ``stripe_fake`` development tool.
"""
