"""Pure webhook decisions: signatures and their verification, retry schedule, URL safety, matching."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

import pytest

from app.settings import DEFAULT_RETRY_SCHEDULE
from app.webhooks import domain
from app.webhooks.verify import SignatureError, parse_header, verify

NOW = 1_790_000_000
BODY = b'{"id":"evt_1","type":"test.ping"}'
LOOPBACK = domain.parse_networks(["127.0.0.0/8", "::1/128"])


def test_signature_header_verifies_with_the_helper() -> None:
    header = domain.signature_header(["whsec_a"], NOW, BODY)
    assert header.startswith(f"t={NOW},v1=")
    assert verify(BODY, header, "whsec_a", now=NOW) == NOW


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    expected = hmac.new(b"whsec_a", f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert domain.sign("whsec_a", NOW, BODY) == expected


def test_during_rotation_both_secrets_sign_and_either_verifies() -> None:
    header = domain.signature_header(["whsec_new", "whsec_old"], NOW, BODY)
    assert len(parse_header(header)[1]) == 2
    verify(BODY, header, "whsec_new", now=NOW)
    verify(BODY, header, ["whsec_old"], now=NOW)
    with pytest.raises(SignatureError):
        verify(BODY, header, "whsec_other", now=NOW)


@pytest.mark.parametrize("skew", [301, -301, 86_400])
def test_timestamps_outside_the_tolerance_window_are_rejected(skew: int) -> None:
    header = domain.signature_header(["whsec_a"], NOW, BODY)
    with pytest.raises(SignatureError, match="tolerance"):
        verify(BODY, header, "whsec_a", now=NOW + skew)


def test_timestamps_inside_the_window_are_accepted_and_window_is_configurable() -> None:
    header = domain.signature_header(["whsec_a"], NOW, BODY)
    verify(BODY, header, "whsec_a", now=NOW + 299)
    with pytest.raises(SignatureError):
        verify(BODY, header, "whsec_a", now=NOW + 61, tolerance_seconds=60)


def test_a_replayed_request_with_a_forged_newer_timestamp_fails() -> None:
    old = domain.signature_header(["whsec_a"], NOW - 3600, BODY)
    forged = old.replace(f"t={NOW - 3600}", f"t={NOW}")
    with pytest.raises(SignatureError, match="no signature matches"):
        verify(BODY, forged, "whsec_a", now=NOW)


@pytest.mark.parametrize("header", ["", "v1=abc", f"t={NOW}", "t=abc,v1=00", f"t={NOW},v1=\u00e9\u00e9",
                                    "x" * 5000])
def test_malformed_headers_are_rejected(header: str) -> None:
    with pytest.raises(SignatureError):
        verify(BODY, header, "whsec_a", now=NOW)


def test_tampered_body_fails() -> None:
    header = domain.signature_header(["whsec_a"], NOW, BODY)
    with pytest.raises(SignatureError):
        verify(BODY + b" ", header, "whsec_a", now=NOW)


def test_default_schedule_spans_about_three_days() -> None:
    span = domain.schedule_span(DEFAULT_RETRY_SCHEDULE)
    assert timedelta(days=2.5) < span < timedelta(days=3.5)


def test_retry_delays_grow_jitter_stays_in_bounds_and_schedule_ends() -> None:
    schedule = (10, 60, 300)
    assert domain.retry_delay(1, schedule, jitter=0.2, rand=lambda: 0.5) == timedelta(seconds=10)
    assert domain.retry_delay(2, schedule, jitter=0.2, rand=lambda: 0.0) == timedelta(seconds=48)
    assert domain.retry_delay(3, schedule, jitter=0.2, rand=lambda: 1.0) == timedelta(seconds=360)
    assert domain.retry_delay(4, schedule, jitter=0.2, rand=lambda: 0.5) is None


def test_jitter_spreads_delays() -> None:
    import random

    rng = random.Random(7)
    delays = {domain.retry_delay(1, (100,), jitter=0.2, rand=rng.random) for _ in range(50)}
    assert len(delays) > 40
    assert all(timedelta(seconds=80) <= d <= timedelta(seconds=120) for d in delays if d is not None)


@pytest.mark.parametrize("patterns,event_type,expected", [
    (["*"], "order.paid", True), (["order.*"], "order.paid", True), (["order.*"], "orders.paid", False),
    (["order.paid"], "order.paid", True), (["order.paid"], "order.failed", False), ([], "order.paid", False),
    (["provision.requested", "trial.*"], "trial.started", True),
])
def test_subscription_matching(patterns: list[str], event_type: str, expected: bool) -> None:
    assert domain.matches(event_type, patterns) is expected


def test_should_disable_needs_both_duration_and_count() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    kw = {"min_failures": 5, "after": timedelta(hours=1)}
    assert not domain.should_disable(consecutive_failures=9, failing_since=None, now=start, **kw)  # type: ignore[arg-type]
    assert not domain.should_disable(consecutive_failures=4, failing_since=start, now=start + timedelta(hours=2),
                                     **kw)  # type: ignore[arg-type]
    assert not domain.should_disable(consecutive_failures=9, failing_since=start, now=start + timedelta(minutes=59),
                                     **kw)  # type: ignore[arg-type]
    assert domain.should_disable(consecutive_failures=5, failing_since=start, now=start + timedelta(hours=1),
                                 **kw)  # type: ignore[arg-type]


def _check(url: str, *, hosts: tuple[str, ...] = (), networks: tuple[str, ...] | None = None,
           https: bool = False) -> str:
    nets = LOOPBACK if networks is None else domain.parse_networks(networks)
    return domain.validate_url(url, allowed_hosts=hosts, networks=nets, require_https=https)


@pytest.mark.parametrize("url", [
    "https://hooks.example.com/commerce", "http://127.0.0.1:8080/hooks", "http://localhost/x",
    "https://8.8.8.8/x", "https://[2001:4860:4860::8888]/x",
])
def test_acceptable_urls(url: str) -> None:
    assert _check(url) == url


@pytest.mark.parametrize("url,reason", [
    ("ftp://example.com/x", "scheme"), ("file:///etc/passwd", "scheme"), ("javascript:alert(1)", "scheme"),
    ("https://user:pass@example.com/x", "credentials"), ("https://user@example.com/x", "credentials"),
    ("https://example.com/x#frag", "fragment"), ("https:///x", "host"), ("https://example.com:99999/", "malformed"),
    ("https://exa mple.com/", "spaces"), ("https://example.com/" + "a" * 2100, "longer"),
    ("http://10.0.0.5/x", "internal"), ("http://169.254.169.254/latest", "internal"),
    ("http://[::ffff:10.0.0.1]/x", "internal"), ("http://192.168.1.1/", "internal"), ("http://0.0.0.0/", "internal"),
])
def test_rejected_urls(url: str, reason: str) -> None:
    with pytest.raises(domain.UrlRejected, match=reason):
        _check(url)


def test_production_rules_refuse_http_and_loopback() -> None:
    with pytest.raises(domain.UrlRejected, match="https"):
        _check("http://hooks.example.com/", https=True)
    with pytest.raises(domain.UrlRejected, match="internal"):
        _check("https://127.0.0.1/", networks=())
    with pytest.raises(domain.UrlRejected, match="internal"):
        _check("https://localhost/", networks=())


def test_host_allow_list() -> None:
    hosts = ("hooks.example.com", "*.vendor.io")
    assert _check("https://hooks.example.com/x", hosts=hosts)
    assert _check("https://a.b.vendor.io/x", hosts=hosts)
    with pytest.raises(domain.UrlRejected, match="allowed list"):
        _check("https://evil.com/x", hosts=hosts)
    with pytest.raises(domain.UrlRejected, match="allowed list"):
        _check("https://vendor.io.evil.com/x", hosts=hosts)


def test_allowed_internal_networks_can_be_configured() -> None:
    assert domain.address_allowed(ipaddress.ip_address("10.1.2.3"), domain.parse_networks(["10.0.0.0/8"]))
    assert not domain.address_allowed(ipaddress.ip_address("10.1.2.3"), ())
    assert not domain.address_allowed(ipaddress.ip_address("224.0.0.1"), ())


def test_worker_command_and_dispatcher_setting_exist() -> None:
    from app.cli import main
    from app.settings import SettingsError, load_settings

    assert main(["worker", "--help"]) == 0
    assert load_settings({"COMMERCE_DISPATCHER": "off"}, token_secret="x" * 40).dispatcher == "off"
    parsed = load_settings({"COMMERCE_WEBHOOK_RETRY_SCHEDULE": "5, 50", "COMMERCE_WEBHOOK_ALLOWED_NETWORKS":
                            "10.0.0.0/8"}, token_secret="x" * 40)
    assert parsed.webhook_retry_schedule == (5, 50) and parsed.webhook_networks == ("10.0.0.0/8",)
    assert load_settings({}, token_secret="x" * 40, env="production").webhook_networks == ()
    for bad in ({"COMMERCE_WEBHOOK_TIMEOUT_SECONDS": "600"}, {"COMMERCE_WEBHOOK_ALLOWED_NETWORKS": "nope"},
                {"COMMERCE_DISPATCHER": "maybe"}, {"COMMERCE_WEBHOOK_RETRY_SCHEDULE": "x"}):
        with pytest.raises(SettingsError):
            load_settings(bad, token_secret="x" * 40)
