"""Webhook endpoints over HTTP: register, list, update, disable/enable, rotate, deliveries, replay, catalogue."""

from __future__ import annotations

import asyncio
import base64
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from app.asgi import create_app
from app.clock import FrozenClock
from app.settings import Settings
from app.webhooks import events
from app.webhooks.dispatcher import Dispatcher
from tests.api.test_auth import assert_problem
from tests.factories import bearer, emit_test_event, make_key, make_tenant
from tests.support.receiver import Receiver, Reply

BASE = "/v1/webhook-endpoints"
DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture
async def key(sessionmaker: Any, clock: FrozenClock) -> str:
    return await make_key(sessionmaker, clock)


async def create(client: AsyncTestClient[Any], key: str, url: str, **body: Any) -> dict[str, Any]:
    r = await client.post(BASE, json={"url": url, **body}, headers=bearer(key))
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_register_shows_the_secret_once_and_reads_never_do(client: AsyncTestClient[Any], key: str) -> None:
    created = await create(client, key, "https://hooks.example.com/commerce", event_types=["provision.requested"],
                           description="billing backend")
    assert created["secret"].startswith("whsec_") and created["status"] == "enabled"
    assert created["event_types"] == ["provision.requested"]
    got = (await client.get(f"{BASE}/{created['id']}", headers=bearer(key))).json()
    listed = (await client.get(BASE, headers=bearer(key))).json()
    assert "secret" not in got and created["secret"] not in str(listed)
    assert [e["id"] for e in listed["data"]] == [created["id"]]


async def test_list_is_paginated(client: AsyncTestClient[Any], key: str) -> None:
    ids = [(await create(client, key, f"https://h{i}.example.com/x"))["id"] for i in range(3)]
    first = (await client.get(f"{BASE}?limit=2", headers=bearer(key))).json()
    second = (await client.get(f"{BASE}?limit=2&cursor={first['next_cursor']}", headers=bearer(key))).json()
    assert [e["id"] for e in first["data"] + second["data"]] == ids and second["next_cursor"] is None


@pytest.mark.parametrize("body,field", [
    ({"url": "ftp://example.com/x"}, "url"),
    ({"url": "https://user:pw@example.com/x"}, "url"),
    ({"url": "http://10.0.0.1/x"}, "url"),
    ({"url": "https://example.com/x", "event_types": ["no.such_event"]}, "event_types"),
])
async def test_unacceptable_endpoints_are_422(client: AsyncTestClient[Any], key: str, body: dict[str, Any],
                                               field: str) -> None:
    problem = assert_problem(await client.post(BASE, json=body, headers=bearer(key)), 422)
    assert problem["field"] == field


@pytest.mark.parametrize("body", [
    {"url": "not a url"}, {"url": "https://e.com/\u0000"}, {"url": "https://e.com/", "event_types": []},
    {"url": "https://e.com/", "event_types": ["Order Paid"]}, {"url": "https://e.com/", "extra": 1},
    {"url": "https://e.com/" + "a" * 3000},
])
async def test_malformed_bodies_are_400(client: AsyncTestClient[Any], key: str, body: dict[str, Any]) -> None:
    assert_problem(await client.post(BASE, json=body, headers=bearer(key)), 400)


async def test_scopes_and_vendor_only(client: AsyncTestClient[Any], sessionmaker: Any, clock: FrozenClock,
                                      key: str) -> None:
    reader = await make_key(sessionmaker, clock, scopes="webhooks:read")
    assert (await client.get(BASE, headers=bearer(reader))).status_code == 200
    assert_problem(await client.post(BASE, json={"url": "https://e.com/"}, headers=bearer(reader)), 403)
    tenant = await make_tenant(client, key, "acme")
    assert_problem(await client.get(BASE, headers=bearer(tenant.admin_token)), 403)


