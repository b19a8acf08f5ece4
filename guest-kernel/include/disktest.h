/* The regions test=diskwrite writes and test=diskread verifies (tests/test_channels.py checks
 * the same regions in the host file). The disk must be at least DISKTEST_MIN_SIZE bytes. */
#ifndef DISKTEST_H
#define DISKTEST_H

struct disk_region {
    unsigned long offset, len, seed;
};

#define DISKTEST_BULK (1ul << 20) /* one SEND/RECV of this many bytes */
#define DISKTEST_MIN_SIZE (4ul << 20)
#define DISKTEST_TAIL_SEED 9 /* the write that crosses the end of the disk */

static const struct disk_region disk_regions[] = {
    {0, 4096, 1},                     /* the first page */
    {12345, 5000, 2},                 /* unaligned offset and length */
    {65536 - 100, 300, 3},            /* across a 64 KiB boundary */
    {DISKTEST_BULK, DISKTEST_BULK, 4}, /* the bulk transfer: one call */
};
#define DISK_REGIONS (sizeof disk_regions / sizeof disk_regions[0])

#endif
