"""API key management over HTTP (the CLI offers the same)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from litestar import Controller, get, post
from litestar.params import JSONBody
from msgspec import Meta

from app import audit, keys
from app.deps import ClockDep, CurrentPrincipal, DbSession
from app.errors import ValidationFailed
from app.notify import notify
from app.params import KeyId
from app.schemas import Input, Name, Output
from app.scopes import SCOPES, parse_scopes


class ApiKeyCreate(Input):
    name: Name
    scopes: Annotated[list[Annotated[str, Meta(max_length=40, pattern=r"^[a-z:*]+$")]], Meta(min_length=1)]


class ApiKeyRead(Output, frozen=True):
    id: str
    name: str
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class ApiKeyCreated(ApiKeyRead, frozen=True):
    secret: str


def _read(k: keys.ApiKey) -> ApiKeyRead:
    return ApiKeyRead(id=k.key_id, name=k.name, scopes=list(k.scopes), created_at=k.created_at,
                      revoked_at=k.revoked_at, last_used_at=k.last_used_at)


class ApiKeyController(Controller):
    path = "/v1/api-keys"
    tags = ["API keys"]

    @get("/", opt={"scope": "keys:read", "owner": "vendor"}, summary="List API keys (never their secrets)")
    async def list_keys(self, db_session: DbSession) -> list[ApiKeyRead]:
        return [_read(k) for k in await keys.list_keys(db_session)]

    @post("/", opt={"scope": "keys:write", "owner": "vendor"}, status_code=201,
          summary="Create an API key; its secret is shown in this response only")
    async def create_key(
        self, db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep, data: JSONBody[ApiKeyCreate],
    ) -> ApiKeyCreated:
        try:
            scopes = parse_scopes(",".join(data.scopes))
        except ValueError as exc:
            raise ValidationFailed(str(exc), known_scopes=sorted(SCOPES)) from exc
        new = await keys.create_key(db_session, name=data.name, scopes=scopes, clock=clock)
        await audit.record(db_session, clock=clock, actor=principal.actor, action="api_key.created",
                           target_type="api_key", target_id=new.key.key_id,
                           after={"name": data.name, "scopes": sorted(scopes)})
        r = _read(new.key)
        return ApiKeyCreated(id=r.id, name=r.name, scopes=r.scopes, created_at=r.created_at,
                             revoked_at=None, last_used_at=None, secret=new.secret)

    @post("/{key_id:str}/revoke", opt={"scope": "keys:write", "owner": "vendor"}, status_code=200,
          summary="Revoke an API key (takes effect in every process at once)")
    async def revoke_key(
        self, db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep, key_id: KeyId,
    ) -> ApiKeyRead:
        key = await keys.revoke_key(db_session, key_id, clock=clock)
        await notify(db_session, "key", key_id)
        await audit.record(db_session, clock=clock, actor=principal.actor, action="api_key.revoked",
                           target_type="api_key", target_id=key_id)
        return _read(key)
