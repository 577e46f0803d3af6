"""Fixtures of the API tests."""

from tests.api.stripe_app import world

__all__ = ["world"]
