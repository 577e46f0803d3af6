"""Use cases of accounts, users and session tokens. Never commits: the request transaction does."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from datetime import datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit, console, sessions, tokens
from app.accounts.events import UserRolesChanged
from app.accounts.models import Account, User
from app.accounts.schemas import (
    AccountRead,
    AccountUpsert,
    ConsoleLinkCreate,
    Me,
    SessionTokenCreate,
    SessionTokenRead,
    TokenRevocationRead,
    UserRead,
    UserUpsert,
    VendorConsoleLink,
)
from app.accounts.tax import address_problems, normalise_tax_id, tax_id_errors
from app.auth import Principal, UserPrincipal, VendorPrincipal
from app.clock import Clock
from app.db import model_to_dict
from app.errors import Conflict, FieldError, Forbidden, NotFound, Unprocessable, ValidationFailed
from app.events import announce
from app.ids import new_id
from app.money import is_currency
from app.notify import notify
from app.origins import parse_origin
from app.settings import Settings

_ACCOUNT_FIELDS = ("external_id", "name", "segment", "region", "currency", "discount_bps",
                   "payment_terms_days", "sales_team", "sales_rep", "allowed_origins", "billing_address", "tax_ids",
                   "tax_status")
CORS_TOPIC = "cors"
_USER_FIELDS = ("external_id", "email", "name", "roles", "cost_center", "billing_country")


def account_read(a: Account) -> AccountRead:
    return AccountRead(
        id=a.account_id, external_id=a.external_id, name=a.name, segment=a.segment, region=a.region,
        currency=a.currency, discount_bps=a.discount_bps, payment_terms_days=a.payment_terms_days,
        sales_team=a.sales_team, sales_rep=a.sales_rep, allowed_origins=list(a.allowed_origins),
        billing_address=a.billing_address, tax_ids=list(a.tax_ids), tax_status=a.tax_status,
        created_at=a.created_at, updated_at=a.updated_at,
    )


def user_read(u: User, account_external_id: str) -> UserRead:
    return UserRead(
        id=u.user_id, account=account_external_id, external_id=u.external_id, email=u.email, name=u.name,
        roles=list(u.roles), cost_center=u.cost_center, billing_country=u.billing_country,
        created_at=u.created_at, updated_at=u.updated_at,
    )


_ACCOUNT_ID = re.compile(r"^acct_[0-9a-z]{26}$")
_USER_ID = re.compile(r"^usr_[0-9a-z]{26}$")


async def get_account(session: AsyncSession, ref: str) -> Account | None:
    """By the vendor's external id, else (for an ``acct_...`` id our events carry) by our own id."""
    account = await session.scalar(select(Account).where(Account.external_id == ref))
    if account is None and _ACCOUNT_ID.match(ref):
        account = await session.get(Account, ref)
    return account


async def resolve_account(session: AsyncSession, principal: Principal, external_id: str) -> Account:
    """The account by external id, as this principal may see it; another account's answers 404."""
    account = await get_account(session, external_id)
    if account is None or not principal.may_access_account(account.account_id):
        raise NotFound(f"Account {external_id!r} does not exist.")
    return account


async def resolve_accounts(session: AsyncSession, principal: Principal, external_ids: Iterable[str]) -> list[Account]:
    """Many accounts by external id in one query; the first unknown or invisible one answers 404."""
    wanted = sorted(set(external_ids))
    rows = (await session.scalars(select(Account).where(Account.external_id.in_(wanted)))).all()
    found = {a.external_id: a for a in rows if principal.may_access_account(a.account_id)}
    for external_id in wanted:
        if external_id not in found:
            raise NotFound(f"Account {external_id!r} does not exist.", account=external_id)
    return [found[e] for e in wanted]


async def external_ids(session: AsyncSession, account_ids: Iterable[str]) -> dict[str, str]:
    """internal account id -> the vendor's external id, in one query."""
    rows = await session.execute(select(Account.account_id, Account.external_id).where(
        Account.account_id.in_(sorted(set(account_ids)))))
    return {a: e for a, e in rows}


async def get_user(session: AsyncSession, ref: str) -> User | None:
    """By the vendor's external id, else (for a ``usr_...`` id our events carry) by our own id."""
    user = await session.scalar(select(User).where(User.external_id == ref))
    if user is None and _USER_ID.match(ref):
        user = await session.scalar(select(User).where(User.user_id == ref))
    return user


async def resolve_user_and_account(session: AsyncSession, principal: Principal, external_id: str,
                                   ) -> tuple[User, Account]:
    """``resolve_user`` and the user's account, read together (one statement when found by external id)."""
    found = (await session.execute(select(User, Account).join(Account, Account.account_id == User.account_id)
                                   .where(User.external_id == external_id))).first()
    if found is None:
        user = await resolve_user(session, principal, external_id)
        return user, await session.get_one(Account, user.account_id)
    user, account = found
    if not principal.may_access_user(user.account_id, user.user_id):
        raise NotFound(f"User {external_id!r} does not exist.")
    return user, account


