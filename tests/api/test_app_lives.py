"""An app's routes are built once; each life gets its own runtime (``app.asgi.bind``): tests reuse apps this way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from app.asgi import bind, create_app
from app.clock import FrozenClock
from app.db import create_engine, make_sessionmaker
from app.settings import Settings
from tests.factories import bearer, make_account, make_key


async def test_a_second_life_has_a_fresh_runtime_on_another_database(
        settings: Settings, clock: FrozenClock, sessionmaker: Any, template_ready: Any,
        tmp_path: Path) -> None:
    app = create_app(settings, clock=clock)
    key = await make_key(sessionmaker, clock)
    async with AsyncTestClient(app=app) as client:
        await make_account(client, key, "first")
    first_state = app.state

    other = await template_ready.create()
    other_url = template_ready.url(other)
    engine = create_engine(other_url, pool_size=1, max_overflow=0)
    try:
        later = FrozenClock(clock.now())
        bind(app, msgspec.structs.replace(settings, database_url=other_url, data_dir=tmp_path / "other"),
             clock=later)
        assert app.state is not first_state and app.state.clock is later
        assert app.state.key_cache is not first_state.key_cache
        assert app.state.account_origins is not first_state.account_origins
        other_key = await make_key(make_sessionmaker(engine), later)
        async with AsyncTestClient(app=app) as client:
            stale = await client.get("/v1/accounts", headers=bearer(key))
            listed = await client.get("/v1/accounts", headers=bearer(other_key))
    finally:
        await engine.dispose()
        await template_ready.drop(other)
    assert stale.status_code == 401  # the first life's key is unknown to the second life's database
    assert listed.status_code == 200 and "first" not in listed.text, listed.text


def test_an_app_is_bound_only_to_settings_of_its_shape(settings: Settings, clock: FrozenClock) -> None:
    app = create_app(settings, clock=clock)
    other: Any = msgspec.structs.replace(settings, rate_limit="off" if settings.rate_limit == "on" else "on")
    with pytest.raises(ValueError, match="shape"):
        bind(app, other, clock=clock)
