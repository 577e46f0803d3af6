"""The order state machine shared by the budget and card routes.

pending_approval -> approved -> payment_pending -> (requires_action) -> paid -> fulfilled,
with denied, expired, failed, canceled and refunded as ends (failed may be retried with another card).
"""

from __future__ import annotations

from typing import Literal

State = Literal["pending_approval", "approved", "payment_pending", "requires_action", "paid", "fulfilled",
                "denied", "expired", "failed", "canceled", "refunded"]

TRANSITIONS: dict[str, frozenset[str]] = {
    "pending_approval": frozenset({"approved", "denied", "expired", "canceled"}),
    "approved": frozenset({"payment_pending", "paid", "canceled"}),
    "payment_pending": frozenset({"paid", "requires_action", "failed", "canceled"}),
    "requires_action": frozenset({"paid", "failed", "canceled"}),
    "paid": frozenset({"fulfilled", "refunded"}),
    "fulfilled": frozenset({"refunded"}),
    "failed": frozenset({"payment_pending"}),
    "denied": frozenset(),
    "expired": frozenset(),
    "canceled": frozenset(),
    "refunded": frozenset(),
}

TERMINAL: frozenset[str] = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)


class IllegalTransition(Exception):
    def __init__(self, current: str, target: str) -> None:
        super().__init__(f"an order that is {current} cannot become {target}")
        self.current, self.target = current, target


def transition(current: str, target: str) -> str:
    """The new state, or IllegalTransition when the machine does not allow the move."""
    if target not in TRANSITIONS.get(current, frozenset()):
        raise IllegalTransition(current, target)
    return target
