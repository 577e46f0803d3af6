"""Stripe's v1 wire format: bracket-encoded form parameters (``a[b][0][c]=x``) into a tree, and back."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

_SEGMENT = re.compile(r"\[([^\[\]]*)\]")


class FormError(ValueError):
    """The form body cannot be read as Stripe parameters."""


def _path(key: str) -> list[str]:
    head, _, rest = key.partition("[")
    if not head:
        raise FormError(f"invalid parameter name {key!r}")
    parts = [head]
    if rest:
        rest = "[" + rest
        consumed = "".join(m.group(0) for m in _SEGMENT.finditer(rest))
        if consumed != rest:
            raise FormError(f"invalid parameter name {key!r}")
        parts.extend(m.group(1) for m in _SEGMENT.finditer(rest))
    return parts


def _listify(node: Any) -> Any:
    """Dicts whose keys are all 0..n-1 (``x[0]``, ``x[1]``; ``x[]`` appends) become lists."""
    if not isinstance(node, dict):
        return node
    out = {k: _listify(v) for k, v in node.items()}
    if out and all(k.isdigit() for k in out) and sorted(int(k) for k in out) == list(range(len(out))):
        return [out[str(i)] for i in range(len(out))]
    return out


def parse_form(body: str) -> dict[str, Any]:
    """Parse an ``application/x-www-form-urlencoded`` body (or query) into nested dicts and lists."""
    tree: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True, strict_parsing=False):
        parts = _path(key)
        node = tree
        for i, part in enumerate(parts[:-1]):
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            elif not isinstance(nxt, dict):
                raise FormError(f"parameter {'.'.join(parts[:i + 1])!r} is both a value and an object")
            node = nxt
        last = parts[-1]
        if last == "":  # x[]=a&x[]=b
            last = str(len(node))
        if isinstance(node.get(last), dict):
            raise FormError(f"parameter {key!r} is both a value and an object")
        node[last] = value
    result = _listify(tree)
    assert isinstance(result, dict)
    return result
