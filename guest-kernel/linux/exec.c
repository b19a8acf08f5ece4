/* test=exec: load the program `pyvmm exec` described on the "exec" channel into a fresh
 * low-window address space, run it at CPL3 and exit with its status. The host did the ELF
 * work (validation, load plan, the initial stack image with argv, envp and auxv: see
 * pyvmm/linux/image.py); this file maps, fills and enters, and turns the program's faults
 * and traps into the signals Linux would deliver (which all end it here: no handlers run). */
#include "linux.h"

#include "as.h"
#include "chan.h"
#include "programs.h"
#include "task.h"

#define MSR_FS_BASE 0xc0000100
#define USER_RW (PVM_PROT_READ | PVM_PROT_WRITE | PVM_PROT_USER)

struct lx_proc lx;
static struct pvm_exec_info info;
static struct pvm_exec_stats stats;
static struct task proc_task;
static long exec_handle = -1;
static int exit_status;

extern const char copy_user_insn[], copy_user_fixup[]; /* uaccess.S */

uint64_t lx_now_ns(int realtime)
{
    long r = pvm_hc_clock_get(realtime ? PVM_CLOCK_REALTIME : PVM_CLOCK_MONOTONIC);
    return r < 0 ? 0 : (uint64_t)r;
}

static void send_stats(void)
{
    if (!(info.flags & PVM_EXEC_STATS) || exec_handle < 0)
        return;
    stats.magic = PVM_EXEC_MAGIC;
    pvm_send((unsigned long)exec_handle, &stats, sizeof stats, 0);
}

__attribute__((noreturn)) void lx_exit(int code)
{
    exit_status = code & 0xff;
    uleave(LEAVE_EXIT);
}

__attribute__((noreturn)) void lx_kill(int sig)
{
    exit_status = 128 + sig;
    uleave(LEAVE_KILLED);
}

static const char *access_kind(uint64_t err)
{
    if (err & PVM_PF_FETCH)
        return "exec";
    return err & PVM_PF_WRITE ? "write" : "read";
}

/* A refused fault: in copy_user, -EFAULT for the system call; from the program, SIGSEGV. */
static int on_refused_fault(struct trap_frame *tf, uint64_t cr2, long refused)
{
    if ((tf->cs & 3) == 0 && tf->rip == (uint64_t)copy_user_insn) {
        tf->rip = (uint64_t)copy_user_fixup;
        return 1;
    }
    if ((tf->cs & 3) != 3)
        return 0; /* a kernel bug: the caller reports it */
    if (refused == -PVM_ENOMEM) { /* no donated frame left: Linux's OOM killer would SIGKILL it */
        kprintf("pyvmm exec: out of memory at %#lx (rip %#lx): killed (raise --memory)\n", cr2, tf->rip);
        lx_kill(9);
    }
    kprintf("pyvmm exec: SIGSEGV: %s at %#lx (%s), rip %#lx\n", access_kind(tf->error_code), cr2,
            tf->error_code & PVM_PF_PRESENT ? "protection" : "not mapped", tf->rip);
    lx_kill(11);
}

/* CPU exceptions from the program: the signal Linux sends for each (exit 128 + N). */
static void on_user_trap(struct trap_frame *tf)
{
    static const struct {
        uint8_t vector, sig;
        const char *name;
    } map[] = {{0, 8, "SIGFPE"}, {1, 5, "SIGTRAP"}, {3, 5, "SIGTRAP"}, {4, 11, "SIGSEGV"}, {5, 11, "SIGSEGV"},
               {6, 4, "SIGILL"}, {13, 11, "SIGSEGV"}, {16, 8, "SIGFPE"}, {17, 7, "SIGBUS"}, {19, 8, "SIGFPE"}};
    if ((tf->cs & 3) != 3) {
        kprintf("guest kernel: trap %lu in kernel mode at rip %#lx (exec)\n", tf->vector, tf->rip);
        pvm_shutdown(126);
    }
    for (unsigned i = 0; i < sizeof map / sizeof map[0]; i++)
        if (map[i].vector == tf->vector) {
            kprintf("pyvmm exec: %s: trap %lu at rip %#lx\n", map[i].name, tf->vector, tf->rip);
            lx_kill(map[i].sig);
        }
    kprintf("pyvmm exec: SIGSEGV: trap %lu at rip %#lx\n", tf->vector, tf->rip);
    lx_kill(11);
}

