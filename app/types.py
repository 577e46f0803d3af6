"""Column types shared by every package: typed msgspec values stored as PostgreSQL JSONB."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import msgspec
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

T = TypeVar("T")


class StructJSONB(TypeDecorator[T], Generic[T]):
    """A msgspec type (a Struct, or a list of them) in a JSONB column: encoded on write, validated on read.

    The JSON written is ``msgspec.to_builtins`` of the value, so a row written as plain dicts with the same
    keys (every row from before the columns were typed) loads into the same Struct; a row that does not
    match the type fails loudly on read instead of travelling on as an untyped dict.
    """

    impl = JSONB
    cache_ok = True

    def __init__(self, value_type: type[T]) -> None:
        super().__init__()
        self.value_type = value_type

    def process_bind_param(self, value: T | None, dialect: Dialect) -> Any:
        return None if value is None else msgspec.to_builtins(value)

    def process_result_value(self, value: Any | None, dialect: Dialect) -> T | None:
        return None if value is None else msgspec.convert(value, self.value_type)
