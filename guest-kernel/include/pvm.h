/* Guest side of the pyvmm hypercall ABI: one `outl` on the hypercall port. */
#ifndef PVM_H
#define PVM_H

#include "pyvmm_abi.h"

/* rax = nr; args in rdi, rsi, rdx, r10, r8; result (or -errno) in rax. */
static inline long pvm_hypercall(unsigned long nr, unsigned long a0, unsigned long a1,
                                 unsigned long a2, unsigned long a3, unsigned long a4)
{
    register unsigned long r10 __asm__("r10") = a3;
    register unsigned long r8 __asm__("r8") = a4;
    long ret;
    __asm__ volatile("outl %%eax, %[port]"
                     : "=a"(ret)
                     : "a"(nr), "D"(a0), "S"(a1), "d"(a2), "r"(r10), "r"(r8),
                       [port] "i"(PVM_HYPERCALL_PORT)
                     : "memory");
    return ret;
}

/* One generated wrapper per call (pvm_hc_send, pvm_hc_as_map, ...): pyvmm/paravirt/abi.py's table. */
#include "pyvmm_calls.h"

static inline long pvm_send(unsigned long handle, const void *buf, unsigned long len, unsigned long offset)
{
    return pvm_hc_send(handle, (unsigned long)buf, len, offset);
}

static inline long pvm_recv(unsigned long handle, void *buf, unsigned long len, unsigned long offset)
{
    return pvm_hc_recv(handle, (unsigned long)buf, len, offset);
}

static inline __attribute__((noreturn)) void pvm_shutdown(int code)
{
    for (;;)
        pvm_hc_shutdown((unsigned long)code);
}

#endif
