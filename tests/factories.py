"""Plain functions that build rows and credentials, with overrides."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import keys
from app.clock import Clock
from app.scopes import SCOPES, parse_scopes


async def make_key(
    sessionmaker: async_sessionmaker[AsyncSession], clock: Clock, scopes: str = "all", name: str = "test",
) -> str:
    async with sessionmaker() as session, session.begin():
        new = await keys.create_key(session, name=name, scopes=parse_scopes(scopes), clock=clock)
    return new.secret


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def make_account(client: AsyncTestClient[Any], key: str, external_id: str, **fields: Any) -> dict[str, Any]:
    body = {"external_id": external_id, "name": fields.pop("name", external_id.title()), **fields}
    r = await client.post("/v1/accounts", json=body, headers=bearer(key))
    assert r.status_code in (200, 201), r.text
    return dict(r.json())


async def make_user(
    client: AsyncTestClient[Any], key: str, account: str, external_id: str, roles: list[str] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    body = {"external_id": external_id, "roles": roles or [], **fields}
    r = await client.post(f"/v1/accounts/{account}/users", json=body, headers=bearer(key))
    assert r.status_code in (200, 201), r.text
    return dict(r.json())


async def session_token(
    client: AsyncTestClient[Any], key: str, account: str, user: str, roles: list[str] | None = None,
    ttl_seconds: int | None = None,
) -> str:
    body: dict[str, Any] = {"account": account, "user": user}
    if roles is not None:
        body["roles"] = roles
    if ttl_seconds is not None:
        body["ttl_seconds"] = ttl_seconds
    r = await client.post("/v1/session-tokens", json=body, headers=bearer(key))
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


@dataclass
class Tenant:
    """An account with a customer admin and an end user, and their session tokens."""

    account: str
    admin: str
    user: str
    admin_token: str
    user_token: str


async def make_tenant(client: AsyncTestClient[Any], key: str, name: str) -> Tenant:
    await make_account(client, key, name)
    await make_user(client, key, name, f"{name}-admin", roles=["admin"])
    await make_user(client, key, name, f"{name}-user", roles=["analyst"])
    return Tenant(
        account=name, admin=f"{name}-admin", user=f"{name}-user",
        admin_token=await session_token(client, key, name, f"{name}-admin"),
        user_token=await session_token(client, key, name, f"{name}-user"),
    )


ALL_SCOPES = ",".join(sorted(SCOPES))


async def make_endpoint(
    sessionmaker: async_sessionmaker[AsyncSession], clock: Clock, settings: Any, url: str,
    event_types: list[str] | None = None,
) -> tuple[str, str]:
    """A webhook endpoint registered through the service: (endpoint id, signing secret)."""
    from app.webhooks import service
    from app.webhooks.schemas import WebhookEndpointCreate

    async with sessionmaker() as session, session.begin():
        created = await service.create_endpoint(
            session, WebhookEndpointCreate(url=url, event_types=event_types or ["*"]), actor="test",
            settings=settings, clock=clock)
    return created.id, created.secret


async def emit_test_event(
    sessionmaker: async_sessionmaker[AsyncSession], clock: Clock, type: str = "test.ping", **payload: Any,
) -> str:
    from tests.support.outbox import emit

    async with sessionmaker() as session, session.begin():
        return await emit(session, clock=clock, type=type, payload=payload or {"n": 1})


async def apply_demo_catalog(sessionmaker: async_sessionmaker[AsyncSession], clock: Clock) -> None:
    """The example catalog shipped with the package, applied as the live catalog."""
    import catalog
    from app.demo import demo_catalog_toml

    async with sessionmaker() as session, session.begin():
        await catalog.apply_document(session, catalog.parse_source(toml=demo_catalog_toml()), actor="test",
                                     clock=clock)
