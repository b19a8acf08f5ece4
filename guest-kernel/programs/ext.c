/* test=ext: the extension range (ABI 1.1). Lists what boot info announces, then calls
 * every announced number with (buffer, length, 3, 4, 5) where the buffer holds "ping",
 * and one number that is not announced (-ENOSYS). A host-side handler (pyvmm.VM.hypercall
 * or a --plugin) decides the results; the test reads them from the console. */
#include "lib.h"
#include "programs.h"

static int ext_main(void)
{
    static char buf[64] = "ping";
    if (!(boot_info->features & PVM_FEAT_EXTENSIONS)) {
        kprintf("ext: no extension range\n");
        return 3;
    }
    kprintf("ext: base=%u count=%u registered=%lx\n", boot_info->ext_base, boot_info->ext_count,
            (unsigned long)boot_info->ext_registered);
    int tried_unregistered = 0;
    for (unsigned i = 0; i < boot_info->ext_count; i++) {
        unsigned long nr = boot_info->ext_base + i;
        if (boot_info->ext_registered & (1ul << i)) {
            long r = pvm_hypercall(nr, (unsigned long)buf, 4, 3, 4, 5);
            kprintf("ext %lu: %ld buf=%s\n", nr, r, buf);
        } else if (!tried_unregistered) {
            tried_unregistered = 1;
            kprintf("ext %lu unregistered: %ld\n", nr, pvm_hypercall(nr, 0, 0, 0, 0, 0));
        }
    }
    kprintf("ext beyond: %ld\n", pvm_hypercall(boot_info->ext_base + boot_info->ext_count, 0, 0, 0, 0, 0));
    return 0;
}
PROGRAM(ext);
