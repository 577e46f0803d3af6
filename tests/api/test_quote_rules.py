"""Quote rules that keep money right: one line per module, card minimums per currency."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from billing.models import Quote
from tests.api.stripe_app import CardWorld
from tests.api.test_auth import assert_problem
from tests.factories import bearer


async def test_a_quote_listing_a_module_twice_is_refused_and_stores_nothing(shop: CardWorld,
                                                                             sessionmaker: Any) -> None:
    body = {"user": shop.a.user, "items": [{"module": "reports_basic"}, {"module": "reports_basic", "quantity": 2}]}
    r = await shop.client.post("/v1/quotes", json=body, headers=bearer(shop.a.user_token))
    problem = assert_problem(r, 422, "module_not_available")
    assert [e["field"] for e in problem["errors"]] == ["items[1].module"]
    async with sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(Quote)) == 0
