"""The guardrail decision as a table of cases, plus invariants that hold for any input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.domain.guardrails import (
    BudgetState,
    GuardrailPolicy,
    Override,
    Purchase,
    Requester,
    RoleRule,
    SimulationCase,
    crossed_thresholds,
    decide,
    simulate,
)

POLICY = GuardrailPolicy(
    routes=["budget", "card"], preferred_route="budget", auto_approve_limit_minor=5_000,
    per_user_cap_minor=20_000,
    role_rules=[RoleRule(role="viewer", deny_modules=["advanced-charts"]),
                RoleRule(role="intern", allow_modules=["pdf-export"])],
    overrides=[Override(role="manager", auto_approve_limit_minor=15_000)],
)
ANALYST = Requester(roles=frozenset({"analyst"}))
BUDGET = BudgetState(currency="USD", remaining_minor=100_000)


def buy(total: int, *modules: str, vendor_approval: tuple[str, ...] = ()) -> Purchase:
    return Purchase(modules=modules or ("advanced-charts",), total_minor=total, currency="USD",
                    vendor_approval_required=vendor_approval)


@pytest.mark.parametrize(("requester", "purchase", "spent", "budget", "route", "outcome", "reason"), [
    (ANALYST, buy(4_000), 0, BUDGET, "budget", "auto_approved", "budget"),
    (ANALYST, buy(5_000), 0, BUDGET, "budget", "auto_approved", "budget"),
    (ANALYST, buy(5_001), 0, BUDGET, "budget", "approval_required", "auto-approve limit"),
    (ANALYST, buy(4_000), 17_000, BUDGET, "budget", "approval_required", "over your cap"),
    (ANALYST, buy(4_000, vendor_approval=("advanced-charts",)), 0, BUDGET, "budget", "approval_required",
     "approver"),
    (Requester(roles=frozenset({"manager"})), buy(12_000), 0, BUDGET, "budget", "auto_approved", "budget"),
    (ANALYST, buy(4_000), 0, BudgetState(currency="USD", remaining_minor=3_000), "card", "auto_approved",
     "left"),
    (ANALYST, buy(4_000), 0, None, "card", "auto_approved", "no budget"),
    (ANALYST, buy(4_000), 0, BudgetState(currency="EUR", remaining_minor=10**6), "card", "auto_approved", "EUR"),
    (Requester(roles=frozenset({"viewer", "analyst"})), buy(100), 0, BUDGET, None, "blocked", "does not allow"),
    (Requester(roles=frozenset({"intern"})), buy(100), 0, BUDGET, None, "blocked", "not on your role's list"),
    (Requester(roles=frozenset({"intern"})), buy(100, "pdf-export"), 0, BUDGET, "budget", "auto_approved", "budget"),
])
def test_decision_table(requester: Requester, purchase: Purchase, spent: int, budget: BudgetState | None,
                        route: str | None, outcome: str, reason: str) -> None:
    d = decide(POLICY, requester, purchase, spent_minor=spent, budget=budget)
    assert (d.route, d.outcome) == (route, outcome), d.reasons
    assert any(reason in r for r in d.reasons), d.reasons


def test_budget_only_policy_blocks_when_the_budget_cannot_pay() -> None:
    policy = GuardrailPolicy(routes=["budget"])
    d = decide(policy, ANALYST, buy(4_000), spent_minor=0, budget=BudgetState(currency="USD", remaining_minor=10))
    assert d.outcome == "blocked" and d.route is None and "left" in d.reasons[0]


def test_card_preferred_and_card_approval() -> None:
    policy = GuardrailPolicy(preferred_route="card", card_requires_approval=True)
    d = decide(policy, ANALYST, buy(100), spent_minor=0, budget=BUDGET)
    assert d.route == "card" and d.outcome == "approval_required"


policies = st.builds(
    GuardrailPolicy,
    routes=st.sampled_from([["budget"], ["card"], ["budget", "card"]]),
    preferred_route=st.sampled_from(["budget", "card"]),
    auto_approve_limit_minor=st.integers(0, 10**6),
    per_user_cap_minor=st.one_of(st.none(), st.integers(0, 10**6)),
    role_rules=st.lists(st.builds(RoleRule, role=st.sampled_from(["analyst", "viewer"]),
                                  deny_modules=st.lists(st.sampled_from(["a", "b", "c"]), max_size=2)), max_size=2),
)
purchases = st.builds(Purchase, modules=st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3).map(tuple),
                      total_minor=st.integers(0, 10**6), currency=st.just("USD"))
budgets = st.one_of(st.none(), st.builds(BudgetState, currency=st.just("USD"), remaining_minor=st.integers(0, 10**6)))


@given(policies, purchases, st.integers(0, 10**6), budgets, st.sampled_from(["analyst", "viewer"]))
def test_invariants_never_auto_approve_above_threshold_or_cap_and_deny_always_wins(
    policy: GuardrailPolicy, purchase: Purchase, spent: int, budget: BudgetState | None, role: str,
) -> None:
    requester = Requester(roles=frozenset({role}))
    d = decide(policy, requester, purchase, spent_minor=spent, budget=budget)
    assert d.reasons
    if d.outcome == "auto_approved" and d.route == "budget":
        assert purchase.total_minor <= policy.auto_approve_limit_minor
        assert policy.per_user_cap_minor is None or spent + purchase.total_minor <= policy.per_user_cap_minor
        assert budget is not None and budget.remaining_minor >= purchase.total_minor
    denied = {m for r in policy.role_rules if r.role == role for m in r.deny_modules}
    if denied & set(purchase.modules):
        assert d.outcome == "blocked"
    if d.route is not None:
        assert d.route in policy.routes
    assert d == decide(policy, requester, purchase, spent_minor=spent, budget=budget)  # deterministic


def test_simulation_counts_outcomes_and_spend() -> None:
    cases = [SimulationCase(requester=ANALYST, purchase=buy(t), spent_minor=0, budget=BUDGET)
             for t in (1_000, 6_000, 9_000)]
    cases.append(SimulationCase(requester=Requester(roles=frozenset({"viewer"})), purchase=buy(10), spent_minor=0,
                                budget=BUDGET))
    r = simulate(POLICY, cases)
    assert (r.auto_approved, r.approval_required, r.blocked) == (1, 2, 1)
    assert (r.spend_auto_approved_minor, r.spend_approval_required_minor, r.spend_blocked_minor) == (1_000, 15_000, 10)


@pytest.mark.parametrize(("before", "after", "crossed"), [
    (0, 4_999, []), (0, 5_000, [50]), (4_000, 8_000, [50, 80]), (8_000, 10_000, [100]), (9_000, 9_500, []),
])
def test_alert_thresholds_crossed(before: int, after: int, crossed: list[int]) -> None:
    assert crossed_thresholds(10_000, before, after, [50, 80, 100]) == crossed
