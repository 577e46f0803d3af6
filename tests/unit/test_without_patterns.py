"""``app.http.without_patterns``: a body type's copy that differs from it only in its strings' patterns (the usage
fast path decodes a batch with it and checks the patterns once per batch, D100)."""

from __future__ import annotations

import re

import msgspec
import pytest

from app.http import without_patterns
from entitlements.hotpath import decode_batch
from entitlements.schemas import UsageBatch


def _described(t: object) -> str:
    """The type as msgspec sees it, patterns and documentation (a description) left out."""
    described = re.sub(r"\bpattern='(?:[^'\\]|\\.)*'", "pattern=None", repr(msgspec.inspect.type_info(t)))
    return re.sub(r"Metadata\(type=(\w+\([^()]*\)), extra_json_schema=\{[^{}]*\}, extra=None\)", r"\1", described)


def test_the_copy_is_the_type_without_its_patterns() -> None:
    copy = without_patterns(UsageBatch)
    assert "pattern='" in repr(msgspec.inspect.type_info(UsageBatch))
    assert "pattern='" not in repr(msgspec.inspect.type_info(copy))
    assert _described(copy).replace("app.http.", "entitlements.schemas.") == _described(UsageBatch)


@pytest.mark.parametrize("body", [
    b'{"events":[{"event_id":"e-1","user":"u-1","feature":"reports"}]}',
    b'{"events":[{"event_id":"e:1@x/y+z=","user":"a.b:c@d/e+f-g","feature":"r_1.x-y","quantity":7,'
    b'"occurred_at":"2026-12-01T10:00:00+02:00","kind":"attempt","properties":{"k":"v","n":-3,"b":true,"z":null}}],'
    b'"enforce":true}',
    b'{"events":[{"event_id":"e-1","user":"u-1","feature":"reports","properties":{"\xc3\xa9":"\xc3\xa9"}}]}',
    b'{"events":[{"event_id":"e-1","user":"u-1","feature":"reports","properties":{"a":"\\\\u0000"}}]}',
])
def test_a_batch_decodes_to_the_routes_values(body: bytes) -> None:
    got = decode_batch(body)
    assert got is not None
    assert msgspec.to_builtins(got) == msgspec.to_builtins(msgspec.json.decode(body, type=UsageBatch, strict=True))


@pytest.mark.parametrize("body", [
    b'{"events":[{"event_id":"e-1\\n","user":"u-1","feature":"reports"}]}',  # msgspec's "$" takes a final newline
    b'{"events":[{"event_id":"e-1","user":"u-1\\n","feature":"reports"}]}',
    b'{"events":[{"event_id":"-e","user":"u-1","feature":"reports"}]}',
    b'{"events":[{"event_id":"e 1","user":"u-1","feature":"reports"}]}',
    b'{"events":[{"event_id":"e-1","user":"u 1","feature":"reports"}]}',
    b'{"events":[{"event_id":"e-1","user":"u-1","feature":"Reports"}]}',
    b'{"events":[{"event_id":"e-1","user":"u-1","feature":"reports","properties":{"a\\u0000":"b"}}]}',
    b'{"events":[{"event_id":"e-1","user":"u-1","feature":"reports","properties":{"a":"b\\u0000"}}]}',
    b'{"events":[{"event_id":"e-1","user":"u-1","feature":"reports","extra":1}]}',
    b'{"events":[]}', b"", b"[]",
])
def test_a_batch_the_patterns_or_rules_refuse_is_left_to_the_route(body: bytes) -> None:
    assert decode_batch(body) is None
