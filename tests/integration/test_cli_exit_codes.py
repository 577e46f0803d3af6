"""The command line's contract for scripts: one line on stderr and a stable exit code instead of a traceback
(0 done, 1 work failed or the database is away, 2 bad input or configuration), and ``--json`` documents."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from app.cli import main

if TYPE_CHECKING:
    from tests.support.database import TestDatabases


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("COMMERCE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COMMERCE_TOKEN_SECRET", "t" * 40)
    monkeypatch.delenv("STRIPE_SECRET_KEY", raising=False)
    return monkeypatch


@pytest.fixture
async def empty_database(template_ready: TestDatabases) -> AsyncIterator[str]:
    """A database nobody has migrated yet (as on a first deploy before `commerce migrate`)."""
    name = await template_ready.create(template="template0")
    yield template_ready.url(name)
    await template_ready.drop(name)


def test_commands_refuse_an_unmigrated_database_with_a_clear_message_then_work_after_migrate(
        cli_env: pytest.MonkeyPatch, empty_database: str, capsys: pytest.CaptureFixture[str]) -> None:
    cli_env.setenv("DATABASE_URL", empty_database)
    for argv in (["jobs", "list"], ["jobs", "run", "idempotency_purge"], ["keys", "list"], ["worker"],
                 ["billing", "run"], ["entitlements", "sweep"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "has no schema yet" in err and "commerce migrate" in err, (argv, err)
        assert "Traceback" not in err and "SELECT" not in err
    assert main(["migrate"]) == 0
    capsys.readouterr()
    assert main(["jobs", "list", "--json"]) == 0
    assert {j["name"] for j in json.loads(capsys.readouterr().out)} >= {"billing_run", "idempotency_purge"}


def test_an_unreachable_database_is_exit_1_without_a_traceback(
        cli_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    cli_env.setenv("DATABASE_URL", "postgresql+asyncpg://nobody:secret-password@127.0.0.1:1/commerce")
    for argv in (["keys", "list"], ["jobs", "list"]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith("commerce: the database failed:") and "Traceback" not in err
        assert "secret-password" not in err


def test_refusals_of_the_domain_are_exit_2_and_json_output_is_one_document(
        cli_env: pytest.MonkeyPatch, database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    cli_env.setenv("DATABASE_URL", database_url)
    assert main(["keys", "revoke", "key_nope"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "commerce: API key 'key_nope' does not exist"
    assert main(["keys", "create", "--name", "temp", "--scopes", "catalog:read", "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    assert main(["keys", "revoke", made["key_id"], "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"key_id": made["key_id"], "state": "revoked"}
    assert main(["billing", "close", "--period", "2026-10", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == {"period": "2026-10", "closed": [], "already_closed": [], "still_open": []}
    assert "invoices not created" in err
    assert main(["billing", "expire-approvals", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"expired": 0}


@pytest.mark.parametrize(("args", "said"), [
    (["billing", "close", "--period", "2026-13"], "commerce: --period must look like 2026-11, got '2026-13'"),
    (["suggest", "backtest", "--at", "notadate"], "commerce: --at must be a date like 2026-10-01, got 'notadate'"),
])
def test_a_malformed_date_is_exit_2_naming_the_option_and_its_form(
        cli_env: pytest.MonkeyPatch, database_url: str, capsys: pytest.CaptureFixture[str], args: list[str],
        said: str) -> None:
    cli_env.setenv("DATABASE_URL", database_url)
    assert main(args) == 2
    assert capsys.readouterr().err.strip() == said  # not Python's "Invalid isoformat string"
