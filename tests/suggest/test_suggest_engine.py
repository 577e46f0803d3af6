"""Ranking on crafted cases: the denied feature wins, owned and hidden never offered, respect rules, bundles,
adoption nudges and plan changes; and the scoring, advisor and lift arithmetic."""

from __future__ import annotations

import random

import pytest

from suggest import advisor as adv
from suggest import engine as e
from suggest import scoring, stats
from suggest.signals import FeatureInfo, ModuleInfo, PeerCount, Trigger

F = {
    "reports": FeatureInfo("reports", "Reports", "limit", unit="report", period="month"),
    "pdf_export": FeatureInfo("pdf_export", "PDF export", "boolean"),
    "advanced_charts": FeatureInfo("advanced_charts", "Advanced charts", "boolean"),
    "comments": FeatureInfo("comments", "Comments", "boolean"),
}
BASIC = ModuleInfo("reports_basic", "Reports Basic", "reporting", {"reports": 50}, trial_days=14)
PRO = ModuleInfo("reports_pro", "Reports Pro", "reporting", {"reports": 500, "pdf_export": True},
                 requires=("reports_basic",))
CHARTS = ModuleInfo("advanced_charts", "Advanced Charts", "visualization", {"advanced_charts": True}, trial_days=30)
COMMENTS = ModuleInfo("comments", "Comments", "collaboration", {"comments": True})


def cands(*modules: ModuleInfo, effect: e.Effect = "purchasable") -> list[e.Candidate]:
    return [e.Candidate(module=m, effect=effect, amount_minor=1000) for m in modules]


def facts(**kw: object) -> e.UserFacts:
    base: dict[str, object] = {"roles": ("analyst",), "segment": "smb", "owned": frozenset({"reports_basic"}),
                               "team": {("analyst", "advanced_charts"): PeerCount(7, 9)}}
    base.update(kw)
    return e.UserFacts(**base)  # type: ignore[arg-type]


def keys(items: list[e.Item]) -> list[str]:
    return [i.module for i in items]


def test_the_module_granting_a_denied_feature_ranks_first() -> None:
    out = e.rank(cands(BASIC, PRO, CHARTS), facts(), Trigger("feature_denied", "pdf_export"), e.Respect(),
                 features=F)
    assert keys(out)[0] == "reports_pro" and out[0].trigger_hit and out[0].kind == "purchase"
    assert "advanced_charts" in keys(out)  # peers still count behind it


def test_owned_modules_are_never_offered_for_purchase() -> None:
    out = e.rank(cands(BASIC, CHARTS), facts(owned=frozenset({"reports_basic", "advanced_charts"})),
                 Trigger("feature_denied", "advanced_charts"), e.Respect(), features=F)
    assert all(i.kind not in ("purchase", "trial") or i.module not in ("reports_basic", "advanced_charts")
               for i in out)


def test_hidden_modules_never_appear_because_they_are_never_candidates() -> None:
    out = e.rank(cands(BASIC), facts(), Trigger("feature_denied", "advanced_charts"), e.Respect(), features=F)
    assert "advanced_charts" not in keys(out)


def test_visible_but_not_buyable_appears_only_for_the_users_own_moment() -> None:
    shown = cands(CHARTS, effect="visible")
    assert e.rank(shown, facts(), None, e.Respect(), features=F) == []
    out = e.rank(shown, facts(), Trigger("feature_denied", "advanced_charts"), e.Respect(), features=F)
    assert keys(out) == ["advanced_charts"] and any("ask your admin" in r for r in out[0].reasons)


def test_dismissed_bought_and_denied_modules_are_suppressed() -> None:
    t = Trigger("feature_denied", "pdf_export")
    for respect in (e.Respect(dismissed=frozenset({"reports_pro"})), e.Respect(bought=frozenset({"reports_pro"})),
                    e.Respect(denied=frozenset({"reports_pro"}))):
        assert "reports_pro" not in keys(e.rank(cands(BASIC, PRO, CHARTS), facts(), t, respect, features=F))


def test_a_capped_surface_answers_only_the_users_explicit_moment() -> None:
    capped = e.Respect(capped=True)
    assert e.rank(cands(BASIC, PRO, CHARTS), facts(), None, capped, features=F) == []
    out = e.rank(cands(BASIC, PRO, CHARTS), facts(), Trigger("feature_denied", "pdf_export"), capped, features=F)
    assert keys(out) == ["reports_pro"]


