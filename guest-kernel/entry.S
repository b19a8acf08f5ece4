/* Trap entry: one stub per vector pushes (error code,) vector, then the common
 * path saves registers, calls trap_dispatch(frame), restores and returns. */

#include "trapframe.h"

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
    SAVE_GPRS
    mov %rsp, %rdi
    call trap_dispatch
    RESTORE_GPRS
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
