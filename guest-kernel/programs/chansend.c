/* test=chansend [name=link] [msg=TEXT] [size=BYTES]: send a header, a text message and a bulk
 * pattern over a stream channel (the bulk part offered to SEND in one call of over 1 MiB; partial
 * counts are resent), then wait for test=chanrecv's acknowledgement from the other VM. */
#include "chan.h"
#include "chantest.h"
#include "programs.h"

static int chansend_main(void)
{
    long h = channel_arg("name", "link", PVM_CHANNEL_STREAM, "chansend");
    if (h < 0)
        return 2;
    char text[CHANTEST_TEXT_MAX + 1];
    if (cmdline_get("msg", text, sizeof text) < 0)
        memcpy(text, "hello-from-A", 13);
    unsigned long size = cmdline_ulong("size", CHANTEST_BULK_DEFAULT);
    char *bulk = size <= CHANTEST_BULK_MAX ? bulk_buffer(size) : 0;
    if (!bulk) {
        kprintf("chansend: size=%lu is too big for this VM\n", size);
        return 2;
    }
    pattern_fill(bulk, size, CHANTEST_SEED);
    if (wait_connected(h, deadline_ms(CHANTEST_WAIT_MS)) < 0) {
        kprintf("chansend: no peer within %u ms: FAIL\n", CHANTEST_WAIT_MS);
        return 1;
    }
    kprintf("chansend: connected\n");
    struct chantest_header hdr = {CHANTEST_MAGIC, strlen(text), size};
    unsigned long sends = 0;
    long r = send_all(h, &hdr, sizeof hdr, deadline_ms(CHANTEST_WAIT_MS), 0);
    if (r >= 0)
        r = send_all(h, text, hdr.text_len, deadline_ms(CHANTEST_WAIT_MS), 0);
    uint64_t t0 = rdtsc();
    if (r >= 0)
        r = send_all(h, bulk, size, deadline_ms(CHANTEST_WAIT_MS), &sends);
    unsigned long us = elapsed_us(t0);
    if (r < 0) {
        kprintf("chansend: send -> %ld: FAIL\n", r);
        return 1;
    }
    kprintf("chansend: sent '%s' and %lu bytes in %lu SEND(s), %lu us\n", text, size, sends, us);
    struct chantest_ack ack;
    r = recv_exact(h, &ack, sizeof ack, deadline_ms(CHANTEST_WAIT_MS), 0);
    if (r < 0 || ack.magic != CHANTEST_MAGIC || ack.received != hdr.text_len + size) {
        kprintf("chansend: acknowledgement -> %ld (%lu bytes): FAIL\n", r, (unsigned long)ack.received);
        return 1;
    }
    kprintf("chansend: peer acknowledged %lu bytes: ok\n", (unsigned long)ack.received);
    return 0;
}
PROGRAM(chansend);
