"""``Commerce``: the synchronous client. It owns an ``AsyncCommerce`` running on a private event-loop thread, so
the change stream and the usage flusher run in the background while the caller's threads check locally."""

from __future__ import annotations

import asyncio
import atexit
import threading
from collections.abc import AsyncIterator, Coroutine, Iterable, Iterator
from typing import Any, Literal, TypeVar

import httpx

from commerce_sdk._async import DEFAULT_BASE_URL, AsyncCommerce
from commerce_sdk._http import RetryPolicy
from commerce_sdk.entitlements import CachePolicy, Decision
from commerce_sdk.models import (
    Account,
    CheckResult,
    Grant,
    Order,
    Quote,
    SessionToken,
    Snapshot,
    UsageResult,
    User,
    WebhookEndpoint,
)
from commerce_sdk.usage import UsagePolicy

T = TypeVar("T")


class _LoopThread:
    """One event loop on a daemon thread; ``run`` submits a coroutine and waits for its result."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="commerce-sdk", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def iterate(self, items: AsyncIterator[T]) -> Iterator[T]:
        async def step() -> T:
            return await anext(items)

        while True:
            try:
                yield self.run(step())
            except StopAsyncIteration:
                return

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        if not self.thread.is_alive():
            self.loop.close()


class _Sync:
    def __init__(self, client: Commerce) -> None:
        self._run = client._thread.run
        self._iter = client._thread.iterate
        self._a = client._async


class Accounts(_Sync):
    def upsert(self, external_id: str, *, name: str, idempotency_key: str | None = None, **fields: Any) -> Account:
        return self._run(self._a.accounts.upsert(external_id, name=name, idempotency_key=idempotency_key, **fields))

    def get(self, account: str) -> Account:
        return self._run(self._a.accounts.get(account))

    def list(self, *, page_size: int = 100) -> Iterator[Account]:
        return self._iter(self._a.accounts.list(page_size=page_size))


class Users(_Sync):
    def upsert(self, account: str, external_id: str, *, roles: list[str] | None = None, email: str | None = None,
               name: str | None = None, cost_center: str | None = None, idempotency_key: str | None = None) -> User:
        return self._run(self._a.users.upsert(account, external_id, roles=roles, email=email, name=name,
                                              cost_center=cost_center, idempotency_key=idempotency_key))

    def get(self, account: str, user: str) -> User:
        return self._run(self._a.users.get(account, user))

    def list(self, account: str, *, page_size: int = 100) -> Iterator[User]:
        return self._iter(self._a.users.list(account, page_size=page_size))


class SessionTokens(_Sync):
    def create(self, *, account: str, user: str, roles: list[str] | None = None,
               ttl_seconds: int | None = None) -> SessionToken:
        return self._run(self._a.session_tokens.create(account=account, user=user, roles=roles,
                                                       ttl_seconds=ttl_seconds))


class Entitlements(_Sync):
    def __init__(self, client: Commerce) -> None:
        super().__init__(client)
        self.cache = self._a.entitlements.cache
        self._local = self.cache.check
        self._slow = self._a.entitlements._check_slow

    def check(self, user: str, feature: str, quantity: int = 1) -> Decision:
        """May ``user`` use ``feature`` now? Local when warm (about a microsecond); a miss loads the snapshot."""
        decision = self._local(user, feature, quantity)
        if decision is not None:
            return decision
        return self._run(self._slow(user, feature, quantity))

    def warm_up(self, *, users: Iterable[str] = (), account: str | None = None) -> int:
        return self._run(self._a.entitlements.warm_up(users=list(users), account=account))

    def check_remote(self, user: str, feature: str, quantity: int = 1) -> CheckResult:
        return self._run(self._a.entitlements.check_remote(user, feature, quantity))

    def snapshot(self, user: str) -> Snapshot:
        return self._run(self._a.entitlements.snapshot(user))

    def grant(self, account: str, *, module: str, source_ref: str, user: str | None = None,
              source: Literal["admin", "plan"] = "admin", seats: int | None = None) -> Grant:
        return self._run(self._a.entitlements.grant(account, module=module, source_ref=source_ref, user=user,
                                                    source=source, seats=seats))

    def revoke(self, account: str, grant_id: str, *, reason: str) -> Grant:
        return self._run(self._a.entitlements.revoke(account, grant_id, reason=reason))

    def grants(self, account: str, *, user: str | None = None, page_size: int = 100) -> Iterator[Grant]:
        return self._iter(self._a.entitlements.grants(account, user=user, page_size=page_size))


class Usage(_Sync):
    def __init__(self, client: Commerce) -> None:
        super().__init__(client)
        self.reporter = self._a.usage.reporter
        self._start = client._start

    def record(self, *, user: str, feature: str, quantity: int = 1, event_id: str | None = None,
               **options: Any) -> str:
        """Buffer one usage event and return its id at once; a background thread sends it."""
        self._start()
        return self.reporter.record(user=user, feature=feature, quantity=quantity, event_id=event_id, **options)

    def flush(self) -> bool:
        return self._run(self._a.usage.flush())

    def send(self, events: list[dict[str, Any]], *, enforce: bool = False) -> UsageResult:
        return self._run(self._a.usage.send(events, enforce=enforce))


class Quotes(_Sync):
    def create(self, *, user: str, items: list[dict[str, Any]], include_requirements: bool = False) -> Quote:
        return self._run(self._a.quotes.create(user=user, items=items, include_requirements=include_requirements))

    def get(self, quote_id: str) -> Quote:
        return self._run(self._a.quotes.get(quote_id))


class Orders(_Sync):
    def create(self, *, quote_id: str, reason: str | None = None, idempotency_key: str | None = None) -> Order:
        return self._run(self._a.orders.create(quote_id=quote_id, reason=reason, idempotency_key=idempotency_key))

    def get(self, order_id: str) -> Order:
        return self._run(self._a.orders.get(order_id))

    def list(self, *, user: str, page_size: int = 100) -> Iterator[Order]:
        return self._iter(self._a.orders.list(user=user, page_size=page_size))

    def pay(self, order_id: str, *, payment_method_id: str | None = None,
            idempotency_key: str | None = None) -> Order:
        return self._run(self._a.orders.pay(order_id, payment_method_id=payment_method_id,
                                            idempotency_key=idempotency_key))

    def cancel(self, order_id: str) -> Order:
        return self._run(self._a.orders.cancel(order_id))


class WebhookEndpoints(_Sync):
    def create(self, *, url: str, event_types: list[str] | None = None,
               description: str | None = None) -> WebhookEndpoint:
        return self._run(self._a.webhook_endpoints.create(url=url, event_types=event_types, description=description))

    def list(self, *, page_size: int = 100) -> Iterator[WebhookEndpoint]:
        return self._iter(self._a.webhook_endpoints.list(page_size=page_size))

    def rotate_secret(self, endpoint_id: str, *, overlap_seconds: int | None = None) -> WebhookEndpoint:
        return self._run(self._a.webhook_endpoints.rotate_secret(endpoint_id, overlap_seconds=overlap_seconds))


class Commerce:
    """The synchronous client: ``Commerce(api_key="sk_...", base_url="https://commerce.example.com")``.

    Thread-safe. ``close()`` (or the ``with`` block, or interpreter exit) flushes buffered usage.
    """

    def __init__(self, *, api_key: str, base_url: str = DEFAULT_BASE_URL, timeout: float = 10.0,
                 retry: RetryPolicy | None = None, cache: CachePolicy | None = None,
                 usage: UsagePolicy | None = None, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._thread = _LoopThread()
        self._async = AsyncCommerce(api_key=api_key, base_url=base_url, timeout=timeout, retry=retry, cache=cache,
                                    usage=usage, transport=transport)
        self._started = False
        self._closed = False
        self.accounts = Accounts(self)
        self.users = Users(self)
        self.session_tokens = SessionTokens(self)
        self.entitlements = Entitlements(self)
        self.usage = Usage(self)
        self.quotes = Quotes(self)
        self.orders = Orders(self)
        self.webhook_endpoints = WebhookEndpoints(self)
        atexit.register(self.close)

    def __enter__(self) -> Commerce:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None,
                idempotency_key: str | None = None) -> Any:
        return self._thread.run(self._async.request(method, path, params=params, json=json,
                                                    idempotency_key=idempotency_key))

    def _start(self) -> None:
        if not self._started:
            self._started = True
            asyncio.run_coroutine_threadsafe(self._async._start_background(wait_stream=0), self._thread.loop)

    @property
    def follower(self) -> Any:
        return self._async.follower

    def close(self, *, flush_timeout: float = 10.0) -> None:
        """Flush buffered usage, stop the background work and the loop thread (idempotent)."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        self._thread.run(self._async.aclose(flush_timeout=flush_timeout))
        self._thread.stop()
