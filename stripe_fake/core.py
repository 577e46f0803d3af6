"""The fake's engine: routing, Stripe-style errors, idempotency replay, fault injection and webhook events."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx
import stripe

from stripe_fake.forms import FormError, parse_form
from stripe_fake.schema import undeclared_fields, unknown_params

log = logging.getLogger("commerce.stripe_fake")

Json = dict[str, Any]
WebhookTarget = Callable[[bytes, str], Awaitable[None]] | str


class FaultKind(StrEnum):
    """What the next matching request suffers instead of a normal answer."""

    TIMEOUT = "timeout"  # nothing done; the client waits and gives up
    CONNECTION_ERROR = "connection_error"  # nothing done; the connection fails
    SERVER_ERROR = "server_error"  # nothing done; 500 api_error (not stored for idempotency)
    LOST_RESPONSE = "lost_response"  # done and stored, then the answer is lost (a network error)


@dataclass
class Fault:
    kind: FaultKind
    method: str | None
    path: str | None
    times: int


@dataclass(frozen=True)
class Reply:
    """An HTTP answer, or (``fault`` set) the network failure the transport must simulate."""

    status: int
    body: bytes
    headers: dict[str, str]
    fault: FaultKind | None = None


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    params: Json
    idempotency_key: str | None
    replayed: bool
    status: int


class StripeApiError(Exception):
    """An error the fake answers with, in Stripe's ``{"error": {...}}`` shape."""

    def __init__(self, status: int, type_: str, message: str, *, code: str | None = None,
                 param: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body: Json = {"type": type_, "message": message, **extra}
        if code is not None:
            self.body["code"] = code
        if param is not None:
            self.body["param"] = param


def missing(kind: str, object_id: str, param: str = "id") -> StripeApiError:
    return StripeApiError(404, "invalid_request_error", f"No such {kind}: '{object_id}'", code="resource_missing",
                          param=param)


def invalid(message: str, *, param: str | None = None, code: str | None = None) -> StripeApiError:
    return StripeApiError(400, "invalid_request_error", message, param=param, code=code)


Handler = Callable[["FakeStripe", Json, tuple[str, ...]], Json]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    params_class: str | None  # the SDK TypedDict the params must fit; None for the fake-only endpoints
    publishable: bool = False  # also answers a browser's publishable key (with the object's client secret)


@dataclass
class FakeStripe:
    """A small, stateful, in-memory Stripe of exactly the endpoints this service calls.

    Talk to it through the real SDK: in-process with ``FakeHTTPClient`` or over loopback with ``serve``.
    """

    webhook_secret: str = "whsec_fake"
    base_url: str = "http://127.0.0.1:12111"  # where browsers reach it (the server sets it); challenge pages
    auto_deliver: bool = False
    objects: dict[str, Json] = field(default_factory=dict)
    events: list[Json] = field(default_factory=list)
    requests: list[RecordedRequest] = field(default_factory=list)
    hidden: dict[str, Json] = field(default_factory=dict)  # per-object facts Stripe keeps to itself
    observers: list[Callable[[str, str], None]] = field(default_factory=list)  # (method, path) of each request
    refunds_pending: bool = False  # new refunds start ``pending`` (settled by POST /v1/_fake/refunds/{id}/settle)
    idempotency_ttl_seconds: int = 24 * 3600  # Stripe prunes idempotency keys after 24 hours
    elapsed_seconds: int = 0  # how far a test moved this fake's time on (``advance``)
    _idempotency: dict[str, tuple[str, int, bytes, int]] = field(default_factory=dict)
    _faults: list[Fault] = field(default_factory=list)
    _targets: list[WebhookTarget] = field(default_factory=list)
    _undelivered: list[Json] = field(default_factory=list)
    _tasks: set[Any] = field(default_factory=set)
    _loop: asyncio.AbstractEventLoop | None = None
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _request_context: tuple[str, str | None] = ("", None)

    # --- fault injection --------------------------------------------------------------------------------
    def inject(self, kind: FaultKind | str, *, method: str | None = None, path: str | None = None,
               times: int = 1) -> None:
        """The next ``times`` requests matching ``method`` and the ``path`` prefix suffer ``kind``."""
        with self._lock:
            self._faults.append(Fault(FaultKind(kind), method.upper() if method else None, path, times))

    # --- state across restarts (the demo's fake keeps its Stripe account in the data folder) --------------
    def save(self, path: Path) -> None:
        """Write objects, events and idempotency records to ``path`` as JSON (atomically)."""
        with self._lock:
            state = {"objects": self.objects, "events": self.events, "hidden": self.hidden,
                     "idempotency": {k: [fp, status, body.decode(), at] for k, (fp, status, body, at) in
                                     self._idempotency.items()}}
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(state))
            tmp.replace(path)

    def restore(self, path: Path) -> None:
        """Read what ``save`` wrote (nothing happens when ``path`` does not exist)."""
        if not path.exists():
            return
        state = json.loads(path.read_text())
        with self._lock:
            self.objects, self.events, self.hidden = state["objects"], state["events"], state["hidden"]
            self._idempotency = {k: (v[0], v[1], v[2].encode(), v[3] if len(v) > 3 else now())
                                 for k, v in state["idempotency"].items()}

    def advance(self, seconds: int) -> None:
        """Move this fake's time on (tests): idempotency keys older than the TTL are forgotten, as Stripe does."""
        with self._lock:
            self.elapsed_seconds += seconds

    def clock(self) -> int:
        return now() + self.elapsed_seconds

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, method: str, path: str) -> FaultKind | None:
        for fault in self._faults:
            if (fault.method is None or fault.method == method) and (fault.path is None or path.startswith(fault.path)):
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                return fault.kind
        return None

    # --- the request path -------------------------------------------------------------------------------
    def handle(self, method: str, path: str, query: str, headers: dict[str, str], body: str) -> Reply:
        """Answer one API request as Stripe would (thread-safe; every request is atomic)."""
        from stripe_fake.routes import ROUTES

        method = method.upper()
        for observe in self.observers:  # in-process, this runs in the caller's task (tests watch from here)
            observe(method, path)
        lower = {k.lower(): v for k, v in headers.items()}
        key = lower.get("idempotency-key")
        with self._lock:
            fault = self._take_fault(method, path)
            if fault in (FaultKind.TIMEOUT, FaultKind.CONNECTION_ERROR):
                self._record(method, path, {}, key, False, 0)
                return Reply(0, b"", {}, fault)
            if fault is FaultKind.SERVER_ERROR:
                self._record(method, path, {}, key, False, 500)
                return self._error_reply(StripeApiError(500, "api_error", "An unknown error occurred (injected)."))
            try:
                params = parse_form(body if method == "POST" else query)
            except FormError as exc:
                return self._error_reply(invalid(str(exc)))
            refused = self._authorize(ROUTES, method, path, lower.get("authorization", ""), params)
            if refused is not None:
                return self._error_reply(refused)
            fingerprint = hashlib.sha256(f"{method} {path} {json.dumps(params, sort_keys=True)}".encode()).hexdigest()
            if key is not None and key in self._idempotency and (
                    self._idempotency[key][3] + self.idempotency_ttl_seconds <= self.clock()):
                del self._idempotency[key]  # expired: the key starts a new request, as at Stripe
            if method == "POST" and key is not None and key in self._idempotency:
                stored_fp, status, stored, _ = self._idempotency[key]
                if stored_fp != fingerprint:
                    self._record(method, path, params, key, False, 400)
                    return self._error_reply(StripeApiError(
                        400, "idempotency_error",
                        f"Keys for idempotent requests can only be used with the same parameters they were first "
                        f"used with. Try using a key other than '{key}' if you meant to execute a different request."))
                self._record(method, path, params, key, True, status)
                reply = Reply(status, stored, self._headers(key, replayed=True))
                return Reply(0, b"", {}, fault) if fault is FaultKind.LOST_RESPONSE else reply
            status, payload = self._route(ROUTES, method, path, params, key)
            encoded = json.dumps(payload).encode()
            if method == "POST" and key is not None and (status < 400 or status == 402):
                self._idempotency[key] = (fingerprint, status, encoded, self.clock())  # once execution began
            self._record(method, path, params, key, False, status)
        if fault is FaultKind.LOST_RESPONSE:
            return Reply(0, b"", {}, fault)
        return Reply(status, encoded, self._headers(key))

    def _authorize(self, routes: list[Route], method: str, path: str, authorization: str,
                   params: Json) -> StripeApiError | None:
        """A secret key may call anything; a publishable key (a browser: Stripe.js sends it as ``key``) only the
        client-side endpoints, and for an intent only with that intent's client secret (both consumed here)."""
        browser_key = params.pop("key", None)
        api_key = authorization.removeprefix("Bearer ") if authorization.startswith("Bearer ") else browser_key
        if not isinstance(api_key, str) or not api_key.startswith(("sk_", "pk_")):
            return StripeApiError(401, "invalid_request_error", "Invalid API Key provided.")
        if api_key.startswith("sk_"):
            return None
        route, ids = self._match(routes, method, path)
        if route is None or not route.publishable:
            return StripeApiError(401, "invalid_request_error", "This API call cannot be made with a publishable "
                                  "API key. Please use a secret API key.")
        secret = params.pop("client_secret", None)
        target = self.objects.get(ids[0]) if ids else None
        if ids and (target is None or not secret or secret != target.get("client_secret")):
            kind = str(target.get("object")) if target else "intent"
            return missing(kind, ids[0])  # Stripe answers a wrong client secret as an unknown object
        return None

    @staticmethod
    def _match(routes: list[Route], method: str, path: str) -> tuple[Route | None, tuple[str, ...]]:
        for route in routes:
            match = route.pattern.fullmatch(path)
            if match is not None and route.method == method:
                return route, match.groups()
        return None, ()

    def _route(self, routes: list[Route], method: str, path: str, params: Json, key: str | None) -> tuple[int, Json]:
        self._request_context = (new_id("req"), key)
        for route in routes:
            match = route.pattern.fullmatch(path)
            if match is None or route.method != method:
                continue
            try:
                if route.params_class is not None:
                    unknown = unknown_params(route.params_class, params)
                    if unknown:
                        raise invalid(f"Received unknown parameter: {unknown[0]}", param=unknown[0],
                                      code="parameter_unknown")
                result = route.handler(self, params, match.groups())
            except StripeApiError as exc:
                return exc.status, {"error": exc.body}
            problems = undeclared_fields(result)
            assert not problems, f"the fake answered fields the SDK does not declare: {problems}"
            return 200, result
        return 404, {"error": {"type": "invalid_request_error",
                               "message": f"Unrecognized request URL ({method}: {path})."}}

    def _record(self, method: str, path: str, params: Json, key: str | None, replayed: bool, status: int) -> None:
        self.requests.append(RecordedRequest(method, path, params, key, replayed, status))

    def _headers(self, key: str | None, *, replayed: bool = False) -> dict[str, str]:
        headers = {"content-type": "application/json", "request-id": new_id("req"),
                   "stripe-version": stripe.api_version}
        if key is not None:
            headers["idempotency-key"] = key
        if replayed:
            headers["idempotent-replayed"] = "true"
        return headers

    def _error_reply(self, exc: StripeApiError) -> Reply:
        return Reply(exc.status, json.dumps({"error": exc.body}).encode(), self._headers(None))

    # --- objects and events -----------------------------------------------------------------------------
    def get(self, kind: str, object_id: str, *, param: str = "id") -> Json:
        obj = self.objects.get(object_id)
        if obj is None or obj.get("object") != kind:
            raise missing(kind, object_id, param)
        return obj

    def put(self, obj: Json) -> Json:
        self.objects[obj["id"]] = obj
        return obj

    def of_kind(self, kind: str) -> list[Json]:
        return [o for o in self.objects.values() if o.get("object") == kind]

    def emit(self, type_: str, obj: Json) -> Json:
        """Record an event carrying a snapshot of ``obj``; delivered by ``deliver_events``."""
        request_id, key = self._request_context
        event = {
            "id": new_id("evt"), "object": "event", "api_version": stripe.api_version, "created": now(),
            "data": {"object": copy.deepcopy(obj)}, "livemode": False, "pending_webhooks": len(self._targets),
            "request": {"id": request_id or None, "idempotency_key": key}, "type": type_,
        }
        problems = undeclared_fields(event)
        assert not problems, f"the fake emitted fields the SDK does not declare: {problems}"
        self.events.append(event)
        self._undelivered.append(event)
        return event

    def events_of(self, type_: str) -> list[Json]:
        return [e for e in self.events if e["type"] == type_]

    # --- webhook delivery -------------------------------------------------------------------------------
    def add_webhook_target(self, target: WebhookTarget) -> None:
        """An async callable ``(payload, signature_header)`` or an URL to POST each event to.

        Automatic deliveries run on the event loop this is called from (the receiving app's loop).
        """
        self._targets.append(target)
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None

    def sign(self, payload: str, *, timestamp: int | None = None) -> str:
        header: str = stripe.WebhookSignature.generate_signature_header(payload, self.webhook_secret,
                                                                        timestamp=timestamp)
        return header

    async def deliver_events(self) -> int:
        """Deliver every event not delivered yet, in order, to every target; returns how many events."""
        with self._lock:
            batch, self._undelivered = self._undelivered, []
        for event in batch:
            payload = json.dumps(event)
            header = self.sign(payload)
            for target in self._targets:
                try:
                    if isinstance(target, str):
                        async with httpx.AsyncClient(timeout=10) as client:
                            await client.post(target, content=payload, headers={
                                "Stripe-Signature": header, "Content-Type": "application/json"})
                    else:
                        await target(payload.encode(), header)
                except Exception:
                    log.warning("webhook delivery of %s failed", event["id"], exc_info=True)
        return len(batch)

    def after_request(self) -> None:
        """With ``auto_deliver``, deliver new events in the background (as Stripe does, shortly after)."""
        if not (self.auto_deliver and self._undelivered and self._targets):
            return
        loop = self._loop or asyncio.get_running_loop()
        if loop.is_closed():
            return
        future = asyncio.run_coroutine_threadsafe(self.deliver_events(), loop)
        self._tasks.add(future)
        future.add_done_callback(self._tasks.discard)


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def now() -> int:
    return int(time.time())
