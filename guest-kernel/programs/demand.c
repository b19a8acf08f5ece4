/* test=demand n=N: a CPL3 task touches N pages of its lazy heap; each first touch
 * is one page fault forwarded to the VMM and served demand-zero, and a second
 * pass over the same pages faults no more. */
#include "lib.h"
#include "programs.h"
#include "task.h"
#include "usys.h"

static int demand_main(void)
{
    char arg[16];
    long n = cmdline_get("n", arg, sizeof arg) >= 0 ? parse_long(arg) : 16;
    struct task *t = task_spawn("demand", U_DEMAND, n);
    if (!t)
        return 1;
    task_run_all();
    kprintf("demand: %ld pages touched twice; faults forwarded: heap %lu, stack %lu, other %lu; exit %ld\n", n,
            t->faults_heap, t->faults_stack, t->faults_other, t->exit_code);
    int ok = !t->killed && t->exit_code == 0 && t->faults_heap == (unsigned long)n && t->faults_other == 0;
    kprintf("demand: %s\n", ok ? "ok" : "FAIL");
    return ok ? 0 : 1;
}
PROGRAM(demand);
