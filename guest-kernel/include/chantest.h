/* The message test=chansend sends and test=chanrecv receives over a stream channel. */
#ifndef CHANTEST_H
#define CHANTEST_H

#include <stdint.h>

#define CHANTEST_MAGIC 0x314e414843564d50ul /* "PMVCHAN1" */
#define CHANTEST_TEXT_MAX 200
#define CHANTEST_BULK_DEFAULT ((1ul << 20) + 4099) /* over 1 MiB, not a multiple of 8 */
#define CHANTEST_BULK_MAX (16ul << 20)
#define CHANTEST_SEED 11
#define CHANTEST_WAIT_MS 30000 /* for the peer to connect, and for each transfer */

struct chantest_header {
    uint64_t magic;
    uint64_t text_len; /* then this many bytes of text */
    uint64_t bulk_len; /* then this many bytes of pattern(CHANTEST_SEED) */
};

struct chantest_ack {
    uint64_t magic;
    uint64_t received; /* bytes of text + bulk the receiver verified */
};

static inline unsigned long cmdline_ulong(const char *key, unsigned long dflt)
{
    char v[32];
    return cmdline_get(key, v, sizeof v) > 0 ? (unsigned long)parse_long(v) : dflt;
}

#endif
