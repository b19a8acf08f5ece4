#include "events.h"

#include "arch.h"
#include "hw.h"
#include "lib.h"

#define MSR_GS_BASE 0xc0000101u

struct percpu {
    unsigned id;
};

struct pvm_shared_info *shared_info;
static struct percpu percpu[PVM_MAX_VCPUS];
static struct {
    evt_handler_t fn;
    void *arg;
} handlers[PVM_NR_PORTS];
/* Pending bytes are VM-wide: a CPU consumes only the ports bound to it (as Xen's
 * guests keep a per-CPU port mask). 0xff = not bound here. */
static uint8_t port_cpu[PVM_NR_PORTS];

/* Secondary stacks: 16 KiB for every vCPU pyvmm can give a VM (PVM_MAX_VCPUS - 1 secondaries,
 * about 1 MiB of .bss, which pyvmm maps without touching the host's memory). */
#define SMP_STACK 16384
#define SMP_STACKS (PVM_MAX_VCPUS - 1)
static uint8_t smp_stacks[SMP_STACKS][SMP_STACK] __attribute__((aligned(16)));
static void (*smp_fn[PVM_MAX_VCPUS])(unsigned);

static inline uint8_t xchg8(volatile uint8_t *p, uint8_t v)
{
    __asm__ volatile("xchgb %0, %1" : "+q"(v), "+m"(*p) : : "memory");
    return v;
}

static inline void wrmsr(uint32_t msr, uint64_t v)
{
    __asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}

unsigned this_cpu(void)
{
    unsigned id;
    __asm__ volatile("movl %%gs:0, %0" : "=r"(id));
    return id;
}

void evt_scan(void)
{
    unsigned me = this_cpu();
    volatile struct pvm_vcpu_event_info *vi = &shared_info->vcpu[me];
    volatile uint8_t *pending = shared_info->evtchn_pending;
    volatile uint8_t *mask = shared_info->evtchn_mask;
    while (xchg8(&vi->upcall_pending, 0)) {
        for (unsigned g = 0; g < PVM_NR_PORTS / PVM_PORTS_PER_GROUP; g++) {
            if (!xchg8(&vi->pending_sel[g], 0))
                continue;
            for (unsigned w = 0; w < PVM_PORTS_PER_GROUP; w += 8) {
                unsigned base = g * PVM_PORTS_PER_GROUP + w;
                if (!*(volatile uint64_t *)(pending + base)) /* 8 ports per load */
                    continue;
                for (unsigned p = base; p < base + 8; p++) {
                    if (port_cpu[p] == me && pending[p] && !mask[p] && xchg8(&pending[p], 0) && handlers[p].fn)
                        handlers[p].fn(p, handlers[p].arg);
                }
            }
        }
    }
}

static void upcall(struct trap_frame *tf)
{
    (void)tf;
    if (hw_lapic) /* a doorbell delivers through the LAPIC (pyvmm's ExtINT sets no ISR bit: harmless) */
        lapic_eoi();
    evt_scan();
}

void events_init_cpu(unsigned cpu)
{
    if (cpu == 0)
        memset(port_cpu, 0xff, sizeof port_cpu);
    shared_info = (struct pvm_shared_info *)boot_info->shared_page;
    percpu[cpu].id = cpu;
    wrmsr(MSR_GS_BASE, (uint64_t)&percpu[cpu]);
    trap_set_handler(PVM_UPCALL_VECTOR, upcall);
}

static long bind(unsigned kind, unsigned target, unsigned arg, unsigned owner)
{
    long port = pvm_hypercall(PVM_HC_EVENT_BIND, kind, target, arg, 0, 0);
    if (port > 0 && port < PVM_NR_PORTS)
        port_cpu[port] = (uint8_t)owner;
    return port;
}

long evt_bind_ipi(unsigned target_vcpu) { return bind(PVM_EVENT_IPI, target_vcpu, 0, target_vcpu); }
long evt_bind_virq(unsigned virq, unsigned vcpu) { return bind(PVM_EVENT_VIRQ, virq, vcpu, vcpu); }
long evt_bind_channel(unsigned handle, unsigned vcpu) { return bind(PVM_EVENT_CHANNEL, handle, vcpu, vcpu); }

void evt_set_handler(unsigned port, evt_handler_t fn, void *arg)
{
    if (port < PVM_NR_PORTS) {
        handlers[port].arg = arg;
        handlers[port].fn = fn;
    }
}

uint64_t now_ns(void)
{
    uint64_t dt = rdtsc() - boot_info->tsc_at_boot, khz = boot_info->tsc_khz;
    /* dt * 1e6 / khz without overflow or a 128-bit division (no libgcc here). */
    return boot_info->monotonic_at_boot + dt / khz * 1000000u + dt % khz * 1000000u / khz;
}

void evt_irq_enable(void)
{
    irq_enable();
    if (shared_info->vcpu[this_cpu()].upcall_pending)
        pvm_yield();
}

void wait_flag(volatile int *flag)
{
    for (;;) {
        irq_disable();
        if (*flag)
            break;
        /* Interrupts off: BLOCK returns with events left for us to scan (no upcall). */
        pvm_block(0);
        evt_scan();
    }
    evt_irq_enable();
}

void wait_count(volatile unsigned *counter, unsigned target)
{
    for (;;) {
        irq_disable();
        if (*counter >= target)
            break;
        pvm_block(0);
        evt_scan();
    }
    evt_irq_enable();
}

void secondary_main(unsigned long cpu)
{
    arch_init_secondary();
    events_init_cpu((unsigned)cpu);
    hw_init_cpu();
    smp_fn[cpu]((unsigned)cpu);
    for (;;)
        pvm_block(0);
}

extern char secondary_entry[];

long smp_start(unsigned cpu, void (*fn)(unsigned cpu))
{
    if (cpu == 0 || cpu > SMP_STACKS)
        return -PVM_EINVAL;
    smp_fn[cpu] = fn;
    uint64_t stack = (uint64_t)(smp_stacks[cpu - 1] + SMP_STACK);
    return pvm_hypercall(PVM_HC_VCPU_UP, cpu, (uint64_t)secondary_entry, stack, cpu, 0);
}
