/* test=pager: a task reads a page that no lazy range covers: only a host-side
 * pager registered for USER_PAGER (tests/test_address_spaces.py) can serve it. */
#include "lib.h"
#include "programs.h"
#include "task.h"
#include "usys.h"

static int pager_main(void)
{
    struct task *t = task_spawn("pager", U_PAGER, (long)USER_PAGER);
    if (!t)
        return 1;
    task_run_all();
    kprintf("pager: task %s\n", t->killed ? "killed" : "done");
    return t->killed ? 1 : 0;
}
PROGRAM(pager);
