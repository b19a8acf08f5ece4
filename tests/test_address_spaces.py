"""The address-space manager without KVM: build spaces, then walk the tables in Python.

Pure logic over real guest memory (an anonymous mapping); the vCPU is a stand-in
whose ``kvm_run`` sregs receive the CR3 that AS_SWITCH loads.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pyvmm.kvm.constants import SYNC_X86_SREGS
from pyvmm.memory import GuestMemory, GuestMemoryError
from pyvmm.paravirt.abi import AS_USER_BASE, AsOpCode, Errno, PfError, Prot
from pyvmm.paravirt.address_spaces import AddressSpaceManager, FaultKind
from pyvmm.paravirt.dispatcher import HypercallError
from pyvmm.x86.paging import ADDR_MASK, PAGE_4K, FramePool, PageTables, Pte, identity_map
from pyvmm.x86.tablemem import TableMemory

RAM = 16 << 20
POOL = (0x10000, 0x200000)
DONATED = (0x800000, 0x400000)  # 1024 frames
VA = AS_USER_BASE + 0x1000_0000
RW = Prot.READ | Prot.WRITE | Prot.USER
RO = Prot.READ | Prot.USER
W_USER = int(PfError.WRITE | PfError.USER)
R_USER = int(PfError.USER)


def _vcpu(i: int = 0):
    sregs = SimpleNamespace(cr3=0)
    run = SimpleNamespace(
        kvm_valid_regs=SYNC_X86_SREGS, kvm_dirty_regs=0, s=SimpleNamespace(regs=SimpleNamespace(sregs=sregs))
    )
    return SimpleNamespace(id=i, fd=SimpleNamespace(run=run))


@pytest.fixture
def vm():
    mem = GuestMemory(RAM)
    pool = FramePool(TableMemory(mem, *POOL), *POOL)
    kernel = identity_map(
        pool.mem, pool, RAM, low_flags=lambda g: Pte.PRESENT if g else 0, high_flags=Pte.PRESENT | Pte.WRITABLE
    )
    m = AddressSpaceManager(mem, pool, kernel, nx=True, reserved_end=POOL[1])
    ctx = _vcpu()
    m.as_donate(ctx, *DONATED)
    yield SimpleNamespace(m=m, mem=mem, ctx=ctx, kernel=kernel, pool=pool)
    mem.close()


def _errno(fn, *args) -> Errno:
    with pytest.raises((HypercallError, GuestMemoryError)) as e:
        fn(*args)
    err = e.value.errno
    return Errno(err)


def _tables(vm, h) -> PageTables:
    return PageTables(vm.mem, None, root=vm.m.spaces[h].tables.root)


def test_new_space_shares_the_kernel_map_and_has_no_user_pages(vm):
    h = vm.m.as_create(vm.ctx)
    t = _tables(vm, h)
    assert vm.pool.owns(t.root)
    k = t.translate(0x345678)
    assert k.phys == 0x345678 and not k.user  # the kernel identity map, supervisor-only
    assert vm.mem.read_u64(t.root) == vm.mem.read_u64(vm.kernel.root)  # slot 0 shared, not copied
    assert t.translate(VA) is None
    assert t.translate(t.root) is not None and not t.translate(t.root).writable  # tables are read-only to the guest


def test_map_translations_and_permissions(vm):
    h = vm.m.as_create(vm.ctx)
    vm.m.as_call(vm.ctx, vm.m.leaves.map, h, VA, 0x300000, 3 * PAGE_4K, RW)
    vm.m.as_call(vm.ctx, vm.m.leaves.map, h, VA + 0x10000, 0x310000, PAGE_4K, Prot.READ | Prot.EXEC)
    t = _tables(vm, h)
    for i in range(3):
        tr = t.translate(VA + i * PAGE_4K + 0x10)
        assert tr.phys == 0x300010 + i * PAGE_4K and tr.user and tr.writable and not tr.executable
    text = t.translate(VA + 0x10000)
    assert not text.user and not text.writable and text.executable
    assert t.translate(VA + 3 * PAGE_4K) is None
    assert vm.m.spaces[h].stats.pages_mapped == 4


@pytest.mark.parametrize(
    ("va", "gpa", "length", "prot", "err"),
    [
        (VA + 8, 0x300000, PAGE_4K, RW, Errno.EINVAL),  # unaligned va
        (VA, 0x300008, PAGE_4K, RW, Errno.EINVAL),  # unaligned gpa
        (VA, 0x300000, 0, RW, Errno.EINVAL),  # empty
        (0x1000, 0x300000, PAGE_4K, RW, Errno.EINVAL),  # the kernel's PML4 slot
        (0x0000_8000_0000_0000, 0x300000, PAGE_4K, RW, Errno.EINVAL),  # non-canonical
        (VA, 0x300000, (1 << 64) - PAGE_4K, RW, Errno.EINVAL),  # va + len overflows
        (VA, 0x300000, PAGE_4K, Prot.WRITE, Errno.EINVAL),  # write-only
        (VA, 0x300000, PAGE_4K, 0x10 | Prot.READ, Errno.EINVAL),  # unknown bit
        (VA, RAM, PAGE_4K, RW, Errno.EFAULT),  # outside RAM
        (VA, (1 << 64) - PAGE_4K, 2 * PAGE_4K, RW, Errno.EFAULT),  # gpa + len overflows
        (VA, POOL[0], PAGE_4K, RW, Errno.EPERM),  # a page-table page, writable
        (VA, 0x1000, PAGE_4K, RO, Errno.EPERM),  # boot info: VMM-owned
        (VA, DONATED[0], PAGE_4K, RW, Errno.EPERM),  # a donated frame
    ],
)
def test_map_rejects(vm, va, gpa, length, prot, err):
    h = vm.m.as_create(vm.ctx)
    assert _errno(vm.m.as_call, vm.ctx, vm.m.leaves.map, h, va, gpa, length, prot) == err
    assert not list(vm.m.spaces[h].tables.iter_leaves(AS_USER_BASE, 1 << 47))  # nothing half-done


def test_handles(vm):
    h = vm.m.as_create(vm.ctx)
    assert _errno(vm.m.as_call, vm.ctx, vm.m.leaves.map, 99, VA, 0x300000, PAGE_4K, RW) == Errno.EBADF
    assert _errno(vm.m.as_call, vm.ctx, vm.m.leaves.map, 0, VA, 0x300000, PAGE_4K, RW) == Errno.EINVAL
    vm.m.as_call(vm.ctx, vm.m.leaves.map, h, VA, 0x300000, PAGE_4K, RW)
    assert _errno(vm.m.as_call, vm.ctx, vm.m.leaves.map, h, VA, 0x301000, PAGE_4K, RW) == Errno.EEXIST
    vm.m.as_switch(vm.ctx, h)
    assert vm.ctx.fd.run.s.regs.sregs.cr3 == vm.m.spaces[h].tables.root
    assert vm.ctx.fd.run.kvm_dirty_regs & SYNC_X86_SREGS
    assert _errno(vm.m.as_destroy, vm.ctx, h) == Errno.EBUSY
    vm.m.as_switch(vm.ctx, 0)
    assert vm.ctx.fd.run.s.regs.sregs.cr3 == vm.kernel.root
    free_before = vm.pool.available
    vm.m.as_destroy(vm.ctx, h)
    assert _errno(vm.m.as_switch, vm.ctx, h) == Errno.EBADF
    assert _errno(vm.m.as_destroy, vm.ctx, h) == Errno.EBADF
    assert vm.pool.available == free_before + 4  # root, PDPT, PD, PT back (no shadow MMU here)
    assert vm.m.stats()[h].destroyed


def test_protect_and_unmap(vm):
    h = vm.m.as_create(vm.ctx)
    vm.m.as_call(vm.ctx, vm.m.leaves.map, h, VA, 0x300000, 2 * PAGE_4K, RW)
    vm.m.as_call(vm.ctx, vm.m.leaves.protect, h, VA, PAGE_4K, RO)
    t = _tables(vm, h)
    assert not t.translate(VA).writable and t.translate(VA + PAGE_4K).writable
    vm.m.as_call(vm.ctx, vm.m.leaves.unmap, h, VA, 2 * PAGE_4K)
    assert t.translate(VA) is None and t.translate(VA + PAGE_4K) is None
    assert vm.m.spaces[h].stats.pages_mapped == 0


def test_demand_zero_one_fault_per_page(vm):
    h = vm.m.as_create(vm.ctx)
    vm.m.as_call(vm.ctx, vm.m.leaves.lazy, h, VA, 8 * PAGE_4K, RW)
    vm.mem.write(DONATED[0], b"\xff" * PAGE_4K)  # stale data the VMM must clear
    for i in range(5):
        assert vm.m.page_fault(vm.ctx, h, VA + i * PAGE_4K + 0x123, W_USER, 0) == 0
    t = _tables(vm, h)
    frames = set()
    for i in range(5):
        tr = t.translate(VA + i * PAGE_4K)
        assert tr.user and tr.writable and not tr.executable and tr.flags & Pte.VMM_FRAME
        assert vm.mem.read(tr.phys, PAGE_4K) == bytes(PAGE_4K)
        frames.add(tr.phys)
    assert len(frames) == 5 and all(DONATED[0] <= f < sum(DONATED) for f in frames)
    stats = vm.m.spaces[h].stats
    assert stats.faults[FaultKind.DEMAND_ZERO.value] == 5 and stats.pages_mapped == 5
    assert vm.m.page_fault(vm.ctx, h, VA, W_USER, 0) == 0  # already there: spurious, nothing new
    assert stats.faults[FaultKind.SPURIOUS.value] == 1 and stats.pages_mapped == 5
    assert _errno(vm.m.page_fault, vm.ctx, h, VA + 9 * PAGE_4K, R_USER, 0) == Errno.EFAULT  # outside the range
    assert stats.refused == 1


def test_fault_permissions(vm):
    h = vm.m.as_create(vm.ctx)
    vm.m.as_call(vm.ctx, vm.m.leaves.lazy, h, VA, PAGE_4K, RO)
    vm.m.as_call(vm.ctx, vm.m.leaves.map, h, VA + PAGE_4K, 0x300000, PAGE_4K, RO)
    assert _errno(vm.m.page_fault, vm.ctx, h, VA, W_USER, 0) == Errno.EFAULT  # write to a read-only lazy page
    assert vm.m.page_fault(vm.ctx, h, VA, R_USER, 0) == 0
    assert _errno(vm.m.page_fault, vm.ctx, h, VA + PAGE_4K, W_USER | PfError.PRESENT, 0) == Errno.EFAULT
    assert _errno(vm.m.page_fault, vm.ctx, h, 0x200000, R_USER | PfError.PRESENT, 0) == Errno.EFAULT  # kernel


def test_clone_is_copy_on_write(vm):
    parent = vm.m.as_create(vm.ctx)
    vm.m.as_call(vm.ctx, vm.m.leaves.lazy, parent, VA, 4 * PAGE_4K, RW)
    vm.m.as_call(vm.ctx, vm.m.leaves.map, parent, VA + 0x10000, 0x300000, PAGE_4K, Prot.READ | Prot.EXEC | Prot.USER)
    vm.m.page_fault(vm.ctx, parent, VA, W_USER, 0)
    pt = _tables(vm, parent)
    frame = pt.translate(VA).phys
    vm.mem.write(frame, b"parent data")
    child = vm.m.as_clone(vm.ctx, parent)
    ct = _tables(vm, child)
    for t in (pt, ct):
        tr = t.translate(VA)
        assert tr.phys == frame and not tr.writable and tr.flags & Pte.COW and tr.flags & Pte.SOFT_WRITE
        text = t.translate(VA + 0x10000)
        assert text.phys == 0x300000 and not text.writable and not text.flags & Pte.SOFT_WRITE
        assert t.translate(0x345000).phys == 0x345000  # the kernel part is there too
    assert vm.m.frames.refs[frame] == 2
    # The child writes: it gets a copy, the parent keeps the frame (still COW until it writes).
    vm.m.page_fault(vm.ctx, child, VA, W_USER | PfError.PRESENT, 0)
    copy = ct.translate(VA)
    assert copy.phys != frame and copy.writable and not copy.flags & Pte.COW
    assert vm.mem.read(copy.phys, 11) == b"parent data"
    vm.mem.write(copy.phys, b"child data!")
    assert vm.mem.read(frame, 11) == b"parent data"
    # The parent, the last sharer, writes: no copy, the page just becomes writable.
    vm.m.page_fault(vm.ctx, parent, VA, W_USER | PfError.PRESENT, 0)
    assert pt.translate(VA).phys == frame and pt.translate(VA).writable
    assert vm.m.spaces[child].stats.faults[FaultKind.COW_COPY.value] == 1
    assert vm.m.spaces[parent].stats.faults[FaultKind.COW_REUSE.value] == 1
    # Text stays read-only in both: a write there is refused, COW or not.
    assert _errno(vm.m.page_fault, vm.ctx, child, VA + 0x10000, W_USER | PfError.PRESENT, 0) == Errno.EFAULT
    # Lazy ranges are inherited.
    vm.m.page_fault(vm.ctx, child, VA + PAGE_4K, W_USER, 0)
    assert ct.translate(VA + PAGE_4K).writable and pt.translate(VA + PAGE_4K) is None


def test_batch_results_and_first_failure(vm):
    h = vm.m.as_create(vm.ctx)
    ops_gpa = 0x400000
    entries = [
        (AsOpCode.MAP, RW, VA, 0x300000, PAGE_4K),
        (AsOpCode.MAP, RW, VA + PAGE_4K, 0x301000, PAGE_4K),  # merges with the first
        (AsOpCode.LAZY, RW, VA + 0x10000, 0, 0x4000),
        (AsOpCode.MAP, RW, VA + 0x20000, RAM, PAGE_4K),  # fails: outside RAM
        (AsOpCode.UNMAP, 0, VA, 0, PAGE_4K),  # not run
    ]
    import struct

    vm.mem.write(ops_gpa, b"".join(struct.pack("<IIQQQq", *e, 77) for e in entries))
    assert vm.m.as_batch(vm.ctx, h, ops_gpa, len(entries)) == 3
    results = [struct.unpack_from("<q", vm.mem.read(ops_gpa + 40 * i + 32, 8))[0] for i in range(5)]
    assert results == [0, 0, 0, -Errno.EFAULT, 77]
    t = _tables(vm, h)
    assert t.translate(VA).phys == 0x300000 and t.translate(VA + PAGE_4K).phys == 0x301000
    assert _errno(vm.m.as_batch, vm.ctx, h, POOL[0], 1) == Errno.EFAULT  # the array in VMM pages
    assert _errno(vm.m.as_batch, vm.ctx, h, ops_gpa, 100000) == Errno.E2BIG


def test_pager_callback(vm):
    h = vm.m.as_create(vm.ctx)
    calls = []

    def pager(handle, va):
        calls.append((handle, va))
        return b"from the host" if va == VA else None

    vm.m.add_pager(VA, 2 * PAGE_4K, pager)
    vm.m.page_fault(vm.ctx, h, VA + 5, R_USER, 0)
    tr = _tables(vm, h).translate(VA)
    assert vm.mem.read(tr.phys, 13) == b"from the host" and not tr.writable
    assert _errno(vm.m.page_fault, vm.ctx, h, VA + PAGE_4K, R_USER, 0) == Errno.EFAULT  # the pager said no
    assert _errno(vm.m.page_fault, vm.ctx, h, VA, W_USER | PfError.PRESENT, 0) == Errno.EFAULT  # read-only
    assert calls == [(h, VA), (h, VA + PAGE_4K)]
    assert vm.m.spaces[h].stats.faults[FaultKind.PAGER.value] == 1


def test_exhaustion_is_enomem_not_a_crash(vm):
    handles = []
    with pytest.raises(HypercallError) as e:
        while True:
            handles.append(vm.m.as_create(vm.ctx))
    assert e.value.errno == Errno.ENOMEM and vm.pool.available == 0
    vm.m.as_destroy(vm.ctx, handles.pop())
    h = vm.m.as_create(vm.ctx)  # one root fits again...
    # ...tables do not:
    assert _errno(vm.m.as_call, vm.ctx, vm.m.leaves.map, h, VA, 0x300000, PAGE_4K, RW) == Errno.ENOMEM
    assert _tables(vm, h).translate(VA) is None


def test_donated_frames_run_out(vm):
    h = vm.m.as_create(vm.ctx)
    vm.m.as_call(vm.ctx, vm.m.leaves.lazy, h, VA, 2048 * PAGE_4K, RW)
    for i in range(DONATED[1] // PAGE_4K):
        vm.m.page_fault(vm.ctx, h, VA + i * PAGE_4K, W_USER, 0)
    assert _errno(vm.m.page_fault, vm.ctx, h, VA + 1024 * PAGE_4K, W_USER, 0) == Errno.ENOMEM
    vm.m.as_call(vm.ctx, vm.m.leaves.unmap, h, VA, PAGE_4K)  # gives a frame back
    assert vm.m.page_fault(vm.ctx, h, VA + 1024 * PAGE_4K, W_USER, 0) == 0
    assert _tables(vm, h).translate(VA + 1024 * PAGE_4K).phys & ADDR_MASK >= DONATED[0]


def test_batch_of_scattered_pages_is_one_pass_with_exact_failure_index(vm):
    import struct

    h = vm.m.as_create(vm.ctx)
    ops_gpa = 0x400000
    n = 64
    entries = [(AsOpCode.MAP, RW, VA + i * PAGE_4K, 0x300000 + (n - 1 - i) * PAGE_4K, PAGE_4K) for i in range(n)]
    entries[40] = (AsOpCode.MAP, RW, VA + 3 * PAGE_4K, 0x380000, PAGE_4K)  # the same va as entry 3
    vm.mem.write(ops_gpa, b"".join(struct.pack("<IIQQQq", *e, 77) for e in entries))
    assert vm.m.as_batch(vm.ctx, h, ops_gpa, n) == 40
    assert struct.unpack_from("<q", vm.mem.read(ops_gpa + 40 * 40 + 32, 8))[0] == -Errno.EEXIST
    t = _tables(vm, h)
    assert [t.translate(VA + i * PAGE_4K).phys for i in range(40)] == [
        0x300000 + (n - 1 - i) * PAGE_4K for i in range(40)
    ]
    assert t.translate(VA + 41 * PAGE_4K) is None
    vm.m.as_call(vm.ctx, vm.m.leaves.unmap, h, VA, n * PAGE_4K)
    entries[40] = (AsOpCode.MAP, RW, VA + 40 * PAGE_4K, 0x300000 + 23 * PAGE_4K, PAGE_4K)
    vm.mem.write(ops_gpa, b"".join(struct.pack("<IIQQQq", *e, 77) for e in entries))
    assert vm.m.as_batch(vm.ctx, h, ops_gpa, n) == n
    assert t.translate(VA + (n - 1) * PAGE_4K).phys == 0x300000
    assert vm.m.spaces[h].stats.pages_mapped == n


# One bad entry at index 300 of a 512-entry one-page batch (contiguous va, frames in
# reverse order: the whole-column path): the batch stops exactly there with that errno.
_BAD_ENTRY = {
    "misaligned frame": (lambda e: (e[0], e[1], e[2], e[3] | 0x10, e[4]), Errno.EINVAL),
    "frame outside RAM": (lambda e: (e[0], e[1], e[2], RAM, e[4]), Errno.EFAULT),
    "frame far outside RAM": (lambda e: (e[0], e[1], e[2], 1 << 63, e[4]), Errno.EFAULT),
    "page-table page": (lambda e: (e[0], e[1], e[2], POOL[0] + 0x3000, e[4]), Errno.EPERM),
    "donated frame": (lambda e: (e[0], e[1], e[2], DONATED[0] + 0x5000, e[4]), Errno.EPERM),
    "last donated frame": (lambda e: (e[0], e[1], e[2], sum(DONATED) - PAGE_4K, e[4]), Errno.EPERM),
    "va twice": (lambda e: (e[0], e[1], VA, e[3], e[4]), Errno.EEXIST),
    "va outside the window": (lambda e: (e[0], e[1], 1 << 47, e[3], e[4]), Errno.EINVAL),
    "bad prot": (lambda e: (e[0], Prot.WRITE, e[2], e[3], e[4]), Errno.EINVAL),
}


@pytest.mark.parametrize("bad", sorted(_BAD_ENTRY))
def test_whole_column_batch_stops_at_the_exact_entry(vm, bad):
    import struct

    h = vm.m.as_create(vm.ctx)
    ops_gpa, n, k = 0xC00000, 512, 300
    frames = 0x300000  # 512 frames below the donated ones
    entries = [(AsOpCode.MAP, RW, VA + i * PAGE_4K, frames + (n - 1 - i) * PAGE_4K, PAGE_4K) for i in range(n)]
    change, errno = _BAD_ENTRY[bad]
    entries[k] = change(entries[k])
    vm.mem.write(ops_gpa, b"".join(struct.pack("<IIQQQq", *e, 77) for e in entries))
    assert vm.m.as_batch(vm.ctx, h, ops_gpa, n) == k
    results = [struct.unpack_from("<q", vm.mem.read(ops_gpa + 40 * i + 32, 8))[0] for i in range(n)]
    assert results == [0] * k + [-errno] + [77] * (n - k - 1)
    t = _tables(vm, h)
    assert all(t.translate(VA + i * PAGE_4K).phys == frames + (n - 1 - i) * PAGE_4K for i in range(k))
    assert t.translate(VA + (k + 1) * PAGE_4K) is None
    assert vm.m.spaces[h].stats.pages_mapped == k


def test_whole_column_batch_over_mapped_page_and_scattered_order(vm):
    import struct

    h = vm.m.as_create(vm.ctx)
    ops_gpa, n = 0xC00000, 512
    vm.m.as_call(vm.ctx, vm.m.leaves.map, h, VA + 200 * PAGE_4K, 0x7FF000, PAGE_4K, RO)
    entries = [(AsOpCode.MAP, RW, VA + i * PAGE_4K, 0x300000 + i * PAGE_4K, PAGE_4K) for i in range(n)]
    vm.mem.write(ops_gpa, b"".join(struct.pack("<IIQQQq", *e, 0) for e in entries))
    assert vm.m.as_batch(vm.ctx, h, ops_gpa, n) == 200  # entry 200 finds its page mapped
    assert struct.unpack_from("<q", vm.mem.read(ops_gpa + 40 * 200 + 32, 8))[0] == -Errno.EEXIST
    vm.m.as_call(vm.ctx, vm.m.leaves.unmap, h, VA, 1 << 30)
    # The same pages in descending va order, spanning two page tables: the scattered path.
    base = VA + 300 * PAGE_4K
    entries = [(AsOpCode.MAP, RW, base + (n - 1 - i) * PAGE_4K, 0x300000 + i * PAGE_4K, PAGE_4K) for i in range(n)]
    vm.mem.write(ops_gpa, b"".join(struct.pack("<IIQQQq", *e, 0) for e in entries))
    assert vm.m.as_batch(vm.ctx, h, ops_gpa, n) == n
    t = _tables(vm, h)
    for i in range(n):
        tr = t.translate(base + (n - 1 - i) * PAGE_4K)
        assert tr.phys == 0x300000 + i * PAGE_4K and tr.writable and tr.user and not tr.executable
    assert vm.m.spaces[h].stats.pages_mapped == n
    vm.m.as_call(vm.ctx, vm.m.leaves.unmap, h, VA, 1 << 30)
    assert vm.m.spaces[h].stats.pages_mapped == 0 and not list(t.iter_leaves(VA, VA + (1 << 30)))


def _pt_of(vm, h, va) -> int:
    """The guest-physical page table holding *va*'s leaf in space *h*."""
    return vm.m.spaces[h].tables.leaf_entry_addr(va) & ~0xFFF


