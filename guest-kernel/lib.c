#include "lib.h"

#include "events.h"
#include "hw.h"

const struct pvm_boot_info *boot_info;

/* rep movsq/stosq for the bulk: KVM's emulator runs a rep string instruction one
 * element at a time, so 8-byte elements are 8x faster than bytes here. */
void *memcpy(void *dst, const void *src, size_t n)
{
    void *ret = dst;
    size_t q = n / 8, r = n % 8;
    __asm__ volatile("rep movsq" : "+D"(dst), "+S"(src), "+c"(q) : : "memory");
    __asm__ volatile("rep movsb" : "+D"(dst), "+S"(src), "+c"(r) : : "memory");
    return ret;
}

void *memset(void *dst, int c, size_t n)
{
    void *ret = dst;
    uint64_t v = 0x0101010101010101ull * (uint8_t)c;
    size_t q = n / 8, r = n % 8;
    __asm__ volatile("rep stosq" : "+D"(dst), "+c"(q) : "a"(v) : "memory");
    __asm__ volatile("rep stosb" : "+D"(dst), "+c"(r) : "a"(v) : "memory");
    return ret;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const unsigned char *x = a, *y = b;
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i])
            return x[i] - y[i];
    return 0;
}

size_t strlen(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

int strncmp(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (a[i] != b[i])
            return (unsigned char)a[i] - (unsigned char)b[i];
        if (!a[i])
            return 0;
    }
    return 0;
}

struct sink {
    char *buf;
    size_t size, len;
};

static void put(struct sink *s, char c)
{
    if (s->len + 1 < s->size)
        s->buf[s->len] = c;
    s->len++;
}

static void put_num(struct sink *s, unsigned long v, unsigned base, int negative)
{
    char tmp[24];
    int n = 0;
    if (negative)
        put(s, '-');
    do {
        tmp[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    while (n)
        put(s, tmp[--n]);
}

int kvsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
    struct sink s = {buf, size, 0};
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            put(&s, *fmt);
            continue;
        }
        int is_long = 0, alt = 0;
        fmt++;
        if (*fmt == '#') {
            alt = 1;
            fmt++;
        }
        while (*fmt == 'l') {
            is_long = 1;
            fmt++;
        }
        switch (*fmt) {
        case 's': {
            const char *str = va_arg(ap, const char *);
            if (!str)
                str = "(null)";
            while (*str)
                put(&s, *str++);
            break;
        }
        case 'c':
            put(&s, (char)va_arg(ap, int));
            break;
        case 'd': {
            long v = is_long ? va_arg(ap, long) : va_arg(ap, int);
            put_num(&s, v < 0 ? -(unsigned long)v : (unsigned long)v, 10, v < 0);
            break;
        }
        case 'u':
            put_num(&s, is_long ? va_arg(ap, unsigned long) : va_arg(ap, unsigned), 10, 0);
            break;
        case 'x':
            if (alt) {
                put(&s, '0');
                put(&s, 'x');
            }
            put_num(&s, is_long ? va_arg(ap, unsigned long) : va_arg(ap, unsigned), 16, 0);
            break;
        case 'p':
            put(&s, '0');
            put(&s, 'x');
            put_num(&s, (unsigned long)va_arg(ap, void *), 16, 0);
            break;
        case '%':
            put(&s, '%');
            break;
        default:
            put(&s, '?');
        }
    }
    if (size)
        buf[s.len < size ? s.len : size - 1] = 0;
    return (int)s.len;
}

int ksnprintf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = kvsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n;
}

int kprintf(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = kvsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof buf - 1)
        n = sizeof buf - 1;
    console_write(buf, (unsigned long)n);
    return n;
}

/* The console takes what fits in pyvmm's output buffer: a partial count, or -EAGAIN while
 * the host's reader is not reading (back-pressure). Wait for room a millisecond at a time
 * (BLOCK, so an idle wait costs no host CPU and a stop request still ends it). */
long kconsole_handle = PVM_CONSOLE_HANDLE;

long console_write(const void *buf, unsigned long len)
{
    hw_init(); /* the first line finds out whether the console is COM1 (--hw-api) */
    if (hw_uart && kconsole_handle == PVM_CONSOLE_HANDLE) { /* --hw-api: the console is COM1 */
        uart_write(buf, len);
        return (long)len;
    }
    unsigned long done = 0;
    while (done < len) {
        long r = pvm_send((unsigned long)kconsole_handle, (const char *)buf + done, len - done, 0);
        if (r == -PVM_EAGAIN) {
            pvm_block(now_ns() + 1000000);
            continue;
        }
        if (r <= 0)
            return done ? (long)done : r;
        done += (unsigned long)r;
    }
    return (long)done;
}

int cmdline_get(const char *key, char *buf, size_t size)
{
    const char *p = (const char *)boot_info->cmdline;
    size_t klen = strlen(key);
    while (*p) {
        while (*p == ' ')
            p++;
        const char *tok = p;
        while (*p && *p != ' ')
            p++;
        if ((size_t)(p - tok) > klen && !strncmp(tok, key, klen) && tok[klen] == '=') {
            const char *v = tok + klen + 1;
            size_t n = (size_t)(p - v);
            if (n >= size)
                n = size - 1;
            memcpy(buf, v, n);
            buf[n] = 0;
            return (int)n;
        }
    }
    return -1;
}

long parse_long(const char *s)
{
    long sign = 1, v = 0;
    if (*s == '-') {
        sign = -1;
        s++;
    }
    if (s[0] == '0' && s[1] == 'x') {
        for (s += 2; *s; s++) {
            int d = (*s >= '0' && *s <= '9') ? *s - '0' : (*s | 32) - 'a' + 10;
            if (d < 0 || d > 15)
                break;
            v = v * 16 + d;
        }
    } else {
        for (; *s >= '0' && *s <= '9'; s++)
            v = v * 10 + (*s - '0');
    }
    return sign * v;
}

void sort_u64(uint64_t *v, unsigned n)
{
    /* insertion sort: benchmark sample sets are small */
    for (unsigned i = 1; i < n; i++)
        for (unsigned j = i; j > 0 && v[j - 1] > v[j]; j--) {
            uint64_t t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
}
