/* The comparison's benches (pyvmm bench --hw-api, docs/hwapi.md): each workload through
 * the system-call API and the hardware API (x2APIC, its TSC-deadline timer, COM1, virtio-blk),
 * and NOTIFY's in-kernel doorbell. Part of test=bench (programs/bench.c owns the program, the
 * sample buffer and the table; the loops here write samples as its loops do). */
#include "arch.h"
#include "bench.h"
#include "events.h"
#include "lib.h"

static uint8_t *bench_payload;
static unsigned long bench_size;
unsigned long bench_hw_errors;
static volatile int hw_stop;
static int door_a, door_b; /* notify-doorbell's ports: vCPU 0's, vCPU 1's */
static void (*running)(uint32_t *out, unsigned long n);

/* SEND of bench_size bytes to the console (handle 0): the system-call side of console-N. */
void loop_console(uint32_t *out, unsigned long n)
{
    long r;
    for (unsigned long i = 0; i < n; i++) {
        out[i] = timed_hc(PVM_HC_SEND, PVM_CONSOLE_HANDLE, (unsigned long)bench_payload, bench_size, 0, 0, &r);
        if (r != (long)bench_size)
            bench_hw_errors++;
    }
}

/* The same bytes through COM1's 16550, polled (LSR once per 16 bytes, then THR writes). */
void loop_hw_console(uint32_t *out, unsigned long n)
{
    for (unsigned long i = 0; i < n; i++) {
        uint32_t t0 = tsc32();
        uart_write(bench_payload, bench_size);
        out[i] = tsc32() - t0;
    }
}

/* disk-N: SEND of bench_size bytes at offset 0 of the first block channel, then CHANNEL_FLUSH
 * (fsync): a durable write through the system-call API. */
static unsigned disk;
void loop_disk(uint32_t *out, unsigned long n)
{
    for (unsigned long i = 0; i < n; i++) {
        uint32_t t0 = tsc32();
        long w = pvm_hc_send(disk, (unsigned long)bench_payload, bench_size, 0);
        long f = pvm_hc_channel_flush(disk);
        out[i] = tsc32() - t0;
        if (w != (long)bench_size || f)
            bench_hw_errors++;
    }
}

/* The same durable write through virtio-blk: a write request, then a flush request. */
void loop_hw_disk(uint32_t *out, unsigned long n)
{
    for (unsigned long i = 0; i < n; i++) {
        uint32_t t0 = tsc32();
        long w = vblk_write(0, bench_payload, (uint32_t)bench_size);
        long f = vblk_flush();
        out[i] = tsc32() - t0;
        if (w || f)
            bench_hw_errors++;
    }
}

/* Interrupts off, except inside `sti; hlt` (sti's shadow makes the pair atomic: an
 * interrupt arriving between them still wakes the hlt), until the handler sets *flag. */
static volatile int hw_flag[2];
static inline void hw_wait(volatile int *flag)
{
    while (!*flag)
        __asm__ volatile("sti; hlt; cli" : : : "memory");
    *flag = 0;
}

static void hw_vector(struct trap_frame *tf)
{
    (void)tf;
    hw_flag[this_cpu()] = 1;
    lapic_eoi();
}

/* hw-ipi-rtt: vCPU 0 sends vCPU 1 an IPI (one ICR write) and halts; vCPU 1's handler
 * EOIs, and it answers with an IPI the same way: notify-rtt's exchange, in hardware. */
static volatile int hw_ready;
static void hw_responder(unsigned cpu)
{
    (void)cpu;
    irq_disable();
    hw_ready = 1; /* our APIC is enabled now: an IPI sent earlier would have been dropped */
    for (;;) {
        hw_wait(&hw_flag[1]);
        if (hw_stop)
            break;
        lapic_ipi(0, HW_VEC_IPI);
    }
    for (;;)
        __asm__ volatile("sti; hlt; cli" : : : "memory");
}

void loop_hw_ipi_rtt(uint32_t *out, unsigned long n)
{
    for (unsigned long i = 0; i < n; i++) {
        uint32_t t0 = tsc32();
        lapic_ipi(1, HW_VEC_IPI);
        hw_wait(&hw_flag[0]);
        out[i] = tsc32() - t0;
    }
}

/* notify-doorbell: notify-rtt's exchange (event ports bound with EVENT_BIND, the shared
 * page's bytes, consumed with xchg) with NOTIFY's in-kernel path: the raiser makes
 * pyvmm's stores itself and rings the target's doorbell, which KVM turns into the
 * upcall vector in the target's LAPIC; the target waits in HLT, not in BLOCK. */
static inline uint8_t xchg_u8(volatile uint8_t *p, uint8_t v)
{
    __asm__ volatile("xchgb %0, %1" : "+q"(v), "+m"(*p) : : "memory");
    return v;
}

static void raise_in_kernel(unsigned port, unsigned target)
{
    if (xchg_u8(&shared_info->evtchn_pending[port], 1) || shared_info->evtchn_mask[port])
        return; /* coalesced with an earlier raise, or masked: no interrupt, as pyvmm does */
    shared_info->vcpu[target].pending_sel[port / PVM_PORTS_PER_GROUP] = 1;
    if (!xchg_u8(&shared_info->vcpu[target].upcall_pending, 1))
        hw_doorbell(target);
}

