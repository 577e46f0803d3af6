"""An app with routes that crash on some inputs: the fuzz gate must catch them (served by granian)."""

from __future__ import annotations

from typing import Annotated

from litestar import Litestar, Request, get, post
from litestar.params import JSONBody, Parameter
from msgspec import Meta

from app.asgi import create_app
from app.schemas import Input
from app.settings import load_settings


@get("/v1/broken/divide", opt={"scope": "accounts:read", "owner": "vendor"}, summary="crashes on n=0")
async def divide(n: Annotated[int, Parameter(ge=-100, le=100)]) -> dict[str, int]:
    return {"result": 100 // n}  # the bug: ZeroDivisionError -> 500


class GadgetIn(Input):
    label: Annotated[str, Meta(min_length=1, max_length=200)]
    count: Annotated[int, Meta(ge=0, le=10**12)]


@post("/v1/broken/gadgets", opt={"scope": "accounts:write", "owner": "vendor"}, summary="stores what it cannot hold")
async def store_gadget(data: JSONBody[GadgetIn]) -> dict[str, str]:
    # the bug: the schema promises more than the columns hold (varchar(120), int4), as with sales_rep
    if len(data.label) > 120 or data.count > 2**31 - 1:
        raise ValueError("value too long for type character varying(120) / integer out of range")
    return {"label": data.label}


class NoteIn(Input):
    note: Annotated[str, Meta(max_length=200)]


@post("/v1/broken/notes", opt={"scope": "accounts:write", "owner": "vendor"}, summary="parses JSON unguarded",
      request_class=Request)
async def take_note(data: JSONBody[NoteIn]) -> dict[str, str]:
    # the bug: Litestar's own request class parses the body without our UTF-8 and nesting guards
    return {"note": data.note}


BROKEN_ROUTES = [divide, store_gadget, take_note]


def factory() -> Litestar:
    return create_app(load_settings(), extra_route_handlers=BROKEN_ROUTES)
