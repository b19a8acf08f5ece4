/* test=hwapi: what the --hw-api VM gives, checked from inside (tests/test_hwapi.py).
 *
 * Prints one line per check: CPUID bits, the x2APIC (mode, id), a self-IPI, the
 * TSC-deadline timer, an IPI to vCPU 1 and back (with --vcpus 2), and COM1. In the
 * default VM it prints the CPUID line and "hw: none" and touches no device. */
#include "arch.h"
#include "events.h"
#include "hw.h"
#include "lib.h"
#include "programs.h"

static volatile int got[2];

static void on_vector(struct trap_frame *tf)
{
    got[this_cpu()] = (int)tf->vector;
    lapic_eoi();
}

/* Wait with interrupts on, at most ~max_us of TSC time; 1 when *flag was set. */
static int wait_set(volatile int *flag, unsigned long max_us)
{
    uint64_t end = rdtsc() + max_us * boot_info->tsc_khz / 1000;
    irq_enable();
    while (!*flag && rdtsc() < end)
        __asm__ volatile("pause");
    irq_disable();
    return *flag != 0;
}

static volatile int ready;
static void responder(unsigned cpu)
{
    (void)cpu;
    got[1] = 0;
    irq_disable();
    ready = 1;
    while (!got[1])
        __asm__ volatile("sti; hlt; cli" : : : "memory");
    lapic_ipi(0, HW_VEC_IPI);
    for (;;)
        __asm__ volatile("sti; hlt; cli" : : : "memory");
}

