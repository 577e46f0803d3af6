"""Web origins as browsers send them (``scheme://host[:port]``): parsing and normalising, no I/O."""

from __future__ import annotations

import ipaddress
import re

MAX_ORIGIN_LENGTH = 255
_DEFAULT_PORTS = {"http": 80, "https": 443}
_ORIGIN = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<host>\[[0-9A-Fa-f:.]+\]|[^:/?#\[\]@]+)"
                     r"(?::(?P<port>[0-9]{1,5}))?$")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def parse_origin(value: str) -> str:
    """The origin in the exact form a browser sends in its ``Origin`` header; ValueError says what is wrong.

    Lower-case scheme and host, no default port, no path, query, fragment or credentials. Wildcards and
    ``null`` are refused: an allowed origin is one exact site.
    """
    if len(value) > MAX_ORIGIN_LENGTH:
        raise ValueError(f"an origin is at most {MAX_ORIGIN_LENGTH} characters")
    match = _ORIGIN.match(value.strip())
    if match is None:
        raise ValueError("an origin is scheme://host[:port] with no path, query or wildcard "
                         "(e.g. https://app.example.com)")
    scheme, host, port = match["scheme"].lower(), match["host"].lower(), match["port"]
    if scheme not in _DEFAULT_PORTS:
        raise ValueError("an origin's scheme is http or https")
    _check_host(host)
    if port is not None:
        number = int(port)
        if not 1 <= number <= 65_535:
            raise ValueError("an origin's port is between 1 and 65535")
        if number != _DEFAULT_PORTS[scheme]:
            return f"{scheme}://{host}:{number}"
    return f"{scheme}://{host}"


def _check_host(host: str) -> None:
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError as exc:
            raise ValueError("an origin's IPv6 host is not a valid address") from exc
        return
    labels = host.split(".")
    if len(host) > 253 or not all(_LABEL.match(label) for label in labels):
        raise ValueError("an origin's host is a DNS name (letters, digits, hyphens; internationalised names "
                         "in their xn-- form) or an IP address")
