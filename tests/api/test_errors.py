"""Every error is an RFC 9457 problem: malformed JSON, wrong types, unknown enums, big bodies, 404/405, 500."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import get
from litestar.testing import AsyncTestClient

from app.clock import FrozenClock
from app.errors import Conflict, Forbidden, NotFound, PaymentFailed, Unprocessable, UpstreamUnavailable
from app.settings import Settings
from tests.api.test_auth import assert_problem
from tests.factories import bearer, make_key
from tests.support.apps import commerce_app


@pytest.fixture
async def key(sessionmaker: Any, clock: FrozenClock) -> str:
    return await make_key(sessionmaker, clock)


@pytest.mark.parametrize("body", [b"{not json", b"[]", b"null", b'{"external_id": 5, "name": "x"}',
                                  b'{"external_id": "a", "name": "x", "discount_bps": -1}',
                                  b'{"external_id": "a", "name": "x", "discount_bps": 1.5}',
                                  b'{"external_id": "a\\u0000b", "name": "x"}',
                                  b'{"external_id": "a", "name": "' + b"x" * 5000 + b'"}',
                                  b'{"external_id": "a", "name": "x", "segment": "Not A Slug"}'])
async def test_malformed_or_invalid_bodies_are_400_problems(client: AsyncTestClient[Any], key: str,
                                                            body: bytes) -> None:
    r = await client.post("/v1/accounts", content=body,
                          headers={**bearer(key), "content-type": "application/json"})
    problem = assert_problem(r, 400)
    assert "Traceback" not in r.text
    assert problem["code"] in {"validation_failed", "malformed_body", "bad_request"}


async def test_validation_problem_names_the_field(client: AsyncTestClient[Any], key: str) -> None:
    r = await client.post("/v1/accounts", json={"external_id": "a", "name": "x", "discount_bps": 20000},
                          headers=bearer(key))
    body = assert_problem(r, 400, "validation_failed")
    assert any("discount_bps" in e["field"] for e in body["errors"])


async def test_oversized_body_is_413_problem(client: AsyncTestClient[Any], key: str, settings: Settings) -> None:
    big = b'{"external_id": "a", "name": "' + b"x" * (settings.max_body_bytes + 10) + b'"}'
    r = await client.post("/v1/accounts", content=big, headers={**bearer(key), "content-type": "application/json"})
    assert_problem(r, 413)


async def test_unknown_route_and_method_are_problems(client: AsyncTestClient[Any], key: str) -> None:
    assert_problem(await client.get("/v1/nothing-here", headers=bearer(key)), 404)
    assert_problem(await client.delete("/v1/accounts", headers=bearer(key)), 405)


@pytest.mark.parametrize("exc,status", [
    (NotFound("gone"), 404), (Forbidden("no"), 403), (Conflict("busy"), 409), (Unprocessable("bad"), 422),
    (PaymentFailed("declined", decline_code="insufficient_funds"), 402), (UpstreamUnavailable("down"), 503),
    (RuntimeError("secret internals"), 500),
])
async def test_each_error_class_maps_to_its_problem(
    settings: Settings, clock: FrozenClock, sessionmaker: Any, exc: Exception, status: int,
) -> None:
    @get("/v1/test-raise", opt={"scope": "accounts:read"})
    async def boom() -> None:
        raise exc

    key = await make_key(sessionmaker, clock)
    with commerce_app(settings, clock=clock, extra_route_handlers=[boom]) as app:
        async with AsyncTestClient(app=app) as c:
            r = await c.get("/v1/test-raise", headers=bearer(key))
    body = assert_problem(r, status)
    assert "secret internals" not in r.text and "Traceback" not in r.text
    if status == 402:
        assert body["decline_code"] == "insufficient_funds"
