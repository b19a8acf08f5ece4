/* What programs/bench.c, bench_hw.c and notifyrt.c share: the TSC stamp, the event consume,
 * and the comparison's loops and setup (docs/hwapi.md). */
#ifndef BENCH_H
#define BENCH_H

#include <stdint.h>

#include "events.h"

static inline uint32_t tsc32(void)
{
    uint32_t lo;
    __asm__ volatile("rdtsc" : "=a"(lo) : : "rdx", "memory");
    return lo;
}

/* Consume a port raised for `cpu` with interrupts off (no upcall taken). */
static inline int consume(unsigned cpu, unsigned port)
{
    volatile uint8_t *up = &shared_info->vcpu[cpu].upcall_pending;
    volatile uint8_t *p = &shared_info->evtchn_pending[port];
    uint8_t zero = 0, v = 0;
    __asm__ volatile("xchgb %0, %1" : "+q"(zero), "+m"(*up) : : "memory");
    __asm__ volatile("xchgb %0, %1" : "+q"(v), "+m"(*p) : : "memory");
    return v;
}

/* One hypercall timed by the TSC, every argument loaded before the window opens:
 * the window is rdtsc, 3 register moves, the OUT and rdtsc, the same for every
 * call with arguments; two moves more than loop_null's (rdtsc writes rdx, so a2
 * moves into rdx inside the window, and the result out of rax). */
static inline uint32_t timed_hc(unsigned long nr, unsigned long a0, unsigned long a1, unsigned long a2,
                                unsigned long a3, unsigned long a4, long *ret)
{
    register unsigned long r10 __asm__("r10") = a3;
    register unsigned long r8 __asm__("r8") = a4;
    uint32_t dt, t0;
    unsigned long res, rdx;
    __asm__ volatile("rdtsc\n\t"
                     "mov %%eax, %[t0]\n\t"
                     "mov %[a2], %%rdx\n\t"
                     "mov %[nr], %%rax\n\t"
                     "outl %%eax, %[port]\n\t"
                     "mov %%rax, %[res]\n\t"
                     "rdtsc\n\t"
                     "sub %[t0], %%eax"
                     : "=&a"(dt), "=&d"(rdx), [t0] "=&r"(t0), [res] "=&r"(res)
                     : [nr] "r"(nr), "D"(a0), "S"(a1), [a2] "r"(a2), "r"(r10), "r"(r8),
                       [port] "i"(PVM_HYPERCALL_PORT)
                     : "memory");
    (void)rdx;
    *ret = (long)res;
    return dt;
}

/* bench_hw.c: 0 or an exit code when *name* is one of its benches, -1 when it is not. */
int bench_hw_setup(const char *name, uint8_t *payload, unsigned long size);
/* After the timed phase: stop the responder vCPU a comparison bench started. */
void bench_hw_stop(void);
extern unsigned long bench_hw_errors;
void loop_console(uint32_t *out, unsigned long n);
void loop_hw_console(uint32_t *out, unsigned long n);
void loop_disk(uint32_t *out, unsigned long n);
void loop_hw_disk(uint32_t *out, unsigned long n);
void loop_hw_ipi_rtt(uint32_t *out, unsigned long n);
void loop_hw_timer(uint32_t *out, unsigned long n);
void loop_notify_doorbell(uint32_t *out, unsigned long n);

#endif
