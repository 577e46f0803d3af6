"""Settings read once from the environment and passed down; nothing reads them at import time."""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import msgspec

Environment = Literal["development", "test", "production"]
Switch = Literal["on", "off"]
StripeBackend = Literal["", "stripe", "fake", "off"]
StripeMode = Literal["stripe", "fake", "off", "unset"]

# Delays (seconds) before retries 2, 3, ...: about 2.9 days from the first attempt to the dead letter.
DEFAULT_RETRY_SCHEDULE: tuple[int, ...] = (10, 60, 300, 1800, 3600, 10_800, 21_600, 43_200, 86_400, 86_400)
# Internal addresses webhooks may reach outside production (tests and local development use a loopback receiver).
DEV_WEBHOOK_NETWORKS: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
FAKE_STRIPE_WARNING = ("*** COMMERCE_STRIPE=fake: card payments go to the in-process Stripe FAKE. No money moves, yet "
                       "paid orders grant modules. Never serve real users like this. ***")


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
    quote_ttl_seconds: int = 1800
    max_body_bytes: int = 1_048_576
    max_url_bytes: int = 8192
    max_header_bytes: int = 32_768
    idempotency_ttl_seconds: int = 86_400
    api_key_cache_seconds: float = 10.0
    session_cache_seconds: float = 10.0
    db_pool_size: int = 10
    db_max_overflow: int = 10
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    dispatcher: Switch = "on"
    webhook_timeout_seconds: float = 10.0
    webhook_retry_schedule: tuple[int, ...] = DEFAULT_RETRY_SCHEDULE
    webhook_retry_jitter: float = 0.2
    webhook_disable_after_seconds: int = 259_200
    webhook_disable_min_failures: int = 20
    webhook_allowed_hosts: tuple[str, ...] = ()
    webhook_allowed_networks: tuple[str, ...] | None = None
    webhook_poll_seconds: float = 1.0
    webhook_batch_size: int = 100
    webhook_concurrency: int = 16
    webhook_fanout_lag_seconds: int = 600
    webhook_secret_overlap_seconds: int = 86_400
    stripe_backend: StripeBackend = ""
    stripe_secret_key: str = ""
    stripe_webhook_secret: str = ""
    stripe_api_base: str | None = None
    stripe_publishable_key: str = ""
    stripe_timeout_seconds: float = 10.0
    stripe_max_network_retries: int = 2
    stripe_webhook_tolerance_seconds: int = 300
    renewal_grace_days: int = 7
    renewal_retry_days: tuple[int, ...] = (1, 3, 5)
    reconcile_after_seconds: int = 300
    entitlement_cache_max_entries: int = 100_000
    entitlement_cache_ttl_seconds: float = 30.0
    usage_backfill_days: int = 35
    trial_scope: Literal["user", "account"] = "user"
    trial_ending_days: int = 3
    sweep_seconds: float = 60.0
    demand_flush_seconds: float = 2.0
    demand_buffer_max_keys: int = 50_000
    suggest_holdout_pct: int = 10
    suggest_holdout_salt: str = "suggest-holdout-1"
    suggest_attribution_days: int = 7
    suggest_cap_per_surface: int = 3
    suggest_cap_window_hours: int = 24
    suggest_dismiss_cooldown_days: int = 30
    suggest_recent_days: int = 30
    suggest_unused_days: int = 30
    suggest_signal_days: int = 30
    suggest_stats_ttl_seconds: int = 3600
    suggest_min_score: float = 0.05
    suggest_weights: str = ""
    cors_origins: tuple[str, ...] = ()
    cors_allow_credentials: Switch = "off"
    cors_max_age_seconds: int = 600
    rate_limit: Switch = "on"
    rate_limit_check_key: str = "600000/minute"
    rate_limit_check_user: str = "6000/minute"
    rate_limit_money_key: str = "3000/minute"
    rate_limit_money_user: str = "60/minute"
    rate_limit_default_key: str = "30000/minute"
    rate_limit_default_user: str = "1200/minute"
    rate_limit_sync_seconds: float = 0.5
    console_link_ttl_seconds: int = 900
    console_idle_seconds: int = 1800
    console_max_seconds: int = 43_200

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def webhook_networks(self) -> tuple[str, ...]:
        """Internal networks deliveries may reach: the setting, else loopback outside production."""
        if self.webhook_allowed_networks is not None:
            return self.webhook_allowed_networks
        return () if self.is_production else DEV_WEBHOOK_NETWORKS

    @property
    def stripe_mode(self) -> StripeMode:
        """Real Stripe with a secret key; else COMMERCE_STRIPE; else off in production and undecided elsewhere.

        The in-process fake is never chosen by default: it grants modules for card payments nobody made, so
        it runs only where COMMERCE_STRIPE=fake says so (``make demo`` and the tests).
        """
        if self.stripe_secret_key:
            return "stripe"
        if self.stripe_backend:
            return self.stripe_backend
        return "off" if self.is_production else "unset"


