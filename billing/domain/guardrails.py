"""Customer admins' spend guardrails and the one pure decision over them.

The decision is a function of (policy, requester, purchase, the requester's spend this period, budget state)
and returns the payment route, whether approval is needed or the purchase is blocked, and why, in words.
Precedence: deny/allow lists first (they always win), then the route (preferred, else the other allowed one),
then approval (threshold, per-user cap, vendor policy).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from app.money import card_amount_problem, format_minor

Route = Literal["budget", "card"]
Outcome = Literal["auto_approved", "approval_required", "blocked"]

Minor = Annotated[int, Meta(ge=0, le=10**12)]
RoleName = Annotated[str, Meta(min_length=1, max_length=60, pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
ModuleKey = Annotated[str, Meta(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
Hours = Annotated[int, Meta(ge=0, le=24 * 90)]


class _Doc(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    pass


class RoleRule(_Doc, frozen=True):
    """Narrows the vendor's availability for one role: deny some modules, or allow only some."""

    role: RoleName
    allow_modules: Annotated[list[ModuleKey], Meta(max_length=500)] | None = None
    deny_modules: Annotated[list[ModuleKey], Meta(max_length=500)] = []


class Override(_Doc, frozen=True):
    """Different limits for a role or a cost center; unset fields inherit the account's policy."""

    role: RoleName | None = None
    cost_center: RoleName | None = None
    routes: Annotated[list[Route], Meta(min_length=1, max_length=2)] | None = None
    preferred_route: Route | None = None
    auto_approve_limit_minor: Minor | None = None
    per_user_cap_minor: Minor | None = None


class GuardrailPolicy(_Doc, frozen=True):
    """One account's guardrails (a new version is stored on every change)."""

    routes: Annotated[list[Route], Meta(min_length=1, max_length=2)] = msgspec.field(
        default_factory=lambda: ["budget", "card"])
    preferred_route: Route = "budget"
    auto_approve_limit_minor: Minor = 5_000
    per_user_cap_minor: Minor | None = 50_000
    role_rules: Annotated[list[RoleRule], Meta(max_length=200)] = []
    overrides: Annotated[list[Override], Meta(max_length=200)] = []
    approver_roles: Annotated[list[RoleName], Meta(min_length=1, max_length=20)] = msgspec.field(
        default_factory=lambda: ["admin"])
    alert_thresholds_pct: Annotated[list[Annotated[int, Meta(ge=1, le=1000)]], Meta(max_length=10)] = msgspec.field(
        default_factory=lambda: [50, 80, 100])
    card_requires_approval: bool = False
    temporary_access_hours: Hours = 0
    approval_expiry_hours: Annotated[int, Meta(ge=1, le=24 * 90)] = 72


@dataclass(frozen=True)
class Requester:
    roles: frozenset[str]
    cost_center: str | None = None


@dataclass(frozen=True)
class Purchase:
    modules: tuple[str, ...]
    total_minor: int
    currency: str
    vendor_approval_required: tuple[str, ...] = ()  # modules the vendor's policy marks approval_required


@dataclass(frozen=True)
class BudgetState:
    currency: str
    remaining_minor: int


@dataclass(frozen=True)
class Decision:
    route: Route | None
    outcome: Outcome
    reasons: tuple[str, ...]


def effective_policy(policy: GuardrailPolicy, requester: Requester) -> GuardrailPolicy:
    """The policy with every matching override applied in order (later overrides win)."""
    result = policy
    for o in policy.overrides:
        if (o.role is None or o.role in requester.roles) and (o.cost_center is None or o.cost_center ==
                                                              requester.cost_center):
            changes = {f: getattr(o, f) for f in ("routes", "preferred_route", "auto_approve_limit_minor",
                                                  "per_user_cap_minor") if getattr(o, f) is not None}
            result = msgspec.structs.replace(result, **changes)
    return result


def module_restrictions(policy: GuardrailPolicy, roles: Iterable[str], modules: Iterable[str]) -> list[str]:
    """Reasons the role rules forbid these modules (empty when allowed). Deny lists always win."""
    roles = set(roles)
    rules = [r for r in policy.role_rules if r.role in roles]
    reasons = []
    for module in modules:
        denied_by = [r.role for r in rules if module in r.deny_modules]
        if denied_by:
            reasons.append(f"Your admin does not allow the {denied_by[0]} role to buy {module}.")
            continue
        allow_lists = [r for r in rules if r.allow_modules is not None]
        if allow_lists and not any(module in (r.allow_modules or []) for r in allow_lists):
            reasons.append(f"{module} is not on your role's list of modules your admin allows.")
    return reasons


