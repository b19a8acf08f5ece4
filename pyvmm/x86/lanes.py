"""Arrays of u64 held as one big int: whole-array checks at C speed.

Lane *i* of an *n*-lane value is bits ``64*i .. 64*i+63`` of a Python int, so
``int.from_bytes(raw, "little")`` turns *n* little-endian u64 (a page table's
entries, a column of hypercall arguments) into one, and :func:`pack` back.
A Python loop over 512 values costs tens of microseconds; one big-int add,
AND or compare over the same 4 KiB costs about one. Each helper states what
keeps lanes from carrying into each other.
"""

from __future__ import annotations

import functools
import struct
from array import array

TOP = 1 << 63


@functools.cache
def ones(n: int) -> int:
    """1 in each of *n* lanes."""
    return int.from_bytes(struct.pack("<Q", 1) * n, "little")


@functools.cache
def tops(n: int) -> int:
    """Bit 63 in each of *n* lanes."""
    return ones(n) << 63


@functools.cache
def steps(n: int, stride: int) -> int:
    """``i * stride`` in lane *i* (``stride * (n-1)`` below 2**64)."""
    return int.from_bytes(struct.pack(f"<{n}Q", *range(0, n * stride, stride)), "little")


@functools.lru_cache(maxsize=64)  # bounds and flags: a few values, each a 4 KiB multiply saved
def splat(value: int, n: int) -> int:
    """*value* (below 2**64) in each of *n* lanes."""
    return value * ones(n)


def of(values: array) -> int:
    """An ``array('Q')`` as lanes."""
    return int.from_bytes(values.tobytes(), "little")


def is_run(x: int, n: int, first: int, stride: int) -> bool:
    """Are the *n* lanes of *x* ``first, first + stride, ...``? (*first* below 2**64.)

    *x* comes from *n* u64 values, so it is below 2**(64n); a run that would
    pass 2**64 in some lane would carry out of the top lane: it cannot match.
    """
    d = x - steps(n, stride)
    return d >= 0 and d.to_bytes(8 * n, "little") == first.to_bytes(8, "little") * n


def pack(x: int, n: int) -> bytes:
    """*n* lanes as little-endian u64 bytes."""
    return x.to_bytes(8 * n, "little")


def ge(x: int, n: int, bound: int) -> int:
    """Bit 63 set in each lane of *x* that is ``>= bound``, clear elsewhere.

    Needs every lane below 2**63 (check ``x & tops(n) == 0`` first) and
    ``0 <= bound <= 2**63``: then ``lane + 2**63 - bound`` stays below 2**64
    and its bit 63 is the answer.
    """
    return (x + splat(TOP - bound, n)) & tops(n)


def all_within(x: int, n: int, bounds: tuple[int, ...]) -> bool:
    """Does every lane lie in one of ``[b0, b1)``, ``[b2, b3)``, ... for sorted *bounds*?

    Exactly then each lane is ``>=`` an odd number of the bounds: one add per
    bound and an XOR of their bit 63s decide it for all lanes at once. Lanes
    below 2**63 and each bound in ``[0, 2**63]``, as for :func:`ge`.
    """
    odd = 0
    for bound in bounds:
        odd ^= x + splat(TOP - bound, n)
    t = tops(n)
    return odd & t == t
