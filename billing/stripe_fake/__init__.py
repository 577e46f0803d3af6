"""A small, stateful local Stripe for tests and the demo: exactly the endpoints this service calls.

Used through the real SDK, either in-process (``FakeHTTPClient``) or over loopback HTTP (``serve``).
See docs/payments.md for the test cards, the fake-only controls and the fault injection API.
"""

from billing.stripe_fake.cards import TEST_CARDS
from billing.stripe_fake.core import FakeStripe, FaultKind, RecordedRequest
from billing.stripe_fake.server import FakeStripeServer, serve
from billing.stripe_fake.transport import FakeHTTPClient

__all__ = ["TEST_CARDS", "FakeHTTPClient", "FakeStripe", "FakeStripeServer", "FaultKind", "RecordedRequest", "serve"]
