"""Shared msgspec building blocks of the HTTP contract: one naming case (snake_case), strict input."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

import msgspec
from msgspec import Meta

from app.errors import FieldError, ValidationFailed


class Input(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Base of request bodies: unknown fields are rejected, not silently dropped."""


class Output(msgspec.Struct, kw_only=True, frozen=True):
    """Base of response bodies."""


# Text that PostgreSQL can store (no NUL) with explicit bounds.
ExternalId = Annotated[str, Meta(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/+-]*$",
                                 description="The vendor's own id for this object")]
Name = Annotated[str, Meta(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$")]
Text = Annotated[str, Meta(max_length=2000, pattern=r"^[^\x00]*$")]
Slug = Annotated[str, Meta(min_length=1, max_length=60, pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
Role = Annotated[str, Meta(min_length=1, max_length=60, pattern=r"^[a-z0-9][a-z0-9_.-]*$",
                           description="A vendor-defined role such as 'analyst' or 'admin'")]
# No whitespace and no control character, the same in both regular-expression dialects: `\s` is not the same class
# in Python (which adds \x1c-\x1f and \x85) as in the JSON Schema (ECMAScript) readers of the document (which add
# \ufeff), so the characters either dialect alone counts are listed too.
Email = Annotated[str, Meta(min_length=3, max_length=320,
                            pattern=r"^[^@\s\x00-\x1f\x7f\x85\ufeff]+@[^@\s\x00-\x1f\x7f\x85\ufeff]+$")]
Currency = Annotated[str, Meta(min_length=3, max_length=3, pattern=r"^[A-Z]{3}$",
                                description="ISO 4217 code, e.g. USD")]


def encode_cursor(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode()


def bad_cursor() -> ValidationFailed:
    """The answer to a cursor this API did not issue: a 400 whose field error names the ``cursor`` parameter."""
    return ValidationFailed("The cursor is not valid; pass next_cursor from the previous page.",
                            errors=[FieldError(field="cursor", message="not a cursor this API issued")])


def decode_cursor(cursor: str | None) -> str | None:
    """Opaque pagination cursor -> the last key seen; a malformed cursor is a 400."""
    if not cursor:
        return None
    try:
        value = base64.urlsafe_b64decode(cursor.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise bad_cursor() from exc
    if not value.isprintable() or len(value) > 120:  # cursors we issue are short printable keys
        raise bad_cursor()
    return value


def decode_int_cursor(cursor: str | None) -> int | None:
    """A cursor over an integer key (sequence numbers, revisions); a malformed one is a 400."""
    raw = decode_cursor(cursor)
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise bad_cursor()
    return int(raw)
