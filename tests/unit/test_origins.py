"""Origins are parsed into the exact form browsers send; anything else is refused with a reason."""

from __future__ import annotations

import pytest

from app.origins import parse_origin


@pytest.mark.parametrize(("given", "expected"), [
    ("https://app.example.com", "https://app.example.com"),
    ("HTTPS://App.Example.COM", "https://app.example.com"),
    ("https://app.example.com:443", "https://app.example.com"),
    ("http://app.example.com:80", "http://app.example.com"),
    ("https://app.example.com:8443", "https://app.example.com:8443"),
    ("http://localhost:5173", "http://localhost:5173"),
    ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
    ("http://[::1]:3000", "http://[::1]:3000"),
    ("https://xn--bcher-kva.example", "https://xn--bcher-kva.example"),
])
def test_origins_are_normalised_to_the_browser_form(given: str, expected: str) -> None:
    assert parse_origin(given) == expected


@pytest.mark.parametrize("bad", [
    "*", "null", "https://*.example.com", "https://app.example.com/", "https://app.example.com/widget",
    "https://app.example.com?x=1", "https://user@app.example.com", "ftp://app.example.com", "app.example.com",
    "https://app.example.com:0", "https://app.example.com:70000", "https://-bad-.example.com", "https://a..b",
    "https://bücher.example", "http://[::zz]", "https://" + "a" * 250 + ".com",
])
def test_anything_but_one_exact_origin_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="origin"):
        parse_origin(bad)
