"""History import over HTTP and the CLI: per-line validation, nothing half-written, idempotent by the vendor's
ids; then the engine backtests and suggests on the imported past (purchases dated before any live order)."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select

from app.cli import main
from app.clock import FrozenClock
from entitlements.models import DemandSignal, Grant, UsageCounter
from suggest.models import SuggestionOutcome
from tests.api.test_catalog import seed_demo
from tests.factories import bearer, make_key
from tests.integration.test_keys_cli import cli_env

__all__ = ["cli_env"]


def iso(t: datetime) -> str:
    return t.isoformat()


def history(now: datetime) -> list[dict[str, Any]]:
    """Two accounts, 12 analysts; half of them tried Advanced Charts 40-35 days ago and bought it 30 days ago."""
    split = now - timedelta(days=40)
    rows: list[dict[str, Any]] = [{"type": "account", "id": f"imp-{a}", "name": f"Imported {a}", "segment": "imported"}
                                  for a in ("a", "b")]
    for i in range(12):
        account = "imp-a" if i < 6 else "imp-b"
        rows.append({"type": "user", "id": f"imp-u{i}", "account": account, "roles": ["analyst"]})
        rows.append({"type": "grant", "id": f"g{i}", "account": account, "user": f"imp-u{i}",
                     "module": "reports_basic", "starts_at": iso(now - timedelta(days=200))})
        rows.append({"type": "usage", "id": f"use{i}", "user": f"imp-u{i}", "feature": "reports",
                     "occurred_at": iso(split - timedelta(days=3)), "quantity": 10})
        if i % 2 == 0:
            rows.append({"type": "attempt", "id": f"try{i}", "user": f"imp-u{i}", "feature": "advanced_charts",
                         "occurred_at": iso(split - timedelta(days=5)), "quantity": 3, "denied": True})
            rows.append({"type": "purchase", "id": f"p{i}", "account": account, "user": f"imp-u{i}",
                         "module": "advanced_charts", "at": iso(split + timedelta(days=10)), "amount_minor": 1500,
                         "currency": "USD"})
    return rows


def ndjson(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


async def counts(sessionmaker: Any) -> tuple[int, int, int, int]:
    async with sessionmaker() as s:
        return (int(await s.scalar(select(func.count()).select_from(Grant)) or 0),
                int(await s.scalar(select(func.sum(UsageCounter.used))) or 0),
                int(await s.scalar(select(func.sum(DemandSignal.denied_checks))) or 0),
                int(await s.scalar(select(func.count()).select_from(SuggestionOutcome)) or 0))


@pytest.fixture
async def key(client: AsyncTestClient[Any], sessionmaker: Any, clock: FrozenClock) -> str:
    k = await make_key(sessionmaker, clock)
    await seed_demo(client, k)
    return k


async def test_an_import_reports_bad_lines_writes_the_rest_and_a_replay_writes_nothing(
        client: AsyncTestClient[Any], key: str, sessionmaker: Any, clock: FrozenClock) -> None:
    now = clock.now()
    bad = [b'{"type": "account", "id": "imp-c", "name": "C", "segment": "imported"}\n', b"{not json\n",
           json.dumps({"type": "grant", "id": "x", "account": "imp-a", "module": "nope",
                       "starts_at": iso(now)}).encode() + b"\n",
           json.dumps({"type": "usage", "id": "y", "user": "imp-u1", "feature": "reports",
                       "occurred_at": iso(now + timedelta(days=2))}).encode() + b"\n",
           json.dumps({"type": "usage", "id": "z", "user": "ghost", "feature": "reports",
                       "occurred_at": iso(now)}).encode() + b"\n",
           json.dumps({"type": "purchase", "id": "w", "account": "imp-a", "user": "imp-u1", "module": "comments",
                       "at": iso(now), "amount_minor": -5}).encode() + b"\n"]
    body = ndjson(history(now)) + b"".join(bad)
    before = await counts(sessionmaker)
    r = await client.post("/v1/imports", content=body, headers={**bearer(key), "Content-Type": "application/x-ndjson"})
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["errors"] == 5 and [e["line"] for e in report["first_errors"]] == [52, 53, 54, 55, 56]
    assert "nope" in report["first_errors"][1]["message"] and "future" in report["first_errors"][2]["message"]
    assert report["imported"] == {"account": 3, "event": 18, "grant": 18, "purchase": 6, "user": 12}
    assert report["recounted_accounts"] == 3
    after = await counts(sessionmaker)
    assert (after[0] - before[0], after[1] - before[1], after[2] - before[2], after[3] - before[3]) == (18, 120, 18, 6)
    again = await client.post("/v1/imports", content=body,
                              headers={**bearer(key), "Content-Type": "application/x-ndjson"})
    assert again.status_code == 200 and again.json()["imported"] == report["imported"]
    assert again.json()["recounted_accounts"] == 0  # nothing new: nothing to recount
    assert await counts(sessionmaker) == after  # idempotent: nothing new
    users = (await client.get("/v1/accounts/imp-a/users", headers=bearer(key))).json()["data"]
    assert sorted(u["external_id"] for u in users) == [f"imp-u{i}" for i in range(6)]


async def test_the_engine_backtests_on_an_imported_past(client: AsyncTestClient[Any], key: str,
                                                        clock: FrozenClock) -> None:
    r = await client.post("/v1/imports", content=ndjson(history(clock.now())), headers=bearer(key))
    assert r.status_code == 200 and r.json()["errors"] == 0, r.text
    at = (clock.now() - timedelta(days=40)).date()
    r = await client.get("/v1/suggestions/backtest", params={"at": str(at)}, headers=bearer(key))
    assert r.status_code == 200, r.text
    body = r.json()
    scores = {s["strategy"]: s for s in body["scores"]}
    assert body["buyers"] == 6 and body["purchases"] == 6
    assert scores["engine (default weights)"]["recall"] == 1.0  # each buyer had tried it: it was in the top 3
    assert scores["engine (default weights)"]["recall"] >= scores["popularity"]["recall"]


async def test_the_cli_imports_a_file_with_progress_and_again_idempotently(
        cli_env: None, client: AsyncTestClient[Any], key: str, sessionmaker: Any, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "history.ndjson"
    path.write_bytes(ndjson(history(datetime.now().astimezone())))
    assert await asyncio.to_thread(main, ["import", str(path)]) == 0
    out = capsys.readouterr()
    assert "lines/s" in out.err and "account 2, event 18, grant 18, purchase 6, user 12" in out.out
    first = await counts(sessionmaker)
    assert await asyncio.to_thread(main, ["import", str(path)]) == 0
    assert await counts(sessionmaker) == first
    path.write_bytes(b'{"type": "user", "id": "u", "account": "nowhere"}\n')
    assert await asyncio.to_thread(main, ["import", str(path)]) == 1
    assert "line 1: Account 'nowhere' does not exist" in capsys.readouterr().out


async def test_an_import_of_many_batches_writes_them_in_order_with_the_same_result(
        client: AsyncTestClient[Any], key: str, sessionmaker: Any, clock: FrozenClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches are written by a task of their own while the next is decoded: a line still sees the accounts
    and users of every earlier batch, errors keep their line numbers, and a replay writes nothing."""
    from suggest import imports

    monkeypatch.setattr(imports, "BATCH", 4)
    monkeypatch.setattr(imports, "YIELD_EVERY", 2)
    now = clock.now()
    body = ndjson(history(now)) + json.dumps({"type": "usage", "id": "late", "user": "ghost", "feature": "reports",
                                              "occurred_at": iso(now)}).encode() + b"\n"
    before = await counts(sessionmaker)
    r = await client.post("/v1/imports", content=body, headers={**bearer(key), "Content-Type": "application/x-ndjson"})
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["imported"] == {"account": 2, "event": 18, "grant": 18, "purchase": 6, "user": 12}
    assert report["errors"] == 1 and report["first_errors"][0]["line"] == 51
    after = await counts(sessionmaker)
    assert tuple(a - b for a, b in zip(after, before, strict=True)) == (18, 120, 18, 6)
    again = await client.post("/v1/imports", content=body,
                              headers={**bearer(key), "Content-Type": "application/x-ndjson"})
    assert again.status_code == 200 and await counts(sessionmaker) == after


def test_a_batch_is_decoded_at_once_and_line_by_line_when_a_line_is_bad(clock: FrozenClock) -> None:
    """Each line is judged alone: a line holding two objects (which a batch decoded as one array would take for
    two lines) or any invalid line sends the batch line by line, with each line's own number and message."""
    from typing import cast

    from suggest import imports

    def state() -> Any:
        return imports._State(view=cast(Any, None), now=clock.now(), clock=clock, actor="test")

    use = {"type": "usage", "id": "1", "user": "u", "feature": "reports", "occurred_at": iso(clock.now())}
    one = json.dumps(use).encode()
    st = state()
    assert [n for n, _ in imports._decode(st, [1, 2], [one, one])] == [1, 2] and st.error_count == 0
    for bad, says in ((one + b", " + one, "not one JSON object"), (b"[]", "Expected `object`"),
                      (json.dumps({**use, "quantity": 0}).encode(), "quantity")):
        st = state()
        decoded = imports._decode(st, [1, 2, 3], [one, bad, one])
        assert [n for n, _ in decoded] == [1, 3] and st.error_count == 1
        assert st.errors[0].line == 2 and says in st.errors[0].message, st.errors[0].message
