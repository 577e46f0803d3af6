"""HTTP routes of subscriptions (recurring purchases the billing run renews): list, change seats, cancel."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, patch
from litestar.params import JSONBody, Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import resolve_account
from app.accounts.models import User
from app.deps import ClockDep, CurrentPrincipal, DbSession
from app.params import AccountRef
from billing.models import Subscription
from billing.schemas import SubscriptionList, SubscriptionRead, SubscriptionUpdate
from billing.service import _subscriptions as subscriptions

SubscriptionId = Annotated[str, Parameter(description="Subscription id (sub_...)", pattern=r"^sub_[0-9a-z]{26}$")]


async def subscription_read(session: AsyncSession, s: Subscription) -> SubscriptionRead:
    user = await session.get_one(User, (s.account_id, s.user_id))
    return SubscriptionRead(
        id=s.subscription_id, order_id=s.order_id, user=user.external_id, module=s.module, route=s.route,
        interval=s.interval, per_seat=s.per_seat, seats=s.quantity, unit_amount_minor=s.unit_amount_minor,
        currency=s.currency, status=s.status,  # type: ignore[arg-type]
        current_period_start=s.current_period_start, current_period_end=s.current_period_end,
        grace_until=s.grace_until, next_attempt_at=s.next_attempt_at, dunning_attempts=s.dunning_attempts,
        last_order_id=s.last_order_id)


class SubscriptionController(Controller):
    path = "/v1/accounts/{account:str}/subscriptions"
    tags = ["Subscriptions"]

    @get("/", opt={"scope": "commerce:read", "user_access": "admin", "owner": "account"},
         summary="The account's subscriptions (recurring purchases) and their renewal state")
    async def list_subscriptions(self, db_session: DbSession, principal: CurrentPrincipal,
                                 account: AccountRef) -> SubscriptionList:
        acc = await resolve_account(db_session, principal, account)
        rows = await subscriptions.list_subscriptions(db_session, acc.account_id)
        return SubscriptionList(data=[await subscription_read(db_session, s) for s in rows])

    @patch("/{subscription_id:str}",
           opt={"scope": "commerce:write", "user_access": "admin", "owner": "account", "rate_limit": "money"},
           summary="Change the seats charged from the next renewal on, or stop renewing")
    async def update(self, db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep,
                     account: AccountRef,
                     subscription_id: SubscriptionId, data: JSONBody[SubscriptionUpdate]) -> SubscriptionRead:
        acc = await resolve_account(db_session, principal, account)
        sub = await subscriptions.update_subscription(db_session, acc.account_id, subscription_id, seats=data.seats,
                                                      cancel=data.cancel, actor=principal.actor, clock=clock)
        return await subscription_read(db_session, sub)
