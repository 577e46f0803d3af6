"""Pure webhook decisions: signatures, retry schedule, URL safety, subscription matching, auto-disable.

Imports neither litestar nor sqlalchemy; every function is a plain function of its arguments.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from urllib.parse import urlsplit

SIGNATURE_SCHEME = "v1"
URL_MAX_LENGTH = 2048
WILDCARD = "*"

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class UrlRejected(ValueError):
    """The endpoint URL is not acceptable; the message says why, for the vendor."""


# --- signatures -------------------------------------------------------------------------------------------

def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``f"{timestamp}.{body}"`` keyed by the whole secret string (``whsec_...``)."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secrets: Sequence[str], timestamp: int, body: bytes) -> str:
    """``t=<unix seconds>,v1=<hex>[,v1=<hex>...]``: one v1 entry per active secret (rotation overlap)."""
    assert secrets, "an endpoint always has at least one signing secret"
    parts = [f"t={timestamp}"] + [f"{SIGNATURE_SCHEME}={sign(s, timestamp, body)}" for s in secrets]
    return ",".join(parts)


# --- retries ----------------------------------------------------------------------------------------------

def retry_delay(
    attempts_made: int, schedule: Sequence[int], *, jitter: float, rand: Callable[[], float],
) -> timedelta | None:
    """Delay before the next attempt after ``attempts_made`` failed ones; None when the schedule is spent.

    ``schedule[i]`` is the nominal delay after attempt ``i + 1``; jitter spreads it uniformly by
    +/- ``jitter`` (a fraction) so endpoints recovering from an outage are not hit by a synchronized herd.
    """
    assert attempts_made >= 1
    assert 0 <= jitter <= 1
    if attempts_made > len(schedule):
        return None
    nominal = schedule[attempts_made - 1]
    factor = 1 + jitter * (2 * rand() - 1)
    return timedelta(seconds=max(0.0, nominal * factor))


def schedule_span(schedule: Sequence[int]) -> timedelta:
    """Nominal time from the first attempt to the dead letter."""
    return timedelta(seconds=sum(schedule))


def should_disable(
    *, consecutive_failures: int, failing_since: datetime | None, now: datetime, min_failures: int,
    after: timedelta,
) -> bool:
    """An endpoint is disabled once it has failed every attempt for ``after`` and at least ``min_failures`` times."""
    if failing_since is None or consecutive_failures < min_failures:
        return False
    return now - failing_since >= after


def is_success(status_code: int) -> bool:
    return 200 <= status_code < 300


def truncate(text: str, limit: int) -> str:
    """At most ``limit`` characters, without NULs (PostgreSQL text cannot hold them)."""
    text = text.replace("\x00", "")
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


# --- subscriptions ----------------------------------------------------------------------------------------

_PATTERN = re.compile(r"^(\*|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*(\.\*)?)$")


def is_pattern(value: str) -> bool:
    """``*``, an exact type such as ``order.paid``, or a family such as ``order.*``."""
    return len(value) <= 80 and _PATTERN.match(value) is not None


def matches(event_type: str, patterns: Iterable[str]) -> bool:
    """Whether an endpoint subscribed to ``patterns`` receives ``event_type``."""
    for pattern in patterns:
        if pattern in (WILDCARD, event_type):
            return True
        if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
            return True
    return False


# --- URL safety -------------------------------------------------------------------------------------------

def parse_networks(values: Iterable[str]) -> tuple[IpNetwork, ...]:
    return tuple(ipaddress.ip_network(v, strict=False) for v in values)


def address_allowed(address: IpAddress, networks: Sequence[IpNetwork]) -> bool:
    """Public unicast addresses are fine; internal ones only inside an allowed network."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in n for n in networks):
        return True
    return address.is_global and not address.is_multicast


def host_allowed(host: str, patterns: Sequence[str]) -> bool:
    """No patterns allow every host; ``example.com`` matches itself, ``*.example.com`` its subdomains."""
    if not patterns:
        return True
    host = host.lower().rstrip(".")
    for pattern in patterns:
        pattern = pattern.lower().rstrip(".")
        if pattern.startswith("*.") and host.endswith(pattern[1:]):
            return True
        if host == pattern:
            return True
    return False


def literal_address(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


_LOOPBACK_NAMES = ("localhost", "localhost.localdomain")


def validate_url(
    url: str, *, allowed_hosts: Sequence[str], networks: Sequence[IpNetwork], require_https: bool,
) -> str:
    """Check an endpoint URL before it is stored; returns it unchanged or raises UrlRejected.

    Names are resolved again at delivery time (see ``address_allowed``): a name that is fine now
    may point somewhere internal later.
    """
    if len(url) > URL_MAX_LENGTH:
        raise UrlRejected(f"The URL is longer than {URL_MAX_LENGTH} characters.")
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        raise UrlRejected("The URL must not contain spaces or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlRejected("The URL is malformed.") from exc
    if parts.scheme not in ("http", "https"):
        raise UrlRejected("The URL scheme must be http or https.")
    if require_https and parts.scheme != "https":
        raise UrlRejected("The URL must use https in production.")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UrlRejected("The URL must not carry credentials; authenticate requests with the signature.")
    if parts.fragment:
        raise UrlRejected("The URL must not have a fragment.")
    host = parts.hostname
    if not host:
        raise UrlRejected("The URL has no host.")
    if port == 0:
        raise UrlRejected("The URL port must be between 1 and 65535.")
    if not host_allowed(host, allowed_hosts):
        raise UrlRejected(f"The host {host!r} is not in the allowed list of webhook hosts.")
    address = literal_address(host)
    name = host.lower().rstrip(".")
    if address is None and (name in _LOOPBACK_NAMES or name.endswith(".localhost")):
        address = ipaddress.ip_address("127.0.0.1")
    if address is not None and not address_allowed(address, networks):
        raise UrlRejected(f"The host {host!r} is an internal address that webhooks may not target.")
    return url
