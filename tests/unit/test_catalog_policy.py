"""Availability evaluation: a table of cases (roles x segment x region x owned -> effect + reason),
precedence (module policy, category policy, catalog default), and determinism as a property."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from catalog.domain import Audience, availability, evaluate
from catalog.spec import CatalogDoc, Category, Module, Policy, Rule

MODULE_POLICY = Policy(key="charts-policy", module="charts", rules=[
    Rule(effect="hidden", segments=["smb"], roles=["viewer"]),
    Rule(effect="approval_required", regions=["eu"]),
])
CATEGORY_POLICY = Policy(key="viz-policy", category="viz", default="visible", rules=[
    Rule(effect="purchasable", roles=["analyst", "manager"]),
    Rule(effect="hidden", roles=["viewer"], not_owns=["basic"]),
])
DOC = CatalogDoc(
    default_effect="purchasable",
    categories=[Category(key="viz", name="Viz"), Category(key="misc", name="Misc")],
    modules=[Module(key="charts", name="Charts", category="viz"), Module(key="basic", name="Basic", category="misc"),
             Module(key="maps", name="Maps", category="viz", excludes=["basic"]),
             Module(key="old", name="Old", category="misc", status="retired"),
             Module(key="next", name="Next", category="misc", status="draft")],
    policies=[MODULE_POLICY, CATEGORY_POLICY],
)
MODULES = {m.key: m for m in DOC.modules}


def who(roles: str = "", segment: str = "enterprise", region: str = "us", owned: str = "") -> Audience:
    return Audience(roles=frozenset(r for r in roles.split(",") if r), segment=segment, region=region,
                    owned=frozenset(o for o in owned.split(",") if o))


@pytest.mark.parametrize(("module", "audience", "effect", "reason"), [
    # the module's own policy comes first: rule 1 needs both conditions
    ("charts", who("viewer", "smb"), "hidden", "rule 1 of policy 'charts-policy' (role=viewer, segment=smb)"),
    ("charts", who("viewer", "smb", "eu"), "hidden", "rule 1 of policy 'charts-policy'"),
    ("charts", who("analyst", "smb", "eu"), "approval_required", "rule 2 of policy 'charts-policy' (region=eu)"),
    # no module rule matched and the module policy has no default: the category policy decides
    ("charts", who("analyst", "smb"), "purchasable", "rule 1 of policy 'viz-policy' (role=analyst|manager)"),
    ("charts", who("viewer", "enterprise"), "hidden", "rule 2 of policy 'viz-policy' (role=viewer, not_owns=basic)"),
    ("charts", who("viewer", "enterprise", owned="basic"), "visible", "default of policy 'viz-policy'"),
    ("charts", who("", "enterprise"), "visible", "default of policy 'viz-policy'"),
    # a module with no policy of its own in a category with one
    ("maps", who("manager"), "purchasable", "rule 1 of policy 'viz-policy'"),
    # exclusions make a buyable module visible only
    ("maps", who("manager", owned="basic"), "visible", "excluded by owned module(s) basic"),
    # no policy at all: the catalog default
    ("basic", who("viewer", "smb"), "purchasable", "catalog default"),
    # status beats policy
    ("old", who("analyst"), "hidden", "module is retired"),
    ("old", who("analyst", owned="old"), "visible", "you keep it"),
    ("next", who("admin"), "hidden", "module is a draft"),
])
def test_availability_table(module: str, audience: Audience, effect: str, reason: str) -> None:
    decision = availability(DOC, MODULES[module], audience)
    assert decision.effect == effect
    assert reason in decision.reason


def test_first_matching_rule_wins_and_reason_names_it() -> None:
    policy = Policy(key="p", module="m", rules=[Rule(effect="visible", roles=["a"]), Rule(effect="hidden")])
    d = evaluate([policy], "purchasable", who("a,b"))
    assert (d.effect, d.policy, d.rule) == ("visible", "p", 1)
    d = evaluate([policy], "purchasable", who("b"))
    assert (d.effect, d.policy, d.rule) == ("hidden", "p", 2) and "everyone" in d.reason


def test_owns_needs_all_and_not_owns_none() -> None:
    rule_policy = Policy(key="p", module="m", rules=[Rule(effect="approval_required", owns=["x", "y"])])
    assert evaluate([rule_policy], "visible", who(owned="x")).effect == "visible"
    assert evaluate([rule_policy], "visible", who(owned="x,y,z")).effect == "approval_required"


def test_missing_price_in_currency_is_visible_not_buyable() -> None:
    d = availability(DOC, MODULES["basic"], who("admin"), has_price=False)
    assert d.effect == "visible" and "no price" in d.reason


_names = st.sampled_from(["analyst", "viewer", "manager", "admin", "smb", "eu", "us", "enterprise"])
_audiences = st.builds(
    Audience, roles=st.frozensets(_names, max_size=3), segment=st.sampled_from(["smb", "enterprise", "mid"]),
    region=st.sampled_from(["us", "eu"]), owned=st.frozensets(st.sampled_from(["basic", "charts", "old"]), max_size=3))


@given(audience=_audiences, module=st.sampled_from(sorted(MODULES)))
def test_evaluation_is_deterministic_and_explained(audience: Audience, module: str) -> None:
    first = availability(DOC, MODULES[module], audience)
    shuffled = Audience(roles=frozenset(sorted(audience.roles, reverse=True)), segment=audience.segment,
                        region=audience.region, owned=frozenset(sorted(audience.owned, reverse=True)))
    assert availability(DOC, MODULES[module], shuffled) == first
    assert first.reason.startswith(first.effect + ":")
    assert (first.rule is None) or first.policy is not None
