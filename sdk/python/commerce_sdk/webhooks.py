"""Verify webhooks from the service (Standard Webhooks: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``)
and decode their envelope. Any Standard Webhooks verifier works too; this one needs nothing beyond the stdlib."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import msgspec

from commerce_sdk.events import EVENT_TYPES, Payload

DEFAULT_TOLERANCE_SECONDS = 300
MAX_HEADER_LENGTH = 4096


class WebhookVerificationError(ValueError):
    """Not signed by the service with one of the given secrets, or outside the time tolerance."""


class Event(msgspec.Struct, kw_only=True, frozen=True):
    """The envelope of every event; ``data`` is the payload of ``type`` at ``version`` (docs/webhooks.md)."""

    id: str
    type: str
    version: int
    seq: int
    occurred_at: datetime
    account_id: str | None = None
    data: dict[str, Any] = {}

    @property
    def payload(self) -> Payload | None:
        """``data`` as the typed struct of this type and version (commerce_sdk.events), None for one this SDK
        does not know yet (a newer service): branch with ``match event.payload: case OrderFulfilled(): ...``."""
        kind = EVENT_TYPES.get((self.type, self.version))
        return None if kind is None else msgspec.convert(self.data, kind, strict=False)


def _key(secret: str) -> bytes:
    raw = secret.removeprefix("whsec_")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WebhookVerificationError("the secret is not a whsec_ base64 secret") from exc


def sign(secret: str, *, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">``."""
    digest = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(body: bytes, headers: Mapping[str, str], secrets: str | Iterable[str], *,
           tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS, now: float | None = None) -> Event:
    """Raise WebhookVerificationError unless a signature matches one secret in time; return the decoded event.

    Pass the raw body bytes as received. During a secret rotation the service signs with both secrets, so
    either one verifies.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id, stamp, header = (lower.get("webhook-id"), lower.get("webhook-timestamp"),
                             lower.get("webhook-signature"))
    if not msg_id or not stamp or not header:
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature")
    if len(header) > MAX_HEADER_LENGTH or not stamp.isdigit() or len(stamp) > 12:
        raise WebhookVerificationError("malformed signature headers")
    timestamp = int(stamp)
    if abs((time.time() if now is None else now) - timestamp) > tolerance_seconds:
        raise WebhookVerificationError("timestamp outside the tolerance window")
    offered = [part.partition(",")[2] for part in header.split(" ") if part.startswith("v1,")]
    for secret in [secrets] if isinstance(secrets, str) else list(secrets):
        expected = sign(secret, msg_id=msg_id, timestamp=timestamp, body=body)[3:]
        if any(hmac.compare_digest(expected, candidate) for candidate in offered):
            return msgspec.json.decode(body, type=Event)
    raise WebhookVerificationError("no signature matches")
