/* Channel helpers for the guest test programs: find a channel by name, CHANNEL_INFO and
 * CHANNEL_FLUSH, a recognisable data pattern, and bounded retries on -EAGAIN.
 *
 * Waiting here is polling (the event-based wait is BLOCK on a channel-bound event port):
 * each retry is preceded by a few NULL hypercalls, the cheapest exits, as the pause, and
 * the whole wait is bounded by a TSC deadline. Guest instructions are expensive under
 * KVM's emulator, so the loops stay short and the pattern works in 8-byte words. */
#ifndef CHAN_H
#define CHAN_H

#include <stdint.h>

#include "arch.h"
#include "lib.h"

static inline long pvm_channel_flush(unsigned long handle)
{
    return pvm_hypercall(PVM_HC_CHANNEL_FLUSH, handle, 0, 0, 0, 0);
}

static inline long pvm_channel_info(unsigned long handle, struct pvm_channel_stat *st)
{
    return pvm_hypercall(PVM_HC_CHANNEL_INFO, handle, (unsigned long)st, 0, 0, 0);
}

/* The handle of the channel called `name` in the boot-info table, or -1. */
static inline long channel_find(const char *name)
{
    for (uint32_t i = 0; i < boot_info->nr_channels && i < PVM_MAX_CHANNELS; i++)
        if (!strncmp(boot_info->channels[i].name, name, PVM_CHANNEL_NAME_LEN))
            return boot_info->channels[i].handle;
    return -1;
}

/* The channel named by `key=NAME` on the command line (default `dflt`), checked to be of `kind`. */
static inline long channel_arg(const char *key, const char *dflt, uint32_t kind, const char *prog)
{
    char name[PVM_CHANNEL_NAME_LEN];
    if (cmdline_get(key, name, sizeof name) < 0) {
        memcpy(name, dflt, strlen(dflt) + 1);
    }
    long h = channel_find(name);
    if (h < 0) {
        kprintf("%s: no channel named '%s' (check --disk / --channel)\n", prog, name);
        return -1;
    }
    if (boot_info->channels[h].kind != kind) {
        kprintf("%s: channel '%s' is of kind %u, not %u\n", prog, name, boot_info->channels[h].kind, kind);
        return -1;
    }
    return h;
}

/* A buffer for bulk transfers: the middle of RAM (above the kernel image, below the stack at the
 * top), so a multi-MiB buffer costs nothing at boot; NULL if RAM is too small. */
static inline void *bulk_buffer(unsigned long size)
{
    unsigned long base = (boot_info->mem_size / 2) & ~0xffful;
    if (base < (8ul << 20) || base + size + (1ul << 20) > boot_info->mem_size)
        return 0;
    return (void *)base;
}

/* The pattern: 8-byte little-endian words w[i] = seed*K1 + (i % PERIOD)*K2 (i from 0 at the
 * buffer's start), cut to n bytes; tests/test_channels.py computes the same bytes. Periodic so
 * that bulk buffers are made and checked with `rep movsq` / `repe cmpsq` (one emulated
 * instruction per word) instead of a loop of several instructions per word: under KVM's
 * emulator that is about 80 ms per MiB instead of over half a second. The period is a prime
 * number of words, so no power-of-two offset error lines the data up again. */
#define PATTERN_K1 0x9e3779b97f4a7c15ul
#define PATTERN_K2 0x100000001b3ul
#define PATTERN_PERIOD 509ul

static inline uint64_t pattern_word(unsigned long i, unsigned long seed)
{
    return seed * PATTERN_K1 + (i % PATTERN_PERIOD) * PATTERN_K2;
}

/* rep stosq: fill `words` 8-byte words with `v`. */
static inline void fill_words(void *buf, uint64_t v, unsigned long words)
{
    __asm__ volatile("rep stosq" : "+D"(buf), "+c"(words) : "a"(v) : "memory");
}

static inline void pattern_fill(void *buf, unsigned long n, unsigned long seed)
{
    uint64_t *w = buf;
    unsigned long words = n / 8, first = words < PATTERN_PERIOD ? words : PATTERN_PERIOD;
    for (unsigned long i = 0; i < first; i++)
        w[i] = pattern_word(i, seed);
    if (words > PATTERN_PERIOD) {
        /* A forward copy that overlaps its source by one period repeats it (string moves are
         * architecturally element by element). */
        void *dst = w + PATTERN_PERIOD;
        const void *src = w;
        unsigned long count = words - PATTERN_PERIOD;
        __asm__ volatile("rep movsq" : "+D"(dst), "+S"(src), "+c"(count) : : "memory");
    }
    uint64_t v = pattern_word(words, seed);
    uint8_t *tail = (uint8_t *)(w + words);
    for (unsigned long i = 0; i < n % 8; i++)
        tail[i] = (uint8_t)(v >> (8 * i));
}

