/* test=diskwrite [disk=NAME]: write the disktest regions (one of them a single 1 MiB SEND),
 * check the end-of-disk rules (a write across the end is partial, one at the end is -ENOSPC),
 * and flush; test=diskread in a later run reads it all back. */
#include "chan.h"
#include "disktest.h"
#include "programs.h"

static int diskwrite_main(void)
{
    long h = channel_arg("disk", "disk0", PVM_CHANNEL_BLOCK, "diskwrite");
    if (h < 0)
        return 2;
    struct pvm_channel_stat st;
    long r = pvm_channel_info(h, &st);
    if (r < 0 || st.kind != PVM_CHANNEL_BLOCK || st.size < DISKTEST_MIN_SIZE) {
        kprintf("diskwrite: CHANNEL_INFO -> %ld, kind %u, size %lu: FAIL\n", r, st.kind, (unsigned long)st.size);
        return 1;
    }
    char *buf = bulk_buffer(DISKTEST_BULK);
    if (!buf) {
        kprintf("diskwrite: not enough RAM for a bulk buffer\n");
        return 2;
    }
    int bad = 0;
    for (unsigned i = 0; i < DISK_REGIONS; i++) {
        const struct disk_region *d = &disk_regions[i];
        pattern_fill(buf, d->len, d->seed);
        uint64_t t0 = rdtsc();
        long n = pvm_send(h, buf, d->len, d->offset);
        unsigned long us = elapsed_us(t0);
        if (n != (long)d->len) {
            kprintf("diskwrite: SEND %lu bytes at %lu -> %ld: FAIL\n", d->len, d->offset, n);
            bad++;
        } else if (d->len >= DISKTEST_BULK) {
            kprintf("diskwrite: one SEND of %lu bytes took %lu us\n", d->len, us);
        }
    }
    /* The end of the disk: partial across it, -ENOSPC at and past it. */
    pattern_fill(buf, 100, DISKTEST_TAIL_SEED);
    long n = pvm_send(h, buf, 100, st.size - 40);
    kprintf("diskwrite: across the end -> %ld\n", n);
    bad += n != 40;
    n = pvm_send(h, buf, 1, st.size);
    kprintf("diskwrite: at the end -> %ld\n", n);
    bad += n != -PVM_ENOSPC;
    n = pvm_send(h, buf, 1, ~0ul);
    bad += n != -PVM_ENOSPC;
    n = pvm_channel_flush(h);
    kprintf("diskwrite: flush -> %ld\n", n);
    bad += n != 0;
    kprintf("diskwrite: %s\n", bad ? "FAIL" : "ok");
    return bad ? 1 : 0;
}
PROGRAM(diskwrite);
