"""The async HTTP core: auth, timeouts, retries with backoff that reuse one Idempotency-Key, problem mapping."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx
import msgspec

from commerce_sdk import errors
from commerce_sdk.models import decode

T = TypeVar("T")
USER_AGENT = "commerce-sdk-python/0.1.0"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """``max_retries`` after the first attempt; delays double from ``base_delay`` up to ``max_delay``, jittered."""

    max_retries: int = 3
    base_delay: float = 0.2
    max_delay: float = 5.0

    def delay(self, attempt: int, *, retry_after: float | None = None) -> float:
        """Seconds before retry number ``attempt`` (1-based); a server's Retry-After wins when it asks for longer."""
        nominal = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        jittered: float = nominal * (0.5 + random.random() / 2)  # noqa: S311  (spreading retries, not security)
        return max(jittered, min(retry_after, 60.0)) if retry_after is not None else jittered


def new_idempotency_key() -> str:
    return f"sdk-{uuid.uuid4()}"


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    from datetime import UTC, datetime

    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        return {"title": response.reason_phrase, "detail": response.text[:500]}
    return body if isinstance(body, dict) else {"detail": str(body)[:500]}


def _in_flight(response: httpx.Response) -> bool:
    """409 because a request with the same Idempotency-Key is still running: worth waiting for."""
    if response.status_code != 409:
        return False
    problem = _problem(response)
    return "idempotency_key" in problem and problem.get("code") == "conflict"


class AsyncHTTP:
    """One ``httpx.AsyncClient`` with the vendor's key; ``request`` retries what is safe to retry."""

    def __init__(self, *, api_key: str, base_url: str, timeout: float, retry: RetryPolicy,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.retry = retry
        self.client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), timeout=httpx.Timeout(timeout), transport=transport,
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": USER_AGENT, "Accept": "application/json"},
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def request(
        self, method: str, path: str, *, into: type[T], params: Mapping[str, Any] | None = None,
        json: Any = None, idempotency_key: str | None = None, headers: Mapping[str, str] | None = None,
    ) -> T:
        """Send with retries on network errors, 429 and 5xx; a POST always carries an Idempotency-Key, the same on
        every attempt, so a retry after a lost answer replays the first result instead of doing it twice."""
        response = await self.send(method, path, params=params, json=json, idempotency_key=idempotency_key,
                                   headers=headers)
        return decode(response.content, into)

    async def send(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None,
        idempotency_key: str | None = None, headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """``request`` without decoding (2xx and 304 come back; everything else raises)."""
        sent_headers = dict(headers or {})
        if method == "POST":
            sent_headers["Idempotency-Key"] = idempotency_key or new_idempotency_key()
        content = msgspec.json.encode(json) if json is not None else None
        if content is not None:
            sent_headers["Content-Type"] = "application/json"
        query = {k: v for k, v in (params or {}).items() if v is not None}
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self.client.request(method, path, params=query, content=content,
                                                      headers=sent_headers)
            except httpx.TimeoutException as exc:
                if attempt > self.retry.max_retries:
                    raise errors.APITimeoutError(f"{method} {path}: no answer in time") from exc
                await asyncio.sleep(self.retry.delay(attempt))
                continue
            except httpx.TransportError as exc:
                if attempt > self.retry.max_retries:
                    raise errors.APIConnectionError(f"{method} {path}: {exc}") from exc
                await asyncio.sleep(self.retry.delay(attempt))
                continue
            if response.status_code < 400:
                return response
            retriable = response.status_code in RETRY_STATUSES or _in_flight(response)
            if retriable and attempt <= self.retry.max_retries:
                await asyncio.sleep(self.retry.delay(attempt, retry_after=_retry_after(response)))
                continue
            error = errors.error_for(response.status_code, _problem(response),
                                     request_id=response.headers.get("x-request-id"))
            if isinstance(error, errors.RateLimited):
                error.retry_after = _retry_after(response)
            raise error
