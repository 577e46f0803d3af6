"""The catalog document: TOML round-trip, validation naming each culprit, requires-cycle detection,
and the plan of a document against a live catalog built from the same document being empty."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.demo import demo_catalog_toml
from app.money import is_currency
from catalog import domain, spec
from catalog.domain import Live, LivePrice
from catalog.spec import CatalogInvalidError, find_requires_cycle, load, parse_toml, to_toml

T0 = datetime(2026, 11, 23, tzinfo=UTC)
BASE = """
[[categories]]
key = "c"
name = "C"
[[features]]
key = "f"
name = "F"
kind = "limit"
unit = "report"
[[modules]]
key = "a"
name = "A"
category = "c"
features = { f = 10 }
prices = [{ model = "recurring", interval = "month", currency = "USD", amount_minor = 100 }]
"""


def errors_of(text: str) -> list[tuple[str, str]]:
    with pytest.raises(CatalogInvalidError) as exc:
        load(text, is_currency=is_currency)
    return [(e.field, e.message) for e in exc.value.errors]


def test_demo_catalog_is_valid_and_round_trips_through_toml() -> None:
    doc = load(demo_catalog_toml(), is_currency=is_currency)
    assert 15 <= len(doc.modules) <= 30 and 4 <= len({m.category for m in doc.modules}) <= 6
    assert parse_toml(to_toml(doc)) == doc
    assert to_toml(parse_toml(to_toml(doc))) == to_toml(doc)


@pytest.mark.parametrize(("extra", "field", "needle"), [
    ('[[modules]]\nkey="b"\nname="B"\ncategory="c"\nfeatures={ nope = true }\n', "modules.b.features.nope",
     "unknown feature 'nope'"),
    ('[[modules]]\nkey="b"\nname="B"\ncategory="zzz"\n', "modules.b.category", "unknown category 'zzz'"),
    ('[[modules]]\nkey="b"\nname="B"\ncategory="c"\nrequires=["ghost"]\n', "modules.b.requires",
     "unknown module 'ghost'"),
    ('[[modules]]\nkey="b"\nname="B"\ncategory="c"\nfeatures={ f = true }\n', "modules.b.features.f",
     "limit feature"),
    ('[[modules]]\nkey="b"\nname="B"\ncategory="c"\nprices=[{ model="one_time", currency="XYZ", amount_minor=5 }]\n',
     "modules.b.prices.one_time:once:XYZ.currency", "unknown currency 'XYZ'"),
    ('[[modules]]\nkey="b"\nname="B"\ncategory="c"\nprices=[{ model="one_time", currency="USD", amount_minor=5 },'
     '{ model="one_time", currency="USD", amount_minor=6 }]\n', "modules.b.prices",
     "two current versions of price 'one_time:once:USD' of module 'b'"),
    ('[[policies]]\nkey="p"\nmodule="ghost"\n', "policies.p.module", "unknown module 'ghost'"),
    ('[[policies]]\nkey="p"\ncategory="c"\nrules=[{effect="hidden", owns=["ghost"]}]\n', "policies.p.rules[1].owns",
     "unknown module 'ghost'"),
    ('[[modules]]\nkey="b"\nname="B"\ncategory="c"\n[[modules.prices]]\nmodel="metered"\ncurrency="USD"\nunit="x"\n'
     'tiers=[{up_to=10, unit_amount_minor=1}]\n', "modules.b.prices.metered:month:USD.tiers", "last tier"),
    ('[[modules]]\nkey="a"\nname="A again"\ncategory="c"\n', "modules.a", "duplicate key 'a'"),
])
def test_inconsistencies_are_rejected_naming_the_culprit(extra: str, field: str, needle: str) -> None:
    found = errors_of(BASE + extra)
    assert any(f == field and needle in m for f, m in found), found


@pytest.mark.parametrize(("extra", "field"), [
    ('[[modules]]\nkey="b"\nname="B"\ncategory="c"\nprices=[{ model="one_time", currency="USD", amount_minor=-1 }]\n',
     "modules[1].prices[0].amount_minor"),
    ('[[modules]]\nkey="b"\nname="B"\ncategory="c"\ncolour="red"\n', "modules[1]"),
    ('[[modules]]\nkey="B!"\nname="B"\ncategory="c"\n', "modules[1].key"),
    ('[[modules]]\nkey="b"\nname="B"\ncategory="c"\ntrial_days=0\n', "modules[1].trial_days"),
    ("[[modules]\n", "toml"),  # TOML syntax
    ("default_effect = 'maybe'\n", "modules[0]"),  # after a table, a key belongs to that table
])
def test_shape_errors_carry_the_path(extra: str, field: str) -> None:
    found = errors_of(BASE + extra)
    assert found[0][0] == field, found


def test_negative_amount_message_says_why() -> None:
    found = errors_of(BASE.replace("amount_minor = 100", "amount_minor = -100"))
    assert found == [("modules[0].prices[0].amount_minor", "Expected `int` >= 0 in module 'a'")]


def test_requires_cycle_is_found_and_named() -> None:
    assert find_requires_cycle({"a": ["b"], "b": ["c"], "c": ["a"], "d": []}) == ["a", "b", "c", "a"]
    assert find_requires_cycle({"a": ["b"], "b": ["c"], "c": []}) is None
    assert find_requires_cycle({"a": ["a"]}) == ["a", "a"]
    text = BASE + ('[[modules]]\nkey="b"\nname="B"\ncategory="c"\nrequires=["d"]\n'
                   '[[modules]]\nkey="d"\nname="D"\ncategory="c"\nrequires=["b"]\n')
    assert ("modules.b.requires", "requires cycle: b -> d -> b") in errors_of(text)


@given(edges=st.dictionaries(st.sampled_from("abcdefg"), st.lists(st.sampled_from("abcdefg"), max_size=3)))
def test_cycle_detection_agrees_with_a_topological_sort(edges: dict[str, list[str]]) -> None:
    cycle = find_requires_cycle(edges)
    nodes = set(edges) | {n for v in edges.values() for n in v}
    remaining = {n: set(edges.get(n, [])) for n in nodes}
    while (free := [n for n, deps in remaining.items() if not deps]):
        for n in free:
            del remaining[n]
        for deps in remaining.values():
            deps.difference_update(free)
    assert (cycle is None) == (not remaining)
    if cycle:
        assert cycle[0] == cycle[-1] and all(b in edges[a] for a, b in itertools.pairwise(cycle))


# --- plan (pure) ---------------------------------------------------------------------------------------------

def live_of(doc: spec.CatalogDoc, revision: int = 1) -> Live:
    """A live catalog holding exactly ``doc`` (price versions 1)."""
    prices = {(m.key, spec.price_slot(p)): LivePrice(price_id=f"price_{m.key}_{i}", module=m.key, version=1, price=p,
                                                     is_current=True, revision=revision, created_at=T0)
              for m in doc.modules for i, p in enumerate(m.prices)}
    return Live(revision=revision, doc=doc, prices=prices, last_version={k: 1 for k in prices})


def test_plan_of_the_live_document_is_empty_and_a_price_change_is_a_new_version() -> None:
    doc = load(demo_catalog_toml(), is_currency=is_currency)
    assert domain.plan(Live(revision=0, doc=spec.CatalogDoc()), doc)
    assert domain.plan(live_of(doc), doc) == []
    changed = load(demo_catalog_toml().replace("amount_minor = 2400", "amount_minor = 2600"), is_currency=is_currency)
    [change] = domain.plan(live_of(doc), changed)
    assert (change.kind, change.action, change.key) == ("price", "new_version", "reports_pro/recurring:month:USD")
    assert (change.from_version, change.to_version) == (1, 2)
    assert (change.amount_minor_before, change.amount_minor_after) == (2400, 2600)
    assert "existing owners keep v1" in change.detail


def test_module_absent_from_the_document_is_retired_not_deleted() -> None:
    doc = load(BASE, is_currency=is_currency)
    [change] = domain.plan(live_of(doc), spec.CatalogDoc(categories=doc.categories, features=doc.features))
    assert (change.kind, change.action, change.key) == ("module", "retired", "a")


def test_migration_dates_must_lie_ahead() -> None:
    doc = load(BASE, is_currency=is_currency)
    moved = load(BASE.replace("amount_minor = 100", "amount_minor = 120, migrate_existing_at = 2026-01-01T00:00:00Z"),
                 is_currency=is_currency)
    changes = domain.plan(live_of(doc), moved)
    [error] = domain.check_schedules(changes, T0)
    assert error.field == "modules.a.prices.recurring:month:USD.migrate_existing_at"


_doc_strategy = st.builds(
    lambda n_mod, amounts, req: load(
        BASE + "".join(
            f'[[modules]]\nkey="m{i}"\nname="M{i}"\ncategory="c"\n'
            + (f'requires=["m{i - 1}"]\n' if req and i else "")
            + f'prices=[{{ model="one_time", currency="EUR", amount_minor={amounts[i % len(amounts)]} }}]\n'
            for i in range(n_mod)),
        is_currency=is_currency),
    st.integers(0, 5), st.lists(st.integers(0, 10**6), min_size=1, max_size=5), st.booleans())


@settings(max_examples=30)
@given(doc=_doc_strategy)
def test_plan_is_empty_against_a_live_catalog_of_the_same_document(doc: spec.CatalogDoc) -> None:
    assert domain.plan(live_of(doc), parse_toml(to_toml(doc))) == []
