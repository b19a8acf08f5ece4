/* test=multicall: one MULTICALL runs a batch; every entry gets its own result. */
#include "events.h"
#include "lib.h"
#include "programs.h"

static int multicall_main(void)
{
    static const char msg[] = "multicall: sent from inside a batch\n";
    static struct pvm_multicall_entry batch[4] = {
        {PVM_HC_NULL, {0}, 0},
        {PVM_HC_SEND, {PVM_CONSOLE_HANDLE, 0, sizeof msg - 1, 0, 0}, 0},
        {999, {0}, 0},
        {PVM_HC_CLOCK_GET, {PVM_CLOCK_MONOTONIC}, 0},
    };
    batch[1].args[1] = (uint64_t)msg;
    long n = pvm_hypercall(PVM_HC_MULTICALL, (uint64_t)batch, 4, 0, 0, 0);
    kprintf("multicall: ran %ld: results %ld %ld %ld %s\n", n, (long)batch[0].result, (long)batch[1].result,
            (long)batch[2].result, (long)batch[3].result > 0 ? "clock-ok" : "clock-bad");
    return (n == 4 && batch[0].result == 0 && (long)batch[1].result == (long)sizeof msg - 1 &&
            (long)batch[2].result == -PVM_ENOSYS && (long)batch[3].result > 0)
               ? 0
               : 1;
}
PROGRAM(multicall);
