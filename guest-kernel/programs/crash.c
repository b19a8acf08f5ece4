/* test=crash: executes ud2 with no IDT installed -> triple fault -> crash report. */
#include "lib.h"
#include "programs.h"

static int crash_main(void)
{
    kprintf("crash: executing ud2 with no IDT\n");
    __asm__ volatile("ud2");
    return 0;
}
PROGRAM(crash);
