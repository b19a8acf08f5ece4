/* x86-64 plumbing for the guest kernel: its own GDT/TSS (so CPL3 tasks can trap
 * into the kernel), an IDT for vectors 0..IDT_VECTORS-1, and C trap handlers. */
#ifndef ARCH_H
#define ARCH_H

#include <stdint.h>

#include "hw.h" /* the --hw-api hardware, which kmain and secondaries bring up too */

#define IDT_VECTORS 48

/* GDT selectors, the same layout as the VMM's boot GDT (see docs/abi.md). */
#define KERNEL_CS 0x08
#define KERNEL_DS 0x10
#define USER32_CS 0x18
#define USER_DS (0x20 | 3)
#define USER_CS (0x28 | 3)
#define TSS_SEL 0x30

/* Saved by the trap entry stub; the handler may change it (e.g. rax, rip). */
struct trap_frame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
    uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector, error_code;
    uint64_t rip, cs, rflags, rsp, ss; /* pushed by the CPU */
};

typedef void (*trap_handler_t)(struct trap_frame *tf);

/* Load the kernel's GDT, TSS and IDT. Idempotent; called by kmain. */
void arch_init(void);
/* On a secondary vCPU: load the shared GDT and IDT. */
void arch_init_secondary(void);
/* Route `vector` to `handler` (NULL restores the default: report and shut down). */
void trap_set_handler(unsigned vector, trap_handler_t handler);
/* Kernel stack used when a CPL3 task traps (TSS.RSP0). */
void arch_set_kernel_stack(uint64_t rsp0);

static inline uint64_t read_cr2(void)
{
    uint64_t v;
    __asm__ volatile("mov %%cr2, %0" : "=r"(v));
    return v;
}

static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

static inline void irq_enable(void) { __asm__ volatile("sti" ::: "memory"); }
static inline void irq_disable(void) { __asm__ volatile("cli" ::: "memory"); }

#endif
