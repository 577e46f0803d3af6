"""Each signal of the suggestion engine on its own: value range, when it is silent, and the sentence it says."""

from __future__ import annotations

import math

import pytest

from suggest import signals as s
from suggest.signals import FeatureInfo, ModuleInfo, PeerCount, Trigger

F = {
    "reports": FeatureInfo("reports", "Reports", "limit", unit="report", period="month"),
    "pdf_export": FeatureInfo("pdf_export", "PDF export", "boolean"),
    "advanced_charts": FeatureInfo("advanced_charts", "Advanced charts", "boolean"),
}
PRO = ModuleInfo("reports_pro", "Reports Pro", "reporting", {"reports": 500, "pdf_export": True},
                 requires=("reports_basic",))
CHARTS = ModuleInfo("advanced_charts", "Advanced Charts", "visualization", {"advanced_charts": True})


def test_a_denied_feature_is_a_full_trigger_only_for_modules_granting_it() -> None:
    hit = s.trigger(PRO, Trigger("feature_denied", "pdf_export"), F)
    assert hit.value == 1.0 and hit.fact == "Reports Pro includes PDF export, which you just tried to use."
    assert s.trigger(CHARTS, Trigger("feature_denied", "pdf_export"), F) == s.NONE
    assert s.trigger(PRO, None, F) == s.NONE and s.trigger(PRO, Trigger("browse"), F) == s.NONE
    same = s.trigger(CHARTS, Trigger("feature_denied", "advanced_charts"), F)
    assert same.fact == "Advanced Charts is what you just tried to use."  # never "X includes X"


def test_limit_triggers_name_what_the_module_adds() -> None:
    reached = s.trigger(PRO, Trigger("limit_reached", "reports"), F)
    near = s.trigger(PRO, Trigger("limit_near", "reports"), F)
    assert reached.value == 1.0 and near.value == 0.8
    assert reached.fact == "Reports Pro adds 500 reports to your Reports limit."


def test_recorded_demand_saturates_and_counts_only_granted_features() -> None:
    none = s.recorded_demand(PRO, {"advanced_charts": (9, 9)}, F, days=30)
    once = s.recorded_demand(PRO, {"pdf_export": (1, 0)}, F, days=30)
    many = s.recorded_demand(PRO, {"pdf_export": (3, 4)}, F, days=30)
    assert none == s.NONE
    assert 0 < once.value < many.value < 1
    assert many.fact == "You tried to use PDF export 7 times in the last 30 days without having it."
    assert once.fact is not None and "once" in once.fact


def test_limit_pressure_starts_at_half_and_is_full_at_the_limit() -> None:
    assert s.limit_pressure(PRO, {"reports": (20, 50)}, F) == s.NONE
    mid = s.limit_pressure(PRO, {"reports": (40, 50)}, F)
    full = s.limit_pressure(PRO, {"reports": (92, 100)}, F)
    assert round(mid.value, 2) == 0.6 and full.value > 0.8
    assert full.fact == "You used 92 of 100 reports this month."
    assert s.limit_pressure(CHARTS, {"reports": (50, 50)}, F) == s.NONE  # charts add no reports


def test_team_adoption_states_its_counts_and_is_smoothed_toward_the_segment() -> None:
    team = s.peer_adoption(CHARTS, "analyst", PeerCount(7, 9), PeerCount(30, 100), segment_name="enterprise")
    assert team.fact == "7 of the 9 other analysts in your team use Advanced Charts."
    assert team.value == pytest.approx((7 + s.PRIOR_STRENGTH * 0.3) / (9 + s.PRIOR_STRENGTH))
    tiny = s.peer_adoption(CHARTS, "analyst", PeerCount(2, 2), PeerCount(10, 100), segment_name="smb")
    assert tiny.fact is None  # two peers say nothing (and would single them out)
    assert tiny.value == pytest.approx((2 + s.PRIOR_STRENGTH * 0.1) / (2 + s.PRIOR_STRENGTH)) and tiny.value < 0.5
    assert s.peer_adoption(CHARTS, None, PeerCount(7, 9), None, segment_name="x") == s.NONE


