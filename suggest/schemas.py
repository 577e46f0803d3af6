"""The HTTP contract of suggestions, feedback, the advisor and the statistics."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from msgspec import Meta

from app.schemas import ExternalId, Input, Output, Slug

TriggerKind = Literal["feature_denied", "limit_near", "limit_reached", "browse"]
PaymentRoute = Literal["budget_auto_approved", "needs_approval", "card", "not_buyable"]
Kind = Literal["purchase", "trial", "adoption", "plan_change"]
Surface = Annotated[str, Meta(min_length=1, max_length=60, pattern=r"^[a-z0-9][a-z0-9_.-]*$",
                              description="Where in the product the user is (a page or panel key)")]


class TriggerIn(Input):
    """The moment in the workflow: a denied feature, a limit nearly or fully reached, or browsing."""

    kind: TriggerKind
    feature: Slug | None = None


class SuggestionRequest(Input):
    user: ExternalId
    surface: Surface = "default"
    trigger: TriggerIn | None = None
    limit: Annotated[int, Meta(ge=1, le=10)] = 3


class QuoteLinePreview(Output, frozen=True):
    module: str
    price_id: str
    model: str
    interval: str | None
    quantity: int
    unit_amount_minor: int
    due_now_minor: int


class QuotePreview(Output, frozen=True):
    """What buying would cost now (recurring prices prorated to the period end, contract discount applied);
    a preview only: the real quote is made when the user goes on."""

    currency: str
    lines: list[QuoteLinePreview]
    total_minor: int
    total: str


class PlanChangeRead(Output, frozen=True):
    current: list[str]
    current_monthly_minor: int
    best: list[str]
    best_monthly_minor: int
    saving_monthly_minor: int
    add: list[str]
    remove: list[str]


class SuggestionRead(Output, frozen=True):
    id: str
    module: str
    name: str
    kind: Kind
    rank: int
    score: float
    reason: str
    reasons: list[str]
    score_breakdown: dict[str, float]
    bundle: list[str]
    trial_days: int | None
    quote: QuotePreview | None
    payment_route: PaymentRoute
    payment_reasons: list[str]
    plan_change: PlanChangeRead | None = None
    leads_to: str | None = None  # a first step: the module the user is on the way to ("start with X")


class SuggestionList(Output, frozen=True):
    user: str
    account: str
    request_id: str
    surface: str
    holdout: bool
    capped: bool
    note: str | None
    data: list[SuggestionRead]


class FeedbackIn(Input):
    user: ExternalId
    action: Literal["click", "dismiss"]


class FeedbackRead(Output, frozen=True):
    suggestion_id: str
    module: str
    action: str
    recorded: bool
    at: datetime


class AdvisorRead(Output, frozen=True):
    user: str
    currency: str
    needs: dict[str, int]
    current: list[str]
    current_monthly_minor: int
    best: list[str]
    best_monthly_minor: int
    saving_monthly_minor: int
    add: list[str]
    remove: list[str]
    uncovered: list[str]
    exact: bool
    message: str


class UserAdviceRead(Output, frozen=True):
    user: str
    saving_monthly_minor: int
    add: list[str]
    remove: list[str]


class AccountAdvisorRead(Output, frozen=True):
    account: str
    currency: str
    users_considered: int
    users_with_saving: int
    saving_monthly_minor: int
    message: str
    data: list[UserAdviceRead]


class LiftRead(Output, frozen=True):
    treatment_users: int
    treatment_converted: int
    holdout_users: int
    holdout_converted: int
    treatment_rate: float
    holdout_rate: float
    difference: float | None
    ci95_low: float | None
    ci95_high: float | None
    relative: float | None
    significant: bool


class FunnelRead(Output, frozen=True):
    impressions: int
    clicks: int
    dismissals: int
    purchases: int
    ctr: float
    conversion: float
    revenue_minor: dict[str, int]


class ModuleStatsRead(Output, frozen=True):
    module: str
    funnel: FunnelRead
    lift: LiftRead


class StatsRead(Output, frozen=True):
    since: datetime
    until: datetime
    holdout_pct: int
    attribution_days: int
    overall: FunnelRead
    lift: LiftRead
    modules: list[ModuleStatsRead]


class BacktestScoreRead(Output, frozen=True):
    strategy: str
    recall: float
    precision: float
    hit_rate: float
    lift_over_popularity: float | None


class BacktestRead(Output, frozen=True):
    """How well suggestions made at ``at`` from history before it named what users bought in the window after."""

    at: datetime
    window_days: int
    k: int
    users: int
    buyers: int
    purchases: int
    truncated: bool
    learned_note: str | None
    scores: list[BacktestScoreRead]


class WeightsRead(Output, frozen=True):
    """The weights the engine serves: a stored fit on the vendor's history, or the documented defaults."""

    version: int | None
    learned: bool
    bias: float
    weights: dict[str, float]
    note: str
    fitted_at: datetime | None = None
    rows: int | None = None
    positives: int | None = None
    recall_at_3: float | None = None
    popularity_recall_at_3: float | None = None


class RecountIn(Input):
    """Recount these accounts' peer statistics now (after a bulk change, an import, a migration of roles)."""

    accounts: Annotated[list[ExternalId], Meta(min_length=1, max_length=1000)]


class RecountRead(Output, frozen=True):
    accounts: int
    users: int


class ImportLineError(Output, frozen=True):
    line: int
    message: str


class ImportRead(Output, frozen=True):
    """What an import did: lines read, valid lines per type (a replayed line counts and writes nothing), the
    number of invalid lines with the first of them, and how many accounts were recounted for suggestions."""

    lines: int
    imported: dict[str, int]
    errors: int
    first_errors: list[ImportLineError]
    recounted_accounts: int


class ModuleAdoptionRead(Output, frozen=True):
    module: str
    holders: int
    active_users: int


RiskCode = Literal["unused_paid_module", "falling_usage_before_renewal", "idle_seats"]


class RiskRead(Output, frozen=True):
    code: RiskCode
    message: str
    module: str | None


class HealthRead(Output, frozen=True):
    """Adoption and health of one account over the last ``days`` (formula in docs/suggestions.md)."""

    account: str
    days: int
    score: int
    breadth: float
    depth: float
    seat_utilisation: float
    usage_trend: float
    spend_trend: float
    users: int
    usage_now: int
    usage_before: int
    spend_now_minor: int
    spend_before_minor: int
    currency: str
    modules: list[ModuleAdoptionRead]
    risks: list[RiskRead]
