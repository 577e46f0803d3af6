"""Prefixed, time-sortable identifiers (ULID layout: 48-bit milliseconds + 80 random bits).

A purchase makes about ten ids. The random bits come from the operating system's generator as always, but read
4 KiB at a time instead of one system call per id, and the text is made by ``base64.b32encode`` (translated to
Crockford's lower-case alphabet) instead of a loop of 26 shifts: 2.4 us an id instead of 4.2 on this machine
(py-spy: the ids were 1.5 % of a server worker's purchase samples). A forked child starts with an empty buffer,
so parent and child never hand out the same random bits.
"""

from __future__ import annotations

import base64
import os
import threading
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case
_FROM_RFC4648 = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _ALPHABET.encode())
_POOL_BYTES = 4096

_lock = threading.Lock()
_pool = b""
_at = 0
_last: tuple[int, str] = (-1, "")  # the last millisecond encoded and its text, read and replaced as one object


def _forget_pool() -> None:
    global _pool, _at
    _pool, _at = b"", 0


os.register_at_fork(after_in_child=_forget_pool)


def _random10() -> bytes:
    global _pool, _at
    with _lock:
        if _at + 10 > len(_pool):
            _pool, _at = os.urandom(_POOL_BYTES), 0
        chunk = _pool[_at:_at + 10]
        _at += 10
        return chunk


def _head(ms: int) -> str:
    """The first 10 characters: the 48-bit millisecond time as 50 bits (two leading zero bits)."""
    global _last
    last = _last
    if last[0] == ms:
        return last[1]
    chars = []
    value = ms
    for _ in range(10):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    head = "".join(reversed(chars))
    _last = (ms, head)
    return head


def new_id(prefix: str) -> str:
    """A new id such as ``acct_01jd3k...``; ids made later sort after earlier ones (to the millisecond)."""
    ms = time.time_ns() // 1_000_000
    tail = base64.b32encode(_random10()).translate(_FROM_RFC4648).decode()  # 80 bits: 16 characters exactly
    return f"{prefix}_{_head(ms)}{tail}"
