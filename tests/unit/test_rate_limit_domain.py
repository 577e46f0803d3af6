"""Rate-limit arithmetic: rates, the sliding window, honest Retry-After, and leases shared by processes."""

from __future__ import annotations

import math
import random

import pytest

from app.ratelimit.domain import (
    Bucket,
    Rate,
    count,
    decide,
    estimate,
    granted,
    lease_size,
    parse_rate,
    prev_weight,
    release,
    roll,
)

T0 = 1_795_000_020.0  # the start of a minute (and of a second)
HOLD_S = 0.5


def test_rates_parse_with_their_window() -> None:
    assert parse_rate("600/minute") == Rate(600, 60)
    assert parse_rate(" 5 / second ") == Rate(5, 1) and parse_rate("1/hour").policy == "1;w=3600"
    for bad in ("600", "0/minute", "1.5/second", "5/day", "-1/minute", "10000000000/second"):
        with pytest.raises(ValueError, match=r"rate|between"):
            parse_rate(bad)


class World:
    """Processes sharing one counter per window, granting leases exactly as the SQL statement does."""

    def __init__(self, rate: Rate, processes: int) -> None:
        self.rate, self.nodes = rate, processes
        self.handed: dict[int, int] = {}
        self.buckets = [Bucket() for _ in range(processes)]
        self.mono = 1.0

    def ask(self, p: int, now: float) -> None:
        b, rate = self.buckets[p], self.rate
        start = b.window * rate.window_s
        want = lease_size(rate, b, self.mono, HOLD_S)
        prev = self.handed.get(start - rate.window_s, 0)
        cap = math.floor(rate.limit - prev_weight(b, rate, now) * prev)
        lease = min(want, max(0, math.ceil((cap - self.handed.get(start, 0)) / self.nodes)))
        self.handed[start] = self.handed.get(start, 0) + lease
        b.used, b.asked_at = 0, self.mono
        granted(b, rate, now, lease=lease, shared=self.handed[start], prev=prev, hold_s=HOLD_S)

    def give_back(self, p: int) -> None:
        b = self.buckets[p]
        start = b.window * self.rate.window_s
        self.handed[start] -= release(b)

    def request(self, p: int, now: float) -> tuple[bool, int]:
        b = self.buckets[p]
        back = roll(b, self.rate, now)
        if back is not None:
            self.handed[back[0]] -= back[1]
        d = decide(b, self.rate, now)
        if d.ask:
            self.ask(p, now)
            d = decide(b, self.rate, now)
        if d.allowed:
            count(b)
        return d.allowed, d.retry_after_s


def test_one_process_admits_exactly_the_limit_then_says_when_to_retry() -> None:
    world = World(Rate(3, 60), 1)
    assert [world.request(0, T0 + i)[0] for i in range(4)] == [True, True, True, False]
    retry = world.request(0, T0 + 4)[1]
    assert retry > 0
    world.buckets[0].denied_until = 0  # ask again rather than trust the cached refusal
    assert not world.request(0, T0 + 4 + retry - 1)[0]  # not a second early ...
    assert world.request(0, T0 + 4 + retry)[0]  # ... and honest: one fits after Retry-After


def test_a_full_window_is_refused_locally_until_the_hold_expires() -> None:
    world = World(Rate(1, 60), 1)
    assert world.request(0, T0)[0] and not world.request(0, T0)[0]
    asks = dict(world.handed)
    for _ in range(100):  # a caller hammering a full window does not reach the database
        assert not world.request(0, T0 + 0.1)[0]
    assert decide(world.buckets[0], world.rate, T0 + 0.1).ask is False and world.handed == asks
    assert decide(world.buckets[0], world.rate, T0 + HOLD_S).ask  # then it asks again


def test_the_previous_window_weighs_less_as_time_passes() -> None:
    rate = Rate(10, 60)
    b = Bucket(window=int(T0 // 60), shared=10)
    roll(b, rate, T0 + 60)  # the next window opens: the 10 hits now weigh fully ...
    assert b.prev == 10 and estimate(b, rate, T0 + 60) == pytest.approx(10)
    assert estimate(b, rate, T0 + 90) == pytest.approx(5)  # ... and half of them half way through it
    roll(b, rate, T0 + 300)  # a gap of several windows forgets everything
    assert b.prev == 0 and estimate(b, rate, T0 + 300) == 0


def test_leases_follow_the_limits_pace_or_the_callers_up_to_a_tenth_of_the_limit() -> None:
    rate = Rate(10_000, 60)
    b = Bucket()
    assert lease_size(rate, b, 10.0, HOLD_S) == 84  # the limit's pace for half a second: 10,000 / 60 / 2
    b.used, b.asked_at = 10, 10.0
    assert lease_size(rate, b, 12.0, HOLD_S) == 84  # a slow caller keeps that
    b.used = 250
    assert lease_size(rate, b, 10.5, HOLD_S) == 500  # 500/s for two half-second holds
    b.used = 100_000
    assert lease_size(rate, b, 10.5, HOLD_S) == 1000  # never more than a tenth of the limit


def test_an_unused_lease_goes_back_and_is_not_counted_as_used() -> None:
    world = World(Rate(100, 60), 1)
    world.buckets[0].used, world.buckets[0].asked_at = 1000, 0.5  # a fast caller: big leases
    assert world.request(0, T0)[0]
    held = world.buckets[0].lease
    assert held > 0 and world.handed[int(T0)] == held + 1
    world.give_back(0)
    assert world.handed[int(T0)] == 1 and world.buckets[0].lease == 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_processes_sharing_the_counters_never_exceed_the_limit(seed: int) -> None:
    rng = random.Random(seed)
    rate, processes = Rate(200, 60), 6
    world = World(rate, processes)
    admitted, now = 0, T0
    for _ in range(3000):  # 30 s of traffic spread over the processes; idle leases given back now and then
        p = rng.randrange(processes)
        if rng.random() < 0.02:
            world.give_back(rng.randrange(processes))
        admitted += world.request(p, now)[0]
        now += 0.01
        world.mono += 0.01
    assert admitted == rate.limit
