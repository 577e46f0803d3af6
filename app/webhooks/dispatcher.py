"""The worker loop: fan out the outbox, claim due deliveries, POST them signed, record the outcome.

Run by ``commerce worker`` and, unless ``COMMERCE_DISPATCHER=off``, inside every app process. Any number
of dispatchers may run against one database (row locks with SKIP LOCKED and leases keep them apart).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from collections.abc import Callable

import httpcore
import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import metrics
from app.clock import Clock
from app.settings import Settings
from app.webhooks import domain, egress, queue

log = logging.getLogger("commerce.webhooks")

USER_AGENT = "commerce-webhooks/1"
RESPONSE_BODY_CHARS = 1024
RESPONSE_READ_BYTES = 4096
ERROR_CHARS = 500
EVENT_ID_HEADER = "Commerce-Event-Id"
EVENT_TYPE_HEADER = "Commerce-Event-Type"
ATTEMPT_HEADER = "Commerce-Delivery-Attempt"
SIGNATURE_HEADER = "Commerce-Signature"
# Standard Webhooks (https://www.standardwebhooks.com): verifiable with the maintained libraries in any language
STANDARD_ID_HEADER, STANDARD_TIMESTAMP_HEADER = "webhook-id", "webhook-timestamp"
STANDARD_SIGNATURE_HEADER = "webhook-signature"


def make_client(
    settings: Settings, *, verify: ssl.SSLContext | bool = True, backend: httpcore.AsyncNetworkBackend | None = None,
) -> httpx.AsyncClient:
    """Bounded timeouts, no redirects, no proxies, bounded pool; connects only to checked addresses (egress).

    ``verify`` and ``backend`` (the sockets under the pinning) are for tests.
    """
    limits = httpx.Limits(max_connections=settings.webhook_concurrency * 2,
                          max_keepalive_connections=settings.webhook_concurrency)
    return httpx.AsyncClient(
        follow_redirects=False, trust_env=False, timeout=httpx.Timeout(settings.webhook_timeout_seconds),
        transport=egress.PinnedTransport(limits=limits, verify=verify, backend=backend),
        headers={"User-Agent": USER_AGENT},
    )


class Dispatcher:
    """One dispatcher: call ``run_once`` (tests, bench) or ``run`` (the loop)."""

    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], *, settings: Settings, clock: Clock,
        client: httpx.AsyncClient | None = None, rand: Callable[[], float] | None = None,
        resolver: egress.Resolver | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._settings = settings
        self._clock = clock
        self._client = client or make_client(settings)
        self._own_client = client is None
        self._rand = rand or random.SystemRandom().random
        self._resolver = resolver or egress.system_resolver
        self._networks = domain.parse_networks(settings.webhook_networks)
        self._slots = asyncio.Semaphore(settings.webhook_concurrency)

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()

    async def fan_out(self) -> int:
        """Fan out every committed event not yet fanned out; returns how many events were handled."""
        total = 0
        while True:
            async with self._sessionmaker() as session, session.begin():
                n = await queue.fan_out(session, clock=self._clock, settings=self._settings,
                                        limit=self._settings.webhook_batch_size)
            total += n
            if n < self._settings.webhook_batch_size:
                return total

    async def deliver_due(self) -> int:
        """Claim one batch of due deliveries and attempt them concurrently; returns the batch size."""
        async with self._sessionmaker() as session, session.begin():
            jobs = await queue.claim_due(session, clock=self._clock, settings=self._settings,
                                         limit=self._settings.webhook_batch_size)
        if jobs:
            outcomes = await asyncio.gather(*(self._attempt(job) for job in jobs))
            await self._record(list(zip(jobs, outcomes, strict=True)))
        return len(jobs)

    async def run_once(self) -> int:
        """One pass: fan out, then deliver what is due until nothing is; returns the work done."""
        work = await self.fan_out()
        while (n := await self.deliver_due()) > 0:
            work += n
        return work

    async def run(self, stop: asyncio.Event) -> None:
        """Loop until ``stop`` is set; errors are logged and retried after a pause, never fatal."""
        log.info("webhook dispatcher started")
        try:
            while not stop.is_set():
                try:
                    work = await self.run_once()
                except Exception:
                    log.exception("webhook dispatcher pass failed; retrying")
                    work = 0
                if work == 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=self._settings.webhook_poll_seconds)
        finally:
            await self.aclose()
            log.info("webhook dispatcher stopped")

    async def _attempt(self, job: queue.Job) -> queue.Outcome:
        async with self._slots:
            return await self.send(job)

    async def _record(self, results: list[tuple[queue.Job, queue.Outcome]]) -> None:
        try:
            async with self._sessionmaker() as session, session.begin():
                await queue.record(session, results, clock=self._clock, settings=self._settings, rand=self._rand)
            for _job, outcome in results:
                metrics.WEBHOOK_DELIVERIES.labels(outcome=outcome.outcome).inc()
        except Exception:
            # The leases expire and a later pass retries: at least once, still never concurrently.
            log.exception("could not record %d webhook attempts", len(results))

    async def send(self, job: queue.Job) -> queue.Outcome:
        """POST one signed attempt; never raises (every failure becomes an Outcome)."""
        started_at = self._clock.now()
        began = time.perf_counter()

        def outcome(kind: str, *, error: str | None = None, response_status: int | None = None,
                    response_body: str | None = None) -> queue.Outcome:
            latency_ms = int((time.perf_counter() - began) * 1000)
            return queue.Outcome(outcome=kind, started_at=started_at, latency_ms=latency_ms, error=error,
                                 response_status=response_status, response_body=response_body)

        timeout = self._settings.webhook_timeout_seconds
        try:
            async with asyncio.timeout(timeout):
                try:
                    pin = await egress.check(job.url, allowed_hosts=self._settings.webhook_allowed_hosts,
                                             networks=self._networks, resolver=self._resolver)
                except egress.Refused as exc:
                    log.warning("webhook delivery %s (endpoint %s) blocked, not sent: %s", job.delivery_id,
                                job.endpoint_id, exc)
                    return outcome("blocked", error=domain.truncate(str(exc), ERROR_CHARS))
                except egress.Unresolved as exc:
                    return outcome("network_error", error=domain.truncate(str(exc), ERROR_CHARS))
                timestamp = int(started_at.timestamp())
                headers = {
                    "Content-Type": "application/json", EVENT_ID_HEADER: job.event_id,
                    EVENT_TYPE_HEADER: job.event_type, ATTEMPT_HEADER: str(job.attempt),
                    SIGNATURE_HEADER: domain.signature_header(job.secrets, timestamp, job.body),
                    STANDARD_ID_HEADER: job.event_id, STANDARD_TIMESTAMP_HEADER: str(timestamp),
                    STANDARD_SIGNATURE_HEADER: domain.standard_signature(
                        job.secrets, msg_id=job.event_id, timestamp=timestamp, body=job.body),
                }
                with egress.pinned(pin):
                    async with self._client.stream("POST", job.url, content=job.body, headers=headers) as response:
                        body = await _read_some(response)
        except TimeoutError:
            return outcome("timeout", error=f"no answer within {timeout:g} s")
        except httpx.TimeoutException as exc:
            return outcome("timeout", error=domain.truncate(f"{type(exc).__name__}: {exc}", ERROR_CHARS))
        except (httpx.HTTPError, OSError) as exc:
            return outcome("network_error", error=domain.truncate(f"{type(exc).__name__}: {exc}", ERROR_CHARS))
        text = domain.truncate(body.decode("utf-8", "replace"), RESPONSE_BODY_CHARS)
        kind = "succeeded" if domain.is_success(response.status_code) else "http_error"
        return outcome(kind, response_status=response.status_code, response_body=text or None)


async def _read_some(response: httpx.Response) -> bytes:
    """At most RESPONSE_READ_BYTES of the answer: the log keeps a truncated body and we never buffer more."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():
        chunks.append(chunk)
        size += len(chunk)
        if size >= RESPONSE_READ_BYTES:
            break
    return b"".join(chunks)[:RESPONSE_READ_BYTES]
