"""Settings read once from the environment and passed down; nothing reads them at import time."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import msgspec

Environment = Literal["development", "test", "production"]


class SettingsError(RuntimeError):
    """The environment does not describe a valid configuration."""


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    """Everything the service can be configured with (see the README's configuration table)."""

    env: Environment = "development"
    database_url: str | None = None
    data_dir: Path = Path(".commerce-data")
    token_secret: str = ""
    token_audience: str = "commerce-user"
    token_ttl_seconds_default: int = 900
    token_ttl_seconds_max: int = 86_400
    admin_roles: tuple[str, ...] = ("admin",)
    max_body_bytes: int = 1_048_576
    idempotency_ttl_seconds: int = 86_400
    idempotency_lock_seconds: int = 60
    api_key_cache_seconds: float = 10.0
    db_pool_size: int = 10
    db_max_overflow: int = 10
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    page_size_max: int = 200
    entitlement_cache_max_entries: int = 100_000
    entitlement_cache_ttl_seconds: float = 30.0
    usage_backfill_days: int = 35
    trial_scope: Literal["user", "account"] = "user"
    trial_ending_days: int = 3
    sweep_seconds: float = 60.0
    demand_flush_seconds: float = 2.0
    demand_buffer_max_keys: int = 50_000

    @property
    def is_production(self) -> bool:
        return self.env == "production"


_ENV_MAP: dict[str, str] = {
    "COMMERCE_ENV": "env",
    "DATABASE_URL": "database_url",
    "COMMERCE_DATA_DIR": "data_dir",
    "COMMERCE_TOKEN_SECRET": "token_secret",
    "COMMERCE_TOKEN_TTL_SECONDS": "token_ttl_seconds_default",
    "COMMERCE_TOKEN_TTL_SECONDS_MAX": "token_ttl_seconds_max",
    "COMMERCE_ADMIN_ROLES": "admin_roles",
    "COMMERCE_MAX_BODY_BYTES": "max_body_bytes",
    "COMMERCE_IDEMPOTENCY_TTL_SECONDS": "idempotency_ttl_seconds",
    "COMMERCE_API_KEY_CACHE_SECONDS": "api_key_cache_seconds",
    "COMMERCE_DB_POOL_SIZE": "db_pool_size",
    "COMMERCE_HOST": "host",
    "COMMERCE_PORT": "port",
    "COMMERCE_WORKERS": "workers",
    "COMMERCE_ENTITLEMENT_CACHE_MAX_ENTRIES": "entitlement_cache_max_entries",
    "COMMERCE_ENTITLEMENT_CACHE_TTL_SECONDS": "entitlement_cache_ttl_seconds",
    "COMMERCE_USAGE_BACKFILL_DAYS": "usage_backfill_days",
    "COMMERCE_TRIAL_SCOPE": "trial_scope",
    "COMMERCE_TRIAL_ENDING_DAYS": "trial_ending_days",
    "COMMERCE_SWEEP_SECONDS": "sweep_seconds",
    "COMMERCE_DEMAND_FLUSH_SECONDS": "demand_flush_seconds",
    "COMMERCE_DEMAND_BUFFER_MAX_KEYS": "demand_buffer_max_keys",
}

_INT_FIELDS = {
    "token_ttl_seconds_default", "token_ttl_seconds_max", "max_body_bytes", "idempotency_ttl_seconds",
    "db_pool_size", "port", "workers", "entitlement_cache_max_entries", "usage_backfill_days", "trial_ending_days",
    "demand_buffer_max_keys",
}
_FLOAT_FIELDS = {"api_key_cache_seconds", "entitlement_cache_ttl_seconds", "sweep_seconds", "demand_flush_seconds"}


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Build settings from environment variables, then apply explicit overrides (tests, CLI flags)."""
    environ = os.environ if environ is None else environ
    raw: dict[str, object] = {}
    for var, field in _ENV_MAP.items():
        value = environ.get(var)
        if value is None or value == "":
            continue
        if field == "admin_roles":
            raw[field] = tuple(r.strip() for r in value.split(",") if r.strip())
        elif field in _INT_FIELDS:
            try:
                raw[field] = int(value)
            except ValueError as exc:
                raise SettingsError(f"{var} must be an integer, got {value!r}") from exc
        elif field in _FLOAT_FIELDS:
            try:
                raw[field] = float(value)
            except ValueError as exc:
                raise SettingsError(f"{var} must be a number, got {value!r}") from exc
        elif field == "data_dir":
            raw[field] = Path(value)
        else:
            raw[field] = value
    raw.update(overrides)
    if isinstance(raw.get("data_dir"), str):
        raw["data_dir"] = Path(str(raw["data_dir"]))
    try:
        settings = msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"invalid settings: {exc}") from exc
    if settings.entitlement_cache_max_entries < 1 or settings.entitlement_cache_ttl_seconds <= 0:
        raise SettingsError("the entitlement cache needs at least one entry and a positive TTL")
    if settings.demand_flush_seconds <= 0 or settings.demand_buffer_max_keys < 1:
        raise SettingsError("demand signals need a positive flush interval and buffer size")
    return _with_secrets(settings)


def _with_secrets(settings: Settings) -> Settings:
    """Fill signing secrets: required in production, generated once per data folder elsewhere."""
    if settings.token_secret:
        if settings.is_production and len(settings.token_secret) < 32:
            raise SettingsError("COMMERCE_TOKEN_SECRET must be at least 32 characters in production")
        return settings
    if settings.is_production:
        raise SettingsError("COMMERCE_TOKEN_SECRET is required when COMMERCE_ENV=production")
    return msgspec.structs.replace(settings, token_secret=_dev_secret(settings.data_dir, "token_secret"))


def _dev_secret(data_dir: Path, name: str) -> str:
    """A random development secret persisted in the data folder, so every worker and restart agrees."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "dev-secrets.json"
    stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    if name not in stored:
        stored[name] = secrets.token_urlsafe(48)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(stored))
        tmp.chmod(0o600)
        tmp.replace(path)
    return stored[name]
