"""Account health: the documented formula on crafted counts (each flag with its negative), and the endpoint
on a real account (admin grants, usage, a seat pool); other accounts' isolation is the isolation gate's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from app.clock import FrozenClock
from suggest.health import Counts, score
from tests.api.test_catalog import seed_demo
from tests.factories import bearer, make_account, make_key, make_user
from tests.suggest.test_suggestions import grant, usage

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def counts(**kw: Any) -> Counts:
    base: dict[str, Any] = {"holders": {"a": 4, "b": 2}, "active": {"a": 3}, "seats": 10, "seats_assigned": 8,
                            "usage_now": 120, "usage_before": 100, "spend_now_minor": 3000,
                            "spend_before_minor": 1000, "paid": [("b", None)]}
    base.update(kw)
    return Counts(**base)


def test_the_score_follows_the_documented_formula() -> None:
    figures, value, risks = score(counts(), now=NOW, days=30)
    assert figures == {"breadth": 0.5, "depth": 0.375, "seat_utilisation": 0.8, "usage_trend": 0.2,
                       "spend_trend": 2.0}
    assert value == round(100 * (0.35 * 0.5 + 0.25 * 0.375 + 0.2 * 0.8 + 0.2 * 0.6))
    assert [r[0] for r in risks] == ["unused_paid_module"] and risks[0][2] == "b"


def test_risk_flags_and_their_negative_space() -> None:
    renewal = [("a", NOW + timedelta(days=10))]
    _, _, falling = score(counts(paid=renewal, usage_now=70), now=NOW, days=30)
    assert [r[0] for r in falling] == ["falling_usage_before_renewal"] and "fell by 30%" in falling[0][1]
    _, _, steady = score(counts(paid=renewal, usage_now=95), now=NOW, days=30)
    assert steady == []  # a 5 % dip is not a fall; the module is used
    _, _, far = score(counts(paid=[("a", NOW + timedelta(days=60))], usage_now=10), now=NOW, days=30)
    assert far == []  # no renewal within the window
    _, _, idle = score(counts(paid=[], seats_assigned=3), now=NOW, days=30)
    assert [r[0] for r in idle] == ["idle_seats"]
    figures, _, none = score(counts(holders={}, active={}, seats=0, seats_assigned=0, paid=[]), now=NOW, days=30)
    assert none == [] and figures["seat_utilisation"] == 1.0 and figures["breadth"] == 0.0


@pytest.fixture
async def key(client: AsyncTestClient[Any], sessionmaker: Any, clock: FrozenClock) -> str:
    k = await make_key(sessionmaker, clock)
    await seed_demo(client, k)
    return k


async def test_the_health_of_an_account_over_http(client: AsyncTestClient[Any], key: str) -> None:
    await make_account(client, key, "vale", segment="public_sector")
    for i in range(4):
        await make_user(client, key, "vale", f"vale-{i}", roles=["analyst"])
        await grant(client, key, "vale", module="advanced_charts", user=f"vale-{i}", source_ref=f"v{i}")
    await usage(client, key, "vale-0", "advanced_charts", 2, "seed")
    await grant(client, key, "vale", module="comments", source_ref="pool", seats=10)
    r = await client.get("/v1/accounts/vale/health", headers=bearer(key))
    assert r.status_code == 200, r.text
    body = r.json()
    charts = next(m for m in body["modules"] if m["module"] == "advanced_charts")
    assert charts == {"module": "advanced_charts", "holders": 4, "active_users": 1}
    assert body["seat_utilisation"] == 0.0 and body["users"] == 4
    assert [x["code"] for x in body["risks"]] == ["idle_seats"]  # admin grants are not paid: no unused-paid flag
    assert 0 <= body["score"] <= 100
    r = await client.get("/v1/accounts/nowhere/health", headers=bearer(key))
    assert r.status_code == 404
