/* test=bench bench=NAME [iters=N] [warmup=N] [reps=N] [size=N] [port=N]: the guest
 * half of `pyvmm bench`.
 *
 * Each iteration is timed with the TSC; the samples (u32 TSC deltas, iters*reps of
 * them, warm-up iterations left out) go into a buffer in free RAM above the kernel,
 * and one console line tells the host where it is:
 *
 *   bench: name=NAME count=N samples=0xGPA tsc_khz=K errors=E
 *
 * The host reads the buffer out of guest memory after SHUTDOWN: thousands of
 * samples cost no console output. Kernel-mode guest code is slow under some
 * backends (KVM's emulator runs it at ~0.3 us an instruction on PVM), so each
 * timed window holds as few instructions as the measured operation allows; the
 * `tsc` bench measures what the window itself costs.
 *
 * Exit codes: 0 done; 2 bad arguments; 3 the VMM lacks what the bench needs.
 *
 * The address-space benches (as-*) work in spaces created for them (user window
 * at AS_VA); as-fault runs CPL3 tasks (task.c) that time their own faults. */
#include "arch.h"
#include "as.h"
#include "bench.h"
#include "events.h"
#include "hw.h"
#include "lib.h"
#include "programs.h"
#include "task.h"
#include "usys.h"

extern char __kernel_end[];

#define MAX_BATCH PVM_MULTICALL_MAX

static uint32_t *samples;
static unsigned long nsamples, errors;
static uint8_t *payload;
static unsigned long size, port_arg;
static unsigned sink;
static int evt_self, evt_a, evt_b; /* event ports: ours, vCPU 0's, vCPU 1's */
static struct pvm_multicall_entry batch[MAX_BATCH];

/* -- the timed loops: each writes n samples at out ---------------------------------- */
/* loop_null's window without the OUT: what the timing itself adds. */
static void loop_tsc(uint32_t *out, unsigned long n)
{
    for (unsigned long i = 0; i < n; i++) {
        uint32_t dt, t0;
        __asm__ volatile("rdtsc\n\t"
                         "mov %%eax, %[t0]\n\t"
                         "xor %%eax, %%eax\n\t"
                         "rdtsc\n\t"
                         "sub %[t0], %%eax"
                         : "=&a"(dt), [t0] "=&r"(t0)
                         :
                         : "rdx", "memory");
        out[i] = dt;
    }
}

/* The smallest window: rdtsc, one move, the OUT, rdtsc (tsc-window is the same without the OUT). */
static void loop_null(uint32_t *out, unsigned long n)
{
    for (unsigned long i = 0; i < n; i++) {
        uint32_t dt, t0;
        __asm__ volatile("rdtsc\n\t"
                         "mov %%eax, %[t0]\n\t"
                         "xor %%eax, %%eax\n\t"
                         "outl %%eax, %[port]\n\t"
                         "rdtsc\n\t"
                         "sub %[t0], %%eax"
                         : "=&a"(dt), [t0] "=&r"(t0)
                         : [port] "i"(PVM_HYPERCALL_PORT)
                         : "rdx", "memory");
        out[i] = dt;
    }
}

/* loop_null's window for the first extension number: a hypercall served by a Python
 * handler registered through pyvmm's public API (the host registers one that returns 0). */
static void loop_ext_null(uint32_t *out, unsigned long n)
{
    for (unsigned long i = 0; i < n; i++) {
        uint32_t dt, t0;
        __asm__ volatile("rdtsc\n\t"
                         "mov %%eax, %[t0]\n\t"
                         "mov %[nr], %%eax\n\t"
                         "outl %%eax, %[port]\n\t"
                         "rdtsc\n\t"
                         "sub %[t0], %%eax"
                         : "=&a"(dt), [t0] "=&r"(t0)
                         : [port] "i"(PVM_HYPERCALL_PORT), [nr] "i"(PVM_EXT_BASE)
                         : "rdx", "memory");
        out[i] = dt;
    }
}

