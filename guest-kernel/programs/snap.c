/* test=snap [mode=guest|wait|timer] [count=N] [at=K] [period_ms=P]: snapshots (ABI 1.3).
 *
 * mode=guest (default): counts 0..N-1 printing each number and a running sum; at K it
 *   calls SNAPSHOT and prints the result (0 in the original, the clone id in a restored
 *   copy, which also reads boot_info->clone_id) and goes on counting.
 * mode=wait: prints "snap: ready", then ticks N times every P ms (BLOCK with a deadline),
 *   for a host-side snapshot (pyvmm run --snapshot-on SIGUSR1) at any point.
 * mode=timer: arms its one-shot timer P ms ahead, calls SNAPSHOT, waits for the tick.
 * mode=dirty [pages=D]: calls SNAPSHOT, then adds 1 to one byte in each of D pages (16 by
 *   default) and shuts down with the first one as exit code: 1 every time when a reset to the
 *   snapshot puts memory back (a fuzzer's loop), prints nothing after the snapshot.
 * Every mode checks that its clocks (TSC and CLOCK_GET) never go back. */
#include "arch.h"
#include "events.h"
#include "lib.h"
#include "programs.h"

static uint64_t last_tsc_ns, last_mono;
static unsigned backwards;
static volatile int fired;
#define DIRTY_MAX 32 /* the kernel image must stay below 4 MiB */
static volatile unsigned char dirty_area[DIRTY_MAX * 4096] __attribute__((aligned(4096)));

static void check_time(void)
{
    uint64_t t = now_ns(), m = (uint64_t)pvm_clock(PVM_CLOCK_MONOTONIC);
    if (t < last_tsc_ns || m < last_mono) {
        kprintf("snap: time went back (tsc %lu -> %lu, monotonic %lu -> %lu)\n", (unsigned long)last_tsc_ns,
                (unsigned long)t, (unsigned long)last_mono, (unsigned long)m);
        backwards++;
    }
    last_tsc_ns = t;
    last_mono = m;
}

static void on_tick(unsigned port, void *arg)
{
    (void)port;
    (void)arg;
    fired = 1;
}

static void report(long r)
{
    kprintf("snap: snapshot -> %ld clone=%lu seed=%s\n", r, (unsigned long)boot_info->clone_id,
            boot_info->clone_seed ? "set" : "zero");
}

static int snap_main(void)
{
    char arg[16];
    long count = cmdline_get("count", arg, sizeof arg) > 0 ? parse_long(arg) : 10;
    long at = cmdline_get("at", arg, sizeof arg) > 0 ? parse_long(arg) : 5;
    long period = cmdline_get("period_ms", arg, sizeof arg) > 0 ? parse_long(arg) : 50;
    char mode[16] = "guest";
    cmdline_get("mode", mode, sizeof mode);
    check_time();
    if (!strncmp(mode, "timer", 6)) {
        long port = evt_bind_virq(PVM_VIRQ_TIMER, 0);
        evt_set_handler((unsigned)port, on_tick, 0);
        long r = pvm_timer_set((uint64_t)pvm_clock(PVM_CLOCK_MONOTONIC) + (uint64_t)period * 1000000);
        kprintf("snap: timer armed (%ld)\n", r);
        report(pvm_hc_snapshot());
        wait_flag(&fired);
        check_time();
        kprintf("snap: timer fired, clone=%lu backwards=%u\n", (unsigned long)boot_info->clone_id, backwards);
        return backwards ? 1 : 0;
    }
    if (!strncmp(mode, "dirty", 6)) {
        long pages = cmdline_get("pages", arg, sizeof arg) > 0 ? parse_long(arg) : 16;
        if (pages < 1 || pages > DIRTY_MAX)
            pages = 16;
        long r = pvm_hc_snapshot();
        if (r < 0) {
            kprintf("snap: snapshot -> %ld\n", r);
            return 100;
        }
        for (long i = 0; i < pages; i++)
            dirty_area[i * 4096]++;
        return dirty_area[0];
    }
    if (!strncmp(mode, "wait", 5)) {
        kprintf("snap: ready\n");
        for (long i = 0; i < count; i++) {
            uint64_t deadline = (uint64_t)pvm_clock(PVM_CLOCK_MONOTONIC) + (uint64_t)period * 1000000;
            while ((uint64_t)pvm_clock(PVM_CLOCK_MONOTONIC) < deadline)
                pvm_block(deadline);
            check_time();
            kprintf("snap: tick %ld clone=%lu\n", i, (unsigned long)boot_info->clone_id);
        }
        kprintf("snap: done backwards=%u\n", backwards);
        return backwards ? 1 : 0;
    }
    unsigned long sum = 0;
    for (long i = 0; i < count; i++) {
        sum += (unsigned long)i * (unsigned long)i;
        kprintf("snap: %ld sum=%lu\n", i, sum);
        if (i == at)
            report(pvm_hc_snapshot());
        check_time();
    }
    kprintf("snap: done sum=%lu clone=%lu backwards=%u\n", sum, (unsigned long)boot_info->clone_id, backwards);
    return backwards ? 1 : 0;
}
PROGRAM(snap);
