"""Pure decisions about where a webhook may go: URL syntax, host normalisation and the address policy.

A host is read the way a resolver would read it before anything is judged: one trailing dot dropped,
IDNA (UTS #46) mapping for non-ASCII names, and the legacy numeric IPv4 spellings ``inet_aton`` accepts
(``2852039166``, ``0xa9fea9fe``, ``169.254.43518``, ``127.1``) turned into the address they mean. IPv6
addresses that carry an IPv4 address (mapped, compatible, translated, NAT64, 6to4) are judged by that IPv4
address. Imports neither litestar nor sqlalchemy; no I/O.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import idna

URL_MAX_LENGTH = 2048
NAME_MAX_LENGTH = 253

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Names that only mean something inside a network (RFC 6761, 6762 appendix G, 7686, 8375, ICANN's .internal)
# and the cloud metadata names that are not under one of them.
SPECIAL_USE_SUFFIXES = ("local", "internal", "intranet", "private", "corp", "home", "lan", "localdomain", "arpa",
                        "invalid", "onion")
METADATA_NAMES = ("metadata.google.internal", "metadata.goog", "metadata", "instance-data")
LOOPBACK_V4 = ipaddress.IPv4Address("127.0.0.1")

_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_NUMBER = re.compile(r"^(?:0[xX][0-9a-fA-F]*|[0-9]+)$")
_HOST_CHARS = re.compile(r"^[^\x00-\x20%/\\?#@\[\]<>^|`{}\"']+$")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_COMPATIBLE = ipaddress.IPv6Network("::/96")
_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")


class UrlRejected(ValueError):
    """The endpoint URL is not acceptable; the message says why, for the vendor."""


@dataclass(frozen=True)
class Target:
    """Where a URL points: the normalised host (an ASCII name or an address's text) and, for literals, the address."""

    scheme: str
    host: str
    address: IpAddress | None
    port: int
    canonical: bool  # False when an address was spelled in a legacy form (``127.1``, ``0x7f000001``, a trailing dot)


def parse_networks(values: Iterable[str]) -> tuple[IpNetwork, ...]:
    return tuple(ipaddress.ip_network(v, strict=False) for v in values)


def literal_address(host: str) -> IpAddress | None:
    """The address when ``host`` is a plain IPv4 or (bracketed or not) IPv6 literal; None otherwise."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def legacy_ipv4(name: str) -> ipaddress.IPv4Address | None:
    """``inet_aton`` semantics: 1 to 4 parts, each decimal, octal (leading 0) or hex (0x); the last fills the rest.

    None when the name is not numeric at all. A name whose last label is a number but that is no valid
    address (``1.2.3.4.5``, ``08``, ``example.123``) raises UrlRejected, as URL parsers do: no real host ends so.
    """
    parts = name.split(".")
    if not _NUMBER.match(parts[-1]):
        return None
    values: list[int] = []
    for part in parts:
        if not _NUMBER.match(part):
            raise UrlRejected(f"The host {name!r} is neither a name nor an IPv4 address.")
        if part[:2] in ("0x", "0X"):
            values.append(int(part[2:] or "0", 16))
        elif len(part) > 1 and part[0] == "0":
            if not set(part) <= set("01234567"):
                raise UrlRejected(f"The host {name!r} is neither a name nor an IPv4 address.")
            values.append(int(part, 8))
        else:
            values.append(int(part))
    *head, last = values
    if len(values) > 4 or any(v > 255 for v in head) or last >= 256 ** (4 - len(head)):
        raise UrlRejected(f"The host {name!r} is neither a name nor an IPv4 address.")
    number = sum(v << (8 * (3 - i)) for i, v in enumerate(head)) + last
    return ipaddress.IPv4Address(number)


def normalize_host(host: str) -> tuple[str, IpAddress | None, bool]:
    """(normalised host, its address if it is one, whether it was written canonically); UrlRejected if invalid."""
    if not host:
        raise UrlRejected("The URL has no host.")
    if ":" in host or host.startswith("["):
        address = literal_address(host)
        if address is None or "%" in host:
            raise UrlRejected(f"The host {host!r} is not a valid IPv6 address (zone ids are not accepted).")
        return str(address), address, True
    if not _HOST_CHARS.match(host):
        raise UrlRejected(f"The host {host!r} has characters no host name may have.")
    name = host[:-1] if host.endswith(".") else host
    if not name.isascii():
        try:
            name = idna.encode(name, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise UrlRejected(f"The host {host!r} is not a valid internationalised domain name.") from exc
    name = name.lower()
    address = legacy_ipv4(name)
    if address is not None:
        return str(address), address, name == str(address) and name == host
    labels = name.split(".")
    if len(name) > NAME_MAX_LENGTH or not all(_LABEL.match(label) for label in labels):
        raise UrlRejected(f"The host {host!r} is not a valid domain name.")
    return name, None, True


def parse_target(url: str) -> Target:
    """Syntax of an endpoint URL and its normalised host; UrlRejected says what is wrong."""
    if len(url) > URL_MAX_LENGTH:
        raise UrlRejected(f"The URL is longer than {URL_MAX_LENGTH} characters.")
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        raise UrlRejected("The URL must not contain spaces or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlRejected("The URL is malformed.") from exc
    if parts.scheme not in ("http", "https"):
        raise UrlRejected("The URL scheme must be http or https.")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UrlRejected("The URL must not carry credentials; authenticate requests with the signature.")
    if parts.fragment:
        raise UrlRejected("The URL must not have a fragment.")
    if "\\" in parts.netloc:
        raise UrlRejected("The URL is malformed.")
    if not parts.hostname:
        raise UrlRejected("The URL has no host.")
    if port == 0:
        raise UrlRejected("The URL port must be between 1 and 65535.")
    host, address, canonical = normalize_host(parts.hostname)
    return Target(scheme=parts.scheme, host=host, address=address,
                  port=port or (443 if parts.scheme == "https" else 80), canonical=canonical)


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, translated, NAT64, 6to4)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _COMPATIBLE or address in _TRANSLATED or address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    return None  # Teredo (2001::/32) is not public by itself and so refused without looking inside


def address_refusal(address: IpAddress, networks: Sequence[IpNetwork]) -> str | None:
    """Why ``address`` may not be reached (None: it may). Allowed networks win; else only public unicast."""
    if any(address in n for n in networks):
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address in _NAT64_LOCAL:
            return f"{address} is a local-use NAT64 address"
        carried = embedded_ipv4(address)
        if carried is not None:
            reason = address_refusal(carried, networks)
            return None if reason is None else f"{address} carries the IPv4 address {carried}: {reason}"
        if address.is_reserved:
            return f"{address} is a reserved address"
    if address.is_multicast:
        return f"{address} is a multicast address"
    if not address.is_global:
        kind = ("loopback" if address.is_loopback else "link-local" if address.is_link_local
                else "private" if address.is_private else "non-public")
        return f"{address} is a {kind} (internal) address"
    return None


def address_allowed(address: IpAddress, networks: Sequence[IpNetwork]) -> bool:
    """Public unicast addresses are fine; internal ones only inside an allowed network."""
    return address_refusal(address, networks) is None


def host_allowed(host: str, patterns: Sequence[str]) -> bool:
    """No patterns allow every host; ``example.com`` matches itself, ``*.example.com`` its subdomains."""
    if not patterns:
        return True
    host = host.lower().rstrip(".")
    for pattern in patterns:
        pattern = pattern.lower().rstrip(".")
        if pattern.startswith("*.") and host.endswith(pattern[1:]):
            return True
        if host == pattern:
            return True
    return False


def is_loopback_name(name: str) -> bool:
    return name in ("localhost", "localhost.localdomain") or name.endswith(".localhost")


def name_refusal(name: str, allowed_hosts: Sequence[str]) -> str | None:
    """Why a host name (already normalised) may not be used; names listed in the allowed hosts are trusted."""
    if any(name == p.lower().rstrip(".") for p in allowed_hosts):
        return None
    if name in METADATA_NAMES:
        return f"{name!r} is a cloud metadata service"
    if "." not in name:
        return f"{name!r} is a single-label name that only resolves inside a network; use a fully qualified name"
    suffix = next((s for s in SPECIAL_USE_SUFFIXES if name.endswith("." + s)), None)
    if suffix is not None:
        return f"{name!r} is under .{suffix}, a name that only resolves inside a network"
    return None


def target_refusal(target: Target, *, allowed_hosts: Sequence[str], networks: Sequence[IpNetwork]) -> str | None:
    """Everything decidable without DNS: the host allow-list, names and literal addresses (localhost is loopback)."""
    if not host_allowed(target.host, allowed_hosts):
        return f"The host {target.host!r} is not in the allowed list of webhook hosts."
    address = target.address
    if address is None and is_loopback_name(target.host):
        address = LOOPBACK_V4
    if address is not None:
        reason = address_refusal(address, networks)
        return None if reason is None else f"The host {target.host!r} is an internal address ({reason})."
    reason = name_refusal(target.host, allowed_hosts)
    return None if reason is None else f"The host is refused: {reason}."


def validate_url(
    url: str, *, allowed_hosts: Sequence[str], networks: Sequence[IpNetwork], require_https: bool,
) -> str:
    """Check an endpoint URL before it is stored; returns it unchanged or raises UrlRejected.

    Names are resolved before every delivery and each resolved address is judged the same way
    (app.webhooks.egress): a name that is fine now may point somewhere internal later.
    """
    target = parse_target(url)
    if require_https and target.scheme != "https":
        raise UrlRejected("The URL must use https in production.")
    reason = target_refusal(target, allowed_hosts=allowed_hosts, networks=networks)
    if reason is not None:
        raise UrlRejected(reason)
    if not target.canonical:
        raise UrlRejected(f"Write the address as {target.host} (dotted decimal, no trailing dot).")
    return url
