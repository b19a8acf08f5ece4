/* test=chanrecv [name=link]: receive test=chansend's message from the other VM, verify its
 * header, text and bulk pattern (size and content), print them and acknowledge. */
#include "chan.h"
#include "chantest.h"
#include "programs.h"

static int chanrecv_main(void)
{
    long h = channel_arg("name", "link", PVM_CHANNEL_STREAM, "chanrecv");
    if (h < 0)
        return 2;
    struct chantest_header hdr;
    long r = recv_exact(h, &hdr, sizeof hdr, deadline_ms(CHANTEST_WAIT_MS), 0);
    if (r < 0 || hdr.magic != CHANTEST_MAGIC || hdr.text_len > CHANTEST_TEXT_MAX ||
        hdr.bulk_len > CHANTEST_BULK_MAX) {
        kprintf("chanrecv: header -> %ld (magic %#lx): FAIL\n", r, (unsigned long)hdr.magic);
        return 1;
    }
    char text[CHANTEST_TEXT_MAX + 1];
    r = recv_exact(h, text, hdr.text_len, deadline_ms(CHANTEST_WAIT_MS), 0);
    if (r < 0) {
        kprintf("chanrecv: text -> %ld: FAIL\n", r);
        return 1;
    }
    text[hdr.text_len] = 0;
    kprintf("chanrecv: message '%s'\n", text);
    char *bulk = bulk_buffer(hdr.bulk_len);
    if (!bulk) {
        kprintf("chanrecv: %lu bytes do not fit in this VM\n", (unsigned long)hdr.bulk_len);
        return 2;
    }
    fill_words(bulk, 0, (hdr.bulk_len + 7) / 8);
    unsigned long recvs = 0;
    uint64_t t0 = rdtsc();
    r = recv_exact(h, bulk, hdr.bulk_len, deadline_ms(CHANTEST_WAIT_MS), &recvs);
    unsigned long us = elapsed_us(t0);
    long at = r < 0 ? -1 : pattern_check(bulk, hdr.bulk_len, CHANTEST_SEED);
    if (r < 0 || at >= 0) {
        kprintf("chanrecv: bulk -> %ld, first difference at +%ld: FAIL\n", r, at);
        return 1;
    }
    kprintf("chanrecv: bulk %lu bytes in %lu RECV(s), %lu us: ok\n", (unsigned long)hdr.bulk_len, recvs, us);
    struct chantest_ack ack = {CHANTEST_MAGIC, hdr.text_len + hdr.bulk_len};
    r = send_all(h, &ack, sizeof ack, deadline_ms(CHANTEST_WAIT_MS), 0);
    if (r < 0) {
        kprintf("chanrecv: acknowledgement -> %ld: FAIL\n", r);
        return 1;
    }
    return 0;
}
PROGRAM(chanrecv);
