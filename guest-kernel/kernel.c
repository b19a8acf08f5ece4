/* pyvmm bundled guest kernel: prints a banner and its command line through the
 * console channel, runs the test program the command line names, and shuts
 * down with an exit code. No APIC, PIC, PIT or UART: only hypercalls. */
#include "arch.h"
#include "events.h"
#include "lib.h"
#include "programs.h"

extern const struct program __programs_start[], __programs_end[];

static const struct program *find_program(const char *name)
{
    for (const struct program *p = __programs_start; p < __programs_end; p++)
        if (!strncmp(p->name, name, 64))
            return p;
    return 0;
}

__attribute__((noreturn)) void kmain(const struct pvm_boot_info *bi)
{
    char arg[64];
    boot_info = bi;
    if (bi->magic != PVM_BOOT_INFO_MAGIC || (bi->abi_version >> 16) != PVM_ABI_VERSION_MAJOR)
        pvm_shutdown(254);
    if (cmdline_get("quiet", arg, sizeof arg) < 0) /* quiet=1: the console is a program's stdout (exec) */
        kprintf("pyvmm guest kernel: ABI %u.%u, %lu MiB, %u vCPU(s)\ncmdline: %s\n", bi->abi_version >> 16,
                bi->abi_version & 0xffff, (unsigned long)(bi->mem_size >> 20), bi->nr_vcpus,
                (const char *)bi->cmdline);

    arch_init(); /* after the banner: its cost does not delay the first hypercall */
    events_init_cpu(0);
    hw_init_cpu();
    int code = 0;
    if (cmdline_get("test", arg, sizeof arg) >= 0) {
        const struct program *p = find_program(arg);
        if (!p) {
            kprintf("unknown test program '%s'\n", arg);
            pvm_shutdown(127);
        }
        code = p->main();
    }
    if (cmdline_get("exit", arg, sizeof arg) >= 0)
        code = (int)parse_long(arg);
    pvm_shutdown(code);
}
