/* test=diskread [disk=NAME]: read back what test=diskwrite wrote in an earlier run (one of the
 * reads a single 1 MiB RECV), and check the end-of-disk and bad-buffer rules. */
#include "chan.h"
#include "disktest.h"
#include "programs.h"

static int diskread_main(void)
{
    long h = channel_arg("disk", "disk0", PVM_CHANNEL_BLOCK, "diskread");
    if (h < 0)
        return 2;
    struct pvm_channel_stat st;
    long r = pvm_channel_info(h, &st);
    if (r < 0 || st.kind != PVM_CHANNEL_BLOCK || st.size < DISKTEST_MIN_SIZE ||
        !(st.flags & PVM_CHAN_READABLE) || !(st.flags & PVM_CHAN_WRITABLE)) {
        kprintf("diskread: CHANNEL_INFO -> %ld, kind %u, flags %#x, size %lu: FAIL\n", r, st.kind, st.flags,
                (unsigned long)st.size);
        return 1;
    }
    char *buf = bulk_buffer(DISKTEST_BULK);
    if (!buf) {
        kprintf("diskread: not enough RAM for a bulk buffer\n");
        return 2;
    }
    int bad = 0;
    for (unsigned i = 0; i < DISK_REGIONS; i++) {
        const struct disk_region *d = &disk_regions[i];
        fill_words(buf, 0xa5a5a5a5a5a5a5a5ul, (d->len + 7) / 8); /* a RECV that moved nothing cannot pass */
        uint64_t t0 = rdtsc();
        long n = pvm_recv(h, buf, d->len, d->offset);
        unsigned long us = elapsed_us(t0);
        long at = n == (long)d->len ? pattern_check(buf, d->len, d->seed) : -1;
        if (n != (long)d->len || at >= 0) {
            kprintf("diskread: RECV %lu bytes at %lu -> %ld, first difference at +%ld: FAIL\n", d->len, d->offset,
                    n, at);
            bad++;
        } else if (d->len >= DISKTEST_BULK) {
            kprintf("diskread: one RECV of %lu bytes took %lu us\n", d->len, us);
        }
    }
    memset(buf, 0, 100);
    long n = pvm_recv(h, buf, 100, st.size - 40);
    long at = pattern_check(buf, 40, DISKTEST_TAIL_SEED);
    kprintf("diskread: across the end -> %ld%s\n", n, at < 0 ? "" : " (WRONG DATA)");
    bad += n != 40 || at >= 0;
    n = pvm_recv(h, buf, 100, st.size);
    kprintf("diskread: at the end -> %ld\n", n);
    bad += n != 0;
    bad += pvm_recv(h, buf, 100, ~0ul) != 0;
    n = pvm_recv(h, (void *)(boot_info->mem_size - 8), 16, 0);
    kprintf("diskread: past RAM -> %ld\n", n);
    bad += n != -PVM_EFAULT;
    n = pvm_recv(h, (void *)PVM_LAYOUT_BOOT_INFO, 16, 0);
    kprintf("diskread: into boot info -> %ld\n", n);
    bad += n != -PVM_EFAULT;
    kprintf("diskread: %s\n", bad ? "FAIL" : "ok");
    return bad ? 1 : 0;
}
PROGRAM(diskread);
