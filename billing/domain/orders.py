"""The order and approval state machines shared by the budget and card routes, and the states around them.

pending_approval -> approved -> payment_pending -> (requires_action) -> paid -> fulfilled,
with denied, expired, failed, canceled and refunded as ends (failed may be retried with another card).
An approval is pending until it is approved, denied, expired or canceled, once.
"""

from __future__ import annotations

from typing import Literal

from billing.domain.guardrails import Route

__all__ = [
    "APPROVAL_TRANSITIONS", "PROVISION_TRANSITIONS", "TERMINAL", "TRANSITIONS", "ApprovalState", "IllegalTransition",
    "OrderState", "PaymentStatus", "ProvisionStatus", "RefundStatus", "Route", "State", "approval_transition",
    "provision_step", "transition",
]

OrderState = Literal["pending_approval", "approved", "payment_pending", "requires_action", "paid", "fulfilled",
                     "denied", "expired", "failed", "canceled", "refunded"]
State = OrderState  # the name the state machine has always exported
ApprovalState = Literal["pending", "approved", "denied", "expired", "canceled"]
ProvisionStatus = Literal["requested", "done", "failed"]
PaymentStatus = Literal["pending", "succeeded", "requires_action", "failed"]  # one card payment attempt
# One card refund through Stripe: ``pending`` until Stripe answers (replayed under its key), ``processing`` while
# Stripe says the money is on its way, then ``succeeded``, ``failed`` or ``canceled`` (the money stayed with us).
RefundStatus = Literal["pending", "processing", "succeeded", "failed", "canceled"]

# Provisioning acknowledgements: a repeat of the current status changes nothing; a failure may be followed by
# success (the vendor fixed it and retried), never a success by a failure.
PROVISION_TRANSITIONS: dict[ProvisionStatus, frozenset[ProvisionStatus]] = {
    "requested": frozenset({"done", "failed"}),
    "failed": frozenset({"done"}),
    "done": frozenset(),
}


def provision_step(current: ProvisionStatus | None, target: ProvisionStatus) -> bool:
    """True: move to ``target``; False: it is a repeat (nothing to do). Raises IllegalTransition otherwise."""
    now: ProvisionStatus = current or "requested"
    if now == target:
        return False
    if target not in PROVISION_TRANSITIONS[now]:
        raise IllegalTransition(now, target, subject="provisioning")
    return True


TRANSITIONS: dict[OrderState, frozenset[OrderState]] = {
    "pending_approval": frozenset({"approved", "denied", "expired", "canceled"}),
    "approved": frozenset({"payment_pending", "paid", "canceled"}),
    "payment_pending": frozenset({"paid", "requires_action", "failed", "canceled"}),
    "requires_action": frozenset({"paid", "failed", "canceled"}),
    "paid": frozenset({"fulfilled", "refunded"}),
    "fulfilled": frozenset({"refunded"}),
    "failed": frozenset({"payment_pending", "canceled"}),  # a failed order can be retried or given up
    "denied": frozenset(),
    "expired": frozenset(),
    "canceled": frozenset(),
    "refunded": frozenset(),
}

TERMINAL: frozenset[OrderState] = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)

APPROVAL_TRANSITIONS: dict[ApprovalState, frozenset[ApprovalState]] = {
    "pending": frozenset({"approved", "denied", "expired", "canceled"}),
    "approved": frozenset(),
    "denied": frozenset(),
    "expired": frozenset(),
    "canceled": frozenset(),
}


class IllegalTransition(Exception):
    def __init__(self, current: str, target: str, *, subject: str = "an order") -> None:
        super().__init__(f"{subject} that is {current} cannot become {target}")
        self.current, self.target = current, target


def transition(current: OrderState, target: OrderState) -> OrderState:
    """The new state, or IllegalTransition when the machine does not allow the move."""
    if target not in TRANSITIONS.get(current, frozenset()):
        raise IllegalTransition(current, target)
    return target


def approval_transition(current: ApprovalState, target: ApprovalState) -> ApprovalState:
    """The approval's new state; an approval is decided (or expires, or is canceled) exactly once."""
    if target not in APPROVAL_TRANSITIONS[current]:
        raise IllegalTransition(current, target, subject="an approval")
    return target
