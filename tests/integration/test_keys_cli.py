"""``commerce keys create --account``: the operator mints keys bound to accounts; list shows the binding."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from app.cli import main
from app.clock import FrozenClock
from tests.factories import bearer, make_account, make_key


@pytest.fixture
def cli_env(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("COMMERCE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COMMERCE_TOKEN_SECRET", "t" * 40)


async def test_keys_create_with_accounts_makes_a_key_that_sees_only_them(
    cli_env: None, client: AsyncTestClient[Any], sessionmaker: Any, clock: FrozenClock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    admin = await make_key(sessionmaker, clock)
    for name in ("alpha", "beta", "gamma"):
        await make_account(client, admin, name)
    argv = ["keys", "create", "--name", "reseller", "--scopes", "all", "--account", "gamma", "--account", "alpha"]
    assert await asyncio.to_thread(main, argv) == 0  # the CLI runs its own event loop
    out = capsys.readouterr().out
    assert "accounts: alpha,gamma" in out
    secret = re.search(r"secret:\s+(\S+)", out)
    assert secret is not None
    page = (await client.get("/v1/accounts", headers=bearer(secret.group(1)))).json()["data"]
    assert sorted(a["external_id"] for a in page) == ["alpha", "gamma"]
    assert (await client.get("/v1/accounts/beta", headers=bearer(secret.group(1)))).status_code == 404
    assert await asyncio.to_thread(main, ["keys", "list"]) == 0
    listing = capsys.readouterr().out
    assert re.search(r"reseller .*accounts: alpha,gamma", listing)
    assert re.search(r"test .*accounts: all \(global key\)", listing)


def test_keys_create_with_an_unknown_account_fails_and_creates_nothing(
    cli_env: None, capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["keys", "create", "--name", "ghost", "--scopes", "all", "--account", "nope"]) == 2
    assert "account 'nope' does not exist" in capsys.readouterr().err
    assert main(["keys", "list"]) == 0
    assert "ghost" not in capsys.readouterr().out
