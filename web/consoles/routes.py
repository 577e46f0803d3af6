"""The consoles' pages: sign-in by a one-time link, a page shell per console page, and the hashed assets.

Each page is a small HTML shell rendered here (who is signed in, the CSRF token, the navigation) whose module
script draws the page from the public API, called with the console's cookie session: what a console shows and
does is what the API says and allows, for the same principal (``app.auth`` turns the cookie into it).
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, Router, get, post
from litestar.datastructures import Cookie, State
from litestar.params import PathParameter, QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession

from app import console
from app.accounts import service as accounts
from app.accounts.models import Account, User
from app.auth import Principal, UserPrincipal, VendorPrincipal, authenticate
from app.deps import ClockDep, DbSession, SettingsDep
from app.errors import DomainError, NotFound, Unauthorized
from app.settings import Settings
from web.assets import IMMUTABLE, load_bundle
from web.consoles.pages import ADMIN_PAGES, VENDOR_PAGES, Shell, message_page, shell_page, sign_in_page

ASSETS = "/console-assets"
TokenQuery = Annotated[str, QueryParameter(max_length=200)]
AccountQuery = Annotated[str | None, QueryParameter(max_length=200)]
PUBLIC = {"public": True, "owner": "public"}
BASE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
            "form-action 'self'; base-uri 'none'")


def _headers(frame_ancestors: str = "'none'") -> dict[str, str]:
    return {"Content-Security-Policy": f"{BASE_CSP}; frame-ancestors {frame_ancestors}",
            "Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"}


def _html(body: str, status: int = 200, *, frame_ancestors: str = "'none'",
          cookies: list[Cookie] | None = None) -> Response[str]:
    return Response(body, status_code=status, media_type="text/html; charset=utf-8",
                    headers=_headers(frame_ancestors), cookies=cookies or [])


async def _principal(request: Request[Any, Any, State]) -> Principal | str:
    """The console session's principal, or why there is none (in plain words)."""
    if not request.cookies.get(console.COOKIE):
        return "You are not signed in. Open the console link your administrator or the vendor sent you."
    try:
        return await authenticate(request)
    except Unauthorized as exc:
        return str(exc.detail)


def _session_cookie(value: str, settings: Settings, *, max_age: int) -> Cookie:
    return Cookie(key=console.COOKIE, value=value, path="/", httponly=True, samesite="lax",
                  secure=settings.env != "development" and settings.env != "test", max_age=max_age)


async def _csrf(request: Request[Any, Any, State], session: AsyncSession, settings: Settings) -> str:
    row = await console.current_session(session, request.cookies.get(console.COOKIE, ""),
                                        policy=console.policy_of(settings), clock=request.app.state.clock)
    return row.csrf_token