_ENV_MAP: dict[str, str] = {
    "COMMERCE_ENV": "env",
    "DATABASE_URL": "database_url",
    "COMMERCE_DATA_DIR": "data_dir",
    "COMMERCE_TOKEN_SECRET": "token_secret",
    "COMMERCE_TOKEN_TTL_SECONDS": "token_ttl_seconds_default",
    "COMMERCE_TOKEN_TTL_SECONDS_MAX": "token_ttl_seconds_max",
    "COMMERCE_ADMIN_ROLES": "admin_roles",
    "COMMERCE_QUOTE_TTL_SECONDS": "quote_ttl_seconds",
    "COMMERCE_MAX_BODY_BYTES": "max_body_bytes",
    "COMMERCE_MAX_URL_BYTES": "max_url_bytes",
    "COMMERCE_MAX_HEADER_BYTES": "max_header_bytes",
    "COMMERCE_IDEMPOTENCY_TTL_SECONDS": "idempotency_ttl_seconds",
    "COMMERCE_API_KEY_CACHE_SECONDS": "api_key_cache_seconds",
    "COMMERCE_SESSION_CACHE_SECONDS": "session_cache_seconds",
    "COMMERCE_DB_POOL_SIZE": "db_pool_size",
    "COMMERCE_HOST": "host",
    "COMMERCE_PORT": "port",
    "COMMERCE_WORKERS": "workers",
    "COMMERCE_DISPATCHER": "dispatcher",
    "COMMERCE_WEBHOOK_TIMEOUT_SECONDS": "webhook_timeout_seconds",
    "COMMERCE_WEBHOOK_RETRY_SCHEDULE": "webhook_retry_schedule",
    "COMMERCE_WEBHOOK_RETRY_JITTER": "webhook_retry_jitter",
    "COMMERCE_WEBHOOK_DISABLE_AFTER_SECONDS": "webhook_disable_after_seconds",
    "COMMERCE_WEBHOOK_DISABLE_MIN_FAILURES": "webhook_disable_min_failures",
    "COMMERCE_WEBHOOK_ALLOWED_HOSTS": "webhook_allowed_hosts",
    "COMMERCE_WEBHOOK_ALLOWED_NETWORKS": "webhook_allowed_networks",
    "COMMERCE_WEBHOOK_POLL_SECONDS": "webhook_poll_seconds",
    "COMMERCE_WEBHOOK_BATCH_SIZE": "webhook_batch_size",
    "COMMERCE_WEBHOOK_CONCURRENCY": "webhook_concurrency",
    "COMMERCE_WEBHOOK_FANOUT_LAG_SECONDS": "webhook_fanout_lag_seconds",
    "COMMERCE_WEBHOOK_SECRET_OVERLAP_SECONDS": "webhook_secret_overlap_seconds",
    "COMMERCE_STRIPE": "stripe_backend",
    "STRIPE_SECRET_KEY": "stripe_secret_key",
    "STRIPE_WEBHOOK_SECRET": "stripe_webhook_secret",
    "STRIPE_API_BASE": "stripe_api_base",
    "STRIPE_PUBLISHABLE_KEY": "stripe_publishable_key",
    "STRIPE_TIMEOUT_SECONDS": "stripe_timeout_seconds",
    "STRIPE_MAX_NETWORK_RETRIES": "stripe_max_network_retries",
    "STRIPE_WEBHOOK_TOLERANCE_SECONDS": "stripe_webhook_tolerance_seconds",
    "COMMERCE_RENEWAL_GRACE_DAYS": "renewal_grace_days",
    "COMMERCE_RENEWAL_RETRY_DAYS": "renewal_retry_days",
    "COMMERCE_RECONCILE_AFTER_SECONDS": "reconcile_after_seconds",
    "COMMERCE_ENTITLEMENT_CACHE_MAX_ENTRIES": "entitlement_cache_max_entries",
    "COMMERCE_ENTITLEMENT_CACHE_TTL_SECONDS": "entitlement_cache_ttl_seconds",
    "COMMERCE_USAGE_BACKFILL_DAYS": "usage_backfill_days",
    "COMMERCE_TRIAL_SCOPE": "trial_scope",
    "COMMERCE_TRIAL_ENDING_DAYS": "trial_ending_days",
    "COMMERCE_SWEEP_SECONDS": "sweep_seconds",
    "COMMERCE_DEMAND_FLUSH_SECONDS": "demand_flush_seconds",
    "COMMERCE_DEMAND_BUFFER_MAX_KEYS": "demand_buffer_max_keys",
    "COMMERCE_SUGGEST_HOLDOUT_PCT": "suggest_holdout_pct",
    "COMMERCE_SUGGEST_HOLDOUT_SALT": "suggest_holdout_salt",
    "COMMERCE_SUGGEST_ATTRIBUTION_DAYS": "suggest_attribution_days",
    "COMMERCE_SUGGEST_CAP_PER_SURFACE": "suggest_cap_per_surface",
    "COMMERCE_SUGGEST_CAP_WINDOW_HOURS": "suggest_cap_window_hours",
    "COMMERCE_SUGGEST_DISMISS_COOLDOWN_DAYS": "suggest_dismiss_cooldown_days",
    "COMMERCE_SUGGEST_RECENT_DAYS": "suggest_recent_days",
    "COMMERCE_SUGGEST_UNUSED_DAYS": "suggest_unused_days",
    "COMMERCE_SUGGEST_SIGNAL_DAYS": "suggest_signal_days",
    "COMMERCE_SUGGEST_STATS_TTL_SECONDS": "suggest_stats_ttl_seconds",
    "COMMERCE_SUGGEST_MIN_SCORE": "suggest_min_score",
    "COMMERCE_SUGGEST_WEIGHTS": "suggest_weights",
    "COMMERCE_CORS_ORIGINS": "cors_origins",
    "COMMERCE_CORS_ALLOW_CREDENTIALS": "cors_allow_credentials",
    "COMMERCE_CORS_MAX_AGE_SECONDS": "cors_max_age_seconds",
    "COMMERCE_RATE_LIMIT": "rate_limit",
    "COMMERCE_RATE_LIMIT_CHECK_KEY": "rate_limit_check_key",
    "COMMERCE_RATE_LIMIT_CHECK_USER": "rate_limit_check_user",
    "COMMERCE_RATE_LIMIT_MONEY_KEY": "rate_limit_money_key",
    "COMMERCE_RATE_LIMIT_MONEY_USER": "rate_limit_money_user",
    "COMMERCE_RATE_LIMIT_DEFAULT_KEY": "rate_limit_default_key",
    "COMMERCE_RATE_LIMIT_DEFAULT_USER": "rate_limit_default_user",
    "COMMERCE_RATE_LIMIT_SYNC_SECONDS": "rate_limit_sync_seconds",
    "COMMERCE_CONSOLE_LINK_TTL_SECONDS": "console_link_ttl_seconds",
    "COMMERCE_CONSOLE_IDLE_SECONDS": "console_idle_seconds",
    "COMMERCE_CONSOLE_MAX_SECONDS": "console_max_seconds",
}

