"""Verify a webhook from this service in the vendor's app. Standalone: copy this file, stdlib only.

    from verify import verify, SignatureError

    try:
        verify(request_body_bytes, request.headers["Commerce-Signature"], [secret])
    except SignatureError:
        return 400

Pass the raw body bytes exactly as received (before any JSON parsing). During a secret rotation
either the old or the new secret verifies: pass both, or keep the one you have.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable

DEFAULT_TOLERANCE_SECONDS = 300
MAX_HEADER_LENGTH = 4096


class SignatureError(ValueError):
    """The request was not signed by this service with one of the given secrets, or is too old."""


def parse_header(header: str) -> tuple[int, list[str]]:
    """``t=<unix seconds>,v1=<hex>,...`` -> (timestamp, v1 signatures); unknown schemes are ignored."""
    if len(header) > MAX_HEADER_LENGTH:
        raise SignatureError("signature header too long")
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            if not value.isdigit() or len(value) > 12:
                raise SignatureError("malformed timestamp")
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value)
    if timestamp is None:
        raise SignatureError("no timestamp in the signature header")
    if not signatures:
        raise SignatureError("no v1 signature in the signature header")
    return timestamp, signatures


def verify(
    body: bytes,
    header: str,
    secrets: str | Iterable[str],
    *,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> int:
    """Raise SignatureError unless one v1 signature matches one secret and the timestamp is fresh.

    The tolerance window (either side of ``now``) rejects replays of captured requests. Returns the
    signed timestamp.
    """
    timestamp, signatures = parse_header(header)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        raise SignatureError("timestamp outside the tolerance window")
    keys = [secrets] if isinstance(secrets, str) else list(secrets)
    message = str(timestamp).encode() + b"." + body
    for secret in keys:
        expected = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest().encode()
        if any(hmac.compare_digest(expected, candidate.encode()) for candidate in signatures):
            return timestamp
    raise SignatureError("no signature matches")
