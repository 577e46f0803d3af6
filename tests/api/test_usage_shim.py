"""The usage batch's fast path in front of Litestar (entitlements.hotpath.UsageFastPath, D100): a common batch from
a known API key is recorded without the framework, and every answer (status, body, headers) is the one the full
app gives; whatever it cannot answer exactly (bad bodies, unknown users or features, events outside the window,
enforcement, Idempotency-Keys, browsers, session tokens) goes to the app with its body intact, having written
nothing.

A batch cannot be sent twice as the same request (its second sending is a replay), so each request is made twice
in the same state: once by the full app (the fast path set aside) for one user with event ids ``full-*``, and once
with the fast path in front for a twin user with ids ``fast-*``; the ids and names are masked before the bytes
compare, and the twins' counters and demand signals must come out equal."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text

from app.clock import FrozenClock
from entitlements.hotpath import UsageFastPath
from tests.api.test_entitlements import key  # noqa: F401  (fixture)
from tests.factories import bearer, session_token

FULL, FAST = ("acme-ana", "full"), ("acme-vic", "fast")
_REQUEST_ID = re.compile(rb"req_[0-9a-z]{26}")


def _spy(app: Litestar) -> list[bool]:
    """What the fast path decided for each request it saw (True: it answered)."""
    fast = app.fast_usage  # type: ignore[attr-defined]
    assert isinstance(fast, UsageFastPath)
    seen: list[bool] = []
    answer = fast.answer

    async def spied(scope: Any, receive: Any, send: Any) -> Any:
        given_back = await answer(scope, receive, send)
        seen.append(given_back is None)
        return given_back

    fast.answer = spied  # type: ignore[method-assign]
    return seen


def _masked(content: bytes) -> bytes:
    return (content.replace(b"full-", b"x-").replace(b"fast-", b"x-").replace(b"acme-ana", b"acme-x")
            .replace(b"acme-vic", b"acme-x"))


def _same(full: httpx.Response, fast: httpx.Response) -> None:
    assert (fast.status_code, _masked(fast.content)) == (full.status_code, _masked(full.content))
    assert [k for k, _ in fast.headers.multi_items()] == [k for k, _ in full.headers.multi_items()]
    varying = {"x-request-id", "content-length"}  # a masked body is shorter; the length is checked with the body
    assert {k: v for k, v in fast.headers.items() if k not in varying} == {
        k: v for k, v in full.headers.items() if k not in varying}
    assert int(fast.headers.get("content-length", len(fast.content))) == len(fast.content)


Send = Callable[[str, str], Awaitable[httpx.Response]]


async def _both(app: Litestar, send: Send) -> tuple[httpx.Response, httpx.Response]:
    """``send(user, tag)`` through the full app for one user, then with the fast path in front for its twin."""
    shim = app.fast_usage  # type: ignore[attr-defined]
    app.fast_usage = None  # type: ignore[attr-defined]
    try:
        a = await send(*FULL)
    finally:
        app.fast_usage = shim  # type: ignore[attr-defined]
    return a, await send(*FAST)


def _post(client: AsyncTestClient[Any], token: str, body: bytes, **headers: str) -> Send:
    """A sender of ``body`` with USER and TAG filled in for each side (TAG also in the headers' values)."""
    async def send(user: str, tag: str) -> httpx.Response:
        return await client.post("/v1/usage", content=body.replace(b"USER", user.encode()).replace(
            b"TAG", tag.encode()), headers={**bearer(token), "Content-Type": "application/json",
                                            **{k: v.replace("TAG", tag) for k, v in headers.items()}})

    return send


async def _recorded(sessionmaker: Any, user: str) -> list[tuple[Any, ...]]:
    """The user's counters, demand signals and change rows, without the user's own ids."""
    async with sessionmaker() as s:
        uid = await s.scalar(text("SELECT user_id FROM users WHERE external_id = :u"), {"u": user})
        counters = (await s.execute(text(
            "SELECT 'counter', feature, period_start, period_end, used FROM ent_usage_counters WHERE user_id = :u "
            "ORDER BY 2, 3"), {"u": uid})).all()
        demand = (await s.execute(text(
            "SELECT 'demand', feature, day, denied_checks, attempts FROM ent_demand_signals WHERE user_id = :u "
            "ORDER BY 2, 3"), {"u": uid})).all()
        changes = (await s.execute(text("SELECT 'changes', count(*) FROM ent_changes WHERE user_id = :u"),
                                   {"u": uid})).all()
        events = (await s.execute(text(
            "SELECT 'event', replace(replace(event_id, 'full-', ''), 'fast-', ''), feature, kind, quantity, "
            "occurred_at, period_start, properties FROM ent_usage_events WHERE user_id = :u ORDER BY 2"),
            {"u": uid})).all()
    return [tuple(r) for r in [*counters, *demand, *changes, *events]]


async def test_common_batches_are_answered_in_front_with_the_full_apps_bytes_and_rows(
    client: AsyncTestClient[Any], app: Litestar, key: str, sessionmaker: Any, clock: FrozenClock,  # noqa: F811
) -> None:
    await client.get("/v1/usage/history", params={"user": "acme-ana", "feature": "reports"},
                     headers=bearer(key))  # the key is known to this process now (the fast path's condition)
    seen = _spy(app)
    yesterday = (clock.now() - timedelta(days=1)).isoformat().encode()
    batches = [
        # new events: one with properties, one in the past, an attempt
        b'{"events":[{"event_id":"TAG-1","user":"USER","feature":"reports","quantity":3,'
        b'"properties":{"source":"test","n":2}},{"event_id":"TAG-2","user":"USER","feature":"reports",'
        b'"occurred_at":"' + yesterday + b'"},{"event_id":"TAG-3","user":"USER","feature":"forecasting",'
        b'"kind":"attempt","quantity":2}]}',
        # the same again: duplicates
        b'{"events":[{"event_id":"TAG-1","user":"USER","feature":"reports","quantity":3,'
        b'"properties":{"source":"test","n":2}},{"event_id":"TAG-2","user":"USER","feature":"reports",'
        b'"occurred_at":"' + yesterday + b'"},{"event_id":"TAG-3","user":"USER","feature":"forecasting",'
        b'"kind":"attempt","quantity":2}]}',
        # new, a duplicate without its time, a conflict, the same id twice in the batch, one differing
        b'{"events":[{"event_id":"TAG-4","user":"USER","feature":"reports","quantity":5},'
        b'{"event_id":"TAG-2","user":"USER","feature":"reports"},'
        b'{"event_id":"TAG-1","user":"USER","feature":"reports","quantity":4},'
        b'{"event_id":"TAG-4","user":"USER","feature":"reports","quantity":5},'
        b'{"event_id":"TAG-4","user":"USER","feature":"reports","quantity":6}],"enforce":false}',
        # no optional field at all
        b'{"events":[{"event_id":"TAG-5","user":"USER","feature":"reports"}]}',
    ]
    for body in batches:
        _same(*await _both(app, _post(client, key, body)))
    assert seen == [True] * len(batches)
    assert await _recorded(sessionmaker, FULL[0]) == await _recorded(sessionmaker, FAST[0])
    assert len(await _recorded(sessionmaker, FAST[0])) > 6  # counters, a demand signal, changes, five events
    # the check sees what the fast path recorded (the change notice reached this process's cache)
    r = await client.get("/v1/entitlements/check", params={"user": "acme-vic", "feature": "reports"},
                         headers=bearer(key))
    assert r.status_code == 200


@pytest.mark.parametrize("body", [
    b'{"events":[{"event_id":"TAG-1","user":"USER","feature":"nope"}]}',
    b'{"events":[{"event_id":"TAG-1","user":"nobody","feature":"reports"}]}',
    b'{"events":[{"event_id":"TAG-1","user":"globex-gert","feature":"reports"}]}',
    b'{"events":[{"event_id":"TAG-1","user":"USER","feature":"reports","occurred_at":"2001-01-01T00:00:00Z"}]}',
    b'{"events":[{"event_id":"TAG-1","user":"USER","feature":"reports","occurred_at":"2999-01-01T00:00:00Z"}]}',
    b'{"events":[{"event_id":"TAG-1","user":"USER","feature":"reports"}],"enforce":true}',
    b'{"events":[{"event_id":"TAG-1","user":"USER","feature":"reports","quantity":0}]}',
    b'{"events":[{"event_id":"TAG-1","user":"USER","feature":"reports","quantity":"1"}]}',
    b'{"events":[{"event_id":"TAG-1","user":"USER","feature":"reports","extra":1}]}',
    b'{"events":[{"event_id":"TAG-1","user":"USER","feature":"reports","kind":"other"}]}',
    b'{"events":[{"event_id":"TAG-1","user":"USER","feature":"reports","occurred_at":"yesterday"}]}',
    b'{"events":[{"event_id":"TAG-1","user":"USER","feature":"reports"}]', b'{"events":[]}', b"", b"null", b"[]",
    b'{"events":[{"event_id":"TAG-\xff","user":"USER","feature":"reports"}]}',
    b'{"events":[{"event_id":"TAG-\xc3\xa9","user":"USER","feature":"reports"}]}',
    b'{"events":' + b"[" * 40 + b"]" * 40 + b"}",
    # patterns (checked here once per batch, not per string): an id ending in a newline, a NUL, a space
    b'{"events":[{"event_id":"TAG-1\\n","user":"USER","feature":"reports"}]}',
    b'{"events":[{"event_id":"TAG-1","user":"USER\\n","feature":"reports"}]}',
    b'{"events":[{"event_id":"TAG-1","user":"USER","feature":"Reports"}]}',
    b'{"events":[{"event_id":"TAG 1","user":"USER","feature":"reports"}]}',
    b'{"events":[{"event_id":"TAG-1","user":"USER","feature":"reports","properties":{"a\\u0000":"b"}}]}',
    b'{"events":[{"event_id":"TAG-1","user":"USER","feature":"reports","properties":{"a":"b\\u0000"}}]}',
    b'{"events":[{"event_id":"TAG-1","user":"USER","feature":"reports","properties":{"a":"\\\\u0000"}}]}',
    b'{"events":[{"event_id":"TAG-1","user":"USER","feature":"reports","properties":{"\xc3\xa9":"\xc3\xa9"}}]}',
    b'{"events":[{"event_id":"TAG-1","user":"USER","feature":"reports","properties":{"":"x"}}]}',
    b'{"events":[' + b",".join(b'{"event_id":"TAG-%d","user":"USER","feature":"reports"}' % i
                               for i in range(1001)) + b"]}",
])
async def test_every_other_answer_is_the_full_apps(client: AsyncTestClient[Any], app: Litestar, key: str,  # noqa: F811
                                                   sessionmaker: Any, body: bytes) -> None:
    await client.get("/v1/usage/history", params={"user": "acme-ana", "feature": "reports"}, headers=bearer(key))
    _same(*await _both(app, _post(client, key, body)))
    assert await _recorded(sessionmaker, FULL[0]) == await _recorded(sessionmaker, FAST[0])


async def test_keys_browsers_session_tokens_and_other_types_go_to_the_app(
    client: AsyncTestClient[Any], app: Litestar, key: str, sessionmaker: Any,  # noqa: F811
) -> None:
    await client.get("/v1/usage/history", params={"user": "acme-ana", "feature": "reports"}, headers=bearer(key))
    seen = _spy(app)
    body = b'{"events":[{"event_id":"TAG-1","user":"USER","feature":"reports"}]}'
    for headers in ({"Idempotency-Key": "TAG-k"}, {"Idempotency-Key": "TAG-k"}, {"Idempotency-Key": "bad \x7f"},
                    {"Origin": "https://app.example"}, {"Content-Type": "text/plain"}):
        _same(*await _both(app, _post(client, key, body.replace(b"TAG-1", b"TAG-" + str(len(seen)).encode()),
                                      **headers)))
    tokens = {u: await session_token(client, key, "acme", u) for u in (FULL[0], FAST[0])}

    async def by_session(user: str, tag: str) -> httpx.Response:
        attempt = b'{"events":[{"event_id":"TAG-s","user":"USER","feature":"reports","kind":"attempt"}]}'
        return await _post(client, tokens[user], attempt)(user, tag)

    _same(*await _both(app, by_session))
    assert seen == [False] * 6
    assert await _recorded(sessionmaker, FULL[0]) == await _recorded(sessionmaker, FAST[0])


async def test_fast_answers_are_counted_in_the_request_metrics(
    client: AsyncTestClient[Any], app: Litestar, key: str,  # noqa: F811
) -> None:
    seen = _spy(app)

    async def served() -> float:
        text = (await client.get("/metrics", headers=bearer(key))).text
        line = next((ln for ln in text.splitlines() if ln.startswith("commerce_requests_total{")
                     and 'path="/v1/usage"' in ln and 'status_code="200"' in ln), " 0")
        return float(line.rsplit(" ", 1)[1])

    body = b'{"events":[{"event_id":"TAG-1","user":"USER","feature":"reports"}]}'
    await _post(client, key, body)("acme-ana", "first")  # through the app: the rate limit's lease, the catalog
    before = await served()
    r = await _post(client, key, body)("acme-ana", "second")
    assert r.status_code == 200 and seen[-1]
    assert await served() == before + 1
