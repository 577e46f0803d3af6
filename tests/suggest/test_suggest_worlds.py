"""The backtest's unseen worlds (bench/suggest_worlds.py) have the pattern each is named for, so the figures
docs/suggestions.md reports for them measure what it says they measure."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bench.suggest_worlds import SPLIT_DAY, START, generate


def test_a_quiet_world_records_no_friction() -> None:
    world = generate("quiet", seed=1, accounts_per_segment=4)
    assert world.history.demand == []
    assert not any(f.kind == "limit" for f in world.history.features.values())
    assert len(world.history.purchases(world.split, world.end)) > 20  # people still buy, from need and colleagues


def test_newcomers_have_no_history_before_they_join() -> None:
    world = generate("newcomers", seed=1, accounts_per_segment=4)
    h, joined = world.history, world.joined
    assert 0.3 < len(joined) / len(h.users) < 0.5
    assert all(SPLIT_DAY - 14 <= day < SPLIT_DAY for day in joined.values())
    day_of = {u: START + timedelta(days=d) for u, d in joined.items()}
    assert not any(g.user in day_of and g.starts_at < day_of[g.user] for g in h.grants)
    assert not any(d.user in day_of and d.day < day_of[d.user].date() - timedelta(days=7) for d in h.demand)
    assert any(g.user in day_of for g in h.grants)  # and some of them buy once they are here


def test_in_a_sequence_world_owning_a_module_leads_to_its_follow_on() -> None:
    world = generate("sequence", seed=1, accounts_per_segment=4)
    h, follows = world.history, world.follows
    assert set(follows) == set(h.modules) and all(k != v for k, v in follows.items())
    owned_before: dict[str, set[str]] = {}
    for g in h.grants:
        if g.starts_at < world.split and g.user is not None:
            owned_before.setdefault(g.user, set()).add(g.module)
    bought = h.purchases(world.split, world.end)
    follow_ons = chance = 0.0
    for user, modules in bought.items():
        mine = owned_before.get(user, set())
        lacking = set(h.modules) - mine
        leads = {follows[k] for k in mine} & lacking  # the follow-ons this user could buy
        for m in modules:
            follow_ons += m in leads
            chance += len(leads) / len(lacking)  # what a purchase picked at random among the lacking would give
    # purchases land on the follow-ons of what the user owns far more often than a random pick would
    assert sum(map(len, bought.values())) > 20 and follow_ons > 2 * chance


@pytest.mark.parametrize("structure", ["role", "account", "segment", "chains", "metered"])
def test_the_first_five_worlds_have_no_follow_ons_and_no_newcomers(structure: str) -> None:
    world = generate(structure, seed=2, accounts_per_segment=2)
    assert world.follows == {} and world.joined == {}
