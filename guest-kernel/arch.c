#include "arch.h"
#include "lib.h"

struct idt_entry {
    uint16_t off0, sel;
    uint8_t ist, type;
    uint16_t off1;
    uint32_t off2, zero;
} __attribute__((packed));

struct tss {
    uint32_t reserved0;
    uint64_t rsp[3];
    uint64_t reserved1;
    uint64_t ist[7];
    uint64_t reserved2;
    uint16_t reserved3, iomap_base;
} __attribute__((packed));

struct dtr {
    uint16_t limit;
    uint64_t base;
} __attribute__((packed));

static struct idt_entry idt[IDT_VECTORS] __attribute__((aligned(16)));
static uint64_t gdt[8] __attribute__((aligned(16)));
static struct tss tss __attribute__((aligned(16)));
static trap_handler_t handlers[IDT_VECTORS];
static uint8_t trap_stack[8192] __attribute__((aligned(16)));
static int initialised;

extern const uint64_t trap_stubs[IDT_VECTORS]; /* entry.S */

static uint64_t descriptor(uint32_t base, uint32_t limit, uint8_t access, uint8_t flags)
{
    return (limit & 0xffffull) | ((uint64_t)(base & 0xffffff) << 16) | ((uint64_t)access << 40) |
           ((uint64_t)((limit >> 16) & 0xf) << 48) | ((uint64_t)flags << 52) | ((uint64_t)(base >> 24) << 56);
}

static void default_handler(struct trap_frame *tf)
{
    kprintf("guest kernel: unhandled trap %lu error=%#lx rip=%#lx cs=%#lx cr2=%#lx\n", tf->vector, tf->error_code,
            tf->rip, tf->cs, read_cr2());
    pvm_shutdown(126);
}

void trap_dispatch(struct trap_frame *tf)
{
    trap_handler_t h = tf->vector < IDT_VECTORS ? handlers[tf->vector] : 0;
    (h ? h : default_handler)(tf);
}

void trap_set_handler(unsigned vector, trap_handler_t handler)
{
    if (vector < IDT_VECTORS)
        handlers[vector] = handler;
}

void arch_set_kernel_stack(uint64_t rsp0) { tss.rsp[0] = rsp0; }

void arch_init_secondary(void)
{
    /* The GDT and IDT are shared; the TSS is the boot CPU's (marked busy), so
     * secondaries keep the VMM's boot TR: they run kernel code only. */
    struct dtr g = {sizeof gdt - 1, (uint64_t)gdt}, i = {sizeof idt - 1, (uint64_t)idt};
    __asm__ volatile("lgdt %0\n\tlidt %1" : : "m"(g), "m"(i) : "memory");
}

void arch_init(void)
{
    if (initialised)
        return;
    initialised = 1;
    uint64_t tss_base = (uint64_t)&tss;
    gdt[1] = descriptor(0, 0xfffff, 0x9b, 0xa); /* kernel code 64 */
    gdt[2] = descriptor(0, 0xfffff, 0x93, 0xc); /* kernel data */
    gdt[3] = descriptor(0, 0xfffff, 0xfb, 0xc); /* user code 32 (SYSRET base) */
    gdt[4] = descriptor(0, 0xfffff, 0xf3, 0xc); /* user data */
    gdt[5] = descriptor(0, 0xfffff, 0xfb, 0xa); /* user code 64 */
    gdt[6] = descriptor((uint32_t)tss_base, sizeof tss - 1, 0x89, 0x0); /* available TSS */
    gdt[7] = tss_base >> 32;
    tss.rsp[0] = (uint64_t)(trap_stack + sizeof trap_stack);
    tss.iomap_base = sizeof tss;
    for (unsigned v = 0; v < IDT_VECTORS; v++) {
        uint64_t off = trap_stubs[v];
        idt[v] = (struct idt_entry){(uint16_t)off, KERNEL_CS, 0, 0x8e, (uint16_t)(off >> 16), (uint32_t)(off >> 32), 0};
    }
    struct dtr g = {sizeof gdt - 1, (uint64_t)gdt}, i = {sizeof idt - 1, (uint64_t)idt};
    __asm__ volatile("lgdt %0\n\t"
                     "lidt %1\n\t"
                     "ltr %w2\n\t"
                     "mov %3, %%ds\n\t"
                     "mov %3, %%es\n\t"
                     "mov %3, %%ss\n\t"
                     : : "m"(g), "m"(i), "r"(TSS_SEL), "r"(KERNEL_DS) : "memory");
}
