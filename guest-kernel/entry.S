/* Trap entry: one stub per vector pushes (error code,) vector, then the common
 * path saves registers, calls trap_dispatch(frame), restores and returns. */

    .text
    .altmacro
.macro STUB v
    .balign 16
trap_stub_\v:
    .if !(\v == 8 || (\v >= 10 && \v <= 14) || \v == 17 || \v == 21 || \v == 29 || \v == 30)
    pushq $0
    .endif
    pushq $\v
    jmp trap_common
.endm

.set v, 0
.rept 48
    STUB %v
    .set v, v + 1
.endr

trap_common:
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
    mov %rsp, %rdi
    call trap_dispatch
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
    iretq

.macro STUBADDR v
    .quad trap_stub_\v
.endm
    .section .rodata
    .balign 8
    .global trap_stubs
trap_stubs:
.set v, 0
.rept 48
    STUBADDR %v
    .set v, v + 1
.endr
