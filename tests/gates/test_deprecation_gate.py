"""Gate: importing every package and building the app (routes, OpenAPI) raises no deprecation warning.

Run in a fresh interpreter with deprecation warnings as errors, so a warning raised at import time (such as
Litestar's ``Parameter(query=...)``, which Litestar 3 removes) fails the gate instead of being cached away.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_BUILD = textwrap.dedent("""
    import pathlib, tempfile
    from app.asgi import create_app
    from app.settings import load_settings

    settings = load_settings({}, env="test", database_url="postgresql://gate@127.0.0.1:9/gate", stripe_backend="fake",
                             data_dir=pathlib.Path(tempfile.mkdtemp()), token_secret="g" * 48, dispatcher="off")
    create_app(settings).openapi_schema.to_schema()
""")


def _build(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-W", "error::DeprecationWarning", "-c", code], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)


def test_building_the_app_raises_no_deprecation_warning() -> None:
    result = _build(_BUILD)
    assert result.returncode == 0, result.stderr[-3000:]


def test_the_gate_catches_a_deprecated_parameter_style() -> None:
    result = _build("from litestar.params import Parameter\nParameter(query='state')\n")
    assert result.returncode != 0 and "Deprecated 'query' parameter" in result.stderr
