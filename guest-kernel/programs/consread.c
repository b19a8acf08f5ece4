/* test=consread: read the host's stdin through the console channel until end of input, and
 * echo it. Prints "consread: waiting" after its first RECV returned -EAGAIN (if one did). */
#include "chan.h"
#include "programs.h"

static int consread_main(void)
{
    char buf[256];
    unsigned long total = 0, eagain = 0;
    uint64_t deadline = deadline_ms(30000);
    for (;;) {
        long n = pvm_recv(PVM_CONSOLE_HANDLE, buf, sizeof buf - 1, 0);
        if (n == -PVM_EAGAIN) {
            if (!eagain++)
                kprintf("consread: waiting\n");
            if (rdtsc() > deadline) {
                kprintf("consread: no end of input: FAIL\n");
                return 1;
            }
            poll_pause();
            continue;
        }
        if (n < 0) {
            kprintf("consread: recv -> %ld: FAIL\n", n);
            return 1;
        }
        if (n == 0)
            break;
        buf[n] = 0;
        total += (unsigned long)n;
        kprintf("consread: got '%s'\n", buf);
    }
    kprintf("consread: end of input after %lu bytes\n", total);
    return 0;
}
PROGRAM(consread);
