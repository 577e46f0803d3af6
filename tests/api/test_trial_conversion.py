"""A module held on trial can be bought (the widget's "Buy now" on a trial): the quote prices it, the order
fulfils it and the trial is marked converted; a module held for good still cannot be quoted twice."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

from app.clock import FrozenClock
from tests.api.test_auth import assert_problem
from tests.api.test_purchase import acme, budget, key, order, quote  # noqa: F401  (fixtures)
from tests.factories import Tenant, bearer


async def test_module_on_trial_can_be_quoted_and_bought(client: AsyncTestClient[Any], key: str,  # noqa: F811
                                                       acme: Tenant, clock: FrozenClock) -> None:  # noqa: F811
    await budget(client, key, 100_000)
    r = await client.post("/v1/trials", json={"user": acme.user, "module": "advanced_charts"},
                          headers=bearer(acme.user_token))
    assert r.status_code == 201, r.text
    q = await quote(client, acme.user_token, acme.user, "advanced_charts")
    assert [line["module"] for line in q["lines"]] == ["advanced_charts"] and q["total_minor"] > 0
    o = await order(client, acme.user_token, q["id"])
    assert o.status_code == 201 and o.json()["state"] == "fulfilled", o.text
    trials = await client.get(f"/v1/accounts/{acme.account}/grants", params={"user": acme.user},
                              headers=bearer(key))
    sources = sorted(g["source"] for g in trials.json()["data"] if g["module"] == "advanced_charts")
    assert "order" in sources or "purchase" in sources, sources

    again = await client.post("/v1/quotes", json={"user": acme.user, "items": [{"module": "advanced_charts"}]},
                              headers=bearer(acme.user_token))
    assert_problem(again, 422)
    assert "you already have advanced_charts" in again.text
