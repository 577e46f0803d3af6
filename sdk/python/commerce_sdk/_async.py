"""``AsyncCommerce``: the asyncio client. ``Commerce`` (sync) runs one of these on a private loop thread."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any, Literal, TypeVar

import httpx
import msgspec

from commerce_sdk import errors
from commerce_sdk._http import AsyncHTTP, RetryPolicy
from commerce_sdk.entitlements import (
    CachePolicy,
    ChangeFollower,
    Decision,
    LocalCache,
    _compact,
    _decide,
    _Entry,
    load,
)
from commerce_sdk.models import (
    Account,
    CheckResult,
    Grant,
    Order,
    Page,
    Quote,
    SessionToken,
    Snapshot,
    UsageResult,
    User,
    WebhookEndpoint,
)
from commerce_sdk.usage import UsagePolicy, UsageReporter

T = TypeVar("T")
log = logging.getLogger("commerce_sdk")
DEFAULT_BASE_URL = "http://127.0.0.1:8000"
_UNREACHABLE = (errors.APIConnectionError, errors.ServerError, errors.RateLimited)


def _clean(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


class _Resource:
    def __init__(self, client: AsyncCommerce) -> None:
        self._c = client
        self._http = client._http

    async def _pages(self, path: str, params: dict[str, Any], into: type[Page[T]]) -> AsyncIterator[T]:
        """Every item of a cursor-paginated list, page after page."""
        cursor: str | None = None
        while True:
            page = await self._http.request("GET", path, params={**params, "cursor": cursor}, into=into)
            for item in page.data:
                yield item
            if not page.next_cursor or not page.data:
                return
            cursor = page.next_cursor


class AsyncAccounts(_Resource):
    async def upsert(self, external_id: str, *, name: str, idempotency_key: str | None = None,
                     **fields: Any) -> Account:
        """Create or update an account by your id (``segment``, ``region``, ``currency``, ... as keywords)."""
        return await self._http.request("POST", "/v1/accounts", json={"external_id": external_id, "name": name,
                                        **fields}, idempotency_key=idempotency_key, into=Account)

    async def get(self, account: str) -> Account:
        return await self._http.request("GET", f"/v1/accounts/{account}", into=Account)

    def list(self, *, page_size: int = 100) -> AsyncIterator[Account]:
        return self._pages("/v1/accounts", {"limit": page_size}, Page[Account])


class AsyncUsers(_Resource):
    async def upsert(self, account: str, external_id: str, *, roles: list[str] | None = None,
                     email: str | None = None, name: str | None = None, cost_center: str | None = None,
                     idempotency_key: str | None = None) -> User:
        body = _clean(external_id=external_id, roles=roles, email=email, name=name, cost_center=cost_center)
        return await self._http.request("POST", f"/v1/accounts/{account}/users", json=body,
                                        idempotency_key=idempotency_key, into=User)

    async def get(self, account: str, user: str) -> User:
        return await self._http.request("GET", f"/v1/accounts/{account}/users/{user}", into=User)

    def list(self, account: str, *, page_size: int = 100) -> AsyncIterator[User]:
        return self._pages(f"/v1/accounts/{account}/users", {"limit": page_size}, Page[User])


class AsyncSessionTokens(_Resource):
    async def create(self, *, account: str, user: str, roles: list[str] | None = None,
                     ttl_seconds: int | None = None) -> SessionToken:
        """A short-lived token for the widget or the admin console, acting as this user."""
        return await self._http.request("POST", "/v1/session-tokens", json=_clean(
            account=account, user=user, roles=roles, ttl_seconds=ttl_seconds), into=SessionToken)


class AsyncEntitlements(_Resource):
    """Checks answered in process (``check``), and the grant API."""

    def __init__(self, client: AsyncCommerce) -> None:
        super().__init__(client)
        self.cache = client._cache
        self.check_local = self.cache.check  # the hot path: Decision, or None when a load is needed
        self._loading: dict[str, asyncio.Future[Snapshot | None]] = {}
        self._refresh_slots = asyncio.Semaphore(self.cache.policy.refresh_concurrency)

    async def check(self, user: str, feature: str, quantity: int = 1) -> Decision:
        """May ``user`` use ``feature`` (``quantity`` units) now? From the local snapshot; loads it on a miss."""
        decision = self.cache.check(user, feature, quantity)
        if decision is not None:
            return decision
        return await self._check_slow(user, feature, quantity)

    async def _check_slow(self, user: str, feature: str, quantity: int) -> Decision:
        await self._c._start_background()
        try:
            snap = await self._load(user)
        except _UNREACHABLE:
            return self.cache.fallback(user, feature, quantity)
        decision = self.cache.check(user, feature, quantity)
        if decision is not None:
            return decision
        if snap is None:  # 304, then dropped by a concurrent change: ask once more
            snap = await self._load(user)
        assert snap is not None
        # not cacheable (a change raced the load): answer from what was loaded
        entry = _Entry(account=snap.account, version=snap.version, catalog_revision=snap.catalog_revision,
                       features=_compact(snap), fresh_until=0.0, loaded_at=0.0)
        return _decide(entry, feature, quantity, stale=False)

    async def _load(self, user: str) -> Snapshot | None:
        """Single flight: concurrent misses for one user share one request."""
        pending = self._loading.get(user)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Snapshot | None] = asyncio.get_running_loop().create_future()
        self._loading[user] = future
        try:
            snap = await load(self._http, self.cache, user)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()
            raise
        finally:
            del self._loading[user]
        future.set_result(snap)
        return snap

    def _schedule_reload(self, users: Iterable[str]) -> None:
        """Reload dropped snapshots in the background, so the next check of a busy user stays local."""
        for user in list(users)[:1000]:
            task = asyncio.get_running_loop().create_task(self._reload_one(user))
            self._c._tasks.add(task)
            task.add_done_callback(self._c._tasks.discard)

    async def _reload_one(self, user: str) -> None:
        async with self._refresh_slots:
            if self.cache.check(user, "", 1) is None:
                with contextlib.suppress(errors.CommerceError, msgspec.DecodeError):
                    await self._load(user)

    async def warm_up(self, *, users: Iterable[str] = (), account: str | None = None) -> int:
        """Load snapshots ahead of the first checks: the given users, or every user of ``account``."""
        await self._c._start_background()
        refs = list(users)
        if account is not None:
            refs += [u.external_id async for u in self._c.users.list(account)]
        slots = asyncio.Semaphore(self.cache.policy.refresh_concurrency)

        async def one(ref: str) -> None:
            async with slots:
                await self._load(ref)

        await asyncio.gather(*(one(r) for r in refs))
        return len(refs)

    async def check_remote(self, user: str, feature: str, quantity: int = 1) -> CheckResult:
        """Ask the service (one round trip); a denial carries the offer that would unlock the feature."""
        return await self._http.request("GET", "/v1/entitlements/check", params={
            "user": user, "feature": feature, "quantity": quantity}, into=CheckResult)

    async def snapshot(self, user: str) -> Snapshot:
        return await self._http.request("GET", "/v1/entitlements/snapshot", params={"user": user}, into=Snapshot)

    async def grant(self, account: str, *, module: str, source_ref: str, user: str | None = None,
                    source: Literal["admin", "plan"] = "admin", seats: int | None = None) -> Grant:
        """Grant a module (idempotent per source_ref and module)."""
        return await self._http.request("POST", f"/v1/accounts/{account}/grants", json=_clean(
            module=module, source_ref=source_ref, user=user, source=source, seats=seats), into=Grant)

    async def revoke(self, account: str, grant_id: str, *, reason: str) -> Grant:
        return await self._http.request("POST", f"/v1/accounts/{account}/grants/{grant_id}/revoke",
                                        json={"reason": reason}, into=Grant)

    def grants(self, account: str, *, user: str | None = None, page_size: int = 100) -> AsyncIterator[Grant]:
        return self._pages(f"/v1/accounts/{account}/grants", _clean(user=user, limit=page_size), Page[Grant])


class AsyncUsage(_Resource):
    def __init__(self, client: AsyncCommerce) -> None:
        super().__init__(client)
        self.reporter = client._reporter

    def record(self, *, user: str, feature: str, quantity: int = 1, event_id: str | None = None,
               **options: Any) -> str:
        """Buffer one usage event (returns at once with its event id); sent in the background."""
        self._c._start_background_soon()
        return self.reporter.record(user=user, feature=feature, quantity=quantity, event_id=event_id, **options)

    async def flush(self) -> bool:
        return await self.reporter.flush()

    async def send(self, events: list[dict[str, Any]], *, enforce: bool = False) -> UsageResult:
        """Send events now (no buffer); with ``enforce`` the batch is refused (LimitExceeded) past a limit."""
        return await self._http.request("POST", "/v1/usage", json={"events": events, "enforce": enforce},
                                        into=UsageResult)


class AsyncQuotes(_Resource):
    async def create(self, *, user: str, items: list[dict[str, Any]], include_requirements: bool = False) -> Quote:
        """Price modules for a user: ``items`` like ``[{"module": "reports_pro", "quantity": 1}]``."""
        return await self._http.request("POST", "/v1/quotes", json={
            "user": user, "items": items, "include_requirements": include_requirements}, into=Quote)

    async def get(self, quote_id: str) -> Quote:
        return await self._http.request("GET", f"/v1/quotes/{quote_id}", into=Quote)


class AsyncOrders(_Resource):
    async def create(self, *, quote_id: str, reason: str | None = None, idempotency_key: str | None = None) -> Order:
        """Order a quote. Retries reuse one Idempotency-Key, so a lost answer never buys twice; pass your own key
        to make retries across process restarts safe too."""
        return await self._http.request("POST", "/v1/orders", json=_clean(quote_id=quote_id, reason=reason),
                                        idempotency_key=idempotency_key, into=Order)

    async def get(self, order_id: str) -> Order:
        return await self._http.request("GET", f"/v1/orders/{order_id}", into=Order)

    def list(self, *, user: str, page_size: int = 100) -> AsyncIterator[Order]:
        return self._pages("/v1/orders", {"user": user, "limit": page_size}, Page[Order])

    async def pay(self, order_id: str, *, payment_method_id: str | None = None,
                  idempotency_key: str | None = None) -> Order:
        return await self._http.request("POST", f"/v1/orders/{order_id}/pay", json=_clean(
            payment_method_id=payment_method_id), idempotency_key=idempotency_key, into=Order)

    async def cancel(self, order_id: str) -> Order:
        return await self._http.request("POST", f"/v1/orders/{order_id}/cancel", json={}, into=Order)


class AsyncWebhookEndpoints(_Resource):
    async def create(self, *, url: str, event_types: list[str] | None = None,
                     description: str | None = None) -> WebhookEndpoint:
        """Register an endpoint; the answer carries its signing secret (whsec_...) once."""
        return await self._http.request("POST", "/v1/webhook-endpoints", json=_clean(
            url=url, event_types=event_types, description=description), into=WebhookEndpoint)

    def list(self, *, page_size: int = 100) -> AsyncIterator[WebhookEndpoint]:
        return self._pages("/v1/webhook-endpoints", {"limit": page_size}, Page[WebhookEndpoint])

    async def rotate_secret(self, endpoint_id: str, *, overlap_seconds: int | None = None) -> WebhookEndpoint:
        return await self._http.request("POST", f"/v1/webhook-endpoints/{endpoint_id}/rotate-secret", json=_clean(
            overlap_seconds=overlap_seconds), into=WebhookEndpoint)


class AsyncCommerce:
    """The asyncio client. Use as ``async with AsyncCommerce(api_key=...) as client:`` (flushes usage on exit)."""

    def __init__(self, *, api_key: str, base_url: str = DEFAULT_BASE_URL, timeout: float = 10.0,
                 retry: RetryPolicy | None = None, cache: CachePolicy | None = None,
                 usage: UsagePolicy | None = None, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._http = AsyncHTTP(api_key=api_key, base_url=base_url, timeout=timeout, retry=retry or RetryPolicy(),
                               transport=transport)
        self._cache = LocalCache(cache or CachePolicy())
        self._reporter = UsageReporter(self._http, usage or UsagePolicy(), on_record=self._cache.consume)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._background: list[asyncio.Task[None]] = []
        self._started: asyncio.Future[None] | None = None
        self._waited_for_stream = False
        self.accounts = AsyncAccounts(self)
        self.users = AsyncUsers(self)
        self.session_tokens = AsyncSessionTokens(self)
        self.entitlements = AsyncEntitlements(self)
        self.usage = AsyncUsage(self)
        self.quotes = AsyncQuotes(self)
        self.orders = AsyncOrders(self)
        self.webhook_endpoints = AsyncWebhookEndpoints(self)
        self.follower = ChangeFollower(self._http, self._cache, reload=self.entitlements._schedule_reload)

    async def __aenter__(self) -> AsyncCommerce:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def request(self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None,
                      idempotency_key: str | None = None) -> Any:
        """Any API call not wrapped above, with the same retries and errors; returns the decoded JSON."""
        response = await self._http.send(method, path, params=params, json=json, idempotency_key=idempotency_key)
        return msgspec.json.decode(response.content) if response.content else None

    def _start_background_soon(self) -> None:
        if self._started is None:
            with contextlib.suppress(RuntimeError):  # no running loop: started by the first awaited call
                asyncio.get_running_loop().create_task(self._start_background())

    async def _start_background(self, *, wait_stream: float = 2.0) -> None:
        """The usage flusher and the change stream, once; waits (briefly) for the stream to be live."""
        if self._started is None:
            self._started = asyncio.get_running_loop().create_future()
            self._background.append(asyncio.create_task(self._reporter.run(), name="commerce-usage"))
            if self._cache.policy.stream:
                self._background.append(asyncio.create_task(self.follower.run(), name="commerce-changes"))
            self._started.set_result(None)
        # only the first call waits: while the service is unreachable every later check must answer from the
        # cache or its failure mode at once (waiting on each call held every cache miss for two seconds)
        if self._cache.policy.stream and not self.follower.connected.is_set() and not self._waited_for_stream:
            self._waited_for_stream = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.follower.connected.wait(), wait_stream)

    async def aclose(self, *, flush_timeout: float = 10.0) -> None:
        """Flush buffered usage (up to ``flush_timeout``), stop the background tasks, close connections."""
        with contextlib.suppress(TimeoutError, errors.CommerceError):
            await asyncio.wait_for(self._reporter.flush(), flush_timeout)
        for task in [*self._background, *self._tasks]:
            task.cancel()
        for task in [*self._background, *self._tasks]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._background.clear()
        await self._http.aclose()
