"""Use cases of accounts, users and session tokens. Never commits: the request transaction does."""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta

import msgspec
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit, tokens
from app.accounts.models import Account, User
from app.accounts.schemas import (
    AccountRead,
    AccountUpsert,
    Me,
    SessionTokenCreate,
    SessionTokenRead,
    UserRead,
    UserUpsert,
)
from app.auth import Principal, UserPrincipal
from app.clock import Clock
from app.db import model_to_dict
from app.errors import Conflict, FieldError, NotFound, Unprocessable, ValidationFailed
from app.ids import new_id
from app.money import is_currency
from app.notify import notify
from app.origins import parse_origin
from app.settings import Settings

_ACCOUNT_FIELDS = ("external_id", "name", "segment", "region", "currency", "discount_bps",
                   "payment_terms_days", "sales_team", "sales_rep", "allowed_origins")
CORS_TOPIC = "cors"
_USER_FIELDS = ("external_id", "email", "name", "roles", "cost_center")


def account_read(a: Account) -> AccountRead:
    return AccountRead(
        id=a.account_id, external_id=a.external_id, name=a.name, segment=a.segment, region=a.region,
        currency=a.currency, discount_bps=a.discount_bps, payment_terms_days=a.payment_terms_days,
        sales_team=a.sales_team, sales_rep=a.sales_rep, allowed_origins=list(a.allowed_origins),
        created_at=a.created_at, updated_at=a.updated_at,
    )


def user_read(u: User, account_external_id: str) -> UserRead:
    return UserRead(
        id=u.user_id, account=account_external_id, external_id=u.external_id, email=u.email, name=u.name,
        roles=list(u.roles), cost_center=u.cost_center, created_at=u.created_at, updated_at=u.updated_at,
    )


async def get_account(session: AsyncSession, external_id: str) -> Account | None:
    return await session.scalar(select(Account).where(Account.external_id == external_id))


async def resolve_account(session: AsyncSession, principal: Principal, external_id: str) -> Account:
    """The account by external id, as this principal may see it; another account's answers 404."""
    account = await get_account(session, external_id)
    if account is None or (isinstance(principal, UserPrincipal) and account.account_id != principal.account_id):
        raise NotFound(f"Account {external_id!r} does not exist.")
    return account


async def get_user(session: AsyncSession, external_id: str) -> User | None:
    return await session.scalar(select(User).where(User.external_id == external_id))


async def resolve_user(
    session: AsyncSession, principal: Principal, external_id: str, *, account: Account | None = None,
) -> User:
    """The user by external id; end users see only themselves, admins only their account's users."""
    user = await get_user(session, external_id)
    visible = user is not None and (account is None or user.account_id == account.account_id)
    if visible and isinstance(principal, UserPrincipal):
        assert user is not None
        visible = user.account_id == principal.account_id and (
            principal.is_admin or user.user_id == principal.user_id
        )
    if not visible:
        raise NotFound(f"User {external_id!r} does not exist.")
    assert user is not None
    return user


async def upsert_account(
    session: AsyncSession, data: AccountUpsert, *, actor: str, clock: Clock,
) -> tuple[Account, bool]:
    """Create or update by external id; safe under concurrent upserts of the same id."""
    if not is_currency(data.currency):
        raise Unprocessable(f"Currency {data.currency!r} is not supported.", field="currency")
    now = clock.now()
    values = msgspec.structs.asdict(data)
    if data.allowed_origins is None:
        del values["allowed_origins"]  # omitted: unchanged (a vendor's account sync need not know them)
    else:
        values["allowed_origins"] = normalize_origins(data.allowed_origins)
    existing = await session.scalar(
        select(Account).where(Account.external_id == data.external_id).with_for_update()
    )
    if existing is None:
        inserted = await session.scalar(
            insert(Account)
            .values(account_id=new_id("acct"), created_at=now, updated_at=now, **values)
            .on_conflict_do_nothing(index_elements=["external_id"])
            .returning(Account.account_id)
        )
        if inserted is not None:
            account = await session.get_one(Account, inserted)
            await audit.record(session, clock=clock, actor=actor, action="account.created",
                               target_type="account", target_id=account.external_id,
                               account_id=account.account_id, after=model_to_dict(account, _ACCOUNT_FIELDS))
            if account.allowed_origins:
                await notify(session, CORS_TOPIC, account.account_id)
            return account, True
        existing = await session.scalar(
            select(Account).where(Account.external_id == data.external_id).with_for_update()
        )
        assert existing is not None
    before = model_to_dict(existing, _ACCOUNT_FIELDS)
    for field, value in values.items():
        setattr(existing, field, value)
    after = model_to_dict(existing, _ACCOUNT_FIELDS)
    if after != before:
        existing.updated_at = now
        await audit.record(session, clock=clock, actor=actor, action="account.updated", target_type="account",
                           target_id=existing.external_id, account_id=existing.account_id,
                           before=before, after=after)
        if after["allowed_origins"] != before["allowed_origins"]:
            await notify(session, CORS_TOPIC, existing.account_id)
    await session.flush()
    return existing, False


