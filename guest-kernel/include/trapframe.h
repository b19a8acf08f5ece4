/* Assembler macros that build and unwind the general-register part of
 * struct trap_frame (arch.h): the push order is the reverse of its fields.
 * Every path that builds a trap frame (traps, SYSCALL, entering a task) uses
 * these, so the layout lives in one place besides the C struct. */
#ifndef TRAPFRAME_H
#define TRAPFRAME_H
#ifdef __ASSEMBLER__

.macro SAVE_GPRS
    push %rax
    push %rbx
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %rbp
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
.endm

/* Restores the registers and drops the vector and error code: rsp then points
 * at the CPU-pushed part (rip, cs, rflags, rsp, ss). */
.macro RESTORE_GPRS
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rbp
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rbx
    pop %rax
    add $16, %rsp /* vector, error code */
.endm

#endif
#endif
