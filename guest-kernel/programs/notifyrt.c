/* test=notifyrt [iters=N]: cross-vCPU notify round trip, measured on vCPU 0 with
 * the TSC: A notifies B while B is blocked, B notifies back while A is blocked.
 * Interrupts stay off: each side consumes its port's pending byte itself (the
 * BLOCK-with-interrupts-off protocol), so only the notify/block path is timed. */
#include "arch.h"
#include "bench.h"
#include "events.h"
#include "lib.h"
#include "programs.h"

#define MAXI 4096
static int port_a, port_b; /* delivered to vCPU 0 / vCPU 1 */
static volatile int stop;

static void wait_port(unsigned cpu, unsigned port)
{
    while (!consume(cpu, port))
        pvm_block(0);
}

static void responder(unsigned cpu)
{
    irq_disable();
    wait_port(cpu, (unsigned)port_b);
    while (!stop) {
        /* reply and wait: notify A and block in the same exit */
        pvm_notify_block((unsigned)port_a, 0);
        while (!consume(cpu, (unsigned)port_b))
            pvm_block(0);
    }
}

static int notifyrt_main(void)
{
    static uint64_t s[MAXI];
    char arg[16];
    unsigned iters = cmdline_get("iters", arg, sizeof arg) > 0 ? (unsigned)parse_long(arg) : 200;
    if (iters > MAXI)
        iters = MAXI;
    port_a = (int)evt_bind_ipi(0);
    port_b = (int)evt_bind_ipi(1);
    long up = smp_start(1, responder);
    if (up) { /* waiting for a vCPU that never starts would spin until --timeout */
        kprintf("notifyrt: vcpu_up(1) = %ld: FAIL\n", up);
        return 100;
    }
    irq_disable();
    for (unsigned i = 0; i < iters; i++) {
        uint64_t t0 = rdtsc();
        pvm_notify_block((unsigned)port_b, 0);
        wait_port(0, (unsigned)port_a);
        s[i] = rdtsc() - t0;
    }
    stop = 1;
    pvm_notify((unsigned)port_b);
    sort_u64(s, iters);
    uint64_t khz = boot_info->tsc_khz;
    kprintf("notifyrt: iters=%u median_ns=%lu p99_ns=%lu min_ns=%lu\n", iters,
            (unsigned long)(s[iters / 2] * 1000000 / khz), (unsigned long)(s[iters * 99 / 100] * 1000000 / khz),
            (unsigned long)(s[0] * 1000000 / khz));
    return 0;
}
PROGRAM(notifyrt);
