"""Key management hands out only what the calling key holds: no scope it lacks, on creation and revocation."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from app.clock import FrozenClock
from app.scopes import SCOPES
from tests.api.test_auth import assert_problem
from tests.factories import bearer, make_key, make_tenant


def _key_id(secret: str) -> str:
    return secret[3:].split(".", 1)[0]


async def _key_names(client: AsyncTestClient[Any], admin: str) -> list[str]:
    return sorted(k["name"] for k in (await client.get("/v1/api-keys", headers=bearer(admin))).json())


@pytest.mark.parametrize("wanted", [["all"], ["*"], ["accounts:read"], ["keys:write", "accounts:read"]])
async def test_key_with_only_keys_write_cannot_mint_a_key_with_more_scopes(
    client: AsyncTestClient[Any], sessionmaker: Any, clock: FrozenClock, wanted: list[str],
) -> None:
    admin = await make_key(sessionmaker, clock)
    minter = await make_key(sessionmaker, clock, scopes="keys:write", name="minter")
    before = await _key_names(client, admin)
    r = await client.post("/v1/api-keys", json={"name": "escalated", "scopes": wanted}, headers=bearer(minter))
    body = assert_problem(r, 403, "key_privilege_exceeded")
    expected = sorted(set(SCOPES) - {"keys:write"}) if wanted[0] in ("all", "*") else ["accounts:read"]
    assert body["missing_scopes"] == expected
    assert all(scope in body["detail"] for scope in expected)
    assert "secret" not in body
    assert await _key_names(client, admin) == before  # nothing was created


async def test_key_mints_keys_with_a_subset_of_its_scopes(
    client: AsyncTestClient[Any], sessionmaker: Any, clock: FrozenClock,
) -> None:
    minter = await make_key(sessionmaker, clock, scopes="keys:write,accounts:read,catalog:read")
    r = await client.post("/v1/api-keys", json={"name": "reader", "scopes": ["accounts:read"]}, headers=bearer(minter))
    assert r.status_code == 201, r.text
    assert r.json()["scopes"] == ["accounts:read"] and r.json()["accounts"] is None
    minted = r.json()["secret"]
    assert (await client.get("/v1/accounts", headers=bearer(minted))).status_code == 200
    assert_problem(await client.get("/v1/catalog/modules", headers=bearer(minted)), 403)


async def test_only_a_key_holding_every_scope_mints_an_all_scopes_key(
    client: AsyncTestClient[Any], sessionmaker: Any, clock: FrozenClock,
) -> None:
    admin = await make_key(sessionmaker, clock)
    almost = await make_key(sessionmaker, clock, scopes=",".join(sorted(set(SCOPES) - {"webhooks:write"})))
    body = assert_problem(await client.post("/v1/api-keys", json={"name": "x", "scopes": ["all"]},
                                            headers=bearer(almost)), 403)
    assert body["missing_scopes"] == ["webhooks:write"]
    r = await client.post("/v1/api-keys", json={"name": "root-2", "scopes": ["all"]}, headers=bearer(admin))
    assert r.status_code == 201 and sorted(r.json()["scopes"]) == sorted(SCOPES)


async def test_minted_key_of_a_keys_write_key_cannot_read_accounts(
    client: AsyncTestClient[Any], sessionmaker: Any, clock: FrozenClock,
) -> None:
    admin = await make_key(sessionmaker, clock)
    await make_tenant(client, admin, "alpha")
    minter = await make_key(sessionmaker, clock, scopes="keys:write")
    r = await client.post("/v1/api-keys", json={"name": "self-copy", "scopes": ["keys:write"]}, headers=bearer(minter))
    assert r.status_code == 201
    copy = r.json()["secret"]
    for url in ("/v1/accounts", "/v1/accounts/alpha"):
        assert_problem(await client.get(url, headers=bearer(copy)), 403)
        assert_problem(await client.get(url, headers=bearer(minter)), 403)


async def test_key_cannot_revoke_a_key_holding_scopes_it_lacks(
    client: AsyncTestClient[Any], sessionmaker: Any, clock: FrozenClock,
) -> None:
    admin = await make_key(sessionmaker, clock)
    minter = await make_key(sessionmaker, clock, scopes="keys:write")
    body = assert_problem(await client.post(f"/v1/api-keys/{_key_id(admin)}/revoke", headers=bearer(minter)), 403,
                          "key_privilege_exceeded")
    assert "accounts:read" in body["missing_scopes"] and "keys:write" not in body["missing_scopes"]
    assert (await client.get("/v1/accounts", headers=bearer(admin))).status_code == 200  # still alive
    listing = (await client.get("/v1/api-keys", headers=bearer(admin))).json()
    assert next(k for k in listing if k["id"] == _key_id(admin))["revoked_at"] is None


async def test_key_revokes_keys_with_no_more_scopes_than_itself_including_itself(
    client: AsyncTestClient[Any], sessionmaker: Any, clock: FrozenClock,
) -> None:
    minter = await make_key(sessionmaker, clock, scopes="keys:write,accounts:read")
    weaker = await make_key(sessionmaker, clock, scopes="accounts:read")
    r = await client.post(f"/v1/api-keys/{_key_id(weaker)}/revoke", headers=bearer(minter))
    assert r.status_code == 200 and r.json()["revoked_at"]
    assert_problem(await client.get("/v1/accounts", headers=bearer(weaker)), 401)
    r = await client.post(f"/v1/api-keys/{_key_id(minter)}/revoke", headers=bearer(minter))
    assert r.status_code == 200
    assert_problem(await client.get("/v1/accounts", headers=bearer(minter)), 401)
