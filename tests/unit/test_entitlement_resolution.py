"""Pure resolution: grants x seats x expiry, limits summed, config rule, periods, the check and its offer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.demo import demo_catalog_toml
from catalog.domain import Live, LivePrice
from catalog.spec import parse_toml, price_slot
from entitlements.domain import (
    FOREVER,
    CatalogView,
    HeldGrant,
    Snapshot,
    best_offer,
    check,
    grant_status,
    next_boundary,
    period_bounds,
    resolve,
    resolve_config,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
DOC = parse_toml(demo_catalog_toml())
PRICES = {(m.key, price_slot(p)): LivePrice(price_id=f"price_{m.key}_{i}", module=m.key, version=1, price=p,
                                            is_current=True, revision=1, created_at=NOW)
          for m in DOC.modules for i, p in enumerate(m.prices)}
VIEW = CatalogView.build(Live(revision=1, doc=DOC, prices=PRICES))


def held(module: str, subject: str = "user", grant_id: str = "grt_1", days_ago: int = 1) -> HeldGrant:
    return HeldGrant(grant_id=grant_id, module=module, subject=subject,  # type: ignore[arg-type]
                     starts_at=NOW - timedelta(days=days_ago))


def snap(grants: list[HeldGrant], used: dict[str, int] | None = None, roles: frozenset[str] = frozenset({"analyst"}),
         segment: str = "enterprise") -> Snapshot:
    start, end = period_bounds("month", NOW)
    return Snapshot(user_ref="u", account_ref="a", account_id="acct_1", user_id="usr_1", roles=roles,
                    segment=segment, region="us", currency="USD", catalog_revision=1, computed_at=NOW,
                    valid_until=FOREVER, modules=frozenset(g.module for g in grants), features=resolve(grants, VIEW),
                    used={k: (start, end, n) for k, n in (used or {}).items()})


@pytest.mark.parametrize(("period", "start", "end"), [
    ("day", datetime(2026, 11, 23, tzinfo=UTC), datetime(2026, 11, 24, tzinfo=UTC)),
    ("week", datetime(2026, 11, 23, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC)),  # a Monday
    ("month", datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)),
    ("year", datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
])
def test_periods_are_utc_calendar_periods(period: str, start: datetime, end: datetime) -> None:
    assert period_bounds(period, NOW) == (start, end)  # type: ignore[arg-type]


def test_december_rolls_into_next_year() -> None:
    assert period_bounds("month", datetime(2026, 12, 31, 23, 59, tzinfo=UTC))[1] == datetime(2027, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(("starts", "ends", "revoked", "status"), [
    (-1, None, None, "active"),
    (1, None, None, "scheduled"),
    (-2, -1, None, "ended"),
    (-2, 1, None, "active"),
    (-2, -1, -1, "revoked"),
    (-2, 1, 1, "active"),  # revoked with a future effective time: still active until then
])
def test_status_follows_the_clock(starts: int, ends: int | None, revoked: int | None, status: str) -> None:
    def at(days: int | None) -> datetime | None:
        return None if days is None else NOW + timedelta(days=days)

    assert grant_status(starts_at=at(starts), ends_at=at(ends), revoked_at=at(revoked), now=NOW) == status  # type: ignore[arg-type]


@pytest.mark.parametrize(("grants", "feature", "allowed"), [
    ([], "pdf_export", False),
    ([("reports_pro", "user")], "pdf_export", True),
    ([("report_branding", "account")], "pdf_export", True),
    ([("report_branding", "seat")], "custom_themes", True),
    ([("reports_basic", "seat")], "pdf_export", False),
])
def test_union_over_own_account_wide_and_seat_grants(grants: list[tuple[str, str]], feature: str,
                                                     allowed: bool) -> None:
    s = snap([held(m, sub, f"grt_{i}") for i, (m, sub) in enumerate(grants)])
    assert check(s, VIEW.features[feature], 1, NOW).allowed is allowed


def test_limits_add_up_across_grants() -> None:
    s = snap([held("reports_basic", "user", "grt_1"), held("reports_pro", "account", "grt_2"),
              held("reports_basic", "seat", "grt_3")])
    assert s.features["reports"].limit == 50 + 500 + 50
    assert s.features["reports"].modules == ("reports_basic", "reports_pro")


def test_limit_check_counts_used_and_quantity() -> None:
    s = snap([held("reports_basic")], used={"reports": 45})
    ok = check(s, VIEW.features["reports"], 5, NOW)
    assert (ok.allowed, ok.reason, ok.limit, ok.used, ok.remaining) == (True, "within_limit", 50, 45, 5)
    over = check(s, VIEW.features["reports"], 6, NOW)
    assert (over.allowed, over.reason) == (False, "limit_exceeded")
    assert over.period_end == datetime(2026, 12, 1, tzinfo=UTC)


def test_usage_of_a_past_period_does_not_count_now() -> None:
    s = snap([held("reports_basic")])
    s.used["reports"] = (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC), 50)
    assert check(s, VIEW.features["reports"], 1, NOW).used == 0


def test_config_values_resolve_by_rule() -> None:
    own, account = held("a", "user", "grt_b"), held("b", "account", "grt_a")
    assert resolve_config([(own, "90"), (account, "365")]) == "365"  # integers: the largest wins
    assert resolve_config([(account, "gold"), (own, "silver")]) == "silver"  # own grant beats account-wide
    newer = HeldGrant(grant_id="grt_z", module="c", subject="user", starts_at=NOW)
    assert resolve_config([(own, "silver"), (newer, "bronze")]) == "bronze"  # then the latest start
    s = snap([held("extended_retention")])
    out = check(s, VIEW.features["data_retention_days"], 1, NOW)
    assert (out.allowed, out.value) == (True, "365")
    default = check(snap([]), VIEW.features["data_retention_days"], 1, NOW)
    assert (default.allowed, default.value) == (False, VIEW.features["data_retention_days"].value)  # type: ignore[union-attr]


def test_snapshot_is_valid_until_the_next_boundary() -> None:
    ends = NOW + timedelta(days=3)
    assert next_boundary(NOW, [None, NOW - timedelta(days=1), ends, NOW + timedelta(days=9)]) == ends
    assert next_boundary(NOW, [None]) == FOREVER


def test_denied_check_offers_the_cheapest_buyable_module() -> None:
    s = snap([])
    offer = best_offer(s, VIEW.features["pdf_export"], VIEW)
    assert offer is not None and offer.module == "reports_pro" and offer.effect == "purchasable"
    assert (offer.amount_minor, offer.currency, offer.per_seat) == (2400, "USD", True)
    assert offer.requires_unmet == ["reports_basic"]


def test_offer_never_names_a_module_hidden_from_the_user() -> None:
    viewer = snap([], roles=frozenset({"viewer"}))
    offer = best_offer(viewer, VIEW.features["forecasting"], VIEW)
    assert offer is None  # ai-by-segment hides AI from viewers
    smb = snap([], segment="smb")
    assert best_offer(smb, VIEW.features["embed_views"], VIEW) is None  # embedding hidden for smb


def test_limit_offer_prefers_a_module_that_covers_the_need() -> None:
    s = snap([held("reports_basic")], used={"reports": 50})
    offer = best_offer(s, VIEW.features["reports"], VIEW, needed=100)
    assert offer is not None and offer.module == "reports_pro" and offer.grants_limit == 500


def test_bulk_usage_invalidates_per_user_or_whole_account() -> None:
    from entitlements.service._usage import ACCOUNT_WIDE_AFTER, _invalidations

    few = {("acct_a", f"usr_{i}", "reports", NOW): (NOW, 1) for i in range(2)}
    many = {("acct_b", f"usr_{i}", "reports", NOW): (NOW, 1) for i in range(ACCOUNT_WIDE_AFTER + 1)}
    assert _invalidations({**few, **many}) == [("acct_a", "usr_0"), ("acct_a", "usr_1"), ("acct_b", None)]
