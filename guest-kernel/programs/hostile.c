/* test=hostile case=NAME: a guest that attacks the VMM on purpose (tests/test_hostile.py).
 *
 * Cases that the VMM answers with an errno print one line per attempt,
 * "hostile STEP: GOT" (plus " (WRONG)" on a mismatch), then "hostile: ok" or
 * "hostile: FAIL" and exit 0 or 1. Cases that must stop the VM (bad port I/O,
 * MMIO, triple fault, ...) print what they are about to do and do it.
 * A case whose hypercalls this VMM lacks prints "hostile: unsupported (...)"
 * and exits 0: the test skips then, so it switches on when the feature lands. */
#include "arch.h"
#include "as.h"
#include "chan.h"
#include "events.h"
#include "lib.h"
#include "programs.h"

static int bad;

static void check(const char *what, long got, long want)
{
    kprintf("hostile %s: %ld%s\n", what, got, got == want ? "" : " (WRONG)");
    bad += got != want;
}

static int result(void)
{
    kprintf("hostile: %s\n", bad ? "FAIL" : "ok");
    return bad ? 1 : 0;
}

static int unsupported(const char *what, long got)
{
    kprintf("hostile: unsupported (%s -> %ld)\n", what, got);
    return 0;
}

static long hc(unsigned long nr, unsigned long a0, unsigned long a1, unsigned long a2, unsigned long a3)
{
    return pvm_hypercall(nr, a0, a1, a2, a3, 0);
}

/* A scratch buffer in free RAM well above the kernel image. */
static char *scratch(void) { return (char *)(boot_info->mem_size / 2); }

/* RECV from the console, retrying while stdin has nothing yet (-EAGAIN). */
static long recv_retry(void *buf, unsigned long len)
{
    long r = -PVM_EAGAIN;
    for (unsigned long tries = 0; r == -PVM_EAGAIN && tries < 200000; tries++)
        r = pvm_recv(PVM_CONSOLE_HANDLE, buf, len, 0);
    return r;
}

/* -- errno cases ---------------------------------------------------------------------- */

static int past_ram(void)
{
    unsigned long end = boot_info->mem_size;
    check("send-at-end", pvm_send(PVM_CONSOLE_HANDLE, (void *)end, 8, 0), -PVM_EFAULT);
    check("send-straddling-end", pvm_send(PVM_CONSOLE_HANDLE, (void *)(end - 4), 8, 0), -PVM_EFAULT);
    check("send-far", pvm_send(PVM_CONSOLE_HANDLE, (void *)(1ul << 47), 8, 0), -PVM_EFAULT);
    check("recv-at-end", pvm_recv(PVM_CONSOLE_HANDLE, (void *)end, 8, 0), -PVM_EFAULT);
    check("info-at-end", hc(PVM_HC_CHANNEL_INFO, PVM_CONSOLE_HANDLE, end - 8, 0, 0), -PVM_EFAULT);
    check("multicall-at-end", hc(PVM_HC_MULTICALL, end - 8, 1, 0, 0), -PVM_EFAULT);
    check("vcpu_up-entry-at-end", hc(PVM_HC_VCPU_UP, 0, end, end, 0), -PVM_EFAULT);
    check("zero-length-at-end", pvm_send(PVM_CONSOLE_HANDLE, (void *)end, 0, 0), 0);
    check("zero-length-past-end", pvm_send(PVM_CONSOLE_HANDLE, (void *)(end + 1), 0, 0), -PVM_EFAULT);
    return result();
}

