"""Settings read once from the environment and passed down; nothing reads them at import time."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

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
    public_url: str | None = None
    workers: int = 1
    dispatcher: Switch = "on"
    scheduler: Switch = "on"
    warm_start: Switch = "on"
    jobs_poll_seconds: float = 15.0
    jobs_disabled: tuple[str, ...] = ()
    job_history_days: int = 90
    metrics: Literal["on", "public", "off"] = "on"
    log_format: Literal["json", "console"] = "json"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    access_log: Switch = "off"
    tracing: Switch = "off"
    tracing_service_name: str = "commerce"
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
    changes_retention_seconds: int = 86_400
    changes_heartbeat_seconds: float = 15.0
    changes_max_stream_seconds: float = 3600.0
    usage_backfill_days: int = 35
    usage_retention_months: int = 13
    trial_scope: Literal["user", "account"] = "user"
    trial_ending_days: int = 3
    price_notice_days: int = 30
    sweep_seconds: float = 60.0
    unused_alert_days: int = 30
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
    suggest_min_score: float = 0.02
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


@dataclass(frozen=True)
class Doc:
    """How one setting is named in the environment and documented (the README table is generated from it)."""

    meaning: str
    env: str | None = None  # the variable's name when it is not COMMERCE_<FIELD> (kept for compatibility)
    shown: str | None = None  # the default as people should read it, when the value itself says too little
    secret: bool = False  # never printed by `commerce settings`


# One entry per Settings field: its variable is COMMERCE_<FIELD> unless ``env`` says otherwise; a test fails
# when a field has no entry or the README's configuration table differs from ``settings_table()``.
DOCS: dict[str, Doc] = {
    "env": Doc("`production` refuses generated secrets and requires `COMMERCE_TOKEN_SECRET`"),
    "database_url": Doc(
        "PostgreSQL URL (`postgresql://user:pass@host/db`); unset = embedded server",
        env="DATABASE_URL", shown="unset", secret=True),
    "data_dir": Doc("embedded server data and development secrets"),
    "token_secret": Doc(
        "HMAC secret of user session tokens (32+ chars in production)", shown="generated (dev only)", secret=True),
    "token_audience": Doc("audience (`aud`) claim of user session tokens"),
    "token_ttl_seconds_default": Doc(
        "default lifetime of session tokens (max `COMMERCE_TOKEN_TTL_SECONDS_MAX`, 86400)",
        env="COMMERCE_TOKEN_TTL_SECONDS"),
    "token_ttl_seconds_max": Doc("longest lifetime a session token may be minted with"),
    "admin_roles": Doc("comma-separated roles that make a user a customer admin"),
    "quote_ttl_seconds": Doc("how long a quote's price is locked"),
    "max_body_bytes": Doc("request body limit (413 above it)"),
    "max_url_bytes": Doc("path and query limit (414 problem above it; 1024..65533)"),
    "max_header_bytes": Doc("request header block limit (431 problem above it; 4096..352257)"),
    "idempotency_ttl_seconds": Doc("how long an `Idempotency-Key` answer is replayed"),
    "api_key_cache_seconds": Doc("per-process API key cache (revocations are pushed at once)"),
    "session_cache_seconds": Doc(
        "per-process cache of users' session token generations, above 0 and at most 3600 (revocations are "
        "pushed at once)"),
    "db_pool_size": Doc("connections per worker process"),
    "db_max_overflow": Doc("connections a worker process may open beyond its pool under load"),
    "host": Doc("listen address"),
    "port": Doc("listen port"),
    "public_url": Doc(
        "the service's address as people reach it (`https://commerce.example.com`), used in the console sign-in "
        "links the CLI prints; unset: `http://HOST:PORT`, with `127.0.0.1` for a wildcard HOST",
        shown="unset"),
    "workers": Doc("worker processes of `commerce serve` (granian)"),
    "dispatcher": Doc(
        "`on` runs the webhook dispatcher inside every app process; `off` leaves it to `commerce worker`"),
    "scheduler": Doc(
        "`on` runs the job scheduler inside every app process (each job slot runs once across all of them); "
        "`off` leaves the jobs to `commerce worker`"),
    "warm_start": Doc("`on` prepares the suggestion request's statements and caches at start-up, before the first "
                      "request (`off`: the first requests pay for it; the tests' apps)"),
    "jobs_poll_seconds": Doc("how often a scheduler looks for due jobs (0.05 to 3600)"),
    "jobs_disabled": Doc("comma-separated job names no process runs (`commerce jobs list` names them)"),
    "job_history_days": Doc("finished job runs are kept this many days (1 to 3650)"),
    "metrics": Doc(
        "`on` serves `/metrics` to a vendor key with `ops:read`; `public` serves it without credentials (for "
        "a private scrape network); `off` serves nothing"),
    "log_format": Doc("`json`: one JSON object per log line; `console`: lines for people"),
    "log_level": Doc(
        "`DEBUG`, `INFO`, `WARNING` or `ERROR` (the SQL, HTTP client and Stripe libraries log warnings only, "
        "whatever this says)"),
    "access_log": Doc("`on` logs one line per request (method, path, status, duration, request id)"),
    "tracing": Doc(
        "`on` sends OpenTelemetry spans (requests, SQL, Stripe, webhook deliveries, jobs) to the OTLP/HTTP "
        "collector named by `OTEL_EXPORTER_OTLP_ENDPOINT`; needs the `tracing` extra"),
    "tracing_service_name": Doc("`service.name` of the spans"),
    "webhook_timeout_seconds": Doc("bound on one delivery attempt (connect + send + answer), 0.1 to 60"),
    "webhook_retry_schedule": Doc(
        "delays (s) before retries 2, 3, ...; then the delivery is `failed` (about 2.9 days)"),
    "webhook_retry_jitter": Doc("each delay is spread uniformly by this fraction (+/- 20 %)"),
    "webhook_disable_after_seconds": Doc("an endpoint failing every attempt for this long ..."),
    "webhook_disable_min_failures": Doc("... and at least this many times in a row is disabled automatically"),
    "webhook_allowed_hosts": Doc(
        "comma-separated hosts (`hooks.example.com`, `*.example.com`) endpoints may use; a host listed "
        "exactly may also be a single-label or special-use name (`receiver`, `hooks.internal`)", shown="unset (any)"),
    "webhook_allowed_networks": Doc(
        "comma-separated CIDRs of internal addresses deliveries may reach (public addresses always may); "
        "checked against every resolved address before each attempt, and IPv6 forms carrying an IPv4 address "
        "are judged by that address (docs/webhooks.md)", shown="loopback outside production, none in production"),
    "webhook_poll_seconds": Doc("how often an idle dispatcher looks for work"),
    "webhook_batch_size": Doc("deliveries claimed per dispatcher pass (1..1000)"),
    "webhook_concurrency": Doc("concurrent delivery requests per dispatcher (1..256)"),
    "webhook_fanout_lag_seconds": Doc(
        "how far the fan-out scan looks back for late-committing events (docs/decisions.md D9)"),
    "webhook_secret_overlap_seconds": Doc("default overlap of a secret rotation (old and new secret both sign)"),
    "stripe_backend": Doc(
        "without a key: `off` (card routes answer 503) or `fake` (the in-process Stripe fake: no money moves,"
        " yet orders are fulfilled; refused in production, logged as a warning at every start; `make demo` "
        "and the tests set it). Outside production, `serve`/`demo` refuse to start with neither a key nor "
        "this set; in production the default is `off`", env="COMMERCE_STRIPE", shown="unset"),
    "stripe_secret_key": Doc(
        "Stripe secret key (`sk_test_...`); card payments go to Stripe",
        env="STRIPE_SECRET_KEY", shown="unset", secret=True),
    "stripe_webhook_secret": Doc(
        "signing secret (`whsec_...`) of the `/v1/stripe/webhook` endpoint; required with a secret key",
        env="STRIPE_WEBHOOK_SECRET", shown="unset", secret=True),
    "stripe_api_base": Doc(
        "another Stripe API address (e.g. the fake served on loopback); outside production the widget's "
        "test-card form talks to it too", env="STRIPE_API_BASE", shown="unset"),
    "stripe_publishable_key": Doc(
        "Stripe publishable key (`pk_...`) the widget uses with Stripe.js to add cards and run 3-D Secure "
        "(docs/widget.md)", env="STRIPE_PUBLISHABLE_KEY", shown="unset"),
    "stripe_timeout_seconds": Doc("timeout of each Stripe request", env="STRIPE_TIMEOUT_SECONDS"),
    "stripe_max_network_retries": Doc(
        "SDK retries (timeouts, connection errors, 409, 5xx) with the same idempotency key",
        env="STRIPE_MAX_NETWORK_RETRIES"),
    "stripe_webhook_tolerance_seconds": Doc(
        "oldest webhook signature accepted", env="STRIPE_WEBHOOK_TOLERANCE_SECONDS"),
    "renewal_grace_days": Doc("access kept after a failed renewal, counted from the period end (docs/payments.md)"),
    "renewal_retry_days": Doc("dunning retries of a failed renewal, days after the period end"),
    "reconcile_after_seconds": Doc(
        "age after which `commerce billing reconcile` / `run` treat an unanswered Stripe call as lost and "
        "replay it"),
    "entitlement_cache_max_entries": Doc("per-process LRU of user entitlement snapshots"),
    "entitlement_cache_ttl_seconds": Doc(
        "safety-net age of cached snapshots and catalog (changes are pushed by NOTIFY)"),
    "usage_retention_months": Doc(
        "usage events older than this many months are dropped (whole monthly partitions, by the "
        "`usage_partitions` job); `0` keeps them forever; counters and statements are kept regardless"),
    "changes_retention_seconds": Doc(
        "how long a change-stream cursor stays resumable (older cursors get `reset`); the log is pruned an hour "
        "after"),
    "changes_heartbeat_seconds": Doc(
        "idle change streams send a `heartbeat` event (with a fresh cursor) this often"),
    "changes_max_stream_seconds": Doc(
        "a change stream ends after this long; clients resume with their cursor (and re-authenticate)"),
    "usage_backfill_days": Doc("how far in the past a usage event's `occurred_at` may lie"),
    "trial_scope": Doc("a module's trial once per `user`, or once per `account`"),
    "trial_ending_days": Doc("`trial.ending` is emitted this many days before a trial ends"),
    "price_notice_days": Doc(
        "owners of an older price version get their `price.change_scheduled` notice this many days before a "
        "scheduled migration (from the `price_migrations` job)"),
    "sweep_seconds": Doc("interval of the `trial_sweep` job that emits expiry and trial events (`0` = no such job)"),
    "unused_alert_days": Doc("`entitlement.unused` is emitted once a paid module has not been used for this many days"),
    "demand_flush_seconds": Doc("how often buffered denied checks are written as demand signals"),
    "demand_buffer_max_keys": Doc("bound of that buffer (distinct user/feature/day keys)"),
    "suggest_holdout_pct": Doc(
        "percent of users (0..50, stable per user) who get no suggestions, for the lift measurement"),
    "suggest_holdout_salt": Doc("salt of the holdout hash; changing it draws a new holdout"),
    "suggest_attribution_days": Doc(
        "a purchase is attributed to the suggestion of that module shown this many days before it"),
    "suggest_cap_per_surface": Doc("suggestion answers per user and surface in the window (0: no cap)"),
    "suggest_cap_window_hours": Doc("the window of that cap, in hours (1..720)"),
    "suggest_dismiss_cooldown_days": Doc("a dismissed module stays away from that user this long"),
    "suggest_recent_days": Doc("no suggestion of a module the user just bought or an admin denied"),
    "suggest_unused_days": Doc("an owned module unused this long may come back as an adoption nudge"),
    "suggest_signal_days": Doc("look-back of the demand signals (denied checks, attempts)"),
    "suggest_stats_ttl_seconds": Doc("age after which an account's peer statistics are recounted (in the background)"),
    "suggest_min_score": Doc("propensity below which a candidate is not suggested (the user's own moment excepted)"),
    "suggest_weights": Doc("override signal weights, e.g. `demand=3,bias=-3`", shown="defaults in docs/suggestions.md"),
    "cors_origins": Doc(
        "comma-separated exact origins (`https://app.example.com`) whose pages may call the browser-facing "
        "routes with session tokens; `*` for any (never with credentials). Per-account origins: "
        "`allowed_origins` on the account (docs/concepts.md)", shown="unset (none)"),
    "cors_allow_credentials": Doc(
        "`on` adds `Access-Control-Allow-Credentials: true` (cookies); refused together with `*`"),
    "cors_max_age_seconds": Doc("how long browsers may cache a preflight answer (0..86400)"),
    "rate_limit": Doc("`off` switches rate limiting off (no 429s, no RateLimit headers)"),
    "rate_limit_check_key": Doc(
        "entitlement checks, snapshots and usage events, per API key (`N/second`, `N/minute`, `N/hour`)"),
    "rate_limit_check_user": Doc(
        "entitlement checks, snapshots and usage events, per user (`N/second`, `N/minute`, `N/hour`)"),
    "rate_limit_money_key": Doc(
        "per API key: routes that move or commit money (orders, pay, cancel, refund, approve/deny, cards, "
        "budgets, statement close, subscription changes)"),
    "rate_limit_money_user": Doc(
        "per user: routes that move or commit money"),
    "rate_limit_default_key": Doc(
        "per API key: every other authenticated route (health, readiness and Stripe's webhook are never "
        "limited)"),
    "rate_limit_default_user": Doc(
        "per user: every other authenticated route"),
    "rate_limit_sync_seconds": Doc(
        "the rate limiter's tick: heartbeat of each process, leases unused for ten ticks go back; also how "
        "long a full window is refused locally before asking again"),
    "console_link_ttl_seconds": Doc("how long a one-time console sign-in link works (60 s to a day)"),
    "console_idle_seconds": Doc("a console session ends after this long without a request"),
    "console_max_seconds": Doc("a console session ends this long after sign-in, however busy (at most 30 days)"),
}


def env_name(field: str) -> str:
    return DOCS[field].env or f"COMMERCE_{field.upper()}"


def _field_types() -> dict[str, Any]:
    return {k: v for k, v in typing.get_type_hints(Settings).items() if k in Settings.__struct_fields__}


def _from_env(value: str, hint: Any) -> object:
    """Text of a variable -> what msgspec converts: comma lists for tuples, Path for paths, else the text."""
    types = {typing.get_origin(t) or t for t in (hint, *typing.get_args(hint))}
    if tuple in types:
        return tuple(r.strip() for r in value.split(",") if r.strip())
    if Path in types:
        return Path(value)
    return value


def _render(value: object) -> str:
    if value is None or value == "" or value == ():
        return "unset"
    if isinstance(value, tuple):
        return "`" + ",".join(str(v) for v in value) + "`"
    if isinstance(value, float) and value.is_integer():
        return f"`{int(value)}`"
    return f"`{value}`"


def settings_table() -> str:
    """The README's configuration table, generated from Settings and DOCS (``commerce settings --markdown``)."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for field in msgspec.structs.fields(Settings):
        doc = DOCS[field.name]
        default = doc.shown if doc.shown is not None else _render(field.default)
        rows.append(f"| `{env_name(field.name)}` | {default} | {doc.meaning} |")
    return "\n".join(rows)


