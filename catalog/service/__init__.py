"""Catalog use cases (never commit: the caller's transaction does)."""

import catalog.events  # noqa: F401  (registers the catalog's event payloads in the webhook catalogue)
from catalog.service._apply import (
    ApplyResult,
    PlanResult,
    apply_document,
    document_sha256,
    parse_source,
    plan_document,
)
from catalog.service._live import current_revision, load_live, price_owners
from catalog.service._reads import (
    current_prices,
    evaluate_availability,
    export_document,
    get_feature,
    get_module,
    get_policy,
    get_price,
    get_revision,
    list_categories,
    list_features,
    list_modules,
    list_policies,
    list_prices,
    list_revisions,
    modules_granting,
    offers_for,
)

__all__ = [
    "ApplyResult", "PlanResult", "apply_document", "current_prices", "current_revision", "document_sha256",
    "evaluate_availability", "export_document", "get_feature", "get_module", "get_policy", "get_price",
    "get_revision", "list_categories", "list_features", "list_modules", "list_policies", "list_prices",
    "list_revisions", "load_live", "modules_granting", "offers_for", "parse_source",
    "plan_document", "price_owners",
]