_INT_FIELDS = {
    "token_ttl_seconds_default", "token_ttl_seconds_max", "max_body_bytes", "idempotency_ttl_seconds",
    "db_pool_size", "port", "workers", "webhook_disable_after_seconds", "webhook_disable_min_failures",
    "webhook_batch_size", "webhook_concurrency", "webhook_fanout_lag_seconds", "webhook_secret_overlap_seconds",
    "stripe_max_network_retries", "stripe_webhook_tolerance_seconds", "renewal_grace_days",
    "reconcile_after_seconds",
}
_FLOAT_FIELDS = {"api_key_cache_seconds", "webhook_timeout_seconds", "webhook_retry_jitter", "webhook_poll_seconds",
                 "stripe_timeout_seconds"}
_LIST_FIELDS = {"admin_roles", "webhook_allowed_hosts", "webhook_allowed_networks", "webhook_retry_schedule",
                "renewal_retry_days"}
_INT_FIELDS |= {"quote_ttl_seconds", "entitlement_cache_max_entries", "usage_backfill_days", "trial_ending_days",
                "demand_buffer_max_keys"}
_FLOAT_FIELDS |= {"entitlement_cache_ttl_seconds", "sweep_seconds", "demand_flush_seconds"}
_INT_FIELDS |= {"suggest_holdout_pct", "suggest_attribution_days", "suggest_cap_per_surface",
                "suggest_cap_window_hours", "suggest_dismiss_cooldown_days", "suggest_recent_days",
                "suggest_unused_days", "suggest_signal_days", "suggest_stats_ttl_seconds"}
