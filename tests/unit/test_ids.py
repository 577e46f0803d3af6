"""Ids: the ULID layout (26 Crockford base32 characters, 48-bit milliseconds then 80 random bits), sortable by
time, unique, and never repeated by a forked child."""

from __future__ import annotations

import os
import re
import time

from app.ids import new_id

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def _value(text: str) -> int:
    value = 0
    for c in text:
        value = value << 5 | _ALPHABET.index(c)
    return value


def test_an_id_is_the_prefix_and_26_crockford_characters_with_the_time_in_its_first_48_bits() -> None:
    before = time.time_ns() // 1_000_000
    made = new_id("ord")
    after = time.time_ns() // 1_000_000
    assert re.fullmatch(r"ord_[0-9a-hjkmnp-tv-z]{26}", made), made
    value = _value(made.removeprefix("ord_"))
    assert value < 1 << 128 and before <= value >> 80 <= after


def test_ids_are_unique_and_later_ones_sort_after_earlier_ones() -> None:
    made = [new_id("x") for _ in range(5000)]
    assert len(set(made)) == len(made)
    tails = {m[-16:] for m in made}
    assert len(tails) == len(made)  # the random part alone never repeats either
    slow = []
    for _ in range(3):
        slow.append(new_id("x"))
        time.sleep(0.002)
    assert slow == sorted(slow)


def test_a_forked_child_does_not_repeat_the_parents_random_bits() -> None:
    new_id("warm")  # the parent holds a partly used buffer
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, written to the parent
        os.close(read)
        os.write(write, " ".join(new_id("c")[-16:] for _ in range(20)).encode())
        os._exit(0)
    os.close(write)
    child = set(os.read(read, 65536).decode().split())
    os.close(read)
    os.waitpid(pid, 0)
    parent = {new_id("p")[-16:] for _ in range(20)}
    assert len(child) == 20 and not child & parent


def test_threads_making_ids_at_once_get_unique_ids_with_their_own_time() -> None:
    import threading

    made: list[tuple[int, int, str]] = []
    lock = threading.Lock()

    def work() -> None:
        mine = []
        for _ in range(5000):
            before = time.time_ns() // 1_000_000
            value = new_id("t")
            mine.append((before, time.time_ns() // 1_000_000, value))
        with lock:
            made.extend(mine)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({v for _, _, v in made}) == len(made) == 20000
    assert all(before <= _value(v.removeprefix("t_")) >> 80 <= after for before, after, v in made)
