"""A small, stateful local Stripe for tests and the demo: exactly the endpoints this service calls.

A development and test tool, never imported by product code: only the app's wiring imports it, and only
when configured to use it. Reached through the real SDK, either in-process (``FakeHTTPClient``, no socket)
or over loopback HTTP served by granian (``serve`` in a test's event loop, ``python -m stripe_fake`` as a
process). See docs/payments.md for the test cards, the fake-only controls and the fault injection API.
"""

from stripe_fake.cards import TEST_CARDS
from stripe_fake.core import FakeStripe, FaultKind, RecordedRequest
from stripe_fake.server import FakeStripeServer, LoopbackServer, serve
from stripe_fake.transport import FakeHTTPClient

__all__ = ["TEST_CARDS", "FakeHTTPClient", "FakeStripe", "FakeStripeServer", "FaultKind", "LoopbackServer",
           "RecordedRequest", "serve"]
