/* pyvmm guest SDK: the tiny C library declared in pyvmm_guest.h. */
#include "pyvmm_guest.h"

int memcmp(const void *a, const void *b, size_t n);

size_t pvm_strlen(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

int pvm_strcmp(const char *a, const char *b)
{
    while (*a && *a == *b)
        a++, b++;
    return (unsigned char)*a - (unsigned char)*b;
}

void *pvm_memcpy(void *dst, const void *src, size_t n)
{
    char *d = dst;
    const char *s = src;
    while (n--)
        *d++ = *s++;
    return dst;
}

void *pvm_memset(void *dst, int c, size_t n)
{
    char *d = dst;
    while (n--)
        *d++ = (char)c;
    return dst;
}

/* gcc may emit calls to these even with -ffreestanding. */
void *memcpy(void *dst, const void *src, size_t n) { return pvm_memcpy(dst, src, n); }
void *memset(void *dst, int c, size_t n) { return pvm_memset(dst, c, n); }

int memcmp(const void *a, const void *b, size_t n)
{
    const unsigned char *x = a, *y = b;
    for (; n; n--, x++, y++)
        if (*x != *y)
            return *x - *y;
    return 0;
}

long pvm_write(const void *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        long n = pvm_hc_send(PVM_CONSOLE_HANDLE, (unsigned long)buf + done, len - done, 0);
        if (n == -PVM_EAGAIN) /* the host's stdout is full: back-pressure, try again */
            continue;
        if (n < 0)
            return n;
        done += (size_t)n;
    }
    return (long)done;
}

long pvm_print(const char *s) { return pvm_write(s, pvm_strlen(s)); }

void pvm_print_hex(unsigned long value)
{
    char buf[17];
    int i = 16;
    buf[i] = 0;
    do {
        buf[--i] = "0123456789abcdef"[value & 15];
        value >>= 4;
    } while (value);
    pvm_write("0x", 2);
    pvm_print(buf + i);
}

void pvm_print_dec(long value)
{
    char buf[21];
    int i = 20;
    unsigned long v = value < 0 ? -(unsigned long)value : (unsigned long)value;
    buf[i] = 0;
    do {
        buf[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    if (value < 0)
        buf[--i] = '-';
    pvm_print(buf + i);
}

const char *pvm_cmdline(void) { return (const char *)(uintptr_t)pvm_boot->cmdline; }

long pvm_cmdline_get(const char *key, char *buf, size_t size)
{
    size_t klen = pvm_strlen(key);
    for (const char *p = pvm_cmdline(); *p;) {
        while (*p == ' ')
            p++;
        const char *word = p;
        while (*p && *p != ' ')
            p++;
        size_t wlen = (size_t)(p - word);
        if (wlen > klen && word[klen] == '=' && !memcmp(word, key, klen)) {
            size_t vlen = wlen - klen - 1;
            if (size) {
                size_t n = vlen < size - 1 ? vlen : size - 1;
                pvm_memcpy(buf, word + klen + 1, n);
                buf[n] = 0;
            }
            return (long)vlen;
        }
    }
    return -1;
}

long pvm_channel_find(const char *name)
{
    for (uint32_t i = 0; i < pvm_boot->nr_channels && i < PVM_MAX_CHANNELS; i++)
        if (!pvm_strcmp(pvm_boot->channels[i].name, name))
            return (long)pvm_boot->channels[i].handle;
    return -1;
}

uint64_t pvm_now_ns(void) { return (uint64_t)pvm_hc_clock_get(PVM_CLOCK_MONOTONIC); }

void pvm_exit(int code)
{
    for (;;)
        pvm_hc_shutdown((unsigned long)code);
}