/* An OUT the host matched with KVM_IOEVENTFD: it completes inside the kernel. */
static void loop_ioeventfd(uint32_t *out, unsigned long n)
{
    uint16_t port = (uint16_t)port_arg;
    for (unsigned long i = 0; i < n; i++) {
        uint32_t t0 = tsc32();
        __asm__ volatile("outl %%eax, %%dx" : : "a"(0), "d"(port) : "memory");
        out[i] = tsc32() - t0;
    }
}

static void loop_send(uint32_t *out, unsigned long n)
{
    long r;
    for (unsigned long i = 0; i < n; i++) {
        out[i] = timed_hc(PVM_HC_SEND, sink, (unsigned long)payload, size, 0, 0, &r);
        if (r != (long)size)
            errors++;
    }
}

static void loop_notify_self(uint32_t *out, unsigned long n)
{
    long r;
    for (unsigned long i = 0; i < n; i++) {
        out[i] = timed_hc(PVM_HC_NOTIFY, (unsigned long)evt_self, 0, 0, 0, 0, &r);
        if (r || !consume(0, (unsigned)evt_self)) /* the event must be pending when the call returns */
            errors++;
    }
}

static void loop_multicall(uint32_t *out, unsigned long n)
{
    long r;
    for (unsigned long i = 0; i < n; i++) {
        out[i] = timed_hc(PVM_HC_MULTICALL, (unsigned long)batch, size, 0, 0, 0, &r);
        if (r != (long)size)
            errors++;
    }
}

/* TIMER_SET(now + size us), then BLOCK until the timer's VIRQ is pending; the
 * sample is the whole arm-and-fire time minus the requested delay. */
static void loop_timer(uint32_t *out, unsigned long n)
{
    uint64_t delay_ns = size * 1000, delay_tsc = size * boot_info->tsc_khz / 1000;
    long skew = pvm_clock(PVM_CLOCK_MONOTONIC) - (long)now_ns();
    for (unsigned long i = 0; i < n; i++) {
        uint32_t t0 = tsc32();
        long r = pvm_timer_set(now_ns() + skew + delay_ns);
        while (!r && !consume(0, (unsigned)evt_self))
            pvm_block(0);
        uint32_t dt = tsc32() - t0;
        out[i] = dt > delay_tsc ? dt - (uint32_t)delay_tsc : 0;
        if (r) /* -ETIME: the deadline passed before the call arrived (size= too small) */
            errors++;
    }
}

/* Two vCPUs, interrupts off on both (as test=notifyrt): vCPU 0 raises vCPU 1's
 * port and blocks in one call; vCPU 1 wakes, notes the one-way wake time and
 * answers the same way. notify-rtt keeps the round trips, block-wake the one-way
 * wake-ups of the blocked vCPU (vCPUs share a synchronised TSC under KVM). */
static volatile uint32_t rtt_t0;
static volatile int rtt_stop, rtt_oneway;
static uint32_t *rtt_wake;
static volatile unsigned long rtt_i;

static void rtt_responder(unsigned cpu)
{
    irq_disable();
    for (;;) {
        while (!consume(cpu, (unsigned)evt_b))
            pvm_block(0);
        uint32_t now = tsc32();
        if (rtt_stop)
            break;
        if (rtt_oneway)
            rtt_wake[rtt_i] = now - rtt_t0;
        pvm_notify_block((unsigned)evt_a, 0); /* reply and wait: the loop top consumes the wake-up */
    }
    for (;;)
        pvm_block(0);
}

static void loop_rtt(uint32_t *out, unsigned long n)
{
    if (rtt_oneway)
        rtt_wake = out;
    for (unsigned long i = 0; i < n; i++) {
        rtt_i = i;
        uint32_t t0 = tsc32();
        rtt_t0 = t0;
        pvm_notify_block((unsigned)evt_b, 0);
        while (!consume(0, (unsigned)evt_a))
            pvm_block(0);
        uint32_t dt = tsc32() - t0;
        if (!rtt_oneway)
            out[i] = dt;
    }
}

