"""The in-process Stripe fake never serves by accident: no key and no COMMERCE_STRIPE means no start."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from app import cli
from app.asgi import create_app
from app.clock import FrozenClock
from app.settings import Settings, SettingsError, load_settings
from tests.factories import bearer, make_key


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def _captured(name: str) -> Iterator[list[logging.LogRecord]]:
    """The records of one logger (the app's logging config may stop them from reaching pytest's handler)."""
    handler, logger = _Records(), logging.getLogger(name)
    logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)


UNDECIDED = ("STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "COMMERCE_STRIPE", "DATABASE_URL", "COMMERCE_ENV")


def test_the_app_refuses_to_start_with_card_payments_undecided(tmp_path: Path) -> None:
    settings = load_settings({"COMMERCE_DATA_DIR": str(tmp_path)})
    assert settings.env == "development" and settings.stripe_mode == "unset"
    with pytest.raises(SettingsError, match="card payments are not configured"):
        create_app(settings)


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_serve_and_demo_refuse_before_starting_anything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str], command: str) -> None:
    for var in UNDECIDED:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("COMMERCE_DATA_DIR", str(tmp_path / "data"))
    assert cli.main([command, "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert "card payments are not configured" in err and "COMMERCE_STRIPE=fake" in err
    assert not (tmp_path / "data" / "pg").exists(), "the database was started before the refusal"


def test_the_cli_shouts_when_the_fake_is_used(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli._check_card_payments(load_settings({"COMMERCE_DATA_DIR": str(tmp_path), "COMMERCE_STRIPE": "fake"}))
    assert "WARNING" in capsys.readouterr().err
    cli._check_card_payments(load_settings({"COMMERCE_DATA_DIR": str(tmp_path), "COMMERCE_STRIPE": "off"}))
    assert capsys.readouterr().err == ""


async def test_every_app_on_the_fake_logs_a_loud_warning(settings: Settings, clock: FrozenClock) -> None:
    assert settings.stripe_mode == "fake"
    with _captured("commerce") as records:
        async with AsyncTestClient(app=create_app(settings, clock=clock)):
            pass
    assert any("Stripe FAKE" in r.getMessage() and r.levelno == logging.WARNING for r in records)


async def test_with_card_payments_off_card_routes_answer_503_and_nothing_is_faked(
    settings: Settings, clock: FrozenClock, sessionmaker: Any,
) -> None:
    off = msgspec.structs.replace(settings, stripe_backend="off")
    key = await make_key(sessionmaker, clock)
    with _captured("commerce") as records:
        async with AsyncTestClient(app=create_app(off, clock=clock)) as client:
            assert client.app.state.stripe is None
            await client.post("/v1/accounts", json={"external_id": "acme", "name": "Acme"}, headers=bearer(key))
            await client.post("/v1/accounts/acme/users", json={"external_id": "u1"}, headers=bearer(key))
            r = await client.post("/v1/payment-methods/setup?user=u1", headers=bearer(key))
    assert r.status_code == 503 and r.headers["content-type"].startswith("application/problem+json"), r.text
    assert not any("Stripe FAKE" in r.getMessage() for r in records)