def normalize_origins(values: list[str]) -> list[str]:
    """Each origin in the form browsers send it, duplicates dropped; every bad one named in a 400."""
    out, errors = [], []
    for i, value in enumerate(values):
        try:
            out.append(parse_origin(value))
        except ValueError as exc:
            errors.append(FieldError(field=f"allowed_origins[{i}]", message=str(exc)))
    if errors:
        raise ValidationFailed("; ".join(f"{e.field}: {e.message}" for e in errors)[:1000], errors=errors)
    return list(dict.fromkeys(out))


async def allowed_origins(session: AsyncSession, account_ids: Collection[str] | None) -> dict[str, list[str]]:
    """Allowed web origins by account id: of these accounts, or of every account that has any."""
    query = select(Account.account_id, Account.allowed_origins)
    if account_ids is None:
        query = query.where(func.cardinality(Account.allowed_origins) > 0)
    else:
        query = query.where(Account.account_id.in_(list(account_ids)))
    return {account_id: list(origins) for account_id, origins in (await session.execute(query)).all()}


async def list_accounts(session: AsyncSession, *, after: str | None, limit: int) -> list[Account]:
    query = select(Account).order_by(Account.account_id).limit(limit)
    if after is not None:
        query = query.where(Account.account_id > after)
    return list((await session.scalars(query)).all())


async def upsert_user(
    session: AsyncSession, account: Account, data: UserUpsert, *, actor: str, clock: Clock,
) -> tuple[User, bool]:
    """Create or update a user of ``account``; a user id already used by another account is a 409."""
    now = clock.now()
    values = msgspec.structs.asdict(data)
    values["roles"] = sorted(set(data.roles))
    existing = await session.scalar(select(User).where(User.external_id == data.external_id).with_for_update())
    if existing is None:
        inserted = await session.scalar(
            insert(User)
            .values(account_id=account.account_id, user_id=new_id("usr"), created_at=now, updated_at=now,
                    **values)
            .on_conflict_do_nothing(index_elements=["external_id"])
            .returning(User.user_id)
        )
        if inserted is not None:
            user = await session.get_one(User, (account.account_id, inserted))
            await audit.record(session, clock=clock, actor=actor, action="user.created", target_type="user",
                               target_id=user.external_id, account_id=account.account_id,
                               after=model_to_dict(user, _USER_FIELDS))
            return user, True
        existing = await session.scalar(
            select(User).where(User.external_id == data.external_id).with_for_update()
        )
        assert existing is not None
    if existing.account_id != account.account_id:
        raise Conflict(f"User {data.external_id!r} already belongs to another account.")
    before = model_to_dict(existing, _USER_FIELDS)
    for field, value in values.items():
        setattr(existing, field, value)
    after = model_to_dict(existing, _USER_FIELDS)
    if after != before:
        existing.updated_at = now
        await audit.record(session, clock=clock, actor=actor, action="user.updated", target_type="user",
                           target_id=existing.external_id, account_id=account.account_id,
                           before=before, after=after)
    await session.flush()
    return existing, False


async def list_users(session: AsyncSession, account: Account, *, after: str | None, limit: int) -> list[User]:
    query = select(User).where(User.account_id == account.account_id).order_by(User.user_id).limit(limit)
    if after is not None:
        query = query.where(User.user_id > after)
    return list((await session.scalars(query)).all())


async def mint_session_token(
    session: AsyncSession, data: SessionTokenCreate, *, principal: Principal, settings: Settings, clock: Clock,
) -> SessionTokenRead:
    """Sign a token for a user of an account; roles default to the user's stored roles."""
    account = await resolve_account(session, principal, data.account)
    user = await resolve_user(session, principal, data.user, account=account)
    roles = tuple(sorted(set(data.roles if data.roles is not None else user.roles)))
    ttl = min(data.ttl_seconds or settings.token_ttl_seconds_default, settings.token_ttl_seconds_max)
    token, expires_at = tokens.mint(
        secret=settings.token_secret, audience=settings.token_audience, account_id=account.account_id,
        user_id=user.user_id, roles=roles, now=clock.now(), ttl=timedelta(seconds=ttl),
    )
    return SessionTokenRead(
        token=token, token_type="Bearer", expires_at=expires_at, account=account.external_id,
        user=user.external_id, roles=list(roles), is_admin=bool(set(roles) & set(settings.admin_roles)),
    )


async def describe_session(session: AsyncSession, principal: UserPrincipal) -> Me:
    """The account and user a session token acts as, by their external ids."""
    user = await session.get(User, (principal.account_id, principal.user_id))
    account = await session.get(Account, principal.account_id)
    if user is None or account is None:
        raise NotFound("The user of this session token no longer exists.")
    return Me(account=account.external_id, user=user.external_id, roles=sorted(principal.roles),
              is_admin=principal.is_admin)
