/* pyvmm's compiled run loop: KVM_RUN and the hypercall test in C, the dispatch in Python.
 *
 * Built with gcc into the cache on first use (pyvmm/fastloop.py) and called
 * through ctypes, which releases the GIL for the call; each hypercall calls
 * back into Python (the dispatcher) for rax. It takes about 1.1x the time of a
 * C loop with no dispatch at all, against 1.3x for the same loop written in
 * Python (docs/bench.md). Everything that is not a hypercall, or a call that
 * asks to leave (*stop set), returns to Python (pyvmm/loop.py). */
#include <errno.h>
#include <sys/ioctl.h>

#include "hypercall_exit.h"

typedef uint64_t (*dispatch_fn)(uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4);

/* Returns 0: an exit other than a hypercall is in `run`; 1: the callback set
 * *stop; -errno: KVM_RUN failed (-EINTR after a kick). Each hypercall's
 * registers are copied to *last first: a backend that resets the vCPU at a
 * triple fault (SVM) leaves them as the last state known (pyvmm/crash.py). */
long pyvmm_run_loop(int vcpu_fd, struct kvm_run *run, unsigned port, dispatch_fn dispatch, volatile int *stop,
                    struct kvm_regs *last)
{
    for (;;) {
        if (ioctl(vcpu_fd, KVM_RUN, 0) < 0)
            return -errno;
        if (!pyvmm_is_hypercall(run, port))
            return 0;
        struct kvm_regs *r = &run->s.regs.regs;
        *last = *r;
        pyvmm_finish_hypercall(run, dispatch(r->rax, r->rdi, r->rsi, r->rdx, r->r10, r->r8));
        if (*stop)
            return 1;
    }
}
