"""HTTP routes of subscriptions (recurring purchases the billing run renews): list, change seats, cancel."""

from __future__ import annotations

from litestar import Controller, get, patch
from litestar.params import JSONBody

from app.accounts import resolve_account
from app.deps import ClockDep, CurrentPrincipal, DbSession
from app.params import AccountRef
from billing import service
from billing.routes._params import SubscriptionId
from billing.schemas import SubscriptionList, SubscriptionRead, SubscriptionUpdate


class SubscriptionController(Controller):
    path = "/v1/accounts/{account:str}/subscriptions"
    tags = ["Subscriptions"]

    @get("/", opt={"scope": "commerce:read", "user_access": "admin", "owner": "account"},
         summary="The account's subscriptions (recurring purchases) and their renewal state")
    async def list_subscriptions(self, db_session: DbSession, principal: CurrentPrincipal,
                                 account: AccountRef) -> SubscriptionList:
        acc = await resolve_account(db_session, principal, account)
        return await service.subscription_list(db_session, acc.account_id)

    @patch("/{subscription_id:str}",
           opt={"scope": "commerce:write", "user_access": "admin", "owner": "account", "rate_limit": "money"},
           summary="Change the seats charged from the next renewal on, or stop renewing")
    async def update(self, db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep,
                     account: AccountRef,
                     subscription_id: SubscriptionId, data: JSONBody[SubscriptionUpdate]) -> SubscriptionRead:
        acc = await resolve_account(db_session, principal, account)
        sub = await service.update_subscription(db_session, acc.account_id, subscription_id, seats=data.seats,
                                                cancel=data.cancel, actor=principal.actor, clock=clock)
        return await service.read_subscription(db_session, sub)
