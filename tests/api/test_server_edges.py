"""Requests that go wrong before or outside a handler, against the real server (granian) on loopback, over raw
sockets: what the app answers with a problem document, what the server answers itself (docs/operations.md
pins it down), and that a client hanging up is no error in the log."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.clock import SystemClock
from app.db import create_engine, make_sessionmaker
from app.settings import load_settings
from tests.factories import make_key
from tests.support.database import TestDatabases
from tests.support.live_server import live_server

SECRET = "edge-secret-" + "e" * 40
DEFAULTS = load_settings({}, env="test", database_url="postgresql://unused/none", token_secret=SECRET,
                         stripe_backend="fake")


@dataclass
class Edge:
    port: int
    key: str
    log: Path


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


@pytest.fixture(scope="module")
async def edge(template_ready: TestDatabases, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Edge]:
    name = await template_ready.create()
    url = template_ready.url(name)
    engine = create_engine(url, pool_size=1, max_overflow=0)
    key = await make_key(make_sessionmaker(engine), SystemClock())
    await engine.dispose()
    data = tmp_path_factory.mktemp("edge")
    with live_server(url, data, SECRET, log_path=data / "server.log") as base:
        yield Edge(port=int(base.rsplit(":", 1)[1]), key=key, log=data / "server.log")
    await template_ready.drop(name)


def _connect(edge: Edge) -> socket.socket:
    return socket.create_connection(("127.0.0.1", edge.port), timeout=10)


def exchange(edge: Edge, raw: bytes) -> Answer:
    """Send raw bytes, read until the server closes (every request here says or forces Connection: close)."""
    with _connect(edge) as s:
        with contextlib.suppress(ConnectionError):  # the server may refuse before reading everything
            s.sendall(raw)
        received = b""
        while chunk := s.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return Answer(status=int(status_line.split()[1]), headers=headers, body=body)


def request(edge: Edge, target: str = "/v1/accounts", *, extra: bytes = b"", method: str = "GET",
            body: bytes = b"") -> bytes:
    head = (f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            f"Authorization: Bearer {edge.key}\r\n").encode() + extra
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n".encode()
    return head + b"\r\n" + body


def assert_problem(answer: Answer, status: int, code: str) -> None:
    assert answer.status == status, answer
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = json.loads(answer.body)
    assert (problem["status"], problem["code"]) == (status, code) and problem["detail"]


def assert_server_answer(answer: Answer, status: int) -> None:
    """What granian sends when it rejects a request before the app sees it: a status line, no body."""
    assert answer.status == status, answer
    assert answer.headers.get("content-length") == "0" and answer.body == b""
    assert answer.headers.get("connection") == "close"


def test_url_over_the_app_limit_is_a_414_problem(edge: Edge) -> None:
    target = "/v1/accounts?cursor=" + "a" * DEFAULTS.max_url_bytes
    assert_problem(exchange(edge, request(edge, target)), 414, "uri_too_long")
    assert exchange(edge, request(edge, "/v1/accounts?limit=1")).status == 200  # the negative space


def test_header_block_over_the_app_limit_is_a_431_problem(edge: Edge) -> None:
    padding = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"p" * 8000) for i in range(DEFAULTS.max_header_bytes // 8000 + 1))
    assert_problem(exchange(edge, request(edge, extra=padding)), 431, "header_fields_too_large")
    assert exchange(edge, request(edge, extra=b"X-Pad: " + b"p" * 8000 + b"\r\n")).status == 200


def test_invalid_utf8_and_deep_nesting_are_400_problems_through_the_server(edge: Edge) -> None:
    bad_utf8 = b'{"external_id": "edge", "name": "\xff"}'
    assert_problem(exchange(edge, request(edge, method="POST", body=bad_utf8)), 400, "malformed_body")
    deep = b"[" * 1000 + b"]" * 1000
    assert_problem(exchange(edge, request(edge, method="POST", body=deep)), 400, "malformed_body")


_CLOSE = b"Host: x\r\nConnection: close\r\n"  # so that an answer from the app would not hang the test either


@pytest.mark.parametrize(("raw", "status"), [
    (b"GET /" + b"a" * 65_535 + b" HTTP/1.1\r\n" + _CLOSE + b"\r\n", 414),  # request target over 65,534 bytes
    (b"GET / HTTP/1.1\r\n" + _CLOSE + b"".join(b"X-H%d: v\r\n" % i for i in range(99)) + b"\r\n", 431),
    (b"GET / HTTP/1.1\r\n" + _CLOSE + b"X-Big: " + b"v" * 1_000_000 + b"\r\n\r\n", 431),  # over the buffer
    (b"POST /v1/accounts HTTP/1.1\r\n" + _CLOSE + b"Content-Length: -1\r\n\r\n", 400),
    (b"POST /v1/accounts HTTP/1.1\r\n" + _CLOSE + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n", 400),  # a TLS hello to the plain port
    (b"HELLO WORLD\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n" + _CLOSE + b"Bad Header: x\r\n\r\n", 400),
])
def test_what_the_server_rejects_itself_is_answered_as_documented(edge: Edge, raw: bytes, status: int) -> None:
    assert_server_answer(exchange(edge, raw), status)


def test_client_disconnects_are_not_logged_as_errors(edge: Edge) -> None:
    mark = edge.log.stat().st_size
    partial = request(edge, method="POST", body=b'{"external_id": "gone", "name": "Gone"}')
    with _connect(edge) as s:  # announces 38 bytes, sends 10, hangs up
        s.sendall(partial[: partial.index(b"\r\n\r\n") + 14])
    with _connect(edge) as s:  # sends a whole request, hangs up before the answer
        s.sendall(request(edge, "/v1/accounts?limit=200"))
    time.sleep(1.0)
    assert exchange(edge, request(edge, "/healthz")).status == 200
    log = edge.log.read_text(errors="replace")[mark:]
    assert "ERROR" not in log and "Traceback" not in log, log