def test_tables_garbled_in_guest_ram_are_not_trusted(vm):
    """A CPL0 guest can write its pool pages (CR0.WP clear): pyvmm reads its own copy."""
    h = vm.m.as_create(vm.ctx)
    vm.m.as_call(vm.ctx, vm.m.leaves.map, h, VA, 0x300000, PAGE_4K, RW)
    vm.m.as_call(vm.ctx, vm.m.leaves.lazy, h, VA + PAGE_4K, 4 * PAGE_4K, RW)
    for i in range(1, 5):
        vm.m.page_fault(vm.ctx, h, VA + i * PAGE_4K, W_USER, 0)
    free_before = sorted(vm.m.frames.free)
    pt = _pt_of(vm, h, VA)
    soft = int(Pte.PRESENT | Pte.COW | Pte.VMM_FRAME)
    garbage = [(0x5000 + (i << 12)) | soft for i in range(512)]  # claims on frames pyvmm never shared
    vm.mem.write(pt, b"".join(e.to_bytes(8, "little") for e in garbage))
    root = vm.m.spaces[h].tables.root
    vm.mem.write_u64(root + 8 * 2, 0x300000 | int(Pte.PRESENT))  # a table pyvmm never made
    vm.m.as_call(vm.ctx, vm.m.leaves.unmap, h, VA, 1 << 30)
    assert vm.m.as_destroy(vm.ctx, h) == 0
    # The four demand-zero frames came back, and nothing else.
    assert vm.m.frames.in_use == 0 and not vm.m.refs.cow
    assert sorted(vm.m.frames.free) == sorted(free_before + [DONATED[0] + i * PAGE_4K for i in range(4)])
    # A snapshot makes RAM agree with pyvmm's copy again.
    state = vm.m.export_state()
    assert vm.m.tables.repair_guest_copy() == 0 and state["frames"]["total"] == DONATED[1] // PAGE_4K


