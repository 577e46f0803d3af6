"""What a request body accepts fits the column that stores it; the gate is shown to fail on a mismatched pair."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from litestar import post
from litestar.params import JSONBody
from msgspec import Meta
from sqlalchemy import BigInteger, Column, Integer, MetaData, SmallInteger, String, Table

from app.asgi import create_app
from app.models import metadata
from app.schemas import Input
from app.settings import load_settings
from tests.gates.field_limits import NOT_STORED, STORED, check_field_limits

SETTINGS = load_settings({}, env="test", database_url="postgresql://unused/none", data_dir=Path("/nonexistent"),
                         token_secret="x" * 40, stripe_backend="fake")


def test_every_request_field_fits_the_column_it_is_stored_in() -> None:
    problems = check_field_limits(create_app(SETTINGS), metadata.tables)
    assert problems == [], "\n".join(problems)


# --- the gate fails on a deliberately mismatched struct/table pair --------------------------------------------

class GadgetIn(Input):
    label: Annotated[str, Meta(max_length=200)]  # the sales_rep bug: the column holds 120
    count: Annotated[int, Meta(ge=0, le=10**12)]  # passes the schema, overflows int4
    level: Annotated[int, Meta(ge=-1, le=40_000)]  # overflows int2
    note: str  # no max_length, stored in a varchar
    size: int  # no bounds: msgspec accepts up to 2**64 - 1, more than bigint holds
    code: Annotated[str, Meta(max_length=8)]  # fits
    total_minor: Annotated[int, Meta(ge=0, le=10**12)]  # fits bigint
    colour: Annotated[str, Meta(max_length=20)]  # declared nowhere
    tags: dict[Annotated[str, Meta(max_length=90)], Annotated[int, Meta(ge=0, le=10)]] = {}  # keys too long


@post("/v1/broken/gadgets", opt={"scope": "accounts:write", "owner": "vendor"}, summary="stores a gadget")
async def make_gadget(data: JSONBody[GadgetIn]) -> None:
    return None


GADGETS = Table("gadgets", MetaData(), Column("label", String(120)), Column("count", Integer),
                Column("level", SmallInteger), Column("note", String(50)), Column("size", BigInteger),
                Column("code", String(8)), Column("total_minor", BigInteger), Column("tag", String(60)),
                Column("tag_count", SmallInteger))
GADGET_COLUMNS = {f"GadgetIn.{f}": (f"gadgets.{f}",) for f in ("label", "count", "level", "note", "size", "code",
                                                                "total_minor")}


def test_field_limits_gate_flags_a_struct_wider_than_its_table() -> None:
    app = create_app(SETTINGS, extra_route_handlers=[make_gadget])
    stored = {**STORED, **GADGET_COLUMNS, "GadgetIn.tags.keys": ("gadgets.tag",),
              "GadgetIn.tags.values": ("gadgets.tag_count",)}
    problems = check_field_limits(app, {**metadata.tables, "gadgets": GADGETS}, stored=stored)
    assert "GadgetIn.label: accepts strings of up to 200 chars but gadgets.label is varchar(120)" in problems
    assert any(p.startswith("GadgetIn.count: accepts integers in [0, 1000000000000] but gadgets.count holds "
                            "[-2147483648, 2147483647]") for p in problems)
    assert any(p.startswith("GadgetIn.level: accepts integers in [-1, 40000] but gadgets.level holds "
                            "[-32768, 32767]") for p in problems)
    assert "GadgetIn.note: accepts strings of any length but gadgets.note is varchar(50)" in problems
    assert any(p.startswith("GadgetIn.size: accepts integers in [None, None]") for p in problems)
    assert any(p.startswith("GadgetIn.colour: not declared") for p in problems)
    assert "GadgetIn.tags.keys: accepts strings of up to 90 chars but gadgets.tag is varchar(60)" in problems
    # the negative space: fitting fields and the real app's fields are not flagged
    assert not any(p.startswith(("GadgetIn.code", "GadgetIn.total_minor", "GadgetIn.tags.values"))
                   for p in problems)
    assert all(p.startswith("GadgetIn.") for p in problems), problems


def test_field_limits_gate_flags_stale_and_wrong_declarations() -> None:
    app = create_app(SETTINGS, extra_route_handlers=[make_gadget])
    stored = {**STORED, **GADGET_COLUMNS, "GadgetIn.colour": ("gadgets.colour",), "GadgetIn.weight": ("gadgets.w",),
              "GadgetIn.tags": ("gadgets.tag_count",)}
    problems = check_field_limits(app, {**metadata.tables, "gadgets": GADGETS}, stored=stored,
                                  not_stored={**NOT_STORED, "GadgetIn.label": "never stored (wrongly)"})
    assert "GadgetIn.colour: STORED names gadgets.colour, which does not exist" in problems
    assert "GadgetIn.weight: declared in tests/gates/field_limits.py but no request body has it" in problems
    assert "GadgetIn.tags.keys: a string is stored in gadgets.tag_count (SMALLINT)" in problems
    assert not any(p.startswith("GadgetIn.label") for p in problems)  # NOT_STORED is trusted, by design
