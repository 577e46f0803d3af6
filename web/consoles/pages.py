"""The consoles' HTML: the page shell (landmarks, navigation, sign-out form with its CSRF token) and the short
pages for signing in and for errors. Every value is escaped; there is no inline script or style."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

ADMIN_PAGES = {"budgets": "Budgets", "approvals": "Approvals", "guardrails": "Guardrails", "spend": "Spend",
               "adoption": "Adoption", "audit": "Audit log"}
VENDOR_PAGES = {"catalog": "Catalog", "availability": "Availability", "accounts": "Accounts",
                "suggestions": "Suggestions", "credit": "Sales credit", "webhooks": "Webhooks"}


@dataclass(frozen=True)
class Shell:
    console: str  # "admin" or "vendor"
    page: str
    pages: dict[str, str]
    base: str  # the assets' folder, with the build id
    csrf: str
    account: str | None
    account_name: str | None
    currency: str | None
    who: str
    vendor: bool


def _head(base: str, title: str, *, script: bool, meta: str = "") -> str:
    module = f'<script type="module" src="{base}/console.mjs"></script>' if script else ""
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{escape(title)}</title>{meta}<link rel="icon" href="data:,">'  # no favicon request (a 404)
            f'<link rel="stylesheet" href="{base}/console.css">{module}</head>')


def shell_page(s: Shell) -> str:
    """One console page: the app draws it into <div id="view"> from the API."""
    root = "/admin" if s.console == "admin" else "/console"
    query = f"?account={escape(s.account)}" if s.vendor and s.account else ""
    current = ' aria-current="page"'
    links = "".join(
        f'<li><a href="{root}/{key}{query}"{current if key == s.page else ""}>{escape(label)}</a></li>'
        for key, label in s.pages.items())
    title = s.pages[s.page]
    place = f"{s.account_name} · Admin" if s.console == "admin" else "Vendor console"
    meta = (f'<meta name="console" content="{s.console}"><meta name="console-page" content="{escape(s.page)}">'
            f'<meta name="csrf-token" content="{escape(s.csrf)}">'
            + (f'<meta name="console-account" content="{escape(s.account)}">' if s.account else "")
            + (f'<meta name="console-currency" content="{escape(s.currency)}">' if s.currency else ""))
    back = ('<a class="back" href="/console/accounts">Vendor console</a>' if s.vendor and s.console == "admin" else "")
    return (_head(s.base, f"{title} · {place}", script=True, meta=meta)
            + '<body><a class="skip" href="#main">Skip to content</a>'
            + f'<header class="top"><p class="brand">{escape(place)}</p>{back}'
            + f'<nav aria-label="Console pages"><ul>{links}</ul></nav>'
            + '<form class="sign-out" method="post" action="/console-sign-out">'
            + f'<span class="who">{escape(s.who)}</span><input type="hidden" name="csrf" value="{escape(s.csrf)}">'
            + '<button type="submit">Sign out</button></form>'
            + '</header>'
            + f'<main id="main" tabindex="-1"><h1>{escape(title)}</h1>'
            + '<div id="view"><p class="loading" role="status">Loading…</p></div>'
            + '<noscript><p>This page needs JavaScript to show its figures.</p></noscript></main></body></html>')


def sign_in_page(base: str, *, token: str, action: str) -> str:
    """The link's landing page: one button, so a link previewer fetching the URL does not use it up."""
    body = ('<main id="main" class="narrow"><h1>Sign in to the console</h1>'
            '<p>This one-time link signs you in on this browser.</p>'
            f'<form method="post" action="{escape(action)}"><input type="hidden" name="token" value="{escape(token)}">'
            '<button type="submit" class="primary">Sign in</button></form></main>')
    if not token:
        body = ('<main id="main" class="narrow"><h1>Sign in to the console</h1>'
                '<p>Open the console link you were sent; it carries the sign-in token.</p></main>')
    return _head(base, "Sign in · Console", script=False) + f"<body>{body}</body></html>"


def message_page(base: str, heading: str, text: str) -> str:
    """A plain page saying what happened and what to do."""
    return (_head(base, f"{heading} · Console", script=False)
            + f'<body><main id="main" class="narrow"><h1>{escape(heading)}</h1><p>{escape(text)}</p></main>'
            + '</body></html>')
