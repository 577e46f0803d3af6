"""Journey 2: the card route in the browser against the local Stripe fake served on its own loopback port.

The app talks to the fake over HTTP as to Stripe (secret key, signed webhooks back to the app); the widget's
test-card form talks to it from the browser as Stripe.js would (publishable key, the intent's client secret,
CORS), and 3-D Secure shows the fake's challenge page inside the dialog.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from playwright.async_api import FrameLocator, Locator, Page, expect

from tests.browser.conftest import Stack
from tests.support.live_server import free_port

WEBHOOK_SECRET = "whsec_browser_" + "j" * 24


@pytest.fixture
def stack_env(api_port: int) -> Iterator[dict[str, str]]:
    """``python -m stripe_fake`` on its own port, posting its signed events to this test's app."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "stripe_fake", "--port", str(port), "--quiet", "--webhook-secret", WEBHOOK_SECRET,
         "--webhook-url", f"http://127.0.0.1:{api_port}/v1/stripe/webhook"],
        env={**os.environ, "PYTHONWARNINGS": "ignore"}, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
            assert proc.poll() is None and time.monotonic() < deadline, "the Stripe fake did not start"
            time.sleep(0.05)
        yield {"COMMERCE_STRIPE": "stripe", "STRIPE_SECRET_KEY": "sk_test_journey", "STRIPE_WEBHOOK_SECRET":
               WEBHOOK_SECRET, "STRIPE_API_BASE": f"http://127.0.0.1:{port}", "STRIPE_PUBLISHABLE_KEY": "pk_test_j"}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _checkout(stack: Stack, page: Page) -> Locator:
    """Buy forecasting as the card user up to the payment step; returns the dialog."""
    offer = page.locator("section.panel[data-feature=forecasting]")
    await expect(offer.get_by_role("heading", name="Unlock Forecasting")).to_be_visible()
    await offer.get_by_role("button", name="Buy").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog.get_by_text("Your own card", exact=True)).to_be_visible()
    await dialog.get_by_role("button", name="Confirm purchase").click()
    await expect(dialog.get_by_role("heading", name="Pay with your card")).to_be_visible()
    await expect(dialog.get_by_text("You have no saved card yet.")).to_be_visible()
    return dialog


async def _type_card(dialog: Locator, number: str) -> None:
    await dialog.get_by_label("Card number").fill(number)
    await dialog.get_by_label("Expiry (MM/YY)").fill("12/34")
    await dialog.get_by_label("Security code (CVC)").fill("123")
    await dialog.get_by_role("button", name="Save card").click()


async def _pass_challenge(dialog: Locator, frame: FrameLocator, text: str) -> None:
    await expect(dialog.get_by_role("heading", name="Confirm it's you")).to_be_visible()
    await expect(frame.get_by_text(text)).to_be_visible()
    await frame.get_by_role("button", name="Complete authentication").click()


def _cents(text: str) -> int:
    return int(text.replace("$", "").replace(",", "").replace(".", ""))


def _orders(stack: Stack) -> list[tuple[str, str]]:
    return [(o["state"], o["route"]) for o in
            stack.vendor("GET", "/v1/orders", params={"user": "acme-cara"}).json()["data"]]


