"""The widget's files over HTTP: a short-cached loader naming the build, immutable hashed files whose integrity
hashes the manifest lists, readable from any origin, and problem answers for what does not exist."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.asgi import create_app
from app.clock import FrozenClock
from app.settings import load_settings


def sri(body: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(body).digest()).decode()


async def test_loader_is_short_cached_names_the_build_and_answers_304_to_its_etag(
        client: AsyncTestClient[Litestar]) -> None:
    r = await client.get("/widget/v1/widget.js")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/javascript")
    assert r.headers["cache-control"] == "public, max-age=300"
    assert r.headers["access-control-allow-origin"] == "*"
    build = (await client.get("/widget/v1/manifest.json")).json()["build"]
    assert f'"{build}/"' in r.text and "widget.mjs" in r.text
    again = await client.get("/widget/v1/widget.js", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


async def test_every_manifest_file_is_served_immutable_with_the_integrity_it_lists(
        client: AsyncTestClient[Litestar]) -> None:
    manifest = (await client.get("/widget/v1/manifest.json")).json()
    assert {"widget.mjs", "messages.js", "widget.css"} <= set(manifest["files"])
    for name, entry in manifest["files"].items():
        r = await client.get(entry["url"])
        assert r.status_code == 200, name
        assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert r.headers["access-control-allow-origin"] == "*"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert entry["integrity"] == sri(r.content), name
    loader = await client.get(manifest["loader"]["url"])
    assert manifest["loader"]["integrity"] == sri(loader.content)


async def test_build_id_is_the_hash_of_the_files(client: AsyncTestClient[Litestar]) -> None:
    manifest = (await client.get("/widget/v1/manifest.json")).json()
    folder = Path(__file__).resolve().parents[2] / "web" / "widget" / "static"
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir(), key=lambda p: p.name):
        if path.is_file() and not path.name.startswith("."):
            digest.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    assert manifest["build"] == digest.hexdigest()[:16]


async def test_unknown_build_or_file_is_a_404_problem(client: AsyncTestClient[Litestar]) -> None:
    build = (await client.get("/widget/v1/manifest.json")).json()["build"]
    for path in ("/widget/v1/0000000000000000/widget.mjs", f"/widget/v1/{build}/nope.js"):
        r = await client.get(path)
        assert r.status_code == 404, path
        assert r.headers["content-type"] == "application/problem+json"
        assert "widget/v1/widget.js" in r.json()["detail"]  # says where the current build is
    r = await client.get(f"/widget/v1/{build}/..%2F..%2Fapp%2Fsettings.py")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"


async def test_config_tells_the_widget_how_cards_are_added(client: AsyncTestClient[Litestar], tmp_path: Path,
                                                         database_url: str, clock: FrozenClock) -> None:
    off = (await client.get("/widget/v1/config.json")).json()
    assert off["card_mode"] == "off" and off["stripe_fake_url"] is None  # the fake lives inside the app process
    base = {"env": "test", "database_url": database_url, "data_dir": tmp_path / "d", "token_secret": "s" * 40}
    fake = load_settings({}, **base, stripe_backend="fake", stripe_api_base="http://127.0.0.1:12111/")
    async with AsyncTestClient(app=create_app(fake, clock=clock)) as c:
        cfg = (await c.get("/widget/v1/config.json")).json()
        assert (cfg["card_mode"], cfg["stripe_fake_url"]) == ("fake", "http://127.0.0.1:12111")
        assert cfg["stripe_publishable_key"].startswith("pk_test_")  # the test-card form calls the fake as Stripe.js
        csp = await _frame_csp(c)
        assert "frame-src http://127.0.0.1:12111;" in csp and "connect-src 'self' http://127.0.0.1:12111;" in csp
    stripe = load_settings({}, **base, stripe_secret_key="sk_test_x", stripe_webhook_secret="whsec_x",
                           stripe_publishable_key="pk_test_abc")
    async with AsyncTestClient(app=create_app(stripe, clock=clock)) as c:
        cfg = (await c.get("/widget/v1/config.json")).json()
        assert (cfg["card_mode"], cfg["stripe_publishable_key"]) == ("stripe", "pk_test_abc")
        csp = await _frame_csp(c)
        assert "script-src 'self' https://js.stripe.com;" in csp and "frame-src https://js.stripe.com" in csp
    assert "frame-src 'none';" in await _frame_csp(client)  # no card service, no frames


async def _frame_csp(c: AsyncTestClient[Litestar]) -> str:
    frame = (await c.get("/widget/v1/manifest.json")).json()["files"]["frame.html"]["url"]
    return str((await c.get(frame)).headers["content-security-policy"])