def test_donate_refuses_exactly_the_mapped_frames(vm):
    h = vm.m.as_create(vm.ctx)
    frame = 0xD00000
    vm.m.as_call(vm.ctx, vm.m.leaves.map, h, VA, frame, PAGE_4K, RW)
    c = vm.m.as_clone(vm.ctx, h)  # a COW leaf of it, too
    assert _errno(vm.m.as_donate, vm.ctx, frame, PAGE_4K) == Errno.EBUSY
    assert _errno(vm.m.as_donate, vm.ctx, frame - PAGE_4K, 2 * PAGE_4K) == Errno.EBUSY
    assert vm.m.as_donate(vm.ctx, frame + PAGE_4K, PAGE_4K) == 0  # its neighbour is free
    vm.m.as_call(vm.ctx, vm.m.leaves.unmap, h, VA, PAGE_4K)
    assert _errno(vm.m.as_donate, vm.ctx, frame, PAGE_4K) == Errno.EBUSY  # the clone still maps it
    vm.m.as_destroy(vm.ctx, c)  # its freed tables keep stale entries in RAM: not in pyvmm's copy
    assert vm.m.as_donate(vm.ctx, frame, PAGE_4K) == 0
    assert _errno(vm.m.as_donate, vm.ctx, frame, PAGE_4K) == Errno.EPERM  # now the VMM's


