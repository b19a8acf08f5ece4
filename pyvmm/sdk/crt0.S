/* pyvmm guest SDK entry: pyvmm starts the boot vCPU here in 64-bit long mode with
 * rdi = &pvm_boot_info. Sets a stack, calls main(), and shuts down with its result. */
#include "pyvmm_abi.h"

    .section .text.entry, "ax"
    .global _start
_start:
    lea pvm_stack_top(%rip), %rsp
    xor %ebp, %ebp
    mov %rdi, pvm_boot(%rip)
    call main
    mov %eax, %edi
1:  mov $PVM_HC_SHUTDOWN, %eax
    outl %eax, $PVM_HYPERCALL_PORT
    jmp 1b

    .data
    .balign 8
    .global pvm_boot
pvm_boot:
    .quad 0

    .section .bss
    .balign 16
    .skip 65536
pvm_stack_top:
    .section .note.GNU-stack, "", @progbits
