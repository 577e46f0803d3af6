"""Hosts are read the way resolvers read them before the address policy judges them (pure, table-driven)."""

from __future__ import annotations

import ipaddress

import pytest

from app.webhooks import targets
from app.webhooks.targets import UrlRejected

NONE: tuple[targets.IpNetwork, ...] = ()
LOOPBACK = targets.parse_networks(["127.0.0.0/8", "::1/128"])


@pytest.mark.parametrize("host,address", [
    ("169.254.169.254.", "169.254.169.254"),          # trailing dot
    ("0xa9fea9fe", "169.254.169.254"),                # one hex number
    ("0XA9FEA9FE", "169.254.169.254"),
    ("2852039166", "169.254.169.254"),                # one decimal number
    ("169.254.43518", "169.254.169.254"),             # a.b.c with c filling two bytes
    ("169.16689662", "169.254.169.254"),              # a.b with b filling three bytes
    ("0251.0376.0251.0376", "169.254.169.254"),       # octal parts
    ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"),       # hex parts
    ("127.1", "127.0.0.1"),
    ("0", "0.0.0.0"),
    ("\uff11\uff16\uff19.\uff12\uff15\uff14.\uff11\uff16\uff19.\uff12\uff15\uff14", "169.254.169.254"),  # fullwidth
    ("169\u3002254\u3002169\u3002254", "169.254.169.254"),  # ideographic full stops
])
def test_legacy_and_disguised_ipv4_spellings_become_the_address_they_mean(host: str, address: str) -> None:
    name, parsed, canonical = targets.normalize_host(host)
    assert parsed == ipaddress.ip_address(address) and name == address and not canonical


@pytest.mark.parametrize("host", ["1.2.3.4.5", "08", "1.2.3.256", "256.1", "example.123", "0x100000000", "1..2"])
def test_hosts_ending_in_a_number_that_is_no_address_are_malformed(host: str) -> None:
    with pytest.raises(UrlRejected):
        targets.normalize_host(host)


@pytest.mark.parametrize("host,name", [
    ("Hooks.Example.COM.", "hooks.example.com"), ("b\u00fccher.de", "xn--bcher-kva.de"),
    ("\u24dcetadata.google.internal", "metadata.google.internal"), ("1e100.net", "1e100.net"),
    ("_dmarc.example.com", "_dmarc.example.com"),
])
def test_names_are_lowercased_idna_mapped_and_lose_one_trailing_dot(host: str, name: str) -> None:
    assert targets.normalize_host(host) == (name, None, True)


@pytest.mark.parametrize("address,carried", [
    ("::ffff:169.254.169.254", "169.254.169.254"), ("::169.254.169.254", "169.254.169.254"),
    ("::ffff:0:a9fe:a9fe", "169.254.169.254"), ("64:ff9b::a9fe:a9fe", "169.254.169.254"),
    ("2002:a9fe:a9fe::1", "169.254.169.254"), ("64:ff9b::808:808", "8.8.8.8"),
])
def test_ipv6_addresses_carrying_ipv4_are_found(address: str, carried: str) -> None:
    assert targets.embedded_ipv4(ipaddress.IPv6Address(address)) == ipaddress.IPv4Address(carried)


@pytest.mark.parametrize("address", [
    "169.254.169.254", "127.0.0.1", "10.0.0.1", "172.16.0.1", "192.168.0.1", "100.64.0.1", "0.0.0.0",
    "198.18.0.1", "240.0.0.1", "255.255.255.255", "224.0.0.1", "192.0.2.1",
    "::1", "::", "fe80::1", "fc00::1", "fd00:ec2::254", "ff02::1", "2001:db8::1", "100::1",
    "::ffff:169.254.169.254", "::ffff:127.0.0.1", "::169.254.169.254", "::127.0.0.1", "::ffff:0:a9fe:a9fe",
    "64:ff9b::a9fe:a9fe", "64:ff9b::7f00:1", "64:ff9b:1::808:808", "2002:a9fe:a9fe::", "2002:7f00:1::1",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2", "::1:2:3:4",
])
def test_internal_addresses_are_refused_in_every_spelling(address: str) -> None:
    assert targets.address_refusal(ipaddress.ip_address(address), NONE) is not None


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808",
                                     "2002:808:808::1"])
def test_public_addresses_in_any_spelling_are_allowed(address: str) -> None:
    assert targets.address_refusal(ipaddress.ip_address(address), NONE) is None


def test_allowed_networks_cover_the_ipv4_an_ipv6_address_carries() -> None:
    assert targets.address_allowed(ipaddress.ip_address("::ffff:127.0.0.1"), LOOPBACK)
    assert targets.address_allowed(ipaddress.ip_address("::1"), LOOPBACK)
    assert not targets.address_allowed(ipaddress.ip_address("::ffff:169.254.169.254"), LOOPBACK)


@pytest.mark.parametrize("name,reason", [
    ("metadata", "metadata"), ("instance-data", "metadata"), ("metadata.google.internal", "metadata"),
    ("intranet", "single-label"), ("router", "single-label"), ("printer.local", ".local"),
    ("db.internal", ".internal"), ("nas.home.arpa", ".arpa"), ("1.0.0.127.in-addr.arpa", ".arpa"),
    ("x.corp", ".corp"), ("svc.localdomain", ".localdomain"),
])
def test_names_that_only_resolve_inside_a_network_are_refused(name: str, reason: str) -> None:
    refusal = targets.name_refusal(name, ())
    assert refusal is not None and reason in refusal
    assert targets.name_refusal(name, (name,)) is None  # unless the operator lists the host explicitly


def _validate(url: str, networks: tuple[targets.IpNetwork, ...] = NONE) -> str:
    return targets.validate_url(url, allowed_hosts=(), networks=networks, require_https=False)


@pytest.mark.parametrize("url", ["http://134744072/", "http://8.8.8.8./", "http://0x08080808/"])
def test_public_addresses_in_legacy_spellings_are_refused_with_the_canonical_form(url: str) -> None:
    with pytest.raises(UrlRejected, match=r"Write the address as 8\.8\.8\.8"):
        _validate(url)


@pytest.mark.parametrize("url", ["http://127.1:8080/", "http://[::ffff:127.0.0.1]/", "http://localhost./",
                                 "http://hooks.localhost/"])
def test_loopback_spellings_follow_the_allowed_networks(url: str) -> None:
    with pytest.raises(UrlRejected):
        _validate(url)
    if "127.1" not in url:
        assert _validate(url, LOOPBACK) == url


@pytest.mark.parametrize("url", ["http://[fe80::1%25eth0]/", "http://exa%6dple.com/", "http://a\\b.com/",
                                 "http://-bad-.example.com/", "http://" + "a" * 64 + ".com/"])
def test_hosts_with_zone_ids_escapes_or_invalid_labels_are_refused(url: str) -> None:
    with pytest.raises(UrlRejected):
        _validate(url)
