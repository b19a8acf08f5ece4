"""Keeping KVM's shadow page tables coherent with page tables the VMM edits.

Where KVM shadows the guest's page tables in software (no EPT/NPT: KVM's PVM
backend, or ``ept=0``), it write-protects every guest page-table
page *from the guest* and trusts that nothing else changes them. The VMM's
own writes, through its mapping of guest RAM, are invisible to it: an entry
the VMM narrows or removes keeps working at CPL3 (seen on PVM: a task kept
reading and writing a destroyed space's frames through a reused page-table
frame), and a CR3 reload does not help, because shadow pages are looked up by
the guest frame number and only re-read when KVM saw a write.

KVM drops every shadow page when a memory slot is deleted (the
``KVM_X86_QUIRK_SLOT_ZAP_ALL`` behaviour, the default for ordinary VMs), so
:class:`ShadowMmu` keeps one 4 KiB scratch slot outside guest RAM and deletes
and re-adds it to flush. That costs about 0.2 ms plus the re-faults, so the
address-space manager calls it only when a translation was narrowed or
removed, or page-table frames must be reused; adding translations never needs it.
"""

from __future__ import annotations

import ctypes
import mmap
import os

from pyvmm.kvm.vm import Vm

SCRATCH_SLOT = 1
SCRATCH_SIZE = 4096


def shadow_paging_in_use() -> bool:
    """True where KVM shadows guest page tables (PVM, or EPT/NPT off)."""
    if os.path.isdir("/sys/module/kvm_pvm"):
        return True
    for param, off in (("/sys/module/kvm_intel/parameters/ept", "N"), ("/sys/module/kvm_amd/parameters/npt", "0")):
        try:
            with open(param) as f:
                if f.read().strip() in (off, "N", "0"):
                    return True
        except OSError:
            continue
    return False


class ShadowMmu:
    """A scratch memory slot whose deletion makes KVM drop all shadow page tables."""

    def __init__(self, vm: Vm, gpa: int) -> None:
        self.vm = vm
        self.gpa = gpa
        self._mm = mmap.mmap(-1, SCRATCH_SIZE)
        self._anchor = ctypes.c_char.from_buffer(self._mm)
        self._host = ctypes.addressof(self._anchor)
        self.flushes = 0
        self._registered = False  # added on the first flush: most VMs never need one

    def flush(self) -> None:
        """Drop every shadow page (all vCPUs reload their roots before running again)."""
        if not self._registered:
            self.vm.set_user_memory_region(SCRATCH_SLOT, self.gpa, SCRATCH_SIZE, self._host)
            self._registered = True
        self.vm.set_user_memory_region(SCRATCH_SLOT, self.gpa, 0, self._host)
        self.vm.set_user_memory_region(SCRATCH_SLOT, self.gpa, SCRATCH_SIZE, self._host)
        self.flushes += 1

    def close(self) -> None:
        """Delete the slot (if the VM is still open) and unmap the page."""
        if self._mm is None:
            return
        if self._registered and self.vm.fd >= 0:
            try:
                self.vm.set_user_memory_region(SCRATCH_SLOT, self.gpa, 0, self._host)
            except OSError:
                pass
        del self._anchor
        self._mm.close()
        self._mm = None
