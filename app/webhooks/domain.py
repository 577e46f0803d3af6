"""Pure webhook decisions: signatures, retry schedule, subscription matching, auto-disable (URL safety: targets).

Imports neither litestar nor sqlalchemy; every function is a plain function of its arguments.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta

from app.webhooks.targets import (
    URL_MAX_LENGTH,
    IpAddress,
    IpNetwork,
    UrlRejected,
    address_allowed,
    host_allowed,
    literal_address,
    parse_networks,
    validate_url,
)

__all__ = [
    "URL_MAX_LENGTH", "IpAddress", "IpNetwork", "UrlRejected", "address_allowed", "host_allowed", "literal_address",
    "parse_networks", "validate_url",
]

SIGNATURE_SCHEME = "v1"
WILDCARD = "*"


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


def standard_key(secret: str) -> bytes:
    """The Standard Webhooks signing key: the base64 after ``whsec_``, decoded as the reference verifiers do."""
    raw = secret.removeprefix("whsec_")
    return base64.b64decode(raw + "==")  # lenient like the reference libraries: unpadded secrets decode too


def standard_signature(secrets: Sequence[str], *, msg_id: str, timestamp: int, body: bytes) -> str:
    """``webhook-signature`` of the Standard Webhooks specification: ``v1,<base64>`` per active secret, spaced."""
    assert secrets, "an endpoint always has at least one signing secret"
    message = f"{msg_id}.{timestamp}.".encode() + body
    return " ".join("v1," + base64.b64encode(hmac.new(standard_key(s), message, hashlib.sha256).digest()).decode()
                    for s in secrets)


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
