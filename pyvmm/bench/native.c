/* Native helpers for `pyvmm bench`, built with gcc into the cache on first use
 * (pyvmm/bench/native.py) and called through ctypes, which releases the GIL.
 *
 * pyvmm_null_loop is baseline (a): the minimal userspace exit loop. It runs the
 * vCPU of a VM that pyvmm built (same guest, same state) and answers every NULL
 * hypercall with no dispatch at all: rax = 0 through sync regs, re-enter. Any
 * other exit goes back to Python, which handles it as pyvmm always does. */
#include <errno.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "hypercall_exit.h" /* the run loop's own test (pyvmm/hypercall_exit.h) */

/* Returns 0 when an exit other than a NULL hypercall is waiting in `run`, or
 * -errno when KVM_RUN fails (-EINTR after a kick). `*answered` counts the NULL
 * hypercalls answered here. */
long pyvmm_null_loop(int vcpu_fd, struct kvm_run *run, unsigned port, unsigned long *answered)
{
    for (;;) {
        if (ioctl(vcpu_fd, KVM_RUN, 0) < 0)
            return -errno;
        if (pyvmm_is_hypercall(run, port) && run->s.regs.regs.rax == 0) {
            pyvmm_finish_hypercall(run, 0);
            (*answered)++;
            continue;
        }
        return 0;
    }
}

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Baseline (c) from C: `n` samples, each the mean ns of `batch` getppid()
 * system calls (syscall(2) directly: no libc caching). */
void pyvmm_syscall_loop(unsigned long n, unsigned batch, uint32_t *out)
{
    for (unsigned long i = 0; i < n; i++) {
        uint64_t t0 = now_ns();
        for (unsigned j = 0; j < batch; j++)
            syscall(SYS_getppid);
        out[i] = (uint32_t)((now_ns() - t0) / batch);
    }
}