static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port)
{
    uint8_t v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

/* mode=garbage: what a hostile driver can do to COM1. Every value into every register
 * (DLAB and loopback included), word and dword accesses, a 4 KiB rep outsb and insb;
 * then the UART is set back to 8N1 and must still print. */
static int garbage(void)
{
    static uint8_t buf[4096];
    unsigned sum = 0;
    outb(0x3fc, 0x10); /* loopback throughout: transmitted garbage stays in the chip */
    for (unsigned reg = 0; reg < 8; reg++)
        for (unsigned v = 0; v < 256; v++) {
            outb((uint16_t)(0x3f8 + reg), (uint8_t)(reg == 4 ? v | 0x10 : v));
            sum += inb((uint16_t)(0x3f8 + (v & 7)));
        }
    uint32_t w;
    __asm__ volatile("outw %w0, %w1" : : "a"(0xffff), "d"(0x3f8));
    __asm__ volatile("outl %0, %w1" : : "a"(0xffffffffu), "d"(0x3f8));
    __asm__ volatile("inl %w1, %0" : "=a"(w) : "d"(0x3f8));
    /* Still in loopback: the rep outsb fills (and overruns) the receive FIFO. */
    memset(buf, 'g', sizeof buf);
    unsigned long n = sizeof buf;
    const uint8_t *src = buf;
    __asm__ volatile("rep outsb" : "+S"(src), "+c"(n) : "d"(0x3f8) : "memory");
    n = sizeof buf;
    uint8_t *dst = buf;
    __asm__ volatile("rep insb" : "+D"(dst), "+c"(n) : "d"(0x3f8) : "memory");
    outb(0x3fb, 0x03); /* 8N1, DLAB off */
    outb(0x3fc, 0x03); /* loopback off */
    kprintf("hw: garbage survived (sum=%u dword=%#x)\n", sum, w);
    return 0;
}

/* mode=disk: write a pattern through virtio-blk, flush, read it back (the host checks the file). */
static int disk(void)
{
    static uint8_t buf[8192], back[8192];
    if (vblk_init()) {
        kprintf("hw: no virtio-blk\n");
        return 3;
    }
    for (unsigned i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)(i * 7 + 1);
    long w = vblk_write(8, buf, sizeof buf); /* sector 8: byte 4096 */
    long f = vblk_flush();
    long r = vblk_read(8, back, sizeof back);
    long past = vblk_write(vblk_sectors - 1, buf, sizeof buf); /* crosses the end: IOERR */
    kprintf("hw: virtio-blk sectors=%lu write=%ld flush=%ld read=%ld same=%d past-end=%ld\n",
            (unsigned long)vblk_sectors, w, f, r, !memcmp(buf, back, sizeof buf), past);
    return 0;
}

/* mode=virtio-hostile: a descriptor loop, then (after a reset) a descriptor past RAM;
 * each must put the device in NEEDS_RESET (0x40) and leave the VM running. */
#define VBASE 0xc0000000ul
static inline uint32_t vrd(unsigned off) { return *(volatile uint32_t *)(VBASE + off); }
static inline void vwr(unsigned off, uint32_t v) { *(volatile uint32_t *)(VBASE + off) = v; }
static struct {
    uint64_t addr;
    uint32_t len;
    uint16_t flags, next;
} hdesc[4] __attribute__((aligned(16)));
static uint16_t havail[8] __attribute__((aligned(2)));
static uint16_t hused[20] __attribute__((aligned(4)));
static uint8_t hhdr[16];

static uint32_t hostile_round(uint64_t addr, uint16_t next)
{
    vwr(0x070, 0); /* reset */
    vwr(0x070, 3);
    vwr(0x024, 1);
    vwr(0x020, 1); /* VERSION_1 */
    vwr(0x070, 11);
    vwr(0x030, 0);
    vwr(0x038, 4);
    vwr(0x080, (uint32_t)(uint64_t)hdesc);
    vwr(0x084, 0);
    vwr(0x090, (uint32_t)(uint64_t)havail);
    vwr(0x094, 0);
    vwr(0x0a0, (uint32_t)(uint64_t)hused);
    vwr(0x0a4, 0);
    vwr(0x044, 1);
    vwr(0x070, 15);
    hdesc[0].addr = (uint64_t)hhdr;
    hdesc[0].len = 16;
    hdesc[0].flags = 1;
    hdesc[0].next = 1;
    hdesc[1].addr = addr;
    hdesc[1].len = 4096;
    hdesc[1].flags = 1;
    hdesc[1].next = next;
    havail[2] = 0; /* ring[0] = head 0 */
    havail[1] = 1; /* idx */
    vwr(0x050, 0);
    return vrd(0x070);
}

static int virtio_hostile(void)
{
    if (vblk_init()) /* leaves a working device behind; we take it over */
        return 3;
    uint32_t loop = hostile_round((uint64_t)hhdr, 0); /* 0 -> 1 -> 0 -> ... */
    uint32_t wild = hostile_round(0xfffffffffffff000ull, 2);
    kprintf("hw: virtio-hostile loop-status=%#x wild-status=%#x\n", loop, wild);
    return 0;
}

static int hwapi_main(void)
{
    uint32_t a = 1, b, c = 0, d;
    __asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
    kprintf("hw: cpuid apic=%u x2apic=%u tsc_deadline=%u\n", (d >> 9) & 1, (c >> 21) & 1, (c >> 24) & 1);
    if (!hw_lapic) {
        kprintf("hw: none\n");
        return 0;
    }
    char mode[16] = "";
    if (cmdline_get("mode", mode, sizeof mode) > 0 && !strncmp(mode, "garbage", sizeof mode))
        return hw_uart ? garbage() : 3;
    if (!strncmp(mode, "disk", sizeof mode))
        return disk();
    if (!strncmp(mode, "virtio-hostile", sizeof mode))
        return virtio_hostile();
    kprintf("hw: apic_base=%#lx x2apic_id=%lu uart=%d\n", (unsigned long)hw_rdmsr(MSR_APIC_BASE),
            (unsigned long)hw_rdmsr(0x802), hw_uart);
    trap_set_handler(HW_VEC_IPI, on_vector);
    trap_set_handler(HW_VEC_TIMER, on_vector);
    irq_disable();
    lapic_ipi(0, HW_VEC_IPI);
    kprintf("hw: self-ipi vector=%d\n", wait_set(&got[0], 100000) ? got[0] : -1);
    got[0] = 0;
    lapic_deadline(rdtsc() + 100 * boot_info->tsc_khz / 1000); /* 100 us */
    kprintf("hw: tsc-deadline vector=%d\n", wait_set(&got[0], 1000000) ? got[0] : -1);
    got[0] = 0;
    trap_set_handler(PVM_UPCALL_VECTOR, on_vector);
    hw_doorbell(0); /* the in-kernel NOTIFY path, to ourselves */
    kprintf("hw: doorbell vector=%d\n", wait_set(&got[0], 1000000) ? got[0] : -1);
    got[0] = 0;
    if (boot_info->nr_vcpus > 1 && !smp_start(1, responder)) {
        uint64_t end = rdtsc() + 10000 * boot_info->tsc_khz; /* up to 10 s for vCPU 1 to come up */
        while (!ready && rdtsc() < end)
            __asm__ volatile("pause");
        lapic_ipi(1, HW_VEC_IPI);
        wait_set(&got[0], 1000000);
        kprintf("hw: ipi-rtt vector=%d\n", got[0] ? got[0] : -1);
    }
    return 0;
}
PROGRAM(hwapi);
