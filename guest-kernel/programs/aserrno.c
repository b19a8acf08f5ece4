/* test=aserrno: every bad address-space request gets its documented errno, and the
 * VMM and kernel keep working afterwards (a task still runs). One line per check:
 * "aserrno NAME: got G want W". */
#include "as.h"
#include "lib.h"
#include "programs.h"
#include "task.h"
#include "usys.h"

#define RW (PVM_PROT_READ | PVM_PROT_WRITE | PVM_PROT_USER)
#define VA (USER_HEAP + 0x100000)

static int bad;

static void check(const char *what, long got, long want)
{
    kprintf("aserrno %s: got %ld want %ld%s\n", what, got, want, got == want ? "" : " (WRONG)");
    bad += got != want;
}

static struct pvm_as_op ops[3];

static int aserrno_main(void)
{
    task_init(); /* donates the frame pool */
    uint64_t page = kpage_alloc(), page2 = kpage_alloc();
    uint64_t ram = boot_info->mem_size;
    long h = as_create();
    check("create", h > 0, 1);
    check("map-unaligned-va", as_map(h, VA + 8, page, 4096, RW), -PVM_EINVAL);
    check("map-unaligned-gpa", as_map(h, VA, page + 8, 4096, RW), -PVM_EINVAL);
    check("map-zero-length", as_map(h, VA, page, 0, RW), -PVM_EINVAL);
    check("map-kernel-slot", as_map(h, 0x1000, page, 4096, RW), -PVM_EINVAL);
    check("map-non-canonical", as_map(h, 0x0000800000000000ULL, page, 4096, RW), -PVM_EINVAL);
    check("map-length-wraps", as_map(h, VA, page, ~0xfffULL, RW), -PVM_EINVAL);
    check("map-bad-prot", as_map(h, VA, page, 4096, 0x10 | PVM_PROT_READ), -PVM_EINVAL);
    check("map-write-only", as_map(h, VA, page, 4096, PVM_PROT_WRITE), -PVM_EINVAL);
    check("map-outside-ram", as_map(h, VA, ram, 4096, RW), -PVM_EFAULT);
    check("map-gpa-wraps", as_map(h, VA, 0xfffffffffffff000ULL, 0x2000, RW), -PVM_EFAULT);
    check("map-page-table-writable", as_map(h, VA, PVM_LAYOUT_PAGE_TABLE_POOL, 4096, RW), -PVM_EPERM);
    check("map-boot-info", as_map(h, VA, PVM_LAYOUT_BOOT_INFO, 4096, PVM_PROT_READ | PVM_PROT_USER), -PVM_EPERM);
    check("map-donated-frame", as_map(h, VA, 0x800000, 4096, RW), -PVM_EPERM);
    check("map-ok", as_map(h, VA, page, 4096, RW), 0);
    check("map-twice", as_map(h, VA, page2, 4096, RW), -PVM_EEXIST);
    check("lazy-over-mapped", as_lazy(h, VA, 8192, RW), -PVM_EEXIST);
    check("map-bad-handle", as_map(999, VA, page, 4096, RW), -PVM_EBADF);
    check("map-boot-space", as_map(PVM_AS_KERNEL_HANDLE, VA, page, 4096, RW), -PVM_EINVAL);
    check("unmap-unaligned", as_unmap(h, VA + 1, 4096), -PVM_EINVAL);
    check("protect-bad-prot", as_protect(h, VA, 4096, 0), -PVM_EINVAL);
    check("switch-bad-handle", as_switch(999), -PVM_EBADF);
    check("clone-bad-handle", as_clone(999), -PVM_EBADF);
    check("fault-bad-handle", as_page_fault(999, VA, 0, 0), -PVM_EBADF);
    check("fault-unmapped", as_page_fault(h, VA + 0x10000, PVM_PF_USER, 0), -PVM_EFAULT);
    check("fault-write-readonly-lazy", as_lazy(h, VA + 0x20000, 4096, PVM_PROT_READ | PVM_PROT_USER), 0);
    check("fault-write-readonly", as_page_fault(h, VA + 0x20000, PVM_PF_USER | PVM_PF_WRITE, 0), -PVM_EFAULT);
    check("donate-again", as_donate(0x800000, 4096), -PVM_EPERM);
    check("donate-unaligned", as_donate(0x3ff000 + 1, 4096), -PVM_EINVAL);
    check("donate-reserved", as_donate(PVM_LAYOUT_PAGE_TABLE_POOL, 4096), -PVM_EPERM);
    check("batch-too-big", as_batch(h, ops, PVM_AS_BATCH_MAX + 1), -PVM_E2BIG);
    check("batch-in-vmm-pages", as_batch(h, (struct pvm_as_op *)PVM_LAYOUT_PAGE_TABLE_POOL, 1), -PVM_EFAULT);
    ops[0] = (struct pvm_as_op){PVM_AS_OP_MAP, RW, VA + 0x30000, page2, 4096, 99};
    ops[1] = (struct pvm_as_op){PVM_AS_OP_MAP, RW, VA + 0x31000, ram, 4096, 99};
    ops[2] = (struct pvm_as_op){PVM_AS_OP_UNMAP, 0, VA + 0x30000, 0, 4096, 99};
    check("batch-stops-at-bad-entry", as_batch(h, ops, 3), 1);
    check("batch-result-0", ops[0].result, 0);
    check("batch-result-1", ops[1].result, -PVM_EFAULT);
    check("batch-result-2-untouched", ops[2].result, 99);
    ops[0] = (struct pvm_as_op){7, RW, VA + 0x40000, page2, 4096, 99};
    check("batch-unknown-op", as_batch(h, ops, 1), 0);
    check("batch-unknown-op-result", ops[0].result, -PVM_EINVAL);
    check("switch-in", as_switch(h), 0);
    check("destroy-active", as_destroy(h), -PVM_EBUSY);
    check("switch-out", as_switch(PVM_AS_KERNEL_HANDLE), 0);
    check("destroy", as_destroy(h), 0);
    check("switch-destroyed", as_switch(h), -PVM_EBADF);
    check("map-destroyed", as_map(h, VA, page, 4096, RW), -PVM_EBADF);
    check("destroy-twice", as_destroy(h), -PVM_EBADF);
    /* Exhaust the page-table pool: ENOMEM, not a crash; destroying gives the frames back. */
    static long handles[1024];
    int n = 0;
    long r = 0;
    while (n < 1024 && (r = as_create()) > 0)
        handles[n++] = r;
    check("create-until-exhausted", r, -PVM_ENOMEM);
    for (int i = 0; i < n; i++)
        as_destroy(handles[i]);
    long again = as_create();
    check("create-after-destroy", again > 0, 1);
    as_destroy(again);
    kprintf("aserrno: %d spaces fitted in the page-table pool\n", n);
    /* The host is intact: a task still runs in a fresh address space. */
    struct task *t = task_spawn("after-errors", U_DEMAND, 3);
    if (t)
        task_run_all();
    check("task-after-errors", t && !t->killed ? t->exit_code : -1, 0);
    kprintf("aserrno: %s\n", bad ? "FAIL" : "ok");
    return bad ? 1 : 0;
}
PROGRAM(aserrno);
