"""Real Chromium for the browser tests (Debian's package, driven by Playwright).

Browser downloads are impossible on these machines: Playwright launches the system Chromium through
``executable_path``. When it is missing the tests fail at once with the command to run; they never skip.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
INSTALL_HINT = "apt-get update && apt-get install -y chromium   (or: make test, which installs it when run as root)"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def chromium_path() -> str:
    """The system Chromium, or a failure naming the exact command that installs it."""
    for candidate in (os.environ.get("CHROMIUM"), *CHROMIUM_CANDIDATES, shutil.which("chromium")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError(f"Chromium is not installed; browser tests need it. Run: {INSTALL_HINT}")
