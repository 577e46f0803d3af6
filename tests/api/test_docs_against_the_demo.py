"""The docs' curl examples, run in order against the demo data a new vendor gets from ``make demo``.

The gate beside it (tests/gates/test_doc_examples_gate.py) checks each example against the OpenAPI document;
this runs them: every example a reader can run as written (no ``...`` placeholder, no file body, no stream, no
variable the docs leave to the reader) is sent with the demo's vendor key as ``$KEY`` and an acme admin's session
token as ``$ADMIN``, in the order of each file, a ``VAR=$(curl ... | jq -r .field)`` line setting ``$VAR`` for
the examples after it. An example must not fail unless the docs say it does: an answer of 400 or more passes only
when the comment on or under the example names its status or its problem code. Every answer also goes through
the suite's contract check. The demo is seeded at the tests' frozen time, so dates in the examples do not age.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from app.clock import FrozenClock
from app.demo import seed_demo
from app.settings import Settings
from tests.gates.doc_examples import ROOT, Example, examples

_VAR = re.compile(r"\$\{?(\w+)\}?")


def _runnable(example: Example, values: dict[str, str]) -> tuple[dict[str, str], str | None] | None:
    """The example's headers and body with the variables filled in, or None when a reader could not run it as
    written either."""
    texts = [example.target, example.body or "", *example.headers]
    if any("..." in t for t in texts) or (example.body or "").startswith("@"):
        return None
    if any("event-stream" in h for h in example.headers):
        return None  # a stream: read by the change-stream tests

    def fill(text: str) -> str:
        return _VAR.sub(lambda m: values.get(m.group(1), m.group(0)), text)

    filled = [fill(t) for t in texts]
    if any(_VAR.search(t) for t in filled):
        return None  # a variable the docs leave to the reader ($BOUND, $TOKEN of another user, ...)
    headers = {}
    for header in filled[2:]:
        name, _, value = header.partition(":")
        headers[name.strip()] = value.strip()
    return headers, (filled[1] or None) if example.body is not None else None


async def _run(client: AsyncTestClient[Any], files: list[Path], values: dict[str, str]) -> tuple[int, list[str]]:
    ran, failures = 0, []
    for example in examples(files):
        runnable = _runnable(example, values)
        if runnable is None:
            continue
        headers, body = runnable
        r = await client.request(example.method, example.target, headers=headers,
                                 content=body.encode() if body is not None else None)
        ran += 1
        if r.status_code >= 500:
            failures.append(f"{example.where}: {example.method} {example.target} -> {r.status_code} {r.text[:300]}")
            continue
        if r.status_code >= 400:
            code = r.json().get("code", "") if r.headers.get("content-type", "").endswith("json") else ""
            if str(r.status_code) not in example.note and (not code or code not in example.note):
                failures.append(f"{example.where}: {example.method} {example.target} -> {r.status_code} "
                                f"{r.text[:300]} (the docs do not say it fails)")
            continue
        if example.assign is not None:
            name, field = example.assign
            values[name] = str(r.json()[field])
    return ran, failures


async def test_the_guides_examples_work_against_the_demo(client: AsyncTestClient[Any], engine: AsyncEngine,
                                                         settings: Settings, clock: FrozenClock) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    key = await seed_demo(engine, settings, clock=clock)
    auth = {"Authorization": f"Bearer {key}"}
    admin = await client.post("/v1/session-tokens", json={"account": "acme", "user": "acme-alice"}, headers=auth)
    assert admin.status_code == 201, admin.text
    values = {"KEY": key, "OPS_KEY": key, "ADMIN": admin.json()["token"], "ADMIN_TOKEN": admin.json()["token"]}
    ran, failures = await _run(client, [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))], values)
    assert ran >= 80, f"only {ran} examples ran: the docs or the runner lost track"
    assert not failures, "examples of the docs that fail against the demo:\n" + "\n".join(failures)
