/* CPL3 user tasks: each runs in its own address space, which the VMM builds
 * and switches (AS_* hypercalls); the kernel never writes a page-table entry.
 * Tasks enter the kernel with SYSCALL; their page faults are forwarded to the
 * VMM with one PAGE_FAULT hypercall, and a refused fault ends the task with a
 * report on the console. Single vCPU: tasks run on the boot vCPU. */
#include "task.h"

#include "as.h"
#include "lib.h"
#include "usys.h"

#define MSR_STAR 0xc0000081
#define MSR_LSTAR 0xc0000082
#define MSR_SFMASK 0xc0000084
#define RFLAGS_IF 0x200
#define RFLAGS_USER (RFLAGS_IF | 0x2)
#define SFMASK_BITS 0x47700 /* TF, DF, IF, IOPL, NT, AC cleared on entry */

/* Kernel RAM for explicit mappings, and the range donated to the VMM for demand paging. */
#define KPAGES_START TASK_KPAGES_START
#define KPAGES_END TASK_KPAGES_END
#define DONATE_START TASK_DONATE_START
#define DONATE_MAX TASK_DONATE_MAX

struct task tasks[MAX_TASKS];
void (*task_syscall_hook)(struct trap_frame *tf);
int (*task_fault_hook)(struct trap_frame *tf, uint64_t cr2, long refused);
uint64_t task_donate_limit = DONATE_START + DONATE_MAX;
static struct task *current;
static int initialised;
static uint64_t kpage_next = KPAGES_START;
static uint8_t kernel_stack[16384] __attribute__((aligned(16)));
uint64_t kernel_stack_top;
long report_a, report_b, report_c;

extern const char __utext_lma[], __utext_lma_end[]; /* kernel.ld */

static inline void wrmsr(uint32_t msr, uint64_t v)
{
    __asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}

uint64_t kpage_alloc(void)
{
    if (kpage_next >= KPAGES_END)
        return 0;
    uint64_t p = kpage_next;
    kpage_next += 4096;
    memset((void *)p, 0, 4096);
    return p;
}

static const char *access_kind(uint64_t err)
{
    if (err & PVM_PF_FETCH)
        return "exec";
    return err & PVM_PF_WRITE ? "write" : "read";
}

void syscall_dispatch(struct trap_frame *tf);
/* Set when SYSCALL arrived through the #PF fallback below (reported by test=utasks). */
int syscall_via_fault;

/* #PF: one hypercall; 0 means the VMM fixed it and the access is retried. */
static void on_page_fault(struct trap_frame *tf)
{
    uint64_t cr2 = read_cr2();
    if ((tf->cs & 3) == 3 && tf->rip == (uint64_t)syscall_entry && cr2 == tf->rip) {
        /* This machine's PVM backend runs SYSCALL from CPL3 only halfway: rip = LSTAR,
         * rcx/r11 saved, RFLAGS masked, but CS stays the user's, so the first fetch of
         * the (supervisor-only) entry faults. Serve the call from here, as SYSCALL would
         * have, and return with IRET. On VT-x/AMD-V the fault never happens. */
        syscall_via_fault++;
        tf->rip = tf->rcx;
        tf->rflags = tf->r11;
        syscall_dispatch(tf);
        return;
    }
    struct task *t = current;
    long r = as_page_fault(t ? t->as : PVM_AS_KERNEL_HANDLE, cr2, tf->error_code, tf->rip);
    if (t) {
        if (cr2 >= USER_STACK_TOP - USER_STACK_SIZE && cr2 < USER_STACK_TOP)
            t->faults_stack++;
        else if (cr2 >= USER_HEAP && cr2 < USER_HEAP + USER_HEAP_SIZE)
            t->faults_heap++;
        else
            t->faults_other++;
    }
    if (r == 0)
        return;
    if (task_fault_hook && task_fault_hook(tf, cr2, r))
        return;
    kprintf("page fault: %s at %#lx (%s, %s mode) rip %#lx: refused by the VMM (%ld)\n", access_kind(tf->error_code),
            cr2, tf->error_code & PVM_PF_PRESENT ? "protection" : "not present",
            tf->error_code & PVM_PF_USER ? "user" : "kernel", tf->rip, r);
    if (!t) {
        kprintf("guest kernel: page fault outside any task\n");
        pvm_shutdown(126);
    }
    kprintf("task %d (%s): killed\n", t->id, t->name);
    t->killed = 1;
    uleave(LEAVE_KILLED);
}

