/* The C twin of pyvmm.kvm.exits.is_hypercall / finish_hypercall: keep the two in step.
 * Included by pyvmm/fastloop.c (the run loop) and pyvmm/bench/native.c (baseline (a)). */
#ifndef PYVMM_HYPERCALL_EXIT_H
#define PYVMM_HYPERCALL_EXIT_H

#include <linux/kvm.h>
#include <stdint.h>

/* `outl %eax` to the hypercall port, once: 4 bytes, OUT, count 1 (a `rep outsl`,
 * an `outb` or an `in` on the port is an ABI violation, not a hypercall). */
static inline int pyvmm_is_hypercall(const struct kvm_run *run, unsigned port)
{
    return run->exit_reason == KVM_EXIT_IO && run->io.port == port && run->io.direction == KVM_EXIT_IO_OUT &&
           run->io.size == 4 && run->io.count == 1;
}

/* The result into rax for the next KVM_RUN; |=: a handler (AS_SWITCH) may have marked the sregs dirty too. */
static inline void pyvmm_finish_hypercall(struct kvm_run *run, uint64_t result)
{
    run->s.regs.regs.rax = result;
    run->kvm_dirty_regs |= KVM_SYNC_X86_REGS;
}

#endif
