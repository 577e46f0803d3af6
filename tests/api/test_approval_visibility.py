"""Who may read and decide an approval request: its requester, the account's admins and approvers, vendor keys."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests.api.test_auth import assert_problem
from tests.api.test_purchase import acme, budget, key, order, quote  # noqa: F401  (fixtures)
from tests.factories import Tenant, bearer, make_user, session_token

UNKNOWN = "apr_" + "0" * 26


@pytest.fixture
async def pending(client: AsyncTestClient[Any], key: str, acme: Tenant) -> dict[str, Any]:  # noqa: F811
    """acme-user asked for reports_basic and waits for a manager or an admin."""
    await budget(client, key, 100_000)
    r = await client.put("/v1/accounts/acme/guardrails", json={"auto_approve_limit_minor": 0,
                         "approver_roles": ["admin", "manager"]}, headers=bearer(acme.admin_token))
    assert r.status_code == 200, r.text
    o = (await order(client, acme.user_token, (await quote(client, acme.user_token, acme.user, "reports_basic"))["id"]))
    assert o.json()["state"] == "pending_approval", o.text
    return dict(o.json())


async def test_an_end_user_cannot_read_or_decide_another_users_approval(
    client: AsyncTestClient[Any], key: str, acme: Tenant, pending: dict[str, Any],  # noqa: F811
) -> None:
    await make_user(client, key, "acme", "acme-peer", roles=["analyst"])
    peer = await session_token(client, key, "acme", "acme-peer")
    approval = pending["approval_id"]
    unknown = assert_problem(await client.get(f"/v1/approvals/{UNKNOWN}", headers=bearer(peer)), 404)
    r = await client.get(f"/v1/approvals/{approval}", headers=bearer(peer))
    body = assert_problem(r, 404)
    assert body["detail"] == unknown["detail"].replace(UNKNOWN, approval)  # indistinguishable from an unknown id
    assert "Q4 report" not in r.text and "reports_basic" not in r.text
    for verb in ("approve", "deny"):
        assert_problem(await client.post(f"/v1/approvals/{approval}/{verb}", json={"note": "mine now"},
                                         headers=bearer(peer)), 404)
    still = (await client.get(f"/v1/approvals/{approval}", headers=bearer(acme.admin_token))).json()
    assert still["state"] == "pending" and still["decided_by"] is None


async def test_requester_admins_approvers_and_the_vendor_read_an_approval(
    client: AsyncTestClient[Any], key: str, acme: Tenant, pending: dict[str, Any],  # noqa: F811
) -> None:
    await make_user(client, key, "acme", "acme-mia", roles=["manager"])
    manager = await session_token(client, key, "acme", "acme-mia")
    approval = pending["approval_id"]
    for token in (acme.user_token, acme.admin_token, manager, key):
        r = await client.get(f"/v1/approvals/{approval}", headers=bearer(token))
        assert r.status_code == 200, r.text
        assert r.json()["reason"] == "I need it for the Q4 report" and r.json()["requester"] == acme.user
        # what a person reads: the requester's name and the module's catalog name, beside their ids
        assert (r.json()["requester_name"], r.json()["modules"], r.json()["module_names"]) == (
            None, ["reports_basic"], ["Reports Basic"])  # this user was given no name (the console then shows its id)
    r = await client.post(f"/v1/approvals/{approval}/approve", json={"note": "go"}, headers=bearer(manager))
    assert r.status_code == 200 and r.json()["state"] == "approved"


async def test_an_approver_role_added_to_the_policy_later_may_read_earlier_requests(
    client: AsyncTestClient[Any], key: str, acme: Tenant, pending: dict[str, Any],  # noqa: F811
) -> None:
    await make_user(client, key, "acme", "acme-fin", roles=["finance"])
    finance = await session_token(client, key, "acme", "acme-fin")
    assert_problem(await client.get(f"/v1/approvals/{pending['approval_id']}", headers=bearer(finance)), 404)
    await client.put("/v1/accounts/acme/guardrails", json={"auto_approve_limit_minor": 0,
                     "approver_roles": ["admin", "manager", "finance"]}, headers=bearer(acme.admin_token))
    r = await client.get(f"/v1/approvals/{pending['approval_id']}", headers=bearer(finance))
    assert r.status_code == 200  # as the approval queue shows it to the policy's approvers
