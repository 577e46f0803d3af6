"""The HTTP edge: how a request body becomes a typed value, and the limits checked before any handler runs.

Litestar decodes a JSON body to builtins and converts it with ``strict=False`` (the lax rules meant for
query strings: ``"123"`` and ``8000000.0`` become integers). ``AppRequest.json`` replaces that for every
route: the body is decoded straight into the handler's ``data`` type with msgspec's strict rules, after a
cheap check of its nesting depth; malformed bytes, invalid UTF-8 and too-deep nesting are 400
``malformed_body`` problems, values of the wrong type are 400 ``validation_failed``. Query and path
parameters keep Litestar's lax parsing (they are strings on the wire) and their declared bounds.
"""

from __future__ import annotations

import functools
import re
import types
import typing
from collections.abc import AsyncGenerator
from typing import Annotated, Any, Union, get_args, get_origin

import msgspec
from litestar import Request
from litestar.connection.base import empty_receive, empty_send
from litestar.enums import ScopeType
from litestar.exceptions import InternalServerException
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send
from litestar.types.empty import Empty

from app.errors import (
    ClientDisconnected,
    FieldError,
    HeaderFieldsTooLarge,
    MalformedBody,
    UriTooLong,
    ValidationFailed,
)

# Deepest nesting of arrays and objects a JSON body may have. Our deepest contract (a catalog document's
# price tiers) needs 8; the cap keeps the decoder's recursion far from Python's limit.
MAX_JSON_DEPTH = 32

_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_AS_SQUARE = bytes.maketrans(b"{}", b"[]")  # for depth, an object is as deep as an array


def _brackets(body: bytes) -> bytes:
    """The body's brackets outside JSON strings, all as ``[`` and ``]`` (C-speed byte operations only)."""
    if b"\\" in body:  # escaped backslashes, then escaped quotes: what is left of quotes delimits strings
        body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside = b"".join(body.split(b'"')[::2])  # every other piece between quotes is inside a string
    return outside.translate(_AS_SQUARE, _NOT_BRACKETS)


def json_depth(body: bytes) -> int:
    """How deeply the arrays and objects of a JSON text nest (brackets inside strings do not count)."""
    brackets, depth = _brackets(body), 0
    while brackets:
        peeled = brackets.replace(b"[]", b"")  # one pass peels the innermost level
        if peeled == brackets:  # what is left never closes: each opener nests one deeper
            return depth + brackets.count(b"[")
        brackets, depth = peeled, depth + 1
    return depth


