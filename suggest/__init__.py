"""The expand-selling engine: in-workflow suggestions, adoption nudges, the cheapest-plan advisor, and the
measurement of all of it (impressions, feedback, attributed purchases, lift over a holdout).

Other packages call these (never the tables):
  * ``record_purchase(session, *, account_id, user_id, module, order_id, amount_minor, currency, at)``: order
    fulfilment reports each fulfilled module; it is attributed to the suggestion shown before it;
  * ``record_denial(session, *, account_id, user_id, module, approval_id, at)``: an admin denied a request;
  * ``refresh_account(session, account_id, *, now, unused_days)``: recount an account's peer statistics.
The engine itself (``engine.rank``, ``signals``, ``scoring``, ``advisor``, ``stats``) is pure.
"""

from suggest.outcomes import record_denial, record_purchase
from suggest.peers import refresh_account
from suggest.service import in_holdout

__all__ = ["in_holdout", "record_denial", "record_purchase", "refresh_account"]
