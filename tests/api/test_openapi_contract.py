"""The OpenAPI document declares what the API enforces: Idempotency-Key where honoured, the scope each
operation needs, closed request bodies."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

from app.openapi import route_opts

HTTP_METHODS = ("get", "post", "put", "patch", "delete")


async def spec(client: AsyncTestClient[Any]) -> dict[str, Any]:
    r = await client.get("/schema/openapi.json")
    assert r.status_code == 200
    return dict(r.json())


def header(op: dict[str, Any]) -> dict[str, Any] | None:
    return next((p for p in op.get("parameters", []) if p["in"] == "header" and p["name"] == "Idempotency-Key"), None)


async def test_idempotency_key_is_declared_where_honoured_and_required_where_money_moves(
        client: AsyncTestClient[Any]) -> None:
    doc = await spec(client)
    for path in ("/v1/orders", "/v1/orders/{order_id}/pay"):
        declared = header(doc["paths"][path]["post"])
        assert declared is not None and declared["required"] is True
    for path in ("/v1/accounts", "/v1/accounts/{account}/users", "/v1/accounts/{account}/grants"):
        declared = header(doc["paths"][path]["post"])
        assert declared is not None and declared["required"] is False
    assert header(doc["paths"]["/v1/accounts"]["get"]) is None


async def test_every_operation_names_the_scope_a_key_needs(client: AsyncTestClient[Any], app: Any) -> None:
    doc = await spec(client)
    opts = route_opts(app)
    for path, item in doc["paths"].items():
        for method in HTTP_METHODS:
            op = item.get(method)
            if op is None or not op.get("security"):
                continue
            scope = opts[(path, method.upper())].get("scope")
            assert op["security"] == [{"BearerAuth": [scope] if scope else []}], (method, path)
    assert doc["paths"]["/v1/entitlements/check"]["get"]["security"] == [{"BearerAuth": ["entitlements:read"]}]


async def test_request_bodies_are_closed(client: AsyncTestClient[Any]) -> None:
    schemas = (await spec(client))["components"]["schemas"]
    for name in ("GrantCreate", "QuoteCreate", "QuoteItemIn", "UsageBatch", "AccountUpsert"):
        assert schemas[name]["additionalProperties"] is False, name
    assert "additionalProperties" not in schemas["GrantRead"]  # answers may grow new fields
