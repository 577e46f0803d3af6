"""``python -m stripe_fake --port 12111 --webhook-url URL --webhook-secret whsec_...``: the fake on loopback.

Runs until SIGINT or SIGTERM. Events are delivered (signed with the webhook secret) to the webhook URL
shortly after the request that made them, as Stripe does. ``commerce demo`` starts it this way.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from stripe_fake.core import FakeStripe
from stripe_fake.server import FakeStripeServer


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m stripe_fake", description="A local Stripe for development")
    parser.add_argument("--host", default="127.0.0.1", choices=["127.0.0.1", "::1", "localhost"])
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument("--webhook-url", action="append", default=[], help="POST events here (repeatable)")
    parser.add_argument("--webhook-secret", default="whsec_fake", help="signs the events")
    parser.add_argument("--quiet", action="store_true")
    return parser


async def run(args: argparse.Namespace) -> None:
    """Serve until a signal arrives."""
    fake = FakeStripe(webhook_secret=args.webhook_secret, auto_deliver=True)
    for url in args.webhook_url:
        fake.add_webhook_target(url)
    server = FakeStripeServer(fake, host=args.host, port=args.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    if not args.quiet:
        print(f"Stripe fake: {server.base_url}", flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> int:
    asyncio.run(run(build_parser().parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
