/* The hardware API's drivers (include/hwapi.h): x2APIC by MSRs, the UART by port I/O. */
#include "hwapi.h"
#include "arch.h"

#define MSR_APIC_BASE 0x1b
#define MSR_TSC_DEADLINE 0x6e0
#define X2APIC_EOI 0x80b
#define X2APIC_SVR 0x80f
#define X2APIC_ICR 0x830
#define X2APIC_LVT_TIMER 0x832
#define X2APIC_LVT_LINT0 0x835
#define APIC_BASE_ENABLE (1ull << 11)
#define APIC_BASE_X2APIC (1ull << 10)
#define SVR_APIC_ENABLE 0x100
#define LVT_EXTINT 0x700
#define LVT_TIMER_TSC_DEADLINE (2u << 17)
#define COM1 0x3f8
#define LSR_THRE 0x20

static inline uint64_t rdmsr(uint32_t msr)
{
    uint32_t lo, hi;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return ((uint64_t)hi << 32) | lo;
}

static inline void wrmsr(uint32_t msr, uint64_t v)
{
    __asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)) : "memory");
}

static inline uint8_t inb(uint16_t port)
{
    uint8_t v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }

int hw_init(void)
{
    uint32_t a, b, c, d;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
    if (!(c & (1u << 21)) || !(c & (1u << 24)))
        return -1;
    wrmsr(MSR_APIC_BASE, rdmsr(MSR_APIC_BASE) | APIC_BASE_ENABLE | APIC_BASE_X2APIC);
    wrmsr(X2APIC_SVR, SVR_APIC_ENABLE | HW_VEC_SPURIOUS);
    wrmsr(X2APIC_LVT_LINT0, LVT_EXTINT); /* pyvmm's upcalls arrive as ExtINT under a split irqchip */
    return 0;
}

void hw_ipi(unsigned cpu, unsigned vector) { wrmsr(X2APIC_ICR, ((uint64_t)cpu << 32) | vector); }

void hw_eoi(void) { wrmsr(X2APIC_EOI, 0); }

void hw_timer_mode(void) { wrmsr(X2APIC_LVT_TIMER, HW_VEC_TIMER | LVT_TIMER_TSC_DEADLINE); }

void hw_timer_at(uint64_t tsc) { wrmsr(MSR_TSC_DEADLINE, tsc); }

void uart_putc(char c)
{
    while (!(inb(COM1 + 5) & LSR_THRE))
        ;
    outb(COM1, (uint8_t)c);
}