def test_never_more_than_the_limit() -> None:
    many = [ModuleInfo(f"m{i}", f"M{i}", "x", {"advanced_charts": True}) for i in range(8)]
    team = {("analyst", f"m{i}"): PeerCount(5, 9) for i in range(8)}
    out = e.rank(cands(*many), facts(team=team), None, e.Respect(), features=F, opts=e.Options(limit=2))
    assert len(out) == 2


def test_unmet_requirements_are_quoted_as_a_bundle_prerequisite_first() -> None:
    out = e.rank(cands(BASIC, PRO), facts(owned=frozenset()), Trigger("feature_denied", "pdf_export"), e.Respect(),
                 features=F)
    assert out[0].module == "reports_pro" and out[0].bundle == ("reports_basic",)
    assert "reports_basic" not in keys(out)  # not offered again on its own
    assert any("needs Reports Basic first" in r for r in out[0].reasons)
    unbuyable = [cands(BASIC, effect="visible")[0], *cands(PRO)]
    assert "reports_pro" not in keys(e.rank(unbuyable, facts(owned=frozenset()), None, e.Respect(), features=F))


def test_without_the_users_own_moment_a_module_with_unmet_requirements_is_offered_as_its_first_step() -> None:
    f = facts(owned=frozenset(), demand={"pdf_export": (0, 4)})
    out = e.rank(cands(BASIC, PRO), f, None, e.Respect(), features=F)
    first = out[0]
    assert first.module == "reports_basic" and first.leads_to == "reports_pro" and first.bundle == ()
    assert "Start with Reports Basic: Reports Pro needs it first." in first.reasons
    assert first.breakdown["next_step"] == scoring.DEFAULT_WEIGHTS["next_step"] and first.breakdown["demand"] > 0
    assert keys(out).count("reports_basic") == 1  # one item per module


def test_a_module_granted_lately_is_never_proposed_for_dropping() -> None:
    advice = adv.Advice(current=("reports_pro",), current_minor=2400, best=("reports_basic",), best_minor=900,
                        add=("reports_basic",), remove=("reports_pro",), uncovered=(), exact=True)
    f = facts(owned=frozenset({"reports_pro"}))
    shown = e.rank(cands(BASIC, PRO), f, None, e.Respect(), features=F, advice=advice)
    assert any(i.kind == "plan_change" for i in shown)
    out = e.rank(cands(BASIC, PRO), f, None, e.Respect(bought=frozenset({"reports_pro"})), features=F, advice=advice)
    assert all(i.kind != "plan_change" for i in out)


def test_evidence_from_others_offers_a_trial_and_own_need_a_purchase() -> None:
    out = e.rank(cands(CHARTS), facts(), None, e.Respect(), features=F)
    assert out[0].kind == "trial"
    need = e.rank(cands(CHARTS), facts(demand={"advanced_charts": (4, 2)}), None, e.Respect(), features=F)
    assert need[0].kind == "purchase"


def test_nothing_is_suggested_without_a_fact_to_say() -> None:
    assert e.rank(cands(COMMENTS), facts(), None, e.Respect(), features=F) == []


def test_unused_owned_modules_come_back_as_adoption_nudges_when_peers_use_theirs() -> None:
    f = facts(owned=frozenset({"advanced_charts"}), unused=frozenset({"advanced_charts"}),
              team_active={("analyst", "advanced_charts"): PeerCount(6, 8)})
    out = e.rank(cands(CHARTS), f, None, e.Respect(), features=F)
    assert out[0].kind == "adoption" and "6 of the 8 other analysts" in out[0].reasons[1]
    lonely = facts(owned=frozenset({"advanced_charts"}), unused=frozenset({"advanced_charts"}))
    assert e.rank(cands(CHARTS), lonely, None, e.Respect(), features=F) == []


def test_a_cheaper_plan_is_offered_as_a_plan_change() -> None:
    advice = adv.Advice(current=("reports_pro",), current_minor=2400, best=("reports_basic",), best_minor=900,
                        add=("reports_basic",), remove=("reports_pro",), uncovered=(), exact=True)
    out = e.rank(cands(BASIC, PRO), facts(owned=frozenset({"reports_pro"})), None, e.Respect(), features=F,
                 advice=advice, money={2400: "$24.00", 900: "$9.00"})
    plan = next(i for i in out if i.kind == "plan_change")
    assert plan.module == "reports_pro" and "$9.00 a month instead of $24.00" in plan.reasons[0]