def test_segment_share_is_over_every_user_with_the_role_and_has_a_floor() -> None:
    seg = s.segment_adoption(CHARTS, "analyst", PeerCount(61, 100), segment_name="mid_market")
    assert seg.fact == "61% of analysts at mid market companies like yours use Advanced Charts."
    assert seg.value == pytest.approx(0.61)
    rare = s.segment_adoption(CHARTS, "manager", PeerCount(2, 100), segment_name="enterprise")
    assert rare.fact is None and rare.value == pytest.approx(0.02)  # 2 %: counted, never said
    assert s.segment_adoption(CHARTS, "analyst", PeerCount(9, 15), segment_name="smb").fact is None  # too few


def test_account_adoption_counts_everyone_whatever_the_role() -> None:
    acc = s.account_adoption(CHARTS, PeerCount(12, 15), 0.2)
    assert acc.fact == "12 of the 15 other people in your account use Advanced Charts."
    assert acc.value == pytest.approx((12 + s.PRIOR_STRENGTH * 0.2) / (15 + s.PRIOR_STRENGTH))
    assert s.account_adoption(CHARTS, PeerCount(1, 40), 0.0).fact is None  # 2.5 % is not evidence
    assert s.account_adoption(CHARTS, None, 0.5) == s.NONE


def test_roles_that_are_fields_are_not_pluralised_with_an_s() -> None:
    assert s.role_label("analyst") == "analysts" and s.role_label("sales") == "people in sales"
    assert s.role_label("finance") == "people in finance" and s.role_label("ops_lead") == "ops leads"
    team = s.peer_adoption(CHARTS, "finance", PeerCount(4, 6), None, segment_name="smb")
    assert team.fact == "4 of the 6 other people in finance in your team use Advanced Charts."


def test_demand_of_the_last_week_and_before_the_window() -> None:
    week = s.week_demand(CHARTS, {"advanced_charts": 2})
    assert week.fact is None and week.value == pytest.approx(1 - math.exp(-1))
    older = s.older_demand(CHARTS, {"advanced_charts": 3}, F, recent_days=30, older_days=90)
    assert older.fact == "You tried to use Advanced charts 3 times between 90 and 30 days ago without having it."
    assert s.older_demand(CHARTS, {"pdf_export": 3}, F, recent_days=30, older_days=90) == s.NONE


def test_co_ownership_needs_support_and_uses_the_best_owned_module() -> None:
    pairs = {("advanced_charts", "reports_pro"): 8, ("comments", "reports_pro"): 2}
    owners = {"advanced_charts": 10, "comments": 40}
    sig = s.co_ownership(PRO, frozenset({"advanced_charts", "comments"}), pairs, owners,
                         {"advanced_charts": "Advanced Charts"})
    assert round(sig.value, 2) == 0.8 and sig.fact == "Most users who have Advanced Charts also have Reports Pro (80%)."
    assert s.co_ownership(PRO, frozenset({"advanced_charts"}), pairs, {"advanced_charts": 5}, {}) == s.NONE
    weak = s.co_ownership(PRO, frozenset({"comments"}), {("comments", "reports_pro"): 1}, {"comments": 100}, {})
    assert weak.fact is None and weak.value == pytest.approx(0.01)  # 1 % of owners: not evidence, never said


def test_usage_trajectory_rewards_growth_not_decline() -> None:
    grew = s.usage_trajectory(PRO, {"reports": [20, 30, 45]}, ["reports"], F)
    fell = s.usage_trajectory(PRO, {"reports": [45, 30, 20]}, ["reports"], F)
    assert grew.value == 1.0
    assert grew.fact == "Your use of Reports grew from 20 reports to 45 a month over the last 3 months."
    assert fell == s.NONE and s.usage_trajectory(PRO, {"reports": [5]}, ["reports"], F) == s.NONE


def test_price_fit_is_neutral_without_history_and_falls_with_each_doubling() -> None:
    assert s.price_fit(2400, user_typical_minor=None, account_typical_minor=None) == s.Signal(0.5)
    cheap = s.price_fit(1500, user_typical_minor=2000, account_typical_minor=None, formatted="$15.00 a month")
    assert cheap.value == 1.0 and cheap.fact is not None and "you usually spend" in cheap.fact
    double = s.price_fit(4000, user_typical_minor=None, account_typical_minor=2000)
    assert round(double.value, 3) == round(1 - 1 / 3, 3) and double.fact is None
    assert s.price_fit(None, user_typical_minor=1, account_typical_minor=1) == s.NONE


def test_median_is_the_lower_middle() -> None:
    assert s.median([]) is None and s.median([5, 1, 3]) == 3 and s.median([4, 1, 3, 2]) == 2