static int overflow(void)
{
    check("ptr-wraps", pvm_send(PVM_CONSOLE_HANDLE, (void *)0xfffffffffffff000ul, 0x2000, 0), -PVM_EFAULT);
    check("len-wraps", pvm_send(PVM_CONSOLE_HANDLE, (void *)0x200000, 0xffffffffffe00001ul, 0), -PVM_EFAULT);
    check("ptr-max", pvm_recv(PVM_CONSOLE_HANDLE, (void *)~0ul, 2, 0), -PVM_EFAULT);
    check("len-max", pvm_recv(PVM_CONSOLE_HANDLE, scratch(), ~0ul, 0), -PVM_EFAULT);
    check("len-2^63", pvm_send(PVM_CONSOLE_HANDLE, scratch(), 1ul << 63, 0), -PVM_EFAULT);
    check("multicall-count-max", hc(PVM_HC_MULTICALL, 0x200000, ~0ul, 0, 0), -PVM_E2BIG);
    check("info-ptr-wraps", hc(PVM_HC_CHANNEL_INFO, PVM_CONSOLE_HANDLE, ~0ul - 7, 0, 0), -PVM_EFAULT);
    return result();
}

static int lengths(void)
{
    char *buf = scratch();
    unsigned long room = boot_info->mem_size - (unsigned long)buf;
    check("send-zero", pvm_send(PVM_CONSOLE_HANDLE, buf, 0, 0), 0);
    check("recv-zero", pvm_recv(PVM_CONSOLE_HANDLE, buf, 0, 0), 0);
    check("send-zero-null", pvm_send(PVM_CONSOLE_HANDLE, 0, 0, 0), 0);
    /* A huge length that fits in RAM is a partial transfer: RECV returns what stdin has
     * (the test feeds exactly 10 bytes, then end of input). */
    check("recv-rest-of-ram", recv_retry(buf, room), 10);
    check("recv-eof", recv_retry(buf, room), 0);
    check("len-ram-plus-one", pvm_send(PVM_CONSOLE_HANDLE, 0, boot_info->mem_size + 1, 0), -PVM_EFAULT);
    return result();
}

static int numbers(void)
{
    static const unsigned long nrs[] = {18, 31, 48, 63, 64, 65, 1ul << 32, 1ul << 63, ~0ul};
    char what[32];
    for (unsigned i = 0; i < sizeof nrs / sizeof nrs[0]; i++) {
        ksnprintf(what, sizeof what, "nr-%#lx", nrs[i]);
        check(what, pvm_hypercall(nrs[i], ~0ul, ~0ul, ~0ul, ~0ul, ~0ul), -PVM_ENOSYS);
    }
    /* A nested unknown number in a batch gets its own -ENOSYS. */
    struct pvm_multicall_entry *e = (struct pvm_multicall_entry *)scratch();
    memset(e, 0, sizeof *e);
    e->nr = ~0ul;
    check("multicall-unknown", hc(PVM_HC_MULTICALL, (unsigned long)e, 1, 0, 0), 1);
    check("multicall-unknown-result", (long)e->result, -PVM_ENOSYS);
    return result();
}

/* Pointers into the VMM-owned pages below reserved_end. Reading them (SEND) is allowed:
 * the guest can read them through its own mappings anyway. Anything pyvmm would *write*
 * there on the guest's behalf (RECV, CHANNEL_INFO, MULTICALL results) is -EFAULT,
 * and the pages are unchanged afterwards. */
