"""HTTP routes of entitlements and of the offers a user sees: decode, call one use case, encode."""

from __future__ import annotations

from typing import Annotated, Any, cast

from litestar import Controller, Request, Response, delete, get, post
from litestar.openapi import ResponseSpec
from litestar.params import HeaderParameter, JSONBody, Parameter
from litestar.response import Stream

from app.accounts import resolve_account, resolve_user
from app.auth import Principal
from app.deps import ClockDep, CurrentPrincipal, DbSession, SettingsDep
from app.idempotency import run_idempotent
from app.params import AccountRef, CursorParam, Limit, UserRef
from app.schemas import decode_cursor, encode_cursor
from catalog.schemas import OfferList
from entitlements import service
from entitlements.changes import ChangeReader, stream
from entitlements.runtime import Runtime
from entitlements.schemas import (
    BatchCheck,
    BatchCheckRead,
    ChangeBatch,
    CheckRead,
    GrantCreate,
    GrantPage,
    GrantRead,
    GrantRevoke,
    SeatAssign,
    SnapshotRead,
    TrialRead,
    TrialStart,
    UsageBatch,
    UsageHistory,
    UsageResult,
)

_KEY = r"^[a-z0-9][a-z0-9_.-]*$"
FeatureQuery = Annotated[str, Parameter(description="Feature key", pattern=_KEY, max_length=60)]
QuantityQuery = Annotated[int, Parameter(description="Units the user is about to use", ge=1, le=1_000_000_000)]
GrantId = Annotated[str, Parameter(description="Grant id (grt_...)", pattern=r"^grt_[0-9a-z]{26}$", max_length=40)]
UserFilter = Annotated[str | None, Parameter(description="Only grants of this user (external id)",
                                             pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/+-]*$", max_length=200)]
ChangeCursor = Annotated[str | None, Parameter(
    description="The cursor of the last batch you processed; leave out to start from now",
    pattern=r"^[A-Za-z0-9_-]*$", max_length=64)]
LastEventId = Annotated[str | None, HeaderParameter(
    name="Last-Event-ID", description="Server-sent events: the id of the last event received (the cursor)",
    pattern=r"^[A-Za-z0-9_-]*$", max_length=64)]
Periods = Annotated[int, Parameter(description="How many periods, newest first", ge=1, le=200)]


def _runtime(request: Request[Any, Any, Any]) -> Runtime:
    runtime: Runtime = request.app.state.entitlements
    return runtime


class EntitlementController(Controller):
    path = "/v1/entitlements"
    tags = ["Entitlements"]

    @get("/check", opt={"scope": "entitlements:read", "user_access": "self", "owner": "user", "rate_limit": "check"},
         summary="May this user use this feature (for this quantity) now?",
         description="Answered from a per-process snapshot cache (no database round trip when warm). A denial "
                     "carries the offer that would unlock the feature and is recorded as a demand signal.")
    async def check(
        self, request: Request[Any, Any, Any], user: UserRef, feature: FeatureQuery, quantity: QuantityQuery = 1,
    ) -> CheckRead:
        # The hot path takes no injected dependencies: Litestar resolves two or more of them in a task group,
        # which costs more than the whole check. The principal and clock are the same ones the markers give.
        principal: Principal = request.scope["auth"]
        runtime, now = _runtime(request), request.app.state.clock.now()
        snap, view = await runtime.snapshot(principal, user, now)
        return runtime.check(snap, view, feature, quantity, now)

    @post("/check", opt={"scope": "entitlements:read", "user_access": "self", "owner": "user", "rate_limit": "check"},
          status_code=200,
          summary="Check many features of one user at once")
    async def check_many(
        self, request: Request[Any, Any, Any], principal: CurrentPrincipal, clock: ClockDep,
        data: JSONBody[BatchCheck],
    ) -> BatchCheckRead:
        runtime, now = _runtime(request), clock.now()
        snap, view = await runtime.snapshot(principal, data.user, now)
        return BatchCheckRead(user=snap.user_ref, version=snap.version, results=[
            runtime.check(snap, view, c.feature, c.quantity, now) for c in data.checks])

    @get("/snapshot", opt={"scope": "entitlements:read", "user_access": "self", "owner": "user", "rate_limit": "check"},
         summary="Everything the user holds now, for client-side caching",
         description="The ETag is the snapshot's version; send it back as If-None-Match to get 304 while "
                     "nothing changed.",
         responses={304: ResponseSpec(None, description="Not modified: the If-None-Match version is current")})
    async def snapshot(
        self, request: Request[Any, Any, Any], principal: CurrentPrincipal, clock: ClockDep, user: UserRef,
    ) -> Response[SnapshotRead | bytes]:
        runtime, now = _runtime(request), clock.now()
        if "no-cache" in request.headers.get("cache-control", ""):  # an SDK told of a change reads past our cache
            snap, view = await runtime.fresh_snapshot(principal, user, now)
        else:
            snap, view = await runtime.snapshot(principal, user, now)
        etag = f'"{snap.version}"'
        headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
        if etag in {t.strip() for t in request.headers.get("if-none-match", "").split(",")}:
            return Response(b"", status_code=304, headers=headers)
        return Response(runtime.snapshot_read(snap, view, now), headers=headers)


    @get("/changes", opt={"scope": "entitlements:read", "user_access": "self", "owner": "self", "bound_keys": True,
                          "event_stream": True},
         summary="Which users' answers changed since a cursor (JSON), or a live stream of them (server-sent events)",
         description="Without 'Accept: text/event-stream': one batch of changes since 'cursor', at once. With it: an "
                     "event stream ('ready', then 'changes' as they commit, 'heartbeat' when idle), each event's id "
                     "being the cursor to resume from (Last-Event-ID). Narrowed to what the caller may see. Reload "
                     "the named users' snapshots (every user of the account when 'user' is null); drop every "
                     "cached snapshot on 'reset' or a new 'catalog_revision'.")
    async def changes(
        self, request: Request[Any, Any, Any], cursor: ChangeCursor = None, last_event_id: LastEventId = None,
    ) -> Response[ChangeBatch]:
        runtime = _runtime(request)
        reader = ChangeReader(engine=request.app.state.engine, runtime=runtime, settings=runtime.settings,
                              principal=request.scope["auth"])
        if "text/event-stream" not in request.headers.get("accept", ""):
            return Response(await reader.start(cursor or last_event_id))
        events = stream(reader, cursor=cursor or last_event_id, signal=runtime.changes, settings=runtime.settings)
        # The stream is documented as a second media type of the same 200 answer (app/openapi.py).
        return cast(Response[ChangeBatch], Stream(events, media_type="text/event-stream", headers={
            "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}))


class GrantController(Controller):
    path = "/v1/accounts/{account:str}/grants"
    tags = ["Entitlements"]

    @post("/", opt={"scope": "entitlements:write", "owner": "account", "idempotency": "optional"},
          status_code=200,
          responses={201: ResponseSpec(GrantRead, description="The grant was created")},
          summary="Grant a module to a user or to the whole account (optionally as N seats)",
          description="Idempotent per (source, source_ref, module): a retry answers 200 with the first grant.")
    async def create(
        self, request: Request[Any, Any, Any], db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep,
        account: AccountRef, data: JSONBody[GrantCreate],
    ) -> Response[GrantRead]:
        async def produce() -> tuple[int, GrantRead]:
            acc = await resolve_account(db_session, principal, account)
            user = await resolve_user(db_session, principal, data.user, account=acc) if data.user else None
            now = clock.now()
            existed = await service.find_by_source(db_session, account_id=acc.account_id, source=data.source,
                                                   source_ref=data.source_ref, module=data.module)
            row = await service.grant(
                db_session, account_id=acc.account_id, user_id=user.user_id if user else None, module=data.module,
                source=data.source, source_ref=data.source_ref, starts_at=data.starts_at or now,
                ends_at=data.ends_at, seats=data.seats, clock=clock)
            if existed is None:
                await service.record_admin(db_session, principal, "entitlement.granted", row, clock=clock)
            return (201 if existed is None else 200), (await service.grant_reads(db_session, [row], acc.external_id,
                                                                         now=now))[0]

        return await run_idempotent(request, db_session, produce)

    @get("/", opt={"scope": "entitlements:read", "user_access": "admin", "owner": "account"},
         summary="List the account's grants")
    async def list_grants(
        self, db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep, account: AccountRef,
        user: UserFilter = None, limit: Limit = 50, cursor: CursorParam = None,
    ) -> GrantPage:
        acc = await resolve_account(db_session, principal, account)
        user_id = (await resolve_user(db_session, principal, user, account=acc)).user_id if user else None
        rows = await service.list_grants(db_session, acc.account_id, user_id=user_id, after=decode_cursor(cursor),
                                         limit=limit)
        return GrantPage(data=await service.grant_reads(db_session, rows, acc.external_id, now=clock.now()),
                         next_cursor=encode_cursor(rows[-1].grant_id) if len(rows) == limit else None)

    @get("/{grant_id:str}", opt={"scope": "entitlements:read", "user_access": "admin", "owner": "account"},
         summary="Get a grant with its seat assignments")
    async def get_grant(
        self, db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep, account: AccountRef,
        grant_id: GrantId,
    ) -> GrantRead:
        acc = await resolve_account(db_session, principal, account)
        row = await service.get_grant(db_session, acc.account_id, grant_id)
        return (await service.grant_reads(db_session, [row], acc.external_id, now=clock.now(), with_seats=True))[0]

    @post("/{grant_id:str}/revoke", opt={"scope": "entitlements:write", "owner": "account"}, status_code=200,
          summary="Revoke a grant now, or at a future time")
    async def revoke(
        self, db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep, account: AccountRef,
        grant_id: GrantId, data: JSONBody[GrantRevoke],
    ) -> GrantRead:
        acc = await resolve_account(db_session, principal, account)
        row = await service.revoke(db_session, account_id=acc.account_id, grant_id=grant_id, reason=data.reason,
                                   clock=clock, at=data.at)
        await service.record_admin(db_session, principal, "entitlement.revoked", row, clock=clock)
        return (await service.grant_reads(db_session, [row], acc.external_id, now=clock.now()))[0]

    @post("/{grant_id:str}/seats", opt={"scope": "entitlements:write", "user_access": "admin", "owner": "account"},
          status_code=200, summary="Assign one seat of a seat pool to a user",
          description="Idempotent; 409 seats_exhausted when every seat is taken.")
    async def assign(
        self, db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep, account: AccountRef,
        grant_id: GrantId, data: JSONBody[SeatAssign],
    ) -> GrantRead:
        acc = await resolve_account(db_session, principal, account)
        user = await resolve_user(db_session, principal, data.user, account=acc)
        row = await service.assign_seat(db_session, account_id=acc.account_id, grant_id=grant_id,
                                        user_id=user.user_id, clock=clock)
        await service.record_admin(db_session, principal, "entitlement.seat_assigned", row, clock=clock,
                                   user=user.external_id)
        return (await service.grant_reads(db_session, [row], acc.external_id, now=clock.now(), with_seats=True))[0]

    @delete("/{grant_id:str}/seats/{user:str}",
            opt={"scope": "entitlements:write", "user_access": "admin", "owner": "account"}, status_code=200,
            summary="Free a user's seat (at once)")
    async def unassign(
        self, db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep, account: AccountRef,
        grant_id: GrantId, user: UserRef,
    ) -> GrantRead:
        acc = await resolve_account(db_session, principal, account)
        found = await resolve_user(db_session, principal, user, account=acc)
        row = await service.unassign_seat(db_session, account_id=acc.account_id, grant_id=grant_id,
                                          user_id=found.user_id, clock=clock)
        await service.record_admin(db_session, principal, "entitlement.seat_unassigned", row, clock=clock,
                                   user=found.external_id)
        return (await service.grant_reads(db_session, [row], acc.external_id, now=clock.now(), with_seats=True))[0]


class UsageController(Controller):
    path = "/v1/usage"
    tags = ["Usage"]

    @post("/", opt={"scope": "usage:write", "user_access": "self", "owner": "user", "rate_limit": "check"},
          status_code=200,
          summary="Record a batch of usage (or attempt) events",
          description="Idempotent by event_id per account: a replayed event is counted once and reported as a "
                      "duplicate. With enforce=true the whole batch is rejected (409 limit_exceeded) if any usage "
                      "would exceed the user's limit; concurrent batches never exceed it together.")
    async def record(
        self, request: Request[Any, Any, Any], db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep,
        settings: SettingsDep, data: JSONBody[UsageBatch],
    ) -> Response[UsageResult]:
        async def produce() -> tuple[int, UsageResult]:
            view = await _runtime(request).view(db_session)
            return 200, await service.record_usage(db_session, data.events, principal=principal,
                                                   enforce=data.enforce, clock=clock, view=view,
                                                   backfill_days=settings.usage_backfill_days)

        return await run_idempotent(request, db_session, produce)

    @get("/history", opt={"scope": "entitlements:read", "user_access": "self", "owner": "user"},
         summary="Usage of one feature by one user, per period, newest first")
    async def history(
        self, request: Request[Any, Any, Any], db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep,
        user: UserRef, feature: FeatureQuery, limit: Periods = 12,
    ) -> UsageHistory:
        view = await _runtime(request).view(db_session)
        return await service.usage_history(db_session, principal, user, feature, view=view, limit=limit,
                                           now=clock.now())


class TrialController(Controller):
    path = "/v1/trials"
    tags = ["Entitlements"]

    @post("/", opt={"scope": "entitlements:write", "user_access": "self", "owner": "user"}, status_code=201,
          summary="Start a module's trial for a user",
          description="Once per user (or per account, by COMMERCE_TRIAL_SCOPE); 409 trial_already_used after that.")
    async def start(
        self, request: Request[Any, Any, Any], db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep,
        settings: SettingsDep, data: JSONBody[TrialStart],
    ) -> Response[TrialRead]:
        async def produce() -> tuple[int, TrialRead]:
            view = await _runtime(request).view(db_session)
            return 201, await service.start_trial(db_session, principal, data.user, data.module, view=view,
                                                  scope=settings.trial_scope, clock=clock)

        return await run_idempotent(request, db_session, produce)


class OfferController(Controller):
    path = "/v1/offers"
    tags = ["Offers"]

    @get("/", opt={"scope": "catalog:read", "user_access": "self", "owner": "user"},
          summary="Modules a user may see and buy, each with the policy decision and its reason",
         description="Hidden modules never appear. A session token may ask only for its own user "
                     "(customer admins for users of their account).")
    async def offers(
        self, db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep, user: UserRef,
    ) -> OfferList:
        return await service.user_offers(db_session, principal, user, now=clock.now())
