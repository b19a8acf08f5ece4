/* test=cow: a CPL3 task forks (AS_CLONE: pages shared copy-on-write); parent and
 * child each write their own value to the same heap and stack addresses and
 * each sees its own value afterwards. */
#include "lib.h"
#include "programs.h"
#include "task.h"
#include "usys.h"

static int cow_main(void)
{
    struct task *p = task_spawn("fork parent", U_FORK, 0);
    if (!p)
        return 1;
    task_run_all();
    struct task *c = 0;
    for (int i = 0; i < MAX_TASKS; i++)
        if (tasks[i].name && !strncmp(tasks[i].name, "fork child", 16))
            c = &tasks[i];
    int ok = c && !p->killed && !c->killed && p->exit_code == 0 && c->exit_code == 0;
    kprintf("cow: parent (space %ld) exit %ld, child (space %ld) exit %ld: %s\n", p->as, p->exit_code, c ? c->as : -1,
            c ? c->exit_code : -1, ok ? "ok" : "FAIL");
    return ok ? 0 : 1;
}
PROGRAM(cow);
