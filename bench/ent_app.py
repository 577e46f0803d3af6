"""The app as served in production plus two floor endpoints for the entitlement benchmark (bench only)."""

from __future__ import annotations

from litestar import Litestar, get

from app.asgi import create_app, settled
from app.params import UserRef
from app.settings import load_settings


@get("/bench/bare", opt={"public": True, "owner": "public"}, summary="floor: no auth, constant body")
async def bare() -> dict[str, bool]:
    return {"ok": True}


@get("/bench/bare-auth", opt={"scope": "entitlements:read", "owner": "user", "rate_limit": "check"},
     summary="floor: the same API-key auth, rate-limit class and query parsing as the check, constant body")
async def bare_auth(user: UserRef, feature: str, quantity: int = 1) -> dict[str, bool]:
    return {"ok": True}


def app_factory() -> Litestar:
    return settled(create_app(load_settings(), extra_route_handlers=[bare, bare_auth]))
