"""Guardrail policies: versioned per account, audited, exported and imported as TOML."""

from __future__ import annotations

import tomllib
from typing import Any

import msgspec
import tomli_w
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.accounts.models import Account
from app.clock import Clock
from app.errors import FieldError
from billing.domain.guardrails import GuardrailPolicy
from billing.errors import GuardrailInvalid
from billing.models import GuardrailVersion


async def current_policy(session: AsyncSession, account: Account) -> tuple[int, GuardrailPolicy]:
    """The version in force (0 and the default policy when the account's admins never set one)."""
    row = await session.scalar(select(GuardrailVersion).where(GuardrailVersion.account_id == account.account_id)
                               .order_by(GuardrailVersion.version.desc()).limit(1))
    if row is None:
        return 0, GuardrailPolicy()
    return row.version, row.policy


async def save_policy(session: AsyncSession, account: Account, policy: GuardrailPolicy, *, actor: str,
                      clock: Clock) -> int:
    """Store a new version (the previous ones stay for the record); returns its number."""
    version, before = await current_policy(session, account)
    if version and before == policy:
        return version
    new_version = int(await session.scalar(
        select(func.coalesce(func.max(GuardrailVersion.version), 0))
        .where(GuardrailVersion.account_id == account.account_id)) or 0) + 1
    session.add(GuardrailVersion(account_id=account.account_id, version=new_version,
                                 policy=policy, author=actor, created_at=clock.now()))
    await session.flush()
    await audit.record(session, clock=clock, actor=actor, action="guardrails.updated", target_type="guardrails",
                       target_id=f"v{new_version}", account_id=account.account_id,
                       before=msgspec.to_builtins(before) if version else None, after=msgspec.to_builtins(policy))
    return new_version


def _without_none(value: Any) -> Any:
    """TOML has no null: unset optional fields are simply left out."""
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def export_toml(policy: GuardrailPolicy) -> str:
    """The policy as TOML, every knob written out (defaults included)."""
    data: dict[str, Any] = _without_none(msgspec.to_builtins(policy))
    return "# Guardrail policy (import it back with PUT /v1/accounts/{account}/guardrails.toml)\n" + tomli_w.dumps(data)


def import_toml(text: str) -> GuardrailPolicy:
    """Parse and validate a TOML policy; errors name the bad field."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise GuardrailInvalid(f"The TOML is not valid: {exc}") from exc
    except RecursionError:  # tomllib recurses once per nested array or inline table
        raise GuardrailInvalid("The TOML is not valid: arrays or inline tables nest too deeply.") from None
    try:
        return msgspec.convert(raw, GuardrailPolicy)
    except msgspec.ValidationError as exc:
        message = str(exc)
        field = message.rsplit(" - at `", 1)[-1].rstrip("`") if " - at `" in message else "policy"
        raise GuardrailInvalid(f"The policy is not valid: {message}",
                               errors=[FieldError(field=field, message=message)]) from exc
