"""Page-table builder: build in memory, then walk the tables in Python like the MMU."""

from __future__ import annotations

import struct

import pytest

from pyvmm.memory import GuestMemory
from pyvmm.x86.paging import PAGE_2M, PAGE_4K, FramePool, PageTables, PagingError, Pte, identity_map

SIZE = 8 << 20


@pytest.fixture
def mem():
    m = GuestMemory(SIZE)
    yield m
    m.close()


def _low(gpa):
    if gpa == 0:
        return 0
    if gpa == 0x4000:
        return Pte.PRESENT | Pte.WRITABLE | Pte.NO_EXECUTE
    return Pte.PRESENT | Pte.NO_EXECUTE


def test_identity_map_translations_and_permissions(mem):
    pool = FramePool(mem, 0x10000, 0x20000)
    pt = identity_map(mem, pool, SIZE, low_flags=_low, high_flags=Pte.PRESENT | Pte.WRITABLE)
    assert pt.translate(0) is None  # NULL page not present
    ro = pt.translate(0x1234)
    assert ro.phys == 0x1234 and ro.page_size == PAGE_4K and not ro.writable and not ro.executable
    rw = pt.translate(0x4008)
    assert rw.phys == 0x4008 and rw.writable
    high = pt.translate(0x345678)
    assert high.phys == 0x345678 and high.page_size == PAGE_2M and high.writable and high.executable
    assert not high.user
    assert pt.translate(SIZE) is None  # nothing beyond RAM
    assert pt.translate(SIZE - 1).phys == SIZE - 1
    # The tables themselves live in the pool and are mapped read-only.
    assert pool.owns(pt.root) and not pt.translate(pt.root).writable


def test_map_unmap_4k(mem):
    pool = FramePool(mem, 0x10000, 0x20000)
    pt = PageTables(mem, pool)
    va = 0x0000_4000_0000_1000
    pt.map_page(va, 0x300000, Pte.PRESENT | Pte.USER)
    t = pt.translate(va + 0x10)
    assert t.phys == 0x300010 and t.user and not t.writable
    assert pt.unmap_page(va)
    assert pt.translate(va) is None
    assert not pt.unmap_page(va)


def test_rejects_unaligned_and_exhaustion(mem):
    pool = FramePool(mem, 0x10000, 0x12000)  # two frames
    pt = PageTables(mem, pool)
    with pytest.raises(PagingError):
        pt.map_page(0x1001, 0x2000, Pte.PRESENT)
    with pytest.raises(PagingError):
        pt.map_page(0x1000, 0x2000, Pte.PRESENT)  # needs PDPT, PD, PT: pool exhausted


def test_read_only_view_cannot_map(mem):
    pool = FramePool(mem, 0x10000, 0x20000)
    built = PageTables(mem, pool)
    view = PageTables(mem, None, root=built.root)
    with pytest.raises(PagingError):
        view.map_page(0x1000, 0x1000, Pte.PRESENT)


def test_run_entries_and_any_present():
    from pyvmm.x86.paging import any_present, run_entries

    raw = run_entries(0x300000 | 7, 4)
    assert struct.unpack("<4Q", raw) == (0x300007, 0x301007, 0x302007, 0x303007)
    nx = run_entries(0x300000 | 1 | (1 << 63), 2)
    assert struct.unpack("<2Q", nx) == (0x300001 | 1 << 63, 0x301001 | 1 << 63)
    assert not any_present(bytes(8 * 5))
    assert any_present(bytes(8 * 4) + struct.pack("<Q", 0x1001))


def test_range_walks(mem):
    pool = FramePool(mem, 0x10000, 0x40000)
    pt = PageTables(mem, pool)
    base = 0x0000_0080_0000_0000
    assert pt.missing_tables(base, base + PAGE_4K) == 3  # PDPT, PD, PT
    assert pt.missing_tables(base, base + 2 * PAGE_2M) == 4  # two PTs
    pt.map_page(base + 0x5000, 0x300000, Pte.PRESENT | Pte.USER)
    pt.map_page(base + PAGE_2M, 0x301000, Pte.PRESENT)
    assert pt.missing_tables(base, base + 2 * PAGE_2M) == 0
    assert not pt.any_present(base, base + 0x5000)
    assert pt.any_present(base, base + 0x6000)
    assert not pt.any_present(base + (1 << 39), 1 << 46)  # absent subtrees are skipped whole
    leaves = [(va, entry & ~0xFFF) for va, _, entry in pt.iter_leaves(base, base + (1 << 30))]
    assert leaves == [(base + 0x5000, 0x300000 | 0), (base + PAGE_2M, 0x301000)]
    assert len(pt.table_frames(range(1, 256))) == 4  # PDPT, PD, two PTs
