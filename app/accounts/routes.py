"""HTTP routes of accounts, users and session tokens: decode, call one use case, encode."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody

from app.accounts import service
from app.accounts.schemas import (
    AccountPage,
    AccountRead,
    AccountUpsert,
    ConsoleLinkCreate,
    ConsoleLinkRead,
    Me,
    SessionTokenCreate,
    SessionTokenRead,
    TokenRevocationRead,
    UserPage,
    UserRead,
    UserUpsert,
    VendorConsoleLink,
)
from app.auth import UserPrincipal
from app.deps import ClockDep, CurrentPrincipal, DbSession, SettingsDep
from app.errors import Forbidden
from app.idempotency import run_idempotent
from app.params import AccountRef, CursorParam, Limit, UserRef
from app.schemas import decode_cursor, encode_cursor


class AccountController(Controller):
    path = "/v1/accounts"
    tags = ["Accounts and users"]

    @post("/", opt={"scope": "accounts:write", "owner": "vendor", "idempotency": "optional"}, status_code=200,
          responses={201: ResponseSpec(AccountRead, description="The account was created")},
          summary="Create or update an account by external id",
          description="Returns 201 when the account was created, 200 when it existed (and was updated).")
    async def upsert_account(
        self, request: Request[Any, Any, Any], db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep,
        data: JSONBody[AccountUpsert],
    ) -> Response[AccountRead]:
        async def produce() -> tuple[int, AccountRead]:
            account, created = await service.upsert_account(db_session, data, actor=principal.actor, clock=clock)
            return (201 if created else 200), service.account_read(account)

        return await run_idempotent(request, db_session, produce)

    @get("/", opt={"scope": "accounts:read", "owner": "vendor", "bound_keys": True},
         summary="List accounts (a key bound to accounts lists only those)")
    async def list_accounts(
        self, db_session: DbSession, principal: CurrentPrincipal, limit: Limit = 50, cursor: CursorParam = None,
    ) -> AccountPage:
        rows = await service.list_accounts(db_session, principal, after=decode_cursor(cursor), limit=limit)
        next_cursor = encode_cursor(rows[-1].account_id) if len(rows) == limit else None
        return AccountPage(data=[service.account_read(a) for a in rows], next_cursor=next_cursor)

    @get("/{account:str}", opt={"scope": "accounts:read", "user_access": "admin", "owner": "account"},
         summary="Get an account")
    async def get_account(self, db_session: DbSession, principal: CurrentPrincipal, account: AccountRef) -> AccountRead:
        return service.account_read(await service.resolve_account(db_session, principal, account))

    @post("/{account:str}/users", opt={"scope": "accounts:write", "owner": "account", "idempotency": "optional"},
          status_code=200,
          responses={201: ResponseSpec(UserRead, description="The user was created")},
          summary="Create or update a user of the account by external id",
          description="Returns 201 when the user was created, 200 when it existed (and was updated).")
    async def upsert_user(
        self, request: Request[Any, Any, Any], db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep,
        account: AccountRef, data: JSONBody[UserUpsert],
    ) -> Response[UserRead]:
        async def produce() -> tuple[int, UserRead]:
            acc = await service.resolve_account(db_session, principal, account)
            user, created = await service.upsert_user(db_session, acc, data, actor=principal.actor, clock=clock)
            return (201 if created else 200), service.user_read(user, acc.external_id)

        return await run_idempotent(request, db_session, produce)

    @get("/{account:str}/users", opt={"scope": "accounts:read", "user_access": "admin", "owner": "account"},
         summary="List the account's users")
    async def list_users(
        self, db_session: DbSession, principal: CurrentPrincipal, account: AccountRef, limit: Limit = 50,
        cursor: CursorParam = None,
    ) -> UserPage:
        acc = await service.resolve_account(db_session, principal, account)
        rows = await service.list_users(db_session, acc, after=decode_cursor(cursor), limit=limit)
        next_cursor = encode_cursor(rows[-1].user_id) if len(rows) == limit else None
        return UserPage(data=[service.user_read(u, acc.external_id) for u in rows], next_cursor=next_cursor)

    @get("/{account:str}/users/{user:str}",
         opt={"scope": "accounts:read", "user_access": "self", "owner": "user"}, summary="Get a user")
    async def get_user(
        self, db_session: DbSession, principal: CurrentPrincipal, account: AccountRef, user: UserRef,
    ) -> UserRead:
        acc = await service.resolve_account(db_session, principal, account)
        return service.user_read(await service.resolve_user(db_session, principal, user, account=acc),
                                 acc.external_id)

    @post("/{account:str}/users/{user:str}/revoke-tokens",
          opt={"scope": "sessions:write", "user_access": "self", "owner": "user"}, status_code=200,
          summary="Revoke every session token the user holds now",
          description="Tokens minted before this call answer 401 in every app process at once; tokens minted "
                      "after it work. Changing a user's roles does the same. A vendor key needs sessions:write "
                      "(the scope that mints tokens); a customer admin may revoke any user of its account, an "
                      "end user its own tokens (sign out everywhere).")
    async def revoke_tokens(
        self, db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep, account: AccountRef,
        user: UserRef,
    ) -> TokenRevocationRead:
        return await service.revoke_user_tokens(db_session, principal, account, user, clock=clock)


class SessionController(Controller):
    path = "/v1"
    tags = ["Session tokens"]

    @post("/session-tokens", opt={"scope": "sessions:write", "owner": "account"}, status_code=201,
          summary="Mint a short-lived session token for a user")
    async def create_session_token(
        self, db_session: DbSession, principal: CurrentPrincipal, settings: SettingsDep, clock: ClockDep,
        data: JSONBody[SessionTokenCreate],
    ) -> SessionTokenRead:
        return await service.mint_session_token(
            db_session, data, principal=principal, settings=settings, clock=clock)

    @post("/console-links", opt={"scope": "sessions:write", "owner": "account"}, status_code=201,
          summary="Mint a one-time console sign-in link (a customer admin, or the vendor's staff)",
          description="Single use, valid for minutes (COMMERCE_CONSOLE_LINK_TTL_SECONDS). Opening it starts a "
                      "cookie session: a customer admin sees its own account at /admin/, the vendor's staff every "
                      "account at /console/. Vendor links (console=vendor) need a global key.")
    async def create_console_link(
        self, request: Request[Any, Any, Any], db_session: DbSession, principal: CurrentPrincipal,
        settings: SettingsDep, clock: ClockDep, data: JSONBody[ConsoleLinkCreate],
    ) -> ConsoleLinkRead:
        path, expires_at = await service.mint_console_link(db_session, data, principal=principal, settings=settings,
                                                           clock=clock)
        url = str(request.base_url).rstrip("/") + path
        kind = "vendor" if isinstance(data, VendorConsoleLink) else "admin"
        return ConsoleLinkRead(console=kind, path=path, url=url, expires_at=expires_at)

    @get("/me", opt={"user_access": "self", "owner": "self"}, summary="Who the session token acts as")
    async def me(self, db_session: DbSession, principal: CurrentPrincipal) -> Me:
        if not isinstance(principal, UserPrincipal):
            raise Forbidden("This route is for user session tokens.")
        return await service.describe_session(db_session, principal)
