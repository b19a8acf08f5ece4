/* test=errno: bad pointers, bad handles and unknown numbers get negative errnos. */
#include "lib.h"
#include "programs.h"

static int check(const char *what, long got, long want)
{
    kprintf("errno %s: %ld%s\n", what, got, got == want ? "" : " (WRONG)");
    return got == want ? 0 : 1;
}

static int errno_main(void)
{
    char buf[8] = "1234567";
    int bad = 0;
    bad += check("bad-pointer", pvm_send(PVM_CONSOLE_HANDLE, (void *)(boot_info->mem_size + 0x1000), 8, 0), -PVM_EFAULT);
    bad += check("overflow", pvm_send(PVM_CONSOLE_HANDLE, (void *)0xfffffffffffff000ul, 0x2000, 0), -PVM_EFAULT);
    bad += check("huge-length", pvm_send(PVM_CONSOLE_HANDLE, buf, ~0ul, 0), -PVM_EFAULT);
    bad += check("bad-handle", pvm_send(99, buf, 4, 0), -PVM_EBADF);
    bad += check("unknown-small", pvm_hypercall(50, 0, 0, 0, 0, 0), -PVM_ENOSYS);
    bad += check("unknown-huge", pvm_hypercall(0xdeadbeef, 0, 0, 0, 0, 0), -PVM_ENOSYS);
    bad += check("null", pvm_hypercall(PVM_HC_NULL, 0, 0, 0, 0, 0), 0);
    kprintf("errno: %s\n", bad ? "FAIL" : "ok");
    return bad ? 1 : 0;
}
PROGRAM(errno);
