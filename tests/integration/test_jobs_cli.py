"""``commerce jobs``: list (people and --json), run one now, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.cli import main


@pytest.fixture
def cli_env(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("COMMERCE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COMMERCE_TOKEN_SECRET", "t" * 40)
    monkeypatch.delenv("STRIPE_SECRET_KEY", raising=False)


def test_jobs_run_records_the_outcome_that_jobs_list_shows(cli_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["jobs", "list", "--json"]) == 0
    before = {j["name"]: j for j in json.loads(capsys.readouterr().out)}
    assert before["idempotency_purge"]["last_status"] is None and "billing_run" in before
    assert main(["jobs", "run", "idempotency_purge", "--json"]) == 0
    ran = json.loads(capsys.readouterr().out)
    assert (ran["job"], ran["status"], ran["detail"]) == ("idempotency_purge", "succeeded", {"purged": 0})
    assert main(["jobs", "list"]) == 0
    table = capsys.readouterr().out
    assert "idempotency_purge" in table and "succeeded" in table and "never ran" in table
    assert main(["jobs", "list", "--json"]) == 0
    after = {j["name"]: j for j in json.loads(capsys.readouterr().out)}
    assert after["idempotency_purge"]["last_status"] == "succeeded"
    assert after["idempotency_purge"]["last_trigger"] == "manual"


def test_jobs_run_of_an_unknown_job_is_a_usage_error(cli_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["jobs", "run", "make_coffee"]) == 2
    assert "unknown job 'make_coffee'" in capsys.readouterr().err
    assert main(["jobs", "run"]) == 2  # NAME is required
