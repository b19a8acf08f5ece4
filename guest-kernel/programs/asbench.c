/* test=asbench: rough costs of the address-space calls against a NULL hypercall
 * timed in the same run (rdtsc): switch, a demand-zero fault from CPL3 (fault ->
 * kernel -> PAGE_FAULT -> retry), and one AS_MAP_BATCH of 512 pages. */
#include "as.h"
#include "lib.h"
#include "programs.h"
#include "task.h"
#include "usys.h"

#define N 200
#define RW (PVM_PROT_READ | PVM_PROT_WRITE | PVM_PROT_USER)
#define BATCH_VA (USER_HEAP + 0x800000)

static struct pvm_as_op ops[512];

static unsigned long ns(uint64_t cycles)
{
    unsigned long khz = boot_info->tsc_khz ? boot_info->tsc_khz : 1000000;
    return cycles * 1000000 / khz;
}

static void line(const char *what, unsigned long each_ns, unsigned long null_ns)
{
    unsigned long x100 = each_ns * 100 / (null_ns ? null_ns : 1);
    kprintf("asbench %s: %lu ns = %lu.%lu%lu x null\n", what, each_ns, x100 / 100, x100 / 10 % 10, x100 % 10);
}

static int asbench_main(void)
{
    task_init();
    uint64_t t0 = rdtsc();
    for (int i = 0; i < N; i++)
        pvm_hypercall(PVM_HC_NULL, 0, 0, 0, 0, 0);
    unsigned long null_ns = ns(rdtsc() - t0) / N;
    kprintf("asbench null: %lu ns\n", null_ns);

    long a = as_create(), b = as_create();
    as_switch(a); /* the first switch turns on the sync of sregs */
    t0 = rdtsc();
    for (int i = 0; i < N / 2; i++) {
        as_switch(b);
        as_switch(a);
    }
    line("switch", ns(rdtsc() - t0) / N, null_ns);
    as_switch(PVM_AS_KERNEL_HANDLE);

    /* 512 pages in one call: as one entry, as 512 contiguous entries (merged), as 512 scattered. */
    uint64_t base = kpage_alloc();
    for (int i = 1; i < 512; i++)
        kpage_alloc();
    ops[0] = (struct pvm_as_op){PVM_AS_OP_MAP, RW, BATCH_VA, base, 512 * 4096, 0};
    t0 = rdtsc();
    long r = as_batch(a, ops, 1);
    line("batch-512-one-entry", ns(rdtsc() - t0), null_ns);
    as_unmap(a, BATCH_VA, 512 * 4096);
    for (int i = 0; i < 512; i++)
        ops[i] = (struct pvm_as_op){PVM_AS_OP_MAP, RW, BATCH_VA + i * 4096ULL, base + i * 4096ULL, 4096, 0};
    t0 = rdtsc();
    r += as_batch(a, ops, 512);
    line("batch-512-entries", ns(rdtsc() - t0), null_ns);
    as_unmap(a, BATCH_VA, 512 * 4096);
    for (int i = 0; i < 512; i++)
        ops[i].gpa = base + (511 - i) * 4096ULL;
    t0 = rdtsc();
    r += as_batch(a, ops, 512);
    line("batch-512-scattered", ns(rdtsc() - t0), null_ns);
    if (r != 1 + 512 + 512)
        kprintf("asbench: batch returned %ld\n", r);
    as_destroy(a);
    as_destroy(b);

    /* Demand-zero faults from CPL3, timed by the task itself. */
    struct task *t = task_spawn("bench", U_BENCH, N);
    if (!t)
        return 1;
    task_run_all();
    long per = (report_a - report_b) / N;
    line("demand-zero-fault", ns(per > 0 ? (uint64_t)per : 0), null_ns);
    return 0;
}
PROGRAM(asbench);
