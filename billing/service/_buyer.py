"""A buyer's facts in one statement: the user and its account, the guardrail policy in force, and what the user's
budget has left this period -- what a suggestion prices and routes with. The ordinary reads (``resolve_user_and_
account``, ``current_policy``, ``budget_and_state``) make three statements through the ORM for the same."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import TextClause, text
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Account, User
from app.auth import Principal
from app.errors import NotFound
from app.onestatement import load, select_list
from billing.domain import guardrails as g
from billing.models import Budget
from billing.service._fast_reads import budget_joins, budget_left, buyer_widths, policy_join, policy_of


@dataclass(frozen=True)
class BuyerFacts:
    user: User  # read only (not in the session)
    account: Account  # read only
    policy_version: int  # 0: the account never set one (the default policy)
    policy: g.GuardrailPolicy
    funds: g.BudgetState | None  # what the user's budget has left this period; None: no budget


_SQL: dict[str, TextClause] = {}


def _statement(dialect: Dialect) -> TextClause:
    found = _SQL.get(dialect.name)
    if found is None:
        found = _SQL[dialect.name] = text(
            f"SELECT {select_list('u', User, dialect)}, {select_list('a', Account, dialect)}, "
            f"{select_list('b', Budget, dialect)}, p.period, p.amount_minor, p.reserved_minor, p.captured_minor, "
            "gv.version, gv.policy FROM users u JOIN accounts a ON a.account_id = u.account_id "
            f"{budget_joins('u.account_id', ':now')}{policy_join('u.account_id')}WHERE u.external_id = :ref")
    return found


async def buyer_facts(session: AsyncSession, principal: Principal, user_ref: str, *, now: datetime,
                      ) -> BuyerFacts | None:
    """The facts of the user named by its external id; None when no user has that external id (the ordinary reads
    then look further, e.g. for our own ``usr_`` id, or answer 404). A user the principal may not see is a 404."""
    dialect = (await session.connection()).dialect
    row = (await session.execute(_statement(dialect), {"ref": user_ref, "now": now})).first()
    if row is None:
        return None
    values = list(row)
    u, a, b = buyer_widths(dialect)
    user = load(User, values[:u], dialect)
    if not principal.may_access_user(user.account_id, user.user_id):
        raise NotFound(f"User {user_ref!r} does not exist.")
    account = load(Account, values[u:u + a], dialect)
    budget = load(Budget, values[u + a:u + a + b], dialect) if values[u + a] is not None else None
    period, amount, reserved, captured, version, stored = values[u + a + b:]
    funds = budget_left(budget, period, amount, reserved, captured, now)[1] if budget is not None else None
    return BuyerFacts(user=user, account=account, policy_version=int(version or 0), policy=policy_of(stored),
                      funds=funds)
