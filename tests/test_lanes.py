"""u64 lanes in one big int (pyvmm.x86.lanes) against the obvious per-value loop."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from pyvmm.x86 import lanes

_BELOW_TOP = st.integers(0, lanes.TOP - 1)
_BOUND = st.integers(0, lanes.TOP)


def _lanes(values: list[int]) -> int:
    return int.from_bytes(struct.pack(f"<{len(values)}Q", *values), "little")


@given(st.lists(_BELOW_TOP, min_size=1, max_size=64), st.lists(st.tuples(_BOUND, _BOUND), max_size=4))
def test_all_within_is_membership_in_the_bounded_intervals(values, pairs):
    bounds = sorted(b for pair in pairs for b in pair)
    intervals = list(zip(bounds[0::2], bounds[1::2], strict=False))
    want = all(any(lo <= v < hi for lo, hi in intervals) for v in values)
    assert lanes.all_within(_lanes(values), len(values), tuple(bounds)) == want


def test_all_within_edges():
    n = 3
    assert lanes.all_within(_lanes([0x1000, 0x2000, 0x2FFF]), n, (0x1000, 0x3000))
    assert not lanes.all_within(_lanes([0x1000, 0x3000, 0x2000]), n, (0x1000, 0x3000))  # hi is excluded
    assert not lanes.all_within(_lanes([0x1000, 0x1800, 0x2000]), n, (0x1000, 0x1800, 0x1900, 0x3000))  # a hole
    assert lanes.all_within(_lanes([0x1000, 0x1900, 0x2000]), n, (0x1000, 0x1800, 0x1900, 0x3000))
    assert not lanes.all_within(_lanes([5, 5, 5]), n, ())


def test_splat_pack_tops():
    assert lanes.pack(lanes.splat(0x1234, 3), 3) == struct.pack("<3Q", 0x1234, 0x1234, 0x1234)
    assert lanes.pack(lanes.tops(2), 2) == struct.pack("<2Q", 1 << 63, 1 << 63)
