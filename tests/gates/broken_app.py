"""An app with a route that crashes on some inputs: the fuzz gate must catch it (served by granian)."""

from __future__ import annotations

from typing import Annotated

from litestar import Litestar, get
from litestar.params import Parameter

from app.asgi import create_app
from app.settings import load_settings


@get("/v1/broken/divide", opt={"scope": "accounts:read", "owner": "vendor"}, summary="crashes on n=0")
async def divide(n: Annotated[int, Parameter(ge=-100, le=100)]) -> dict[str, int]:
    return {"result": 100 // n}  # the bug: ZeroDivisionError -> 500


def factory() -> Litestar:
    return create_app(load_settings(), extra_route_handlers=[divide])
