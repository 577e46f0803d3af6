"""Dependencies every route may ask for by name."""

from __future__ import annotations

from typing import TypeAlias

from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import SkipValidation
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import Principal, provide_principal
from app.clock import Clock
from app.db import provide_session
from app.settings import Settings


def provide_clock(state: State) -> Clock:
    clock: Clock = state.clock
    return clock


def provide_settings(state: State) -> Settings:
    settings: Settings = state.settings
    return settings


DEPENDENCIES = {
    "db_session": Provide(provide_session),
    "principal": Provide(provide_principal, sync_to_thread=False),
    "clock": Provide(provide_clock, sync_to_thread=False),
    "settings": Provide(provide_settings, sync_to_thread=False),
}


# Explicit markers for name-based injection (inferred injection goes away in Litestar 3).
DbSession: TypeAlias = NamedDependency[SkipValidation[AsyncSession]]
CurrentPrincipal: TypeAlias = NamedDependency[SkipValidation[Principal]]
ClockDep: TypeAlias = NamedDependency[SkipValidation[Clock]]
SettingsDep: TypeAlias = NamedDependency[SkipValidation[Settings]]
