"""Trials (start once per user or account, grant for the trial length, end, conversion) and the sweep that
emits time-driven events (expiry, trial ending/ended) exactly once."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import ColumnElement

from app.accounts import resolve_user
from app.accounts.models import Account
from app.auth import Principal
from app.clock import Clock
from app.events import publish
from app.ids import new_id
from catalog.domain import BUYABLE, Audience, availability
from entitlements.domain import CatalogView
from entitlements.errors import ModuleNotFound, TrialAlreadyUsed, TrialNotAvailable
from entitlements.events import EntitlementExpired, TrialConverted, TrialEnded, TrialEnding, TrialStarted
from entitlements.models import Grant, Trial
from entitlements.schemas import TrialRead
from entitlements.service._grants import grant, owned_modules, revoke

TrialScope = Literal["user", "account"]
SWEEP_BATCH = 500


async def start_trial(
    session: AsyncSession, principal: Principal, user_ref: str, module: str, *, view: CatalogView,
    scope: TrialScope, clock: Clock,
) -> TrialRead:
    """Start the module's trial for the user (scope ``user``) or its whole account (scope ``account``)."""
    user = await resolve_user(session, principal, user_ref)
    account = await session.get_one(Account, user.account_id)
    spec = view.modules.get(module)
    if spec is None:
        raise ModuleNotFound(f"Module {module!r} does not exist.", module=module)
    now = clock.now()
    if spec.trial_days is None or spec.status != "active":
        raise TrialNotAvailable(f"Module {module!r} offers no trial.", module=module)
    subject = user.user_id if scope == "user" else "*"
    used = await session.scalar(select(Trial.trial_id).where(
        Trial.account_id == user.account_id, Trial.module == module, Trial.subject == subject))
    if used is not None:
        raise TrialAlreadyUsed(f"The trial of {module!r} was already used "
                               f"{'by this user' if scope == 'user' else 'in this account'}.", module=module)
    owned = await owned_modules(session, user.account_id, user.user_id, now=now)
    if module in owned:
        raise TrialNotAvailable(f"The user already holds {module!r}.", module=module)
    who = Audience(roles=frozenset(user.roles), segment=account.segment, region=account.region, owned=owned)
    decision = availability(view.live.doc, spec, who)
    if decision.effect not in BUYABLE:
        raise TrialNotAvailable(f"Module {module!r} is not available to this user ({decision.reason}).",
                                module=module, effect=decision.effect)
    trial_id, ends_at = new_id("trl"), now + timedelta(days=spec.trial_days)
    g = await grant(session, account_id=user.account_id, user_id=user.user_id if scope == "user" else None,
                    module=module, source="trial", source_ref=trial_id, starts_at=now, ends_at=ends_at, clock=clock)
    created = await session.scalar(insert(Trial).values(
        account_id=user.account_id, trial_id=trial_id, subject=subject, user_id=user.user_id, module=module,
        grant_id=g.grant_id, started_at=now, ends_at=ends_at,
    ).on_conflict_do_nothing(index_elements=["account_id", "module", "subject"]).returning(Trial.trial_id))
    if created is None:  # raising rolls the caller's transaction back, the grant above with it
        raise TrialAlreadyUsed(f"The trial of {module!r} was already used "
                               f"{'by this user' if scope == 'user' else 'in this account'}.", module=module)
    await publish(session, TrialStarted(trial_id=trial_id, user_id=user.user_id, module=module, scope=scope,
                                        grant_id=g.grant_id, started_at=now, ends_at=ends_at),
                  clock=clock, account_id=user.account_id)
    return TrialRead(id=trial_id, account=account.external_id, user=user.external_id, module=module,
                     grant_id=g.grant_id, started_at=now, ends_at=ends_at, converted_at=None)


