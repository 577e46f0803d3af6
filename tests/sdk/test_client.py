"""The SDK's API calls against the real service: typed answers and errors, pagination, retries that never buy
twice, webhook verification."""

from __future__ import annotations

import itertools

import httpx
import pytest
from commerce_sdk import (
    AsyncCommerce,
    Commerce,
    Forbidden,
    LimitExceeded,
    NotFound,
    RetryPolicy,
    SeatsExhausted,
    Unauthorized,
)

from tests.sdk.conftest import Service

_ids = itertools.count()


def tenant(sdk: Commerce, *users: str) -> str:
    account = f"sdk-{next(_ids)}"
    sdk.accounts.upsert(account, name=account.title(), currency="USD")
    for user in users:
        sdk.users.upsert(account, f"{account}-{user}", roles=["analyst"])
    return account


def test_answers_are_typed_structs_and_lists_follow_cursors(sdk: Commerce) -> None:
    account = tenant(sdk, *(f"u{i}" for i in range(5)))
    got = sdk.accounts.get(account)
    assert got.external_id == account and got.currency == "USD" and got.created_at.tzinfo is not None
    users = list(sdk.users.list(account, page_size=2))  # three pages
    assert sorted(u.external_id for u in users) == sorted(f"{account}-u{i}" for i in range(5))
    token = sdk.session_tokens.create(account=account, user=f"{account}-u0")
    assert token.token_type == "Bearer" and token.roles == ["analyst"]


def test_problems_raise_typed_errors_carrying_the_problem(sdk: Commerce, service: Service) -> None:
    account = tenant(sdk, "ana")
    with pytest.raises(NotFound) as missing:
        sdk.accounts.get("no-such-account")
    assert missing.value.status == 404 and missing.value.type.endswith("/not_found")
    grant = sdk.entitlements.grant(account, module="reports_pro", source_ref="seats-1", seats=1)
    sdk.request("POST", f"/v1/accounts/{account}/grants/{grant.id}/seats", json={"user": f"{account}-ana"})
    sdk.users.upsert(account, f"{account}-bob")
    with pytest.raises(SeatsExhausted) as full:
        sdk.request("POST", f"/v1/accounts/{account}/grants/{grant.id}/seats", json={"user": f"{account}-bob"})
    assert full.value.code == "seats_exhausted"
    sdk.entitlements.grant(account, module="reports_basic", user=f"{account}-ana", source_ref="limit-1")
    limit = sdk.entitlements.check_remote(f"{account}-ana", "reports").limit
    assert limit is not None
    with pytest.raises(LimitExceeded):
        sdk.usage.send([{"event_id": f"{account}-big", "user": f"{account}-ana", "feature": "reports",
                         "quantity": limit + 1}], enforce=True)
    with Commerce(api_key="sk_key_nope.nope", base_url=service.base_url) as stranger, pytest.raises(Unauthorized):
        stranger.accounts.get(account)
    minted = sdk.request("POST", "/v1/api-keys", json={"name": "read-only", "scopes": ["accounts:read"]})
    with Commerce(api_key=minted["secret"], base_url=service.base_url) as reader, pytest.raises(Forbidden) as denied:
        reader.entitlements.grant(account, module="comments", source_ref="x")
    assert denied.value["required_scope"] == "entitlements:write"


class LoseFirstAnswers(httpx.AsyncBaseTransport):
    """Forwards every request to the real server, and loses the answer of the first ``n`` POSTs to ``path``
    after the server handled them, as a dropped connection would."""

    def __init__(self, path: str, n: int = 1) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.path, self.left = path, n
        self.keys: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method == "POST" and request.url.path == self.path:
            self.keys.append(request.headers["idempotency-key"])
            if self.left > 0:
                self.left -= 1
                await response.aread()
                raise httpx.ReadError("connection lost before the answer arrived", request=request)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_retried_order_reuses_its_idempotency_key_and_buys_once(sdk: Commerce, service: Service) -> None:
    account = tenant(sdk, "ana")
    user = f"{account}-ana"
    sdk.request("POST", f"/v1/accounts/{account}/budgets", json={"name": "Main", "currency": "USD",
                                                                 "amount_minor": 1_000_000})
    lossy = LoseFirstAnswers("/v1/orders", n=2)
    async with AsyncCommerce(api_key=service.key, base_url=service.base_url, transport=lossy,
                             retry=RetryPolicy(max_retries=3, base_delay=0.01)) as client:
        quote = await client.quotes.create(user=user, items=[{"module": "reports_basic"}])
        order = await client.orders.create(quote_id=quote.id)
        orders = [o async for o in client.orders.list(user=user)]
    assert len(lossy.keys) == 3 and len(set(lossy.keys)) == 1  # three attempts, one key
    assert [o.id for o in orders] == [order.id]  # bought once
    assert order.state == "fulfilled" and order.total_minor == quote.total_minor
    assert sdk.entitlements.check_remote(user, "reports").allowed


def test_webhook_endpoints_are_managed_through_the_sdk(sdk: Commerce) -> None:
    created = sdk.webhook_endpoints.create(url="http://127.0.0.1:9/hooks", event_types=["order.*"])
    assert created.secret is not None and created.secret.startswith("whsec_")
    assert created.id in [e.id for e in sdk.webhook_endpoints.list()]
