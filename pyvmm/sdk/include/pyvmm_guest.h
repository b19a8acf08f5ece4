/* pyvmm guest SDK: what a guest built outside the pyvmm tree needs.
 *
 * crt0.S enters main() with a 64 KiB stack, interrupts off, in long mode on pyvmm's identity
 * map of RAM; main's return value is the exit code pyvmm exits with. Everything below talks
 * to pyvmm through hypercalls (docs/abi.md): no emulated hardware exists to talk to. */
#ifndef PYVMM_GUEST_H
#define PYVMM_GUEST_H

#include <stddef.h>
#include <stdint.h>

#include "pyvmm_abi.h"

/* rax = nr; args in rdi, rsi, rdx, r10, r8; result (or -errno) in rax. */
static inline long pvm_hypercall(unsigned long nr, unsigned long a0, unsigned long a1, unsigned long a2,
                                 unsigned long a3, unsigned long a4)
{
    register unsigned long r10 __asm__("r10") = a3;
    register unsigned long r8 __asm__("r8") = a4;
    long ret;
    __asm__ volatile("outl %%eax, %[port]"
                     : "=a"(ret)
                     : "a"(nr), "D"(a0), "S"(a1), "d"(a2), "r"(r10), "r"(r8), [port] "i"(PVM_HYPERCALL_PORT)
                     : "memory");
    return ret;
}

/* One wrapper per ABI call: pvm_hc_send(), pvm_hc_clock_get(), pvm_hc_as_map()... */
#include "pyvmm_calls.h"

/* What pyvmm told the guest at boot (read-only to the guest). */
extern const struct pvm_boot_info *pvm_boot;

/* The console: write a string / len bytes; returns bytes written or -errno. */
long pvm_print(const char *s);
long pvm_write(const void *buf, size_t len);
/* Decimal / hex numbers on the console. */
void pvm_print_dec(long value);
void pvm_print_hex(unsigned long value);
/* The command line pyvmm was given (--cmdline), NUL-terminated. */
const char *pvm_cmdline(void);
/* The value of KEY=VALUE on the command line copied into buf (NUL-terminated); the
 * length, or -1 when KEY is absent. */
long pvm_cmdline_get(const char *key, char *buf, size_t size);
/* The handle of the channel named name (a --disk, --channel or Python channel), or -1. */
long pvm_channel_find(const char *name);
/* Nanoseconds of the monotonic clock. */
uint64_t pvm_now_ns(void);
/* Stop the VM; pyvmm exits with code. */
__attribute__((noreturn)) void pvm_exit(int code);

size_t pvm_strlen(const char *s);
int pvm_strcmp(const char *a, const char *b);
void *pvm_memcpy(void *dst, const void *src, size_t n);
void *pvm_memset(void *dst, int c, size_t n);

int main(void);

#endif
