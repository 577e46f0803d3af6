"""Advisor use cases: the cheapest plan for one user, and the users of an account who could save."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

import entitlements
from app.accounts import resolve_account, resolve_user
from app.accounts.models import Account, User
from app.auth import Principal
from app.money import format_minor
from catalog.domain import Audience, availability
from entitlements.domain import CatalogView
from suggest import advisor as adv
from suggest import facts
from suggest.schemas import AccountAdvisorRead, AdvisorRead, UserAdviceRead

MAX_ACCOUNT_USERS = 5_000


def _plan(view: CatalogView, account: Account, roles: frozenset[str], owned: frozenset[str],
          prices: dict[str, facts.PriceChoice | None]) -> list[adv.PlanModule]:
    who = Audience(roles=roles, segment=account.segment, region=account.region, owned=owned)
    out = []
    for key, m in view.modules.items():
        if m.status != "active" and key not in owned:
            continue
        price = prices.get(key)
        effect = availability(view.live.doc, m, who, has_price=price is not None).effect
        monthly = price.monthly_minor if price is not None and price.model == "recurring" else None
        out.append(adv.PlanModule(key=key, name=m.name, monthly_minor=monthly,
                                  features=dict(m.features), requires=tuple(m.requires),
                                  buyable=effect in ("purchasable", "approval_required"),
                                  metered=price is not None and price.model == "metered"))
    return out


async def _holdings(session: AsyncSession, account: Account, user_ids: list[str],
                    prices: dict[str, facts.PriceChoice | None], *, now: datetime,
                    ) -> tuple[dict[str, frozenset[str]], dict[str, frozenset[str]]]:
    """Per user: the modules it pays for every period (its own purchases at a recurring price), and every other
    module it holds (trials, admin grants, seats, account-wide grants, one-time purchases), free to keep."""
    bought = await entitlements.account_holdings(session, account.account_id, user_ids, now=now, own_only=True,
                                                 sources=("order",))
    held = await entitlements.account_holdings(session, account.account_id, user_ids, now=now)
    paying: dict[str, frozenset[str]] = {}
    free: dict[str, frozenset[str]] = {}
    for u in user_ids:
        recurring = frozenset(k for k in bought.get(u, frozenset())
                              if (p := prices.get(k)) is not None and p.model == "recurring")
        paying[u] = recurring
        free[u] = held.get(u, frozenset()) - recurring
    return paying, free


def _message(a: adv.Advice, currency: str, view: CatalogView) -> str:
    if a.saving_minor <= 0:
        return "You're already on the cheapest set of modules for what you used."

    def named(keys: tuple[str, ...]) -> str:
        return ", ".join(view.modules[k].name if k in view.modules else k for k in keys)

    parts = ([f"drop {named(a.remove)}"] if a.remove else []) + ([f"add {named(a.add)}"] if a.add else [])
    return (f"You could save {format_minor(a.saving_minor, currency)} a month: {' and '.join(parts)} "
            f"({format_minor(a.best_minor, currency)} instead of {format_minor(a.current_minor, currency)}).")


async def advise_user(session: AsyncSession, principal: Principal, user_ref: str, *, view: CatalogView,
                      now: datetime) -> AdvisorRead:
    """Usage of the last three months against the cheapest covering set of the modules the user pays for
    (account-wide grants and seats are the account's: not the user's to drop)."""
    user = await resolve_user(session, principal, user_ref)
    account = await session.get_one(Account, user.account_id)
    prices = {k: facts.pick_price(view, k, account.currency) for k in view.modules}
    paying, free = await _holdings(session, account, [user.user_id], prices, now=now)
    owned, held_free = paying[user.user_id], free[user.user_id]
    raw = await entitlements.usage_series(session, user.account_id, user.user_id,
                                          since=now - timedelta(days=31 * facts.HISTORY_MONTHS))
    kinds, _ = facts.catalog_infos(view)
    kind_of = {k: f.kind for k, f in kinds.items()}
    needs = adv.needs_from_usage({f: [n for _, _, n in rows] for f, rows in raw.items()}, kind_of)
    a = adv.advise(_plan(view, account, frozenset(user.roles), owned, prices), owned, needs, kind_of,
                   held_free=held_free)
    return AdvisorRead(user=user.external_id, currency=account.currency, needs=needs, current=list(a.current),
                       current_monthly_minor=a.current_minor, best=list(a.best), best_monthly_minor=a.best_minor,
                       saving_monthly_minor=a.saving_minor, add=list(a.add), remove=list(a.remove),
                       uncovered=list(a.uncovered), exact=a.exact, message=_message(a, account.currency, view))


async def advise_account(session: AsyncSession, principal: Principal, account_ref: str, *, view: CatalogView,
                         now: datetime, limit: int) -> AccountAdvisorRead:
    """Every user with usage (at most 5,000): who could save, the biggest savings first."""
    account = await resolve_account(session, principal, account_ref)
    series = await entitlements.account_usage_series(
        session, account.account_id, since=now - timedelta(days=31 * facts.HISTORY_MONTHS),
        max_users=MAX_ACCOUNT_USERS)
    users = {u: (ext, frozenset(r)) for u, ext, r in await session.execute(
        select(User.user_id, User.external_id, User.roles).where(User.account_id == account.account_id,
                                                                 User.user_id.in_(list(series))))}
    infos, _ = facts.catalog_infos(view)
    kind_of = {k: f.kind for k, f in infos.items()}
    prices = {k: facts.pick_price(view, k, account.currency) for k in view.modules}
    holdings, free = await _holdings(session, account, list(users), prices, now=now)
    results: list[tuple[int, str, adv.Advice]] = []
    for user_id, (ext, roles) in users.items():
        owned = holdings.get(user_id, frozenset())
        a = adv.advise(_plan(view, account, roles, owned, prices), owned,
                       adv.needs_from_usage(series.get(user_id, {}), kind_of), kind_of, max_nodes=5_000,
                       held_free=free.get(user_id, frozenset()))
        if a.saving_minor > 0:
            results.append((a.saving_minor, ext, a))
    results.sort(key=lambda r: (-r[0], r[1]))
    total = sum(r[0] for r in results)
    message = (f"{len(results)} user(s) could save {format_minor(total, account.currency)} a month in all."
               if results else "Everyone is already on the cheapest set of modules for what they used.")
    return AccountAdvisorRead(
        account=account.external_id, currency=account.currency, users_considered=len(users),
        users_with_saving=len(results), saving_monthly_minor=total, message=message,
        data=[UserAdviceRead(user=ext, saving_monthly_minor=s, add=list(a.add), remove=list(a.remove))
              for s, ext, a in results[:limit]])