async def resolve_user(
    session: AsyncSession, principal: Principal, external_id: str, *, account: Account | None = None,
) -> User:
    """The user by external id; end users see only themselves, admins only their account's users."""
    user = await get_user(session, external_id)
    visible = user is not None and (account is None or user.account_id == account.account_id) and (
        principal.may_access_user(user.account_id, user.user_id))
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
    _tax_values(data, values)
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


def _tax_values(data: AccountUpsert, values: dict[str, Any]) -> None:
    """The tax identity's columns: omitted parts stay unchanged; malformed tax ids are a 422 naming each."""
    for name in ("billing_address", "tax_ids", "tax_status"):
        if values[name] is None:
            del values[name]
    if data.billing_address is not None and (problems := address_problems(data.billing_address)):
        raise Unprocessable("The billing address is not enough to compute tax for.", errors=problems)
    if data.tax_ids is not None:
        errors = tax_id_errors(data.tax_ids)
        if errors:
            raise Unprocessable("Some tax ids are not in their type's format.", errors=errors)
        values["tax_ids"] = list(dict.fromkeys(normalise_tax_id(t) for t in data.tax_ids))


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


async def list_accounts(session: AsyncSession, principal: Principal, *, after: str | None, limit: int,
                        ) -> list[Account]:
    """A page of the accounts this principal may see (a key bound to accounts lists only those)."""
    query = select(Account).order_by(Account.account_id).limit(limit)
    if principal.account_ids is not None:
        query = query.where(Account.account_id.in_(sorted(principal.account_ids)))
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
            await announce(session, UserRolesChanged(account_id=account.account_id, user_id=user.user_id,
                                                     roles=list(user.roles)), clock=clock,
                           account_id=account.account_id)
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
    if set(before["roles"]) != set(after["roles"]):  # tokens carry roles: a demoted admin keeps none of its own
        await revoke_tokens(session, existing, actor=actor, reason="roles changed", clock=clock)
        await announce(session, UserRolesChanged(account_id=account.account_id, user_id=existing.user_id,
                                                 roles=list(existing.roles)), clock=clock,
                       account_id=account.account_id)
    return existing, False


async def revoke_tokens(session: AsyncSession, user: User, *, actor: str, reason: str, clock: Clock) -> datetime:
    """Revoke every session token the user holds now, in every process once the caller commits."""
    generation = await session.scalar(
        update(User).where(User.account_id == user.account_id, User.user_id == user.user_id)
        .values(token_generation=User.token_generation + 1).returning(User.token_generation))
    assert generation is not None, "the caller loaded this user in the same transaction"
    await notify(session, sessions.TOPIC, user.user_id)
    await audit.record(session, clock=clock, actor=actor, action="user.tokens_revoked", target_type="user",
                       target_id=user.external_id, account_id=user.account_id,
                       after={"reason": reason, "token_generation": generation})
    return clock.now()


async def revoke_user_tokens(
    session: AsyncSession, principal: Principal, account_ref: str, user_ref: str, *, clock: Clock,
) -> TokenRevocationRead:
    """POST .../users/{user}/revoke-tokens: the user's tokens minted so far stop working at once."""
    account = await resolve_account(session, principal, account_ref)
    user = await resolve_user(session, principal, user_ref, account=account)
    revoked_at = await revoke_tokens(session, user, actor=principal.actor, reason="requested", clock=clock)
    return TokenRevocationRead(account=account.external_id, user=user.external_id, revoked_at=revoked_at)


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
        generation=user.token_generation,
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


SIGN_IN_PATHS = {"admin": "/admin/sign-in", "vendor": "/console/sign-in"}


async def mint_console_link(session: AsyncSession, data: ConsoleLinkCreate, *, principal: Principal,
                            settings: Settings, clock: Clock) -> tuple[str, datetime]:
    """POST /v1/console-links: a one-time sign-in path for a customer admin or (global keys) the vendor's staff."""
    policy = console.policy_of(settings)
    if isinstance(data, VendorConsoleLink):
        if not isinstance(principal, VendorPrincipal) or principal.account_ids is not None:
            raise Forbidden("Vendor console links need a global API key (this key is bound to accounts).")
        token, expires_at = await console.mint_link(session, kind="vendor", account_id=None, user_id=None,
                                                    email=data.email, actor=principal.actor, policy=policy,
                                                    clock=clock)
        return f"{SIGN_IN_PATHS['vendor']}?token={token}", expires_at
    account = await resolve_account(session, principal, data.account)
    user = await resolve_user(session, principal, data.user, account=account)
    if not set(user.roles) & set(settings.admin_roles):
        raise console.NotAnAdmin(f"User {user.external_id!r} has none of the admin roles "
                                 f"({', '.join(settings.admin_roles)}); only admins sign in to the admin console.")
    token, expires_at = await console.mint_link(session, kind="admin", account_id=account.account_id,
                                                user_id=user.user_id, email=user.email, actor=principal.actor,
                                                policy=policy, clock=clock)
    return f"{SIGN_IN_PATHS['admin']}?token={token}", expires_at