/* -- address spaces ------------------------------------------------------------------ */
#define AS_RW (PVM_PROT_READ | PVM_PROT_WRITE | PVM_PROT_USER)
#define AS_VA USER_HEAP /* where the kernel-side benches map, in spaces of their own */
#define AS_CHUNK 2048UL /* demand-zero pages per round: 8 MiB of the donated frames */
#define AS_BATCH_PAGES 512

static long as_h[2]; /* as-switch alternates between them; the others use as_h[0], loaded */
static unsigned as_next;
static unsigned long as_pages, fault_next;
static struct pvm_as_op as_ops[AS_BATCH_PAGES];

/* AS_SWITCH to the other of two (empty) spaces. */
static void loop_as_switch(uint32_t *out, unsigned long n)
{
    long r;
    for (unsigned long i = 0; i < n; i++) {
        as_next ^= 1;
        out[i] = timed_hc(PVM_HC_AS_SWITCH, (unsigned long)as_h[as_next], 0, 0, 0, 0, &r);
        if (r)
            errors++;
    }
}

/* AS_MAP then AS_UNMAP of one page in the loaded space (each its own window; the
 * sample is the sum). The unmap narrows a translation: the VMM reloads CR3 and,
 * on a shadow-paging host, drops KVM's shadow pages. */
static void loop_as_map_unmap(uint32_t *out, unsigned long n)
{
    long r1, r2;
    for (unsigned long i = 0; i < n; i++) {
        uint32_t map = timed_hc(PVM_HC_AS_MAP, (unsigned long)as_h[0], AS_VA, (unsigned long)payload, 4096, AS_RW, &r1);
        uint32_t unmap = timed_hc(PVM_HC_AS_UNMAP, (unsigned long)as_h[0], AS_VA, 4096, 0, 0, &r2);
        out[i] = map + unmap;
        if (r1 || r2)
            errors++;
    }
}

/* One AS_MAP_BATCH of as_pages one-page MAP entries: contiguous va, frames in
 * reverse order (no two adjacent, so no entries merge into one range). The
 * unmap between iterations is outside the window. */
static void loop_as_map_batch(uint32_t *out, unsigned long n)
{
    long r;
    for (unsigned long i = 0; i < n; i++) {
        out[i] = timed_hc(PVM_HC_AS_MAP_BATCH, (unsigned long)as_h[0], (unsigned long)as_ops, as_pages, 0, 0, &r);
        if (r != (long)as_pages || as_unmap(as_h[0], AS_VA, as_pages * 4096))
            errors++;
    }
}

/* One AS_MAP_BATCH with one MAP entry covering as_pages contiguous pages (the
 * other reading of "512 pages in one batched call"). Unmapped outside the window. */
static void loop_as_map_range(uint32_t *out, unsigned long n)
{
    long r;
    for (unsigned long i = 0; i < n; i++) {
        out[i] = timed_hc(PVM_HC_AS_MAP_BATCH, (unsigned long)as_h[0], (unsigned long)as_ops, 1, 0, 0, &r);
        if (r != 1 || as_unmap(as_h[0], AS_VA, as_pages * 4096))
            errors++;
    }
}

/* The VMM's share of a demand-zero fault: PAGE_FAULT(handle, va, write|user)
 * for a not-yet-touched page of a lazy range, called from the kernel with no
 * fault taken; the VMM maps a zeroed frame, as it does for a real fault. Every
 * AS_CHUNK pages the range is unmapped and declared again (outside the window). */
