/* The hardware API (pyvmm run --hw-api, docs/hwapi.md): the x2APIC (IPIs by ICR writes,
 * EOI, the TSC-deadline timer) and COM1's 16550 UART, found through CPUID and a probe.
 * In the default VM none of it exists: hw_lapic and hw_uart stay 0 and nothing here
 * touches a port or an APIC MSR. */
#ifndef HW_H
#define HW_H

#include <stdint.h>

#define HW_VEC_IPI 33
#define HW_VEC_TIMER 34
#define HW_VEC_SPURIOUS 47

#define MSR_APIC_BASE 0x1bu
#define MSR_X2APIC_TPR 0x808u
#define MSR_X2APIC_EOI 0x80bu
#define MSR_X2APIC_SVR 0x80fu
#define MSR_X2APIC_ICR 0x830u
#define MSR_X2APIC_LVT_TIMER 0x832u
#define MSR_X2APIC_LVT_LINT0 0x835u
#define MSR_TSC_DEADLINE 0x6e0u

extern int hw_lapic; /* this VM has an x2APIC with a TSC-deadline timer (enabled on each CPU) */
extern int hw_uart;  /* COM1 answered the probe: the kernel's console writes go to it */

/* Find the hardware, once (the console's first write and hw_init_cpu call it); the
 * console moves to the UART if there is one. */
void hw_init(void);
/* Each CPU, after arch_init: x2APIC mode, the spurious vector, LINT0 as virtual wire. */
void hw_init_cpu(void);

static inline void hw_wrmsr(uint32_t msr, uint64_t v)
{
    __asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)) : "memory");
}

static inline uint64_t hw_rdmsr(uint32_t msr)
{
    uint32_t lo, hi;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return ((uint64_t)hi << 32) | lo;
}

/* Fixed IPI, physical destination: one ICR write (x2APIC: a single 64-bit MSR). */
static inline void lapic_ipi(unsigned apic_id, unsigned vector)
{
    hw_wrmsr(MSR_X2APIC_ICR, (uint64_t)apic_id << 32 | vector);
}
static inline void lapic_eoi(void) { hw_wrmsr(MSR_X2APIC_EOI, 0); }
/* Arm the one-shot TSC-deadline timer (HW_VEC_TIMER); 0 disarms it. */
static inline void lapic_deadline(uint64_t tsc) { hw_wrmsr(MSR_TSC_DEADLINE, tsc); }

/* All of buf to COM1, polling LSR once per FIFO's worth (16 bytes), as a FIFO-aware
 * polled driver does: about one port exit per byte. */
void uart_write(const void *buf, unsigned long len);

/* The in-kernel NOTIFY path (pyvmm/hw/doorbell.py): this port, written with a vCPU id,
 * raises the upcall vector in that vCPU's LAPIC without an exit to pyvmm. The caller
 * has set the event bytes in the shared page first (docs/hwapi.md). */
#define HW_DOORBELL_PORT 0xf6
static inline void hw_doorbell(unsigned vcpu)
{
    __asm__ volatile("outl %0, %w1" : : "a"(vcpu), "d"(HW_DOORBELL_PORT) : "memory");
}

/* virtio-mmio block (the --hw-api VM's first --disk): 0 when found and set up. */
int vblk_init(void);
extern uint64_t vblk_sectors;
/* One request each, waited for: 0, or a negative virtio status. */
long vblk_write(uint64_t sector, const void *buf, uint32_t len);
long vblk_read(uint64_t sector, void *buf, uint32_t len);
long vblk_flush(void);

#endif