def test_scores_are_logistic_with_a_breakdown_per_signal() -> None:
    p, parts = scoring.score({"trigger": 1.0, "peers": 0.5})
    w_trigger, w_peers = scoring.DEFAULT_WEIGHTS["trigger"], scoring.DEFAULT_WEIGHTS["peers"]
    assert parts["trigger"] == w_trigger and parts["peers"] == w_peers / 2 and parts["price"] == 0.0
    assert p == pytest.approx(scoring.sigmoid(scoring.DEFAULT_BIAS + w_trigger + w_peers / 2))
    w = scoring.parse_weights("trigger=1, bias=-1")
    assert w.weights["trigger"] == 1 and w.bias == -1 and w.weights["peers"] == scoring.DEFAULT_WEIGHTS["peers"]
    with pytest.raises(ValueError):
        scoring.parse_weights("urgency=9")


def test_logistic_regression_learns_which_signal_predicts_the_outcome() -> None:
    rng = random.Random(7)
    rows = [{"peers": rng.random(), "price": rng.random()} for _ in range(400)]
    labels = [1 if r["peers"] + rng.gauss(0, 0.15) > 0.6 else 0 for r in rows]
    w = scoring.fit_logistic(rows, labels, epochs=400, rate=2.0)
    assert w.weights["peers"] > 2 and abs(w.weights["price"]) < w.weights["peers"] / 4


PLAN = [
    adv.PlanModule("reports_basic", "Reports Basic", 900, {"reports": 50}),
    adv.PlanModule("reports_pro", "Reports Pro", 2400, {"reports": 500, "pdf_export": True},
                   requires=("reports_basic",)),
    adv.PlanModule("branding", "Branding", 1700, {"pdf_export": True}),
    adv.PlanModule("charts", "Charts", 1500, {"advanced_charts": True}),
]
KINDS = {"reports": "limit", "pdf_export": "boolean", "advanced_charts": "boolean"}


def test_advisor_finds_the_cheaper_plan_for_actual_usage() -> None:
    owned = frozenset({"reports_basic", "reports_pro", "charts"})
    needs = adv.needs_from_usage({"reports": [30, 45, 40], "pdf_export": [1, 0, 2], "advanced_charts": [0, 0]},
                                 KINDS)
    assert needs == {"reports": 45, "pdf_export": 1}
    a = adv.advise(PLAN, owned, needs, KINDS)
    assert a.best == ("branding", "reports_basic") and a.current_minor == 4800 and a.best_minor == 2600
    assert a.remove == ("charts", "reports_pro") and a.add == ("branding",) and a.saving_minor == 2200 and a.exact


def test_advisor_says_already_cheapest_and_respects_limits_adding_up() -> None:
    owned = frozenset({"reports_basic"})
    a = adv.advise(PLAN, owned, {"reports": 40}, KINDS)
    assert a.best == ("reports_basic",) and a.saving_minor == 0
    big = adv.advise(PLAN, frozenset(), {"reports": 120}, KINDS)
    assert big.best == ("reports_basic", "reports_pro") and big.uncovered == ()
    assert adv.advise(PLAN, owned, {"reports": 10_000}, KINDS).uncovered == ("reports",)


def test_advisor_search_is_bounded_and_falls_back_to_greedy() -> None:
    many = [adv.PlanModule(f"m{i:02d}", f"M{i}", 100 + i, {f"f{i % 10}": True}) for i in range(30)]
    kinds = {f"f{i}": "boolean" for i in range(10)}
    a = adv.advise(many, frozenset(), {f"f{i}": 1 for i in range(10)}, kinds, max_nodes=0)
    assert not a.exact and len(a.best) == 10 and a.best_minor <= sum(100 + i for i in range(20, 30))
    exact = adv.advise(many, frozenset(), {f"f{i}": 1 for i in range(10)}, kinds)
    assert exact.exact and exact.best_minor == sum(100 + i for i in range(10))


def test_lift_has_a_confidence_interval_and_handles_empty_groups() -> None:
    x = stats.lift(120, 1000, 60, 1000)
    assert x.difference == pytest.approx(0.06) and x.ci_low is not None and x.ci_high is not None
    assert x.ci_low < 0.06 < x.ci_high and x.significant and x.relative == pytest.approx(1.0)
    flat = stats.lift(10, 100, 9, 100)
    assert not flat.significant
    empty = stats.lift(3, 10, 0, 0)
    assert empty.difference is None and not empty.significant
    f = stats.funnel(200, 20, 5, 4)
    assert f.ctr == 0.1 and f.conversion == 0.02 and stats.funnel(0, 0, 0, 0).ctr == 0.0
