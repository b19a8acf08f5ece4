/* test=timer [ticks=N] [period_us=P]: a tick loop on the one-shot timer; reports lateness. */
#include "arch.h"
#include "events.h"
#include "lib.h"
#include "programs.h"

#define MAXT 256
static volatile int fired;
static volatile uint64_t fired_at;
static long skew; /* monotonic clock minus our TSC clock */

static void on_tick(unsigned port, void *arg)
{
    (void)port;
    (void)arg;
    fired_at = now_ns() + skew;
    fired = 1;
}

static int timer_main(void)
{
    char arg[16];
    unsigned ticks = cmdline_get("ticks", arg, sizeof arg) > 0 ? (unsigned)parse_long(arg) : 20;
    unsigned period = cmdline_get("period_us", arg, sizeof arg) > 0 ? (unsigned)parse_long(arg) : 2000;
    static uint64_t late[MAXT];
    if (ticks > MAXT)
        ticks = MAXT;
    long port = evt_bind_virq(PVM_VIRQ_TIMER, 0);
    if (port <= 0) {
        kprintf("timer: bind = %ld\n", port);
        return 2;
    }
    evt_set_handler((unsigned)port, on_tick, 0);
    skew = pvm_clock(PVM_CLOCK_MONOTONIC) - (long)now_ns();
    long past = pvm_timer_set((uint64_t)pvm_clock(PVM_CLOCK_MONOTONIC) - 1000);
    kprintf("timer: past deadline -> %ld\n", past);
    unsigned got = 0, late_calls = 0;
    for (unsigned k = 0; k < ticks; k++) {
        fired = 0;
        uint64_t deadline = now_ns() + skew + period * 1000ull;
        long r = pvm_timer_set(deadline);
        if (r == -PVM_ETIME) { /* the deadline passed before the call arrived: late already */
            fired_at = now_ns() + skew;
            late_calls++;
        } else if (r) {
            kprintf("timer: timer_set = %ld\n", r);
            return 3;
        } else {
            wait_flag(&fired);
        }
        late[got++] = fired_at > deadline ? fired_at - deadline : 0;
    }
    sort_u64(late, got);
    kprintf("timer: ticks=%u period_us=%u late_calls=%u lateness_us min=%lu median=%lu max=%lu\n", got, period,
            late_calls,
            (unsigned long)(late[0] / 1000), (unsigned long)(late[got / 2] / 1000),
            (unsigned long)(late[got - 1] / 1000));
    return (got == ticks && past == -PVM_ETIME) ? 0 : 1;
}
PROGRAM(timer);
