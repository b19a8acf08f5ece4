"""TLB and shadow-page coherence: every vCPU sees a table change before it runs guest code again.

Whenever an existing translation is narrowed or removed (unmap, protect, clone's
write-protect, a copy-on-write break), every vCPU that has the space loaded reloads CR3
before it runs guest code again: the caller at once, others through
:meth:`VcpuSet.post <pyvmm.paravirt.services.VcpuSet.post>`, waited for. Adding
translations needs no flush (a CPU does not cache not-present entries). Where KVM shadows
page tables in software (PVM; ept=0), a CR3 reload is not enough: the same events also
drop KVM's shadow pages (:class:`~pyvmm.kvm.shadow.ShadowMmu`), and page-table frames of
destroyed spaces are reused only after such a flush.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from pyvmm.kvm.constants import SYNC_X86_SREGS
from pyvmm.paravirt.abi import Errno
from pyvmm.paravirt.dispatcher import HypercallError

if TYPE_CHECKING:
    from pyvmm.kvm.shadow import ShadowMmu
    from pyvmm.paravirt.address_spaces.space import AddressSpace
    from pyvmm.paravirt.services import VcpuSet
    from pyvmm.vcpu import Vcpu
    from pyvmm.x86.paging import FramePool
    from pyvmm.x86.tablemem import TableMemory

FLUSH_WAIT_S = 2.0  # longest wait for another vCPU to reload CR3


def load_cr3(ctx: Vcpu, cr3: int) -> None:
    """Set CR3 on *ctx*'s vCPU; call on that vCPU's thread between exits.

    Through ``KVM_CAP_SYNC_REGS``: the sregs arrive in ``kvm_run`` on every exit
    once ``SYNC_X86_SREGS`` is in ``kvm_valid_regs``, and the next ``KVM_RUN``
    loads them when it is in ``kvm_dirty_regs``: no ioctl. The first call pays
    ``KVM_GET_SREGS``/``KVM_SET_SREGS`` once and turns the sync on. The run
    loop ORs its own dirty bit in, so this one survives the hypercall return.
    Loading CR3 flushes the vCPU's non-global TLB entries (CR4.PCIDE is off).
    """
    vcpu = ctx.fd
    run = vcpu.run
    if run.kvm_valid_regs & SYNC_X86_SREGS:
        run.s.regs.sregs.cr3 = cr3
        run.kvm_dirty_regs |= SYNC_X86_SREGS
        return
    sregs = vcpu.get_sregs()
    sregs.cr3 = cr3
    vcpu.set_sregs(sregs)
    run.kvm_valid_regs |= SYNC_X86_SREGS


class Coherence:
    """CR3 reloads, shadow flushes, and the table frames freed while KVM may still shadow them.

    Called with the manager's lock held, except :meth:`reload_elsewhere` (it waits for
    other vCPUs, which may need that lock to get there).
    """

    def __init__(self, pool: FramePool, tables: TableMemory, vcpus: VcpuSet | None, shadow: ShadowMmu | None) -> None:
        self.pool = pool
        self.tables = tables
        self.vcpus = vcpus
        self.shadow = shadow
        self._zap = False  # a translation was narrowed: drop shadow pages before the guest runs
        self.dirty_frames: list[int] = []  # freed table frames KVM may still shadow

    def close(self) -> None:
        if self.shadow is not None:
            self.shadow.close()

    def narrowed(self, changed: bool = True) -> None:
        """Record that a translation was narrowed or removed (when *changed*)."""
        self._zap |= changed

    def ensure_tables(self, n: int) -> None:
        """Make *n* table frames allocatable, recycling freed ones after a shadow flush; ENOMEM if not."""
        if n > self.pool.available and self.dirty_frames:
            self.shadow.flush()
            self._zap = False
            for frame in self.dirty_frames:
                self.pool.free(frame)
            self.dirty_frames.clear()
        if n > self.pool.available:
            raise HypercallError(Errno.ENOMEM, "page-table pool exhausted")

    def free_table(self, frame: int) -> None:
        self.tables.forget(frame)
        if self.shadow is None:
            self.pool.free(frame)
        else:
            self.dirty_frames.append(frame)

    def finish(self) -> None:
        """End of a call that changed tables: drop shadow pages if a translation narrowed."""
        if self._zap and self.shadow is not None:
            self.shadow.flush()
        self._zap = False

    def flush_shadow(self) -> None:
        """The tables in RAM changed behind KVM's shadows (a restore, a reset, a repair)."""
        if self.shadow is not None:
            self.shadow.flush()

    def reload_here(self, ctx: Vcpu, space: AddressSpace) -> list[int]:
        """Reload CR3 on the caller if it has *space* loaded; return the ids of the other vCPUs that do."""
        if ctx.id in space.loaded:
            load_cr3(ctx, space.tables.root)
        if self.vcpus is None:
            return []
        return [i for i in space.loaded if i != ctx.id]

    def reload_elsewhere(self, targets: list[int], root_of: Callable[[int], int]) -> None:
        """Make each target vCPU reload CR3 (``root_of(vcpu_id)``, read on its own thread
        under no lock of ours) and wait until the running ones have."""
        waits = []
        for target in targets:
            done = threading.Event()

            def work(c: Vcpu, done: threading.Event = done) -> None:
                load_cr3(c, root_of(c.id))
                done.set()

            # A vCPU asleep outside KVM_RUN runs its queue before it enters the guest again: no wait.
            if self.vcpus.post(target, work):
                waits.append(done)
        for done in waits:
            done.wait(FLUSH_WAIT_S)

    def export_state(self) -> list[int]:
        return list(self.dirty_frames)

    def import_state(self, dirty: list[int]) -> None:
        self.dirty_frames = [int(f) for f in dirty]
        self._zap = bool(self.dirty_frames)