static int vmm_pages(void)
{
    uint64_t cr3;
    __asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
    uint64_t pt = cr3 & ~0xfffull;
    uint64_t pml4e = *(volatile uint64_t *)pt;
    uint64_t magic = boot_info->magic, shared = boot_info->shared_page;

    long sent = pvm_send(PVM_CONSOLE_HANDLE, (void *)PVM_LAYOUT_BOOT_INFO, 8, 0); /* "PVMMINFO" */
    kprintf("\n");
    check("send-boot-info", sent, 8);
    check("send-page-table", pvm_send(PVM_CONSOLE_HANDLE, (void *)pt, 0, 0), 0);
    static const struct {
        const char *name;
        unsigned long gpa, len;
    } dst[] = {
        {"null-page", 0, 8},
        {"boot-info", PVM_LAYOUT_BOOT_INFO, 8},
        {"cmdline", PVM_LAYOUT_CMDLINE, 8},
        {"gdt", PVM_LAYOUT_GDT, 8},
        {"page-table-pool", PVM_LAYOUT_PAGE_TABLE_POOL, 8},
        {"pool-end", PVM_LAYOUT_RESERVED_END - 8, 8},
        {"across-reserved-end", PVM_LAYOUT_RESERVED_END - 4, 8},
        {"shared-page-overrun", PVM_LAYOUT_SHARED_PAGE + 4096 - 4, 8},
    };
    char what[48];
    for (unsigned i = 0; i < sizeof dst / sizeof dst[0]; i++) {
        ksnprintf(what, sizeof what, "recv-%s", dst[i].name);
        check(what, pvm_recv(PVM_CONSOLE_HANDLE, (void *)dst[i].gpa, dst[i].len, 0), -PVM_EFAULT);
    }
    check("recv-page-table", pvm_recv(PVM_CONSOLE_HANDLE, (void *)pt, 8, 0), -PVM_EFAULT);
    check("info-boot-info", hc(PVM_HC_CHANNEL_INFO, PVM_CONSOLE_HANDLE, PVM_LAYOUT_BOOT_INFO, 0, 0), -PVM_EFAULT);
    check("info-page-table", hc(PVM_HC_CHANNEL_INFO, PVM_CONSOLE_HANDLE, pt, 0, 0), -PVM_EFAULT);
    /* A batch whose array is the boot info or a page table: its results would land there. */
    check("multicall-boot-info", hc(PVM_HC_MULTICALL, PVM_LAYOUT_BOOT_INFO, 1, 0, 0), -PVM_EFAULT);
    check("multicall-page-table", hc(PVM_HC_MULTICALL, pt, 1, 0, 0), -PVM_EFAULT);
    /* The shared page is the guest's to write: RECV into it works (the test feeds stdin). */
    check("recv-shared-page", recv_retry((void *)(PVM_LAYOUT_SHARED_PAGE + 4096 - 4), 4), 4);
    check("boot-info-intact", boot_info->magic == magic && boot_info->shared_page == shared, 1);
    check("page-table-intact", *(volatile uint64_t *)pt == pml4e, 1);
    return result();
}

/* -- cases that stop the VM ------------------------------------------------------------ */

static int pio(const char *how)
{
    kprintf("hostile: %s\n", how);
    if (!strncmp(how, "outb", 5))
        __asm__ volatile("outb %%al, $0xf5" : : "a"(PVM_HC_NULL));
    else if (!strncmp(how, "outw", 5))
        __asm__ volatile("outw %%ax, $0xf5" : : "a"(PVM_HC_NULL));
    else if (!strncmp(how, "inl", 4)) {
        uint32_t v;
        __asm__ volatile("inl $0xf5, %0" : "=a"(v));
    } else if (!strncmp(how, "outsl", 6)) {
        /* A string OUT of the right size: rep outsl with rcx = 2. */
        static const uint32_t two[2] = {0, 0};
        const void *p = two;
        unsigned long n = 2;
        __asm__ volatile("rep outsl" : "+S"(p), "+c"(n) : "d"(0xf5) : "memory");
    } else if (!strncmp(how, "port-out", 9))
        __asm__ volatile("outb %%al, $0x80" : : "a"(0x42));
    else if (!strncmp(how, "port-in", 8)) {
        uint8_t v;
        __asm__ volatile("inb $0x60, %0" : "=a"(v));
    }
    kprintf("hostile: %s came back\n", how);
    return 3;
}

/* Map a 2 MiB page of guest-physical space that is not RAM (GPA 3 GiB) at VA 512 GiB
 * with our own page tables, and touch it: an MMIO exit nothing handles. */
static uint64_t mmio_pml4[512] __attribute__((aligned(4096)));
static uint64_t mmio_pdpt[512] __attribute__((aligned(4096)));
static uint64_t mmio_pd[512] __attribute__((aligned(4096)));

