"""Reset to snapshot, in process: put back only what changed since the snapshot.

The primitive snapshot fuzzers need (Nyx, kAFL): after a snapshot taken with
``resettable=True`` KVM logs the guest's writes (``KVM_MEM_LOG_DIRTY_PAGES``) and
guest memory logs pyvmm's own (:meth:`~pyvmm.memory.GuestMemory.track_host_writes`:
KVM's log cannot see stores through the host mapping). A reset, with the VM stopped,
reads and clears the log (``KVM_GET_DIRTY_LOG``), copies exactly those pages back from
the snapshot's memory file (mapped read-only: the page cache holds it once for any
number of resets), and loads the vCPU, event, timer and address-space state again.
Disks are not rolled back (a fuzzer gives its target none, or a scratch one).
"""

from __future__ import annotations

import ctypes
import mmap
import os
import time

from pyvmm.kvm.constants import MEM_LOG_DIRTY_PAGES
from pyvmm.paravirt.abi import Layout
from pyvmm.snapshot.format import Manifest, SnapshotError

PAGE = 4096


class Baseline:
    """The snapshot a VM resets to: its manifest and memory file, and the dirty log."""

    def __init__(self, machine, manifest: Manifest, fd: int) -> None:
        size = machine.memory.size
        self.manifest = manifest
        self.fd = fd
        self._mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ)
        self.view = memoryview(self._mm)
        self.npages = size // PAGE
        self.bitmap = (ctypes.c_uint64 * ((self.npages + 63) // 64))()
        self.resets = 0
        self.last_dirty = 0  # pages put back by the last reset
        self.last_reset_ns = 0

    @classmethod
    def start(cls, machine, manifest: Manifest, fd: int) -> Baseline:
        """Keep *manifest* and memory file *fd* as the baseline; log writes from now on.
        Call while the VM is paused (the snapshot's own pause)."""
        base = cls(machine, manifest, fd)
        mem = machine.memory
        machine.vm.set_user_memory_region(0, 0, mem.size, mem.host_address, MEM_LOG_DIRTY_PAGES)
        machine.vm.get_dirty_log(0, base.bitmap)  # start from a clean log
        mem.track_host_writes(True)
        return base

    def close(self) -> None:
        self.view.release()
        self._mm.close()
        os.close(self.fd)

    def dirty_pages(self, machine) -> set[int]:
        """Pages written since the snapshot or the last reset (the logs are cleared)."""
        machine.vm.get_dirty_log(0, self.bitmap)
        pages: set[int] = set()
        for word_index, word in enumerate(self.bitmap):
            while word:
                low = word & -word
                pages.add(word_index * 64 + low.bit_length() - 1)
                word ^= low
        mem = machine.memory
        if mem.host_dirty:
            pages |= mem.host_dirty
            mem.host_dirty.clear()
        # The event page is written through a long-lived view, which tracking cannot see.
        pages.add(Layout.SHARED_PAGE // PAGE)
        return {p for p in pages if p < self.npages}

    def reset(self, machine, clone_id: int) -> list[int]:
        """Roll the stopped *machine* back; returns the vCPUs to start. Raises :class:`SnapshotError`."""
        from pyvmm.snapshot.restore import Restorable, apply_snapshot

        t0 = time.monotonic_ns()
        for vcpu in machine.vcpus:
            if vcpu.started:
                vcpu.fd.complete_pending_io()  # e.g. the SHUTDOWN that stopped it: done, before new state
        pages = self.dirty_pages(machine)
        mem = machine.memory
        base = self.view
        for first, n in _runs(sorted(pages)):
            mem.write(first * PAGE, base[first * PAGE : (first + n) * PAGE])
        mem.host_dirty.clear()  # those writes were ours: the baseline, not changes
        machine.vcpus.rearm()
        restorable = Restorable("", self.manifest, -1, clone_id)
        start = apply_snapshot(machine, restorable, fresh_vcpus=False)
        if machine.address_spaces.shadow is not None:
            machine.address_spaces.shadow.flush()  # the tables in RAM changed behind KVM's shadows
        self.resets += 1
        self.last_dirty = len(pages)
        self.last_reset_ns = time.monotonic_ns() - t0
        if not start:
            raise SnapshotError("the snapshot has no running vCPU")
        return start


def _runs(pages: list[int]):
    start = prev = None
    for p in pages:
        if prev is not None and p == prev + 1:
            prev = p
            continue
        if start is not None:
            yield start, prev - start + 1
        start = prev = p
    if start is not None:
        yield start, prev - start + 1
