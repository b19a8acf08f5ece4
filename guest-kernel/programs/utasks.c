/* test=utasks: two CPL3 tasks, each in its own address space, switched by handle;
 * then tasks that read another task's page, read kernel memory and write their
 * own text: each fault is reported and the task ended, not served. */
#include "as.h"
#include "lib.h"
#include "programs.h"
#include "task.h"
#include "usys.h"

static int utasks_main(void)
{
    int bad = 0;
    struct task *a = task_spawn("hello-1", U_HELLO, 0), *b = task_spawn("hello-2", U_HELLO, 0);
    if (!a || !b)
        return 1;
    /* Task 1 gets a private page holding a secret; no other space maps it. */
    uint64_t secret = kpage_alloc();
    *(volatile uint64_t *)secret = 0x5ec2e7;
    long r = as_map(a->as, USER_PRIV, secret, 4096, PVM_PROT_READ | PVM_PROT_USER);
    kprintf("utasks: tasks %d and %d in address spaces %ld and %ld; secret page mapped in %ld only (%ld)\n", a->id,
            b->id, a->as, b->as, a->as, r);
    task_run_all();
    bad += a->killed || a->exit_code != 1;
    bad += b->killed || b->exit_code != 2;
    kprintf("utasks: task 1 exit %ld, task 2 exit %ld; faults served: heap %lu+%lu stack %lu+%lu\n", a->exit_code,
            b->exit_code, a->faults_heap, b->faults_heap, a->faults_stack, b->faults_stack);

    struct task *peek = task_spawn("peek-other", U_PEEK, (long)USER_PRIV);
    struct task *kern = task_spawn("peek-kernel", U_PEEK, 0x200000);
    struct task *text = task_spawn("poke-text", U_POKE_TEXT, 0);
    if (!peek || !kern || !text)
        return 1;
    task_run_all();
    bad += !peek->killed + !kern->killed + !text->killed;
    kprintf("utasks: isolation: peek-other %s, peek-kernel %s, poke-text %s\n", peek->killed ? "stopped" : "NOT STOPPED",
            kern->killed ? "stopped" : "NOT STOPPED", text->killed ? "stopped" : "NOT STOPPED");
    kprintf("utasks: %s\n", bad ? "FAIL" : "ok");
    return bad ? 1 : 0;
}
PROGRAM(utasks);
