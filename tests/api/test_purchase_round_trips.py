"""The purchase path's statement budget: a budget purchase (quote, then order) issues a bounded number of SQL
statements, so a change that reads the same rows again (policy, budget, period, catalog) shows up here."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import event
from sqlalchemy.engine import Engine

import billing.service
import billing.service._fast_order as fast
from billing.service import _fast_memo as memo
from tests.api.test_purchase import acme, budget, key, order, quote  # noqa: F401  (fixtures)
from tests.factories import Tenant

QUOTE_MAX = 7  # user, account, catalog head, owned modules, budget with its period, policy with spend, quote
ORDER_MAX = 30  # the ordinary path; see docs/performance.md (47 before the fast-path work)
_NOT_THE_PURCHASE = ("rate_limit", "api_keys", "LISTEN")  # request bookkeeping running beside it


@contextmanager
def statements() -> Iterator[list[str]]:
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not any(word in statement for word in _NOT_THE_PURCHASE):
            seen.append(statement)

    event.listen(Engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", count)


async def test_a_budget_purchase_stays_within_its_statement_budget(
    client: AsyncTestClient[Any], key: str, acme: Tenant, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
) -> None:
    async def ordinary(*args: Any, **kwargs: Any) -> None:
        return None

    monkeypatch.setattr(billing.service, "fast_order", ordinary)  # the ordinary paths (every other case)
    monkeypatch.setattr(billing.service, "fast_quote", ordinary)
    await budget(client, key, 1_000_000)
    warm = await quote(client, acme.user_token, acme.user, "reports_basic")  # caches, the period row
    assert (await order(client, acme.user_token, warm["id"])).status_code == 201
    with statements() as seen:
        q = await quote(client, acme.user_token, acme.user, "comments")
    assert q["decision"]["route"] == "budget"
    assert len(seen) <= QUOTE_MAX, "\n".join(seen)
    with statements() as seen:
        r = await order(client, acme.user_token, q["id"])
    assert r.status_code == 201 and r.json()["state"] == "fulfilled", r.text
    assert len(seen) <= ORDER_MAX, "\n".join(seen)
    assert sum(s.lstrip().startswith("UPDATE budget_periods") for s in seen) == 1  # one guarded capture


async def test_the_common_budget_order_is_one_statement_after_its_quote_else_one_read_and_one_statement(
    client: AsyncTestClient[Any], key: str, acme: Tenant, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
) -> None:
    await budget(client, key, 1_000_000)
    warm = await quote(client, acme.user_token, acme.user, "reports_basic")  # caches
    assert (await order(client, acme.user_token, warm["id"])).status_code == 201
    with statements() as seen:
        q = await quote(client, acme.user_token, acme.user, "comments")
    assert seen == [], "the quote is one read and one INSERT on the driver, no statement through the ORM"
    sent: list[str] = []
    real_read, real_build = fast._read, fast._build

    async def read(*args: Any, **kwargs: Any) -> Any:
        sent.append("read")
        return await real_read(*args, **kwargs)

    def build(*args: Any, **kwargs: Any) -> Any:
        built = real_build(*args, **kwargs)
        sent.append(built[0].sql() if built is not None else "ordinary path")
        return built

    monkeypatch.setattr(fast, "_read", read)
    monkeypatch.setattr(fast, "_build", build)
    with statements() as seen:
        r = await order(client, acme.user_token, q["id"])
    assert r.status_code == 201 and r.json()["state"] == "fulfilled", r.text
    assert seen == [], "no statement through the ORM"
    assert len(sent) == 1 and "memo_changed" in sent[0], "what the quote read, guarded (D99): no read"
    assert sent[0].count("INSERT INTO budget_periods") == 1  # one guarded capture, in the one statement
    sent.clear()
    q = await quote(client, acme.user_token, acme.user, "shared_workspaces")
    memo.forget()  # e.g. the quote was answered by another process
    with statements() as seen:
        r = await order(client, acme.user_token, q["id"])
    assert r.status_code == 201 and r.json()["state"] == "fulfilled", r.text
    assert seen == []
    assert len(sent) == 2 and sent[0] == "read", sent
    assert sent[1].count("INSERT INTO budget_periods") == 1 and "memo_changed" not in sent[1]