def test_adjacent_donations_join_and_disjoint_ones_are_bounded(vm):
    from pyvmm.paravirt.address_spaces.policy import MAX_DONATIONS

    start = 0xD00000
    for i in range(8):  # adjacent: one range
        vm.m.as_donate(vm.ctx, start + i * PAGE_4K, PAGE_4K)
    assert (start, start + 8 * PAGE_4K) in vm.m.frames.ranges
    refused = None
    for i in range(MAX_DONATIONS + 1):  # every other page: disjoint
        try:
            vm.m.as_donate(vm.ctx, start + (16 + 2 * i) * PAGE_4K, PAGE_4K)
        except HypercallError as e:
            refused = e.errno
            break
    assert refused == Errno.ENOSPC and len(vm.m.frames.ranges) == MAX_DONATIONS


def test_batch_writes_back_only_the_result_fields(vm):
    """Another vCPU may change the array while pyvmm runs it: only ``result`` is pyvmm's."""
    import struct

    h = vm.m.as_create(vm.ctx)
    ops_gpa, n = 0x400000, 8
    entries = [(AsOpCode.MAP, RW, VA + i * PAGE_4K, 0x300000 + i * PAGE_4K, PAGE_4K, 77) for i in range(n)]
    vm.mem.write(ops_gpa, b"".join(struct.pack("<IIQQQq", *e) for e in entries))
    read = vm.mem.read

    def read_then_guest_writes(gpa, length):
        data = read(gpa, length)
        if gpa == ops_gpa:  # the guest reuses entry 2's va field as soon as pyvmm has read it
            vm.mem.write_u64(ops_gpa + 2 * 40 + 8, 0xDEAD000)
        return data

    vm.mem.read = read_then_guest_writes
    assert vm.m.as_batch(vm.ctx, h, ops_gpa, n) == n
    vm.mem.read = read
    after = [struct.unpack_from("<IIQQQq", vm.mem.read(ops_gpa + 40 * i, 40)) for i in range(n)]
    assert [e[5] for e in after] == [0] * n
    assert after[2][2] == 0xDEAD000  # the guest's write survived