def described(settings: Settings) -> list[tuple[str, str]]:
    """(variable, value) of every setting, secrets masked (``commerce settings``)."""
    out = []
    for field in msgspec.structs.fields(Settings):
        value = getattr(settings, field.name)
        if DOCS[field.name].secret and value:
            text = "(set)"
        else:
            text = ",".join(str(v) for v in value) if isinstance(value, tuple) else str(value)
        out.append((env_name(field.name), text))
    return out


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Build settings from environment variables, then apply explicit overrides (tests, CLI flags)."""
    environ = os.environ if environ is None else environ
    raw: dict[str, object] = {}
    for field, hint in _field_types().items():
        value = environ.get(env_name(field))
        if value is not None and value != "":
            raw[field] = _from_env(value, hint)
    raw.update(overrides)
    if isinstance(raw.get("data_dir"), str):
        raw["data_dir"] = Path(str(raw["data_dir"]))
    try:
        settings = msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        at = re.search(r"at `\$\.([a-z_0-9]+)", str(exc))
        where = env_name(at.group(1)) if at and at.group(1) in DOCS else "settings"
        raise SettingsError(f"{where}: {str(exc).split(' - at ')[0]}") from exc
    _check_webhooks(settings)
    if settings.entitlement_cache_max_entries < 1 or settings.entitlement_cache_ttl_seconds <= 0:
        raise SettingsError("the entitlement cache needs at least one entry and a positive TTL")
    if (settings.changes_retention_seconds < 60 or settings.changes_heartbeat_seconds <= 0
            or settings.changes_max_stream_seconds <= 0):
        raise SettingsError("the change stream needs a retention of at least 60 s and positive heartbeat and "
                            "stream lengths")
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
    if settings.usage_retention_months < 0 or 0 < settings.usage_retention_months * 28 <= settings.usage_backfill_days:
        raise SettingsError("COMMERCE_USAGE_RETENTION_MONTHS must be 0 (keep) or longer than "
                            "COMMERCE_USAGE_BACKFILL_DAYS")
    if not 0 <= settings.price_notice_days <= 365:
        raise SettingsError("COMMERCE_PRICE_NOTICE_DAYS must be 0..365")
    if not 0.05 <= settings.jobs_poll_seconds <= 3600 or not 1 <= settings.job_history_days <= 3650:
        raise SettingsError("COMMERCE_JOBS_POLL_SECONDS must be 0.05..3600 and COMMERCE_JOB_HISTORY_DAYS 1..3650")
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
            "suggest_unused_days", "suggest_signal_days", "unused_alert_days")
    if any(not 1 <= getattr(settings, d) <= 365 for d in days):
        raise SettingsError("COMMERCE_SUGGEST_*_DAYS and COMMERCE_UNUSED_ALERT_DAYS must be between 1 and 365")
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


def public_base_url(settings: Settings) -> str:
    """Where people reach the service: COMMERCE_PUBLIC_URL, else the listen address (a wildcard as loopback)."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host  # noqa: S104
    return f"http://{host}:{settings.port}"
