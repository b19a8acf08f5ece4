/* Guest side of pyvmm event channels, time and SMP (docs/abi.md "Events"). */
#ifndef EVENTS_H
#define EVENTS_H

#include <stdint.h>

#include "pvm.h"

typedef void (*evt_handler_t)(unsigned port, void *arg);

extern struct pvm_shared_info *shared_info;

/* Install the upcall handler and this CPU's identity; called by kmain and each secondary. */
void events_init_cpu(unsigned cpu);
unsigned this_cpu(void);

/* Bind a port (>0) or return -errno. */
long evt_bind_ipi(unsigned target_vcpu);
long evt_bind_virq(unsigned virq, unsigned vcpu);
long evt_bind_channel(unsigned handle, unsigned vcpu);
void evt_set_handler(unsigned port, evt_handler_t fn, void *arg);
/* Handle every pending, unmasked port of this CPU (also what the upcall does). */
void evt_scan(void);

static inline long pvm_notify(unsigned port) { return pvm_hypercall(PVM_HC_NOTIFY, port, 0, 0, 0, 0); }
static inline long pvm_block(uint64_t deadline_ns) { return pvm_hypercall(PVM_HC_BLOCK, deadline_ns, 0, 0, 0, 0); }
/* Raise `port` and block in one hypercall ("reply and wait"). */
static inline long pvm_notify_block(unsigned port, uint64_t deadline_ns)
{
    return pvm_hypercall(PVM_HC_BLOCK, deadline_ns, port, 0, 0, 0);
}
static inline long pvm_yield(void) { return pvm_hypercall(PVM_HC_YIELD, 0, 0, 0, 0, 0); }
static inline long pvm_timer_set(uint64_t deadline_ns) { return pvm_hypercall(PVM_HC_TIMER_SET, deadline_ns, 0, 0, 0, 0); }
static inline long pvm_clock(unsigned clock) { return pvm_hypercall(PVM_HC_CLOCK_GET, clock, 0, 0, 0, 0); }

/* Monotonic ns from the TSC (no hypercall), on the same clock as TIMER_SET/BLOCK deadlines. */
uint64_t now_ns(void);

/* `sti`, then the check Xen PV guests make after unmasking: with an upcall already pending,
 * one hypercall (YIELD), on whose return pyvmm injects it. Without it the upcall waits for
 * the backend's interrupt-window exit, which PVM takes only at the vCPU's next exit
 * (docs/abi.md section 8, "Taking interrupts again"). */
void evt_irq_enable(void);

/* Sleep (BLOCK with interrupts off, then scan) until *flag becomes non-zero. */
void wait_flag(volatile int *flag);
/* Same, until *counter >= target. */
void wait_count(volatile unsigned *counter, unsigned target);

/* Start vCPU `cpu` running fn(cpu) on its own stack; returns 0 or -errno. */
long smp_start(unsigned cpu, void (*fn)(unsigned cpu));

static inline unsigned atomic_inc(volatile unsigned *p)
{
    unsigned v = 1;
    __asm__ volatile("lock xaddl %0, %1" : "+r"(v), "+m"(*p) : : "memory");
    return v + 1;
}

#endif
