/* test=asprot: a task writes its heap page, makes it read-only (AS_PROTECT through
 * a system call), writes again: that fault is reported and the task ended. */
#include "lib.h"
#include "programs.h"
#include "task.h"
#include "usys.h"

static int asprot_main(void)
{
    struct task *t = task_spawn("protect", U_PROTECT, 0);
    if (!t)
        return 1;
    task_run_all();
    kprintf("asprot: %s\n", t->killed ? "ok" : "FAIL (the write was not stopped)");
    return t->killed ? 0 : 1;
}
PROGRAM(asprot);