_FLOAT_FIELDS |= {"suggest_min_score", "session_cache_seconds", "rate_limit_sync_seconds"}
_INT_FIELDS |= {"max_url_bytes", "max_header_bytes", "cors_max_age_seconds"}
_LIST_FIELDS |= {"cors_origins"}
_INT_FIELDS |= {"console_link_ttl_seconds", "console_idle_seconds", "console_max_seconds"}


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Build settings from environment variables, then apply explicit overrides (tests, CLI flags)."""
    environ = os.environ if environ is None else environ
    raw: dict[str, object] = {}
    for var, field in _ENV_MAP.items():
        value = environ.get(var)
        if value is None or value == "":
            continue
        if field in _LIST_FIELDS:
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
        elif field in _FLOAT_FIELDS:
            try:
                raw[field] = float(value)
            except ValueError as exc:
                raise SettingsError(f"{var} must be a number, got {value!r}") from exc
        else:
            raw[field] = value
    raw.update(overrides)
    if isinstance(raw.get("data_dir"), str):
        raw["data_dir"] = Path(str(raw["data_dir"]))
    try:
        settings = msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"invalid settings: {exc}") from exc
    _check_webhooks(settings)
    if settings.entitlement_cache_max_entries < 1 or settings.entitlement_cache_ttl_seconds <= 0:
        raise SettingsError("the entitlement cache needs at least one entry and a positive TTL")
    if not 0 < settings.session_cache_seconds <= 3600:
        raise SettingsError("COMMERCE_SESSION_CACHE_SECONDS must be above 0 and at most 3600")
    if settings.demand_flush_seconds <= 0 or settings.demand_buffer_max_keys < 1:
        raise SettingsError("demand signals need a positive flush interval and buffer size")
    _check_suggest(settings)
    _check_request_limits(settings)
    if not 60 <= settings.console_link_ttl_seconds <= 86_400 or not (
            60 <= settings.console_idle_seconds <= settings.console_max_seconds <= 30 * 86_400):
        raise SettingsError("console links live 60 s to a day; the idle timeout is at least 60 s and at most "
                            "COMMERCE_CONSOLE_MAX_SECONDS (at most 30 days)")
    settings = _check_web(settings)
    return _with_secrets(settings)


# granian (hyper) rejects longer request targets and larger request heads itself, with empty bodies; the
# app's own limits stay below them so that everything in between gets a problem document.
SERVER_MAX_URL_BYTES = 65_534
SERVER_MAX_HEAD_BYTES = 417_792


def _check_request_limits(settings: Settings) -> None:
    if not 1024 <= settings.max_url_bytes < SERVER_MAX_URL_BYTES:
        raise SettingsError(f"COMMERCE_MAX_URL_BYTES must be 1024..{SERVER_MAX_URL_BYTES - 1}")
    head_room = SERVER_MAX_HEAD_BYTES - SERVER_MAX_URL_BYTES
    if not 4096 <= settings.max_header_bytes < head_room:
        raise SettingsError(f"COMMERCE_MAX_HEADER_BYTES must be 4096..{head_room - 1}")


def _check_web(settings: Settings) -> Settings:
    """CORS origins exact (or one ``*``, never with credentials); rate limits parse; returns normalised origins."""
    from app.origins import parse_origin
    from app.ratelimit.domain import parse_rate

    origins = settings.cors_origins
    if "*" in origins:
        if len(origins) > 1:
            raise SettingsError("COMMERCE_CORS_ORIGINS is either '*' alone or a list of exact origins")
        if settings.cors_allow_credentials == "on":
            raise SettingsError("COMMERCE_CORS_ORIGINS='*' cannot be combined with COMMERCE_CORS_ALLOW_CREDENTIALS=on: "
                                "list the exact origins that may send credentials")
    else:
        try:
            origins = tuple(dict.fromkeys(parse_origin(o) for o in origins))
        except ValueError as exc:
            raise SettingsError(f"COMMERCE_CORS_ORIGINS: {exc}") from exc
    if not 0 <= settings.cors_max_age_seconds <= 86_400:
        raise SettingsError("COMMERCE_CORS_MAX_AGE_SECONDS must be between 0 and 86400")
    for field in ("check", "money", "default"):
        for who in ("key", "user"):
            try:
                parse_rate(getattr(settings, f"rate_limit_{field}_{who}"))
            except ValueError as exc:
                raise SettingsError(f"COMMERCE_RATE_LIMIT_{field.upper()}_{who.upper()}: {exc}") from exc
    if not 0.01 <= settings.rate_limit_sync_seconds <= 60:
        raise SettingsError("COMMERCE_RATE_LIMIT_SYNC_SECONDS must be between 0.01 and 60")
    return msgspec.structs.replace(settings, cors_origins=origins)


def _check_suggest(settings: Settings) -> None:
    """Bounds of the suggestion engine's knobs (the weights are the engine's to judge: app/wiring.py)."""
    if not 0 <= settings.suggest_holdout_pct <= 50:
        raise SettingsError("COMMERCE_SUGGEST_HOLDOUT_PCT must be between 0 and 50")
    days = ("suggest_attribution_days", "suggest_dismiss_cooldown_days", "suggest_recent_days",
            "suggest_unused_days", "suggest_signal_days")
    if any(not 1 <= getattr(settings, d) <= 365 for d in days):
        raise SettingsError("COMMERCE_SUGGEST_*_DAYS settings must be between 1 and 365")
    if not 0 <= settings.suggest_cap_per_surface <= 1000 or not 1 <= settings.suggest_cap_window_hours <= 24 * 30:
        raise SettingsError("COMMERCE_SUGGEST_CAP_PER_SURFACE must be 0..1000 (0: no cap) and the window 1..720 hours")
    if not 60 <= settings.suggest_stats_ttl_seconds <= 7 * 86_400 or not 0 <= settings.suggest_min_score < 1:
        raise SettingsError("COMMERCE_SUGGEST_STATS_TTL_SECONDS must be 60..604800 and the minimum score in [0, 1)")


def _check_webhooks(settings: Settings) -> None:
    """Bounds that keep the dispatcher safe: a bounded timeout, a non-empty schedule, sane sizes."""
    if not 0.1 <= settings.webhook_timeout_seconds <= 60:
        raise SettingsError("COMMERCE_WEBHOOK_TIMEOUT_SECONDS must be between 0.1 and 60")
    if not settings.webhook_retry_schedule or any(not 0 <= d <= 7 * 86_400 for d in settings.webhook_retry_schedule):
        raise SettingsError("COMMERCE_WEBHOOK_RETRY_SCHEDULE must list delays between 0 and 604800 seconds")
    if not 0 <= settings.webhook_retry_jitter <= 1:
        raise SettingsError("COMMERCE_WEBHOOK_RETRY_JITTER must be between 0 and 1")
    if not 1 <= settings.webhook_batch_size <= 1000 or not 1 <= settings.webhook_concurrency <= 256:
        raise SettingsError("webhook batch size must be 1..1000 and concurrency 1..256")
    for network in settings.webhook_allowed_networks or ():
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError as exc:
            raise SettingsError(f"COMMERCE_WEBHOOK_ALLOWED_NETWORKS: {network!r} is not a network") from exc


def _with_secrets(settings: Settings) -> Settings:
    """Fill signing secrets: required in production, generated once per data folder elsewhere."""
    settings = _with_stripe(settings)
    if settings.token_secret:
        if settings.is_production and len(settings.token_secret) < 32:
            raise SettingsError("COMMERCE_TOKEN_SECRET must be at least 32 characters in production")
        return settings
    if settings.is_production:
        raise SettingsError("COMMERCE_TOKEN_SECRET is required when COMMERCE_ENV=production")
    return msgspec.structs.replace(settings, token_secret=_dev_secret(settings.data_dir, "token_secret"))


def _with_stripe(settings: Settings) -> Settings:
    """Real Stripe needs its webhook secret (the in-process fake signs with a random one when unset)."""
    if settings.stripe_secret_key and not settings.stripe_secret_key.startswith(("sk_", "rk_")):
        raise SettingsError("STRIPE_SECRET_KEY must be a Stripe secret key (sk_test_..., sk_live_... or rk_...)")
    if settings.stripe_max_network_retries < 0 or settings.stripe_timeout_seconds <= 0:
        raise SettingsError("STRIPE_MAX_NETWORK_RETRIES must be >= 0 and STRIPE_TIMEOUT_SECONDS > 0")
    if not 0 <= settings.renewal_grace_days <= 90 or settings.reconcile_after_seconds < 0:
        raise SettingsError("COMMERCE_RENEWAL_GRACE_DAYS must be 0..90 and COMMERCE_RECONCILE_AFTER_SECONDS >= 0")
    if any(not 0 < d <= 90 for d in settings.renewal_retry_days) or list(settings.renewal_retry_days) != sorted(
            settings.renewal_retry_days):
        raise SettingsError("COMMERCE_RENEWAL_RETRY_DAYS must list increasing days between 1 and 90")
    if settings.stripe_publishable_key and not settings.stripe_publishable_key.startswith("pk_"):
        raise SettingsError("STRIPE_PUBLISHABLE_KEY must be a Stripe publishable key (pk_test_... or pk_live_...)")
    if settings.stripe_secret_key and not settings.stripe_webhook_secret:
        raise SettingsError("STRIPE_WEBHOOK_SECRET (whsec_...) is required with STRIPE_SECRET_KEY")
    backend = settings.stripe_backend
    if backend == "stripe" and not settings.stripe_secret_key:
        raise SettingsError("COMMERCE_STRIPE=stripe needs STRIPE_SECRET_KEY (and STRIPE_WEBHOOK_SECRET)")
    if backend in ("fake", "off") and settings.stripe_secret_key:
        raise SettingsError(f"COMMERCE_STRIPE={backend} contradicts STRIPE_SECRET_KEY: unset one of them")
    if backend == "fake" and settings.is_production:
        raise SettingsError("COMMERCE_STRIPE=fake is refused when COMMERCE_ENV=production: the fake grants "
                            "modules for card payments nobody made")
    return settings


def require_card_payments_decided(settings: Settings) -> None:
    """Refuse to serve while nobody chose how card payments run (the fake must never be an accident)."""
    if settings.stripe_mode == "unset":
        raise SettingsError(
            "card payments are not configured: set STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET for Stripe, "
            "COMMERCE_STRIPE=off to serve without card payments, or COMMERCE_STRIPE=fake for the local Stripe "
            "fake (development and tests only; `make demo` sets it)")


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
