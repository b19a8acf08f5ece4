/* test=smpid: each vCPU reports the id it reads back from its per-CPU area (GS base). */
#include "events.h"
#include "lib.h"
#include "programs.h"

static volatile unsigned seen[PVM_MAX_VCPUS], count;

static void report(unsigned cpu)
{
    seen[cpu] = this_cpu() + 100;
    atomic_inc(&count);
}

static int smpid_main(void)
{
    unsigned n = boot_info->nr_vcpus;
    report(0);
    for (unsigned c = 1; c < n; c++) {
        long r = smp_start(c, report);
        if (r) { /* waiting for a vCPU that never starts would spin until --timeout */
            kprintf("smpid: vcpu_up(%u) = %ld: FAIL\n", c, r);
            return 100;
        }
    }
    while (count < n)
        pvm_yield();
    int bad = 0;
    for (unsigned c = 0; c < n; c++) {
        kprintf("smpid: vcpu %u says %u\n", c, seen[c] - 100);
        bad += seen[c] != c + 100;
    }
    return bad;
}
PROGRAM(smpid);
