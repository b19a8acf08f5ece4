/* test=irqwin [rounds=N] [mode=sti|check]: how long after `sti` an event raised while
 * interrupts were off reaches the upcall handler.
 *
 * Each round: interrupts off, arm the timer 500 us ahead, spin until pyvmm has raised it
 * (upcall_pending set: the upcall now waits for the guest to take interrupts), then `sti`
 * and time until the handler starts. mode=sti relies on the interrupt-window exit alone
 * (docs/abi.md section 8); mode=check is evt_irq_enable(): `sti`, then with upcall_pending
 * set one hypercall (YIELD), on whose return pyvmm injects the upcall. */
#include "arch.h"
#include "events.h"
#include "lib.h"
#include "programs.h"

#define MAXR 64
#define SPIN_LIMIT_NS 200000000ull /* 200 ms: an event that never comes fails the round */

static volatile int fired;
static volatile uint64_t fired_at;

static void on_tick(unsigned port, void *arg)
{
    (void)port;
    (void)arg;
    fired_at = now_ns();
    fired = 1;
}

static int irqwin_main(void)
{
    char arg[16];
    unsigned rounds = cmdline_get("rounds", arg, sizeof arg) > 0 ? (unsigned)parse_long(arg) : 20;
    int check = cmdline_get("mode", arg, sizeof arg) > 0 && !strncmp(arg, "check", sizeof arg);
    static uint64_t lat[MAXR];
    if (rounds == 0 || rounds > MAXR)
        rounds = MAXR;
    long port = evt_bind_virq(PVM_VIRQ_TIMER, 0);
    if (port <= 0) {
        kprintf("irqwin: bind = %ld\n", port);
        return 2;
    }
    evt_set_handler((unsigned)port, on_tick, 0);
    volatile uint8_t *pending = &shared_info->vcpu[this_cpu()].upcall_pending;
    long skew = pvm_clock(PVM_CLOCK_MONOTONIC) - (long)now_ns();
    unsigned lost = 0, late = 0;
    for (unsigned k = 0; k < rounds; k++) {
        fired = 0;
        irq_disable();
        long r = pvm_timer_set(now_ns() + skew + 500000);
        if (r == -PVM_ETIME && late++ < 1000) { /* a loaded host: the deadline passed on the way */
            irq_enable();
            k--;
            continue;
        }
        if (r) {
            irq_enable();
            kprintf("irqwin: timer_set = %ld\n", r);
            return 3;
        }
        uint64_t start = now_ns();
        while (!*pending && now_ns() - start < SPIN_LIMIT_NS)
            ;
        uint64_t t0 = now_ns();
        if (check)
            evt_irq_enable();
        else
            irq_enable();
        while (!fired && now_ns() - t0 < SPIN_LIMIT_NS)
            ;
        uint64_t t1 = fired ? fired_at : now_ns();
        if (!fired) {
            lost++;
            pvm_timer_set(0);
            evt_scan();
        }
        lat[k] = t1 - t0;
    }
    sort_u64(lat, rounds);
    kprintf("irqwin: mode=%s rounds=%u lost=%u after_sti_us min=%lu median=%lu max=%lu\n", check ? "check" : "sti",
            rounds, lost, (unsigned long)(lat[0] / 1000), (unsigned long)(lat[rounds / 2] / 1000),
            (unsigned long)(lat[rounds - 1] / 1000));
    return lost ? 1 : 0;
}
PROGRAM(irqwin);
