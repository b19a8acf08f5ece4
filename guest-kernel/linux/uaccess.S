/* copy_user(dst, src, n): rep movsb between kernel and program memory. A page fault on the
 * movsb that the VMM refuses (unmapped, or not permitted) resumes at copy_user_fixup, which
 * returns -EFAULT: linux/exec.c's fault hook moves rip there. */
    .text
    .global copy_user, copy_user_insn, copy_user_fixup
copy_user:
    mov %rdx, %rcx
copy_user_insn:
    rep movsb
    xor %eax, %eax
    ret
copy_user_fixup:
    mov $-14, %rax
    ret
