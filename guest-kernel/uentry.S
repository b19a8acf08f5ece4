/* Entering and leaving CPL3 user tasks, and the SYSCALL entry point.
 *
 * uenter(tf): save the kernel's callee-saved registers and stack, load the
 * task's registers from the trap frame and iretq to it. uleave(why) unwinds
 * back to that uenter, which returns `why`. SYSCALL arrives at syscall_entry,
 * which builds a trap frame on the kernel stack (the same layout as a trap),
 * calls syscall_dispatch(frame) and returns with SYSRET. */
#include "pyvmm_abi.h"
#include "trapframe.h"

#define USER_DS (0x20 | 3)
#define USER_CS (0x28 | 3)

    .text
    .global uenter
uenter:
    push %rbp
    push %rbx
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, kernel_ctx_rsp(%rip)
    mov %rdi, %rsp
    RESTORE_GPRS
    iretq

    .global uleave
uleave:
    mov kernel_ctx_rsp(%rip), %rsp
    mov %rdi, %rax
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbx
    pop %rbp
    ret

    .global syscall_entry
syscall_entry:
    mov %rsp, user_rsp_scratch(%rip)
    mov kernel_stack_top(%rip), %rsp
    push $USER_DS
    push user_rsp_scratch(%rip)
    push %r11 /* rflags */
    push $USER_CS
    push %rcx /* rip */
    push $0
    push $0x80
    SAVE_GPRS
    mov %rsp, %rdi
    call syscall_dispatch
    RESTORE_GPRS
    mov 0(%rsp), %rcx   /* rip */
    mov 16(%rsp), %r11  /* rflags */
    mov 24(%rsp), %rsp  /* user stack */
    sysretq

    .bss
    .balign 8
kernel_ctx_rsp: .quad 0
user_rsp_scratch: .quad 0