static int mmio(int write)
{
    uint64_t cr3;
    __asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
    memcpy(mmio_pml4, (void *)(cr3 & ~0xfffull), sizeof mmio_pml4);
    mmio_pml4[1] = (uint64_t)mmio_pdpt | 3;
    mmio_pdpt[0] = (uint64_t)mmio_pd | 3;
    mmio_pd[0] = 0xc0000000ull | 0x83; /* present, writable, 2 MiB */
    __asm__ volatile("mov %0, %%cr3" : : "r"((uint64_t)mmio_pml4) : "memory");
    volatile uint64_t *p = (volatile uint64_t *)(1ull << 39);
    kprintf("hostile: MMIO %s at gpa 0xc0000000\n", write ? "write" : "read");
    if (write)
        *p = 0x1122334455667788ull;
    else
        kprintf("hostile: MMIO read gave %#lx\n", (unsigned long)*p);
    kprintf("hostile: MMIO came back\n");
    return 3;
}

static int triple(void)
{
    struct {
        uint16_t limit;
        uint64_t base;
    } __attribute__((packed)) empty = {0, 0};
    kprintf("hostile: NULL read with an empty IDT\n");
    __asm__ volatile("lidt %0" : : "m"(empty));
    return *(volatile int *)0;
}

static int ud(void)
{
    trap_set_handler(6, 0);
    kprintf("hostile: ud2 with no #UD handler\n");
    __asm__ volatile("ud2");
    return 3;
}

static int write_boot_info(void)
{
    kprintf("hostile: writing the read-only boot info\n");
    *(volatile uint64_t *)PVM_LAYOUT_BOOT_INFO = 0;
    kprintf("hostile: the write went through\n");
    return 3;
}

static int write_page_table(void)
{
    uint64_t cr3;
    __asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
    kprintf("hostile: writing the VMM's page table\n");
    *(volatile uint64_t *)(cr3 & ~0xfffull) = 0;
    kprintf("hostile: the write went through\n");
    return 3;
}

static int spin_cli(void)
{
    kprintf("hostile: cli; jmp . (no hypercall, interrupts off)\n");
    __asm__ volatile("cli\n1: jmp 1b");
    return 3;
}

/* Execute zeroed RAM ("add %al,(%rax)" over and over) until the end of RAM: the fetch
 * past it faults and the kernel reports #PF. */
static int runaway(void)
{
    unsigned long end = boot_info->mem_size;
    void *target = (void *)(end - 4096);
    memset(target, 0, 4096);
    kprintf("hostile: jumping into zeroed RAM at %p\n", target);
    __asm__ volatile("jmp *%0" : : "r"(target), "a"(scratch()));
    return 3;
}

/* Return from kmain: the code after `call kmain` in start.S shuts down with 255. */
static int return_from_kmain(void)
{
    kprintf("hostile: returning from kmain\n");
    /* The return address `call kmain` pushed is the last word below boot_stack_top. */
    __asm__ volatile("lea boot_stack_top-8(%%rip), %%rsp\n\tret" : : : "memory");
    return 3;
}

/* -- later-ABI cases (probe and report unsupported) ---------------------------------- */

static volatile unsigned storm_handled;
static void on_storm(unsigned port, void *arg)
{
    (void)port;
    (void)arg;
    storm_handled++;
}