static void loop_as_fault_vmm(uint32_t *out, unsigned long n)
{
    long r;
    for (unsigned long i = 0; i < n; i++) {
        if (fault_next == AS_CHUNK) {
            if (as_unmap(as_h[0], AS_VA, AS_CHUNK * 4096) || as_lazy(as_h[0], AS_VA, AS_CHUNK * 4096, AS_RW))
                errors++;
            fault_next = 0;
        }
        unsigned long va = AS_VA + fault_next++ * 4096;
        out[i] = timed_hc(PVM_HC_PAGE_FAULT, (unsigned long)as_h[0], va, PVM_PF_WRITE | PVM_PF_USER, USER_TEXT, 0, &r);
        if (r)
            errors++;
    }
}

/* Samples taken by a CPL3 task (user/programs.c) that writes them straight into
 * our buffer, mapped at USER_PRIV in its space. as-fault: the task stores to
 * fresh heap pages and times each store (a demand-zero fault end to end). One
 * task per AS_CHUNK samples: its space (and frames) go back to the VMM when it ends. */
static void user_samples(uint32_t *out, unsigned long n, long prog)
{
    while (n) {
        unsigned long count = n < AS_CHUNK ? n : AS_CHUNK, first = (unsigned long)(out - samples);
        struct task *t = task_spawn("bench", prog, (long)(first << 24 | count));
        if (!t || as_map(t->as, USER_PRIV, (uint64_t)samples, (uint64_t)(payload - (uint8_t *)samples), AS_RW)) {
            errors += n;
            return;
        }
        task_run_all();
        /* as-fault: N pages touched, N faults forwarded; a refused one killed the task. */
        if (t->killed || t->exit_code || (prog == U_FAULT_SAMPLES && t->faults_heap != count))
            errors++;
        task_reap(t);
        out += count;
        n -= count;
    }
}

static void loop_as_fault(uint32_t *out, unsigned long n) { user_samples(out, n, U_FAULT_SAMPLES); }

/* The kernel round trip from CPL3 with no hypercall: SYS_GETPID timed by a task. */
static void loop_user_syscall(uint32_t *out, unsigned long n) { user_samples(out, n, U_SYSCALL_SAMPLES); }

struct bench {
    const char *name;
    void (*loop)(uint32_t *out, unsigned long n);
    uint32_t features; /* PVM_FEAT_* the VMM must offer */
};

static const struct bench benches[] = {
    {"tsc", loop_tsc, 0},
    {"null", loop_null, 0},
    {"ext-null", loop_ext_null, PVM_FEAT_EXTENSIONS},
    {"ioeventfd", loop_ioeventfd, 0},
    {"send", loop_send, 0},
    {"notify-self", loop_notify_self, PVM_FEAT_EVENTS},
    {"notify-rtt", loop_rtt, PVM_FEAT_EVENTS | PVM_FEAT_SMP},
    {"block-wake", loop_rtt, PVM_FEAT_EVENTS | PVM_FEAT_SMP},
    {"timer", loop_timer, PVM_FEAT_EVENTS | PVM_FEAT_TIMER},
    {"multicall", loop_multicall, PVM_FEAT_MULTICALL},
    {"as-null", loop_null, PVM_FEAT_ADDRESS_SPACES}, /* null, once a space has been switched to */
    {"as-switch", loop_as_switch, PVM_FEAT_ADDRESS_SPACES},
    {"as-map-unmap", loop_as_map_unmap, PVM_FEAT_ADDRESS_SPACES},
    {"as-map-batch", loop_as_map_batch, PVM_FEAT_ADDRESS_SPACES},
    {"as-map-range", loop_as_map_range, PVM_FEAT_ADDRESS_SPACES},
    {"as-fault-vmm", loop_as_fault_vmm, PVM_FEAT_ADDRESS_SPACES},
    {"as-fault", loop_as_fault, PVM_FEAT_ADDRESS_SPACES},
    {"as-syscall", loop_user_syscall, PVM_FEAT_ADDRESS_SPACES},
    {"console", loop_console, 0},
    {"hw-console", loop_hw_console, 0},
    {"hw-ipi-rtt", loop_hw_ipi_rtt, PVM_FEAT_SMP},
    {"hw-timer", loop_hw_timer, 0},
    {"notify-doorbell", loop_notify_doorbell, PVM_FEAT_EVENTS | PVM_FEAT_SMP},
    {"disk", loop_disk, PVM_FEAT_BLOCK_DEVICE},
    {"hw-disk", loop_hw_disk, 0},
};

