"""JSON bodies are decoded strictly: malformed bytes, invalid UTF-8 and deep nesting are 400 problems (never a
500 or a traceback), integers must be JSON integers; query parameters stay parsed from text but bounded."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select

from app.clock import FrozenClock
from app.http import MAX_JSON_DEPTH, json_depth
from billing.models import Budget
from entitlements.models import Grant, UsageEvent
from tests.api.test_auth import assert_problem
from tests.factories import Tenant, apply_demo_catalog, bearer, make_key, make_tenant


@pytest.fixture
async def key(sessionmaker: Any, clock: FrozenClock) -> str:
    await apply_demo_catalog(sessionmaker, clock)
    return await make_key(sessionmaker, clock)


@pytest.fixture
async def acme(client: AsyncTestClient[Any], key: str) -> Tenant:
    return await make_tenant(client, key, "acme")


# (method, path, who calls): JSON routes of each package, called by the principal that may use them.
ROUTES = [
    ("POST", "/v1/accounts", "vendor"), ("POST", "/v1/usage", "user"), ("POST", "/v1/quotes", "user"),
    ("PUT", "/v1/accounts/acme/guardrails", "admin"), ("POST", "/v1/catalog/plan", "vendor"),
    ("POST", "/v1/suggestions", "user"), ("POST", "/v1/webhook-endpoints", "vendor"),
]


def _token(who: str, key: str, acme: Tenant) -> str:
    return {"vendor": key, "admin": acme.admin_token, "user": acme.user_token}[who]


async def _send(client: AsyncTestClient[Any], method: str, path: str, token: str, body: bytes) -> Any:
    return await client.request(method, path, content=body,
                                headers={**bearer(token), "content-type": "application/json"})


def _no_errors_logged(caplog: pytest.LogCaptureFixture) -> None:
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert "Traceback" not in caplog.text


BAD_UTF8 = [b'{"user": "acme-user", "name": "\xff\xfe"}', b'{"\xed\xa0\x80": 1}', b'{"note": "caf\xe9"}']


async def test_invalid_utf8_in_a_json_body_is_a_400_malformed_body_on_every_kind_of_route(
    client: AsyncTestClient[Any], key: str, acme: Tenant, caplog: pytest.LogCaptureFixture,
) -> None:
    for method, path, who in ROUTES:
        for body in BAD_UTF8:
            r = await _send(client, method, path, _token(who, key, acme), body)
            problem = assert_problem(r, 400, "malformed_body")
            assert "UTF-8" in problem["detail"], (path, body)
    _no_errors_logged(caplog)


async def test_json_nested_1000_deep_is_a_400_malformed_body_on_every_kind_of_route(
    client: AsyncTestClient[Any], key: str, acme: Tenant, caplog: pytest.LogCaptureFixture,
) -> None:
    for method, path, who in ROUTES:
        for opener, closer in (("[", "]"), ('{"a":', "}")):
            body = (opener * 1000 + "1" + closer * 1000).encode()
            r = await _send(client, method, path, _token(who, key, acme), body)
            assert str(MAX_JSON_DEPTH) in assert_problem(r, 400, "malformed_body")["detail"]
            unbalanced = (opener * 1000).encode()  # never closed: still refused before the decoder recurses
            assert_problem(await _send(client, method, path, _token(who, key, acme), unbalanced), 400,
                           "malformed_body")
    deep_toml = "a = " + "[" * 1000 + "]" * 1000  # TOML carried in a JSON string nests too
    for path, code in (("/v1/catalog/plan", "catalog_invalid"), ("/v1/accounts/acme/guardrails/import",
                                                                  "guardrail_invalid")):
        problem = assert_problem(await client.post(path, json={"toml": deep_toml}, headers=bearer(key)), 422, code)
        assert "nest too deeply" in problem["detail"]
    _no_errors_logged(caplog)


async def test_nesting_is_counted_exactly_up_to_the_limit_and_never_inside_strings(
    client: AsyncTestClient[Any], key: str, acme: Tenant,
) -> None:
    at_limit = ("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH).encode()
    assert_problem(await _send(client, "POST", "/v1/usage", acme.user_token, at_limit), 400, "validation_failed")
    over = ("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)).encode()
    assert_problem(await _send(client, "POST", "/v1/usage", acme.user_token, over), 400, "malformed_body")
    name = '[{"' * 60 + '\\" ]]'
    r = await client.post("/v1/accounts", json={"external_id": "brackets", "name": name}, headers=bearer(key))
    assert r.status_code == 201, r.text
    assert r.json()["name"] == name


def test_json_depth_counts_arrays_and_objects_but_not_strings() -> None:
    assert json_depth(b'{"a": [1, {"b": []}], "c": "[[[[\\"[["}') == 4
    assert json_depth(b"1") == 0 and json_depth(b"[[[") == 3 and json_depth(b'"\\\\" [ ]') == 1


LOOSE_NUMBERS = [  # (path, who calls, body, the field named in the problem)
    ("/v1/accounts/acme/budgets", "vendor", {"name": "B", "currency": "USD", "amount_minor": "123"}, "amount_minor"),
    ("/v1/accounts/acme/budgets", "vendor", {"name": "B", "currency": "USD", "amount_minor": 8000000.0},
     "amount_minor"),
    ("/v1/accounts/acme/budgets", "vendor", {"name": "B", "currency": "USD", "amount_minor": 100,
                                             "anchor_day": "2"}, "anchor_day"),
    ("/v1/quotes", "user", {"user": "acme-user", "items": [{"module": "reports_basic", "quantity": "2"}]},
     "items[0].quantity"),
    ("/v1/quotes", "user", {"user": "acme-user", "items": [{"module": "reports_basic", "quantity": 2.0}]},
     "items[0].quantity"),
    ("/v1/accounts/acme/grants", "vendor", {"module": "nl_query", "source_ref": "s", "seats": "5"}, "seats"),
    ("/v1/accounts/acme/grants", "vendor", {"module": "nl_query", "source_ref": "s", "seats": 5.0}, "seats"),
    ("/v1/usage", "user", {"events": [{"event_id": "e", "user": "acme-user", "feature": "reports",
                                       "quantity": "1"}]}, "events[0].quantity"),
    ("/v1/usage", "user", {"events": [{"event_id": "e", "user": "acme-user", "feature": "reports"}],
                           "enforce": "true"}, "enforce"),
    ("/v1/accounts", "vendor", {"external_id": "acme", "name": "Acme", "discount_bps": "10"}, "discount_bps"),
    ("/v1/accounts", "vendor", {"external_id": 7, "name": "Acme"}, "external_id"),
]


async def test_numbers_and_booleans_given_as_strings_or_floats_are_400_naming_the_field(
    client: AsyncTestClient[Any], key: str, acme: Tenant, sessionmaker: Any,
) -> None:
    for i, (path, who, body, field) in enumerate(LOOSE_NUMBERS):
        r = await client.post(path, json=body, headers={**bearer(_token(who, key, acme)), "Idempotency-Key": f"k{i}"})
        problem = assert_problem(r, 400, "validation_failed")
        assert [e["field"] for e in problem["errors"]] == [field], problem
    async with sessionmaker() as session:  # nothing was written
        assert await session.scalar(select(func.count()).select_from(Budget)) == 0
        assert await session.scalar(select(func.count()).select_from(Grant)) == 0
        assert await session.scalar(select(func.count()).select_from(UsageEvent)) == 0
    r = await client.post("/v1/accounts/acme/budgets", json={"name": "B", "currency": "USD", "amount_minor": 123},
                          headers=bearer(key))
    assert r.status_code == 201 and r.json()["amount_minor"] == 123  # a JSON integer is the way


async def test_query_parameters_are_still_parsed_from_text_and_bounded(client: AsyncTestClient[Any],
                                                                        key: str) -> None:
    assert (await client.get("/v1/accounts", params={"limit": "5"}, headers=bearer(key))).status_code == 200
    for bad in ("abc", "0", "201", "1.5"):
        assert_problem(await client.get("/v1/accounts", params={"limit": bad}, headers=bearer(key)), 400)


async def test_client_that_hangs_up_mid_body_is_logged_at_debug_not_as_an_error(
    app: Litestar, key: str, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="commerce")
    messages: list[Any] = [{"type": "http.request", "body": b'{"external_id": ', "more_body": True},
                           {"type": "http.disconnect"}]
    sent: list[Any] = []

    async def receive() -> Any:
        return messages.pop(0)

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/v1/accounts", "raw_path": b"/v1/accounts", "query_string": b"", "root_path": "",
             "headers": [(b"host", b"test"), (b"authorization", f"Bearer {key}".encode()),
                         (b"content-type", b"application/json"), (b"content-length", b"1000")],
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80), "state": {}}
    async with app.lifespan():  # in this test's loop: the app's pooled connections belong to the loop that made them
        await app(scope, receive, send)
    assert sent[0]["status"] == 499
    assert any(r.levelno == logging.DEBUG and "client disconnected" in r.getMessage() for r in caplog.records)
    _no_errors_logged(caplog)


def _outcome(decode: Any, body: bytes, body_type: Any) -> tuple[str, Any]:
    try:
        return "value", decode(body, body_type)
    except Exception as exc:  # the outcome compared is the exception itself
        return type(exc).__name__, (str(exc), getattr(exc, "errors", None))


def _bodies() -> list[bytes]:
    event = b'{"event_id":"e1","user":"u1","feature":"reports"}'
    deep = b"[" * 40 + b"]" * 40
    return [
        b'{"events":[' + event + b"]}",
        b'{"events":[' + b",".join([event] * 50) + b'],"enforce":true}',
        b'{"events":[{"event_id":"e1","user":"u1","feature":"reports","properties":{"a":"[[[{{{","b":1}}]}',
        b'{"events":[{"event_id":"e1","user":"u1","feature":"reports","properties":{"a":' + deep + b"}}]}",
        b'{"events":[{"event_id":"e1","user":"u1","feature":"reports","extra":' + deep + b"}]}",
        b'{"events":' + deep + b"}",
        deep, b"[" * 2000, b"{" * 40,
        b'{"events":[{"event_id":"e1","user":"u1","feature":"reports","quantity":"3"}]}',
        b'{"events":[{"event_id":"e1","user":"u1","feature":"reports","quantity":2.0}]}',
        b'{"events":[{"event_id":"","user":"u1","feature":"reports"}]}',
        b'{"events":[]}', b'{"events":[' + event + b"]", b"null", b"", b"   ", b'"text"', b"{}",
        b'{"events":[' + event + b"]} trailing",
        b'{"events":[{"event_id":"e1","user":"u\xc3\xa9","feature":"reports"}]}',  # UTF-8, not ASCII
        b'{"events":[{"event_id":"e1","user":"u\xff","feature":"reports"}]}',  # not UTF-8
        b'{"events":[{"event_id":"e1","user":"u1","feature":"reports","occurred_at":"2026-01-01T00:00:00"}]}',
        b'{"events":[{"event_id":"e1","user":"u1","feature":"reports","occurred_at":"2026-01-01T00:00:00Z",'
        b'"kind":"attempt","properties":{"k":null,"n":9007199254740993}}]}',
        b'{"events":[{"event_id":"e1","user":"u1","feature":"reports","properties":{"x":"\\"]]]\\\\"}}]}',
    ]


@pytest.mark.parametrize("body", _bodies())
def test_a_body_of_a_type_of_bounded_depth_gets_the_same_answer_as_with_every_check_first(body: bytes) -> None:
    """``decode_body`` decodes an ASCII body of such a type at once; value or problem, it must be the answer the
    depth and UTF-8 checks followed by the decode give."""
    from app.http import decode_body, decode_checked, depth_bound
    from entitlements.schemas import UsageBatch

    assert depth_bound(UsageBatch) == 4
    assert _outcome(decode_body, body, UsageBatch) == _outcome(decode_checked, body, UsageBatch)


class _Open(msgspec.Struct):  # unknown fields skipped: their values may nest without bound
    a: int


class _Tree(msgspec.Struct, forbid_unknown_fields=True):
    kids: list[_Tree] = []


def test_types_that_can_nest_without_bound_keep_the_depth_check_first() -> None:
    from app.http import depth_bound

    assert depth_bound(Any) is None and depth_bound(dict[str, Any]) is None
    assert depth_bound(_Open) is None and depth_bound(_Tree) is None
    assert depth_bound(list[dict[str, int]]) == 2
    assert depth_bound(list[list[list[int]]] | None) == 3
