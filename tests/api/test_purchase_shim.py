"""The purchase's fast paths in front of the app (billing.hotpath, D96): the common quote and order from a known API
key are answered before routing, and every answer (status, body, headers) is the one the full app gives; whatever
they cannot answer exactly (bad input, replays, idempotency conflicts, refusals, browsers, session tokens) goes to
the app with its body intact.

Two requests of one pair cannot be the same request (a quote is made once, an order places its quote once), so each
pair is made twice in the same state: once by the full app (the fast path set aside) and once with it in front,
for twin users of one account; ids made per request and the twins' names are masked before the bytes compare."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.idempotency import lock_id
from billing.hotpath import PurchaseFastPath
from tests.api.test_purchase import budget, key  # noqa: F401  (fixtures)
from tests.factories import Tenant, bearer, make_tenant, make_user

_ID = re.compile(rb"\b[a-z]{2,6}_[0-9a-z]{26}\b")


def _spy(app: Litestar) -> list[bool]:
    """What the fast path decided for each request it saw (True: it answered)."""
    fast = app.fast_purchase  # type: ignore[attr-defined]
    assert isinstance(fast, PurchaseFastPath)
    seen: list[bool] = []
    answer = fast.answer

    async def spied(scope: Any, receive: Any, send: Any) -> Any:
        given_back = await answer(scope, receive, send)
        seen.append(given_back is None)
        return given_back

    fast.answer = spied  # type: ignore[method-assign]
    return seen


def _masked(content: bytes) -> bytes:
    return _ID.sub(lambda m: m.group(0).split(b"_")[0] + b"_*", content).replace(b"-twin", b"-user")


def _same(full: httpx.Response, fast: httpx.Response) -> None:
    assert (fast.status_code, _masked(fast.content)) == (full.status_code, _masked(full.content))
    assert [k for k, _ in fast.headers.multi_items()] == [k for k, _ in full.headers.multi_items()]
    varying = {"x-request-id", "content-length"}  # a masked id is shorter; the length is checked with the body
    assert {k: v for k, v in fast.headers.items() if k not in varying} == {
        k: v for k, v in full.headers.items() if k not in varying}
    assert int(fast.headers.get("content-length", len(fast.content))) == len(fast.content)


Send = Callable[[str], Awaitable[httpx.Response]]


async def _both(app: Litestar, full: Send, fast: Send) -> tuple[httpx.Response, httpx.Response]:
    """``full(user)`` through the full app, then ``fast(twin)`` with the fast path in front."""
    shim = app.fast_purchase  # type: ignore[attr-defined]
    app.fast_purchase = None  # type: ignore[attr-defined]
    try:
        a = await full("acme-user")
    finally:
        app.fast_purchase = shim  # type: ignore[attr-defined]
    return a, await fast("acme-twin")


@pytest.fixture
async def acme(client: AsyncTestClient[Any], key: str) -> Tenant:  # noqa: F811
    tenant = await make_tenant(client, key, "acme")
    await make_user(client, key, "acme", "acme-twin", roles=["analyst"])
    await budget(client, key, 100_000)  # also makes the key known to this process (the fast path's condition)
    return tenant


async def _quote(client: AsyncTestClient[Any], token: str, user: str, *modules: str, **extra: Any) -> httpx.Response:
    return await client.post("/v1/quotes", json={"user": user, "items": [{"module": m} for m in modules], **extra},
                             headers=bearer(token))


async def _order(client: AsyncTestClient[Any], token: str, quote_id: str, idem: str | None,
                 **extra: Any) -> httpx.Response:
    headers = {**bearer(token), **({"Idempotency-Key": idem} if idem is not None else {})}
    return await client.post("/v1/orders", json={"quote_id": quote_id, **extra}, headers=headers)


async def test_a_common_purchase_is_answered_in_front_with_the_full_apps_bytes(
    client: AsyncTestClient[Any], app: Litestar, key: str, acme: Tenant,  # noqa: F811
) -> None:
    seen = _spy(app)
    quotes = await _both(app, lambda u: _quote(client, key, u, "reports_basic"),
                         lambda u: _quote(client, key, u, "reports_basic"))
    _same(*quotes)
    assert seen == [True] and quotes[1].status_code == 201
    ids = [q.json()["id"] for q in quotes]
    orders = await _both(app, lambda u: _order(client, key, ids[0], "k-user", reason="for the Q4 report"),
                         lambda u: _order(client, key, ids[1], "k-twin", reason="for the Q4 report"))
    _same(*orders)
    assert seen == [True, True] and orders[1].json()["state"] == "fulfilled"
    # replays (the stored answers: the fast path's is the full app's), reuse with another body, no key, bad key
    for full, fast in [
        (lambda u: _order(client, key, ids[0], "k-user", reason="for the Q4 report"),
         lambda u: _order(client, key, ids[1], "k-twin", reason="for the Q4 report")),
        (lambda u: _order(client, key, ids[0], "k-user"), lambda u: _order(client, key, ids[1], "k-twin")),
        (lambda u: _order(client, key, ids[0], None), lambda u: _order(client, key, ids[1], None)),
        (lambda u: _order(client, key, ids[0], "bad key \x7f"), lambda u: _order(client, key, ids[1], "bad key \x7f")),
        (lambda u: _order(client, key, ids[0], "k2-user"), lambda u: _order(client, key, ids[1], "k2-twin")),
    ]:
        _same(*await _both(app, full, fast))
    assert seen[2:] == [False] * 5


async def test_an_order_whose_key_is_in_flight_gets_the_full_apps_409(
    client: AsyncTestClient[Any], app: Litestar, key: str, acme: Tenant, database_url: str,  # noqa: F811
) -> None:
    quotes = [(await _quote(client, key, u, "reports_basic")).json()["id"] for u in ("acme-user", "acme-twin")]
    from app.auth import remembered
    from app.keys import token_sha256

    principal = remembered(app.state, token_sha256(key))
    assert principal is not None
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:  # another request holds both keys
        for k in ("k-user", "k-twin"):
            await conn.execute("SELECT pg_advisory_lock($1)", lock_id(principal.actor, k))
        seen = _spy(app)
        _same(*await _both(app, lambda u: _order(client, key, quotes[0], "k-user"),
                           lambda u: _order(client, key, quotes[1], "k-twin")))
        assert seen == [False]
    finally:
        await conn.close()
    orders = await _both(app, lambda u: _order(client, key, quotes[0], "k-user"),
                         lambda u: _order(client, key, quotes[1], "k-twin"))
    _same(*orders)
    assert orders[1].status_code == 201


@pytest.mark.parametrize("body", [
    b'{"user":"USER","items":[{"module":"reports_basic"}]', b'{"user":"USER","items":[]}',
    b'{"user":"USER","items":[{"module":"reports_basic","quantity":"1"}]}',
    b'{"user":"USER","items":[{"module":"reports_basic"}],"extra":1}', b"", b"null", b"[]",
    b'{"user":"nobody","items":[{"module":"reports_basic"}]}', b'{"user":"USER","items":[{"module":"nope"}]}',
    b'{"user":"USER","items":[{"module":"reports_basic","quantity":100001}]}', b'{"user":"USER","items":'
    b'[{"module":"reports_basic"},{"module":"reports_basic"}]}', b'{"user":"USER","items":[{"module":"reports_'
    b'basic"}],"include_requirements":true}', b'{"user":"USER","items":[{"module":"\xff"}]}',
])
async def test_every_quote_answer_is_the_full_apps(client: AsyncTestClient[Any], app: Litestar, key: str,  # noqa: F811
                                                   acme: Tenant, body: bytes) -> None:
    async def send(user: str) -> httpx.Response:
        return await client.post("/v1/quotes", content=body.replace(b"USER", user.encode()),
                                 headers={**bearer(key), "Content-Type": "application/json"})

    _same(*await _both(app, send, send))


@pytest.mark.parametrize("body", [
    b'{"quote_id":"quo_00000000000000000000000000"}', b'{"quote_id":"nope"}', b'{"quote_id":1}', b"{}", b"",
    b'{"quote_id":"QUOTE","reason":""}', b'{"quote_id":"QUOTE","extra":true}', b'{"quote_id":"QUOTE"',
])
async def test_every_order_answer_is_the_full_apps(client: AsyncTestClient[Any], app: Litestar, key: str,  # noqa: F811
                                                   acme: Tenant, body: bytes) -> None:
    quotes = {u: (await _quote(client, key, u, "reports_basic")).json()["id"] for u in ("acme-user", "acme-twin")}

    async def send(user: str) -> httpx.Response:
        return await client.post("/v1/orders", content=body.replace(b"QUOTE", quotes[user].encode()),
                                 headers={**bearer(key), "Content-Type": "application/json",
                                          "Idempotency-Key": f"k-{user}"})

    _same(*await _both(app, send, send))


async def test_refusals_browsers_and_session_tokens_go_to_the_app(
    client: AsyncTestClient[Any], app: Litestar, key: str, acme: Tenant,  # noqa: F811
) -> None:
    seen = _spy(app)
    # over the auto-approval limit: the quote says so and the order waits for an approver (the ordinary path)
    r = await client.put("/v1/accounts/acme/guardrails", json={"auto_approve_limit_minor": 100},
                         headers=bearer(acme.admin_token))
    assert r.status_code == 200, r.text
    quotes = await _both(app, lambda u: _quote(client, key, u, "reports_basic"),
                         lambda u: _quote(client, key, u, "reports_basic"))
    _same(*quotes)
    ids = [q.json()["id"] for q in quotes]
    _same(*await _both(app, lambda u: _order(client, key, ids[0], "r-user"),
                       lambda u: _order(client, key, ids[1], "r-twin")))
    assert seen == [True, False]  # the quote is priced in front; the order waits for an approver: the app
    # a module the buyer's role may not buy: the quote says blocked, and an order of a quote made before the rule
    # is refused (the guardrails are checked again: a problem answer)
    pre = await _both(app, lambda u: _quote(client, key, u, "comments"), lambda u: _quote(client, key, u, "comments"))
    r = await client.put("/v1/accounts/acme/guardrails", json={
        "auto_approve_limit_minor": 10**9, "role_rules": [{"role": "analyst", "deny_modules": ["comments"]}]},
                         headers=bearer(acme.admin_token))
    assert r.status_code == 200, r.text
    refused = await _both(app, lambda u: _quote(client, key, u, "comments"),
                          lambda u: _quote(client, key, u, "comments"))
    _same(*refused)
    assert refused[1].json()["decision"]["outcome"] == "blocked"
    ids = [q.json()["id"] for q in pre]
    refused = await _both(app, lambda u: _order(client, key, ids[0], "d-user"),
                          lambda u: _order(client, key, ids[1], "d-twin"))
    _same(*refused)
    assert refused[1].status_code >= 400 and seen[2:] == [True, True, False], refused[1].text
    r = await client.put("/v1/accounts/acme/guardrails", json={"auto_approve_limit_minor": 10**9},
                         headers=bearer(acme.admin_token))
    # a browser, a session token, another content type: the full app, which answers as always
    for headers in ({**bearer(key), "Origin": "https://app.example"}, bearer(acme.user_token),
                    {**bearer(key), "Content-Type": "text/plain"}):
        body = json.dumps({"user": acme.user, "items": [{"module": "reports_basic"}]})
        r = await client.post("/v1/quotes", content=body, headers=headers)
        assert r.status_code == 201, r.text
    assert seen[-3:] == [False, False, False]


async def test_fast_answers_are_counted_in_the_request_metrics(
    client: AsyncTestClient[Any], app: Litestar, key: str, acme: Tenant,  # noqa: F811
) -> None:
    seen = _spy(app)

    async def served(path: str) -> float:
        text = (await client.get("/metrics", headers=bearer(key))).text
        line = next((ln for ln in text.splitlines() if ln.startswith("commerce_requests_total{")
                     and f'path="{path}"' in ln and 'status_code="201"' in ln), " 0")
        return float(line.rsplit(" ", 1)[1])

    before = (await served("/v1/quotes"), await served("/v1/orders"))
    q = await _quote(client, key, "acme-user", "reports_basic")
    o = await _order(client, key, q.json()["id"], "m-1")
    assert o.status_code == 201 and seen == [True, True]
    assert (await served("/v1/quotes"), await served("/v1/orders")) == (before[0] + 1, before[1] + 1)
