/* The guest kernel's own system calls (user task -> kernel, via `syscall`), and
 * the user address-space layout. Shared by the kernel and the user programs. */
#ifndef USYS_H
#define USYS_H

#include "pyvmm_abi.h"

/* rax = number; rdi, rsi, rdx = arguments; result in rax (negative errno on failure). */
#define SYS_WRITE 1    /* (buf, len) -> bytes written to the console */
#define SYS_EXIT 2     /* (code) -> does not return */
#define SYS_YIELD 3    /* () -> 0; the next task runs */
#define SYS_FORK 4     /* () -> child id in the parent, 0 in the child (COW clone) */
#define SYS_GETPID 5   /* () -> task id */
#define SYS_MPROTECT 6 /* (va, len, prot) -> 0 or -errno (AS_PROTECT on the caller's space) */
#define SYS_REPORT 7   /* (a, b, c) -> 0; hands three numbers to the kernel (benchmarks) */

/* User programs (rdi of the entry point); see user/programs.c. */
#define U_HELLO 1
#define U_PEEK 2
#define U_POKE_TEXT 3
#define U_DEMAND 4
#define U_FORK 5
#define U_PROTECT 6
#define U_PAGER 7
#define U_BENCH 8
#define U_FAULT_SAMPLES 9    /* test=bench bench=as-fault: arg = first << 24 | count */
#define U_SYSCALL_SAMPLES 10 /* test=bench bench=as-syscall: the same arg */

/* User virtual layout: all above PML4 slot 0 (the kernel's). */
#define USER_TEXT (PVM_AS_USER_BASE + 0x400000ULL)       /* the user code, read/execute */
#define USER_HEAP (PVM_AS_USER_BASE + 0x10000000ULL)     /* lazy, read/write */
#define USER_HEAP_SIZE (16ULL << 20)
#define USER_PRIV (PVM_AS_USER_BASE + 0x20000000ULL)     /* per-task private pages, mapped by the kernel */
#define USER_PAGER (PVM_AS_USER_BASE + 0x30000000ULL)    /* served by a host-side pager in tests */
#define USER_STACK_TOP (PVM_AS_USER_BASE + 0x80000000ULL) /* lazy stack below this */
#define USER_STACK_SIZE (1ULL << 20)

#endif
