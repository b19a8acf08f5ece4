/* CPL3 user tasks, each in its own VMM-managed address space. */
#ifndef TASK_H
#define TASK_H

#include <stdint.h>

#include "arch.h"

#define MAX_TASKS 8

/* Guest RAM task.c uses: kernel pages for explicit AS_MAP (kpage_alloc), then the
 * range donated to the VMM for demand paging (up to 32 MiB, RAM permitting).
 * Buffers the kernel keeps for itself must end below TASK_KPAGES_START. */
#define TASK_KPAGES_START 0x400000ULL
#define TASK_KPAGES_END 0x800000ULL
#define TASK_DONATE_START 0x800000ULL
#define TASK_DONATE_MAX (32ULL << 20)

enum task_state { TASK_FREE, TASK_RUNNABLE, TASK_DEAD };
/* Why uenter returned (uleave's argument). */
enum { LEAVE_EXIT = 1, LEAVE_YIELD, LEAVE_KILLED };

struct task {
    int id;
    enum task_state state;
    long as;          /* address-space handle */
    const char *name;
    struct trap_frame tf; /* user registers while not running */
    long exit_code;
    int killed;       /* ended by a refused page fault */
    unsigned long faults_heap, faults_stack, faults_other; /* forwarded to the VMM */
};

/* Set up SYSCALL/SYSRET, the #PF handler and the donated frame pool; idempotent. */
void task_init(void);
/* A new task running user program `prog` with `arg`, in a fresh address space; NULL on failure. */
struct task *task_spawn(const char *name, long prog, long arg);
/* Run every runnable task round-robin until all have ended. */
void task_run_all(void);
/* Run *t* (its space and registers set up by the caller) until it leaves; the LEAVE_* reason. */
long task_enter(struct task *t);
/* Set: every SYSCALL goes here instead of the kernel's own calls (exec: the Linux ABI). */
extern void (*task_syscall_hook)(struct trap_frame *tf);
/* Set: a fault the VMM refused goes here first; nonzero = handled (the trap returns). */
extern int (*task_fault_hook)(struct trap_frame *tf, uint64_t cr2, long refused);
/* task_init donates frames for demand paging up to this address (RAM permitting). */
extern uint64_t task_donate_limit;
/* Free an ended task's slot for a later task_spawn (its space is already destroyed). */
void task_reap(struct task *t);
/* A page of kernel RAM (not donated) for explicit AS_MAP, zeroed; 0 when exhausted. */
uint64_t kpage_alloc(void);
extern struct task tasks[MAX_TASKS];
/* SYSCALLs that arrived through the #PF fallback (see task.c). */
extern int syscall_via_fault;
/* Last SYS_REPORT numbers (benchmarks). */
extern long report_a, report_b, report_c;

/* uentry.S */
long uenter(struct trap_frame *tf);
__attribute__((noreturn)) void uleave(long why);
void syscall_entry(void);

#endif
