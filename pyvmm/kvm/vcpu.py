"""A KVM vCPU handle (rust-vmm's ``VcpuFd``) and its mapped ``kvm_run`` page."""

from __future__ import annotations

import errno
import mmap
import os
from typing import TYPE_CHECKING

from pyvmm.kvm import structs as s
from pyvmm.kvm._fd import IoctlFd
from pyvmm.kvm._libc import get_errno, ioctl_int, ioctl_ptr
from pyvmm.kvm.constants import SYNC_X86_REGS, Ioctl
from pyvmm.kvm.errors import KvmError

if TYPE_CHECKING:
    from pyvmm.kvm.exits import VcpuExit


class VcpuFd(IoctlFd):
    """One vCPU file descriptor plus its shared ``kvm_run`` page (no link to its VM).

    ``run`` is the ctypes view of the page: after ``KVM_RUN`` returns (the run
    loop, :mod:`pyvmm.loop`, issues it), read the exit from it (or call
    :meth:`exit_info` for a typed value). With sync regs enabled
    (:meth:`enable_sync_regs`) the general registers arrive in ``run.s.regs.regs``
    on every exit with no extra ioctl; write them back by changing them and
    calling :meth:`mark_regs_dirty`.
    """

    def __init__(self, fd: int, vcpu_id: int, mmap_size: int) -> None:
        self.fd = fd
        self.id = vcpu_id
        self._mm = mmap.mmap(fd, mmap_size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self.run_bytes = memoryview(self._mm)
        self.run = s.KvmRun.from_buffer(self._mm)
        # A bound reference to the sync-regs block: the hot path reads it.
        self.sync_regs = self.run.s.regs.regs

    # -- plumbing ----------------------------------------------------------
    def close(self) -> None:
        if self.fd < 0:
            return
        # Drop every export of the mapping before closing it.
        self.sync_regs = None
        self.run = None
        self.run_bytes.release()
        try:
            self._mm.close()
        except BufferError:
            pass  # a view is still alive somewhere: the page is unmapped when it goes

        os.close(self.fd)
        self.fd = -1

    # -- running -----------------------------------------------------------
    def exit_info(self) -> VcpuExit:
        """The last exit as a typed value."""
        from pyvmm.kvm.exits import decode_exit  # slow exits only: keep it off the boot path

        return decode_exit(self.run, self.run_bytes)

    def enable_sync_regs(self) -> None:
        """Ask KVM to publish the general registers in ``kvm_run`` on every exit."""
        self.run.kvm_valid_regs = SYNC_X86_REGS

    def mark_regs_dirty(self) -> None:
        """Make the next ``KVM_RUN`` load ``run.s.regs.regs`` into the vCPU. ORs: another
        dirty bit set meanwhile (a handler's sregs, see ``load_cr3``) must survive."""
        self.run.kvm_dirty_regs |= SYNC_X86_REGS

    # -- state -------------------------------------------------------------
    def get_regs(self) -> s.KvmRegs:
        regs = s.KvmRegs()
        self._ioctl_struct(Ioctl.GET_REGS, regs)
        return regs

    def set_regs(self, regs: s.KvmRegs) -> None:
        self._ioctl_struct(Ioctl.SET_REGS, regs)

    def get_sregs(self) -> s.KvmSregs:
        sregs = s.KvmSregs()
        self._ioctl_struct(Ioctl.GET_SREGS, sregs)
        return sregs

    def set_sregs(self, sregs: s.KvmSregs) -> None:
        self._ioctl_struct(Ioctl.SET_SREGS, sregs)

    def get_fpu(self) -> s.KvmFpu:
        fpu = s.KvmFpu()
        self._ioctl_struct(Ioctl.GET_FPU, fpu)
        return fpu

    def set_fpu(self, fpu: s.KvmFpu) -> None:
        self._ioctl_struct(Ioctl.SET_FPU, fpu)

    # What a snapshot saves besides regs/sregs/MSRs (pyvmm.snapshot.vcpustate), as raw structs.
    def get_mp_state(self) -> s.KvmMpState:
        return self._get(Ioctl.GET_MP_STATE, s.KvmMpState)

    def set_mp_state(self, state: s.KvmMpState) -> None:
        self._ioctl_struct(Ioctl.SET_MP_STATE, state)

    def get_lapic(self) -> s.KvmLapicState:
        """``KVM_GET_LAPIC``: the in-kernel local APIC's registers (``--hw-api`` VMs)."""
        return self._get(Ioctl.GET_LAPIC, s.KvmLapicState)

    def stats_fd(self) -> int:
        """``KVM_GET_STATS_FD``: a new fd of this vCPU's binary statistics (:mod:`pyvmm.kvm.stats`)."""
        return self._ioctl(Ioctl.GET_STATS_FD, 0)

    def get_xsave(self) -> s.KvmXsave:
        return self._get(Ioctl.GET_XSAVE, s.KvmXsave)

    def set_xsave(self, xsave: s.KvmXsave) -> None:
        self._ioctl_struct(Ioctl.SET_XSAVE, xsave)

    def get_xcrs(self) -> s.KvmXcrs:
        return self._get(Ioctl.GET_XCRS, s.KvmXcrs)

    def set_xcrs(self, xcrs: s.KvmXcrs) -> None:
        self._ioctl_struct(Ioctl.SET_XCRS, xcrs)

    def get_debugregs(self) -> s.KvmDebugregs:
        return self._get(Ioctl.GET_DEBUGREGS, s.KvmDebugregs)

    def set_debugregs(self, regs: s.KvmDebugregs) -> None:
        self._ioctl_struct(Ioctl.SET_DEBUGREGS, regs)

    def get_vcpu_events(self) -> s.KvmVcpuEvents:
        return self._get(Ioctl.GET_VCPU_EVENTS, s.KvmVcpuEvents)

    def set_vcpu_events(self, events: s.KvmVcpuEvents) -> None:
        self._ioctl_struct(Ioctl.SET_VCPU_EVENTS, events)

    def get_cpuid2(self, max_entries: int = 256) -> list[s.KvmCpuidEntry2]:
        """The CPUID entries given with :meth:`set_cpuid2`."""
        buf = s.cpuid2_type(max_entries)()
        buf.nent = max_entries
        self._ioctl_struct(Ioctl.GET_CPUID2, buf)
        return [s.KvmCpuidEntry2.from_buffer_copy(buf.entries[i]) for i in range(buf.nent)]

    def complete_pending_io(self) -> None:
        """``KVM_RUN`` with ``immediate_exit``: KVM finishes the exit userspace was serving
        (a PIO ``out`` whose ``rip`` is not advanced yet, on VT-x/AMD-V) and returns
        ``EINTR`` without running a guest instruction. After it the state ``KVM_GET_*``
        reports is the consistent one a snapshot may save (KVM's API docs, "the
        corresponding operations are complete ... only after userspace has re-entered")."""
        run = self.run
        run.immediate_exit = 1
        try:
            if ioctl_int(self.fd, Ioctl.RUN, 0) < 0:
                err = get_errno()
                if err not in (errno.EINTR, errno.EAGAIN):
                    raise KvmError("KVM_RUN", err)
        finally:
            run.immediate_exit = 0

    def _get(self, req: Ioctl, ctype):
        obj = ctype()
        self._ioctl_struct(req, obj)
        return obj

    def set_cpuid2(self, entries: list[s.KvmCpuidEntry2]) -> None:
        """``KVM_SET_CPUID2``; must come before the first ``KVM_RUN``."""
        buf = s.cpuid2_type(len(entries))()
        buf.nent = len(entries)
        for i, entry in enumerate(entries):
            buf.entries[i] = entry
        self._ioctl_struct(Ioctl.SET_CPUID2, buf)

    def set_msrs(self, msrs: dict[int, int]) -> None:
        """Write MSRs; raises unless KVM accepted every one."""
        buf = s.msrs_type(len(msrs))()
        buf.nmsrs = len(msrs)
        for i, (index, value) in enumerate(msrs.items()):
            buf.entries[i].index = index
            buf.entries[i].data = value
        done = ioctl_ptr(self.fd, Ioctl.SET_MSRS, buf)
        if done < 0:
            raise KvmError("KVM_SET_MSRS", get_errno())
        if done != len(msrs):
            bad = list(msrs)[done]
            raise KvmError("KVM_SET_MSRS", errno.EINVAL, f"MSR {bad:#x} rejected")

    def get_msrs(self, indices: list[int]) -> dict[int, int]:
        """Read MSRs; those KVM does not know are left out of the result."""
        buf = s.msrs_type(len(indices))()
        buf.nmsrs = len(indices)
        for i, index in enumerate(indices):
            buf.entries[i].index = index
        done = ioctl_ptr(self.fd, Ioctl.GET_MSRS, buf)
        if done < 0:
            raise KvmError("KVM_GET_MSRS", get_errno())
        return {buf.entries[i].index: buf.entries[i].data for i in range(done)}

    def interrupt(self, vector: int) -> None:
        """``KVM_INTERRUPT``: queue external interrupt *vector* (no in-kernel irqchip).

        KVM holds one pending vector; a second call before the guest takes the
        first overwrites it, so callers queue and inject one per entry.
        """
        self._ioctl_struct(Ioctl.INTERRUPT, s.KvmInterrupt(vector))

    def set_guest_debug(self, control: int, debugregs: tuple[int, ...] = ()) -> None:
        """``KVM_SET_GUEST_DEBUG``: *control* is ``GUESTDBG_*`` bits (0 disables), *debugregs*
        DR0-DR3, -, -, DR6, DR7 for ``GUESTDBG_USE_HW_BP`` (the gdb stub, :mod:`pyvmm.gdb`)."""
        dbg = s.KvmGuestDebug()
        dbg.control = control
        for i, value in enumerate(debugregs[:8]):
            dbg.debugreg[i] = value
        self._ioctl_struct(Ioctl.SET_GUEST_DEBUG, dbg)

    def tsc_khz(self) -> int:
        ret = ioctl_int(self.fd, Ioctl.GET_TSC_KHZ, 0)
        if ret < 0:
            raise KvmError("KVM_GET_TSC_KHZ", get_errno())
        return ret
