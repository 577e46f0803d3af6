"""The check's fast path (entitlements.hotpath, D92): it answers warm checks of known API keys, and every answer
(body, status, headers) is the one the full app gives; whatever it cannot answer exactly goes to the app."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.clock import FrozenClock
from entitlements.hotpath import CheckFastPath, parse_query
from tests.api.test_catalog import seed_demo
from tests.api.test_entitlements import grant
from tests.factories import bearer, make_key, session_token

CHECK = "/v1/entitlements/check"


@pytest.fixture
async def key(client: AsyncTestClient[Any], sessionmaker: Any, clock: FrozenClock) -> str:
    k = await make_key(sessionmaker, clock)
    await seed_demo(client, k)
    await grant(client, k, "acme", module="reports_pro", user="acme-ana", source_ref="deal-1")
    return k


def _spy(app: Litestar) -> list[bool]:
    """Record what the fast path decided for each request it saw (True: it answered)."""
    fast = app.fast_check  # type: ignore[attr-defined]
    assert isinstance(fast, CheckFastPath)
    seen: list[bool] = []
    answer = fast.answer

    async def spied(scope: Any, send: Any) -> bool:
        seen.append(await answer(scope, send))
        return seen[-1]

    fast.answer = spied  # type: ignore[method-assign]
    return seen


async def _both(client: AsyncTestClient[Any], app: Litestar, url: str, headers: dict[str, str],
                ) -> tuple[httpx.Response, httpx.Response]:
    """The same request through the full app and then with the fast path in front."""
    fast = app.fast_check  # type: ignore[attr-defined]
    app.fast_check = None  # type: ignore[attr-defined]
    try:
        full = await client.get(url, headers=headers)
    finally:
        app.fast_check = fast  # type: ignore[attr-defined]
    return full, await client.get(url, headers=headers)


def _same(full: httpx.Response, fast: httpx.Response) -> None:
    assert (fast.status_code, fast.content) == (full.status_code, full.content)
    assert [k for k, _ in fast.headers.multi_items()] == [k for k, _ in full.headers.multi_items()]
    assert {k: v for k, v in fast.headers.items() if k != "x-request-id"} == {
        k: v for k, v in full.headers.items() if k != "x-request-id"}


@pytest.mark.parametrize("query", [
    "user=acme-ana&feature=reports", "user=acme-ana&feature=reports&quantity=1",
    "feature=pdf_export&user=acme-ana&quantity=7", "user=acme-vic&feature=pdf_export",  # denied: offer, signal
    "user=acme-ana&feature=scheduled_reports&quantity=999999999", "user=acme-ana&feature=nope",
    "user=nobody&feature=reports", "user=acme-ana&feature=reports&quantity=0",
    "user=acme-ana&feature=reports&quantity=1000000001", "user=acme-ana&feature=reports&quantity=01",
    "user=acme-ana&feature=reports&quantity=%31", "user=acme%2Dana&feature=reports",
    "user=acme-ana&feature=reports&user=acme-vic", "user=acme-ana&feature=reports&extra=1",
    "user=acme-ana&feature=Reports", "user=acme+ana&feature=reports", "user=acme-ana", "user=&feature=reports",
    "user=acme-ana&&feature=reports", "",
])
async def test_every_answer_is_the_full_apps(client: AsyncTestClient[Any], app: Litestar, key: str,
                                            query: str) -> None:
    await client.get(f"{CHECK}?user=acme-ana&feature=reports", headers=bearer(key))  # warm key and snapshot
    full, fast = await _both(client, app, f"{CHECK}?{query}", bearer(key))
    _same(full, fast)


async def test_a_warm_check_is_answered_in_front_and_the_rest_by_the_app(
    client: AsyncTestClient[Any], app: Litestar, key: str, sessionmaker: Any, clock: FrozenClock,
) -> None:
    seen = _spy(app)
    url = f"{CHECK}?user=acme-ana&feature=pdf_export"
    first = await client.get(url, headers=bearer(key))  # a new key's token is verified by the app first
    again = await client.get(url, headers=bearer(key))
    assert seen == [False, True] and again.content == first.content and again.json()["allowed"] is True
    assert again.headers["x-request-id"].startswith("req_") and again.headers["x-request-id"] != \
        first.headers["x-request-id"]
    mine = await client.get(url, headers={**bearer(key), "X-Request-Id": "trace-1"})
    assert mine.headers["x-request-id"] == "trace-1" and seen[-1] is True
    # browsers (CORS), session tokens, and keys lacking the scope go the full way
    await client.get(url, headers={**bearer(key), "Origin": "https://app.example"})
    token = await session_token(client, key, "acme", "acme-ana")
    assert (await client.get(url, headers=bearer(token))).status_code == 200
    other = await make_key(sessionmaker, clock, scopes="catalog:read")
    for _ in range(2):
        r = await client.get(url, headers=bearer(other))
        assert r.status_code == 403 and r.headers["content-type"].startswith("application/problem+json")
    assert seen[-4:] == [False, False, False, False]


async def test_fast_answers_are_counted_in_the_request_metrics(
    client: AsyncTestClient[Any], app: Litestar, key: str,
) -> None:
    url = f"{CHECK}?user=acme-ana&feature=reports"
    seen = _spy(app)

    async def served() -> float:
        text = (await client.get("/metrics", headers=bearer(key))).text
        line = next(ln for ln in text.splitlines() if ln.startswith("commerce_requests_total{")
                    and f'path="{CHECK}"' in ln and 'status_code="200"' in ln)
        return float(line.rsplit(" ", 1)[1])

    await client.get(url, headers=bearer(key))
    before = await served()
    for _ in range(5):
        assert (await client.get(url, headers=bearer(key))).status_code == 200
    assert await served() == before + 5 and seen[-5:] == [True] * 5


def test_only_plain_queries_are_parsed_here() -> None:
    assert parse_query(b"user=a&feature=b") == ("a", "b", 1)
    assert parse_query(b"quantity=12&feature=x.y_z-1&user=U:1@x/y.z-") == ("U:1@x/y.z-", "x.y_z-1", 12)
    for bad in (b"", b"user=a", b"user=a&feature=b&quantity=0", b"user=a&feature=b&quantity=1000000001",
                b"user=a+b&feature=b", b"user=a%20&feature=b", b"user=a&feature=B", b"user=a&feature=b&x=1",
                b"user=a&user=a&feature=b", b"user=a&feature=b&", b"user=-a&feature=b", b"user=" + b"a" * 201 +
                b"&feature=b", b"user=a&feature=" + b"b" * 61):
        assert parse_query(bad) is None, bad


async def test_a_merged_batch_stores_each_event_as_sent(client: AsyncTestClient[Any], key: str,
                                                       sessionmaker: Any, clock: FrozenClock) -> None:
    """The batch travels to PostgreSQL as one JSON text: ids, times, quantities and properties arrive intact."""
    from sqlalchemy import text

    at = (clock.now() - timedelta(hours=5, microseconds=123457)).isoformat()
    events = [{"event_id": "p-1", "user": "acme-ana", "feature": "reports", "quantity": 3, "occurred_at": at,
               "properties": {"ré\"s\\u": "ünï\ncode \"q\"", "n": 2**53, "b": False, "z": None}},
              {"event_id": "p-2:x@y/z+=", "user": "acme-ana", "feature": "reports"},
              {"event_id": "p-3", "user": "acme-ana", "feature": "forecasting", "kind": "attempt", "properties": {}}]
    r = await client.post("/v1/usage", json={"events": events}, headers=bearer(key))
    assert r.status_code == 200 and r.json()["accepted"] == 3, r.text
    async with sessionmaker() as s:
        rows = {e: (q, k, o, p) for e, q, k, o, p in (await s.execute(text(
            "SELECT event_id, quantity, kind, occurred_at, properties FROM ent_usage_events ORDER BY event_id"))).all()}
    assert rows["p-1"][:2] == (3, "usage") and rows["p-1"][2].isoformat() == \
        (clock.now() - timedelta(hours=5, microseconds=123457)).isoformat()
    assert rows["p-1"][3] == events[0]["properties"]
    assert rows["p-2:x@y/z+="][0] == 1 and rows["p-2:x@y/z+="][3] is None and rows["p-2:x@y/z+="][2] == clock.now()
    assert rows["p-3"][1:] == ("attempt", clock.now(), None)  # empty properties are stored as none


async def test_a_merged_batch_logs_and_tells_the_changes_of_the_usage_it_added(
    client: AsyncTestClient[Any], key: str, sessionmaker: Any,
) -> None:
    """Per user, the whole account past 20 users, nothing for a replay: in the merge statement itself."""
    from sqlalchemy import text

    async def changes() -> list[tuple[str, str | None]]:
        async with sessionmaker() as s:
            return [(a, u) for a, u in (await s.execute(text(
                "SELECT a.external_id, u.external_id FROM ent_changes c JOIN accounts a USING (account_id) "
                "LEFT JOIN users u ON u.account_id = c.account_id AND u.user_id = c.user_id ORDER BY c.seq")))]

    before = len(await changes())
    two = [{"event_id": f"c-{i}", "user": u, "feature": "reports"} for i, u in enumerate(["acme-ana", "acme-vic"])]
    two.append({"event_id": "c-try", "user": "acme-alice", "feature": "reports", "kind": "attempt"})
    assert (await client.post("/v1/usage", json={"events": two}, headers=bearer(key))).json()["accepted"] == 3
    assert sorted((await changes())[before:], key=str) == [("acme", "acme-ana"), ("acme", "acme-vic")]
    assert (await client.post("/v1/usage", json={"events": two}, headers=bearer(key))).json()["duplicates"] == 3
    assert len(await changes()) == before + 2  # a replay changes nothing
    for i in range(21):
        r = await client.post("/v1/accounts/acme/users", json={"external_id": f"many-{i}"}, headers=bearer(key))
        assert r.status_code in (200, 201), r.text
    wide = [{"event_id": f"w-{i}", "user": f"many-{i}", "feature": "reports"} for i in range(21)]
    assert (await client.post("/v1/usage", json={"events": wide}, headers=bearer(key))).json()["accepted"] == 21
    assert (await changes())[before + 2:] == [("acme", None)]
