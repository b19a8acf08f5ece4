/* Memory calls on the program's address space, all through the pagetable-set ABI: brk and
 * anonymous mmap are demand-zero ranges (AS_LAZY) whose faults the VMM serves; a private file
 * mapping is a demand-zero range filled at once from the file (USER_RECV), then protected. */
#include "linux.h"

#include "as.h"

#define PAGE 4096ULL
#define PAGE_UP(x) (((x) + PAGE - 1) & ~(PAGE - 1))
#define PROT_READ 1
#define PROT_WRITE 2
#define PROT_EXEC 4
#define MAP_SHARED 0x01
#define MAP_PRIVATE 0x02
#define MAP_FIXED 0x10
#define MAP_ANONYMOUS 0x20
#define MAP_FIXED_NOREPLACE 0x100000

/* Linux prot -> AS prot. x86 cannot map write- or exec-only; PROT_NONE is a range the program
 * cannot touch at all (kernel-only), ready for a later mprotect. */
static unsigned as_prot(uint64_t prot)
{
    unsigned p = PVM_PROT_READ;
    if (prot & PROT_WRITE)
        p |= PVM_PROT_WRITE;
    if (prot & PROT_EXEC)
        p |= PVM_PROT_EXEC;
    if (prot & (PROT_READ | PROT_WRITE | PROT_EXEC))
        p |= PVM_PROT_USER;
    return p;
}

static long as_errno(long r) { return r == -PVM_ENOSPC || r == -PVM_ENOMEM ? -LX_ENOMEM : r; }

static long do_brk(uint64_t want)
{
    if (want < lx.brk_start || want > lx.brk_max)
        return (long)lx.brk;
    uint64_t old_end = PAGE_UP(lx.brk), new_end = PAGE_UP(want);
    long r = 0;
    if (new_end > old_end)
        r = as_lazy(lx.as, old_end, new_end - old_end, PVM_PROT_READ | PVM_PROT_WRITE | PVM_PROT_USER);
    else if (new_end < old_end)
        r = as_unmap(lx.as, new_end, old_end - new_end);
    if (r == 0)
        lx.brk = want;
    return (long)lx.brk;
}

static long do_mmap(uint64_t addr, uint64_t len, uint64_t prot, uint64_t flags, int64_t fd, uint64_t off)
{
    if (len == 0 || (off & (PAGE - 1)) || !(flags & (MAP_SHARED | MAP_PRIVATE)))
        return -LX_EINVAL;
    if (len > lx.mmap_end)
        return -LX_ENOMEM;
    len = PAGE_UP(len);
    uint64_t va;
    if (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) {
        if (addr & (PAGE - 1) || !lx_user_range(addr, len))
            return -LX_EINVAL;
        va = addr;
        if (flags & MAP_FIXED)
            as_unmap(lx.as, va, len);
    } else {
        if (lx.mmap_next + len > lx.mmap_end || lx.mmap_next + len < lx.mmap_next)
            return -LX_ENOMEM;
        va = lx.mmap_next;
        lx.mmap_next += len;
    }
    unsigned p = as_prot(prot);
    if (flags & MAP_ANONYMOUS) {
        long r = as_lazy(lx.as, va, len, p);
        return r < 0 ? as_errno(r) : (long)va;
    }
    if (flags & MAP_SHARED && prot & PROT_WRITE)
        return -LX_EINVAL; /* shared writable file mappings: not supported */
    extern long lx_file_handle(int64_t fd);
    long h = lx_file_handle(fd);
    if (h < 0)
        return h;
    long r = as_lazy(lx.as, va, len, PVM_PROT_READ | PVM_PROT_WRITE | PVM_PROT_USER);
    if (r < 0)
        return as_errno(r);
    for (uint64_t done = 0; done < len;) {
        long n = pvm_hc_user_recv((unsigned long)h, va + done, len - done, off + done, (unsigned long)lx.as);
        if (n < 0) {
            as_unmap(lx.as, va, len);
            return n;
        }
        if (n == 0)
            break; /* past the end of the file: the rest stays zero */
        done += (uint64_t)n;
    }
    r = as_protect(lx.as, va, len, p);
    return r < 0 ? r : (long)va;
}

long lx_mm_call(long nr, const uint64_t *a, int *handled)
{
    *handled = 1;
    switch (nr) {
    case 12: /* brk */
        return do_brk(a[0]);
    case 9: /* mmap */
        return do_mmap(a[0], a[1], a[2], a[3], (int64_t)a[4], a[5]);
    case 11: /* munmap */
        if (a[0] & (PAGE - 1) || a[1] == 0 || !lx_user_range(a[0], a[1]))
            return -LX_EINVAL;
        return as_errno(as_unmap(lx.as, a[0], PAGE_UP(a[1])));
    case 10: /* mprotect */
        if (a[0] & (PAGE - 1) || !lx_user_range(a[0], a[1] ? a[1] : 1))
            return a[1] ? -LX_EINVAL : 0;
        return a[1] ? as_errno(as_protect(lx.as, a[0], PAGE_UP(a[1]), as_prot(a[2]))) : 0;
    case 28: /* madvise: advice only (MADV_DONTNEED keeps the pages: not zeroed) */
        return 0;
    }
    *handled = 0;
    return 0;
}
