"""HTTP routes of suggestions, feedback, the cheapest-plan advisor and the statistics."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.params import JSONBody, Parameter, QueryParameter

from app.deps import ClockDep, CurrentPrincipal, DbSession, SettingsDep
from app.params import AccountRef, UserRef
from entitlements.runtime import Runtime
from suggest import advice, health, imports, learning, outcomes, service
from suggest.peers import Refresher
from suggest.schemas import (
    AccountAdvisorRead,
    AdvisorRead,
    BacktestRead,
    FeedbackIn,
    FeedbackRead,
    HealthRead,
    ImportRead,
    RecountIn,
    RecountRead,
    StatsRead,
    SuggestionList,
    SuggestionRequest,
    WeightsRead,
)

SuggestionId = Annotated[str, Parameter(description="Suggestion id (sug_...)", pattern=r"^sug_[0-9a-z]{26}$",
                                        max_length=40)]
Days = Annotated[int, Parameter(description="Window in days, ending now", ge=1, le=365)]
WindowDays = Annotated[int, Parameter(description="Days after `at` whose purchases are the truth", ge=1, le=120)]
K = Annotated[int, Parameter(description="Suggestions per user", ge=1, le=10)]
SplitDate = Annotated[date, QueryParameter(description="The split date (UTC day): history before it, truth after it")]
TopLimit = Annotated[int, Parameter(description="How many users to list", ge=1, le=200)]


def _ctx(request: Request[Any, Any, Any], settings: Any, clock: Any) -> service.Context:
    state = request.app.state
    runtime: Runtime = state.entitlements
    refresher: Refresher = state.suggest_refresher
    return service.Context(settings=settings, clock=clock, runtime=runtime, refresher=refresher,
                           sessionmaker=state.get("sessionmaker"))


class SuggestionController(Controller):
    path = "/v1/suggestions"
    tags = ["Suggestions"]

    @post("/", opt={"scope": "suggestions:write", "user_access": "self", "owner": "user"}, status_code=200,
          summary="Ranked suggestions for a user in a workflow moment",
          description="Each item: module, kind (purchase, trial, adoption, plan_change), plain-language reasons "
                      "built from facts, a quote preview, the payment route the guardrails would take and the score "
                      "per signal. Holdout users get an empty list (holdout=true); every answer is recorded.")
    async def suggest(self, request: Request[Any, Any, Any], db_session: DbSession, principal: CurrentPrincipal,
                      clock: ClockDep, settings: SettingsDep, data: JSONBody[SuggestionRequest]) -> SuggestionList:
        return await service.suggest(db_session, principal, data, ctx=_ctx(request, settings, clock))

    @post("/{suggestion_id:str}/feedback", opt={"scope": "suggestions:write", "user_access": "self", "owner": "user"},
          status_code=200, summary="Record a click or a dismissal of a suggestion",
          description="A dismissed module is not suggested again to this user during the cooldown.")
    async def feedback(self, db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep,
                       suggestion_id: SuggestionId, data: JSONBody[FeedbackIn]) -> FeedbackRead:
        return await service.feedback(db_session, principal, suggestion_id, data, clock=clock)

    @get("/stats", opt={"scope": "suggestions:read", "owner": "vendor"},
         summary="Impressions, CTR, conversion, revenue and lift over the holdout, per module and overall")
    async def stats(self, db_session: DbSession, clock: ClockDep, settings: SettingsDep, days: Days = 30,
                    ) -> StatsRead:
        now = clock.now()
        return await outcomes.suggestion_stats(db_session, since=now - timedelta(days=days), until=now,
                                               holdout_pct=settings.suggest_holdout_pct,
                                               attribution_days=settings.suggest_attribution_days)


    @get("/backtest", opt={"scope": "suggestions:read", "owner": "vendor"},
         summary="How well suggestions made at a past date named what users then bought",
         description="Time split on the vendor's own history: the engine (default and learned weights) and the "
                     "popularity baseline suggest `k` modules per user from what was known before `at`; the truth "
                     "is each user's purchases in the `window_days` after it. recall@k, precision@k, hit rate and "
                     "lift over popularity. The window must have ended.")
    async def backtest(self, db_session: DbSession, clock: ClockDep, at: SplitDate, window_days: WindowDays = 30,
                       k: K = 3) -> BacktestRead:
        start = datetime.combine(max(at, date(1970, 1, 1)), time.min, tzinfo=UTC)  # no date arithmetic overflow
        return await learning.backtest(db_session, at=start, now=clock.now(), window_days=window_days, k=k)

    @post("/recount", opt={"scope": "suggestions:write", "owner": "vendor"}, status_code=200,
          summary="Recount the peer statistics of some accounts now",
          description="Requests never recount on their path: the background refresher does, when statistics are "
                      "older than the TTL. After a bulk change (an import, roles reassigned) this recounts at once.")
    async def recount(self, request: Request[Any, Any, Any], db_session: DbSession, principal: CurrentPrincipal,
                      clock: ClockDep, settings: SettingsDep, data: JSONBody[RecountIn]) -> RecountRead:
        return await service.recount_accounts(db_session, principal, data.accounts, now=clock.now(),
                                              unused_days=settings.suggest_unused_days,
                                              refresher=request.app.state.suggest_refresher)

    @get("/weights", opt={"scope": "suggestions:read", "owner": "vendor"},
         summary="The weights the engine serves: the newest fit on the vendor's history, or the defaults")
    async def weights(self, db_session: DbSession) -> WeightsRead:
        return await learning.current_weights(db_session)


IMPORT_MAX_BYTES = 4 * 1024**3  # a streamed import: memory stays flat, so only the transaction bounds it


class ImportController(Controller):
    path = "/v1/imports"
    tags = ["Suggestions"]

    @post("/", opt={"scope": "accounts:write", "owner": "vendor"}, status_code=200,
          request_max_body_size=IMPORT_MAX_BYTES,
          summary="Import a customer history (NDJSON, streamed, idempotent by your ids)",
          description="One JSON object a line with `type`: account, user, grant, purchase, usage, attempt. "
                      "Invalid lines are reported with their number and nothing of them is written; the rest is "
                      "imported in this request's transaction. Importing the same lines again writes nothing new. "
                      "The accounts touched are recounted for suggestions before the answer.")
    async def create(self, request: Request[Any, Any, Any], db_session: DbSession, principal: CurrentPrincipal,
                     clock: ClockDep, settings: SettingsDep) -> ImportRead:
        runtime: Runtime = request.app.state.entitlements
        return await imports.import_history(db_session, request.stream(), clock=clock,
                                            view=await runtime.view(db_session), actor=principal.actor,
                                            unused_days=settings.suggest_unused_days)


class AdvisorController(Controller):
    path = "/v1"
    tags = ["Suggestions"]

    @get("/accounts/{account:str}/health", opt={"scope": "suggestions:read", "user_access": "admin",
                                                 "owner": "account"},
         summary="Adoption and health of an account: breadth, depth, seats, usage and spend trends, risk flags",
         description="score = round(100 x (0.35 breadth + 0.25 depth + 0.20 seat utilisation + 0.20 clamp(0.5 + "
                     "usage trend / 2))); see docs/suggestions.md.")
    async def health(self, request: Request[Any, Any, Any], db_session: DbSession, principal: CurrentPrincipal,
                     clock: ClockDep, account: AccountRef, days: Days = 30) -> HealthRead:
        runtime: Runtime = request.app.state.entitlements
        return await health.account_health(db_session, principal, account, view=await runtime.view(db_session),
                                           now=clock.now(), days=days)

    @get("/advisor", opt={"scope": "suggestions:read", "user_access": "self", "owner": "user"},
         summary="The cheapest set of modules covering a user's actual usage, and the saving")
    async def user_advice(self, request: Request[Any, Any, Any], db_session: DbSession,
                          principal: CurrentPrincipal, clock: ClockDep, user: UserRef) -> AdvisorRead:
        runtime: Runtime = request.app.state.entitlements
        return await advice.advise_user(db_session, principal, user, view=await runtime.view(db_session),
                                        now=clock.now())

    @get("/accounts/{account:str}/advisor", opt={"scope": "suggestions:read", "user_access": "admin",
                                                  "owner": "account"},
         summary="Users of the account who could save with a cheaper set of modules, biggest savings first")
    async def account_advice(self, request: Request[Any, Any, Any], db_session: DbSession,
                             principal: CurrentPrincipal, clock: ClockDep, account: AccountRef,
                             limit: TopLimit = 50) -> AccountAdvisorRead:
        runtime: Runtime = request.app.state.entitlements
        return await advice.advise_account(db_session, principal, account, view=await runtime.view(db_session),
                                           now=clock.now(), limit=limit)
