/* User programs: run at CPL3, each task in its own address space. Only system
 * calls reach the kernel; every page fault goes to the VMM (PAGE_FAULT). */
#include "ulib.h"

static long hello(long id)
{
    struct uline l;
    l.n = 0;
    unsigned short cs;
    __asm__ volatile("mov %%cs, %0" : "=r"(cs));
    ul_str(&l, "task ");
    ul_num(&l, id, 10);
    ul_str(&l, ": hello from CPL");
    ul_num(&l, cs & 3, 10);
    ul_str(&l, "\n");
    ul_send(&l);
    volatile long *heap = (volatile long *)USER_HEAP;
    for (int i = 0; i < 4; i++)
        heap[i * 512] = id * 1000 + i;
    usys(SYS_YIELD, 0, 0, 0); /* the other task runs, in its own space, at the same addresses */
    int ok = 1;
    for (int i = 0; i < 4; i++)
        ok &= heap[i * 512] == id * 1000 + i;
    ul_str(&l, "task ");
    ul_num(&l, id, 10);
    ul_str(&l, ok ? ": heap intact after the switch\n" : ": heap CORRUPT\n");
    ul_send(&l);
    return ok ? id : 100 + id;
}

static long peek(long id, uint64_t addr)
{
    struct uline l;
    l.n = 0;
    ul_str(&l, "task ");
    ul_num(&l, id, 10);
    ul_str(&l, ": reading ");
    ul_num(&l, addr, 16);
    ul_str(&l, "\n");
    ul_send(&l);
    long v = *(volatile long *)addr;
    ul_str(&l, "task read ");
    ul_num(&l, (unsigned long)v, 16);
    ul_str(&l, " (it should have been stopped)\n");
    ul_send(&l);
    return 1;
}

static long poke_text(long id)
{
    struct uline l;
    l.n = 0;
    ul_str(&l, "task ");
    ul_num(&l, id, 10);
    ul_str(&l, ": writing to my own text\n");
    ul_send(&l);
    *(volatile char *)USER_TEXT = 0;
    ul_str(&l, "task wrote its text (it should have been stopped)\n");
    ul_send(&l);
    return 1;
}

static long demand(long n)
{
    volatile long *heap = (volatile long *)USER_HEAP;
    for (long i = 0; i < n; i++) /* one fault per page */
        heap[i * 512] = i + 1;
    long sum = 0;
    for (long i = 0; i < n; i++) /* no fault: the pages are there now */
        sum += heap[i * 512] + heap[i * 512 + 7];
    struct uline l;
    l.n = 0;
    ul_str(&l, "demand: touched ");
    ul_num(&l, n, 10);
    ul_str(&l, " heap pages, sum ");
    ul_num(&l, sum, 10);
    ul_str(&l, "\n");
    ul_send(&l);
    return sum == n * (n + 1) / 2 ? 0 : 1;
}

static long fork_test(void)
{
    volatile long *heap = (volatile long *)USER_HEAP;
    volatile long local = 7;
    heap[0] = 100;
    long child = usys(SYS_FORK, 0, 0, 0);
    long mine = child == 0 ? 200 : 300;
    heap[0] = mine;   /* each copy writes its own value: a COW fault in each */
    local = mine + 1; /* the stack is copied on write too */
    usys(SYS_YIELD, 0, 0, 0);
    usys(SYS_YIELD, 0, 0, 0);
    struct uline l;
    l.n = 0;
    ul_str(&l, child == 0 ? "cow child: " : "cow parent: ");
    ul_str(&l, "heap ");
    ul_num(&l, heap[0], 10);
    ul_str(&l, " stack ");
    ul_num(&l, local, 10);
    ul_str(&l, "\n");
    ul_send(&l);
    return heap[0] == mine && local == mine + 1 ? 0 : 1;
}

