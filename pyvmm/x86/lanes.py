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

TOP = 1 << 63
# Bounded caches: *n* is guest-chosen (a batch's count, up to 4096: a 32 KiB int), so an
# unbounded cache keyed by it let a guest grow host memory by cycling counts. 64 entries
# per helper hold at most ~2 MiB each; a miss costs one pack (~20 µs for 4096 lanes).
_CACHED = 64


def pattern(value: int, n: int) -> int:
    """*value* (below 2**64) in each of *n* lanes, uncached: for one-off whole-pool scans."""
    return int.from_bytes(value.to_bytes(8, "little") * n, "little")


@functools.lru_cache(maxsize=_CACHED)
def ones(n: int) -> int:
    """1 in each of *n* lanes."""
    return pattern(1, n)


@functools.lru_cache(maxsize=_CACHED)
def tops(n: int) -> int:
    """Bit 63 in each of *n* lanes."""
    return ones(n) << 63


@functools.lru_cache(maxsize=_CACHED)  # bounds and flags: a few values, each a 4 KiB multiply saved
def splat(value: int, n: int) -> int:
    """*value* (below 2**64) in each of *n* lanes."""
    return value * ones(n)


def pack(x: int, n: int) -> bytes:
    """*n* lanes as little-endian u64 bytes."""
    return x.to_bytes(8 * n, "little")


def all_within(x: int, n: int, bounds: tuple[int, ...]) -> bool:
    """Does every lane lie in one of ``[b0, b1)``, ``[b2, b3)``, ... for sorted *bounds* (an even count)?

    Exactly then each lane is ``>=`` an odd number of the bounds. Needs every
    lane below 2**63 (check ``x & tops(n) == 0`` first) and each bound in
    ``[0, 2**63]``: then ``lane + 2**63 - bound`` stays below 2**64 and its
    bit 63 says ``lane >= bound``; one add per bound and an XOR of them decide
    it for all lanes at once.
    """
    odd = 0
    for bound in bounds:
        odd ^= x + splat(TOP - bound, n)
    t = tops(n)
    return odd & t == t