def decide(policy: GuardrailPolicy, requester: Requester, purchase: Purchase, *, spent_minor: int,
           budget: BudgetState | None, card_on_file: bool | None = None) -> Decision:
    """Route, approval and reasons for one purchase; never auto-approves above the threshold or the cap."""
    p = effective_policy(policy, requester)
    restricted = module_restrictions(p, requester.roles, purchase.modules)
    if restricted:
        return Decision(route=None, outcome="blocked", reasons=tuple(restricted))
    total, cur = purchase.total_minor, purchase.currency
    reasons: list[str] = []
    order = [p.preferred_route] + [r for r in ("budget", "card") if r != p.preferred_route]
    route: Route | None = None
    for candidate in order:
        if candidate not in p.routes:
            continue
        if candidate == "budget":
            if budget is None:
                reasons.append("Your account has no budget for this period.")
                continue
            if budget.currency != cur:
                reasons.append(f"Your account's budget is in {budget.currency}, the price in {cur}.")
                continue
            if budget.remaining_minor < total:
                reasons.append(f"The budget has {format_minor(budget.remaining_minor, cur)} left, "
                               f"less than {format_minor(total, cur)}.")
                continue
            route = "budget"
            reasons.append(f"Paid from your account's budget ({format_minor(budget.remaining_minor, cur)} left).")
        else:
            problem = card_amount_problem(total, cur)
            if problem is not None:  # Stripe would refuse the charge: the budget may pay it, else nobody
                reasons.append(problem)
                continue
            if card_on_file is False:
                reasons.append("You can pay with your own card once you save one.")
            route = "card"
            reasons.append("Paid with your own card.")
        break
    if route is None:
        if not p.routes:
            reasons.append("Your admin allows no payment route.")
        return Decision(route=None, outcome="blocked", reasons=tuple(reasons or ["No payment route is allowed."]))
    needs = []
    if purchase.vendor_approval_required:
        needs.append(f"{', '.join(purchase.vendor_approval_required)} needs an approver's agreement.")
    if route == "budget":
        if total > p.auto_approve_limit_minor:
            needs.append(f"{format_minor(total, cur)} is above the auto-approve limit of "
                         f"{format_minor(p.auto_approve_limit_minor, cur)}.")
        if p.per_user_cap_minor is not None and spent_minor + total > p.per_user_cap_minor:
            needs.append(f"It would bring your spend this period to {format_minor(spent_minor + total, cur)}, "
                         f"over your cap of {format_minor(p.per_user_cap_minor, cur)}.")
    elif p.card_requires_approval:
        needs.append("Your admin asks to approve card purchases.")
    if needs:
        return Decision(route=route, outcome="approval_required", reasons=tuple(reasons + needs))
    return Decision(route=route, outcome="auto_approved", reasons=tuple(reasons))


@dataclass(frozen=True)
class SimulationCase:
    requester: Requester
    purchase: Purchase
    spent_minor: int
    budget: BudgetState | None


@dataclass(frozen=True)
class SimulationResult:
    auto_approved: int
    approval_required: int
    blocked: int
    spend_auto_approved_minor: int
    spend_approval_required_minor: int
    spend_blocked_minor: int


def simulate(policy: GuardrailPolicy, cases: Iterable[SimulationCase]) -> SimulationResult:
    """How a draft policy would have treated past requests (counts and spend per outcome)."""
    counts = {"auto_approved": 0, "approval_required": 0, "blocked": 0}
    spend = dict.fromkeys(counts, 0)
    for c in cases:
        d = decide(policy, c.requester, c.purchase, spent_minor=c.spent_minor, budget=c.budget)
        counts[d.outcome] += 1
        spend[d.outcome] += c.purchase.total_minor
    return SimulationResult(
        auto_approved=counts["auto_approved"], approval_required=counts["approval_required"],
        blocked=counts["blocked"], spend_auto_approved_minor=spend["auto_approved"],
        spend_approval_required_minor=spend["approval_required"], spend_blocked_minor=spend["blocked"],
    )


def crossed_thresholds(amount_minor: int, before_minor: int, after_minor: int, thresholds_pct: Iterable[int]) -> list[
        int]:
    """Alert thresholds (percent of the budget) crossed when usage moves from ``before`` to ``after``."""
    if amount_minor <= 0:
        return []
    return sorted(t for t in set(thresholds_pct)
                  if before_minor * 100 < t * amount_minor <= after_minor * 100)
