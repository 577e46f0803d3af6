"""The module catalog: features, modules, versioned prices, availability policies, catalog as code, offers.

Other packages call these (never the tables):
  * reads: ``get_feature``, ``list_features``, ``get_module``, ``list_modules``, ``current_prices`` (a module's
    current price versions in a currency), ``get_price`` (one exact version, as a purchase records it),
    ``modules_granting`` (which modules unlock a feature: a denial becomes an offer);
  * availability: ``load_live`` + ``evaluate_availability(live, module, Audience(...))`` -> ``Decision`` (effect and
    reason), or the pure ``availability(doc, module, audience)``;
  * offers: ``offers_for(session, user, owned=...)``: the caller passes the modules the user holds (the
    catalog sits below entitlements and never asks it);
  * price migrations: ``price_owners`` (who holds older versions: billing's query, put on sessions by the
    wiring through ``owner_source_info``), ``price_in_force`` (the version an owner pays for a period),
    ``price_version``, ``scheduled_migrations``, ``cancel_migration``;
  * catalog as code: ``parse_source``, ``plan_document``, ``apply_document``.
"""

from catalog.domain import Audience, Decision, Live, Offer, PriceView, Unlock, availability, evaluate
from catalog.service import (
    OwnerSource,
    apply_document,
    cached_live,
    cancel_migration,
    current_prices,
    evaluate_availability,
    get_feature,
    get_module,
    get_price,
    head_sql,
    list_features,
    list_modules,
    load_live,
    modules_granting,
    offers_for,
    owner_source_info,
    parse_source,
    plan_document,
    price_in_force,
    price_owners,
    price_version,
    scheduled_migrations,
)

__all__ = [
    "Audience",
    "Decision",
    "Live",
    "Offer",
    "OwnerSource",
    "PriceView",
    "Unlock",
    "apply_document",
    "availability",
    "cached_live",
    "cancel_migration",
    "current_prices",
    "evaluate",
    "evaluate_availability",
    "get_feature",
    "get_module",
    "get_price",
    "head_sql",
    "list_features",
    "list_modules",
    "load_live",
    "modules_granting",
    "offers_for",
    "owner_source_info",
    "parse_source",
    "plan_document",
    "price_in_force",
    "price_owners",
    "price_version",
    "scheduled_migrations",
]