async def test_unknown_and_malformed_ids(client: AsyncTestClient[Any], key: str) -> None:
    assert_problem(await client.get(f"{BASE}/whe_{'0' * 26}", headers=bearer(key)), 404)
    assert_problem(await client.get(f"{BASE}/nope", headers=bearer(key)), 400)


async def test_update_disable_enable_and_rotate(client: AsyncTestClient[Any], key: str) -> None:
    e = await create(client, key, "https://a.example.com/x")
    r = await client.patch(f"{BASE}/{e['id']}", json={"url": "https://b.example.com/y", "event_types": ["order.*"]},
                           headers=bearer(key))
    assert r.status_code == 200 and r.json()["url"] == "https://b.example.com/y"
    assert r.json()["event_types"] == ["order.*"]
    assert_problem(await client.patch(f"{BASE}/{e['id']}", json={"url": "http://169.254.169.254/"},
                                      headers=bearer(key)), 422)
    off = (await client.post(f"{BASE}/{e['id']}/disable", headers=bearer(key))).json()
    assert off["status"] == "disabled" and off["disabled_reason"] == "manual"
    on = (await client.post(f"{BASE}/{e['id']}/enable", headers=bearer(key))).json()
    assert on["status"] == "enabled" and on["disabled_reason"] is None
    rotated = (await client.post(f"{BASE}/{e['id']}/rotate-secret", json={"overlap_seconds": 600},
                                 headers=bearer(key))).json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != e["secret"]
    assert rotated["previous_secret_expires_at"] is not None
    assert_problem(await client.post(f"{BASE}/{e['id']}/rotate-secret", json={"overlap_seconds": -1},
                                     headers=bearer(key)), 400)
    audit = (await client.get("/v1/audit-log", headers=bearer(key))).json()
    actions = {a["action"] for a in audit["data"]}
    assert {"webhook_endpoint.created", "webhook_endpoint.updated", "webhook_endpoint.disabled",
            "webhook_endpoint.enabled", "webhook_endpoint.secret_rotated"} <= actions


async def test_delivery_log_and_replays(client: AsyncTestClient[Any], key: str, sessionmaker: Any,
                                        settings: Settings, clock: FrozenClock) -> None:
    settings = msgspec.structs.replace(settings, webhook_retry_schedule=(10,), webhook_retry_jitter=0.0)
    status = {"code": 500}
    async with Receiver(lambda _r: Reply(status=status["code"], body=b"nope")) as rx:
        e = await create(client, key, rx.url)
        event_id = await emit_test_event(sessionmaker, clock)
        d = Dispatcher(sessionmaker, settings=settings, clock=clock)
        await d.run_once()
        clock.advance(timedelta(seconds=10))
        await d.run_once()
        page = (await client.get(f"{BASE}/{e['id']}/deliveries?status=failed", headers=bearer(key))).json()
        [delivery] = page["data"]
        assert delivery["event_id"] == event_id and delivery["attempt_count"] == 2
        detail = (await client.get(f"{BASE}/{e['id']}/deliveries/{delivery['id']}", headers=bearer(key))).json()
        assert [(a["number"], a["outcome"], a["response_status"], a["response_body"]) for a in detail["attempts"]] \
            == [(1, "http_error", 500, "nope"), (2, "http_error", 500, "nope")]

        status["code"] = 200
        r = await client.post(f"{BASE}/{e['id']}/replay-failed", json={"since": "2000-01-01T00:00:00Z"},
                              headers=bearer(key))
        assert r.status_code == 202 and r.json() == {"replayed": 1}
        await d.run_once()
        assert len(rx.requests) == 3
        r = await client.post(f"{BASE}/{e['id']}/replay", json={"event_id": event_id}, headers=bearer(key))
        assert r.status_code == 202 and r.json()["status"] == "pending" and r.json()["id"] == delivery["id"]
        await d.run_once()
        await d.aclose()
    assert [r.headers["commerce-event-id"] for r in rx.requests] == [event_id] * 4
    assert (await client.get(f"{BASE}/{e['id']}/deliveries/{delivery['id']}", headers=bearer(key))).json()[
        "status"] == "succeeded"
    future = await client.post(f"{BASE}/{e['id']}/replay-failed", json={"since": "2999-01-01T00:00:00Z"},
                               headers=bearer(key))
    assert future.json() == {"replayed": 0}
    assert_problem(await client.post(f"{BASE}/{e['id']}/replay", json={"event_id": f"evt_{'0' * 26}"},
                                     headers=bearer(key)), 404)
    assert_problem(await client.post(f"{BASE}/{e['id']}/replay-failed", json={"since": "2020-01-01T00:00:00"},
                                     headers=bearer(key)), 400)
    assert_problem(await client.get(f"{BASE}/{e['id']}/deliveries/whd_{'0' * 26}", headers=bearer(key)), 404)


