"""The one place that decides which Stripe a process talks to (the app factory, the CLI and the demo ask here).

* STRIPE_SECRET_KEY set: Stripe's API (or STRIPE_API_BASE, e.g. the demo's fake on loopback) over HTTPX;
* no key, outside production: the local fake (``stripe_fake``, a development and test tool), in-process
  through the SDK's HTTP-client seam, delivering its events to this app; imported only in that case;
* no key in production: none (card routes answer 503 card_payments_disabled);
* ``commerce demo`` runs the fake as its own process on a loopback port (``demo_stripe_fake``) and points the
  app's workers at it over HTTP, as if it were Stripe; browsers (the widget's test-card form) call it too.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import msgspec
from litestar import Litestar

from app.clock import Clock
from app.settings import Settings
from billing.stripe import gateway as stripe_gateway
from billing.stripe import inbound
from billing.stripe.gateway import StripeGateway

if TYPE_CHECKING:
    from stripe_fake import FakeStripe

log = logging.getLogger("commerce")


def create_gateway(settings: Settings, *, fake: FakeStripe | None = None) -> StripeGateway | None:
    """The process's gateway: real Stripe with a key, else (never in production) ``fake`` or a new local fake."""
    mode = settings.stripe_mode
    if fake is None and mode == "off":
        return None
    if fake is None and mode == "stripe":
        return stripe_gateway.create_gateway(settings)
    from stripe_fake import FakeHTTPClient, FakeStripe

    secret = settings.stripe_webhook_secret or "whsec_" + secrets.token_urlsafe(24)
    fake = fake or FakeStripe(webhook_secret=secret)
    fake.webhook_secret = secret
    return stripe_gateway.create_gateway(msgspec.structs.replace(settings, stripe_webhook_secret=secret),
                                         http_client=FakeHTTPClient(fake), api_key="sk_test_fake", fake=fake)


def app_gateway(app: Litestar, settings: Settings, clock: Clock, fake: FakeStripe | None) -> StripeGateway | None:
    """The app's gateway; a local fake made here delivers its events to this app shortly after each call."""
    gateway = create_gateway(settings, fake=fake)
    if gateway is None or fake is not None or gateway.fake is None:
        return gateway
    from stripe_fake import FakeStripe

    assert isinstance(gateway.fake, FakeStripe)

    async def deliver(payload: bytes, signature: str) -> None:
        await inbound.receive(app.state.sessionmaker, gateway, payload, signature, clock=clock)

    gateway.fake.auto_deliver = True
    gateway.fake.add_webhook_target(deliver)
    log.info("card payments use the in-process Stripe fake (no STRIPE_SECRET_KEY)")
    return gateway


DEMO_SECRET_KEY = "sk_test_demo"  # the fake accepts any sk_ key; a real key never reaches it
DEMO_PUBLISHABLE_KEY = "pk_test_demo"  # what the widget's test-card form sends from the browser, as Stripe.js would


def _reachable(host: str) -> str:
    """The address to reach a server bound to ``host``: loopback for a wildcard bind."""
    try:
        wildcard = ipaddress.ip_address(host).is_unspecified
    except ValueError:
        wildcard = not host
    return "127.0.0.1" if wildcard else (f"[{host}]" if ":" in host else host)


def _wait_listening(process: subprocess.Popen[bytes], port: int, *, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the Stripe fake exited at start (code {process.returncode}); is port {port} free?")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"the Stripe fake did not listen on 127.0.0.1:{port} within {within:.0f} s")


@contextlib.contextmanager
def demo_stripe_fake(settings: Settings, *, port: int) -> Iterator[str]:
    """Run ``python -m stripe_fake`` on 127.0.0.1:``port`` for the block; yields its URL.

    Sets STRIPE_SECRET_KEY, STRIPE_API_BASE and STRIPE_WEBHOOK_SECRET in this process's environment, so the
    app's workers talk to the fake over HTTP, and the fake delivers its signed events to the app's
    ``POST /v1/stripe/webhook``. Its objects are kept in the data folder, so the Stripe customers the
    database remembers still exist after the demo restarts.
    """
    host = _reachable(settings.host)
    secret = "whsec_" + secrets.token_urlsafe(24)
    command = [sys.executable, "-m", "stripe_fake", "--port", str(port), "--webhook-secret", secret, "--quiet",
               "--webhook-url", f"http://{host}:{settings.port}/v1/stripe/webhook",
               "--state-file", str(settings.data_dir / "stripe-fake.json")]  # the customers stored in the database
    process = subprocess.Popen(command)  # noqa: S603 (our own interpreter and module, fixed arguments)
    url = f"http://127.0.0.1:{port}"
    # the workers see a Stripe on loopback (COMMERCE_STRIPE=stripe with its key); the fake is this process's
    names = {"COMMERCE_STRIPE": "stripe", "STRIPE_SECRET_KEY": DEMO_SECRET_KEY, "STRIPE_API_BASE": url,
             "STRIPE_WEBHOOK_SECRET": secret, "STRIPE_PUBLISHABLE_KEY": DEMO_PUBLISHABLE_KEY}
    before = {name: os.environ.get(name) for name in names}
    try:
        _wait_listening(process, port)
        os.environ.update(names)
        yield url
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
