"""Saved cards: Stripe customers per paying user, SetupIntents, list/remove/default (and their events)."""

from billing.cards import events as _events  # noqa: F401  (registers the Stripe event handlers)
from billing.cards.service import ensure_customer, list_cards, start_setup

__all__ = ["ensure_customer", "list_cards", "start_setup"]
