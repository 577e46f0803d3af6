from __future__ import annotations

import pytest

from billing.domain.credit import classify
from billing.domain.orders import TERMINAL, TRANSITIONS, IllegalTransition, transition


@pytest.mark.parametrize(("path"), [
    ["pending_approval", "approved", "paid", "fulfilled", "refunded"],
    ["approved", "payment_pending", "requires_action", "paid", "fulfilled"],
    ["approved", "payment_pending", "failed", "payment_pending", "paid"],
    ["pending_approval", "denied"], ["pending_approval", "expired"],
])
def test_legal_paths(path: list[str]) -> None:
    state = path[0]
    for nxt in path[1:]:
        state = transition(state, nxt)
    assert state == path[-1]


@pytest.mark.parametrize(("current", "target"), [
    ("pending_approval", "paid"), ("denied", "approved"), ("fulfilled", "paid"), ("refunded", "fulfilled"),
    ("expired", "approved"), ("paid", "approved"), ("approved", "approved"),
])
def test_illegal_transitions_are_rejected(current: str, target: str) -> None:
    with pytest.raises(IllegalTransition):
        transition(current, target)


def test_terminal_states() -> None:
    assert {"denied", "expired", "canceled", "refunded"} == TERMINAL
    assert all(t in TRANSITIONS for nxt in TRANSITIONS.values() for t in nxt)


@pytest.mark.parametrize(("category", "renewal", "owned", "motion"), [
    ("analytics", False, [], "land"), ("analytics", False, ["analytics"], "expand"),
    ("analytics", False, ["reporting"], "land"), ("analytics", True, ["analytics"], "renewal"),
])
def test_sales_credit_motion(category: str, renewal: bool, owned: list[str], motion: str) -> None:
    assert classify(category=category, is_renewal=renewal, owned_categories=owned) == motion