static void lx_syscall(struct trap_frame *tf)
{
    uint64_t a[6] = {tf->rdi, tf->rsi, tf->rdx, tf->r10, tf->r8, tf->r9};
    long nr = (long)tf->rax;
    extern long lx_misc_call(long nr, const uint64_t *a, int *handled);
    int handled = 0;
    long r = lx_fs_call(nr, a, &handled);
    if (!handled)
        r = lx_mm_call(nr, a, &handled);
    if (!handled)
        r = lx_misc_call(nr, a, &handled);
    if (!handled)
        r = -LX_ENOSYS;
    if (nr >= 0 && nr < PVM_EXEC_NR_SYSCALLS) {
        stats.calls[nr]++;
        if (r == -LX_ENOSYS)
            stats.enosys[nr]++;
    } else {
        stats.other++;
    }
    tf->rax = (uint64_t)r;
}

static long fill(long as, uint64_t va, uint64_t len, uint64_t off, long handle)
{
    while (len) {
        long r = pvm_hc_user_recv((unsigned long)handle, va, len, off, (unsigned long)as);
        if (r <= 0)
            return r < 0 ? r : -PVM_EIO; /* the host said the file had these bytes */
        va += (uint64_t)r;
        off += (uint64_t)r;
        len -= (uint64_t)r;
    }
    return 0;
}

static long load(long as)
{
    for (uint32_t i = 0; i < info.nr_regions && i < PVM_EXEC_MAX_REGIONS; i++) {
        long r = as_lazy(as, info.regions[i].va, info.regions[i].len, USER_RW);
        if (r < 0)
            return r;
    }
    for (uint32_t i = 0; i < info.nr_copies && i < PVM_EXEC_MAX_COPIES; i++) {
        long r = fill(as, info.copies[i].va, info.copies[i].len, info.copies[i].file_off, lx.program);
        if (r < 0)
            return r;
    }
    for (uint32_t i = 0; i < info.nr_regions && i < PVM_EXEC_MAX_REGIONS; i++) {
        long r = as_protect(as, info.regions[i].va, info.regions[i].len, info.regions[i].prot | PVM_PROT_USER);
        if (r < 0)
            return r;
    }
    long r = as_lazy(as, info.stack_lo, info.stack_hi - info.stack_lo, USER_RW);
    if (r < 0)
        return r;
    return fill(as, info.sp, info.stack_image_len, info.stack_image_off, exec_handle);
}

static int exec_main(void)
{
    exec_handle = channel_find("exec");
    long out = PVM_CONSOLE_HANDLE, err = channel_find("stderr");
    if (err >= 0)
        kconsole_handle = err;
    lx.program = channel_find("program");
    lx.share = channel_find("share");
    if (exec_handle < 0 || lx.program < 0) {
        kprintf("exec: no \"exec\" or \"program\" channel: run this through `pyvmm exec`\n");
        return 127;
    }
    long r = pvm_recv((unsigned long)exec_handle, &info, sizeof info, 0);
    if (r != (long)sizeof info || info.magic != PVM_EXEC_MAGIC) {
        kprintf("exec: bad manifest (%ld)\n", r);
        return 127;
    }
    lx.brk_start = lx.brk = info.brk;
    lx.brk_max = info.brk_max;
    lx.mmap_next = info.mmap_base;
    lx.mmap_end = info.mmap_end;
    lx.uid = info.uid;
    lx.gid = info.gid;
    for (int i = 0; i < 4; i++)
        lx.rng[i] = info.random[i] | 1;
    memcpy(lx.cwd, info.cwd, sizeof lx.cwd);
    lx.cwd[sizeof lx.cwd - 1] = 0;
    lx_fs_init(out, err >= 0 ? err : out);

    task_donate_limit = boot_info->mem_size; /* every frame above the kernel's for the program */
    task_init();
    task_syscall_hook = lx_syscall;
    task_fault_hook = on_refused_fault;
    static const uint8_t user_traps[] = {0, 1, 3, 4, 5, 6, 7, 10, 11, 12, 13, 16, 17, 19};
    for (unsigned i = 0; i < sizeof user_traps; i++)
        trap_set_handler(user_traps[i], on_user_trap);

    long as = as_create_flags(PVM_AS_CREATE_LOW_WINDOW);
    if (as < 0) {
        kprintf("exec: AS_CREATE failed: %ld\n", as);
        return 127;
    }
    lx.as = as;
    r = load(as);
    if (r < 0) {
        kprintf("exec: loading the program failed: %ld\n", r);
        return 127;
    }
    struct task *t = &proc_task;
    t->id = 1;
    t->state = TASK_RUNNABLE;
    t->as = as;
    t->name = "exec";
    t->tf.rip = info.entry;
    t->tf.cs = USER_CS;
    t->tf.ss = USER_DS;
    t->tf.rflags = 0x202;
    t->tf.rsp = info.sp;
    r = task_enter(t);
    if (r < 0) {
        kprintf("exec: AS_SWITCH failed: %ld\n", r);
        return 127;
    }
    as_switch(PVM_AS_KERNEL_HANDLE);
    send_stats();
    return exit_status;
}

PROGRAM(exec);
