"""The snapshot cache keeps one copy of each distinct resolved feature map and module/role set."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from entitlements.cache import SHARED_FEATURES_MAX, SnapshotCache
from entitlements.domain import FeatureState, Snapshot

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _snap(i: int, *, limit: int = 100, modules: tuple[str, ...] = ("reports_basic",)) -> Snapshot:
    return Snapshot(
        user_ref=f"u{i}", account_ref="acme", account_id="acct_1", user_id=f"usr_{i}", roles=frozenset({"analyst"}),
        segment="smb", region="us", currency="USD", catalog_revision=1, computed_at=NOW,
        valid_until=NOW + timedelta(hours=1), modules=frozenset(modules),
        features={"reports": FeatureState(kind="limit", granted=True, limit=limit, value=None, period="month",
                                          modules=modules)},
        used={"reports": (NOW, NOW + timedelta(days=30), i)})


def test_users_with_the_same_grants_share_one_feature_map_and_module_set() -> None:
    cache = SnapshotCache(max_entries=10, ttl=60)
    a, b = _snap(1), _snap(2)
    assert a.features is not b.features
    cache.put(a, cache.token())
    cache.put(b, cache.token())
    assert a.features is b.features and a.modules is b.modules and a.roles is b.roles
    assert a.used is not b.used and a.used["reports"][2] == 1 and b.used["reports"][2] == 2  # usage stays own


def test_users_with_other_grants_keep_their_own_map() -> None:
    cache = SnapshotCache(max_entries=10, ttl=60)
    a, b = _snap(1), _snap(2, limit=500, modules=("reports_pro",))
    cache.put(a, cache.token())
    cache.put(b, cache.token())
    assert a.features is not b.features and a.features["reports"].limit == 100
    assert b.features["reports"].limit == 500 and b.modules == frozenset({"reports_pro"})


def test_the_sharing_table_is_bounded() -> None:
    cache = SnapshotCache(max_entries=SHARED_FEATURES_MAX * 2, ttl=60)
    for i in range(SHARED_FEATURES_MAX + 5):
        cache.put(_snap(i, limit=i + 1), cache.token())
    assert len(cache._shared) <= SHARED_FEATURES_MAX
    kept = cache.get("u3")
    assert kept is not None and kept.features["reports"].limit == 4
