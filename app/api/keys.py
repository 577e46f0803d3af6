"""API key management over HTTP (the CLI offers the same, as the operator, without the holder's limits)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from litestar import Controller, get, post
from litestar.params import JSONBody
from msgspec import Meta
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit, keys
from app.accounts.service import external_ids, resolve_accounts
from app.auth import Principal, VendorPrincipal
from app.deps import ClockDep, CurrentPrincipal, DbSession
from app.errors import ValidationFailed
from app.notify import notify
from app.params import KeyId
from app.schemas import ExternalId, Input, Name, Output
from app.scopes import SCOPES, parse_scopes

# Key management serves the vendor's own keys; a bound key manages only keys within its accounts.
_KEYS_OPT = {"owner": "vendor", "bound_keys": True}


class ApiKeyCreate(Input):
    name: Name
    # the enum is what the document promises; the service names unknown ones with known_scopes in its 400
    scopes: Annotated[list[Annotated[str, Meta(max_length=40, pattern=r"^[a-z:*]+$", extra_json_schema={
        "enum": sorted({*SCOPES, "all", "*"})})]], Meta(min_length=1)]
    accounts: Annotated[list[ExternalId], Meta(
        min_length=1, max_length=keys.MAX_BOUND_ACCOUNTS,
        description="Bind the key to these accounts (external ids); omit for a global key")] | None = None


class ApiKeyRead(Output, frozen=True):
    id: str
    name: str
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None
    accounts: list[str] | None  # external ids of the accounts a bound key reaches; null: every account


class ApiKeyCreated(ApiKeyRead, frozen=True):
    secret: str


def _holder(principal: Principal) -> VendorPrincipal:
    assert isinstance(principal, VendorPrincipal)  # the routes have no user_access: the guard let a key in
    return principal


async def _reads(session: AsyncSession, rows: list[keys.ApiKey]) -> list[ApiKeyRead]:
    names = await external_ids(session, [a for k in rows for a in k.account_ids or ()])
    return [ApiKeyRead(id=k.key_id, name=k.name, scopes=list(k.scopes), created_at=k.created_at,
                       revoked_at=k.revoked_at, last_used_at=k.last_used_at,
                       accounts=None if k.account_ids is None else sorted(names[a] for a in k.account_ids))
            for k in rows]


class ApiKeyController(Controller):
    path = "/v1/api-keys"
    tags = ["API keys"]

    @get("/", opt={"scope": "keys:read", **_KEYS_OPT},
         summary="List API keys (never their secrets); a bound key sees the keys within its accounts")
    async def list_keys(self, db_session: DbSession, principal: CurrentPrincipal) -> list[ApiKeyRead]:
        rows = await keys.list_keys(db_session, bound_to=_holder(principal).account_ids)
        return await _reads(db_session, rows)

    @post("/", opt={"scope": "keys:write", **_KEYS_OPT}, status_code=201,
          summary="Create an API key; its secret is shown in this response only",
          description="The new key may hold only scopes the calling key holds ('all' needs every scope) and, "
                      "when the calling key is bound to accounts, must be bound to some of them (403 otherwise). "
                      "'accounts' binds the new key to those accounts (external ids).")
    async def create_key(
        self, db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep, data: JSONBody[ApiKeyCreate],
    ) -> ApiKeyCreated:
        try:
            scopes = parse_scopes(",".join(data.scopes))
        except ValueError as exc:
            raise ValidationFailed(str(exc), known_scopes=sorted(SCOPES)) from exc
        holder = _holder(principal)
        bound = None if data.accounts is None else await resolve_accounts(db_session, holder, data.accounts)
        account_ids = None if bound is None else frozenset(a.account_id for a in bound)
        keys.check_grantable(holder, scopes=scopes, account_ids=account_ids)
        new = await keys.create_key(db_session, name=data.name, scopes=scopes, account_ids=account_ids, clock=clock)
        await audit.record(db_session, clock=clock, actor=principal.actor, action="api_key.created",
                           target_type="api_key", target_id=new.key.key_id, after={
                               "name": data.name, "scopes": sorted(scopes),
                               "accounts": None if bound is None else [a.external_id for a in bound]})
        r = (await _reads(db_session, [new.key]))[0]
        return ApiKeyCreated(id=r.id, name=r.name, scopes=r.scopes, created_at=r.created_at, revoked_at=None,
                             last_used_at=None, accounts=r.accounts, secret=new.secret)

    @post("/{key_id:str}/revoke", opt={"scope": "keys:write", **_KEYS_OPT}, status_code=200,
          summary="Revoke an API key (takes effect in every process at once)",
          description="A key may revoke only keys holding no scope it lacks (403 otherwise); a bound key only "
                      "keys bound within its accounts (any other answers 404, like an unknown id).")
    async def revoke_key(
        self, db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep, key_id: KeyId,
    ) -> ApiKeyRead:
        key = await keys.revoke_key(db_session, key_id, clock=clock, holder=_holder(principal))
        await notify(db_session, "key", key_id)
        await audit.record(db_session, clock=clock, actor=principal.actor, action="api_key.revoked",
                           target_type="api_key", target_id=key_id)
        return (await _reads(db_session, [key]))[0]