/* The first byte offset where buf differs from the pattern, or -1 when it matches. */
static inline long pattern_check(const void *buf, unsigned long n, unsigned long seed)
{
    const uint64_t *w = buf;
    unsigned long words = n / 8, first = words < PATTERN_PERIOD ? words : PATTERN_PERIOD;
    unsigned long bad = ~0ul;
    for (unsigned long i = 0; i < first && bad == ~0ul; i++)
        if (w[i] != pattern_word(i, seed))
            bad = i;
    if (bad == ~0ul && words > PATTERN_PERIOD) {
        /* The first period is right; the rest must equal the period before it. */
        const uint64_t *a = w + PATTERN_PERIOD, *b = w;
        unsigned long count = words - PATTERN_PERIOD;
        unsigned char ne;
        __asm__ volatile("repe cmpsq\n\tsetne %[ne]"
                         : "+S"(a), "+D"(b), "+c"(count), [ne] "=r"(ne)
                         :
                         : "memory", "cc");
        if (ne)
            bad = (unsigned long)(a - 1 - w);
    }
    if (bad != ~0ul) {
        uint64_t v = pattern_word(bad, seed);
        for (unsigned b = 0; b < 8; b++)
            if (((const uint8_t *)&w[bad])[b] != (uint8_t)(v >> (8 * b)))
                return (long)(bad * 8 + b);
    }
    uint64_t v = pattern_word(words, seed);
    const uint8_t *tail = (const uint8_t *)(w + words);
    for (unsigned long i = 0; i < n % 8; i++)
        if (tail[i] != (uint8_t)(v >> (8 * i)))
            return (long)(words * 8 + i);
    return -1;
}

/* TSC deadlines: `ms` from now. Without a TSC frequency in boot info, assume 2 GHz. */
static inline uint64_t deadline_ms(unsigned long ms)
{
    uint64_t khz = boot_info->tsc_khz ? boot_info->tsc_khz : 2000000;
    return rdtsc() + ms * khz;
}

static inline unsigned long elapsed_us(uint64_t tsc_start)
{
    uint64_t khz = boot_info->tsc_khz ? boot_info->tsc_khz : 2000000;
    return (unsigned long)((rdtsc() - tsc_start) * 1000 / khz);
}

/* The pause between two polls: a few of the cheapest hypercalls. */
static inline void poll_pause(void)
{
    for (int i = 0; i < 8; i++)
        pvm_hypercall(PVM_HC_NULL, 0, 0, 0, 0, 0);
}

/* Send all `len` bytes (SEND may be partial), retrying on -EAGAIN until `deadline`.
 * Returns len, -PVM_ETIMEDOUT, or SEND's error; *sends counts the SEND calls that moved data. */
static inline long send_all(long h, const void *buf, unsigned long len, uint64_t deadline, unsigned long *sends)
{
    unsigned long done = 0;
    while (done < len) {
        long n = pvm_send(h, (const char *)buf + done, len - done, 0);
        if (n == -PVM_EAGAIN) {
            if (rdtsc() > deadline)
                return -PVM_ETIMEDOUT;
            poll_pause();
            continue;
        }
        if (n <= 0)
            return n ? n : -PVM_EIO;
        done += (unsigned long)n;
        if (sends)
            (*sends)++;
    }
    return (long)done;
}

/* Receive exactly `len` bytes, retrying on -EAGAIN until `deadline`; like send_all. */
static inline long recv_exact(long h, void *buf, unsigned long len, uint64_t deadline, unsigned long *recvs)
{
    unsigned long done = 0;
    while (done < len) {
        long n = pvm_recv(h, (char *)buf + done, len - done, 0);
        if (n == -PVM_EAGAIN) {
            if (rdtsc() > deadline)
                return -PVM_ETIMEDOUT;
            poll_pause();
            continue;
        }
        if (n <= 0)
            return n ? n : -PVM_EIO;
        done += (unsigned long)n;
        if (recvs)
            (*recvs)++;
    }
    return (long)done;
}

/* Wait until the stream channel's peer is there (CONNECTED, or CLOSED if it already left). */
static inline int wait_connected(long h, uint64_t deadline)
{
    struct pvm_channel_stat st;
    for (;;) {
        if (pvm_channel_info(h, &st) < 0)
            return -1;
        if (st.flags & (PVM_CHAN_CONNECTED | PVM_CHAN_CLOSED))
            return 0;
        if (rdtsc() > deadline)
            return -1;
        poll_pause();
    }
}

#endif
