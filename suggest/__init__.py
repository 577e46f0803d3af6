"""The expand-selling engine: in-workflow suggestions, adoption nudges, the cheapest-plan advisor, and the
measurement of all of it (impressions, feedback, attributed purchases, lift over a holdout).

The top of the stack: it reads the catalog, entitlements and billing through their public functions, and
nothing imports it but the app's wiring (app/wiring.py, app/asgi.py, app/demo.py), which uses:
  * ``subscribe(bus, *, attribution_days, unused_days)``: the engine hears ``order.fulfilled`` (each purchased
    module is recorded and attributed to the suggestion shown before it), ``approval.decided`` (an admin's
    denial), and every grant, revocation, end, seat and role change (applied to the peer statistics);
  * ``parse_weights(text)``: checks COMMERCE_SUGGEST_WEIGHTS at start-up;
  * ``refresh_account(session, account_id, *, now, unused_days)``: recount an account's peer statistics;
  * ``record_purchase`` and ``record_denial``: what the subscribers call, also usable directly.
The engine itself (``engine.rank``, ``signals``, ``scoring``, ``advisor``, ``stats``) is pure.
"""

from suggest.outcomes import record_denial, record_purchase
from suggest.peers import refresh_account
from suggest.scoring import parse_weights
from suggest.service import in_holdout
from suggest.subscribers import subscribe

__all__ = ["in_holdout", "parse_weights", "record_denial", "record_purchase", "refresh_account", "subscribe"]
