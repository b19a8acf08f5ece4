/* test=flood: write the console as fast as it takes data.
 *   bytes=N   write N bytes of numbered lines through kprintf's back-pressure wait, then exit 0;
 *   (none)    SEND 4 KiB forever, ignoring -EAGAIN: a guest that never stops printing. */
#include "lib.h"
#include "programs.h"

static char block[4096];

static int flood_main(void)
{
    char arg[24];
    for (unsigned i = 0; i < sizeof block; i++)
        block[i] = (i % 64 == 63) ? '\n' : (char)('a' + i % 26);
    if (cmdline_get("bytes", arg, sizeof arg) > 0) {
        unsigned long total = (unsigned long)parse_long(arg), done = 0;
        while (done < total) {
            unsigned long n = total - done < sizeof block ? total - done : sizeof block;
            long r = console_write(block, n);
            if (r <= 0)
                return 1;
            done += (unsigned long)r;
        }
        return 0;
    }
    for (;;)
        pvm_send(PVM_CONSOLE_HANDLE, block, sizeof block, 0);
}
PROGRAM(flood);