static unsigned long arg_ulong(const char *key, unsigned long dflt)
{
    char arg[24];
    return cmdline_get(key, arg, sizeof arg) > 0 ? (unsigned long)parse_long(arg) : dflt;
}

static int find_sink(void)
{
    for (unsigned i = 0; i < boot_info->nr_channels && i < PVM_MAX_CHANNELS; i++)
        if (boot_info->channels[i].kind == PVM_CHANNEL_NULL_SINK) {
            sink = boot_info->channels[i].handle;
            return 0;
        }
    return -1;
}

/* The address-space benches: the donated frames, two spaces (the first loaded),
 * the batch's entries, the first lazy range. */
static int setup_as(const char *name)
{
    int range = !strncmp(name, "as-map-range", 16);
    as_pages = range || !strncmp(name, "as-map-batch", 16) ? size : 1;
    if (as_pages < 1 || as_pages > AS_BATCH_PAGES) {
        kprintf("bench: %s size=%lu is outside 1..%u pages\n", name, size, AS_BATCH_PAGES);
        return 2;
    }
    /* Our buffers (samples, then the frames as-map* maps) must end below the donated
     * frames (the kernel pages below them are only for kpage_alloc, unused here). */
    if ((uint64_t)payload + as_pages * 4096 > TASK_DONATE_START) {
        kprintf("bench: %lu samples and %lu pages do not fit below the donated frames at %#lx\n", nsamples, as_pages,
                (unsigned long)TASK_DONATE_START);
        return 2;
    }
    task_init();
    as_h[0] = as_create();
    as_h[1] = as_create();
    if (as_h[0] <= 0 || as_h[1] <= 0 || as_switch(as_h[0])) /* the first switch turns on the sregs sync */
        return 3;
    if (range)
        as_ops[0] = (struct pvm_as_op){PVM_AS_OP_MAP, AS_RW, AS_VA, (uint64_t)payload, as_pages * 4096, 0};
    else
        for (unsigned long i = 0; i < as_pages; i++)
            as_ops[i] = (struct pvm_as_op){PVM_AS_OP_MAP, AS_RW, AS_VA + i * 4096,
                                           (uint64_t)payload + (as_pages - 1 - i) * 4096, 4096, 0};
    if (!strncmp(name, "as-fault-vmm", 16) && as_lazy(as_h[0], AS_VA, AS_CHUNK * 4096, AS_RW))
        return 3;
    return 0;
}

/* What the bench needs besides its feature bits; 0, or the exit code. */
static int setup(const char *name)
{
    int hw = bench_hw_setup(name, payload, size); /* the comparison's benches (bench_hw.c) */
    if (hw >= 0)
        return hw;
    if (!strncmp(name, "as-", 3))
        return setup_as(name);
    if (!strncmp(name, "send", 8) && find_sink()) {
        kprintf("bench: no null-sink channel (the host adds one only for benchmarks)\n");
        return 3;
    }
    if (!strncmp(name, "notify-self", 16) || !strncmp(name, "timer", 8)) {
        evt_self = !strncmp(name, "timer", 8) ? (int)evt_bind_virq(PVM_VIRQ_TIMER, 0) : (int)evt_bind_ipi(0);
        if (evt_self <= 0)
            return 3;
        irq_disable();
    }
    if (!strncmp(name, "notify-rtt", 16) || !strncmp(name, "block-wake", 16)) {
        if (boot_info->nr_vcpus < 2) {
            kprintf("bench: %s needs 2 vCPUs\n", name);
            return 3;
        }
        rtt_oneway = name[0] == 'b';
        evt_a = (int)evt_bind_ipi(0);
        evt_b = (int)evt_bind_ipi(1);
        irq_disable();
        if (evt_a <= 0 || evt_b <= 0 || smp_start(1, rtt_responder))
            return 3;
    }
    if (!strncmp(name, "multicall", 16)) {
        if (size < 1 || size > MAX_BATCH) {
            kprintf("bench: multicall size=%lu is outside 1..%u\n", size, MAX_BATCH);
            return 2;
        }
        for (unsigned long i = 0; i < size; i++)
            batch[i].nr = PVM_HC_NULL;
    }
    return 0;
}

