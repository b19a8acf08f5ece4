/* The hardware API (pyvmm run --hw-api, docs/hwapi.md): KVM's in-kernel local APIC in
 * x2APIC mode and a 16550 UART on COM1, for measuring against pyvmm's hypercall ABI.
 * Nothing in the default VM offers them (its CPUID hides the APIC). */
#ifndef HWAPI_H
#define HWAPI_H

#include <stdint.h>

#define HW_VEC_PING 40  /* the IPI vCPU 1 answers */
#define HW_VEC_PONG 41  /* the answer, on vCPU 0 */
#define HW_VEC_TIMER 42 /* the LAPIC timer (TSC-deadline mode) */
#define HW_VEC_SPURIOUS 47

/* Turn on this vCPU's local APIC in x2APIC mode, pyvmm's upcalls still let through
 * (LINT0 as ExtINT). -1 when CPUID shows no x2APIC or TSC-deadline timer (no --hw-api). */
int hw_init(void);
/* Fixed IPI with `vector` to vCPU `cpu` (its x2APIC id): one ICR write. */
void hw_ipi(unsigned cpu, unsigned vector);
/* End of interrupt: one EOI write. */
void hw_eoi(void);
/* The LAPIC timer in TSC-deadline mode, firing HW_VEC_TIMER once the TSC reaches `tsc`. */
void hw_timer_mode(void);
void hw_timer_at(uint64_t tsc);
/* Write one byte to COM1 the way Linux's 8250 console does: wait for THRE, then THR. */
void uart_putc(char c);

#endif