async def test_card_user_adds_a_test_card_and_pays(stack: Stack) -> None:
    assert not stack.allowed("acme-cara", "forecasting")
    page = await stack.open("acme-cara")
    offer = page.locator("section.panel[data-feature=forecasting]")
    await offer.get_by_role("button", name="Buy").click()
    dialog = page.get_by_role("dialog")
    # Cara is billed in Germany: the quote shows the price before tax, German VAT at 19 % and the gross
    await expect(dialog.get_by_text("Tax (Germany, 19 %)", exact=True)).to_be_visible()
    await expect(dialog.get_by_text("Price before tax", exact=True)).to_be_visible()
    gross = dialog.locator("dd.total")
    await expect(gross).to_have_text(re.compile(r"^\$\d+\.\d\d$"))
    def value(label: str) -> Locator:
        return dialog.locator("dt", has_text=label).locator("xpath=following-sibling::dd[1]")

    net, tax = await value("Price before tax").inner_text(), await value("Tax (Germany, 19 %)").inner_text()
    gross_text = await gross.inner_text()
    assert _cents(net) + _cents(tax) == _cents(gross_text)
    await stack.shot(page, "quote-with-tax", only=dialog)
    await dialog.get_by_role("button", name="Confirm purchase").click()
    await expect(dialog.get_by_role("heading", name="Pay with your card")).to_be_visible()
    await expect(dialog.get_by_text("4242 4242 4242 4242: succeeds")).to_be_visible()
    await stack.shot(page, "add-card")
    await stack.shot(page, "add-card-dialog", only=dialog)
    await _type_card(dialog, "4242 4242 4242 4242")
    card = dialog.get_by_role("radio", name="Visa ending in 4242, expires 12/2034")
    await expect(card).to_be_checked()
    await stack.shot(page, "card-saved")
    await dialog.get_by_role("button", name=f"Pay {gross_text}").click()  # the card is charged the gross
    await expect(page.get_by_role("dialog", name="Forecasting is yours")).to_be_visible()
    await expect(page.locator("section.panel[data-feature=forecasting]")).to_have_attribute("data-state", "unlocked")
    await stack.shot(page, "paid")
    assert stack.allowed("acme-cara", "forecasting")
    assert _orders(stack) == [("fulfilled", "card")]
    [order] = stack.vendor("GET", "/v1/orders", params={"user": "acme-cara"}).json()["data"]
    assert (order["total_minor"], order["tax_minor"]) == (_cents(gross_text), _cents(tax))
    assert order["tax_transaction"] is not None  # Stripe Tax recorded what was charged


async def test_a_3ds_card_passes_the_challenge_when_saved_and_when_paying(stack: Stack) -> None:
    page = await stack.open("acme-cara")
    dialog = await _checkout(stack, page)
    frame = page.frame_locator("iframe.challenge")
    await _type_card(dialog, "4000 0027 6000 3184")
    await _pass_challenge(dialog, frame, "confirm that you are saving this card")
    await stack.shot(page, "challenge-on-setup")
    await expect(dialog.get_by_role("radio", name="Visa ending in 3184, expires 12/2034")).to_be_checked()
    await dialog.get_by_role("button", name="Pay $").click()
    await expect(frame.get_by_text("confirm a payment of")).to_be_visible()
    await stack.shot(page, "challenge-on-payment")
    await stack.shot(page, "challenge-dialog", only=dialog)
    await _pass_challenge(dialog, frame, "confirm a payment of")
    await expect(page.get_by_role("dialog", name="Forecasting is yours")).to_be_visible()
    await stack.shot(page, "paid-after-3ds")
    assert stack.allowed("acme-cara", "forecasting")
    assert _orders(stack) == [("fulfilled", "card")]


async def test_a_declining_card_shows_the_message_and_buys_nothing(stack: Stack) -> None:
    page = await stack.open("acme-cara")
    dialog = await _checkout(stack, page)
    await _type_card(dialog, "4000 0000 0000 0002")  # declined as soon as it is saved
    await expect(dialog.get_by_role("alert")).to_have_text(
        "Your bank declined this card. Use another card, or ask your bank why.")
    await stack.shot(page, "declined-on-save")
    await expect(dialog.get_by_role("radio")).to_have_count(0)

    await _type_card(dialog, "4000 0000 0000 9995")  # saved fine, every charge fails: insufficient funds
    await expect(dialog.get_by_role("radio", name="Visa ending in 9995, expires 12/2034")).to_be_checked()
    await dialog.get_by_role("button", name="Pay $").click()
    alert = dialog.get_by_role("alert")
    await expect(alert).to_contain_text("insufficient funds")
    await expect(alert).to_contain_text("Nothing was bought.")
    await stack.shot(page, "declined-on-payment")
    await stack.shot(page, "declined-dialog", only=dialog)
    await stack.axe(page)
    assert not stack.allowed("acme-cara", "forecasting")
    assert _orders(stack) == [("failed", "card")]
    await expect(page.locator("section.panel[data-feature=forecasting]")).not_to_have_attribute(
        "data-state", "unlocked")