static void upcall_eoi(struct trap_frame *tf)
{
    (void)tf;
    lapic_eoi(); /* the waiter's loop consumes the port itself */
}

static void doorbell_responder(unsigned cpu)
{
    irq_disable();
    /* Here, not in setup: this CPU's events_init_cpu installed the usual upcall (evt_scan,
     * which would consume the ports before the loops see them); the table is shared. */
    trap_set_handler(PVM_UPCALL_VECTOR, upcall_eoi);
    hw_ready = 1;
    for (;;) {
        while (!consume(cpu, (unsigned)door_b))
            __asm__ volatile("sti; hlt; cli" : : : "memory");
        if (hw_stop)
            break;
        raise_in_kernel((unsigned)door_a, 0);
    }
    for (;;)
        __asm__ volatile("sti; hlt; cli" : : : "memory");
}

void loop_notify_doorbell(uint32_t *out, unsigned long n)
{
    for (unsigned long i = 0; i < n; i++) {
        uint32_t t0 = tsc32();
        raise_in_kernel((unsigned)door_b, 1);
        while (!consume(0, (unsigned)door_a))
            __asm__ volatile("sti; hlt; cli" : : : "memory");
        out[i] = tsc32() - t0;
    }
}

/* hw-timer: the TSC-deadline timer armed bench_size us ahead (one WRMSR), hlt until its
 * interrupt; the sample is the whole time minus the delay, as for `timer`. */
void loop_hw_timer(uint32_t *out, unsigned long n)
{
    uint64_t delay_tsc = bench_size * boot_info->tsc_khz / 1000;
    for (unsigned long i = 0; i < n; i++) {
        uint32_t t0 = tsc32();
        lapic_deadline(rdtsc() + delay_tsc);
        hw_wait(&hw_flag[0]);
        uint32_t dt = tsc32() - t0;
        out[i] = dt > delay_tsc ? dt - (uint32_t)delay_tsc : 0;
    }
}

/* The hw-* benches need the --hw-api VM's devices; console-* bytes are printable lines. */
static int setup(const char *name)
{
    if ((!strncmp(name, "hw-", 3) || !strncmp(name, "notify-doorbell", 16)) && !(hw_lapic && hw_uart)) {
        kprintf("bench: %s needs the hardware API (pyvmm bench --hw-api boots it with --hw-api)\n", name);
        return 3;
    }
    if (!strncmp(name, "disk", 16)) {
        for (unsigned i = 0; i < boot_info->nr_channels && i < PVM_MAX_CHANNELS; i++)
            if (boot_info->channels[i].kind == PVM_CHANNEL_BLOCK) {
                disk = boot_info->channels[i].handle;
                return 0;
            }
        return 3;
    }
    if (!strncmp(name, "hw-disk", 16)) {
        if (vblk_init() || vblk_sectors * 512 < bench_size) {
            kprintf("bench: hw-disk needs a virtio-blk disk of %lu bytes (--hw-api --disk)\n", bench_size);
            return 3;
        }
        return 0;
    }
    if (!strncmp(name, "hw-console", 16) || !strncmp(name, "console", 16)) {
        for (unsigned long i = 0; i < bench_size; i++)
            bench_payload[i] = (i % 64 == 63) ? '\n' : (uint8_t)('a' + i % 26);
        return 0;
    }
    if (!strncmp(name, "hw-ipi-rtt", 16)) {
        if (boot_info->nr_vcpus < 2) {
            kprintf("bench: %s needs 2 vCPUs\n", name);
            return 3;
        }
        trap_set_handler(HW_VEC_IPI, hw_vector);
        irq_disable();
        running = loop_hw_ipi_rtt;
        if (smp_start(1, hw_responder))
            return 3;
        while (!hw_ready)
            __asm__ volatile("pause");
        return 0;
    }
    if (!strncmp(name, "notify-doorbell", 16)) {
        if (boot_info->nr_vcpus < 2)
            return 3;
        door_a = (int)evt_bind_ipi(0);
        door_b = (int)evt_bind_ipi(1);
        if (door_a <= 0 || door_b <= 0)
            return 3;
        irq_disable();
        running = loop_notify_doorbell;
        if (smp_start(1, doorbell_responder))
            return 3;
        while (!hw_ready)
            __asm__ volatile("pause");
        return 0;
    }
    if (!strncmp(name, "hw-timer", 16)) {
        trap_set_handler(HW_VEC_TIMER, hw_vector);
        irq_disable();
    }
    return 0;
}


int bench_hw_setup(const char *name, uint8_t *payload, unsigned long size)
{
    bench_payload = payload;
    bench_size = size;
    if (strncmp(name, "hw-", 3) && strncmp(name, "console", 16) && strncmp(name, "disk", 16) &&
        strncmp(name, "notify-doorbell", 16))
        return -1;
    return setup(name);
}

void bench_hw_stop(void)
{
    hw_stop = 1; /* the responders end their loop at the next wake-up */
    if (running == loop_hw_ipi_rtt)
        lapic_ipi(1, HW_VEC_IPI);
    if (running == loop_notify_doorbell)
        raise_in_kernel((unsigned)door_b, 1);
}