async def mark_trial_converted(session: AsyncSession, *, account_id: str, user_id: str, module: str,
                               clock: Clock) -> None:
    """Record that a trial of ``module`` (the user's own, or the account's) converted into a purchase; once.

    The user's own trial grant ends now, as the paid grant starts (an account-wide trial keeps running for
    the account's other users until its end).
    """
    now = clock.now()
    rows = (await session.execute(update(Trial).where(
        Trial.account_id == account_id, Trial.module == module, Trial.subject.in_([user_id, "*"]),
        Trial.converted_at.is_(None),
    ).values(converted_at=now).returning(Trial.trial_id, Trial.started_at, Trial.subject, Trial.grant_id))).all()
    for trial_id, started_at, subject, grant_id in rows:
        if subject == user_id:
            await revoke(session, account_id=account_id, grant_id=grant_id, reason="trial converted to a purchase",
                         clock=clock)
        await publish(session, TrialConverted(trial_id=trial_id, user_id=user_id, module=module, converted_at=now,
                                              days_to_convert=(now - started_at).days),
                      clock=clock, account_id=account_id)


async def sweep(session: AsyncSession, *, clock: Clock, trial_ending_days: int) -> dict[str, int]:
    """Emit time-driven events once each: ``entitlement.expired``, ``trial.ending``, ``trial.ended``.

    Expiry itself needs no sweep (checks compare times with the clock); this only tells other systems.
    Each row is claimed by a guarded UPDATE, so concurrent or repeated sweeps never emit twice.
    """
    now = clock.now()
    expired = (await session.execute(update(Grant).where(
        Grant.grant_id.in_(select(Grant.grant_id).where(
            Grant.ends_at <= now, Grant.expired_event_at.is_(None), Grant.revoked_at.is_(None),
        ).limit(SWEEP_BATCH).scalar_subquery()),
        Grant.ends_at <= now, Grant.expired_event_at.is_(None), Grant.revoked_at.is_(None),
    ).values(expired_event_at=now).returning(Grant.account_id, Grant.grant_id, Grant.user_id, Grant.module,
                                             Grant.source, Grant.source_ref, Grant.ends_at))).all()
    for account_id, grant_id, user_id, module, source, source_ref, ends_at in expired:
        assert ends_at is not None  # selected because it has ended
        await publish(session, EntitlementExpired(grant_id=grant_id, user_id=user_id, module=module, source=source,
                                                  source_ref=source_ref, ended_at=ends_at),
                      clock=clock, account_id=account_id)
    ending = await _claim_trials(session, Trial.ending_event_at, and_(
        Trial.ends_at > now, Trial.ends_at <= now + timedelta(days=trial_ending_days), Trial.converted_at.is_(None),
        ~_revoked()), now)
    for t in ending:
        await publish(session, TrialEnding(trial_id=t.trial_id, user_id=t.user_id, module=t.module, ends_at=t.ends_at,
                                           days_left=max(0, (t.ends_at - now).days)),
                      clock=clock, account_id=t.account_id)
    ended = await _claim_trials(session, Trial.ended_event_at, and_(
        Trial.ends_at <= now, or_(Trial.converted_at.is_not(None), ~_revoked())), now)
    for t in ended:
        await publish(session, TrialEnded(trial_id=t.trial_id, user_id=t.user_id, module=t.module, ended_at=t.ends_at,
                                          converted=t.converted_at is not None),
                      clock=clock, account_id=t.account_id)
    return {"entitlement.expired": len(expired), "trial.ending": len(ending), "trial.ended": len(ended)}


def _revoked() -> ColumnElement[bool]:
    """The trial's grant was revoked (by an admin, a refund...): nobody is told it is ending or ended."""
    return exists().where(Grant.account_id == Trial.account_id, Grant.grant_id == Trial.grant_id,
                          Grant.revoked_at.is_not(None))


async def _claim_trials(session: AsyncSession, marker: InstrumentedAttribute[datetime | None],
                        condition: ColumnElement[bool], now: datetime) -> list[Trial]:
    ids = select(Trial.trial_id).where(condition, marker.is_(None)).limit(SWEEP_BATCH)
    rows = await session.scalars(update(Trial).where(
        Trial.trial_id.in_(ids.scalar_subquery()), condition, marker.is_(None),
    ).values({marker: now}).returning(Trial))
    return list(rows)


