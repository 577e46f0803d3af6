from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import SettingsError, load_settings, require_card_payments_decided


def test_settings_are_read_from_the_environment(tmp_path: Path) -> None:
    s = load_settings({"COMMERCE_DATA_DIR": str(tmp_path), "COMMERCE_WORKERS": "3", "DATABASE_URL": "postgresql://h/db",
                       "COMMERCE_ADMIN_ROLES": "admin, owner", "COMMERCE_API_KEY_CACHE_SECONDS": "2.5"})
    assert s.data_dir == tmp_path and s.workers == 3 and s.database_url == "postgresql://h/db"
    assert s.admin_roles == ("admin", "owner") and s.api_key_cache_seconds == 2.5


def test_development_generates_one_persistent_secret_per_data_folder(tmp_path: Path) -> None:
    a = load_settings({"COMMERCE_DATA_DIR": str(tmp_path)})
    b = load_settings({"COMMERCE_DATA_DIR": str(tmp_path)})
    assert len(a.token_secret) >= 32 and a.token_secret == b.token_secret
    assert load_settings({"COMMERCE_DATA_DIR": str(tmp_path / "other")}).token_secret != a.token_secret


def test_production_never_uses_generated_secrets(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="COMMERCE_TOKEN_SECRET"):
        load_settings({"COMMERCE_ENV": "production", "COMMERCE_DATA_DIR": str(tmp_path)})
    with pytest.raises(SettingsError, match="32"):
        load_settings({"COMMERCE_ENV": "production", "COMMERCE_TOKEN_SECRET": "short"})
    assert not (tmp_path / "dev-secrets.json").exists()
    ok = load_settings({"COMMERCE_ENV": "production", "COMMERCE_TOKEN_SECRET": "s" * 40})
    assert ok.token_secret == "s" * 40


def test_bad_numbers_are_reported_by_variable_name() -> None:
    with pytest.raises(SettingsError, match="COMMERCE_PORT"):
        load_settings({"COMMERCE_PORT": "eighty"})


def test_stripe_settings_real_keys_need_a_webhook_secret(tmp_path: Path) -> None:
    base = {"COMMERCE_DATA_DIR": str(tmp_path)}
    assert load_settings(base).stripe_mode == "unset"
    assert load_settings({**base, "COMMERCE_STRIPE": "fake"}).stripe_mode == "fake"
    assert load_settings({**base, "COMMERCE_ENV": "production", "COMMERCE_TOKEN_SECRET": "s" * 40}).stripe_mode == "off"
    with pytest.raises(SettingsError, match="STRIPE_WEBHOOK_SECRET"):
        load_settings({**base, "STRIPE_SECRET_KEY": "sk_test_123"})
    with pytest.raises(SettingsError, match="STRIPE_SECRET_KEY"):
        load_settings({**base, "STRIPE_SECRET_KEY": "pk_test_123", "STRIPE_WEBHOOK_SECRET": "whsec_x"})
    s = load_settings({**base, "STRIPE_SECRET_KEY": "sk_test_123", "STRIPE_WEBHOOK_SECRET": "whsec_x",
                       "STRIPE_API_BASE": "http://127.0.0.1:12111", "STRIPE_TIMEOUT_SECONDS": "2.5",
                       "STRIPE_MAX_NETWORK_RETRIES": "3"})
    assert (s.stripe_mode, s.stripe_api_base, s.stripe_timeout_seconds, s.stripe_max_network_retries) == (
        "stripe", "http://127.0.0.1:12111", 2.5, 3)
    with pytest.raises(SettingsError, match="STRIPE_TIMEOUT_SECONDS"):
        load_settings({**base, "STRIPE_TIMEOUT_SECONDS": "soon"})


def test_entitlement_settings_come_from_the_environment(tmp_path: Path) -> None:
    s = load_settings({"COMMERCE_ENTITLEMENT_CACHE_MAX_ENTRIES": "5", "COMMERCE_SWEEP_SECONDS": "0",
                       "COMMERCE_TRIAL_SCOPE": "account", "COMMERCE_ENTITLEMENT_CACHE_TTL_SECONDS": "2.5",
                       "COMMERCE_DATA_DIR": str(tmp_path)})
    assert (s.entitlement_cache_max_entries, s.sweep_seconds, s.trial_scope, s.entitlement_cache_ttl_seconds) == (
        5, 0.0, "account", 2.5)
    for bad in ({"COMMERCE_ENTITLEMENT_CACHE_MAX_ENTRIES": "0"}, {"COMMERCE_TRIAL_SCOPE": "team"},
                {"COMMERCE_SWEEP_SECONDS": "soon"}):
        with pytest.raises(SettingsError):
            load_settings({**bad, "COMMERCE_DATA_DIR": str(tmp_path)})


