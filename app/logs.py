"""Structured logs (structlog over the standard library) and the request id every line of a request carries.

Every ``logging.getLogger(...)`` call site keeps working: the root handler renders each record through
structlog's processors, as one JSON object per line (``COMMERCE_LOG_FORMAT=json``) or for people
(``console``). The request id (the caller's ``X-Request-Id`` when it is sane, else a new one) sits in a
context variable, so log lines, audit rows and outbox events written while a request runs name it, and the
response returns it in ``X-Request-Id``.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import Any, Literal, TextIO

import structlog
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from app.ids import new_id

LogFormat = Literal["json", "console"]
HEADER = b"x-request-id"
SANE_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,100}$")  # what we echo back and store: no spaces, no controls

access_log = logging.getLogger("commerce.access")


# Libraries whose INFO/DEBUG lines carry request parameters or URLs (SQL parameters, webhook URLs with their
# query strings, Stripe request bodies): they log warnings and errors only, whatever the level.
QUIET = ("sqlalchemy", "httpx", "httpcore", "stripe", "asyncpg", "granian.access",
         "alembic.runtime.plugins")  # the last only for noise: a line per autogenerate plugin at every start


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is when a line is emitted, not the one current at configuration (a
    test harness or an embedding tool may swap and close it later; a stale stream would lose the lines)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)

    def flush(self) -> None:
        self.stream = sys.stderr
        super().flush()


def configure_logging(*, fmt: LogFormat, level: str = "INFO", stream: TextIO | None = None) -> None:
    """Route every standard-library logger through structlog's renderer (idempotent)."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
    ]
    renderer: Any = (structlog.processors.JSONRenderer() if fmt == "json"
                     else structlog.dev.ConsoleRenderer(colors=False))
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, renderer])
    handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    handler.setFormatter(formatter)
    handler.set_name("commerce")
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if h.get_name() != "commerce"] + [handler]
    root.setLevel(level)
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(), cache_logger_on_first_use=True)


def current_request_id() -> str | None:
    """The id of the request being served by this task, if any."""
    value = structlog.contextvars.get_contextvars().get("request_id")
    return value if isinstance(value, str) else None


def _incoming(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == HEADER:
            text = value.decode("latin-1")
            return text if SANE_ID.match(text) else None
    return None


def request_id_middleware_factory(*, access: bool) -> Any:
    """An ASGI middleware binding the request id (and, with ``access``, logging one line per request)."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def handle(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            request_id = _incoming(scope) or new_id("req")
            tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
            status = 500
            started = time.perf_counter()

            async def send_with_id(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    message["headers"] = [*message.get("headers", ()), (HEADER, request_id.encode())]
                await send(message)

            try:
                await app(scope, receive, send_with_id)
            finally:
                if access:
                    access_log.info("request", extra={
                        "method": scope.get("method"), "path": scope.get("path"), "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2)})
                structlog.contextvars.reset_contextvars(**tokens)

        return handle

    return middleware
