"""Typed, validated path and query parameters shared by the routes."""

from __future__ import annotations

from typing import Annotated

from litestar.params import Parameter

_EXTERNAL = r"^[A-Za-z0-9][A-Za-z0-9._:@/+-]*$"

AccountRef = Annotated[str, Parameter(
    description="The account's external id (the vendor's id)", pattern=_EXTERNAL, max_length=200)]
UserRef = Annotated[str, Parameter(
    description="The user's external id (the vendor's id)", pattern=_EXTERNAL, max_length=200)]
KeyId = Annotated[str, Parameter(description="API key id (key_...)", pattern=r"^key_[0-9a-z]{26}$")]
Limit = Annotated[int, Parameter(description="Page size", ge=1, le=200)]
CursorParam = Annotated[str | None, Parameter(
    description="next_cursor of the previous page", pattern=r"^[A-Za-z0-9_=-]*$", max_length=200)]
