"""``pyvmm run --stats``: the hooks :func:`pyvmm.loop.python_loop` runs with to time every exit.

Two wrappers, no copy of the loop: a timed ``KVM_RUN`` (time inside it, per
exit reason, and the time in pyvmm's own code from its return until the next
entry) and a timed dispatch (each hypercall handler's time and its ``-errno``
count). They fill the vCPU's :class:`~pyvmm.metrics.VcpuMetrics`; only that
vCPU's thread writes it, so the hot path takes no lock.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from pyvmm.kvm._libc import ioctl_int
from pyvmm.kvm.constants import ExitReason
from pyvmm.kvm.exits import is_hypercall
from pyvmm.loop import python_loop
from pyvmm.metrics import INTERRUPTED, OUT_OF_RANGE, add, new_agg

if TYPE_CHECKING:
    from pyvmm.loop import LoopEnv
    from pyvmm.metrics import Metrics
    from pyvmm.outcome import Outcome
    from pyvmm.vcpu import Vcpu

_NEGATIVE = 1 << 63  # a u64 result with the sign bit set is -errno
_IO = int(ExitReason.IO)


def stats_loop(metrics: Metrics):
    """A :data:`pyvmm.loop.Loop` that records into *metrics* (``Machine.loop``)."""

    def loop(vcpu: Vcpu, env: LoopEnv) -> Outcome:
        enter, dispatch = timed_hooks(vcpu, env, metrics)
        return python_loop(vcpu, env, enter=enter, dispatch=dispatch)

    return loop


def timed_hooks(vcpu: Vcpu, env: LoopEnv, metrics: Metrics):
    """``(enter, dispatch)`` for :func:`pyvmm.loop.python_loop`, timing into *vcpu*'s metrics.

    pyvmm's own time for a hypercall exit runs from ``KVM_RUN``'s return to the end of
    the dispatch (taken by the dispatch hook); for any other exit, to the next entry.
    """
    m = metrics.for_vcpu(vcpu.id)
    run = vcpu.fd.run
    clock = time.perf_counter_ns
    kvm_aggs, vmm_aggs, hc_aggs, errors = m.kvm_run, m.vmm, m.hypercalls, m.errors
    s_run, s_vmm = m.samples_kvm_run, m.samples_vmm
    io_run = kvm_aggs.setdefault(_IO, new_agg())
    io_vmm = vmm_aggs.setdefault(_IO, new_agg())
    inner = env.dispatch
    # [exit reason, KVM_RUN's return time] of a slow exit not yet accounted (0: none), and the
    # return time of the hypercall exit being dispatched.
    slow = [0, 0]
    returned = [0]

    def enter(fd: int, req: int, arg: int) -> int:
        t0 = clock()
        if slow[1]:
            agg = vmm_aggs.get(slow[0])
            if agg is None:
                agg = vmm_aggs[slow[0]] = new_agg()
            add(agg, t0 - slow[1])
            slow[1] = 0
        rc = ioctl_int(fd, req, arg)
        t1 = clock()
        if rc == 0 and is_hypercall(run):
            add(io_run, t1 - t0)
            if s_run is not None:
                s_run.append(t1 - t0)
            returned[0] = t1
            return rc
        reason = INTERRUPTED if rc else run.exit_reason
        agg = kvm_aggs.get(reason)
        if agg is None:
            agg = kvm_aggs[reason] = new_agg()
        add(agg, t1 - t0)
        slow[0], slow[1] = reason, t1
        return rc

    def dispatch(vcpu, nr, a0, a1, a2, a3, a4) -> int:
        slot = nr if nr < OUT_OF_RANGE else OUT_OF_RANGE
        th = clock()
        try:
            result = inner(vcpu, nr, a0, a1, a2, a3, a4)
        finally:
            t2 = clock()
            add(hc_aggs[slot], t2 - th)
            add(io_vmm, t2 - returned[0])
            if s_vmm is not None:
                s_vmm.append(t2 - returned[0])
        if result & _NEGATIVE:
            errors[slot] += 1
        return result

    return enter, dispatch
