/* test=hwapi [case=garbage]: the hardware API (pyvmm run --hw-api, docs/hwapi.md) end to end.
 *
 * Prints a line through the UART, takes a self-IPI and a TSC-deadline timer interrupt
 * from the in-kernel x2APIC, plays 100 IPI round trips with vCPU 1 (with --vcpus 2),
 * and checks that pyvmm's own upcalls still arrive beside the APIC (a NOTIFY to itself).
 * Each step prints "hwapi STEP: ok"; exit 0 when all passed, 1 if one failed, 3 when
 * the VM offers no x2APIC (no --hw-api). case=garbage hammers every UART register with
 * every access size and a rep string access, then touches a port nobody serves: the
 * VM must stop there with pyvmm's crash report, never earlier. */
#include "arch.h"
#include "events.h"
#include "hwapi.h"
#include "lib.h"
#include "programs.h"

static volatile int got_pong, got_timer, got_ping_reply, responder_ready;
static volatile unsigned long upcalls;

static void on_pong(struct trap_frame *tf)
{
    (void)tf;
    got_pong++;
    hw_eoi();
}

static void on_timer(struct trap_frame *tf)
{
    (void)tf;
    got_timer = 1;
    hw_eoi();
}

static void on_ping(struct trap_frame *tf)
{
    (void)tf;
    hw_eoi();
    hw_ipi(0, HW_VEC_PONG);
}

static void responder(unsigned cpu)
{
    (void)cpu;
    irq_disable();
    hw_init();
    responder_ready = 1;
    for (;;)
        __asm__ volatile("sti; hlt; cli" ::: "memory");
}

static void on_event(unsigned port, void *arg)
{
    (void)port;
    (void)arg;
    upcalls++;
}

/* Wait halted until *flag reaches want, at most ~1 s of TSC: the LAPIC timer is the
 * watchdog that ends a halt nothing else ends. Halted, not spinning with interrupts on:
 * on PVM an interrupt that arrived while they were off is only injected at the vCPU's
 * next entry, and a spin in kernel mode makes none (docs/backends.md, "upcall ... after sti"). */
static int wait_for(volatile int *flag, int want)
{
    uint64_t end = rdtsc() + (uint64_t)boot_info->tsc_khz * 1000;
    while (*flag < want && rdtsc() < end) {
        hw_timer_at(end);
        __asm__ volatile("sti; hlt; cli" ::: "memory");
    }
    return *flag >= want;
}

static void uart_puts(const char *s)
{
    while (*s)
        uart_putc(*s++);
}

static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outw(uint16_t port, uint16_t v) { __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outl(uint16_t port, uint32_t v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
static inline uint32_t inl(uint16_t port)
{
    uint32_t v;
    __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

static int garbage(void)
{
    static const char junk[64] = "rep outsb into the data register: one exit for the whole string";
    uint32_t sum = 0;
    for (uint16_t port = 0x3f8; port < 0x400; port++)
        for (unsigned v = 0; v < 256; v += 51) {
            outb(port, (uint8_t)v);
            outw(port, (uint16_t)(v * 257));
            outl(port, v * 0x01010101u);
            sum += inl(port);
        }
    outb(0x3fb, 0x03); /* DLAB off again so THR is the data register */
    const char *src = junk;
    unsigned long count = sizeof junk;
    __asm__ volatile("rep outsb" : "+S"(src), "+c"(count) : "d"(0x3f8) : "memory");
    kprintf("\nhwapi garbage: survived (sum %u); now a port nobody serves\n", sum);
    outb(0x3f0, 1);
    kprintf("hwapi garbage: the VM went on after port 0x3f0 (WRONG)\n");
    return 1;
}

static int hwapi_main(void)
{
    if (hw_init()) {
        kprintf("hwapi: no x2APIC in CPUID (run with --hw-api)\n");
        return 3;
    }
    char c[16];
    if (cmdline_get("case", c, sizeof c) > 0 && !strncmp(c, "garbage", sizeof c))
        return garbage();
    int bad = 0;
    uart_puts("hwapi uart: hello through COM1\n");

    trap_set_handler(HW_VEC_PONG, on_pong);
    trap_set_handler(HW_VEC_TIMER, on_timer);
    hw_timer_mode();
    irq_disable();
    hw_ipi(0, HW_VEC_PONG); /* to itself */
    int ok = wait_for(&got_pong, 1);
    kprintf("hwapi self-ipi: %s\n", ok ? "ok" : "FAIL");
    bad += !ok;

    got_timer = 0;
    hw_timer_at(rdtsc() + boot_info->tsc_khz); /* 1 ms */
    while (!got_timer) /* the timer alone must end this halt */
        __asm__ volatile("sti; hlt; cli" ::: "memory");
    ok = got_timer;
    kprintf("hwapi timer: %s\n", ok ? "ok" : "FAIL");
    bad += !ok;

    if (boot_info->nr_vcpus >= 2) {
        trap_set_handler(HW_VEC_PING, on_ping);
        ok = smp_start(1, responder) == 0 && wait_for(&responder_ready, 1);
        got_pong = 0;
        for (int i = 1; ok && i <= 100; i++) {
            hw_ipi(1, HW_VEC_PING);
            ok = wait_for(&got_pong, i);
        }
        hw_timer_at(0);
        kprintf("hwapi ipi-rtt: %s\n", ok ? "ok" : "FAIL");
        bad += !ok;
    }

    /* pyvmm's event channels beside the APIC: the upcall arrives as ExtINT through LINT0. */
    long port = evt_bind_ipi(0);
    evt_set_handler((unsigned)port, on_event, 0);
    irq_enable();
    pvm_notify((unsigned)port);
    uint64_t end = rdtsc() + (uint64_t)boot_info->tsc_khz * 1000;
    while (!upcalls && rdtsc() < end)
        __asm__ volatile("pause");
    irq_disable();
    ok = upcalls > 0;
    kprintf("hwapi upcall: %s\n", ok ? "ok" : "FAIL");
    bad += !ok;
    kprintf("hwapi: %s\n", bad ? "FAIL" : "ok");
    return bad ? 1 : 0;
}
PROGRAM(hwapi);
