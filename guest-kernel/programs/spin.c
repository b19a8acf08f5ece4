/* test=spin: a tight loop with no hypercalls; only --timeout stops it. */
#include "lib.h"
#include "programs.h"

static int spin_main(void)
{
    kprintf("spin: looping forever\n");
    for (;;)
        __asm__ volatile("pause");
    return 0;
}
PROGRAM(spin);
