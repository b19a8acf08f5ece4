/* test=pingpong [rounds=N]: every ordered pair of vCPUs (i, j) plays N rounds of
 * ping-pong with NOTIFY on IPI ports, all pairs at once; vCPU 0 checks every count.
 * Run with --vcpus N (2..16). */
#include "arch.h"
#include "events.h"
#include "lib.h"
#include "programs.h"

#define MAXC 16
static unsigned ncpu, rounds;
static int ping_port[MAXC][MAXC]; /* i -> j, delivered to j */
static int pong_port[MAXC][MAXC]; /* j -> i, delivered to i */
static volatile unsigned ping_recv[MAXC][MAXC], pong_recv[MAXC][MAXC];
static volatile unsigned finished;
static volatile int all_done;
static int done_port;

static void on_ping(unsigned port, void *arg)
{
    (void)port;
    unsigned from = (unsigned)(uintptr_t)arg, me = this_cpu();
    ping_recv[me][from]++;
    pvm_notify(pong_port[me][from]);
}

static void on_pong(unsigned port, void *arg)
{
    (void)port;
    pong_recv[this_cpu()][(unsigned)(uintptr_t)arg]++;
}

static void on_done(unsigned port, void *arg)
{
    (void)port;
    (void)arg;
}

static void play(unsigned me)
{
    for (unsigned j = 0; j < ncpu; j++) {
        if (j == me)
            continue;
        for (unsigned r = 0; r < rounds; r++) {
            pvm_notify(ping_port[me][j]);
            wait_count(&pong_recv[me][j], r + 1);
        }
    }
    atomic_inc(&finished);
    pvm_notify(done_port);
}

static void secondary(unsigned me)
{
    play(me);
    wait_flag(&all_done); /* keep answering pings until everyone is done */
}

static int pingpong_main(void)
{
    char arg[16];
    ncpu = boot_info->nr_vcpus < MAXC ? boot_info->nr_vcpus : MAXC;
    rounds = cmdline_get("rounds", arg, sizeof arg) > 0 ? (unsigned)parse_long(arg) : 5;
    if (ncpu < 2) {
        kprintf("pingpong: needs --vcpus 2 or more\n");
        return 2;
    }
    for (unsigned i = 0; i < ncpu; i++)
        for (unsigned j = 0; j < ncpu; j++) {
            if (i == j)
                continue;
            ping_port[i][j] = (int)evt_bind_ipi(j);
            pong_port[j][i] = (int)evt_bind_ipi(i);
            if (ping_port[i][j] <= 0 || pong_port[j][i] <= 0) {
                kprintf("pingpong: bind failed %d %d\n", ping_port[i][j], pong_port[j][i]);
                return 3;
            }
            evt_set_handler(ping_port[i][j], on_ping, (void *)(uintptr_t)i);
            evt_set_handler(pong_port[j][i], on_pong, (void *)(uintptr_t)j);
        }
    done_port = (int)evt_bind_ipi(0);
    evt_set_handler(done_port, on_done, 0);
    uint64_t t0 = now_ns();
    for (unsigned c = 1; c < ncpu; c++) {
        long r = smp_start(c, secondary);
        if (r) {
            kprintf("pingpong: vcpu_up(%u) = %ld\n", c, r);
            return 4;
        }
    }
    play(0);
    wait_count(&finished, ncpu);
    uint64_t t1 = now_ns();
    all_done = 1;
    unsigned bad = 0, total = 0;
    for (unsigned i = 0; i < ncpu; i++)
        for (unsigned j = 0; j < ncpu; j++) {
            if (i == j)
                continue;
            total += ping_recv[j][i] + pong_recv[i][j];
            if (ping_recv[j][i] != rounds || pong_recv[i][j] != rounds) {
                kprintf("pingpong: pair %u->%u pings=%u pongs=%u (want %u)\n", i, j, ping_recv[j][i],
                        pong_recv[i][j], rounds);
                bad++;
            }
        }
    kprintf("pingpong: %u vcpus, %u pairs x %u rounds, %u notifications, %lu us, %s\n", ncpu, ncpu * (ncpu - 1),
            rounds, total, (unsigned long)((t1 - t0) / 1000), bad ? "FAIL" : "ok");
    return bad ? 1 : 0;
}
PROGRAM(pingpong);