void task_init(void)
{
    if (initialised)
        return;
    initialised = 1;
    kernel_stack_top = (uint64_t)(kernel_stack + sizeof kernel_stack);
    arch_set_kernel_stack(kernel_stack_top); /* traps from CPL3 land on the same stack */
    /* SYSCALL: CS = KERNEL_CS, SS = +8; SYSRET: CS = USER32_CS + 16, SS = USER32_CS + 8. */
    wrmsr(MSR_STAR, ((uint64_t)USER32_CS << 48) | ((uint64_t)KERNEL_CS << 32));
    wrmsr(MSR_LSTAR, (uint64_t)syscall_entry);
    wrmsr(MSR_SFMASK, SFMASK_BITS);
    trap_set_handler(14, on_page_fault);
    uint64_t end = boot_info->mem_size - (1ULL << 20);
    if (end > task_donate_limit)
        end = task_donate_limit;
    long r = end > DONATE_START ? as_donate(DONATE_START, end - DONATE_START) : -PVM_ENOMEM;
    if (r < 0)
        kprintf("task: no frames donated for demand paging (%ld): needs more than 9 MiB of RAM\n", r);
}

struct task *task_spawn(const char *name, long prog, long arg)
{
    task_init();
    struct task *t = 0;
    for (int i = 0; i < MAX_TASKS; i++)
        if (tasks[i].state == TASK_FREE) {
            t = &tasks[i];
            t->id = i + 1;
            break;
        }
    if (!t)
        return 0;
    long as = as_create();
    if (as < 0) {
        kprintf("task: AS_CREATE failed: %ld\n", as);
        return 0;
    }
    uint64_t text = (uint64_t)__utext_lma, text_len = ((uint64_t)__utext_lma_end - text + 4095) & ~4095ULL;
    long r = as_map(as, USER_TEXT, text, text_len, PVM_PROT_READ | PVM_PROT_EXEC | PVM_PROT_USER);
    if (r == 0)
        r = as_lazy(as, USER_HEAP, USER_HEAP_SIZE, PVM_PROT_READ | PVM_PROT_WRITE | PVM_PROT_USER);
    if (r == 0)
        r = as_lazy(as, USER_STACK_TOP - USER_STACK_SIZE, USER_STACK_SIZE,
                    PVM_PROT_READ | PVM_PROT_WRITE | PVM_PROT_USER);
    if (r < 0) {
        kprintf("task: setting up address space %ld failed: %ld\n", as, r);
        as_destroy(as);
        return 0;
    }
    int id = t->id;
    memset(t, 0, sizeof *t);
    t->id = id;
    t->state = TASK_RUNNABLE;
    t->as = as;
    t->name = name;
    t->tf.rip = USER_TEXT; /* _ustart */
    t->tf.cs = USER_CS;
    t->tf.ss = USER_DS;
    t->tf.rflags = RFLAGS_USER;
    t->tf.rsp = USER_STACK_TOP - 8; /* as after a call: the ABI's alignment */
    t->tf.rdi = (uint64_t)prog;
    t->tf.rsi = (uint64_t)arg;
    t->tf.rdx = (uint64_t)id;
    return t;
}

static void task_end(struct task *t)
{
    t->state = TASK_DEAD;
    as_switch(PVM_AS_KERNEL_HANDLE); /* a space cannot be destroyed while loaded */
    long r = as_destroy(t->as);
    if (r < 0)
        kprintf("task %d: AS_DESTROY failed: %ld\n", t->id, r);
}

