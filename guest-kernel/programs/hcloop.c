/* test=hcloop [iters=N]: every vCPU makes N NULL hypercalls at once; vCPU 0 reports
 * the aggregate rate, to compare 1 vCPU with several (GIL released in KVM_RUN). */
#include "arch.h"
#include "events.h"
#include "lib.h"
#include "programs.h"

static unsigned iters;
static volatile unsigned done;
static volatile int go;
static int done_port;
static void nothing(unsigned p, void *a) { (void)p; (void)a; }

static void loop(void)
{
    for (unsigned i = 0; i < iters; i++)
        pvm_hypercall(PVM_HC_NULL, 0, 0, 0, 0, 0);
}

static void worker(unsigned cpu)
{
    (void)cpu;
    while (!go)
        pvm_yield();
    loop();
    atomic_inc(&done);
    pvm_notify((unsigned)done_port);
}

static int hcloop_main(void)
{
    char arg[16];
    iters = cmdline_get("iters", arg, sizeof arg) > 0 ? (unsigned)parse_long(arg) : 20000;
    unsigned n = boot_info->nr_vcpus;
    done_port = (int)evt_bind_ipi(0);
    evt_set_handler((unsigned)done_port, nothing, 0);
    for (unsigned c = 1; c < n; c++) {
        long up = smp_start(c, worker);
        if (up) { /* waiting for a vCPU that never starts would spin until --timeout */
            kprintf("hcloop: vcpu_up(%u) = %ld: FAIL\n", c, up);
            return 100;
        }
    }
    uint64_t t0 = now_ns();
    go = 1;
    loop();
    atomic_inc(&done);
    wait_count(&done, n);
    uint64_t dt = now_ns() - t0;
    kprintf("hcloop: vcpus=%u hypercalls=%lu ns=%lu rate_per_s=%lu\n", n, (unsigned long)iters * n, (unsigned long)dt,
            (unsigned long)((unsigned long)iters * n * 1000000000ull / dt));
    return 0;
}
PROGRAM(hcloop);
