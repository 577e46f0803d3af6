"""Every pattern of the served OpenAPI document means the same to the server (Python's `re`, through msgspec and
Litestar) as to a client validating with JSON Schema (ECMAScript regular expressions).

`\\d` and `\\w` match any Unicode digit or word character in Python, ASCII ones in ECMAScript; `\\s` is a different
class in each (Python adds \\x1c-\\x1f and \\x85, ECMAScript \\ufeff). A pattern that uses them lets the server refuse
what the document accepts, or accept what it refuses: the fuzz gate found an email with \\x1d refused with a 400.
"""

from __future__ import annotations

import re
from typing import Any

from tests.support.contract import offline_document

# `\s` only inside a negated class that also names every character one dialect alone counts as whitespace
_BOTH_DIALECTS_SPACE = r"\s\x00-\x1f\x7f\x85\ufeff"


def _patterns(node: Any, where: str = "") -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if isinstance(node, dict):
        if isinstance(node.get("pattern"), str):
            found.append((where, node["pattern"]))
        for key, value in node.items():
            found += _patterns(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _patterns(value, f"{where}/{i}")
    return found


def test_no_pattern_uses_a_class_the_two_dialects_read_differently() -> None:
    patterns = _patterns(offline_document())
    assert len(patterns) > 20  # the walk found the document's patterns
    bad = [(where, p) for where, p in patterns
           if re.search(r"(?<!\\)\\[dDwWbB]", p)
           or re.search(r"(?<!\\)\\[sS]", p.replace(_BOTH_DIALECTS_SPACE, ""))]
    assert bad == [], "patterns read differently by Python and ECMAScript:\n" + "\n".join(f"{w}: {p}" for w, p in bad)
