"""The fake plugged into the real ``StripeClient`` as its HTTP client: no socket, everything else real."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import stripe

from stripe_fake.core import FakeStripe, FaultKind, Reply

# The SDK's exception (its constructor is unannotated), as the SDK's own HTTP clients raise it on a network error.
_CONNECTION_ERROR: Callable[..., Exception] = stripe.APIConnectionError


class FakeHTTPClient(stripe.HTTPClient):
    """An async ``stripe.HTTPClient`` answering from a ``FakeStripe`` (the SDK's encoding, Idempotency-Key
    headers, retries, error mapping and typed objects all run). Backoff sleeps are skipped."""

    name = "commerce-fake"

    def __init__(self, fake: FakeStripe) -> None:
        super().__init__()
        self.fake = fake

    def _answer(self, method: str, url: str, headers: Mapping[str, str], post_data: Any) -> Reply:
        parts = urlsplit(url)
        body = post_data.decode() if isinstance(post_data, bytes) else (post_data or "")
        return self.fake.handle(method, parts.path, parts.query, dict(headers), body)

    @staticmethod
    def _deliver(reply: Reply) -> tuple[bytes, int, Mapping[str, str]]:
        if reply.fault is not None:
            what = "timed out" if reply.fault in (FaultKind.TIMEOUT, FaultKind.LOST_RESPONSE) else "failed"
            raise _CONNECTION_ERROR(f"Unexpected error communicating with Stripe (fake: the request {what}).",
                                    should_retry=True)
        return reply.body, reply.status, reply.headers

    def request(self, method: str, url: str, headers: Mapping[str, str] | None, post_data: Any = None, *,
                _usage: list[str] | None = None) -> tuple[str, int, Mapping[str, str]]:
        raise RuntimeError("the Stripe client is async-only: call the *_async methods")

    async def request_async(self, method: str, url: str, headers: Mapping[str, str],
                            post_data: Any = None) -> tuple[bytes, int, Mapping[str, str]]:
        reply = self._answer(method, url, headers, post_data)
        self.fake.after_request()
        return self._deliver(reply)

    async def sleep_async(self, secs: float) -> None:
        await asyncio.sleep(0)

    def close(self) -> None:
        return None

    async def close_async(self) -> None:
        return None
