"""Fixtures of the API tests."""

from tests.api.stripe_app import shop, world

__all__ = ["shop", "world"]
