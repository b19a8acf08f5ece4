/* test=hwapi: what the --hw-api VM gives, checked from inside (tests/test_hwapi.py).
 *
 * Prints one line per check: CPUID bits, the x2APIC (mode, id), a self-IPI, the
 * TSC-deadline timer, an IPI to vCPU 1 and back (with --vcpus 2), and COM1. In the
 * default VM it prints the CPUID line and "hw: none" and touches no device. */
#include "arch.h"
#include "events.h"
#include "hw.h"
#include "lib.h"
#include "programs.h"

static volatile int got[2];

static void on_vector(struct trap_frame *tf)
{
    got[this_cpu()] = (int)tf->vector;
    lapic_eoi();
}

/* Wait with interrupts on, at most ~max_us of TSC time; 1 when *flag was set. */
static int wait_set(volatile int *flag, unsigned long max_us)
{
    uint64_t end = rdtsc() + max_us * boot_info->tsc_khz / 1000;
    irq_enable();
    while (!*flag && rdtsc() < end)
        __asm__ volatile("pause");
    irq_disable();
    return *flag != 0;
}

static volatile int ready;
static void responder(unsigned cpu)
{
    (void)cpu;
    got[1] = 0;
    irq_disable();
    ready = 1;
    while (!got[1])
        __asm__ volatile("sti; hlt; cli" : : : "memory");
    lapic_ipi(0, HW_VEC_IPI);
    for (;;)
        __asm__ volatile("sti; hlt; cli" : : : "memory");
}

static int hwapi_main(void)
{
    uint32_t a = 1, b, c = 0, d;
    __asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
    kprintf("hw: cpuid apic=%u x2apic=%u tsc_deadline=%u\n", (d >> 9) & 1, (c >> 21) & 1, (c >> 24) & 1);
    if (!hw_lapic) {
        kprintf("hw: none\n");
        return 0;
    }
    kprintf("hw: apic_base=%#lx x2apic_id=%lu uart=%d\n", (unsigned long)rdmsr64(MSR_APIC_BASE),
            (unsigned long)rdmsr64(0x802), hw_uart);
    trap_set_handler(HW_VEC_IPI, on_vector);
    trap_set_handler(HW_VEC_TIMER, on_vector);
    irq_disable();
    lapic_ipi(0, HW_VEC_IPI);
    kprintf("hw: self-ipi vector=%d\n", wait_set(&got[0], 100000) ? got[0] : -1);
    got[0] = 0;
    lapic_deadline(rdtsc() + 100 * boot_info->tsc_khz / 1000); /* 100 us */
    kprintf("hw: tsc-deadline vector=%d\n", wait_set(&got[0], 1000000) ? got[0] : -1);
    got[0] = 0;
    if (boot_info->nr_vcpus > 1 && !smp_start(1, responder)) {
        uint64_t end = rdtsc() + 10000 * boot_info->tsc_khz; /* up to 10 s for vCPU 1 to come up */
        while (!ready && rdtsc() < end)
            __asm__ volatile("pause");
        lapic_ipi(1, HW_VEC_IPI);
        wait_set(&got[0], 1000000);
        kprintf("hw: ipi-rtt vector=%d\n", got[0] ? got[0] : -1);
    }
    return 0;
}
PROGRAM(hwapi);
