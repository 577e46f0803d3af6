"""Settings have one source: every field is documented, named from its field, and the README shows exactly that."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from app.cli import main
from app.settings import DOCS, Settings, SettingsError, env_name, load_settings, settings_table

README = Path(__file__).resolve().parents[2] / "README.md"
MARKERS = re.compile(r"<!-- settings-table:[^>]*-->\n(.*?)\n<!-- settings-table: end -->", re.S)


def test_every_setting_is_documented_once() -> None:
    fields = {f.name for f in msgspec.structs.fields(Settings)}
    assert fields - DOCS.keys() == set(), "add a Doc entry for each new setting in app/settings.py"
    assert DOCS.keys() - fields == set(), "DOCS names settings that no longer exist"
    names = [env_name(f) for f in fields]
    assert len(names) == len(set(names))


def test_the_readme_table_is_the_generated_one() -> None:
    found = MARKERS.search(README.read_text())
    assert found is not None, "README.md lost its settings-table markers"
    assert found.group(1) == settings_table(), "run `commerce settings --markdown` and paste it into README.md"


def test_variables_are_derived_from_field_names_with_the_historical_exceptions(tmp_path: Path) -> None:
    s = load_settings({"COMMERCE_DB_MAX_OVERFLOW": "3", "COMMERCE_JOBS_DISABLED": "billing_run, reconcile",
                       "COMMERCE_TOKEN_TTL_SECONDS": "600", "COMMERCE_DATA_DIR": str(tmp_path),
                       "COMMERCE_LOG_FORMAT": "console", "COMMERCE_METRICS": "public"})
    assert (s.db_max_overflow, s.jobs_disabled, s.token_ttl_seconds_default) == (3, ("billing_run", "reconcile"), 600)
    assert (s.data_dir, s.log_format, s.metrics) == (tmp_path, "console", "public")
    assert env_name("stripe_backend") == "COMMERCE_STRIPE" and env_name("database_url") == "DATABASE_URL"


@pytest.mark.parametrize(("var", "value"), [("COMMERCE_LOG_FORMAT", "xml"), ("COMMERCE_JOB_HISTORY_DAYS", "soon"),
                                            ("COMMERCE_METRICS", "maybe")])
def test_bad_values_are_reported_by_variable_name(var: str, value: str) -> None:
    with pytest.raises(SettingsError, match=var):
        load_settings({var: value})


def test_commerce_settings_prints_the_table_and_masks_secrets(capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert main(["settings", "--markdown"]) == 0
    assert capsys.readouterr().out.strip() == settings_table()
    monkeypatch.setenv("COMMERCE_TOKEN_SECRET", "s3cret-" * 6)
    monkeypatch.setenv("COMMERCE_DATA_DIR", str(tmp_path))
    assert main(["settings"]) == 0
    out = capsys.readouterr().out
    assert "COMMERCE_TOKEN_SECRET=(set)" in out and "s3cret-" not in out and "COMMERCE_PORT=8000" in out
