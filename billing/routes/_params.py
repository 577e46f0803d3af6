"""Typed, validated path and query parameters of billing's routes (where each comes from is explicit)."""

from __future__ import annotations

from typing import Annotated

from litestar.params import PathParameter, QueryParameter

from billing.domain.orders import ApprovalState, OrderState

_PERIOD = r"^[0-9]{4}-(0[1-9]|1[0-2])$"

BudgetId = Annotated[str, PathParameter(description="Budget id (bud_...)", pattern=r"^bud_[0-9a-z]{26}$")]
QuoteId = Annotated[str, PathParameter(description="Quote id (quo_...)", pattern=r"^quo_[0-9a-z]{26}$")]
OrderId = Annotated[str, PathParameter(description="Order id (ord_...)", pattern=r"^ord_[0-9a-z]{26}$")]
ApprovalId = Annotated[str, PathParameter(description="Approval id (apr_...)", pattern=r"^apr_[0-9a-z]{26}$")]
SubscriptionId = Annotated[str, PathParameter(description="Subscription id (sub_...)",
                                              pattern=r"^sub_[0-9a-z]{26}$")]
PeriodFilter = Annotated[str | None, QueryParameter(description="Period, YYYY-MM", pattern=_PERIOD)]
PeriodQuery = Annotated[str, QueryParameter(description="Period, YYYY-MM", pattern=_PERIOD)]
OrderStateFilter = Annotated[OrderState | None, QueryParameter(name="state", description="Only orders in this state")]
ApprovalStateFilter = Annotated[ApprovalState | None,
                                QueryParameter(name="state", description="Only requests in this state")]