def test_guest_growable_caches_and_stats_are_bounded(vm):
    from pyvmm.paravirt.address_spaces.policy import RETAINED_STATS
    from pyvmm.x86 import lanes, paging

    for n in range(1, 4097):
        lanes.ones(n)
        paging.run_entries(0, n)
    assert lanes.ones.cache_info().currsize <= 64 and paging._lanes.cache_info().currsize <= 64
    for _ in range(RETAINED_STATS + 300):
        vm.m.as_destroy(vm.ctx, vm.m.as_create(vm.ctx))
    assert len(vm.m.stats()) == RETAINED_STATS
    assert f"{RETAINED_STATS + 300} created" in vm.m.format_stats()


def test_snapshot_state_round_trip_keeps_low_window_spaces_and_tables(vm):
    """Regression: the snapshot state did not record a space's base, so a restored
    low-window space (pyvmm exec) refused every call below 512 GiB."""
    from pyvmm.paravirt.abi import AS_LOW_BASE, AsCreateFlag

    low = vm.m.as_create(vm.ctx, int(AsCreateFlag.LOW_WINDOW))
    vm.m.as_call(vm.ctx, vm.m.leaves.map, low, AS_LOW_BASE, 0x300000, PAGE_4K, RW)
    state = vm.m.export_state()
    saved_pool = vm.mem.read(POOL[0], POOL[1] - POOL[0])  # what a snapshot saves of RAM
    vm.m.as_call(vm.ctx, vm.m.leaves.unmap, low, AS_LOW_BASE, PAGE_4K)  # changes after it
    vm.m.as_destroy(vm.ctx, vm.m.as_create(vm.ctx))
    vm.mem.write(POOL[0], saved_pool)  # a reset writes RAM back, then loads the state
    vm.m.import_state(state)
    assert vm.m.spaces[low].base == AS_LOW_BASE
    assert _tables(vm, low).translate(AS_LOW_BASE).phys == 0x300000
    vm.m.as_call(vm.ctx, vm.m.leaves.unmap, low, AS_LOW_BASE, PAGE_4K)  # EINVAL before the fix
    assert _tables(vm, low).translate(AS_LOW_BASE) is None
    assert list(vm.m.stats()) == [low]
