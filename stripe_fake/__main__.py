"""``python -m stripe_fake --port 12111 --webhook-url URL --webhook-secret whsec_...``: the fake on loopback.

Runs until SIGINT or SIGTERM. Events are delivered (signed with the webhook secret) to the webhook URL
shortly after the request that made them, as Stripe does. With ``--state-file`` the fake's objects survive
a restart (read at start, written at exit). ``commerce demo`` starts it this way.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from stripe_fake.core import FakeStripe
from stripe_fake.server import FakeStripeServer


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m stripe_fake", description="A local Stripe for development")
    parser.add_argument("--host", default="127.0.0.1", choices=["127.0.0.1", "::1", "localhost"])
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument("--webhook-url", action="append", default=[], help="POST events here (repeatable)")
    parser.add_argument("--webhook-secret", default="whsec_fake", help="signs the events")
    parser.add_argument("--state-file", type=Path, help="keep the fake's objects here across restarts (JSON)")
    parser.add_argument("--quiet", action="store_true")
    return parser


async def run(args: argparse.Namespace) -> None:
    """Serve until a signal arrives."""
    fake = FakeStripe(webhook_secret=args.webhook_secret, auto_deliver=True)
    if args.state_file is not None:
        fake.restore(args.state_file)
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
        await asyncio.sleep(0.25)  # let granian's runtime thread wind down before the interpreter does
        if args.state_file is not None:
            fake.save(args.state_file)


def main(argv: list[str] | None = None) -> int:
    asyncio.run(run(build_parser().parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
