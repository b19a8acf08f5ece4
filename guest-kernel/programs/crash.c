/* test=crash: loads an empty IDT and executes ud2 -> triple fault -> crash report. */
#include "lib.h"
#include "programs.h"

static int crash_main(void)
{
    struct {
        uint16_t limit;
        uint64_t base;
    } __attribute__((packed)) empty = {0, 0};
    kprintf("crash: executing ud2 with no IDT\n");
    __asm__ volatile("lidt %0\n\tud2" : : "m"(empty));
    return 0;
}
PROGRAM(crash);
