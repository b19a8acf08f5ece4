/* test=chanreset [name=link]: connect, say hello, then wait for the peer VM to vanish (the test
 * kills it): RECV must give what the peer sent and then -ECONNRESET, SEND -EPIPE, and
 * CHANNEL_INFO the CLOSED flag; no hang, no crash. */
#include "chan.h"
#include "chantest.h"
#include "programs.h"

static int chanreset_main(void)
{
    long h = channel_arg("name", "link", PVM_CHANNEL_STREAM, "chanreset");
    if (h < 0)
        return 2;
    if (wait_connected(h, deadline_ms(CHANTEST_WAIT_MS)) < 0) {
        kprintf("chanreset: no peer: FAIL\n");
        return 1;
    }
    long r = send_all(h, "ping", 4, deadline_ms(CHANTEST_WAIT_MS), 0);
    kprintf("chanreset: connected, sent %ld bytes; waiting for the peer to go away\n", r);
    char buf[64];
    unsigned long got = 0;
    uint64_t deadline = deadline_ms(2 * CHANTEST_WAIT_MS);
    for (;;) {
        r = pvm_recv(h, buf, sizeof buf, 0);
        if (r > 0) {
            got += (unsigned long)r;
            continue;
        }
        if (r != -PVM_EAGAIN)
            break;
        if (rdtsc() > deadline) {
            kprintf("chanreset: the peer never went away: FAIL\n");
            return 1;
        }
        poll_pause();
    }
    long again = pvm_recv(h, buf, sizeof buf, 0);
    long s = pvm_send(h, "x", 1, 0);
    struct pvm_channel_stat st;
    pvm_channel_info(h, &st);
    int ok = r == -PVM_ECONNRESET && again == -PVM_ECONNRESET && s == -PVM_EPIPE && (st.flags & PVM_CHAN_CLOSED) &&
             !(st.flags & PVM_CHAN_CONNECTED);
    kprintf("chanreset: received %lu bytes, then recv -> %ld, recv -> %ld, send -> %ld, flags %#x: %s\n", got, r,
            again, s, st.flags, ok ? "ok" : "FAIL");
    return ok ? 0 : 1;
}
PROGRAM(chanreset);
