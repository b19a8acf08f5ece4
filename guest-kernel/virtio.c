/* A virtio-mmio (version 2) block driver for the --hw-api VM's disk (docs/hwapi.md).
 *
 * One queue of 8 descriptors, one request in flight: header, data, status, as in
 * Linux's virtio_blk. The host serves a request inside the QueueNotify write, but
 * the driver still waits for the used ring as it would for any device. */
#include "hw.h"

#include "lib.h"

#define VIRTIO_BASE 0xc0000000ul
#define R_MAGIC 0x000
#define R_VERSION 0x004
#define R_DEVICE_ID 0x008
#define R_DEV_FEATURES 0x010
#define R_DEV_FEATURES_SEL 0x014
#define R_DRV_FEATURES 0x020
#define R_DRV_FEATURES_SEL 0x024
#define R_QUEUE_SEL 0x030
#define R_QUEUE_NUM_MAX 0x034
#define R_QUEUE_NUM 0x038
#define R_QUEUE_READY 0x044
#define R_QUEUE_NOTIFY 0x050
#define R_STATUS 0x070
#define R_DESC 0x080
#define R_AVAIL 0x090
#define R_USED 0x0a0
#define R_CONFIG 0x100
#define ST_ACK 1
#define ST_DRIVER 2
#define ST_DRIVER_OK 4
#define ST_FEATURES_OK 8
#define F_FLUSH (1u << 9)
#define F_VERSION_1_HI 1u /* bit 32 */
#define QN 8
#define D_NEXT 1
#define D_WRITE 2

struct vdesc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags, next;
};
static struct vdesc desc[QN] __attribute__((aligned(16)));
static struct {
    uint16_t flags, idx, ring[QN], used_event;
} avail __attribute__((aligned(2)));
static struct {
    uint16_t flags, idx;
    struct {
        uint32_t id, len;
    } ring[QN];
    uint16_t avail_event;
} used __attribute__((aligned(4)));
static struct {
    uint32_t type, reserved;
    uint64_t sector;
} hdr;
static volatile uint8_t status;
static uint16_t last_used;
uint64_t vblk_sectors;
static int ready;

static inline uint32_t rd(unsigned off) { return *(volatile uint32_t *)(VIRTIO_BASE + off); }
static inline void wr(unsigned off, uint32_t v) { *(volatile uint32_t *)(VIRTIO_BASE + off) = v; }
static inline void wr64(unsigned off, uint64_t v)
{
    wr(off, (uint32_t)v);
    wr(off + 4, (uint32_t)(v >> 32));
}

int vblk_init(void)
{
    if (ready)
        return 0;
    if (!hw_lapic || rd(R_MAGIC) != 0x74726976 || rd(R_VERSION) != 2 || rd(R_DEVICE_ID) != 2)
        return -1; /* the default VM has no window; a --hw-api VM without --disk has device 0 */
    wr(R_STATUS, 0);
    wr(R_STATUS, ST_ACK | ST_DRIVER);
    wr(R_DEV_FEATURES_SEL, 0);
    uint32_t lo = rd(R_DEV_FEATURES);
    wr(R_DEV_FEATURES_SEL, 1);
    uint32_t hi = rd(R_DEV_FEATURES);
    if (!(hi & F_VERSION_1_HI) || !(lo & F_FLUSH))
        return -1;
    wr(R_DRV_FEATURES_SEL, 0);
    wr(R_DRV_FEATURES, F_FLUSH);
    wr(R_DRV_FEATURES_SEL, 1);
    wr(R_DRV_FEATURES, F_VERSION_1_HI);
    wr(R_STATUS, ST_ACK | ST_DRIVER | ST_FEATURES_OK);
    if (!(rd(R_STATUS) & ST_FEATURES_OK))
        return -1;
    wr(R_QUEUE_SEL, 0);
    if (rd(R_QUEUE_NUM_MAX) < QN)
        return -1;
    wr(R_QUEUE_NUM, QN);
    wr64(R_DESC, (uint64_t)desc);
    wr64(R_AVAIL, (uint64_t)&avail);
    wr64(R_USED, (uint64_t)&used);
    wr(R_QUEUE_READY, 1);
    wr(R_STATUS, ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK);
    vblk_sectors = (uint64_t)rd(R_CONFIG) | (uint64_t)rd(R_CONFIG + 4) << 32;
    ready = 1;
    return 0;
}

/* One request: 0, or -(virtio status) / -255 for a device that stopped answering. */
static long submit(uint32_t type, uint64_t sector, void *buf, uint32_t len, int device_writes)
{
    hdr.type = type;
    hdr.reserved = 0;
    hdr.sector = sector;
    status = 0xff;
    desc[0] = (struct vdesc){(uint64_t)&hdr, sizeof hdr, D_NEXT, 1};
    unsigned last = 1;
    if (len) {
        desc[1] = (struct vdesc){(uint64_t)buf, len, (uint16_t)(D_NEXT | (device_writes ? D_WRITE : 0)), 2};
        last = 2;
    }
    desc[last] = (struct vdesc){(uint64_t)&status, 1, D_WRITE, 0};
    avail.ring[avail.idx % QN] = 0;
    __asm__ volatile("" : : : "memory");
    avail.idx++;
    __asm__ volatile("mfence" : : : "memory");
    wr(R_QUEUE_NOTIFY, 0);
    for (unsigned long spins = 0; *(volatile uint16_t *)&used.idx == last_used; spins++)
        if (spins > 1000000)
            return -255;
    last_used++;
    return status ? -(long)status : 0;
}

long vblk_write(uint64_t sector, const void *buf, uint32_t len) { return submit(1, sector, (void *)buf, len, 0); }
long vblk_read(uint64_t sector, void *buf, uint32_t len) { return submit(0, sector, buf, len, 1); }
long vblk_flush(void) { return submit(4, 0, 0, 0, 0); }
