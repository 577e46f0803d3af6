"""Fixtures of the suggestion tests: the card world of the API tests (a Stripe fake the test controls)."""

from tests.api.stripe_app import shop, world

__all__ = ["shop", "world"]
