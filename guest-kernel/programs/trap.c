/* test=trap: #UD and #PF reach the kernel's C handlers through its own IDT. */
#include "arch.h"
#include "lib.h"
#include "programs.h"

static volatile int ud_seen;

static void on_ud(struct trap_frame *tf)
{
    ud_seen++;
    tf->rip += 2; /* skip the ud2 */
}

static int trap_main(void)
{
    trap_set_handler(6, on_ud);
    __asm__ volatile("ud2");
    kprintf("trap: #UD handled %d time(s)\n", ud_seen);
    trap_set_handler(6, 0);
    kprintf("trap: now a NULL read, which the default handler reports\n");
    return *(volatile int *)0;
}
PROGRAM(trap);