void task_run_all(void)
{
    for (;;) {
        int ran = 0;
        for (int i = 0; i < MAX_TASKS; i++) {
            struct task *t = &tasks[i];
            if (t->state != TASK_RUNNABLE)
                continue;
            ran = 1;
            long r = as_switch(t->as);
            if (r < 0) {
                kprintf("task %d: AS_SWITCH failed: %ld\n", t->id, r);
                t->state = TASK_DEAD;
                continue;
            }
            current = t;
            long why = uenter(&t->tf);
            current = 0;
            if (why != LEAVE_YIELD)
                task_end(t);
        }
        if (!ran)
            break;
    }
    as_switch(PVM_AS_KERNEL_HANDLE);
}

long task_enter(struct task *t)
{
    task_init();
    long r = as_switch(t->as);
    if (r < 0)
        return r;
    current = t;
    long why = uenter(&t->tf);
    current = 0;
    return why;
}

void task_reap(struct task *t)
{
    if (t->state == TASK_DEAD)
        t->state = TASK_FREE;
}

/* Copy a user buffer out through the task's own mapping (a lazy page faults in here too). */
static long sys_write(uint64_t buf, uint64_t len)
{
    char kbuf[256];
    if (buf < PVM_AS_USER_BASE || buf >= PVM_AS_USER_END || len > PVM_AS_USER_END - buf)
        return -PVM_EFAULT;
    long done = 0;
    while (len) {
        uint64_t n = len < sizeof kbuf ? len : sizeof kbuf;
        memcpy(kbuf, (const void *)(buf + done), n);
        long r = console_write(kbuf, n);
        if (r < 0)
            return done ? done : r;
        done += r;
        len -= (uint64_t)r;
        if ((uint64_t)r < n) /* the console failed part-way: report what went */
            break;
    }
    return done;
}

static __attribute__((noreturn)) void save_and_leave(struct trap_frame *tf, long why)
{
    memcpy(&current->tf, tf, sizeof *tf);
    uleave(why);
}

void syscall_dispatch(struct trap_frame *tf)
{
    struct task *t = current;
    if (task_syscall_hook) {
        task_syscall_hook(tf);
        return;
    }
    switch (tf->rax) {
    case SYS_WRITE:
        tf->rax = sys_write(tf->rdi, tf->rsi);
        return;
    case SYS_EXIT:
        t->exit_code = (long)tf->rdi;
        uleave(LEAVE_EXIT);
    case SYS_YIELD:
        tf->rax = 0;
        save_and_leave(tf, LEAVE_YIELD);
    case SYS_FORK: {
        struct task *c = 0;
        for (int i = 0; i < MAX_TASKS; i++)
            if (tasks[i].state == TASK_FREE) {
                c = &tasks[i];
                break;
            }
        long as = c ? as_clone(t->as) : -PVM_ENOSPC;
        if (as < 0) {
            tf->rax = as;
            return;
        }
        memset(c, 0, sizeof *c);
        c->id = (int)(c - tasks) + 1;
        c->state = TASK_RUNNABLE;
        c->as = as;
        c->name = "fork child";
        memcpy(&c->tf, tf, sizeof *tf);
        c->tf.rax = 0;
        tf->rax = (uint64_t)c->id;
        return;
    }
    case SYS_GETPID:
        tf->rax = (uint64_t)t->id;
        return;
    case SYS_MPROTECT:
        tf->rax = (uint64_t)as_protect(t->as, tf->rdi, tf->rsi, (unsigned)tf->rdx | PVM_PROT_USER);
        return;
    case SYS_REPORT:
        report_a = (long)tf->rdi;
        report_b = (long)tf->rsi;
        report_c = (long)tf->rdx;
        tf->rax = 0;
        return;
    default:
        tf->rax = (uint64_t)-PVM_ENOSYS;
    }
}
