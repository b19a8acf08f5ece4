/* CPL3 side: system-call stubs and tiny output helpers. Everything here is
 * compiled into the user objects (position-independent, linked at USER_TEXT). */
#ifndef ULIB_H
#define ULIB_H

#include <stdint.h>

#include "usys.h"

static inline long usys(long nr, long a0, long a1, long a2)
{
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a0), "S"(a1), "d"(a2) : "rcx", "r11", "memory");
    return ret;
}

static inline __attribute__((noreturn)) void uexit(long code)
{
    for (;;)
        usys(SYS_EXIT, code, 0, 0);
}

static inline long ulen(const char *s)
{
    long n = 0;
    while (s[n])
        n++;
    return n;
}

/* A line buffer on the caller's stack: text and numbers, one SYS_WRITE per line. */
struct uline {
    char buf[160];
    long n;
};

static inline void ul_str(struct uline *l, const char *s)
{
    while (*s && l->n < (long)sizeof l->buf)
        l->buf[l->n++] = *s++;
}

static inline void ul_num(struct uline *l, unsigned long v, unsigned base)
{
    char tmp[24];
    int n = 0;
    if (base == 16)
        ul_str(l, "0x");
    do {
        tmp[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    while (n && l->n < (long)sizeof l->buf)
        l->buf[l->n++] = tmp[--n];
}

static inline void ul_send(struct uline *l)
{
    usys(SYS_WRITE, (long)l->buf, l->n, 0);
    l->n = 0;
}

static inline uint64_t urdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

#endif