/* Tell the host where the timed phase starts (0) and ends (1), when it registered the
 * marker (extension hypercall PVM_EXT_BASE + 1, pyvmm bench --hw-api): it reads its
 * exit counters and CPU time there. Outside every timed window. */
#define BENCH_MARK (PVM_EXT_BASE + 1)
static void mark(unsigned long phase)
{
    if (boot_info->ext_registered & (1ull << (BENCH_MARK - PVM_EXT_BASE)))
        pvm_hypercall(BENCH_MARK, phase, 0, 0, 0, 0);
}

static int bench_main(void)
{
    char name[24];
    if (cmdline_get("bench", name, sizeof name) <= 0) {
        kprintf("bench: usage: test=bench bench=NAME [iters=N] [warmup=N] [reps=N] [size=N]\n");
        return 2;
    }
    const struct bench *b = 0;
    for (unsigned i = 0; i < sizeof benches / sizeof benches[0]; i++)
        if (!strncmp(benches[i].name, name, sizeof name))
            b = &benches[i];
    if (!b) {
        kprintf("bench: unknown bench '%s'\n", name);
        return 2;
    }
    if ((boot_info->features & b->features) != b->features) {
        kprintf("bench: %s needs feature bits %#x, the VMM offers %#x\n", name, b->features, boot_info->features);
        return 3;
    }
    unsigned long iters = arg_ulong("iters", 1000), warmup = arg_ulong("warmup", 100), reps = arg_ulong("reps", 1);
    size = arg_ulong("size", 0);
    port_arg = arg_ulong("port", 0);
    nsamples = iters * reps;
    uint64_t start = ((uint64_t)__kernel_end + 0xfff) & ~0xfffull;
    uint64_t sample_bytes = (nsamples * 4 + 0xfff) & ~0xfffull;
    if (!iters || !reps || iters > (1ul << 24) || reps > 1000 || size > (64ul << 20) ||
        start + sample_bytes + size > boot_info->mem_size) {
        kprintf("bench: iters=%lu reps=%lu size=%lu do not fit in %lu MiB of RAM\n", iters, reps, size,
                (unsigned long)(boot_info->mem_size >> 20));
        return 2;
    }
    samples = (uint32_t *)start;
    payload = (uint8_t *)(start + sample_bytes);
    int rc = setup(name);
    if (rc)
        return rc;
    /* Warm-up writes into the first rep's slots; the first rep overwrites them. */
    for (unsigned long done = 0; done < warmup; done += iters)
        b->loop(samples, warmup - done < iters ? warmup - done : iters);
    mark(0);
    for (unsigned long r = 0; r < reps; r++)
        b->loop(samples + r * iters, iters);
    mark(1);
    if (b->loop == loop_rtt) {
        rtt_stop = 1;
        pvm_notify((unsigned)evt_b);
    }
    bench_hw_stop();
    errors += bench_hw_errors;
    kprintf("bench: name=%s count=%lu samples=%#lx tsc_khz=%lu errors=%lu\n", name, nsamples,
            (unsigned long)samples, (unsigned long)boot_info->tsc_khz, errors);
    return 0;
}
PROGRAM(bench);
