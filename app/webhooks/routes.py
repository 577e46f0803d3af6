"""HTTP routes of webhook endpoints, deliveries, replays and the event catalogue (vendor only)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.params import JSONBody, Parameter

from app.deps import ClockDep, CurrentPrincipal, DbSession, SettingsDep
from app.idempotency import run_idempotent
from app.params import CursorParam, Limit
from app.schemas import bad_cursor, decode_cursor, encode_cursor
from app.webhooks import service
from app.webhooks.schemas import (
    DELIVERY_ID,
    ENDPOINT_ID,
    DeliveryDetail,
    DeliveryPage,
    DeliveryRead,
    EventTypeRead,
    ReplayEvent,
    ReplayFailed,
    ReplayResult,
    SecretRotate,
    SecretRotated,
    WebhookEndpointCreate,
    WebhookEndpointCreated,
    WebhookEndpointPage,
    WebhookEndpointRead,
    WebhookEndpointUpdate,
)

EndpointId = Annotated[str, Parameter(description="Webhook endpoint id (whe_...)", pattern=ENDPOINT_ID,
                                      max_length=30)]
DeliveryId = Annotated[str, Parameter(description="Delivery id (whd_...)", pattern=DELIVERY_ID, max_length=30)]
DeliveryStatus = Annotated[str | None, Parameter(
    description="Only deliveries in this state", pattern=r"^(pending|succeeded|failed)$", max_length=10)]



def _after(cursor: str | None, pattern: str) -> str | None:
    """The id a cursor encodes; anything else (NUL bytes included) is a 400, never a query."""
    after = decode_cursor(cursor)
    if after is not None and not re.fullmatch(pattern, after):
        raise bad_cursor()
    return after


READ = {"scope": "webhooks:read", "owner": "vendor"}
WRITE = {"scope": "webhooks:write", "owner": "vendor"}


class WebhookEndpointController(Controller):
    path = "/v1/webhook-endpoints"
    tags = ["Webhooks"]

    @post("/", opt=WRITE, status_code=201, summary="Register a webhook endpoint; its secret is shown once")
    async def create_endpoint(
        self, db_session: DbSession, principal: CurrentPrincipal, settings: SettingsDep, clock: ClockDep,
        data: JSONBody[WebhookEndpointCreate], request: Request[Any, Any, Any],
    ) -> Response[WebhookEndpointCreated]:
        async def produce() -> tuple[int, WebhookEndpointCreated]:
            return 201, await service.create_endpoint(db_session, data, actor=principal.actor, settings=settings,
                                                      clock=clock)

        return await run_idempotent(request, db_session, produce)

    @get("/", opt=READ, summary="List webhook endpoints")
    async def list_endpoints(self, db_session: DbSession, limit: Limit = 50,
                             cursor: CursorParam = None) -> WebhookEndpointPage:
        rows = await service.list_endpoints(db_session, after=_after(cursor, ENDPOINT_ID), limit=limit)
        next_cursor = encode_cursor(rows[-1].endpoint_id) if len(rows) == limit else None
        return WebhookEndpointPage(data=[service.endpoint_read(e) for e in rows], next_cursor=next_cursor)

    @get("/{endpoint_id:str}", opt=READ, summary="Get a webhook endpoint")
    async def get_endpoint(self, db_session: DbSession, endpoint_id: EndpointId) -> WebhookEndpointRead:
        return service.endpoint_read(await service.get_endpoint(db_session, endpoint_id))

    @patch("/{endpoint_id:str}", opt=WRITE, summary="Change a webhook endpoint's URL, event types or description")
    async def update_endpoint(
        self, db_session: DbSession, principal: CurrentPrincipal, settings: SettingsDep, clock: ClockDep,
        endpoint_id: EndpointId, data: JSONBody[WebhookEndpointUpdate],
    ) -> WebhookEndpointRead:
        endpoint = await service.update_endpoint(db_session, endpoint_id, data, actor=principal.actor,
                                                 settings=settings, clock=clock)
        return service.endpoint_read(endpoint)

    @delete("/{endpoint_id:str}", opt=WRITE, status_code=204,
            summary="Delete a webhook endpoint: nothing more is delivered to it (its delivery log is kept)")
    async def delete_endpoint(
        self, db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep, endpoint_id: EndpointId,
    ) -> None:
        await service.delete_endpoint(db_session, endpoint_id, actor=principal.actor, clock=clock)

    @post("/{endpoint_id:str}/disable", opt=WRITE, status_code=200,
          summary="Disable a webhook endpoint (deliveries wait until it is enabled)")
    async def disable_endpoint(
        self, db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep, endpoint_id: EndpointId,
    ) -> WebhookEndpointRead:
        endpoint = await service.set_enabled(db_session, endpoint_id, enabled=False, actor=principal.actor,
                                             clock=clock)
        return service.endpoint_read(endpoint)

    @post("/{endpoint_id:str}/enable", opt=WRITE, status_code=200,
          summary="Enable a webhook endpoint (also after an automatic disable)")
    async def enable_endpoint(
        self, db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep, endpoint_id: EndpointId,
    ) -> WebhookEndpointRead:
        endpoint = await service.set_enabled(db_session, endpoint_id, enabled=True, actor=principal.actor,
                                             clock=clock)
        return service.endpoint_read(endpoint)

    @post("/{endpoint_id:str}/rotate-secret", opt=WRITE, status_code=200,
          summary="Rotate the signing secret; the previous one keeps signing during the overlap")
    async def rotate_secret(
        self, db_session: DbSession, principal: CurrentPrincipal, settings: SettingsDep, clock: ClockDep,
        endpoint_id: EndpointId, data: JSONBody[SecretRotate], request: Request[Any, Any, Any],
    ) -> Response[SecretRotated]:
        async def produce() -> tuple[int, SecretRotated]:
            return 200, await service.rotate_secret(db_session, endpoint_id, overlap_seconds=data.overlap_seconds,
                                                    actor=principal.actor, settings=settings, clock=clock)

        return await run_idempotent(request, db_session, produce)

    @get("/{endpoint_id:str}/deliveries", opt=READ, summary="List an endpoint's deliveries, newest first")
    async def list_deliveries(
        self, db_session: DbSession, endpoint_id: EndpointId, status: DeliveryStatus = None, limit: Limit = 50,
        cursor: CursorParam = None,
    ) -> DeliveryPage:
        rows = await service.list_deliveries(db_session, endpoint_id, status=status, after=_after(cursor, DELIVERY_ID),
                                             limit=limit)
        next_cursor = encode_cursor(rows[-1].delivery_id) if len(rows) == limit else None
        return DeliveryPage(data=[service.delivery_read(d) for d in rows], next_cursor=next_cursor)

    @get("/{endpoint_id:str}/deliveries/{delivery_id:str}", opt=READ,
         summary="Get a delivery with its attempt log")
    async def get_delivery(
        self, db_session: DbSession, endpoint_id: EndpointId, delivery_id: DeliveryId,
    ) -> DeliveryDetail:
        return await service.get_delivery(db_session, endpoint_id, delivery_id)

    @post("/{endpoint_id:str}/replay", opt=WRITE, status_code=202,
          summary="Deliver one event to this endpoint again (or for the first time)")
    async def replay_event(
        self, db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep, endpoint_id: EndpointId,
        data: JSONBody[ReplayEvent],
    ) -> DeliveryRead:
        delivery = await service.replay_event(db_session, endpoint_id, data.event_id, actor=principal.actor,
                                              clock=clock)
        return service.delivery_read(delivery)

    @post("/{endpoint_id:str}/replay-failed", opt=WRITE, status_code=202,
          summary="Deliver again every failed delivery of this endpoint created since a time")
    async def replay_failed(
        self, db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep, endpoint_id: EndpointId,
        data: JSONBody[ReplayFailed],
    ) -> ReplayResult:
        count = await service.replay_failed(db_session, endpoint_id, since=data.since, actor=principal.actor,
                                            clock=clock)
        return ReplayResult(replayed=count)


class WebhookEventTypeController(Controller):
    path = "/v1/webhook-event-types"
    tags = ["Webhooks"]

    @get("/", opt=READ, summary="The event catalogue: every event type, its version and payload schema")
    async def list_event_types(self) -> list[EventTypeRead]:
        return service.event_catalogue()
