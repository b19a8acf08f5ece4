/* test=request [name=kv] [msg=TEXT;TEXT...]: a request/reply client for a channel served by the
 * host (e.g. a pyvmm.Channel written in Python). For each ';'-separated request ('+' for a space,
 * as the command line splits at spaces) it SENDs the
 * text, then RECVs until the reply ends with '\n' (retrying on -EAGAIN), and prints
 * "request: TEXT -> REPLY". */
#include "chan.h"
#include "programs.h"

static int request_main(void)
{
    char name[PVM_CHANNEL_NAME_LEN], msgs[512], reply[256];
    if (cmdline_get("name", name, sizeof name) < 0)
        memcpy(name, "kv", 3);
    if (cmdline_get("msg", msgs, sizeof msgs) < 0)
        memcpy(msgs, "ping", 5);
    long h = channel_find(name);
    if (h < 0) {
        kprintf("request: no channel named '%s'\n", name);
        return 2;
    }
    char *req = msgs;
    while (*req) {
        char *end = req;
        while (*end && *end != ';')
            end++;
        int last = !*end;
        *end = 0;
        for (char *c = req; c < end; c++)
            if (*c == '+')
                *c = ' ';
        long r = send_all(h, req, strlen(req), deadline_ms(10000), 0);
        if (r < 0) {
            kprintf("request: send -> %ld: FAIL\n", r);
            return 1;
        }
        unsigned long got = 0;
        while (got == 0 || reply[got - 1] != '\n') {
            long n = recv_exact(h, reply + got, 1, deadline_ms(10000), 0);
            if (n < 0) {
                kprintf("request: recv -> %ld: FAIL\n", n);
                return 1;
            }
            if (++got >= sizeof reply - 1)
                break;
        }
        reply[got ? got - 1 : 0] = 0;
        kprintf("request: %s -> %s\n", req, reply);
        if (last)
            break;
        req = end + 1;
    }
    return 0;
}
PROGRAM(request);
