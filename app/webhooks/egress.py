"""Where a delivery may connect: resolve once, judge every address, and connect only to those addresses.

The check and the connection use the same resolution: ``check`` returns a Pin (the host httpx will ask
for and the addresses judged for it), and the client's transport connects to a pinned address instead of
resolving the name again, so a DNS answer that changes between check and connect (rebinding) reaches
nothing. The URL is unchanged, so the Host header, TLS SNI and certificate verification are for the name,
and pooled connections are per name (never one host's TLS session reused for another on the same address).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass

import httpcore
import httpx

from app.webhooks import targets

# (normalised host name, port) -> address strings; tests inject their own (never real DNS in tests).
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]


async def system_resolver(host: str, port: int) -> list[str]:
    """getaddrinfo on the absolute name (trailing dot: no search-list expansion into internal domains)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host + ".", port, type=socket.SOCK_STREAM,
                                                         proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True)
class Pin:
    """The host as httpx connects to it and the checked addresses its connections may use, in order."""

    host: str
    addresses: tuple[str, ...]


class Refused(Exception):
    """The delivery may not go there (blocked); the message says why."""


class Unresolved(Exception):
    """The name did not resolve (a network error: retried on the schedule)."""


def parse(url: str) -> tuple[httpx.URL, targets.Target]:
    """The URL as httpx will send it and as the policy reads it; UrlRejected if either refuses or they disagree."""
    target = targets.parse_target(url)
    try:
        wire = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise targets.UrlRejected(f"The URL is malformed: {exc}") from exc
    wire_host, _, _ = targets.normalize_host(wire.host)
    if wire_host != target.host:  # two URL parsers disagree: never connect to what was not checked
        raise targets.UrlRejected(f"The URL's host is ambiguous ({wire_host!r} or {target.host!r}).")
    return wire, target


async def check(url: str, *, allowed_hosts: Sequence[str], networks: Sequence[targets.IpNetwork],
                resolver: Resolver) -> Pin:
    """The Pin for one attempt to ``url``, after judging the host and every address it resolves to."""
    try:
        wire, target = parse(url)
    except targets.UrlRejected as exc:
        raise Refused(f"the URL is not acceptable: {exc}") from exc
    reason = targets.target_refusal(target, allowed_hosts=allowed_hosts, networks=networks)
    if reason is not None:
        raise Refused(reason)
    if target.address is not None:
        addresses: list[targets.IpAddress] = [target.address]
    elif targets.is_loopback_name(target.host):
        addresses = [targets.LOOPBACK_V4]
    else:
        addresses = await _resolve(target, resolver)
    for address in addresses:
        why = targets.address_refusal(address, networks)
        if why is not None:
            raise Refused(f"host {target.host!r} resolves to an internal address: {why}")
    return Pin(host=wire.raw_host.decode("ascii"), addresses=tuple(dict.fromkeys(str(a) for a in addresses)))


async def _resolve(target: targets.Target, resolver: Resolver) -> list[targets.IpAddress]:
    try:
        answers = await resolver(target.host, target.port)
    except (OSError, UnicodeError) as exc:
        raise Unresolved(f"{target.host!r} does not resolve: {exc}") from exc
    if not answers:
        raise Unresolved(f"{target.host!r} resolves to no address")
    addresses: list[targets.IpAddress] = []
    for answer in answers:
        try:
            addresses.append(ipaddress.ip_address(answer.split("%", 1)[0]))
        except ValueError as exc:
            raise Refused(f"host {target.host!r} resolves to {answer!r}, which is no address") from exc
    return addresses


_PIN: ContextVar[Pin | None] = ContextVar("webhook_pin", default=None)


@contextlib.contextmanager
def pinned(pin: Pin) -> Iterator[None]:
    """Connections opened inside this block (by this task) go to ``pin``'s addresses only."""
    token = _PIN.set(pin)
    try:
        yield
    finally:
        _PIN.reset(token)


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Opens TCP connections only to the pinned addresses of the host asked for; anything else is refused."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._inner = inner or httpcore.AnyIOBackend()

    # httpcore's interface passes the connect timeout as a parameter
    async def connect_tcp(
        self, host: str, port: int, timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        pin = _PIN.get()
        if pin is None or pin.host != host:
            raise httpcore.ConnectError(f"refused to connect to {host!r}: its addresses were not checked")
        failure: Exception | None = None
        for address in pin.addresses:
            try:
                return await self._inner.connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                                     socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None, "a pin always has at least one address"
        raise failure

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None,  # noqa: ASYNC109
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("webhooks never connect to unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (exception mapping, streaming) over a pool whose connections use PinnedBackend.

    httpx 0.28 takes no network backend, so the pool it built is replaced by the same pool with ours.
    """

    def __init__(self, *, limits: httpx.Limits, verify: ssl.SSLContext | bool = True,
                 backend: httpcore.AsyncNetworkBackend | None = None) -> None:
        super().__init__(limits=limits, verify=verify, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections, keepalive_expiry=limits.keepalive_expiry,
            network_backend=PinnedBackend(backend),
        )
