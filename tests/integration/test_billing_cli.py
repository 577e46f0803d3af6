"""``commerce billing ...`` wiring: without a Stripe key the Stripe steps refuse (or skip) instead of talking
to an empty in-process fake."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cli import main


def test_billing_subcommands_exist_with_help(capsys: pytest.CaptureFixture[str]) -> None:
    for sub in ("run", "reconcile", "invoice", "close", "expire-approvals", "usage"):
        assert main(["billing", sub, "--help"]) == 0
        assert f"Usage: commerce billing {sub}" in capsys.readouterr().out
    assert main(["billing", "close"]) == 2  # --period is required
    assert "Missing option '--period'" in capsys.readouterr().err


def test_stripe_steps_need_a_key_and_the_run_works_without_one(
        database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("COMMERCE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COMMERCE_TOKEN_SECRET", "t" * 40)
    monkeypatch.delenv("STRIPE_SECRET_KEY", raising=False)
    assert main(["billing", "reconcile"]) == 2
    assert "STRIPE_SECRET_KEY" in capsys.readouterr().err
    assert main(["billing", "invoice", "--period", "2026-11"]) == 2
    assert main(["billing", "invoice", "--period", "2026-13"]) == 2  # a bad period is refused up front
    assert main(["billing", "run"]) == 0
    assert "renewed: 0" in capsys.readouterr().out
    assert main(["billing", "close", "--period", "2026-10"]) == 0
    assert "invoices not created" in capsys.readouterr().err
    assert main(["billing", "usage", "--period", "2026-10"]) == 0
    captured = capsys.readouterr()
    assert "0 usage charge(s) for 2026-10" in captured.out and "not invoiced" in captured.err
    assert main(["billing", "usage", "--period", "2026-13"]) == 2
