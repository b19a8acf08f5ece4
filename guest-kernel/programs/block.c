/* test=block: BLOCK times out at its deadline; a blocked vCPU is woken by NOTIFY (--vcpus 2). */
#include "arch.h"
#include "events.h"
#include "lib.h"
#include "programs.h"

static int wake_port, back_port;
static volatile int woken, answered;

static void on_wake(unsigned port, void *arg)
{
    (void)port;
    (void)arg;
    woken = 1;
}

static void on_back(unsigned port, void *arg)
{
    (void)port;
    (void)arg;
    answered = 1;
}

static void sleeper(unsigned cpu)
{
    (void)cpu;
    uint64_t t0 = now_ns();
    wait_flag(&woken); /* blocks with no deadline */
    kprintf("block: vcpu1 woken by notify after %lu us\n", (unsigned long)((now_ns() - t0) / 1000));
    pvm_notify(back_port);
}

static int block_main(void)
{
    long skew = pvm_clock(PVM_CLOCK_MONOTONIC) - (long)now_ns();
    uint64_t t0 = now_ns() + skew;
    long r = pvm_block(t0 + 3000000); /* 3 ms, nothing to wake us */
    uint64_t waited = now_ns() + skew - t0;
    kprintf("block: timeout -> %ld after %s3 ms\n", r, waited >= 3000000 ? ">= " : "< ");
    kprintf("block: yield -> %ld\n", pvm_yield());
    if (r != -PVM_ETIME || waited < 3000000)
        return 1;
    if (boot_info->nr_vcpus < 2)
        return 0;
    wake_port = (int)evt_bind_ipi(1);
    back_port = (int)evt_bind_ipi(0);
    evt_set_handler((unsigned)wake_port, on_wake, 0);
    evt_set_handler((unsigned)back_port, on_back, 0);
    long up = smp_start(1, sleeper);
    if (up) { /* waiting for a vCPU that never starts would spin until --timeout */
        kprintf("block: vcpu_up(1) = %ld: FAIL\n", up);
        return 100;
    }
    pvm_block(now_ns() + skew + 2000000); /* let vcpu1 go to sleep first */
    pvm_notify(wake_port);
    wait_flag(&answered);
    kprintf("block: ok\n");
    return 0;
}
PROGRAM(block);
