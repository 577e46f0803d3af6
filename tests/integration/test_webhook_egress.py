"""Deliveries judge every resolved address and connect only to those addresses (injected DNS, loopback only)."""

from __future__ import annotations

import contextlib
import logging
import ssl
import subprocess
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import httpcore
import httpx
import msgspec
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clock import FrozenClock
from app.ids import new_id
from app.settings import Settings
from app.webhooks.dispatcher import Dispatcher, make_client
from app.webhooks.models import WebhookAttempt, WebhookEndpoint
from app.webhooks.service import new_secret
from tests.factories import emit_test_event
from tests.support.receiver import Receiver

Maker = async_sessionmaker[AsyncSession]


class LoopbackOnly(httpcore.AsyncNetworkBackend):
    """Real sockets, but only to 127.0.0.1; records every connection the transport asks for."""

    def __init__(self) -> None:
        self.inner = httpcore.AnyIOBackend()
        self.connects: list[tuple[str, int]] = []

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        self.connects.append((host, port))
        if host != "127.0.0.1":
            raise httpcore.ConnectError(f"the test refuses to leave loopback ({host})")
        return await self.inner.connect_tcp(host, port, timeout=timeout, socket_options=socket_options)

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class FakeDns:
    """Answers from a table, one list per call in turn (the last repeats); records the questions."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers, self.asked = answers, list[str]()

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.asked.append(host)
        if host not in self.answers:
            raise OSError(-2, "Name or service not known")
        turns = self.answers[host]
        return turns.pop(0) if len(turns) > 1 else turns[0]


@contextlib.contextmanager
def warnings_of(name: str) -> Iterator[list[str]]:
    messages: list[str] = []

    class Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                messages.append(record.getMessage())

    handler, logger = Handler(), logging.getLogger(name)
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)


async def raw_endpoint(sessionmaker: Maker, clock: FrozenClock, url: str) -> str:
    """An endpoint stored without the registration checks (as rows written before them were)."""
    async with sessionmaker() as s, s.begin():
        endpoint = WebhookEndpoint(endpoint_id=new_id("whe"), url=url, description=None, event_types=["*"],
                                   status="enabled", secret=new_secret(), consecutive_failures=0,
                                   created_at=clock.now(), updated_at=clock.now())
        s.add(endpoint)
    return endpoint.endpoint_id


async def outcomes(sessionmaker: Maker) -> dict[str, tuple[str, str | None]]:
    async with sessionmaker() as s:
        rows = (await s.execute(select(WebhookEndpoint.url, WebhookAttempt.outcome, WebhookAttempt.error).join(
            WebhookAttempt, WebhookAttempt.endpoint_id == WebhookEndpoint.endpoint_id))).all()
    return {r.url: (r.outcome, r.error) for r in rows}


async def deliver(sessionmaker: Maker, settings: Settings, clock: FrozenClock, dns: FakeDns,
                  backend: LoopbackOnly, verify: ssl.SSLContext | bool = True) -> None:
    client = make_client(settings, verify=verify, backend=backend)
    d = Dispatcher(sessionmaker, settings=settings, clock=clock, client=client, rand=lambda: 0.5, resolver=dns)
    try:
        await d.run_once()
    finally:
        await client.aclose()


@pytest.fixture
def strict(settings: Settings) -> Settings:
    return msgspec.structs.replace(settings, webhook_allowed_networks=(), webhook_retry_jitter=0.0,
                                   webhook_timeout_seconds=2.0)


async def test_internal_spellings_stored_earlier_are_blocked_at_delivery_and_never_connected(
    sessionmaker: Maker, strict: Settings, clock: FrozenClock,
) -> None:
    async with Receiver() as rx:
        hosts = ["127.1", "2130706433", "0x7f000001", "0177.0.0.1", "127.0.0.1.", "localhost", "[::ffff:127.0.0.1]",
                 "[::127.0.0.1]", "[64:ff9b::7f00:1]", "[2002:7f00:1::]", "169.254.169.254.", "0xa9fea9fe",
                 "2852039166", "169.254.43518", "[::ffff:169.254.169.254]", "[::169.254.169.254]",
                 "[64:ff9b::a9fe:a9fe]", "[2002:a9fe:a9fe::1]", "metadata", "metadata.google.internal",
                 "intranet", "0"]
        urls = [f"http://{h}:{rx.port}/hooks" for h in hosts]
        for url in urls:
            await raw_endpoint(sessionmaker, clock, url)
        await emit_test_event(sessionmaker, clock)
        dns, backend = FakeDns({}), LoopbackOnly()
        with warnings_of("commerce.webhooks") as logged:
            await deliver(sessionmaker, strict, clock, dns, backend)
    got = await outcomes(sessionmaker)
    assert {url: got[url][0] for url in urls} == dict.fromkeys(urls, "blocked")
    assert rx.requests == [] and backend.connects == [] and dns.asked == []
    assert len(logged) == len(urls) and all("blocked, not sent" in m for m in logged)


async def test_every_resolved_address_is_judged(sessionmaker: Maker, strict: Settings, clock: FrozenClock) -> None:
    table = {
        "meta.example.com": ["169.254.169.254"], "mapped.example.com": ["::ffff:169.254.169.254"],
        "compat.example.com": ["::a9fe:a9fe"], "nat64.example.com": ["64:ff9b::a9fe:a9fe"],
        "sixtofour.example.com": ["2002:a9fe:a9fe::"], "private.example.com": ["10.0.0.7"],
        "ula.example.com": ["fd00:ec2::254"], "linklocal.example.com": ["fe80::1%eth0"],
        "loop.example.com": ["127.0.0.1"], "zero.example.com": ["0.0.0.0"],
        "mixed.example.com": ["8.8.8.8", "169.254.169.254"], "garbage.example.com": ["not-an-address"],
    }
    dns, backend = FakeDns({name: [answer] for name, answer in table.items()}), LoopbackOnly()
    for name in [*table, "nxdomain.example.com"]:
        await raw_endpoint(sessionmaker, clock, f"https://{name}/hooks")
    await emit_test_event(sessionmaker, clock)
    await deliver(sessionmaker, strict, clock, dns, backend)
    got = await outcomes(sessionmaker)
    assert {name: got[f"https://{name}/hooks"][0] for name in table} == dict.fromkeys(table, "blocked")
    assert got["https://nxdomain.example.com/hooks"][0] == "network_error"
    assert "does not resolve" in (got["https://nxdomain.example.com/hooks"][1] or "")
    assert backend.connects == [] and sorted(dns.asked) == sorted([*table, "nxdomain.example.com"])


async def test_the_connection_goes_to_the_checked_address_and_dns_is_asked_once_per_attempt(
    sessionmaker: Maker, settings: Settings, clock: FrozenClock,
) -> None:
    async with Receiver() as rx:
        # Rebinding: the first answer is fine, every later one points at the metadata service.
        dns = FakeDns({"hooks.example.com": [["127.0.0.1"], ["169.254.169.254"]]})
        backend = LoopbackOnly()
        url = f"http://hooks.example.com:{rx.port}/hooks"
        await raw_endpoint(sessionmaker, clock, url)
        await emit_test_event(sessionmaker, clock)
        await deliver(sessionmaker, settings, clock, dns, backend)
        assert (await outcomes(sessionmaker))[url][0] == "succeeded"
        assert dns.asked == ["hooks.example.com"] and backend.connects == [("127.0.0.1", rx.port)]
        [request] = rx.requests
        assert request.headers["host"] == f"hooks.example.com:{rx.port}"

        await emit_test_event(sessionmaker, clock)
        await deliver(sessionmaker, settings, clock, dns, backend)
    assert len(rx.requests) == 1 and backend.connects == [("127.0.0.1", rx.port)]
    async with sessionmaker() as s:
        kinds = sorted((await s.scalars(select(WebhookAttempt.outcome))).all())
    assert kinds == ["blocked", "succeeded"]


async def test_a_connection_without_a_checked_pin_is_refused(settings: Settings) -> None:
    backend = LoopbackOnly()
    async with make_client(settings, backend=backend) as client:
        with pytest.raises(httpx.ConnectError, match="not checked"):
            await client.post("http://127.0.0.1:9/hooks", content=b"{}")
    assert backend.connects == []


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for hooks.example.com (made locally with the openssl command)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", "/CN=hooks.example.com", "-addext",
                    "subjectAltName=DNS:hooks.example.com", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


async def test_tls_uses_the_name_for_sni_and_certificate_checks_while_connecting_to_the_pinned_address(
    sessionmaker: Maker, settings: Settings, clock: FrozenClock, certificate: tuple[Path, Path],
) -> None:
    cert, key = certificate
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    seen: list[str | None] = []

    def record_sni(_sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        seen.append(name)

    server.sni_callback = record_sni
    trust = ssl.create_default_context(cafile=str(cert))
    async with Receiver(tls=server) as rx:
        dns = FakeDns({"hooks.example.com": [["127.0.0.1"]], "other.example.com": [["127.0.0.1"]]})
        good, bad = f"https://hooks.example.com:{rx.port}/hooks", f"https://other.example.com:{rx.port}/hooks"
        await raw_endpoint(sessionmaker, clock, good)
        await raw_endpoint(sessionmaker, clock, bad)
        await emit_test_event(sessionmaker, clock)
        await deliver(sessionmaker, settings, clock, dns, LoopbackOnly(), verify=trust)
    got = await outcomes(sessionmaker)
    assert got[good][0] == "succeeded" and [r.headers["host"] for r in rx.requests] == [f"hooks.example.com:{rx.port}"]
    assert got[bad][0] == "network_error" and "CERTIFICATE_VERIFY_FAILED" in (got[bad][1] or "")
    assert sorted(n for n in seen if n) == ["hooks.example.com", "other.example.com"]
