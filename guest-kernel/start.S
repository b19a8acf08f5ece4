/* Entry: pyvmm starts us in 64-bit long mode, rdi = &pvm_boot_info. */
#include "pyvmm_abi.h"

    .section .text.boot, "ax"
    .global _start
_start:
    lea boot_stack_top(%rip), %rsp
    xor %ebp, %ebp
    call kmain
    /* kmain does not return; if it does, stop with exit code 255. */
1:  mov $PVM_HC_SHUTDOWN, %eax
    mov $255, %edi
    outl %eax, $PVM_HYPERCALL_PORT
    jmp 1b

    .section .bss
    .balign 16
boot_stack:
    .skip 16384
    .global boot_stack_top /* test=hostile case=return returns to the code after `call kmain` */
boot_stack_top:

/* Secondary vCPUs (VCPU_UP): rsp = their stack, rdi = their cpu number. */
    .text
    .global secondary_entry
secondary_entry:
    xor %ebp, %ebp
    call secondary_main
2:  hlt
    jmp 2b
