"""The fake's 3-D Secure challenge page: what the bank shows inside Stripe.js's modal, simulated.

``next_action.use_stripe_sdk.stripe_js`` of an intent waiting for authentication points here. The page offers
Complete and Fail (like Stripe's own test page); the answer goes through the fake's publishable-key path with
the intent's client secret, then the page tells the window that framed it (``postMessage``; it carries no
secret) so the widget reads the intent again, as Stripe.js does.
"""

from __future__ import annotations

import html
import json
from urllib.parse import parse_qs, urlencode

from stripe_fake.core import FakeStripe, Json

MESSAGE_TYPE = "stripe-fake:3ds-complete"

_STYLE = """body{font:16px/1.5 system-ui,sans-serif;margin:0;padding:1rem;color:#1a1a1a;background:#fff}
main{max-width:28rem;margin:0 auto}h1{font-size:1.2rem;margin:0 0 .5rem}p{margin:.5rem 0}
.bank{font-weight:700;color:#3b3b98;letter-spacing:.05em}
.actions{display:flex;gap:.5rem;flex-wrap:wrap;margin-top:1rem}
button{font:inherit;padding:.5rem 1rem;border-radius:.4rem;border:1px solid #555;background:#fff;color:#1a1a1a}
button.primary{background:#1f5f3f;border-color:#1f5f3f;color:#fff}
button:focus-visible{outline:3px solid #1b4ea8;outline-offset:2px}"""


def _page(title: str, body: str, script: str = "") -> bytes:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_STYLE}</style></head>'
            f'<body><main>{body}</main>{script}</body></html>').encode()


def _intent(fake: FakeStripe, intent_id: str, secret: str) -> Json | None:
    obj = fake.objects.get(intent_id)
    if obj is None or obj.get("object") not in ("payment_intent", "setup_intent") or not secret:
        return None
    return obj if obj.get("client_secret") == secret else None


def _what(intent: Json) -> str:
    if intent["object"] == "setup_intent":
        return "Your bank asks you to confirm that you are saving this card."
    exponent = 0 if intent["currency"] in ("jpy", "krw") else 2
    amount = f"{intent['amount'] / 10 ** exponent:,.{exponent}f} {intent['currency'].upper()}"
    return f"Your bank asks you to confirm a payment of {amount}."


def challenge_page(fake: FakeStripe, intent_id: str, query: str) -> tuple[int, bytes]:
    """GET /_fake/3ds/{id}?client_secret=...: the challenge, or 404 for an unknown intent or a wrong secret."""
    secret = parse_qs(query).get("client_secret", [""])[0]
    intent = _intent(fake, intent_id, secret)
    if intent is None:
        return 404, _page("Not found", "<h1>No such authentication</h1>")
    if intent["status"] != "requires_action":
        return 409, _page("Nothing to confirm", "<h1>Nothing to confirm</h1><p>This payment is not waiting for "
                                                "authentication.</p>")
    e = html.escape
    body = (f'<p class="bank" aria-hidden="true">TEST BANK</p><h1>Confirm it is you (3-D Secure test)</h1>'
            f"<p>{e(_what(intent))}</p><p>This is the local Stripe fake's challenge: no bank is asked.</p>"
            f'<form method="post" action="/_fake/3ds/{e(intent_id)}">'
            f'<input type="hidden" name="client_secret" value="{e(secret)}">'
            f'<div class="actions"><button class="primary" name="success" value="true">Complete authentication'
            f'</button><button name="success" value="false">Fail authentication</button></div></form>')
    return 200, _page("3-D Secure test challenge", body)


def answer_challenge(fake: FakeStripe, intent_id: str, form: str) -> tuple[int, bytes]:
    """POST /_fake/3ds/{id}: the card holder's answer, through the publishable-key path with the client secret."""
    fields = parse_qs(form)
    secret = fields.get("client_secret", [""])[0]
    success = "true" if fields.get("success", ["false"])[0] == "true" else "false"
    body = urlencode({"key": "pk_test_challenge_page", "client_secret": secret, "success": success})
    reply = fake.handle("POST", f"/v1/_fake/authenticate/{intent_id}", "", {}, body)
    if reply.status != 200:
        return reply.status, _page("Not confirmed", "<h1>This authentication cannot be answered</h1>")
    message = json.dumps({"type": MESSAGE_TYPE, "intent": intent_id, "success": success == "true"})
    done = "Authentication complete." if success == "true" else "Authentication failed."
    script = f"<script>if (window.parent !== window) window.parent.postMessage({message}, '*');</script>"
    return 200, _page(done, f'<h1 role="status">{done}</h1><p>You can return to the payment.</p>', script)