static int storm(int forever)
{
    long port = evt_bind_ipi(0);
    if (port < 0)
        return unsupported("EVENT_BIND", port);
    evt_set_handler((unsigned)port, on_storm, 0);
    unsigned long n = 2000, ok = 0;
    /* Interrupts off: every raise after the first coalesces in the pending byte. */
    irq_disable();
    for (unsigned long i = 0; i < n; i++)
        ok += pvm_notify((unsigned)port) == 0;
    check("notify-cli-all-ok", (long)ok, (long)n);
    check("coalesced-pending", shared_info->evtchn_pending[port], 1);
    evt_scan();
    check("coalesced-handled", storm_handled, 1);
    /* Interrupts on: each raise is delivered as an upcall. */
    storm_handled = 0;
    ok = 0;
    irq_enable();
    if (forever) {
        kprintf("hostile: notifying myself forever\n");
        for (;;)
            pvm_notify((unsigned)port);
    }
    for (unsigned long i = 0; i < n; i++)
        ok += pvm_notify((unsigned)port) == 0;
    irq_disable();
    evt_scan();
    check("notify-sti-all-ok", (long)ok, (long)n);
    kprintf("hostile storm: %u upcalls handled for %lu notifies\n", storm_handled, n);
    check("storm-handled-some", storm_handled >= 1 && storm_handled <= n, 1);
    return result();
}

static void idle_cpu(unsigned cpu)
{
    (void)cpu;
    for (;;)
        pvm_block(0);
}

static int vcpu_up(void)
{
    unsigned long end = boot_info->mem_size;
    long r = hc(PVM_HC_VCPU_UP, ~0ul, 0x200000, end, 0);
    if (r == -PVM_ENOSYS)
        return unsupported("VCPU_UP", r);
    check("id-max", r, -PVM_EINVAL);
    check("id-64", hc(PVM_HC_VCPU_UP, 64, 0x200000, end, 0), -PVM_EINVAL);
    check("id-2^32", hc(PVM_HC_VCPU_UP, 1ul << 32, 0x200000, end, 0), -PVM_EINVAL);
    check("id-nr_vcpus", hc(PVM_HC_VCPU_UP, boot_info->nr_vcpus, 0x200000, end, 0), -PVM_EINVAL);
    check("self-running", hc(PVM_HC_VCPU_UP, 0, 0x200000, end, 0), -PVM_EBUSY);
    if (boot_info->nr_vcpus < 2)
        return result();
    check("entry-past-ram", hc(PVM_HC_VCPU_UP, 1, end, end, 0), -PVM_EFAULT);
    check("entry-max", hc(PVM_HC_VCPU_UP, 1, ~0ul, end, 0), -PVM_EFAULT);
    check("stack-zero", hc(PVM_HC_VCPU_UP, 1, 0x200000, 0, 0), -PVM_EINVAL);
    check("stack-past-ram", hc(PVM_HC_VCPU_UP, 1, 0x200000, end + 4096, 0), -PVM_EINVAL);
    check("start", smp_start(1, idle_cpu), 0);
    unsigned long busy = 0, n = 1000;
    for (unsigned long i = 0; i < n; i++)
        busy += hc(PVM_HC_VCPU_UP, 1, 0x200000, end, 0) == -PVM_EBUSY;
    check("again-1000-busy", (long)busy, (long)n);
    return result();
}

/* vCPU 1 started at a garbage entry (zeroed RAM, then the unmapped null page... whatever
 * it hits): its own triple fault stops the VM with a report naming vCPU 1. */
static int vcpu_up_garbage(void)
{
    if (boot_info->nr_vcpus < 2)
        return unsupported("--vcpus 2", 0);
    kprintf("hostile: starting vCPU 1 at the null page\n");
    long r = hc(PVM_HC_VCPU_UP, 1, 0, boot_info->mem_size, 0);
    if (r == -PVM_ENOSYS)
        return unsupported("VCPU_UP", r);
    kprintf("hostile: VCPU_UP -> %ld\n", r);
    for (;;)
        pvm_block(0);
}

/* Deadlines of 2^64-1 ns: the timer must still work for later deadlines, and BLOCK with
 * such a deadline sleeps until an event (regression: both used to raise OverflowError). */
static volatile long later_port;
static void notify_later(unsigned cpu)
{
    (void)cpu;
    uint64_t until = now_ns() + 5000000;
    while (now_ns() < until)
        __asm__ volatile("pause");
    pvm_notify((unsigned)later_port);
    for (;;)
        pvm_block(0);
}