static long protect(long id)
{
    volatile long *heap = (volatile long *)USER_HEAP;
    heap[0] = 1;
    long r = usys(SYS_MPROTECT, USER_HEAP, 4096, PVM_PROT_READ | PVM_PROT_USER);
    struct uline l;
    l.n = 0;
    ul_str(&l, "task ");
    ul_num(&l, id, 10);
    ul_str(&l, ": heap page now read-only (mprotect ");
    ul_num(&l, r, 10);
    ul_str(&l, "), reads ");
    ul_num(&l, heap[0], 10);
    ul_str(&l, ", writing it\n");
    ul_send(&l);
    heap[0] = 2;
    ul_str(&l, "task wrote a read-only page (it should have been stopped)\n");
    ul_send(&l);
    return 1;
}

static long pager(uint64_t va)
{
    struct uline l;
    l.n = 0;
    ul_str(&l, "pager page says: ");
    ul_str(&l, (const char *)va);
    ul_str(&l, "\n");
    ul_send(&l);
    return 0;
}

static long bench(long n)
{
    /* Demand-zero faults: each first touch of a heap page is a fault served by the VMM. */
    volatile char *heap = (volatile char *)USER_HEAP;
    uint64_t t0 = urdtsc();
    for (long i = 0; i < n; i++)
        heap[i * 4096] = 1;
    uint64_t t1 = urdtsc();
    for (long i = 0; i < n; i++) /* the same loop with no fault, to subtract */
        heap[i * 4096] = 2;
    uint64_t t2 = urdtsc();
    usys(SYS_REPORT, (long)(t1 - t0), (long)(t2 - t1), 0);
    return 0;
}

/* test=bench bench=as-fault: one sample per demand-zero fault, timed here at CPL3
 * around the faulting store (fault -> kernel #PF -> PAGE_FAULT -> VMM -> IRET ->
 * retry). The kernel mapped its sample buffer at USER_PRIV; arg = first << 24 | n. */
static long fault_samples(long arg)
{
    unsigned long n = (unsigned long)arg & 0xffffff, first = (unsigned long)arg >> 24;
    volatile uint32_t *out = (volatile uint32_t *)USER_PRIV + first;
    for (unsigned long i = 0; i < n; i++) {
        uint32_t dt, t0;
        __asm__ volatile("rdtsc\n\t"
                         "mov %%eax, %[t0]\n\t"
                         "movb $1, (%[page])\n\t"
                         "rdtsc\n\t"
                         "sub %[t0], %%eax"
                         : "=&a"(dt), [t0] "=&r"(t0)
                         : [page] "r"(USER_HEAP + i * 4096)
                         : "rdx", "memory");
        out[i] = dt;
    }
    return 0;
}

/* test=bench bench=as-syscall: SYS_GETPID timed at CPL3, the kernel round trip
 * with no hypercall (what a fault costs the guest besides the VMM's share). */
static long syscall_samples(long arg)
{
    unsigned long n = (unsigned long)arg & 0xffffff, first = (unsigned long)arg >> 24;
    volatile uint32_t *out = (volatile uint32_t *)USER_PRIV + first;
    long bad = 0;
    for (unsigned long i = 0; i < n; i++) {
        uint32_t dt, t0;
        long r;
        __asm__ volatile("rdtsc\n\t"
                         "mov %%eax, %[t0]\n\t"
                         "mov %[nr], %%eax\n\t"
                         "syscall\n\t"
                         "mov %%rax, %[r]\n\t"
                         "rdtsc\n\t"
                         "sub %[t0], %%eax"
                         : "=&a"(dt), [t0] "=&r"(t0), [r] "=&r"(r)
                         : [nr] "i"(SYS_GETPID)
                         : "rcx", "rdx", "r11", "memory");
        out[i] = dt;
        bad += r <= 0;
    }
    return bad;
}

long user_main(long prog, long arg, long id)
{
    switch (prog) {
    case U_HELLO:
        return hello(id);
    case U_PEEK:
        return peek(id, (uint64_t)arg);
    case U_POKE_TEXT:
        return poke_text(id);
    case U_DEMAND:
        return demand(arg);
    case U_FORK:
        return fork_test();
    case U_PROTECT:
        return protect(id);
    case U_PAGER:
        return pager((uint64_t)arg);
    case U_BENCH:
        return bench(arg);
    case U_FAULT_SAMPLES:
        return fault_samples(arg);
    case U_SYSCALL_SAMPLES:
        return syscall_samples(arg);
    }
    return 127;
}