def test_session_cache_seconds_come_from_the_environment_within_bounds(tmp_path: Path) -> None:
    base = {"COMMERCE_DATA_DIR": str(tmp_path)}
    assert load_settings(base).session_cache_seconds == 10.0
    assert load_settings({**base, "COMMERCE_SESSION_CACHE_SECONDS": "2.5"}).session_cache_seconds == 2.5
    for bad in ("0", "-1", "3601"):
        with pytest.raises(SettingsError, match="COMMERCE_SESSION_CACHE_SECONDS"):
            load_settings({**base, "COMMERCE_SESSION_CACHE_SECONDS": bad})


def test_card_payments_must_be_decided_outside_production(tmp_path: Path) -> None:
    base = {"COMMERCE_DATA_DIR": str(tmp_path)}
    for env in ({}, {"COMMERCE_ENV": "test"}):
        with pytest.raises(SettingsError, match="COMMERCE_STRIPE=fake"):
            require_card_payments_decided(load_settings({**base, **env}))
    for decided in ({"COMMERCE_STRIPE": "fake"}, {"COMMERCE_STRIPE": "off"},
                    {"STRIPE_SECRET_KEY": "sk_test_1", "STRIPE_WEBHOOK_SECRET": "whsec_1"},
                    {"COMMERCE_STRIPE": "stripe", "STRIPE_SECRET_KEY": "sk_test_1", "STRIPE_WEBHOOK_SECRET": "whsec_1"},
                    {"COMMERCE_ENV": "production", "COMMERCE_TOKEN_SECRET": "s" * 40}):
        require_card_payments_decided(load_settings({**base, **decided}))
    assert load_settings({**base, "COMMERCE_STRIPE": "off"}).stripe_mode == "off"


@pytest.mark.parametrize("env,message", [
    ({"COMMERCE_ENV": "production", "COMMERCE_TOKEN_SECRET": "s" * 40, "COMMERCE_STRIPE": "fake"}, "production"),
    ({"COMMERCE_STRIPE": "fake", "STRIPE_SECRET_KEY": "sk_test_1", "STRIPE_WEBHOOK_SECRET": "whsec_1"}, "contradicts"),
    ({"COMMERCE_STRIPE": "off", "STRIPE_SECRET_KEY": "sk_test_1", "STRIPE_WEBHOOK_SECRET": "whsec_1"}, "contradicts"),
    ({"COMMERCE_STRIPE": "stripe"}, "needs STRIPE_SECRET_KEY"),
    ({"COMMERCE_STRIPE": "mock"}, "COMMERCE_STRIPE: Invalid enum value"),
])
def test_contradictory_card_payment_settings_are_refused(tmp_path: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings({"COMMERCE_DATA_DIR": str(tmp_path), **env})
def test_cors_origins_are_exact_and_never_a_wildcard_with_credentials(tmp_path: Path) -> None:
    base = {"COMMERCE_DATA_DIR": str(tmp_path)}
    s = load_settings({**base, "COMMERCE_CORS_ORIGINS": "https://App.example.com:443, http://localhost:5173"})
    assert s.cors_origins == ("https://app.example.com", "http://localhost:5173")
    assert load_settings({**base, "COMMERCE_CORS_ORIGINS": "*"}).cors_origins == ("*",)
    with pytest.raises(SettingsError, match="COMMERCE_CORS_ALLOW_CREDENTIALS"):
        load_settings({**base, "COMMERCE_CORS_ORIGINS": "*", "COMMERCE_CORS_ALLOW_CREDENTIALS": "on"})
    for bad in ("https://*.example.com", "https://app.example.com/path", "*,https://app.example.com"):
        with pytest.raises(SettingsError, match="COMMERCE_CORS_ORIGINS"):
            load_settings({**base, "COMMERCE_CORS_ORIGINS": bad})
    ok = load_settings({**base, "COMMERCE_CORS_ORIGINS": "https://app.example.com",
                        "COMMERCE_CORS_ALLOW_CREDENTIALS": "on"})
    assert ok.cors_allow_credentials == "on"


def test_rate_limits_must_parse_and_are_reported_by_variable_name(tmp_path: Path) -> None:
    base = {"COMMERCE_DATA_DIR": str(tmp_path)}
    s = load_settings({**base, "COMMERCE_RATE_LIMIT_MONEY_USER": "10/minute", "COMMERCE_RATE_LIMIT": "off"})
    assert s.rate_limit_money_user == "10/minute" and s.rate_limit == "off"
    for var, bad in (("COMMERCE_RATE_LIMIT_CHECK_KEY", "fast"), ("COMMERCE_RATE_LIMIT_DEFAULT_USER", "0/second"),
                     ("COMMERCE_RATE_LIMIT_MONEY_KEY", "5/fortnight")):
        with pytest.raises(SettingsError, match=var):
            load_settings({**base, var: bad})
    with pytest.raises(SettingsError, match="COMMERCE_RATE_LIMIT_SYNC_SECONDS"):
        load_settings({**base, "COMMERCE_RATE_LIMIT_SYNC_SECONDS": "0"})