def too_deep(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when the body nests deeper than ``limit``; free for bodies with few brackets (the hot path).

    Brackets left after ``limit`` peels mean deeper nesting, or brackets that never close (malformed too).
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    brackets = _brackets(body)
    for _ in range(limit):
        if not brackets:
            return False
        brackets = brackets.replace(b"[]", b"")
    return bool(brackets)


@functools.cache
def _decoder(body_type: Any) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(body_type, strict=True)


def _field_error(exc: msgspec.ValidationError) -> FieldError:
    """msgspec's ``"Expected `int`, got `str` - at `$.items[0].quantity`"`` as a field error."""
    message, _, where = str(exc).partition(" - at `")
    field = where.rstrip("`").removeprefix("$").removeprefix(".")
    named = re.search(r"(?:unknown|missing required) field `([^`]*)`", message)
    if named:
        field = f"{field}.{named.group(1)}" if field else named.group(1)
    return FieldError(field=field or "body", message=message)


_SCALARS = tuple(getattr(msgspec.inspect, name) for name in (
    "NoneType", "BoolType", "IntType", "FloatType", "StrType", "BytesType", "ByteArrayType", "MemoryViewType",
    "DateTimeType", "TimeType", "DateType", "TimeDeltaType", "UUIDType", "DecimalType", "LiteralType", "EnumType")
    if hasattr(msgspec.inspect, name))


def _depth(t: msgspec.inspect.Type, seen: frozenset[type]) -> int | None:
    """How deeply a JSON value decoded as ``t`` can nest; None when it can nest without bound (``Any``, a
    recursive type, or a struct that skips unknown fields, whose values may be anything)."""
    mi = msgspec.inspect
    if isinstance(t, mi.Metadata):
        return _depth(t.type, seen)
    if isinstance(t, _SCALARS):
        return 0
    inner: list[mi.Type]
    if isinstance(t, mi.StructType):
        if t.cls in seen or not t.forbid_unknown_fields:
            return None
        seen, inner = seen | {t.cls}, [f.type for f in t.fields]
    elif isinstance(t, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType):
        inner = [t.item_type]
    elif isinstance(t, mi.TupleType):
        inner = list(t.item_types)
    elif isinstance(t, mi.DictType):
        inner = [t.key_type, t.value_type]
    elif isinstance(t, mi.UnionType):
        depths = [_depth(x, seen) for x in t.types]
        return None if None in depths else max(d for d in depths if d is not None)
    else:  # Any, Raw, typed dicts, dataclasses and anything else: not bounded here
        return None
    depths = [_depth(x, seen) for x in inner]
    return None if None in depths else 1 + max((d for d in depths if d is not None), default=0)


@functools.cache
def depth_bound(body_type: Any) -> int | None:
    """The deepest nesting a body of ``body_type`` can have, when it is known and within ``MAX_JSON_DEPTH``."""
    try:
        depth = _depth(msgspec.inspect.type_info(body_type), frozenset())
    except (TypeError, ValueError):
        return None
    return depth if depth is not None and depth <= MAX_JSON_DEPTH else None


def decode_body(body: bytes, body_type: Any) -> Any:
    """A JSON body decoded strictly into ``body_type``; every way it can be bad is a 400 problem.

    When the type bounds the nesting (no ``Any``, no recursion, unknown fields rejected) an ASCII body is decoded
    at once: a body that decodes into such a type cannot nest deeper than it, so the depth and UTF-8 checks could
    only pass; a body that does not decode takes the checks in their order below, and gets the same answer."""
    if depth_bound(body_type) is not None and body.isascii():
        try:
            return _decoder(body_type).decode(body)
        except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
            pass  # the answer is the one the checks give
    return decode_checked(body, body_type)


def decode_checked(body: bytes, body_type: Any) -> Any:
    """``decode_body`` with every check first (depth, UTF-8), then the decode."""
    if too_deep(body):
        raise MalformedBody(f"The JSON body nests arrays and objects more than {MAX_JSON_DEPTH} levels deep.")
    if not body.isascii():  # checked as a whole: msgspec only looks at the strings it decodes, in field order
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedBody("The body is not valid UTF-8 (JSON text must be UTF-8).") from None
    try:
        return _decoder(body_type).decode(body)
    except msgspec.ValidationError as exc:
        error = _field_error(exc)
        raise ValidationFailed(f"{error.field}: {error.message}"[:1000], errors=[error]) from None
    except msgspec.DecodeError as exc:
        raise MalformedBody(f"The body is not valid JSON ({exc}).") from None
    except RecursionError:  # a second line of defence: the depth check should make this unreachable
        raise MalformedBody("The JSON body nests too deeply.") from None


_META_KEPT = ("gt", "ge", "lt", "le", "multiple_of", "min_length", "max_length", "tz")


@functools.cache
def without_patterns(body_type: Any) -> Any:
    """``body_type`` with every string ``pattern`` left out and everything else kept (struct options, fields,
    defaults, bounds, lengths, time zones, literals): a body it refuses, ``body_type`` refuses too, and a body it
    decodes, ``body_type`` decodes into the same values if and only if those strings match their patterns. For a
    caller that checks the patterns of many strings at once (one regular expression over them all) instead of
    msgspec calling one per string."""
    origin = get_origin(body_type)
    if origin is Annotated:
        inner, *metas = get_args(body_type)
        kept = [msgspec.Meta(**{k: getattr(m, k) for k in _META_KEPT if getattr(m, k) is not None})
                if isinstance(m, msgspec.Meta) else m for m in metas]
        return Annotated[(without_patterns(inner), *kept)]
    if origin in (Union, types.UnionType):
        return functools.reduce(lambda a, b: a | b, (without_patterns(a) for a in get_args(body_type)))
    if origin in (list, dict, set, frozenset, tuple):
        return origin[tuple(without_patterns(a) for a in get_args(body_type))]
    if isinstance(body_type, type) and issubclass(body_type, msgspec.Struct):
        config = body_type.__struct_config__
        fields = [(f.name, without_patterns(f.type),
                   msgspec.field(default_factory=f.default_factory) if f.default_factory is not msgspec.NODEFAULT
                   else f.default) if f.default is not msgspec.NODEFAULT or f.default_factory is not msgspec.NODEFAULT
                  else (f.name, without_patterns(f.type)) for f in msgspec.structs.fields(body_type)]
        if any(f.encode_name != f.name for f in msgspec.structs.fields(body_type)) or config.tag is not None:
            raise TypeError(f"{body_type.__name__}: renamed fields and tags are not copied")
        return msgspec.defstruct(body_type.__name__, fields, kw_only=True,
                                 forbid_unknown_fields=config.forbid_unknown_fields, frozen=config.frozen)
    if origin is typing.Literal or origin is None:
        return body_type
    raise TypeError(f"not copied without patterns: {body_type!r}")


class AppRequest(Request[Any, Any, Any]):
    """Litestar's request with a strict, typed ``json()`` and client disconnects told apart from errors."""

    def __init__(self, scope: Scope, receive: Receive = empty_receive, send: Send = empty_send) -> None:
        self._client_left = False
        inner = receive

        async def watched() -> ReceiveMessage:
            message = await inner()
            if message["type"] == "http.disconnect":
                self._client_left = True
            return message

        super().__init__(scope, watched if receive is not empty_receive else receive, send)

    async def stream(self) -> AsyncGenerator[bytes, None]:
        """The body in chunks; a client that hangs up before sending all of it is ``ClientDisconnected``."""
        try:
            async for chunk in super().stream():
                yield chunk
        except InternalServerException as exc:
            if self._client_left:
                raise ClientDisconnected("The client closed the connection before sending the whole body.") from exc
            raise

    async def json(self) -> Any:
        """The body decoded into the route handler's ``data`` type (strict), or builtins for a route without one."""
        if self._json is Empty:
            field = self.route_handler.parsed_fn_signature.parameters.get("data")
            self._json = decode_body(await self.body() or b"null", field.annotation if field is not None else Any)
        return self._json


class RequestLimits(ASGIMiddleware):
    """Answers an over-long URL (414) or oversized header block (431) with a problem document.

    The server (granian) rejects larger ones itself, with an empty body: see docs/operations.md.
    """

    scopes = (ScopeType.HTTP,)

    def __init__(self, *, max_url_bytes: int, max_header_bytes: int) -> None:
        self.max_url_bytes = max_url_bytes
        self.max_header_bytes = max_header_bytes

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        path = scope.get("raw_path") or scope["path"].encode()
        if len(path) + len(scope.get("query_string", b"")) > self.max_url_bytes:
            raise UriTooLong(f"The URL is longer than {self.max_url_bytes} bytes.")
        if sum(len(name) + len(value) for name, value in scope["headers"]) > self.max_header_bytes:
            raise HeaderFieldsTooLarge(f"The request headers are larger than {self.max_header_bytes} bytes in all.")
        await next_app(scope, receive, send)
