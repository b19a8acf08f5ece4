/* Drivers for the hardware API (docs/hwapi.md): x2APIC and the 16550 at COM1. */
#include "hw.h"

#include "arch.h"
#include "events.h"
#include "lib.h"

#define COM1 0x3f8
#define UART_THR 0
#define UART_IER 1
#define UART_FCR 2
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_SCR 7
#define LSR_THRE 0x20
#define UART_FIFO 16

#define CPUID1_EDX_APIC (1u << 9)
#define CPUID1_ECX_X2APIC (1u << 21)
#define CPUID1_ECX_TSC_DEADLINE (1u << 24)
#define APIC_BASE_EN (1u << 11)
#define APIC_BASE_EXTD (1u << 10)
#define SVR_ENABLE 0x100u
#define LVT_EXTINT (7u << 8)
#define LVT_TSC_DEADLINE (2u << 17)

int hw_lapic, hw_uart;

static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port) : "memory"); }
static inline uint8_t inb(uint16_t port)
{
    uint8_t v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port) : "memory");
    return v;
}

/* The scratch register holds what was written on a 16550; an absent port floats. */
static int uart_probe(void)
{
    outb(COM1 + UART_SCR, 0x5a);
    if (inb(COM1 + UART_SCR) != 0x5a)
        return 0;
    outb(COM1 + UART_SCR, 0xa5);
    return inb(COM1 + UART_SCR) == 0xa5;
}

void hw_init(void)
{
    static int probed;
    if (probed)
        return;
    probed = 1;
    uint32_t a = 1, b, c = 0, d;
    __asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
    /* Only a VM that shows an x2APIC has the rest: the default VM would crash on a COM1
     * access. (Not the APIC bit alone: KVM derives it from IA32_APIC_BASE at run time.) */
    if (!(d & CPUID1_EDX_APIC) || !(c & CPUID1_ECX_X2APIC))
        return;
    hw_lapic = (c & CPUID1_ECX_TSC_DEADLINE) != 0;
    if (!uart_probe())
        return;
    outb(COM1 + UART_IER, 0);    /* polled */
    outb(COM1 + UART_LCR, 0x03); /* 8N1 */
    outb(COM1 + UART_FCR, 0x07); /* FIFOs on, both cleared */
    outb(COM1 + UART_MCR, 0x03); /* DTR, RTS */
    hw_uart = 1;
}

static void spurious(struct trap_frame *tf) { (void)tf; /* no EOI for a spurious vector */ }

void hw_init_cpu(void)
{
    hw_init();
    if (!hw_lapic)
        return;
    trap_set_handler(HW_VEC_SPURIOUS, spurious);
    hw_wrmsr(MSR_APIC_BASE, hw_rdmsr(MSR_APIC_BASE) | APIC_BASE_EN | APIC_BASE_EXTD);
    hw_wrmsr(MSR_X2APIC_TPR, 0);
    /* Software-enable first: while disabled the APIC forces every LVT write masked. */
    hw_wrmsr(MSR_X2APIC_SVR, SVR_ENABLE | HW_VEC_SPURIOUS);
    /* LINT0 as virtual wire (ExtINT): pyvmm's upcall (KVM_INTERRUPT) still arrives. */
    hw_wrmsr(MSR_X2APIC_LVT_LINT0, LVT_EXTINT);
    hw_wrmsr(MSR_X2APIC_LVT_TIMER, LVT_TSC_DEADLINE | HW_VEC_TIMER);
}

void uart_write(const void *buf, unsigned long len)
{
    const uint8_t *p = buf;
    while (len) {
        while (!(inb(COM1 + UART_LSR) & LSR_THRE))
            pvm_block(now_ns() + 1000000); /* the host's output buffer is full: wait, as kprintf does */
        unsigned n = len < UART_FIFO ? (unsigned)len : UART_FIFO;
        for (unsigned i = 0; i < n; i++)
            outb(COM1 + UART_THR, p[i]);
        p += n;
        len -= n;
    }
}