def consoles_router() -> Router:
    """Sign-in, sign-out, the pages of both consoles and their assets."""
    bundle = load_bundle("web.consoles", "static")
    base = f"{ASSETS}/{bundle.build}"

    @get("/admin/sign-in", opt=PUBLIC, include_in_schema=False)
    async def admin_sign_in(token: TokenQuery = "") -> Response[str]:
        return _html(sign_in_page(base, token=token, action="/admin/sign-in"))

    @get("/console/sign-in", opt=PUBLIC, include_in_schema=False)
    async def vendor_sign_in(token: TokenQuery = "") -> Response[str]:
        return _html(sign_in_page(base, token=token, action="/console/sign-in"))

    async def redeem(request: Request[Any, Any, State], db_session: AsyncSession, settings: Settings) -> Response[str]:
        form = await request.form()
        token = str(form.get("token", ""))[:200]
        try:
            row, cookie = await console.redeem_link(db_session, token, policy=console.policy_of(settings),
                                                    clock=request.app.state.clock)
        except DomainError as exc:
            return _html(message_page(base, "This link does not work", str(exc.detail)), exc.status)
        home = "/admin/budgets" if row.kind == "admin" else "/console/catalog"
        return Response("", status_code=303, headers={**_headers(), "Location": home},
                        cookies=[_session_cookie(cookie, settings, max_age=settings.console_max_seconds)])

    @post("/admin/sign-in", opt=PUBLIC, include_in_schema=False, status_code=303)
    async def admin_redeem(request: Request[Any, Any, State], db_session: DbSession,
                           settings: SettingsDep) -> Response[str]:
        return await redeem(request, db_session, settings)

    @post("/console/sign-in", opt=PUBLIC, include_in_schema=False, status_code=303)
    async def vendor_redeem(request: Request[Any, Any, State], db_session: DbSession,
                            settings: SettingsDep) -> Response[str]:
        return await redeem(request, db_session, settings)

    @post("/console-sign-out", opt=PUBLIC, include_in_schema=False, status_code=303)
    async def sign_out(request: Request[Any, Any, State], db_session: DbSession, settings: SettingsDep,
                       clock: ClockDep) -> Response[str]:
        form = await request.form()
        try:
            row = await console.current_session(db_session, request.cookies.get(console.COOKIE, ""),
                                                policy=console.policy_of(settings), clock=clock)
        except Unauthorized:
            row = None
        if row is not None and console.csrf_matches(row, str(form.get("csrf", ""))):
            await console.end_session(db_session, row, clock=clock)
        return Response("", status_code=303, headers={**_headers(), "Location": "/console-signed-out"},
                        cookies=[_session_cookie("", settings, max_age=0)])

    @get("/console-signed-out", opt=PUBLIC, include_in_schema=False)
    async def signed_out() -> Response[str]:
        return _html(message_page(base, "Signed out", "You are signed out. Open a new console link to sign in."))

    @get(["/admin", "/admin/", "/admin/{page:str}"], opt=PUBLIC, include_in_schema=False)
    async def admin_page(request: Request[Any, Any, State], db_session: DbSession, settings: SettingsDep,
                         page: Annotated[str, PathParameter()] = "budgets",
                         account: AccountQuery = None) -> Response[str]:
        who = await _principal(request)
        if isinstance(who, str):
            return _html(message_page(base, "Please sign in", who), 401)
        if page not in ADMIN_PAGES:
            return _html(message_page(base, "Page not found", f"The admin console has no page {page!r}."), 404)
        if isinstance(who, UserPrincipal):
            acc = await db_session.get(Account, who.account_id)
            if acc is None or (account is not None and account != acc.external_id):
                return _html(message_page(base, "Not your account",
                                          "You can only see your own account's admin pages."), 403)
        else:
            if account is None:
                return _html(message_page(base, "Which account?", "Open an account's admin pages from the vendor "
                                          "console's Accounts page."), 404)
            try:
                acc = await accounts.resolve_account(db_session, who, account)
            except NotFound as exc:
                return _html(message_page(base, "Account not found", str(exc.detail)), 404)
        origins = " ".join(acc.allowed_origins) if isinstance(who, UserPrincipal) and acc.allowed_origins else "'self'"
        shell = Shell(console="admin", page=page, pages=ADMIN_PAGES, base=base,
                      csrf=await _csrf(request, db_session, settings), account=acc.external_id,
                      account_name=acc.name, currency=acc.currency, who=await _who(db_session, who),
                      vendor=isinstance(who, VendorPrincipal))
        return _html(shell_page(shell), frame_ancestors=origins)

    @get(["/console", "/console/", "/console/{page:str}"], opt=PUBLIC, include_in_schema=False)
    async def vendor_page(request: Request[Any, Any, State], db_session: DbSession, settings: SettingsDep,
                          page: Annotated[str, PathParameter()] = "catalog") -> Response[str]:
        who = await _principal(request)
        if isinstance(who, str):
            return _html(message_page(base, "Please sign in", who), 401)
        if not isinstance(who, VendorPrincipal):
            return _html(message_page(base, "Not allowed", "The vendor console is for the vendor's staff; your "
                                      "account's pages are in the admin console."), 403)
        if page not in VENDOR_PAGES:
            return _html(message_page(base, "Page not found", f"The vendor console has no page {page!r}."), 404)
        shell = Shell(console="vendor", page=page, pages=VENDOR_PAGES, base=base,
                      csrf=await _csrf(request, db_session, settings), account=None, account_name=None,
                      currency=None, who=await _who(db_session, who), vendor=True)
        return _html(shell_page(shell))

    @get(f"{ASSETS}/{{build:str}}/{{name:str}}", opt=PUBLIC, include_in_schema=False)
    async def asset(build: Annotated[str, PathParameter()], name: Annotated[str, PathParameter()]) -> Response[bytes]:
        found = bundle.get(name) if build == bundle.build else None
        if found is None:
            raise NotFound(f"No console file {name!r} in build {build!r}.")
        return Response(found.body, media_type=found.media_type,
                        headers={"Cache-Control": IMMUTABLE, "ETag": found.etag, "X-Content-Type-Options": "nosniff"})

    return Router(path="/", route_handlers=[
        admin_sign_in, vendor_sign_in, admin_redeem, vendor_redeem, sign_out, signed_out, admin_page, vendor_page,
        asset])


async def _who(session: AsyncSession, principal: Principal) -> str:
    """Who is signed in, in words: the staff member's email, or the admin's name."""
    if isinstance(principal, VendorPrincipal):
        return principal.staff or "vendor staff"
    user = await session.get(User, (principal.account_id, principal.user_id))
    return (user.name or user.email or user.external_id) if user is not None else principal.user_id
