/* The guest kernel's tiny libc: memory, strings, formatted console output. */
#ifndef LIB_H
#define LIB_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "pvm.h"

void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strncmp(const char *a, const char *b, size_t n);

/* printf subset: %s %c %d %u %x %#x %ld %lu %lx %#lx %p %%; one send per call. */
int kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* All of buf to the console, waiting out back-pressure; len, or SEND's error if nothing went. */
long console_write(const void *buf, unsigned long len);
int kvsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int ksnprintf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Command line: copy the value of `key=value` into buf; returns length or -1. */
int cmdline_get(const char *key, char *buf, size_t size);
long parse_long(const char *s);
void sort_u64(uint64_t *v, unsigned n);

extern const struct pvm_boot_info *boot_info;
/* The channel kprintf writes to: the console, unless a program moves it (exec: "stderr"). */
extern long kconsole_handle;

#endif