static int huge_deadlines(void)
{
    long vport = evt_bind_virq(PVM_VIRQ_TIMER, 0);
    if (vport < 0)
        return unsupported("EVENT_BIND", vport);
    irq_disable();
    check("timer-max", pvm_timer_set(~0ul), 0);
    uint64_t settle = now_ns() + 20000000; /* let the timer thread start waiting for it */
    while (now_ns() < settle)
        __asm__ volatile("pause");
    check("timer-soon", pvm_timer_set(now_ns() + 2000000), 0);
    uint64_t give_up = now_ns() + 2000000000ull;
    while (!shared_info->evtchn_pending[vport] && now_ns() < give_up)
        __asm__ volatile("pause");
    check("timer-fired-while-running", shared_info->evtchn_pending[vport], 1);
    evt_scan();
    if (boot_info->nr_vcpus >= 2) {
        later_port = evt_bind_ipi(0);
        check("start-notifier", smp_start(1, notify_later), 0);
        check("block-max-woken", pvm_block(~0ul), 0);
    }
    return result();
}

static int as_storm(void)
{
    long h = hc(PVM_HC_AS_CREATE, 0, 0, 0, 0);
    if (h == -PVM_ENOSYS)
        return unsupported("AS_CREATE", h);
    if (h < 0) {
        check("first-create", h, 0);
        return result();
    }
    /* Create until pyvmm refuses (a documented errno, never a crash), destroy them all,
     * and do it again: the second round must get as far as the first. */
    static long handles[8192];
    unsigned long first = 0;
    handles[0] = h;
    for (int round = 0; round < 3; round++) {
        unsigned long n = round ? 0 : 1;
        long last = 0;
        while (n < sizeof handles / sizeof handles[0]) {
            last = hc(PVM_HC_AS_CREATE, 0, 0, 0, 0);
            if (last < 0)
                break;
            handles[n++] = last;
        }
        kprintf("hostile as round %d: %lu created, then %ld\n", round, n, last);
        if (last < 0)
            check("refused-with", last == -PVM_ENOMEM || last == -PVM_ENOSPC, 1);
        unsigned long destroyed = 0;
        for (unsigned long i = 0; i < n; i++)
            destroyed += hc(PVM_HC_AS_DESTROY, (unsigned long)handles[i], 0, 0, 0) == 0;
        check("all-destroyed", destroyed == n, 1);
        check("destroy-twice", hc(PVM_HC_AS_DESTROY, (unsigned long)handles[0], 0, 0, 0) < 0, 1);
        if (round == 0)
            first = n;
        else
            check("same-capacity", n == first, 1);
    }
    return result();
}

/* A CPL0 guest that clears CR0.WP and garbles its own page-table pool, then uses the
 * spaces whose tables it garbled: pyvmm must go by its own copy of the tables, so every
 * call still works, and no frame the guest named in a garbage entry is ever freed,
 * shared or handed out. */
#define WP_FRAMES 64ul
#define PTE_P 0x1ull
#define PTE_RW 0x2ull
#define PTE_US 0x4ull
#define PTE_COW (1ull << 9)
#define PTE_VMM (1ull << 11)
#define PTE_ADDR 0x000ffffffffff000ull

static uint64_t *table_of(uint64_t entry) { return (uint64_t *)(entry & PTE_ADDR); }

static uint64_t space_root(long h)
{
    uint64_t cr3;
    as_switch(h);
    __asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
    as_switch(0);
    return cr3 & PTE_ADDR;
}