async def test_replay_to_a_disabled_endpoint_is_409(client: AsyncTestClient[Any], key: str, sessionmaker: Any,
                                                     clock: FrozenClock) -> None:
    e = await create(client, key, "https://a.example.com/x")
    event_id = await emit_test_event(sessionmaker, clock)
    await client.post(f"{BASE}/{e['id']}/disable", headers=bearer(key))
    assert_problem(await client.post(f"{BASE}/{e['id']}/replay", json={"event_id": event_id},
                                     headers=bearer(key)), 409)


async def test_event_catalogue_is_served_documented_and_in_openapi(client: AsyncTestClient[Any], key: str) -> None:
    served = (await client.get("/v1/webhook-event-types", headers=bearer(key))).json()
    types = {(e["type"], e["version"]) for e in served}
    assert ("provision.requested", 1) in types and ("webhook_endpoint.disabled", 1) in types
    provision = next(e for e in served if e["type"] == "provision.requested")
    assert "items" in str(provision["payload_schema"])
    spec = (await client.get("/schema/openapi.json")).json()
    assert {f"{t}@v{v}" for t, v in types} == set(spec["webhooks"])
    assert "event.ProvisionRequested" in spec["components"]["schemas"]
    doc = (DOCS / "webhooks.md").read_text()
    for spec_ in events.catalogue():
        assert f"`{spec_.type}`" in doc, f"docs/webhooks.md does not document {spec_.type}"


@pytest.mark.parametrize("raw", [b"a\x00b", b"whe_short", b"../../etc"])
async def test_forged_cursors_are_400(client: AsyncTestClient[Any], key: str, raw: bytes) -> None:
    e = await create(client, key, "https://a.example.com/x")
    cursor = base64.urlsafe_b64encode(raw).decode()
    assert_problem(await client.get(f"{BASE}?cursor={cursor}", headers=bearer(key)), 400)
    assert_problem(await client.get(f"{BASE}/{e['id']}/deliveries?cursor={cursor}", headers=bearer(key)), 400)


@pytest.mark.parametrize("since", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"])
async def test_out_of_range_times_are_400(client: AsyncTestClient[Any], key: str, since: str) -> None:
    e = await create(client, key, "https://a.example.com/x")
    assert_problem(await client.post(f"{BASE}/{e['id']}/replay-failed", json={"since": since},
                                     headers=bearer(key)), 400)


async def test_the_app_runs_a_dispatcher_unless_disabled(settings: Settings, clock: FrozenClock,
                                                         sessionmaker: Any) -> None:
    on = msgspec.structs.replace(settings, dispatcher="on", webhook_poll_seconds=0.02)
    key = await make_key(sessionmaker, clock)
    async with Receiver() as rx, AsyncTestClient(app=create_app(on, clock=clock)) as c:
        await create(c, key, rx.url)
        await emit_test_event(sessionmaker, clock)
        for _ in range(300):
            if rx.requests:
                break
            await asyncio.sleep(0.01)
    assert len(rx.requests) == 1