static int wp_tables(void)
{
    long h = as_create();
    if (h == -PVM_ENOSYS)
        return unsupported("AS_CREATE", h);
    const unsigned rw = PVM_PROT_READ | PVM_PROT_WRITE | PVM_PROT_USER;
    char *own = scratch(); /* a guest page: mapped, then garbage tables */
    uint64_t donated = (uint64_t)own + (1ul << 20);
    uint64_t va = PVM_AS_USER_BASE;
    check("donate", as_donate(donated, WP_FRAMES * 4096), 0);
    check("map", as_map(h, va, (uint64_t)own, 4096, rw), 0);
    check("lazy", as_lazy(h, va + 4096, 8 * 4096, rw), 0);
    long faults = 0;
    for (int i = 1; i <= 3; i++)
        faults += as_page_fault(h, va + 4096ul * i, PVM_PF_WRITE | PVM_PF_USER, 0) == 0;
    check("faulted-in", faults, 3);

    /* va is PML4 slot 1, PDPT 0, PD 0: find its page table through the identity map. */
    uint64_t *pml4 = (uint64_t *)space_root(h);
    uint64_t *pdpt = table_of(pml4[1]);
    uint64_t *pd = table_of(pdpt[0]);
    uint64_t *pt = table_of(pd[0]);
    uint64_t *fake = (uint64_t *)(own + 4096); /* a "page table" in guest RAM, full of claims */
    for (int i = 0; i < 512; i++)
        fake[i] = (donated + 4096ul * (i % WP_FRAMES)) | PTE_P | PTE_VMM | PTE_COW;

    uint64_t cr0;
    __asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
    __asm__ volatile("mov %0, %%cr0" ::"r"(cr0 & ~(1ull << 16)) : "memory"); /* CR0.WP off */
    pt[0] = 0x5000 | PTE_P | PTE_VMM | PTE_COW;                          /* a VMM page as a shared frame */
    pt[1] = (donated + 4096 * (WP_FRAMES - 1)) | PTE_P | PTE_VMM;        /* a free donated frame */
    pt[9] = 0x200000 | PTE_P | PTE_RW | PTE_VMM | PTE_COW;               /* the kernel image */
    pt[10] = (1ull << 40) | PTE_P | PTE_VMM;                             /* outside RAM */
    pd[1] = (uint64_t)fake | PTE_P | PTE_RW | PTE_US;                    /* a table pyvmm never made */
    pdpt[1] = ((uint64_t)own + 8192) | PTE_P | PTE_RW | PTE_US;
    pml4[2] = (uint64_t)fake | PTE_P | PTE_RW | PTE_US;
    __asm__ volatile("mov %0, %%cr0" ::"r"(cr0) : "memory");
    kprintf("hostile: garbled the tables of space %ld\n", h);

    check("unmap", as_unmap(h, va, 4ul << 30), 0);
    check("protect", as_protect(h, va, 4ul << 30, PVM_PROT_READ), 0);
    long c = as_clone(h);
    check("clone", c > 0, 1);
    check("destroy-clone", as_destroy(c), 0);
    check("destroy", as_destroy(h), 0);
    check("donate-unmapped-page", as_donate((uint64_t)own, 4096), 0);

    /* Exactly the donated frames are left to hand out, each once. */
    long h2 = as_create();
    check("lazy-all", as_lazy(h2, va, (WP_FRAMES + 2) * 4096, rw), 0);
    long served = 0;
    for (unsigned long i = 0; i < WP_FRAMES + 1; i++)
        served += as_page_fault(h2, va + 4096 * i, PVM_PF_WRITE | PVM_PF_USER, 0) == 0;
    check("frames-served", served, WP_FRAMES + 1); /* the 64 and the one page donated after */
    check("then-enomem", as_page_fault(h2, va + 4096 * (WP_FRAMES + 1), PVM_PF_WRITE | PVM_PF_USER, 0),
          -PVM_ENOMEM);
    uint64_t *pt2 = table_of(table_of(table_of(table_of(space_root(h2))[1])[0])[0]);
    long outside = 0;
    for (unsigned long i = 0; i < WP_FRAMES + 1; i++) {
        uint64_t f = pt2[i] & PTE_ADDR;
        outside += !(f == (uint64_t)own || (f >= donated && f < donated + WP_FRAMES * 4096));
    }
    check("frames-outside-donations", outside, 0);
    check("destroy-2", as_destroy(h2), 0);
    return result();
}

/* Write numbered 512-byte records to the first disk, flushing each, and say so on the
 * console after each flush; then crash (then=crash) or spin until killed (then=spin). */
static int disk(void)
{
    long h = -1;
    for (unsigned i = 0; i < boot_info->nr_channels; i++)
        if (boot_info->channels[i].kind == PVM_CHANNEL_BLOCK) {
            h = boot_info->channels[i].handle;
            break;
        }
    if (h < 0)
        return unsupported("no block channel", h);
    char arg[16];
    unsigned long records = cmdline_get("records", arg, sizeof arg) >= 0 ? (unsigned long)parse_long(arg) : 64;
    int spin = cmdline_get("then", arg, sizeof arg) >= 0 && !strncmp(arg, "spin", 5);
    char *rec = scratch();
    for (unsigned long i = 0; i < records; i++) {
        memset(rec, '.', 512);
        ksnprintf(rec, 512, "record %lu", i);
        rec[511] = '\n';
        long n = pvm_send(h, rec, 512, i * 512);
        long f = pvm_channel_flush(h);
        if (n != 512 || f != 0) {
            kprintf("hostile disk: record %lu: send %ld flush %ld\n", i, n, f);
            return 1;
        }
        kprintf("hostile disk: flushed %lu\n", i);
    }
    if (spin) {
        kprintf("hostile disk: spinning\n");
        for (;;)
            __asm__ volatile("pause");
    }
    return triple();
}

/* Print numbered lines, then crash: every line must reach the host's stdout. */
static int print_crash(void)
{
    char arg[16];
    unsigned long lines = cmdline_get("lines", arg, sizeof arg) >= 0 ? (unsigned long)parse_long(arg) : 500;
    for (unsigned long i = 0; i < lines; i++)
        kprintf("hostile line %lu\n", i);
    return triple();
}

static int hostile_main(void)
{
    char c[32];
    if (cmdline_get("case", c, sizeof c) < 0) {
        kprintf("hostile: give case=NAME\n");
        return 2;
    }
#define IS(name) (!strncmp(c, name, sizeof c))
    if (IS("past-ram"))
        return past_ram();
    if (IS("overflow"))
        return overflow();
    if (IS("lengths"))
        return lengths();
    if (IS("numbers"))
        return numbers();
    if (IS("vmm-pages"))
        return vmm_pages();
    if (IS("outb") || IS("outw") || IS("inl") || IS("outsl") || IS("port-out") || IS("port-in"))
        return pio(c);
    if (IS("mmio-read"))
        return mmio(0);
    if (IS("mmio-write"))
        return mmio(1);
    if (IS("triple"))
        return triple();
    if (IS("ud"))
        return ud();
    if (IS("write-boot-info"))
        return write_boot_info();
    if (IS("write-page-table"))
        return write_page_table();
    if (IS("spin-cli"))
        return spin_cli();
    if (IS("runaway"))
        return runaway();
    if (IS("return"))
        return return_from_kmain();
    if (IS("storm"))
        return storm(0);
    if (IS("storm-forever"))
        return storm(1);
    if (IS("vcpu-up"))
        return vcpu_up();
    if (IS("vcpu-up-garbage"))
        return vcpu_up_garbage();
    if (IS("huge-deadlines"))
        return huge_deadlines();
    if (IS("as-storm"))
        return as_storm();
    if (IS("wp-tables"))
        return wp_tables();
    if (IS("disk"))
        return disk();
    if (IS("print-crash"))
        return print_crash();
#undef IS
    kprintf("hostile: unknown case '%s'\n", c);
    return 2;
}
PROGRAM(hostile);
